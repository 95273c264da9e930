"""Languages of the portal: Spanish (es-CL) by default, English on request (Flask-Babel).

The choice is kept in the session (`lang`), set by a CSRF-protected POST to /language. Catalogs live in
`webapp/translations/<lang>/LC_MESSAGES/messages.{po,mo}`; the Spanish texts are the message ids, so Spanish needs
no catalog. Regenerate with `pybabel extract -F webapp/babel.cfg -o webapp/translations/messages.pot webapp` and
`pybabel update|compile -d webapp/translations`; `update` marks the texts that only arrive at run time (from
flask-login, Flask-WTF) obsolete (`#~`): restore them before compiling (docs/portal.md, "Language").
"""

from __future__ import annotations

from flask import Blueprint, redirect, request, session, url_for
from flask_babel import Babel, get_locale

from webapp.auth import is_safe_local_path

LANGUAGES = {"es": "es-CL", "en": "en"}
DEFAULT_LANGUAGE = "es"

babel = Babel()
bp = Blueprint("i18n", __name__)


def select_locale() -> str:
    chosen = session.get("lang")
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def current_language() -> str:
    """'es' or 'en' for the current request."""
    locale = get_locale()
    return locale.language if locale is not None and locale.language in LANGUAGES else DEFAULT_LANGUAGE


def html_lang() -> str:
    """The value of <html lang>: es-CL or en."""
    return LANGUAGES[current_language()]


@bp.post("/language")
def set_language():
    """Switch language and come back to the page the form was on."""
    lang = request.form.get("lang", "")
    if lang in LANGUAGES:
        session["lang"] = lang
    target = request.form.get("next") or ""
    return redirect(target if is_safe_local_path(target) else url_for("portal.index"))


def init_app(app) -> None:
    babel.init_app(
        app,
        default_locale=DEFAULT_LANGUAGE,
        default_translation_directories="translations",
        default_timezone="America/Santiago",
        locale_selector=select_locale,
    )
    app.jinja_env.globals.update(html_lang=html_lang, current_language=current_language)
    app.register_blueprint(bp)

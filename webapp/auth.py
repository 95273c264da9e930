"""Log in and log out: a CSRF-protected form, Argon2id-checked passwords, safe `next` redirects."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from webapp.extensions import login_manager

bp = Blueprint("auth", __name__)

LOGIN_FAILED = "Correo o contraseña incorrectos."
MAX_FIELD_LENGTH = 1024


def is_safe_local_path(target: str | None) -> bool:
    """Only same-site absolute paths ("/supplies/1"), never "//host", "/\\host", schemes or control chars."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return False
    if any(ord(character) < 32 or character == "\\" for character in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


@login_manager.user_loader
def load_user(user_id: str):
    return current_app.extensions["accounts"].get_user(user_id)


@login_manager.unauthorized_handler
def unauthorized():
    if request.blueprint == "api" or request.path.startswith("/api/"):
        return jsonify(error="Debes iniciar sesión.", field=None), 401
    flash(login_manager.login_message, "info")
    next_path = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=next_path))


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_path = request.values.get("next", "")
    if not is_safe_local_path(next_path):
        next_path = ""
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(next_path or url_for("portal.index"))

    error = None
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "")[:MAX_FIELD_LENGTH]
        password = request.form.get("password", "")[:MAX_FIELD_LENGTH]
        user = current_app.extensions["accounts"].authenticate(email, password) if email and password else None
        if user is not None:
            # a fresh session on login: nothing from before authentication survives (session fixation)
            session.clear()
            login_user(user)
            current_app.logger.info("login ok for user id %s", user.id)
            return redirect(next_path or url_for("portal.index"))
        current_app.logger.info("login failed")
        error = LOGIN_FAILED
    return render_template("login.html", error=error, email=email, next_path=next_path)


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    session.clear()
    flash("Cerraste tu sesión.", "info")
    return redirect(url_for("auth.login"))

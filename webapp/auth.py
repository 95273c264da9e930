"""Accounts in the browser: log in (with optional TOTP), log out, register, verify e-mail, reset and change the
password, list and end sessions, turn the second factor on and off.

Every form is CSRF-protected (Flask-WTF, global). Answers never tell whether an account exists: login, registration
and reset answer the same for unknown and known addresses. Registration asks for proof of holding the supply and
never for consent to share data with anyone.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pyotp
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user

from webapp import mail, security
from webapp.accounts import DuplicateEmail, WeakPassword, normalise_email, normalise_rut, valid_rut
from webapp.extensions import login_manager

bp = Blueprint("auth", __name__)

LOGIN_FAILED = _l("Correo o contraseña incorrectos.")
THROTTLED = _l("Demasiados intentos fallidos. Espera unos minutos antes de volver a intentarlo.")
MFA_FAILED = _l("El código no es válido.")
REGISTRATION_SENT = _l(
    "Si los datos corresponden a un suministro, enviamos un correo con un enlace para completar el registro. "
    "Revisa tu bandeja de entrada."
)
RESET_SENT = _l("Si existe una cuenta con ese correo, enviamos un enlace para restablecer la contraseña.")
LINK_INVALID = _l("El enlace no es válido o ya expiró. Solicita uno nuevo.")
LINK_INVALID_TITLE = _l("Enlace no válido")
PASSWORDS_DIFFER = _l("Las contraseñas no coinciden.")
MAX_FIELD_LENGTH = 1024
MFA_PENDING_SECONDS = 300
# pages a customer may still reach when configuration requires a second factor they have not set up yet
MFA_SETUP_ENDPOINTS = {"auth.mfa", "auth.mfa_setup", "auth.mfa_enable", "auth.logout", "static", "health.healthz",
                       "health.readyz"}


def is_safe_local_path(target: str | None) -> bool:
    """Only same-site absolute paths ("/supplies/1"), never "//host", "/\\host", schemes or control chars."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return False
    if any(ord(character) < 32 or character == "\\" for character in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def form_value(name: str) -> str:
    return request.form.get(name, "")[:MAX_FIELD_LENGTH]


def accounts():
    return security.accounts()


def read_model():
    return current_app.extensions["read_model"]


def base_url() -> str:
    return (current_app.config.get("PORTAL_BASE_URL") or request.host_url).rstrip("/")


def notify(email: str, what: str) -> None:
    """Tell the customer about a change to their account's security (ASVS: notify after sensitive changes)."""
    mail.send(email, "Cambio en la seguridad de tu cuenta",
              f"{what}\n\nSi no fuiste tú, restablece tu contraseña en {base_url()}{url_for('auth.forgot_password')} "
              "y revisa tus sesiones activas.\n")


def personal_data(customer_id: str, email: str) -> list[str]:
    """What a password must not be made of: the customer's RUT, name and e-mail."""
    customer = read_model().customer(customer_id) or {}
    return [customer.get("rut") or "", customer.get("name") or "", email or "", customer.get("email") or ""]


@login_manager.user_loader
def load_user(user_id: str):
    user = security.live_session_user(user_id)
    if user is None:
        # ended, idle or too old on the server: the cookie no longer logs anyone in
        session.pop(security.SESSION_KEY, None)
        return None
    return user


@login_manager.unauthorized_handler
def unauthorized():
    if request.blueprint == "api" or request.path.startswith("/api/"):
        return jsonify(error="Debes iniciar sesión.", field=None), 401
    flash(gettext(login_manager.login_message), "info")  # its English text is in the catalog
    next_path = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=next_path))


@bp.before_app_request
def require_second_factor():
    """With MFA_REQUIRED, a customer without a second factor can only set one up (or log out)."""
    if not current_app.config.get("MFA_REQUIRED") or request.endpoint in MFA_SETUP_ENDPOINTS:
        return None
    if not current_user.is_authenticated or current_user.grant is not None or current_user.mfa_enabled:
        return None
    if request.path.startswith("/api/"):
        return jsonify(error="Debes activar la verificación en dos pasos.", field=None), 403
    flash(gettext("Debes activar la verificación en dos pasos para continuar."), "info")
    return redirect(url_for("auth.mfa"))


def clear_session() -> None:
    """Empty the session, keeping only the language the customer chose (it says nothing about who they are)."""
    language = session.get("lang")
    session.clear()
    if language is not None:
        session["lang"] = language


def complete_login(user, next_path: str):
    """A fresh session (new cookie content, new server-side id) for a fully authenticated user."""
    clear_session()  # nothing from before authentication survives (session fixation), but the language
    login_user(user)
    security.begin_session(user.id)
    security.accounts().clear_failures(security.account_key(user.email))
    security.audit("login.success", user.id)
    current_app.logger.info("login ok for user id %s", user.id)
    return redirect(next_path or url_for("portal.index"))


def safe_next() -> str:
    next_path = request.values.get("next", "")
    return next_path if is_safe_local_path(next_path) else ""


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_path = safe_next()
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(next_path or url_for("portal.index"))

    error = None
    status = 200
    email = ""
    if request.method == "POST":
        email = form_value("email")
        password = form_value("password")
        account_key, client_key = security.account_key(email), security.client_key()
        if security.blocked_until(account_key, client_key):
            security.audit("login.throttled", email_sha256=account_key.split(":")[1][:16])
            return render_template("login.html", error=THROTTLED, email=email, next_path=next_path), 429
        user = accounts().authenticate(email, password) if email and password else None
        if user is not None and user.mfa_enabled:
            clear_session()
            session["mfa_user_id"] = user.id
            session["mfa_started"] = int(time.time())
            session["mfa_next"] = next_path
            return redirect(url_for("auth.login_mfa"))
        if user is not None:
            return complete_login(user, next_path)
        locked = security.record_failure(account_key, "LOGIN_ACCOUNT_MAX_FAILURES")
        security.record_failure(client_key, "LOGIN_CLIENT_MAX_FAILURES")
        known = accounts().find_by_email(email) if email else None
        security.audit("login.failure", known.id if known else None, email_sha256=account_key.split(":")[1][:16])
        if locked:
            security.audit("login.lockout", known.id if known else None, until=locked)
        current_app.logger.info("login failed")
        error = LOGIN_FAILED
    return render_template("login.html", error=error, email=email, next_path=next_path), status


def verify_second_factor(user_id: int, code: str) -> str | None:
    """'totp' or 'recovery' when the code is right (each TOTP step and recovery code works once), else None."""
    code = (code or "").strip().replace(" ", "")
    secret = accounts().totp_secret(user_id)
    if not secret or not code:
        return None
    totp = pyotp.TOTP(secret)
    if code.isdigit() and len(code) == 6:
        now = time.time()
        for offset in (-1, 0, 1):
            step = totp.timecode(now) + offset
            if pyotp.utils.strings_equal(totp.generate_otp(step), code):
                return "totp" if accounts().accept_totp_step(user_id, step) else None
        return None
    return "recovery" if accounts().use_recovery_code(user_id, code) else None


@bp.route("/login/mfa", methods=["GET", "POST"])
def login_mfa():
    user_id = session.get("mfa_user_id")
    started = session.get("mfa_started", 0)
    if not user_id or time.time() - started > MFA_PENDING_SECONDS:
        clear_session()
        flash(gettext("Vuelve a ingresar tu correo y contraseña."), "info")
        return redirect(url_for("auth.login"))
    user = accounts().get_user(user_id)
    if user is None:
        abort(404)
    error = None
    if request.method == "POST":
        account_key = security.account_key(user.email)
        if security.blocked_until(account_key, security.client_key()):
            return render_template("mfa_login.html", error=THROTTLED), 429
        used = verify_second_factor(user.id, form_value("code"))
        if used:
            if used == "recovery":
                security.audit("mfa.recovery_code_used", user.id)
            return complete_login(user, session.get("mfa_next", ""))
        security.record_failure(account_key, "LOGIN_ACCOUNT_MAX_FAILURES")
        security.record_failure(security.client_key(), "LOGIN_CLIENT_MAX_FAILURES")
        security.audit("mfa.failure", user.id)
        error = MFA_FAILED
    return render_template("mfa_login.html", error=error)


@bp.post("/logout")
@login_required
def logout():
    security.end_current_session()
    security.audit("logout", current_user.id)
    logout_user()
    clear_session()
    flash(gettext("Cerraste tu sesión."), "info")
    return redirect(url_for("auth.login"))


# -- registration --------------------------------------------------------------------------------------------------


def latest_bill_total(customer_id: str) -> int | None:
    """`total_clp` of the customer's newest bill over all their supplies (the proof value asked at registration)."""
    newest = None
    for supply in read_model().supplies_for_customer(customer_id):
        for bill in read_model().bills(supply["supply_id"]):
            key = (bill["period_end"], bill["issue_date"] or "", bill["bill_id"])
            if newest is None or key > newest[0]:
                newest = (key, bill["total_clp"])
    return None if newest is None else newest[1]


def parse_pesos(text: str) -> int | None:
    digits = (text or "").strip().replace("$", "").replace(".", "").replace(" ", "")
    return int(digits) if digits.isdigit() and len(digits) <= 12 else None


def customer_holding(client_number: str, rut: str, bill_total: int) -> dict | None:
    """The customer when all three proofs match, else None."""
    wanted_rut = normalise_rut(rut)
    for customer in read_model().customers():
        if customer["client_number"] != client_number:
            continue
        if normalise_rut(customer.get("rut") or "") != wanted_rut:
            return None
        total = latest_bill_total(customer["customer_id"])
        return customer if total is not None and total == bill_total else None
    return None


@bp.route("/register", methods=["GET", "POST"])
def register():
    errors: dict[str, str] = {}
    values = {name: form_value(name) for name in ("client_number", "rut", "bill_total", "email")}
    if request.method == "POST":
        client_number = values["client_number"].strip()
        bill_total = parse_pesos(values["bill_total"])
        email = normalise_email(values["email"])
        # shape checks only: they say nothing about which customers exist
        if not (client_number.isdigit() and len(client_number) == 8):
            errors["client_number"] = gettext("El número de cliente tiene 8 dígitos.")
        if not valid_rut(values["rut"]):
            errors["rut"] = gettext("El RUT no es válido (revisa el dígito verificador).")
        if bill_total is None:
            errors["bill_total"] = gettext("Escribe el total a pagar de tu última boleta, en pesos.")
        if "@" not in email or len(email) > 254:
            errors["email"] = gettext("Escribe un correo electrónico válido.")
        if not errors:
            if not security.count_form_submission("register"):
                return render_template("register.html", errors={}, values=values, throttled=THROTTLED), 429
            customer = customer_holding(client_number, values["rut"], bill_total)
            if customer is not None:
                send_registration_mail(customer, email)
            else:
                security.audit("register.proof_failed", client_number=client_number)
            return render_template("message.html", title=gettext("Revisa tu correo"), message=REGISTRATION_SENT)
    return render_template("register.html", errors=errors, values=values, throttled=None)


def send_registration_mail(customer: dict, email: str) -> None:
    existing = accounts().find_by_email(email)
    if existing is not None:
        mail.send(email, "Ya tienes una cuenta en el portal de clientes",
                  "Alguien intentó registrar este correo, que ya tiene una cuenta en el portal de clientes.\n\n"
                  f"Si olvidaste tu contraseña, restablécela en {base_url()}{url_for('auth.forgot_password')}\n"
                  "Si no fuiste tú, puedes ignorar este mensaje.\n")
        security.audit("register.existing_email", existing.id)
        return
    hours = int(current_app.config["EMAIL_TOKEN_HOURS"])
    token = accounts().issue_token("verify_email", hours * 3600,
                                   payload={"customer_id": customer["customer_id"], "email": email})
    link = f"{base_url()}{url_for('auth.verify_email', token=token)}"
    mail.send(email, "Confirma tu correo para activar tu cuenta",
              f"Hola {customer.get('name') or ''}:\n\nPara terminar de crear tu cuenta en el portal de clientes, "
              f"abre este enlace y elige tu contraseña (vale {hours} horas y se usa una sola vez):\n\n{link}\n\n"
              "Si no fuiste tú, ignora este mensaje.\n")
    security.audit("register.mail_sent", customer_id=customer["customer_id"])


@bp.route("/register/verify/<token>", methods=["GET", "POST"])
def verify_email(token: str):
    pending = accounts().peek_token("verify_email", token)
    if pending is None:
        return render_template("message.html", title=LINK_INVALID_TITLE, message=LINK_INVALID), 404
    email, customer_id = pending["payload"]["email"], pending["payload"]["customer_id"]
    error = None
    if request.method == "POST":
        password = form_value("password")
        if password != form_value("password_confirm"):
            error = PASSWORDS_DIFFER
        else:
            try:
                password_hash = accounts().hash_password(password, personal_data(customer_id, email))
            except WeakPassword as problem:
                error = str(problem)
            else:
                if accounts().consume_token("verify_email", token) is None:
                    return render_template("message.html", title=LINK_INVALID_TITLE, message=LINK_INVALID), 404
                try:
                    user = accounts().create_user(email, None, customer_id, password_hash=password_hash)
                except DuplicateEmail:
                    return render_template("message.html", title=LINK_INVALID_TITLE, message=LINK_INVALID), 404
                security.audit("register.completed", user.id)
                flash(gettext("Tu cuenta está lista. Ya puedes iniciar sesión."), "info")
                return redirect(url_for("auth.login"))
    return render_template("set_password.html", title=gettext("Elige tu contraseña"), email=email, error=error)


# -- password reset and change -------------------------------------------------------------------------------------


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password():
    if request.method == "POST":
        email = normalise_email(form_value("email"))
        if not security.count_form_submission("reset"):
            return render_template("forgot.html", throttled=THROTTLED), 429
        user = accounts().find_by_email(email) if "@" in email else None
        if user is not None:
            minutes = int(current_app.config["RESET_TOKEN_MINUTES"])
            token = accounts().issue_token("reset_password", minutes * 60, user_id=user.id)
            link = f"{base_url()}{url_for('auth.reset_password', token=token)}"
            mail.send(user.email, "Restablece tu contraseña",
                      "Recibimos una solicitud para restablecer la contraseña de tu cuenta.\n\n"
                      f"Abre este enlace (vale {minutes} minutos y se usa una sola vez):\n\n{link}\n\n"
                      "Si no fuiste tú, ignora este mensaje: tu contraseña no cambia.\n")
            security.audit("password.reset_requested", user.id)
        return render_template("message.html", title=gettext("Revisa tu correo"), message=RESET_SENT)
    return render_template("forgot.html", throttled=None)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    pending = accounts().peek_token("reset_password", token)
    user = accounts().get_user(pending["user_id"]) if pending else None
    if user is None:
        return render_template("message.html", title=LINK_INVALID_TITLE, message=LINK_INVALID), 404
    error = None
    if request.method == "POST":
        password = form_value("password")
        if password != form_value("password_confirm"):
            error = PASSWORDS_DIFFER
        else:
            try:
                personal = personal_data(user.customer_id, user.email)
                accounts().hash_password(password, personal)
            except WeakPassword as problem:
                error = str(problem)
            else:
                if accounts().consume_token("reset_password", token) is None:
                    return render_template("message.html", title=LINK_INVALID_TITLE, message=LINK_INVALID), 404
                accounts().set_password(user.id, password, personal)
                ended = accounts().end_all_sessions(user.id)
                accounts().clear_failures(security.account_key(user.email))
                security.audit("password.reset", user.id, sessions_ended=ended)
                notify(user.email, "La contraseña de tu cuenta se restableció y cerramos todas tus sesiones.")
                flash(gettext("Cambiaste tu contraseña. Inicia sesión con la nueva."), "info")
                return redirect(url_for("auth.login"))
    return render_template("set_password.html", title=gettext("Elige una nueva contraseña"), email=user.email,
                           error=error)


@bp.route("/account")
@login_required
def account():
    return render_template(
        "account.html",
        sessions=len(accounts().list_sessions(current_user.id, security.idle_seconds(), security.absolute_seconds())),
        recovery_left=accounts().recovery_codes_left(current_user.id) if current_user.mfa_enabled else None,
    )


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    error = None
    if request.method == "POST":
        account_key = security.account_key(current_user.email)
        if security.blocked_until(account_key):
            return render_template("change_password.html", error=THROTTLED), 429
        password = form_value("password")
        if not accounts().check_password(current_user.id, form_value("current_password")):
            security.record_failure(account_key, "LOGIN_ACCOUNT_MAX_FAILURES")
            security.audit("password.change_failed", current_user.id)
            error = gettext("La contraseña actual no es correcta.")
        elif password != form_value("password_confirm"):
            error = PASSWORDS_DIFFER
        else:
            try:
                accounts().set_password(current_user.id, password,
                                        personal_data(current_user.customer_id, current_user.email))
            except WeakPassword as problem:
                error = str(problem)
            else:
                ended = accounts().end_all_sessions(current_user.id, except_token=session.get(security.SESSION_KEY))
                security.audit("password.changed", current_user.id, other_sessions_ended=ended)
                notify(current_user.email, "La contraseña de tu cuenta cambió.")
                flash(gettext("Cambiaste tu contraseña. Cerramos tus otras sesiones."), "info")
                return redirect(url_for("auth.account"))
    return render_template("change_password.html", error=error)


# -- sessions ------------------------------------------------------------------------------------------------------


@bp.get("/account/sessions")
@login_required
def sessions():
    rows = accounts().list_sessions(current_user.id, security.idle_seconds(), security.absolute_seconds())
    current = security.current_session_digest()
    for row in rows:
        row["current"] = row.pop("token_hash") == current
    return render_template("sessions.html", sessions=rows)


@bp.post("/account/sessions/<session_id>/end")
@login_required
def end_session(session_id: str):
    if not accounts().end_session_by_public_id(current_user.id, session_id):
        abort(404)
    security.audit("session.ended", current_user.id)
    flash(gettext("Cerramos esa sesión."), "info")
    return redirect(url_for("auth.sessions"))


# -- second factor -------------------------------------------------------------------------------------------------


@bp.get("/account/mfa")
@login_required
def mfa():
    secret = session.get("mfa_setup_secret")
    uri = pyotp.TOTP(secret).provisioning_uri(name=current_user.email, issuer_name="Portal de clientes") if secret else None
    return render_template("mfa.html", setup_secret=secret, setup_uri=uri, codes=None, error=None)


@bp.post("/account/mfa/setup")
@login_required
def mfa_setup():
    session["mfa_setup_secret"] = pyotp.random_base32()
    return redirect(url_for("auth.mfa"))


@bp.post("/account/mfa/enable")
@login_required
def mfa_enable():
    secret = session.get("mfa_setup_secret")
    if not secret:
        return redirect(url_for("auth.mfa"))
    if not pyotp.TOTP(secret).verify(form_value("code").strip(), valid_window=1):
        uri = pyotp.TOTP(secret).provisioning_uri(name=current_user.email, issuer_name="Portal de clientes")
        return render_template("mfa.html", setup_secret=secret, setup_uri=uri, codes=None, error=MFA_FAILED), 400
    codes = accounts().enable_totp(current_user.id, secret)
    session.pop("mfa_setup_secret", None)
    security.audit("mfa.enabled", current_user.id)
    notify(current_user.email, "Activaste la verificación en dos pasos en tu cuenta.")
    return render_template("mfa.html", setup_secret=None, setup_uri=None, codes=codes, error=None, enabled=True)


@bp.post("/account/mfa/disable")
@login_required
def mfa_disable():
    if not accounts().check_password(current_user.id, form_value("password")) or not verify_second_factor(
        current_user.id, form_value("code")
    ):
        security.audit("mfa.disable_failed", current_user.id)
        return render_template("mfa.html", setup_secret=None, setup_uri=None, codes=None,
                               error=gettext("La contraseña o el código no son correctos.")), 400
    accounts().disable_totp(current_user.id)
    security.audit("mfa.disabled", current_user.id)
    notify(current_user.email, "Desactivaste la verificación en dos pasos en tu cuenta.")
    flash(gettext("Desactivaste la verificación en dos pasos."), "info")
    return redirect(url_for("auth.account"))

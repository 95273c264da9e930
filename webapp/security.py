"""Security plumbing shared by the auth, sharing and API code: response headers, server-side sessions, throttling.

- Headers: a CSP without inline script, `object-src 'none'`, `base-uri 'none'`, `frame-ancestors 'none'`; HSTS in
  production; nosniff; a referrer policy; `Cache-Control: no-store` on everything but static assets.
- Sessions: the signed Flask cookie carries only the user id and a random session id; the session itself lives in
  the accounts store, so logout, idle timeout (15 min), absolute timeout (8 h) and "end this session" take effect
  on the server for every gunicorn worker, and a copied cookie stops working once its session ended.
- Throttling: failure counters per account and per client in the accounts store (shared by all workers), with
  exponential backoff once a threshold is reached.
"""

from __future__ import annotations

from flask import current_app, request, session

from webapp.accounts import AccountStore, digest, normalise_email

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"
SESSION_KEY = "sid"

DEFAULTS = {
    "SESSION_IDLE_MINUTES": 15,
    "SESSION_MAX_HOURS": 8,
    "LOGIN_ACCOUNT_MAX_FAILURES": 5,
    "LOGIN_CLIENT_MAX_FAILURES": 30,
    "LOGIN_FAILURE_WINDOW_SECONDS": 15 * 60,
    "LOGIN_BACKOFF_BASE_SECONDS": 30,
    "LOGIN_BACKOFF_MAX_SECONDS": 15 * 60,
    "FORM_CLIENT_MAX_PER_WINDOW": 10,  # registration and reset requests per client per window
    "MFA_REQUIRED": False,
    "PORTAL_PRODUCTION": False,
    "EMAIL_TOKEN_HOURS": 24,
    "RESET_TOKEN_MINUTES": 30,
}


def init_app(app) -> None:
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    if app.config["PORTAL_PRODUCTION"]:
        # __Host- cookies must be Secure, Path=/ and carry no Domain: the browser then refuses any other
        # origin's attempt to set them (ASVS 3.3.1)
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["SESSION_COOKIE_NAME"] = "__Host-session"
        app.config["SESSION_COOKIE_PATH"] = "/"
        app.config["SESSION_COOKIE_DOMAIN"] = None
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")

    @app.after_request
    def set_security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if app.config["PORTAL_PRODUCTION"]:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        # customer data must never land in shared or browser caches; static assets may be cached
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response


def accounts() -> AccountStore:
    return current_app.extensions["accounts"]


def client_ip() -> str:
    return request.remote_addr or "unknown"


def audit(event: str, user_id: int | None = None, **detail) -> None:
    accounts().audit(event, user_id=user_id, client_ip=client_ip(), **detail)


# -- sessions ------------------------------------------------------------------------------------------------------


def idle_seconds() -> int:
    return int(current_app.config["SESSION_IDLE_MINUTES"]) * 60


def absolute_seconds() -> int:
    return int(current_app.config["SESSION_MAX_HOURS"]) * 3600


def begin_session(user_id: int) -> None:
    """Record a new server-side session for the user just logged in (call after `session.clear()`)."""
    session[SESSION_KEY] = accounts().start_session(
        user_id, request.headers.get("User-Agent", ""), client_ip()
    )


def session_is_live(user_id: int) -> bool:
    return accounts().check_session(session.get(SESSION_KEY, ""), user_id, idle_seconds(), absolute_seconds())


def live_session_user(user_id: int | str):
    """The user named by the cookie while its server-side session is live (ended, idle or too old: None)."""
    return accounts().session_user(session.get(SESSION_KEY, ""), user_id, idle_seconds(), absolute_seconds())


def end_current_session() -> None:
    token = session.get(SESSION_KEY)
    if token:
        accounts().end_session(token)


def current_session_digest() -> str:
    return digest(session.get(SESSION_KEY, ""))


# -- throttling ----------------------------------------------------------------------------------------------------


def account_key(email: str) -> str:
    # keyed by the submitted address whether or not an account has it: unknown and known accounts behave alike
    return "account:" + digest(normalise_email(email))[:40]


def client_key(kind: str = "login") -> str:
    return f"client:{kind}:{client_ip()}"


def blocked_until(*keys: str) -> int:
    return accounts().blocked_until(list(keys))


def record_failure(key: str, threshold_setting: str) -> int:
    config = current_app.config
    return accounts().record_failure(
        key,
        int(config[threshold_setting]),
        int(config["LOGIN_FAILURE_WINDOW_SECONDS"]),
        int(config["LOGIN_BACKOFF_BASE_SECONDS"]),
        int(config["LOGIN_BACKOFF_MAX_SECONDS"]),
    )


def count_form_submission(kind: str) -> bool:
    """Count one registration/reset request from this client; False when the client is over its limit."""
    key = client_key(kind)
    if blocked_until(key):
        return False
    record_failure(key, "FORM_CLIENT_MAX_PER_WINDOW")
    return True

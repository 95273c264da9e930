"""Portal configuration from the environment: data directory, secret key, testing flag."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)


def load_or_create_secret_key(data_dir: Path) -> str:
    """The key in `data_dir/secret_key`, created once with mode 0600 so every gunicorn worker shares it.

    Creation is race-free across workers: each writes a private temp file and hard-links it into place; the
    link fails for all but the first, and the others read the winner's key.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    key_path = data_dir / "secret_key"
    if not key_path.exists():
        pending = data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(pending, key_path)
            log.info("created a new session secret key at %s", key_path)
        except FileExistsError:
            pass
        finally:
            pending.unlink()
    return key_path.read_text(encoding="ascii").strip()


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


SECURITY_TEXT_SETTINGS = ("DATABASE_URL", "PORTAL_BASE_URL", "MAIL_FROM", "MAIL_OUTBOX_DIR", "MAIL_SMTP_HOST",
                          "MAIL_SMTP_USER", "MAIL_SMTP_PASSWORD")
SECURITY_INT_SETTINGS = ("MAIL_SMTP_PORT", "SESSION_IDLE_MINUTES", "SESSION_MAX_HOURS", "LOGIN_ACCOUNT_MAX_FAILURES",
                         "LOGIN_CLIENT_MAX_FAILURES", "LOGIN_BACKOFF_BASE_SECONDS", "LOGIN_BACKOFF_MAX_SECONDS")
SECURITY_FLAG_SETTINGS = ("PORTAL_PRODUCTION", "MFA_REQUIRED", "MAIL_SMTP_STARTTLS")


class Config:
    """Settings read from the environment when the app is created (not at import time)."""

    def __init__(self, environ: dict | None = None):
        environ = os.environ if environ is None else environ
        self.AMI_DATA_DIR = Path(environ.get("AMI_DATA_DIR", "./var")).resolve()
        self.SECRET_KEY = environ.get("SECRET_KEY") or None
        self.TESTING = _flag(environ.get("TESTING"))
        self.SESSION_COOKIE_SECURE = _flag(environ.get("SESSION_COOKIE_SECURE"))
        # accounts and security (defaults in webapp.security.DEFAULTS; see docs/security.md)
        self.security = {name: environ[name] for name in SECURITY_TEXT_SETTINGS if environ.get(name)}
        self.security.update({name: int(environ[name]) for name in SECURITY_INT_SETTINGS if environ.get(name)})
        self.security.update({name: _flag(environ[name]) for name in SECURITY_FLAG_SETTINGS if environ.get(name)})

    def as_dict(self) -> dict:
        return {
            "AMI_DATA_DIR": self.AMI_DATA_DIR,
            "SECRET_KEY": self.SECRET_KEY,
            "TESTING": self.TESTING,
            "SESSION_COOKIE_SECURE": self.SESSION_COOKIE_SECURE,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            # A login form left open for hours must still work: tokens live as long as the session.
            "WTF_CSRF_TIME_LIMIT": None,
            **self.security,
        }

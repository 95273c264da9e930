"""The customer portal: Flask app factory wiring configuration, extensions, blueprints and error handlers.

`create_app` does no I/O against the read model: snapshots open lazily per worker thread on first use, so the
app is safe to create before or after gunicorn forks.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, request

from readmodel import ReadModel
from webapp import formatting
from webapp.accounts import AccountStore
from webapp.config import Config, load_or_create_secret_key
from webapp.extensions import csrf, login_manager

from webapp.security import CONTENT_SECURITY_POLICY  # noqa: F401 - headers are set in webapp.security


def create_app(config: dict | None = None) -> Flask:
    """Build the portal. `config` overrides values read from the environment (tests pass their own)."""
    app = Flask(__name__)
    app.json.sort_keys = False  # keep the contract's field order in API answers
    app.config.update(Config().as_dict())
    if config:
        app.config.update(config)

    data_dir = Path(app.config["AMI_DATA_DIR"])
    app.config.setdefault("READMODEL_DIR", data_dir / "readmodel")
    app.config.setdefault("ACCOUNTS_DB", data_dir / "accounts.sqlite")
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_or_create_secret_key(data_dir)

    app.extensions["read_model"] = ReadModel(Path(app.config["READMODEL_DIR"]))
    database_url = app.config.get("DATABASE_URL") or ""
    accounts = AccountStore(database_url if database_url.startswith("postgres") else Path(app.config["ACCOUNTS_DB"]))
    accounts.initialize()
    app.extensions["accounts"] = accounts

    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = "strong"
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Inicia sesión para continuar."
    login_manager.login_message_category = "info"
    formatting.register(app)
    from webapp import i18n

    i18n.init_app(app)

    from webapp import api, auth, errors, health, portal

    app.register_blueprint(health.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(portal.bp)
    app.register_blueprint(api.bp)
    from webapp import exports

    app.register_blueprint(exports.bp)
    from webapp import live

    app.register_blueprint(live.bp)
    from webapp import data_export

    app.register_blueprint(data_export.bp)
    errors.register(app)

    from webapp import access, security, sharing

    app.register_blueprint(sharing.bp)
    security.init_app(app)  # headers, cookie flags, session and throttling settings
    access.init_app(app)  # third-party grants see only what they cover

    return app

"""Flask extensions, created unbound and attached to the app in `create_app` (init_app)."""

from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

login_manager = LoginManager()
csrf = CSRFProtect()

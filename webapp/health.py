"""Liveness and readiness probes for load balancers and process supervisors."""

from flask import Blueprint, current_app

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: answers without touching any store (also the baseline for benchmarks)."""
    return "ok", 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.get("/readyz")
def readyz():
    """Readiness: the read model has a published snapshot and the accounts store answers."""
    read_model_ok = current_app.extensions["read_model"].healthy()
    accounts_ok = current_app.extensions["accounts"].healthy()
    body = f"read_model: {'ok' if read_model_ok else 'unavailable'}\naccounts: {'ok' if accounts_ok else 'unavailable'}\n"
    status = 200 if read_model_ok and accounts_ok else 503
    return body, status, {"Content-Type": "text/plain; charset=utf-8"}

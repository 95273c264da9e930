"""Who may see what: ownership checks for the pages and the API, and third parties' read-only bearer grants.

Anything that is not the caller's answers 404, exactly like something that does not exist. A customer's grant
(see webapp.sharing) is a bearer token that works only on GET endpoints of the read-only JSON API listed in
`GRANT_ENDPOINTS`, only for the supplies, data kinds and period it names, and only while it is neither revoked nor
expired: the grant is read from the accounts store on every request, so revocation counts from the next one.
"""

from __future__ import annotations

import dataclasses
from datetime import date

from flask import abort, current_app, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from webapp.extensions import login_manager

# endpoint -> the data kind a grant must include (None: listing the granted supplies themselves)
GRANT_ENDPOINTS = {
    "api.supplies": None,
    "api.consumption": "consumption",
    "api.bills": "bills",
    "api.bill": "bills",
}
GRANT_KINDS = {"consumption": _l("Consumo"), "bills": _l("Boletas")}


def read_model():
    return current_app.extensions["read_model"]


def active_grant() -> dict | None:
    return getattr(current_user, "grant", None) if current_user.is_authenticated else None


@login_manager.request_loader
def load_user_from_bearer_token(req):
    """A third party's grant as the caller, only on the read-only API endpoints it may use."""
    header = req.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or req.method != "GET" or req.endpoint not in GRANT_ENDPOINTS:
        return None
    accounts = current_app.extensions["accounts"]
    grant = accounts.active_grant_for_token(header[len("Bearer "):].strip())
    if grant is None:
        return None
    owner = accounts.get_user(grant["user_id"])
    if owner is None:
        return None
    return dataclasses.replace(owner, grant=grant)


def _check_grant(supply_id: str) -> None:
    grant = active_grant()
    if grant is None:
        return
    kind = GRANT_ENDPOINTS.get(request.endpoint, "not-allowed")
    if supply_id not in grant["supply_ids"] or (kind is not None and kind not in grant["kinds"]):
        abort(404)
    if request.endpoint == "api.consumption":
        # the third party must ask within the granted period, explicitly
        try:
            first = date.fromisoformat(request.args.get("from", ""))
            last = date.fromisoformat(request.args.get("to", ""))
        except ValueError:
            abort(403)
        if first < date.fromisoformat(grant["from"]) or last > date.fromisoformat(grant["to"]):
            abort(403)


def bill_within_grant(bill: dict) -> bool:
    grant = active_grant()
    if grant is None:
        return True
    return str(bill["period_start"]) >= grant["from"] and str(bill["period_end"]) <= grant["to"]


def owned_supply_or_404(supply_id: str) -> dict:
    supply = read_model().supply(supply_id)
    if supply is None or supply["customer_id"] != current_user.customer_id:
        abort(404)
    _check_grant(supply_id)
    return supply


def owned_bill_or_404(supply_id: str, bill_id: str) -> dict:
    owned_supply_or_404(supply_id)
    bill = read_model().bill(supply_id, bill_id)
    if bill is None or not bill_within_grant(bill):
        abort(404)
    return bill


def init_app(app) -> None:
    @app.after_request
    def narrow_lists_to_the_grant(response):
        """Lists answered to a grant holder keep only what the grant covers (supplies, bills in its period)."""
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return response  # only bearer requests can carry a grant; skip loading the user otherwise
        grant = active_grant()
        if grant is None or response.status_code != 200 or not response.is_json:
            return response
        body = response.get_json()
        if not isinstance(body, list):
            return response
        if request.endpoint == "api.supplies":
            body = [row for row in body if row.get("supply_id") in grant["supply_ids"]]
        elif request.endpoint == "api.bills":
            body = [row for row in body if bill_within_grant(row)]
        response.set_data(app.json.dumps(body))
        return response

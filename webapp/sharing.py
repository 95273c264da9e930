"""Optional third-party sharing (Green Button Connect style): grant, list and revoke, as pages and as JSON.

A grant names a third party, some of the customer's supplies, data kinds (consumption, bills) and a data period of
at most 12 months; it expires 12 months after it is made and can be revoked at any time. Its bearer token is shown
once, stored only as a digest, and works only on the read-only JSON API (see webapp.access). Nothing in the portal
depends on having a grant: sharing is never a condition for registering, logging in or seeing one's data.
"""

from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user, login_required

from readmodel.timeutil import add_months, local_today
from webapp import security
from webapp.access import GRANT_KINDS, read_model

bp = Blueprint("sharing", __name__)

MAX_MONTHS = 12
GRANT_LIFETIME_SECONDS = 365 * 24 * 3600


def N_(message: str) -> str:
    """Marks a text for the catalog; it is translated where it is shown."""
    return message


class GrantError(ValueError):
    """A refused grant: `message` in Spanish (the JSON API's language), `translated()` in the page's language."""

    def __init__(self, message: str, field: str, **values):
        self.message = message % values if values else message
        super().__init__(self.message)
        self.field = field
        self.template, self.values = message, values

    def translated(self) -> str:
        return gettext(self.template, **self.values)


def own_supply_ids() -> list[str]:
    return [supply["supply_id"] for supply in read_model().supplies_for_customer(current_user.customer_id)]


def validate_grant(third_party: str, supply_ids: list[str], kinds: list[str], data_from: str, data_to: str
                   ) -> tuple[str, list[str], list[str], date, date]:
    third_party = (third_party or "").strip()
    if not 1 <= len(third_party) <= 100:
        raise GrantError(N_("Escribe el nombre del tercero (hasta 100 caracteres)."), "third_party")
    owned = own_supply_ids()
    supply_ids = sorted(set(supply_ids or []))
    if not supply_ids:
        raise GrantError(N_("Elige al menos un suministro."), "supply_ids")
    if any(supply_id not in owned for supply_id in supply_ids):
        abort(404)  # someone else's supply: like one that does not exist
    kinds = sorted(set(kinds or []))
    if not kinds or any(kind not in GRANT_KINDS for kind in kinds):
        raise GrantError(N_("Elige qué datos compartir: consumo, boletas o ambos."), "kinds")
    try:
        first, last = date.fromisoformat(data_from or ""), date.fromisoformat(data_to or "")
    except ValueError:
        raise GrantError(N_("Las fechas deben tener el formato AAAA-MM-DD."), "from") from None
    if first >= last:
        raise GrantError(N_("La fecha de inicio debe ser anterior a la de término."), "from")
    if last > add_months(first, MAX_MONTHS):
        raise GrantError(N_("El período compartido puede ser de hasta %(months)s meses."), "to", months=MAX_MONTHS)
    return third_party, supply_ids, kinds, first, last


def create(third_party, supply_ids, kinds, data_from, data_to) -> tuple[dict, str]:
    third_party, supply_ids, kinds, first, last = validate_grant(third_party, supply_ids, kinds, data_from, data_to)
    store = security.accounts()
    grant, token = store.create_grant(current_user, third_party, supply_ids, kinds, first.isoformat(),
                                      last.isoformat(), store.now() + GRANT_LIFETIME_SECONDS)
    security.audit("grant.created", current_user.id, grant_id=grant["grant_id"], third_party=third_party,
                   supply_ids=supply_ids, kinds=kinds, data_from=grant["from"], data_to=grant["to"])
    return grant, token


def revoke(grant_id: str) -> None:
    if not security.accounts().revoke_grant(current_user.id, grant_id):
        abort(404)
    security.audit("grant.revoked", current_user.id, grant_id=grant_id)


def public(grant: dict) -> dict:
    return {key: grant[key] for key in ("grant_id", "third_party", "supply_ids", "kinds", "from", "to",
                                        "created_at", "expires_at", "revoked_at", "active")}


def page(status: int = 200, **context):
    today = local_today()
    defaults = {"from": add_months(today, -MAX_MONTHS).isoformat(), "to": (today + timedelta(days=1)).isoformat()}
    return render_template(
        "sharing.html",
        grants=security.accounts().list_grants(current_user.id),
        supplies=read_model().supplies_for_customer(current_user.customer_id),
        kinds=GRANT_KINDS,
        defaults=defaults,
        **{"error": None, "new_token": None, "new_grant": None, **context},
    ), status


@bp.route("/sharing", methods=["GET", "POST"])
@login_required
def sharing():
    if request.method == "GET":
        return page()
    form = request.form
    try:
        grant, token = create(form.get("third_party", "")[:200], form.getlist("supply_ids"), form.getlist("kinds"),
                              form.get("from", ""), form.get("to", ""))
    except GrantError as error:
        return page(400, error=error.translated())
    return page(201, new_token=token, new_grant=grant)


@bp.post("/sharing/<grant_id>/revoke")
@login_required
def revoke_page(grant_id: str):
    revoke(grant_id)
    return redirect(url_for("sharing.sharing"))


@bp.get("/api/v1/grants")
@login_required
def list_grants_api():
    return jsonify([public(grant) for grant in security.accounts().list_grants(current_user.id)])


@bp.post("/api/v1/grants")
@login_required
def create_grant_api():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error="El cuerpo debe ser un objeto JSON.", field=None), 400
    try:
        grant, token = create(str(body.get("third_party", ""))[:200], list(body.get("supply_ids") or []),
                              list(body.get("kinds") or []), str(body.get("from", "")), str(body.get("to", "")))
    except GrantError as error:
        return jsonify(error=error.message, field=error.field), 400
    return jsonify({**public(grant), "token": token}), 201


@bp.delete("/api/v1/grants/<grant_id>")
@login_required
def revoke_grant_api(grant_id: str):
    revoke(grant_id)
    return "", 204

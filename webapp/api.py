"""JSON API under /api/v1: the caller's supplies, consumption series (kWh and pesos), bills with what changed
since the previous one, the forecast of the open billing period, and the tariff schedule.

Answers 401 JSON when not logged in (never a redirect), 404 JSON for anything not the caller's, and 400 JSON
`{"error", "field"}` for invalid parameters. Error texts are Spanish: customers' browsers show them.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import orjson
from flask import Blueprint, current_app, jsonify, request, url_for
from flask_login import current_user, login_required

from readmodel import FLOWS, GRANULARITIES
from readmodel.billing import bill_changes, forecast
from readmodel.timeutil import add_months, local_today
from webapp.access import owned_bill_or_404, owned_supply_or_404, read_model

bp = Blueprint("api", __name__, url_prefix="/api/v1")

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_DAYS = {"15min": 31, "hour": 92, "day": 800}
MAX_YEARS_MONTHLY = 10
MONTHLY_GRANULARITIES = ("month", "billing_period")
EARLIEST_DATE, LATEST_DATE = date(2000, 1, 1), date(2099, 12, 31)
# Without `from`, the window ends at `to` and reaches back as far as is useful for the granularity.
DEFAULT_LOOKBACK_MONTHS = {"day": 13, "month": 13, "billing_period": 13}
DEFAULT_LOOKBACK_DAYS = {"15min": 1, "hour": 7}
SUPPLY_FIELDS = (
    "supply_id", "usage_point_mrid", "meter_mrid", "address", "comuna", "tariff", "status", "has_solar",
    "data_from", "data_until",
)


class BadParameter(ValueError):
    def __init__(self, message: str, field: str | None):
        super().__init__(message)
        self.message = message
        self.field = field


@bp.errorhandler(BadParameter)
def bad_parameter(error: BadParameter):
    return jsonify(error=error.message, field=error.field), 400


def parse_date(name: str, default: date) -> date:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not ISO_DATE.match(raw):
        raise BadParameter(f"La fecha '{name}' debe tener el formato AAAA-MM-DD.", name)
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise BadParameter(f"La fecha '{name}' no existe.", name) from None
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise BadParameter(
            f"La fecha '{name}' debe estar entre {EARLIEST_DATE.isoformat()} y {LATEST_DATE.isoformat()}.", name)
    return value


def window_too_large(granularity: str, from_date: date, to_date: date) -> str | None:
    if granularity in MONTHLY_GRANULARITIES:
        if to_date > add_months(from_date, 12 * MAX_YEARS_MONTHLY):
            return f"El rango máximo para la granularidad '{granularity}' es de {MAX_YEARS_MONTHLY} años."
        return None
    limit = MAX_DAYS[granularity]
    if (to_date - from_date).days > limit:
        return f"El rango máximo para la granularidad '{granularity}' es de {limit} días."
    return None


def json_answer(value):
    """`jsonify` for answers made only of plain JSON values (str, int, float, bool, None, lists, dicts), encoded
    by orjson: several times faster on a long series. The same bytes for ASCII text (non-ASCII goes out as UTF-8
    rather than \\u escapes: the same JSON)."""
    return current_app.response_class(orjson.dumps(value) + b"\n", mimetype=current_app.json.mimetype)


def supply_summary(supply: dict) -> dict:
    summary = {field: supply.get(field) for field in SUPPLY_FIELDS}
    summary["links"] = {
        "self": url_for("portal.supply", supply_id=supply["supply_id"]),
        "consumption": url_for("api.consumption", supply_id=supply["supply_id"]),
        "bills": url_for("api.bills", supply_id=supply["supply_id"]),
        "forecast": url_for("api.bill_forecast", supply_id=supply["supply_id"]),
    }
    return summary


@bp.get("/supplies")
@login_required
def supplies():
    rows = read_model().supplies_for_customer(current_user.customer_id)
    return jsonify([supply_summary(row) for row in rows])


@bp.get("/supplies/<supply_id>/consumption")
@login_required
def consumption(supply_id: str):
    supply = owned_supply_or_404(supply_id)
    granularity = request.args.get("granularity") or "day"
    if granularity not in GRANULARITIES:
        raise BadParameter(f"Granularidad desconocida; usa una de: {', '.join(GRANULARITIES)}.", "granularity")
    flow = request.args.get("flow") or "delivered"
    if flow not in FLOWS:
        raise BadParameter(f"Flujo desconocido; usa uno de: {', '.join(FLOWS)}.", "flow")
    tomorrow = local_today() + timedelta(days=1)
    to_date = parse_date("to", tomorrow)
    if granularity in DEFAULT_LOOKBACK_MONTHS:
        default_from = add_months(to_date, -DEFAULT_LOOKBACK_MONTHS[granularity])
    else:
        default_from = to_date - timedelta(days=DEFAULT_LOOKBACK_DAYS[granularity])
    from_date = parse_date("from", default_from)
    if from_date >= to_date:
        raise BadParameter("'from' debe ser anterior a 'to'.", "from")
    too_large = window_too_large(granularity, from_date, to_date)
    if too_large:
        raise BadParameter(too_large, "to")
    return json_answer(read_model().consumption(supply_id, granularity, from_date, to_date, flow, supply=supply))


@bp.get("/supplies/<supply_id>/bills")
@login_required
def bills(supply_id: str):
    owned_supply_or_404(supply_id)
    rows = read_model().bills(supply_id)
    for row in rows:
        row["links"] = {"self": url_for("api.bill", supply_id=supply_id, bill_id=row["bill_id"])}
    return jsonify(rows)


@bp.get("/supplies/<supply_id>/bills/<bill_id>")
@login_required
def bill(supply_id: str, bill_id: str):
    """One bill with its lines and `changes_from_previous` (null for the first bill)."""
    found = owned_bill_or_404(supply_id, bill_id)
    found["changes_from_previous"] = bill_changes(read_model(), supply_id, found)
    found["links"] = {"pdf": url_for("portal.bill_pdf", supply_id=supply_id, bill_id=bill_id)}
    return jsonify(found)


@bp.get("/supplies/<supply_id>/forecast")
@login_required
def bill_forecast(supply_id: str):
    """The forecast of the open billing period's bill (see readmodel.billing for the rule)."""
    supply = owned_supply_or_404(supply_id)
    return jsonify(forecast(read_model(), supply))


@bp.get("/supplies/<supply_id>/tariffs")
@login_required
def tariffs(supply_id: str):
    """The schedule of the supply's tariff, oldest first ([] while the read model has none)."""
    supply = owned_supply_or_404(supply_id)
    return jsonify(read_model().tariffs(supply.get("tariff")))


@bp.get("/openapi.json")
def openapi():
    """The API description (public: it holds no customer data)."""
    from webapp.openapi import OPENAPI

    return jsonify(OPENAPI)

"""A supply's interval data for a date range, as a download: CSV (for spreadsheets) and Green Button XML (ESPI 4.0).

- `GET /api/v1/supplies/<supply_id>/export.csv?from=YYYY-MM-DD&to=YYYY-MM-DD`
- `GET /api/v1/supplies/<supply_id>/export/greenbutton.xml?from=YYYY-MM-DD&to=YYYY-MM-DD`

`from` is inclusive and `to` exclusive, local dates in America/Santiago (an interval belongs to the window when
its END lies in (local midnight of `from`, local midnight of `to`]); defaults are the last 31 days up to today.
At most `MAX_DAYS` days per download. A supply that is not the caller's answers 404 exactly like a missing one;
every answer is `Cache-Control: no-store`.

CSV: UTF-8, `;` as separator and `,` as decimal mark (what a spreadsheet set to Spanish (Chile) opens
directly), one row per stored interval, columns `inicio;fin;zona;flujo;kwh;calidad`: start and end as ISO 8601
with the local offset, the zone name, the flow (`consumo` delivered, `inyeccion` received from the customer,
`neto`), energy in kWh (empty when missing) and the quality (`real`, `estimada`, `editada`, `faltante`).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, jsonify
from flask_login import login_required

from cim_ingest.greenbutton import ExportBill, ExportInterval, ExportSupply, iter_green_button_feed
from readmodel.timeutil import local_midnight_utc, local_today
from webapp.access import owned_supply_or_404, read_model
from webapp.api import BadParameter, parse_date

bp = Blueprint("exports", __name__, url_prefix="/api/v1")

SANTIAGO = ZoneInfo("America/Santiago")
ZONE_NAME = "America/Santiago"
MAX_DAYS = 400
DEFAULT_DAYS = 31
FLOW_LABELS = {"delivered": "consumo", "received": "inyeccion", "net": "neto"}
QUALITY_LABELS = {"actual": "real", "estimated": "estimada", "edited": "editada", "missing": "faltante"}
CSV_HEADER = ("inicio", "fin", "zona", "flujo", "kwh", "calidad")
CSV_SEPARATOR = ";"


@bp.errorhandler(BadParameter)
def bad_parameter(error: BadParameter):
    return jsonify(error=error.message, field=error.field), 400


def _window() -> tuple[dt.date, dt.date]:
    to_date = parse_date("to", local_today() + dt.timedelta(days=1))
    from_date = parse_date("from", to_date - dt.timedelta(days=DEFAULT_DAYS))
    if from_date >= to_date:
        raise BadParameter("'from' debe ser anterior a 'to'.", "from")
    if (to_date - from_date).days > MAX_DAYS:
        raise BadParameter(f"El rango máximo de una descarga es de {MAX_DAYS} días.", "to")
    return from_date, to_date


def _intervals(supply_id: str, from_date: dt.date, to_date: dt.date) -> list[tuple]:
    """(flow, interval_end UTC, interval_seconds, kwh, quality) of the window, by flow then time."""
    rows = read_model()._rows(
        "SELECT flow, interval_end, interval_seconds, kwh, quality FROM intervals "
        "WHERE supply_id = ? AND interval_end > ? AND interval_end <= ? ORDER BY flow, interval_end",
        [supply_id, local_midnight_utc(from_date), local_midnight_utc(to_date)],
    )
    return [
        (flow, end.astimezone(dt.timezone.utc), int(seconds), kwh, quality)
        for flow, end, seconds, kwh, quality in rows
    ]


def kwh_text(kwh: float | None) -> str:
    """kWh with a decimal comma, exact to the Wh (three decimals) and up to six when the value has them."""
    if kwh is None:
        return ""
    text = f"{kwh:.6f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole},{decimals.ljust(3, '0')}"


def _download(body, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/supplies/<supply_id>/export.csv")
@login_required
def export_csv(supply_id: str):
    owned_supply_or_404(supply_id)
    from_date, to_date = _window()
    lines = [CSV_SEPARATOR.join(CSV_HEADER)]
    flow_order = {flow: index for index, flow in enumerate(FLOW_LABELS)}
    rows = sorted(_intervals(supply_id, from_date, to_date), key=lambda row: (flow_order.get(row[0], 9), row[1]))
    for flow, end, seconds, kwh, quality in rows:
        local_end = end.astimezone(SANTIAGO)
        local_start = (end - dt.timedelta(seconds=seconds)).astimezone(SANTIAGO)
        lines.append(
            CSV_SEPARATOR.join(
                (
                    local_start.isoformat(),
                    local_end.isoformat(),
                    ZONE_NAME,
                    FLOW_LABELS.get(flow, flow),
                    kwh_text(kwh),
                    QUALITY_LABELS.get(quality, quality),
                )
            )
        )
    body = "\r\n".join(lines) + "\r\n"
    return _download(body, "text/csv", f"consumo-{supply_id}-{from_date}-{to_date}.csv")


@bp.get("/supplies/<supply_id>/export/greenbutton.xml")
@login_required
def export_green_button(supply_id: str):
    supply = owned_supply_or_404(supply_id)
    from_date, to_date = _window()
    by_flow: dict[str, list[ExportInterval]] = {}
    for flow, end, seconds, kwh, quality in _intervals(supply_id, from_date, to_date):
        by_flow.setdefault(flow, []).append(ExportInterval(end, seconds, kwh, quality))
    bills = []
    for bill in read_model().bills(supply_id):
        start, end = dt.date.fromisoformat(str(bill["period_start"])), dt.date.fromisoformat(str(bill["period_end"]))
        if start >= to_date or end <= from_date:
            continue
        detail = read_model().bill(supply_id, bill["bill_id"]) or {}
        bills.append(
            ExportBill(
                bill_id=bill["bill_id"],
                period_start=start,
                period_end=end,
                issue_date=dt.date.fromisoformat(str(bill["issue_date"])) if bill.get("issue_date") else None,
                kwh=bill.get("kwh"),
                total_clp=int(bill["total_clp"]),
                lines=[(line["description"] or line["code"], int(line["amount_clp"])) for line in
                       detail.get("lines", []) if line.get("amount_clp") is not None],
            )
        )
    feed = iter_green_button_feed(
        ExportSupply(
            supply_id=supply_id,
            customer_id=supply["customer_id"],
            usage_point_mrid=supply["usage_point_mrid"],
            address=supply.get("address"),
        ),
        by_flow,
        sorted(bills, key=lambda b: b.period_start),
        from_date,
        to_date - dt.timedelta(days=1),
    )
    return _download(b"".join(feed), "application/atom+xml", f"greenbutton-{supply_id}-{from_date}-{to_date}.xml")

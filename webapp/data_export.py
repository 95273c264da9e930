""""All my data": one zip with the customer's account, supplies, every reading and every bill, for the legal right
of access and portability (Ley 19.628 / Ley 21.719). Machine-readable files: CSV (RFC 4180, comma separator, dot
decimal mark, UTF-8, header row) and JSON; instants ISO 8601 with the America/Santiago offset.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime

from flask import Blueprint, Response, abort, current_app
from flask_login import current_user, login_required

from webapp.access import read_model

bp = Blueprint("data_export", __name__)

README = """Tus datos del portal de clientes / Your data from the customer portal

account.json            tu cuenta y tus datos de cliente / your account and customer record
supplies.csv            tus suministros / your supplies
readings/<id>-intervals.csv   lecturas cada 15 minutos (kWh) / 15-minute readings (kWh)
readings/<id>-daily.csv       totales diarios por fecha local / daily totals per local date
bills.csv, bill_lines.csv     boletas y su detalle (pesos enteros) / bills and their lines (whole pesos)
tariffs.csv             tarifas aplicadas (sin IVA) / tariffs applied (without VAT), when published

Formato / format: CSV RFC 4180, separador coma (,), punto decimal (.), UTF-8, con encabezado.
Horas en ISO 8601 con el desfase de America/Santiago; fechas locales AAAA-MM-DD.
flow: delivered (consumo de la red / from the grid), received (inyección solar / solar export).
quality: actual (real), estimated (estimado), edited (editado), missing (sin dato).
period_end de las boletas es exclusivo / bills' period_end is exclusive.
"""


def _csv_bytes(header: list[str], rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def build_export(customer_id: str, email: str) -> bytes:
    """The zip's bytes for one customer (only their own supplies and bills)."""
    model = read_model()
    supplies = model.supplies_for_customer(customer_id)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("README.txt", README)
        account = {
            "email": email,
            "customer": model.customer(customer_id),
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "data_published_at": model.as_of(),
            "supply_ids": [supply["supply_id"] for supply in supplies],
        }
        zipped.writestr("account.json", json.dumps(account, ensure_ascii=False, indent=2))
        supply_columns = ["supply_id", "usage_point_mrid", "meter_mrid", "address", "comuna", "tariff", "status",
                          "has_solar", "data_from", "data_until"]
        zipped.writestr("supplies.csv", _csv_bytes(
            supply_columns, ([supply.get(column) for column in supply_columns] for supply in supplies)))
        bill_rows, line_rows, bill_columns = [], [], None
        line_columns = ["bill_id", "line_no", "code", "description", "quantity", "unit", "unit_price_clp",
                        "amount_clp"]
        tariffs_seen: set[str] = set()
        for supply in supplies:
            supply_id = supply["supply_id"]
            zipped.writestr(f"readings/{supply_id}-intervals.csv", _csv_bytes(
                ["flow", "interval_end", "interval_seconds", "kwh", "quality"], model.interval_rows(supply_id)))
            zipped.writestr(f"readings/{supply_id}-daily.csv", _csv_bytes(
                ["flow", "local_date", "kwh", "intervals", "expected_intervals", "quality"],
                model.daily_rows(supply_id)))
            for summary in model.bills(supply_id):
                bill = model.bill(supply_id, summary["bill_id"])
                lines = bill.pop("lines")
                bill_columns = bill_columns or list(bill)
                bill_rows.append([bill.get(column) for column in bill_columns])
                line_rows.extend([bill["bill_id"], *[line.get(column) for column in line_columns[1:]]]
                                 for line in lines)
            if supply.get("tariff"):
                tariffs_seen.add(supply["tariff"])
        zipped.writestr("bills.csv", _csv_bytes(bill_columns or ["bill_id"], bill_rows))
        zipped.writestr("bill_lines.csv", _csv_bytes(line_columns, line_rows))
        tariff_rows = [row for name in sorted(tariffs_seen) for row in model.tariffs(name)]
        if tariff_rows:
            columns = list(tariff_rows[0])
            zipped.writestr("tariffs.csv", _csv_bytes(columns, ([row[c] for c in columns] for row in tariff_rows)))
    return archive.getvalue()


@bp.get("/account/export.zip")
@login_required
def export_all():
    """The logged-in customer's own data (a third party's delegated access never reaches it)."""
    if getattr(current_user, "grant", None):
        abort(404)
    body = build_export(current_user.customer_id, current_user.email)
    current_app.logger.info("data export for customer %s (%d bytes)", current_user.customer_id, len(body))
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Response(body, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="mis-datos-{current_user.customer_id}-{stamp}.zip"'})

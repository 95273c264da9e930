"""Display formats for templates. Spanish (es-CL, the default): dates dd-mm-aaaa, pesos $12.345, kWh with a
decimal comma (1.234,50). English: the same dates, pesos $12,345 and 1,234.50."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from flask import has_request_context
from flask_babel import lazy_gettext as _l

from readmodel.timeutil import SANTIAGO

BILL_STATUS_LABELS = {"paid": _l("pagado"), "unpaid": _l("pendiente")}
SUPPLY_STATUS_LABELS = {"connected": _l("conectado"), "disconnected": _l("desconectado"), "active": _l("activo")}
QUALITY_LABELS = {"actual": _l("real"), "estimated": _l("estimado"), "edited": _l("editado"),
                  "missing": _l("sin dato")}


def _english() -> bool:
    if not has_request_context():
        return False
    from webapp.i18n import current_language

    return current_language() == "en"


def _as_date(value) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def format_date(value) -> str:
    day = _as_date(value)
    return day.strftime("%d-%m-%Y") if day else "—"


def format_last_day(value) -> str:
    """An exclusive end date shown as the last day it includes (billing periods end the day before)."""
    day = _as_date(value)
    return (day - timedelta(days=1)).strftime("%d-%m-%Y") if day else "—"


def format_local_datetime(value) -> str:
    if not value:
        return "—"
    instant = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return instant.astimezone(SANTIAGO).strftime("%d-%m-%Y %H:%M")


def _group_thousands(integer_text: str) -> str:
    grouped = f"{int(integer_text):,}"
    return grouped if _english() else grouped.replace(",", ".")


def format_clp(value) -> str:
    if value is None:
        return "—"
    amount = int(round(value))
    sign = "-" if amount < 0 else ""
    return f"{sign}${_group_thousands(str(abs(amount)))}"


def format_number(value, decimals: int = 2) -> str:
    """1234.5 -> '1.234,50' (es-CL: dot groups thousands, comma separates decimals)."""
    if value is None:
        return "—"
    text = f"{abs(float(value)):,.{decimals}f}"
    integer_part, _, fraction = text.partition(".")
    integer_part = integer_part.replace(",", ".")
    sign = "-" if float(value) < 0 and float(text.replace(",", "")) != 0 else ""
    if _english():
        integer_part = integer_part.replace(".", ",")
        return f"{sign}{integer_part}.{fraction}" if decimals else f"{sign}{integer_part}"
    return f"{sign}{integer_part},{fraction}" if decimals else f"{sign}{integer_part}"


def bill_status_label(status: str) -> str:
    return BILL_STATUS_LABELS.get(status, status)


def supply_status_label(status: str) -> str:
    return SUPPLY_STATUS_LABELS.get(status, status)


def quality_label(quality: str) -> str:
    return QUALITY_LABELS.get(quality, quality)


def format_signed_number(value, decimals: int = 1) -> str:
    """+12,5 / -3,0: a change, always with its sign."""
    if value is None:
        return "—"
    return ("+" if float(value) > 0 else "") + format_number(value, decimals)


def format_signed_clp(value) -> str:
    if value is None:
        return "—"
    return ("+" if int(value) > 0 else "") + format_clp(value)


def register(app) -> None:
    app.jinja_env.filters.update(
        date_cl=format_date,
        last_day_cl=format_last_day,
        datetime_cl=format_local_datetime,
        clp=format_clp,
        number_cl=format_number,
        bill_status=bill_status_label,
        supply_status=supply_status_label,
        quality=quality_label,
        signed_cl=format_signed_number,
        signed_clp=format_signed_clp,
    )

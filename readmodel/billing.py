"""Bill explanations for customers, computed from the read model: what changed since the previous bill, and a
forecast of the bill of the period being read now.

Forecast rule (stated to customers as is): once at least `FORECAST_MIN_DAYS` days of the open billing period have
complete readings, the period's energy is projected as (kWh of the complete days / number of complete days) x days
in the period, priced like a bill (fixed monthly charge + energy at the tariff in force on the period's last day,
minus the solar injection credit capped at the energy charge, plus IVA 19%). Before that, no forecast is shown.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from readmodel.model import IVA_RATE, ReadModel
from readmodel.timeutil import SANTIAGO, local_today

FORECAST_MIN_DAYS = 10


def last_data_day(supply: dict) -> date:
    """The local date of the newest data (data_until is an exclusive instant), or today without data."""
    if not supply.get("data_until"):
        return local_today()
    until = datetime.fromisoformat(supply["data_until"]).astimezone(SANTIAGO)
    return (until - timedelta(microseconds=1)).date()


def _round_half_up(value: float) -> int:
    return int(value + 0.5) if value >= 0 else -int(-value + 0.5)


def _tariff_on(schedule: list[dict], day: date) -> dict | None:
    for row in schedule:
        valid_from = date.fromisoformat(row["valid_from"])
        valid_to = date.fromisoformat(row["valid_to"]) if row["valid_to"] else None
        if valid_from <= day and (valid_to is None or day < valid_to):
            return row
    return None


def price_period(kwh: float, received_kwh: float, tariff: dict) -> dict:
    """Bill-like amounts for a period's energy: fixed + energy - injection credit (capped), IVA, total."""
    energy = _round_half_up(kwh * tariff["energy_clp_per_kwh"])
    credit = min(_round_half_up(received_kwh * tariff["injection_clp_per_kwh"]), energy)
    net = int(tariff["fixed_clp_month"] or 0) + energy - credit
    iva = _round_half_up(net * IVA_RATE)
    return {"fixed_clp": int(tariff["fixed_clp_month"] or 0), "energy_clp": energy, "credit_clp": credit,
            "net_clp": net, "iva_clp": iva, "total_clp": net + iva}


def _complete_days(read_model: ReadModel, supply_id: str, start: date, stop: date, flow: str) -> tuple[int, float]:
    if start >= stop:
        return 0, 0.0
    series = read_model.consumption(supply_id, "day", start, stop, flow)
    complete = [point["kwh"] for point in series["points"] if point["quality"] != "missing" and point["kwh"] is not None]
    return len(complete), float(sum(complete))


def forecast(read_model: ReadModel, supply: dict) -> dict:
    """The forecast of the open billing period. Always a dict with `period_start`, `period_end` (exclusive),
    `days_in_period`, `days_read`, `min_days` and `available`; when available also the projected kWh and, with a
    tariff schedule in the snapshot, the projected amounts."""
    supply_id = supply["supply_id"]
    last_day = last_data_day(supply)
    periods = read_model.billing_periods(supply_id, last_day, last_day + timedelta(days=1))
    period_start, period_end, bill_id = periods[-1]
    if bill_id is not None:  # the newest data is already billed: the open period starts after it
        period_start, period_end = period_end, period_end + (period_end - period_start)
    days_in_period = (period_end - period_start).days
    stop = min(last_day + timedelta(days=1), period_end)
    days_read, kwh_read = _complete_days(read_model, supply_id, period_start, stop, "delivered")
    result = {
        "period_start": period_start.isoformat(),
        "period_end": period_end.isoformat(),
        "days_in_period": days_in_period,
        "days_read": days_read,
        "min_days": FORECAST_MIN_DAYS,
        "kwh_read": round(kwh_read, 3),
        "available": days_read >= FORECAST_MIN_DAYS,
    }
    if not result["available"]:
        return result
    projected_kwh = kwh_read / days_read * days_in_period
    received_kwh = 0.0
    if supply.get("has_solar"):
        received_days, received_read = _complete_days(read_model, supply_id, period_start, stop, "received")
        if received_days:
            received_kwh = received_read / received_days * days_in_period
    result["projected_kwh"] = round(projected_kwh, 1)
    result["projected_received_kwh"] = round(received_kwh, 1)
    tariff = _tariff_on(read_model.tariffs(supply.get("tariff")), period_end - timedelta(days=1))
    result["prices_available"] = tariff is not None
    if tariff is not None:
        result.update({f"projected_{key}": value for key, value in price_period(
            projected_kwh, received_kwh, tariff).items()})
        result["energy_clp_per_kwh"] = tariff["energy_clp_per_kwh"]
    return result


def _energy_price(bill: dict) -> float | None:
    for line in bill.get("lines") or []:
        if line.get("unit") == "kWh" and (line.get("amount_clp") or 0) > 0:
            return line.get("unit_price_clp")
    return None


def bill_changes(read_model: ReadModel, supply_id: str, bill: dict) -> dict | None:
    """Why this bill differs from the previous one: days in period, kWh (and per day), energy price, days not
    read as actual, and the totals. None when there is no previous bill."""
    previous_summary = next(
        (other for other in read_model.bills(supply_id) if other["period_end"] <= bill["period_start"]), None
    )
    if previous_summary is None:
        return None
    previous = read_model.bill(supply_id, previous_summary["bill_id"])

    def facts(one: dict) -> dict:
        start, end = date.fromisoformat(one["period_start"]), date.fromisoformat(one["period_end"])
        days = (end - start).days
        quality = read_model.day_quality_counts(supply_id, start, end)
        return {
            "bill_id": one["bill_id"],
            "days": days,
            "kwh": one["kwh"],
            "kwh_per_day": round(one["kwh"] / days, 2) if one["kwh"] is not None and days else None,
            "energy_clp_per_kwh": _energy_price(one),
            "not_actual_days": quality["estimated"] + quality["edited"] + quality["missing"],
            "estimated_days": quality["estimated"] + quality["edited"],
            "missing_days": quality["missing"],
            "total_clp": one["total_clp"],
        }

    now, before = facts(bill), facts(previous)
    change = {"current": now, "previous": before, "total_diff_clp": now["total_clp"] - before["total_clp"]}
    change["kwh_diff"] = round((now["kwh"] or 0) - (before["kwh"] or 0), 3)
    change["kwh_diff_pct"] = round(100 * change["kwh_diff"] / before["kwh"], 1) if before["kwh"] else None
    change["days_diff"] = now["days"] - before["days"]
    price_now, price_before = now["energy_clp_per_kwh"], before["energy_clp_per_kwh"]
    change["price_changed"] = price_now is not None and price_before is not None and price_now != price_before
    change["price_diff_pct"] = (
        round(100 * (price_now - price_before) / price_before, 1) if change["price_changed"] and price_before else None
    )
    return change

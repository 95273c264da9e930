"""Customer pages (Spanish): the list of supplies, a supply with its charts and bills, and a bill's detail."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from readmodel.timeutil import SANTIAGO, add_months, local_today
from webapp.access import owned_bill_or_404, owned_supply_or_404, read_model

bp = Blueprint("portal", __name__)


@bp.get("/")
@login_required
def index():
    supplies = read_model().supplies_for_customer(current_user.customer_id)
    return render_template("index.html", supplies=supplies, as_of=read_model().as_of())


def last_data_day(supply: dict):
    """The local date of the newest data (data_until is an exclusive instant), or today without data."""
    if not supply.get("data_until"):
        return local_today()
    until = datetime.fromisoformat(supply["data_until"]).astimezone(SANTIAGO)
    return (until - timedelta(microseconds=1)).date()


@bp.get("/supplies/<supply_id>")
@login_required
def supply(supply_id: str):
    supply = owned_supply_or_404(supply_id)
    last_day = last_data_day(supply)
    chart_window = {
        "from": add_months(last_day + timedelta(days=1), -13).isoformat(),
        "to": (last_day + timedelta(days=1)).isoformat(),
        "day": last_day.isoformat(),
    }
    return render_template(
        "supply.html",
        supply=supply,
        bills=read_model().bills(supply_id),
        chart_window=chart_window,
        as_of=read_model().as_of(),
    )


@bp.get("/supplies/<supply_id>/bills/<bill_id>")
@login_required
def bill(supply_id: str, bill_id: str):
    supply = owned_supply_or_404(supply_id)
    bill = owned_bill_or_404(supply_id, bill_id)
    return render_template("bill.html", supply=supply, bill=bill)

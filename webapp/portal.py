"""Customer pages: the overview of supplies, a supply with its consumption explorer, forecast and bills, a bill's
detail with what changed since the previous one, and the bill as PDF."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, Response, render_template, url_for
from flask_login import current_user, login_required

from readmodel.billing import bill_changes, forecast, last_data_day
from readmodel.timeutil import add_months
from webapp.access import owned_bill_or_404, owned_supply_or_404, read_model

bp = Blueprint("portal", __name__)


@bp.get("/")
@login_required
def index():
    model = read_model()
    supplies = model.supplies_for_customer(current_user.customer_id)
    for supply in supplies:
        bills = model.bills(supply["supply_id"])
        supply["latest_bill"] = bills[0] if bills else None
        supply["unpaid_clp"] = sum(bill["total_clp"] or 0 for bill in bills if bill["status"] == "unpaid")
    return render_template("index.html", supplies=supplies, as_of=model.as_of())


def explorer_window(last_day: date) -> dict:
    """The explorer's first view: 13 whole months ending with the month of the newest data."""
    to_date = last_day + timedelta(days=1)
    return {
        "granularity": "month",
        "from": add_months(last_day.replace(day=1), -12).isoformat(),
        "to": to_date.isoformat(),
        "last_day": last_day.isoformat(),
    }


def explorer_urls(supply_id: str) -> dict:
    return {
        "consumption": url_for("api.consumption", supply_id=supply_id),
        "csv": f"/api/v1/supplies/{supply_id}/export.csv",
        "greenbutton": f"/api/v1/supplies/{supply_id}/export/greenbutton.xml",
    }


@bp.get("/supplies/<supply_id>")
@login_required
def supply(supply_id: str):
    supply = owned_supply_or_404(supply_id)
    model = read_model()
    last_day = last_data_day(supply)
    return render_template(
        "supply.html",
        supply=supply,
        bills=model.bills(supply_id),
        window=explorer_window(last_day),
        urls=explorer_urls(supply_id),
        forecast=forecast(model, supply),
        prices_available=bool(model.tariffs(supply.get("tariff"))),
        as_of=model.as_of(),
    )


@bp.get("/supplies/<supply_id>/bills/<bill_id>")
@login_required
def bill(supply_id: str, bill_id: str):
    supply = owned_supply_or_404(supply_id)
    bill = owned_bill_or_404(supply_id, bill_id)
    model = read_model()
    period_start = date.fromisoformat(bill["period_start"])
    period_end = date.fromisoformat(bill["period_end"])
    return render_template(
        "bill.html",
        supply=supply,
        bill=bill,
        changes=bill_changes(model, supply_id, bill),
        quality=model.day_quality_counts(supply_id, period_start, period_end),
        window={"granularity": "day", "from": bill["period_start"], "to": bill["period_end"],
                "last_day": (period_end - timedelta(days=1)).isoformat()},
        urls=explorer_urls(supply_id),
        prices_available=bool(model.tariffs(supply.get("tariff"))),
    )


@bp.get("/supplies/<supply_id>/bills/<bill_id>.pdf")
@login_required
def bill_pdf(supply_id: str, bill_id: str):
    from webapp.bill_pdf import render_bill_pdf

    supply = owned_supply_or_404(supply_id)
    bill = owned_bill_or_404(supply_id, bill_id)
    model = read_model()
    daily = model.consumption(supply_id, "day", date.fromisoformat(bill["period_start"]),
                              date.fromisoformat(bill["period_end"]), "delivered")
    body = render_bill_pdf(supply, bill, daily["points"], model.customer(supply["customer_id"]))
    return Response(body, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="boleta-{bill_id}.pdf"'})

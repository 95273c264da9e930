"""Ownership checks shared by the pages and the API: anything not the caller's is a 404, like a missing one."""

from __future__ import annotations

from flask import abort, current_app
from flask_login import current_user


def read_model():
    return current_app.extensions["read_model"]


def owned_supply_or_404(supply_id: str) -> dict:
    supply = read_model().supply(supply_id)
    if supply is None or supply["customer_id"] != current_user.customer_id:
        abort(404)
    return supply


def owned_bill_or_404(supply_id: str, bill_id: str) -> dict:
    owned_supply_or_404(supply_id)
    bill = read_model().bill(supply_id, bill_id)
    if bill is None:
        abort(404)
    return bill

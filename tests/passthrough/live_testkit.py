"""Helpers shared by the passthrough tests and `benchmarks/bench_passthrough.py`: a data directory whose read
model and accounts match a running simulator, a CSRF-aware logged-in Flask test client, and fault controls."""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import time
from pathlib import Path

import httpx

_factory_path = Path(__file__).resolve().parents[1] / "readmodel" / "snapshot_factory.py"
_spec = importlib.util.spec_from_file_location("passthrough_snapshot_factory", _factory_path)
snapshot_factory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(snapshot_factory)

PASSWORD = "clave-de-prueba-2026"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
SIMULATOR_SEED, SIMULATOR_SUPPLIES, SIMULATOR_MONTHS = 11, 6, 3


def simulator_now() -> str:
    """The simulator's frozen clock: the current time, so "today" is really today."""
    return dt.datetime.now(dt.UTC).replace(second=0, microsecond=0).isoformat()


def build_data_dir(data_dir: Path, simulator_url: str, *, published_hours_ago: float = 2.0,
                   history_days: int = 0) -> dict:
    """A read-model snapshot with the simulator's supplies (data published up to `published_hours_ago` before
    the simulator's clock; `history_days` of the first supply's delivered intervals from the simulator's truth)
    and one account per customer. Returns who is who."""
    truth_supplies = httpx.get(f"{simulator_url}/truth/supplies").json()
    truth_customers = httpx.get(f"{simulator_url}/truth/customers").json()
    sim_now = dt.datetime.fromisoformat(httpx.get(f"{simulator_url}/truth/config").json()["now"])
    data_until = sim_now - dt.timedelta(hours=published_hours_ago)
    data_until = data_until.replace(minute=data_until.minute - data_until.minute % 15)
    owner = truth_supplies[0]["customer_id"]
    other = next(s for s in truth_supplies if s["customer_id"] != owner)
    customers = [c for c in truth_customers if c["customer_id"] in (owner, other["customer_id"])]
    supplies = [
        {"supply_id": s["supply_id"], "customer_id": s["customer_id"], "usage_point_mrid": s["usage_point_mrid"],
         "meter_mrid": s["meter_mrid"], "address": s["address"], "comuna": s["comuna"], "tariff": s["tariff"],
         "status": s["status"], "has_solar": s["has_solar"], "data_from": data_until - dt.timedelta(days=30),
         "data_until": data_until}
        for s in truth_supplies if s["customer_id"] in (owner, other["customer_id"])
    ]
    intervals = []
    if history_days:
        last_day = data_until.astimezone(snapshot_factory.SANTIAGO).date()
        truth = httpx.get(f"{simulator_url}/truth/intervals", params={
            "supply_id": truth_supplies[0]["supply_id"], "from": (last_day - dt.timedelta(days=history_days)).isoformat(),
            "to": last_day.isoformat()}).json()["points"]
        intervals = [
            {"supply_id": truth_supplies[0]["supply_id"], "flow": "delivered",
             "interval_end": dt.datetime.fromisoformat(point["interval_end"]).astimezone(dt.UTC),
             "interval_seconds": 900, "kwh": point["wh"] / 1000, "quality": "actual"}
            for point in truth
        ]
    snapshot_factory.write_snapshot(
        data_dir / "readmodel", published_at=data_until.isoformat(),
        customers=[{k: c[k] for k in ("customer_id", "client_number", "name", "rut", "email")} for c in customers],
        supplies=supplies, intervals=intervals)
    from webapp.accounts import AccountStore

    store = AccountStore(data_dir / "accounts.sqlite")
    store.initialize()
    emails = {}
    for customer in customers:
        store.create_user(customer["email"], PASSWORD, customer["customer_id"])
        emails[customer["customer_id"]] = customer["email"]
    return {
        "email": emails[owner], "other_email": emails[other["customer_id"]],
        "supply": truth_supplies[0], "other_supply_id": other["supply_id"],
        "data_until": data_until, "simulator_now": sim_now,
    }


class LoggedIn:
    """A Flask test client logged in through the real form, sending X-CSRFToken on JSON POSTs."""

    def __init__(self, client, email: str):
        self.client = client
        page = client.get("/login").get_data(as_text=True)
        token = CSRF_META.search(page).group(1)
        response = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        self.csrf = CSRF_META.search(client.get("/").get_data(as_text=True)).group(1)

    def get(self, path: str):
        return self.client.get(path)

    def post(self, path: str, csrf: bool = True):
        headers = {"X-CSRFToken": self.csrf} if csrf else {}
        return self.client.post(path, headers=headers, json={})


def set_fault(simulator_url: str, backend: str, mode: str, **extra) -> None:
    response = httpx.post(f"{simulator_url}/admin/faults", json={"backend": backend, "mode": mode, **extra})
    response.raise_for_status()


def clear_faults(simulator_url: str) -> None:
    httpx.delete(f"{simulator_url}/admin/faults").raise_for_status()


def set_headend(simulator_url: str, delay_min_s: float, delay_max_s: float, failure_rate: float) -> None:
    httpx.post(f"{simulator_url}/admin/headend", json={
        "delay_min_s": delay_min_s, "delay_max_s": delay_max_s, "failure_rate": failure_rate}).raise_for_status()


def poll_until_final(get, status_url: str, timeout_s: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        body = get(status_url)
        body = body.get_json() if hasattr(body, "get_json") else body.json()
        if body["state"] != "pending" or time.monotonic() > deadline:
            return body
        time.sleep(0.1)

"""Helpers for the portal feature tests: demo snapshots with a tariff schedule, accounts, CSRF-aware login."""

from __future__ import annotations

import importlib.util
import re
from datetime import date
from pathlib import Path

import duckdb

_factory_path = Path(__file__).resolve().parents[1] / "readmodel" / "snapshot_factory.py"
_spec = importlib.util.spec_from_file_location("portal_snapshot_factory", _factory_path)
snapshot_factory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(snapshot_factory)

ANA = {"email": "ana.perez@example.cl", "password": "clave-de-ana-2026", "customer_id": "C000001"}
BRUNO = {"email": "bruno.soto@example.cl", "password": "clave-de-bruno-2026", "customer_id": "C000002"}
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')

# A schedule whose change on 1 April 2026 falls inside the demo data (25 March - 11 April 2026).
TARIFFS = [
    {"valid_from": date(2025, 7, 1), "valid_to": date(2026, 4, 1), "tariff": "BT1", "fixed_clp_month": 1000,
     "energy_clp_per_kwh": 150.0, "injection_clp_per_kwh": 90.0},
    {"valid_from": date(2026, 4, 1), "valid_to": date(2026, 7, 1), "tariff": "BT1", "fixed_clp_month": 1100,
     "energy_clp_per_kwh": 160.0, "injection_clp_per_kwh": 95.0},
    {"valid_from": date(2026, 7, 1), "valid_to": None, "tariff": "BT1", "fixed_clp_month": 1200,
     "energy_clp_per_kwh": 170.0, "injection_clp_per_kwh": 100.0},
]


def add_tariffs(snapshot_path: Path, tariffs: list[dict]) -> None:
    """Add the `tariffs` table the publisher copies from the warehouse (before readers open the file)."""
    connection = duckdb.connect(str(snapshot_path))
    try:
        connection.execute(
            "CREATE TABLE tariffs(valid_from DATE, valid_to DATE, tariff VARCHAR, fixed_clp_month BIGINT, "
            "energy_clp_per_kwh DOUBLE, injection_clp_per_kwh DOUBLE)"
        )
        for row in tariffs:
            connection.execute(
                "INSERT INTO tariffs VALUES (?, ?, ?, ?, ?, ?)",
                [row["valid_from"], row["valid_to"], row["tariff"], row["fixed_clp_month"],
                 row["energy_clp_per_kwh"], row["injection_clp_per_kwh"]],
            )
    finally:
        connection.close()


def write_priced_snapshot(readmodel_dir: Path, tariffs: list[dict] = TARIFFS, published_at: str =
                          "2026-09-10T12:00:00+00:00", **changes) -> Path:
    """The demo world plus a tariff schedule, pointed to by CURRENT only once complete."""
    path = snapshot_factory.write_demo_snapshot(readmodel_dir, published_at=published_at, point_current=False,
                                                **changes)
    add_tariffs(path, tariffs)
    snapshot_factory.point_current_at(readmodel_dir, f"snapshots/{path.name}")
    return path


def csrf_token_of(html: str) -> str:
    match = CSRF_META.search(html)
    assert match, "page has no csrf-token meta tag"
    return match.group(1)


def login(client, account=ANA):
    token = csrf_token_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": account["email"], "password": account["password"],
                                           "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client

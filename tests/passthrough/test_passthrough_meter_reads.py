"""On-demand meter reads (`POST /api/v1/supplies/<id>/meter-reads` and its status URL) against the simulated
head-end process: request then poll, value not validated, rate limit per supply, CSRF, ownership, the read's
way into the inbox, and every injected fault on the request and on the poll with the customer's Spanish
message."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest

from cim_ingest.meter_readings import parse_meter_readings
from live_testkit import (
    SIMULATOR_MONTHS, SIMULATOR_SEED, SIMULATOR_SUPPLIES, LoggedIn, clear_faults, poll_until_final, set_fault,
    set_headend,
)
from simulator.headend import HeadEnd
from simulator.model import SimulationConfig, World

FAULTS = ["hang", "slow", "http500", "malformed", "failed", "partial"]
REQUEST_FAILED = "No pudimos enviar la solicitud de lectura a tu medidor. Intenta nuevamente en unos minutos."
UNCONFIRMED = ("Estamos leyendo tu medidor, pero no pudimos confirmar su avance en este momento. "
               "Seguimos intentando.")


def reads_path(world) -> str:
    return f"/api/v1/supplies/{world['supply']['supply_id']}/meter-reads"


def expected_register(world) -> tuple[float, dt.datetime]:
    """The simulated meter's register at the simulator's clock, from the simulated world itself."""
    sim_world = World(SimulationConfig(seed=SIMULATOR_SEED, supplies=SIMULATOR_SUPPLIES, months=SIMULATOR_MONTHS,
                                       now=world["simulator_now"]))
    index = sim_world.supply_index_by_id(world["supply"]["supply_id"])
    read_at, value_wh = HeadEnd(sim_world).register_now(index)
    return value_wh / 1000, read_at


def test_read_request_answers_202_then_the_value_arrives_not_validated(customer, world, live_dir):
    response = customer.post(reads_path(world))
    assert response.status_code == 202
    body = response.get_json()
    assert body["state"] == "pending" and body["validated"] is False
    assert body["status_url"].startswith(reads_path(world) + "/")
    assert response.headers["Location"] == body["status_url"]
    assert body["message"] == "Estamos leyendo tu medidor. Puede tardar hasta un minuto."
    done = poll_until_final(customer.get, body["status_url"])
    assert done["state"] == "done", done
    value_kwh, read_at = expected_register(world)
    assert done["value_kwh"] == pytest.approx(value_kwh, abs=0.0005)
    assert dt.datetime.fromisoformat(done["read_at"]) == read_at
    assert done["validated"] is False
    assert done["message"] == "Lectura recibida. Es un valor aún no validado."
    # a second look does not ask the head-end again and gives the same answer
    assert customer.get(body["status_url"]).get_json() == done


def test_the_read_enters_the_inbox_as_a_created_meter_readings_event(customer, world, live_dir):
    status_url = customer.post(reads_path(world)).get_json()["status_url"]
    done = poll_until_final(customer.get, status_url)
    poll_until_final(customer.get, status_url)  # polling again must not write a second file
    files = sorted((live_dir / "inbox").iterdir())
    assert [path.suffix for path in files] == [".xml"], files  # no temporary file left behind
    batch = parse_meter_readings(files[0])
    assert batch.header.kind == "Event" and batch.header.verb == "created"
    register = batch.registers.row(0, named=True)
    assert register["usage_point_mrid"] == world["supply"]["usage_point_mrid"]
    assert register["meter_mrid"] == world["supply"]["meter_mrid"]
    assert register["kwh"] == pytest.approx(done["value_kwh"], abs=0.0005)
    assert register["read_at"] == dt.datetime.fromisoformat(done["read_at"])


def test_second_request_within_the_window_is_rate_limited_in_spanish(customer, world):
    assert customer.post(reads_path(world)).status_code == 202
    response = customer.post(reads_path(world))
    assert response.status_code == 429
    body = response.get_json()
    assert body["error"].startswith("Ya solicitaste una lectura de este medidor hace poco. Puedes pedir otra en ")
    assert body["error"].endswith("15 minutos.")
    assert 890 <= int(response.headers["Retry-After"]) <= 900


def test_rate_limit_is_per_supply_and_configurable(make_app, world):
    customer = LoggedIn(make_app(METER_READ_RATE_LIMIT_S=0).test_client(), world["email"])
    assert customer.post(reads_path(world)).status_code == 202
    assert customer.post(reads_path(world)).status_code == 202


def test_rate_limit_holds_across_app_instances(make_app, world):
    first = LoggedIn(make_app().test_client(), world["email"])
    second = LoggedIn(make_app().test_client(), world["email"])
    assert first.post(reads_path(world)).status_code == 202
    assert second.post(reads_path(world)).status_code == 429


def test_read_request_needs_the_csrf_header(customer, world):
    response = customer.post(reads_path(world), csrf=False)
    assert response.status_code == 400
    assert "sesión del formulario" in response.get_json()["error"]


def test_other_customers_supply_and_unknown_reads_are_404(customer, world, app):
    assert customer.post(f"/api/v1/supplies/{world['other_supply_id']}/meter-reads").status_code == 404
    status_url = customer.post(reads_path(world)).get_json()["status_url"]
    read_id = status_url.rsplit("/", 1)[1]
    assert customer.get(f"{reads_path(world)}/{'0' * 32}").status_code == 404
    # another customer cannot see this read, even with its id, under their own or this supply
    other = LoggedIn(app.test_client(), world["other_email"])
    assert other.get(status_url).status_code == 404
    assert other.get(f"/api/v1/supplies/{world['other_supply_id']}/meter-reads/{read_id}").status_code == 404


@pytest.mark.parametrize("mode", FAULTS)
def test_request_fault_gives_a_spanish_503_and_does_not_use_up_the_limit(mode, customer, world, simulator):
    set_fault(simulator["url"], "headend", mode, **({"delay_s": 3} if mode == "slow" else {}))
    response = customer.post(reads_path(world))
    assert response.status_code == 503
    assert response.get_json()["error"] == REQUEST_FAILED
    clear_faults(simulator["url"])
    assert customer.post(reads_path(world)).status_code == 202


def test_request_is_not_retried(customer, world, simulator):
    """`create` starts a read on the meter: one HTTP 500 is not retried (the fault is used exactly once)."""
    set_fault(simulator["url"], "headend", "http500", count=2)
    assert customer.post(reads_path(world)).status_code == 503
    assert httpx.get(f"{simulator['url']}/admin/faults").json()["headend"]["remaining"] == 1


@pytest.mark.parametrize("mode", ["hang", "slow", "http500", "malformed"])
def test_poll_fault_keeps_the_read_pending_then_it_completes(mode, customer, world, simulator):
    status_url = customer.post(reads_path(world)).get_json()["status_url"]
    set_fault(simulator["url"], "headend", mode, **({"delay_s": 3} if mode == "slow" else {}))
    body = customer.get(status_url).get_json()
    assert body["state"] == "pending" and body["value_kwh"] is None
    assert body["message"] == UNCONFIRMED
    clear_faults(simulator["url"])
    assert poll_until_final(customer.get, status_url)["state"] == "done"


@pytest.mark.parametrize("mode, message", [
    ("failed", "Tu medidor no respondió a la lectura. Intenta nuevamente más tarde."),
    ("partial", "La lectura de tu medidor llegó incompleta y no podemos mostrarla. Intenta nuevamente más tarde."),
])
def test_poll_failed_or_partial_reply_fails_the_read(mode, message, customer, world, simulator):
    status_url = customer.post(reads_path(world)).get_json()["status_url"]
    time.sleep(0.5)  # the read takes 0.2-0.4 s: the head-end has the value, the fault decides the reply
    set_fault(simulator["url"], "headend", mode)
    body = poll_until_final(customer.get, status_url)
    assert body["state"] == "failed" and body["value_kwh"] is None and body["read_at"] is None
    assert body["message"] == message


def test_meter_that_does_not_answer_fails_the_read(customer, world, simulator):
    set_headend(simulator["url"], 0.1, 0.2, 1.0)
    status_url = customer.post(reads_path(world)).get_json()["status_url"]
    body = poll_until_final(customer.get, status_url)
    assert body["state"] == "failed"
    assert body["message"] == "Tu medidor no respondió a la lectura. Intenta nuevamente más tarde."


def test_read_that_takes_too_long_is_cancelled(make_app, world, simulator):
    set_headend(simulator["url"], 30, 30, 0.0)
    customer = LoggedIn(make_app(METER_READ_TIMEOUT_S=0.5).test_client(), world["email"])
    status_url = customer.post(reads_path(world)).get_json()["status_url"]
    assert customer.get(status_url).get_json()["state"] == "pending"
    time.sleep(0.6)
    body = customer.get(status_url).get_json()
    assert body["state"] == "failed"
    assert body["message"] == "La lectura de tu medidor tardó demasiado y se canceló. Intenta nuevamente más tarde."


def test_the_inbox_file_is_ingested_into_the_warehouse_like_a_pushed_file(customer, world, live_dir):
    """The same code path as the inbox sensor (`pipelines.file_ingest.ingest_files`): history includes the read."""
    import polars as pl

    from pipelines.file_ingest import ingest_files
    from warehouse.db import connect
    from warehouse.loads import upsert_supplies

    supply = world["supply"]
    con = connect(live_dir / "warehouse.duckdb")
    try:
        upsert_supplies(con, pl.DataFrame([{key: supply[key] for key in (
            "supply_id", "usage_point_mrid", "meter_mrid", "customer_id", "address", "comuna", "tariff", "status",
            "has_solar")}]))
    finally:
        con.close()
    done = poll_until_final(customer.get, customer.post(reads_path(world)).get_json()["status_url"])
    (inbox_file,) = (live_dir / "inbox").glob("*.xml")
    (outcome,) = ingest_files([inbox_file], live_dir)
    assert outcome.status == "processed", outcome.reason
    con = connect(live_dir / "warehouse.duckdb", read_only=True)
    try:
        rows = con.execute("SELECT read_at, CAST(kwh AS DOUBLE) FROM register_reads WHERE supply_id = ?",
                           [supply["supply_id"]]).fetchall()
    finally:
        con.close()
    assert rows == [(dt.datetime.fromisoformat(done["read_at"]), pytest.approx(done["value_kwh"], abs=0.0005))]

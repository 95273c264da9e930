"""Acceptance: a hand-made CIM message (clock-change days, Wh and kWh ReadingTypes, duplicates, estimated and
edited qualities, received energy) and a later correction, ingested with `ami-portal ingest`, give through the
portal's JSON API day totals equal to a hand computation; the CSV and Green Button downloads of the same supply
carry the same energy, the Green Button one is valid ESPI 4.0, and another customer's supply answers 404."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from ingest_helpers import METERS, SUPPLIES, UTC, seed_supplies, write_message

from cim_ingest.writer import IntervalBlockOut, MeterReadingOut
from warehouse import loads
from warehouse.db import connect
from warehouse.rollups import local_midnight_utc

from tests.conftest import ROOT, login, start_portal

REFERENCE = ROOT.parent / "shared" / "reference" / "greenbutton"
UP = SUPPLIES["30000001"]
WH_15MIN_DELIVERED = "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.0.72.0"  # multiplier 0: values in Wh
KWH_15MIN_DELIVERED = "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"  # multiplier 3: values in kWh
KWH_15MIN_RECEIVED = "0.0.2.4.19.1.12.0.0.0.0.0.0.0.0.3.72.0"
FALL_BACK, NORMAL, SPRING_FORWARD = dt.date(2026, 4, 4), dt.date(2026, 4, 5), dt.date(2026, 9, 6)
EMAIL, PASSWORD = "ana@example.cl", "clave-larga-de-prueba-1"


def quarter_hours(day: dt.date) -> list[dt.datetime]:
    """END instants of every quarter-hour of the local day (100 on 4 April 2026, 92 on 6 September)."""
    start, end = local_midnight_utc(day), local_midnight_utc(day + dt.timedelta(days=1))
    count = int((end - start).total_seconds()) // 900
    return [start + dt.timedelta(minutes=15 * (i + 1)) for i in range(count)]


def ingest(data_dir: Path, *paths: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, AMI_DATA_DIR=str(data_dir))
    return subprocess.run([sys.executable, "-m", "ami_portal.cli", "ingest", *map(str, paths)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def as_event(response_file: Path) -> None:
    """Turn a written ResponseMessage into an EventMessage `changed` (how an MDM pushes a correction)."""
    text = response_file.read_text()
    text = text.replace("ResponseMessage", "EventMessage").replace("<Verb>reply</Verb>", "<Verb>changed</Verb>")
    text = text.replace("<Reply><Result>OK</Result></Reply>", "")
    response_file.write_text(text)


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    base = tmp_path_factory.mktemp("acceptance")
    data_dir = base / "data"
    seed_supplies(data_dir)
    con = connect(data_dir / "warehouse.duckdb")
    try:  # a second customer, whose supply the first must not see
        loads.upsert_customers(con, pl.DataFrame({"customer_id": ["C000002"], "client_number": ["10000002"],
                                                  "name": ["Otro"], "rut": ["11.111.111-1"],
                                                  "email": ["otro@example.cl"]}))
        loads.upsert_supplies(con, pl.DataFrame({
            "supply_id": ["30000009"], "usage_point_mrid": ["99999999-0000-4000-8000-000000000009"],
            "meter_mrid": ["m9"], "customer_id": ["C000002"], "address": ["x"], "comuna": ["Ñuñoa"],
            "tariff": ["BT1"], "status": ["active"], "has_solar": [False]}))
    finally:
        con.close()

    fall_back, normal, spring = quarter_hours(FALL_BACK), quarter_hours(NORMAL), quarter_hours(SPRING_FORWARD)
    assert (len(fall_back), len(normal), len(spring)) == (100, 96, 92)
    # 4 April (25 h): 100 x 100 Wh in a Wh block (values written as given, in Wh); quarter-hours 10..19 estimated, the first four sent twice.
    fall_back_qualities = [("3.8.0",) if 10 <= i < 20 else () for i in range(100)]
    wh_block = IntervalBlockOut(WH_15MIN_DELIVERED, fall_back + fall_back[:4], values=[100] * 104,
                                qualities=fall_back_qualities + [()] * 4)
    # 5 April (24 h) and 6 September (23 h) in a kWh block: 0.05 and 0.25 kWh per quarter-hour.
    kwh_block = IntervalBlockOut(KWH_15MIN_DELIVERED, normal + spring,
                                 values=["0.050"] * 96 + ["0.250"] * 92)
    # Received (solar) on 4 April: 40 quarter-hours of 0.3 kWh, the rest 0.
    received = IntervalBlockOut(KWH_15MIN_RECEIVED, fall_back, values=["0.300" if 40 <= i < 80 else "0" for i in
                                                                      range(100)])
    main = write_message(base / "in" / "readings.xml", [MeterReadingOut(UP, METERS["30000001"],
                                                                         [wh_block, kwh_block, received])],
                         dt.datetime(2026, 9, 8, 12, tzinfo=UTC), "msg-main")
    # The later correction: two quarter-hours of 4 April become 400 Wh, edited by the MDM.
    correction = write_message(base / "in" / "correction.xml", [MeterReadingOut(UP, METERS["30000001"], [
        IntervalBlockOut(WH_15MIN_DELIVERED, fall_back[50:52], values=[400, 400], qualities=[("3.7.0",)] * 2)])],
        dt.datetime(2026, 9, 9, 12, tzinfo=UTC), "msg-correction")
    as_event(correction)
    # Correction first: the order files arrive in must not matter (the newest message wins).
    result = ingest(data_dir, correction, main)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "processed correction.xml" in result.stdout and "Published" in result.stdout

    env = dict(os.environ, AMI_DATA_DIR=str(data_dir))
    subprocess.run([sys.executable, "-m", "ami_portal.cli", "users", "add", EMAIL, "C000001", "--password",
                    PASSWORD], env=env, check=True, capture_output=True, cwd=ROOT, timeout=120)
    service, url = start_portal(data_dir, base / "logs")
    try:
        client = login(url, EMAIL, PASSWORD)
        yield client, url, data_dir
        client.close()
    finally:
        service.stop()


def day_points(client, flow: str, first: dt.date, last: dt.date) -> dict[str, tuple]:
    response = client.get("/api/v1/supplies/30000001/consumption",
                          params={"granularity": "day", "from": first.isoformat(), "to": last.isoformat(),
                                  "flow": flow})
    assert response.status_code == 200, response.text
    return {point["start"][:10]: (point["kwh"], point["quality"]) for point in response.json()["points"]}


def test_day_totals_equal_the_hand_computation(portal):
    client, _, _ = portal
    delivered = day_points(client, "delivered", FALL_BACK, NORMAL + dt.timedelta(days=1))
    # 4 April: 100 quarter-hours x 0.1 kWh = 10.0, the correction adds 2 x 0.3 = 0.6; duplicates count once.
    assert delivered["2026-04-04"] == (pytest.approx(10.6), "estimated")
    assert delivered["2026-04-05"] == (pytest.approx(96 * 0.05), "actual")
    september = day_points(client, "delivered", SPRING_FORWARD, SPRING_FORWARD + dt.timedelta(days=1))
    assert september["2026-09-06"] == (pytest.approx(92 * 0.25), "actual")  # 23.0 kWh over 23 hours
    received = day_points(client, "received", FALL_BACK, NORMAL)
    assert received["2026-04-04"] == (pytest.approx(40 * 0.3), "actual")
    net = day_points(client, "net", FALL_BACK, NORMAL)
    assert net["2026-04-04"][0] == pytest.approx(10.6 - 12.0)


def test_the_warehouse_kept_the_superseded_version(portal):
    _, _, data_dir = portal
    con = connect(data_dir / "warehouse.duckdb", read_only=True)
    try:
        rows = con.execute("SELECT kwh, source_message_id FROM interval_reading_versions ORDER BY interval_end").fetchall()
    finally:
        con.close()
    assert [(float(kwh), mid) for kwh, mid in rows] == [(0.1, "msg-main"), (0.1, "msg-main")]


def parse_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text), delimiter=";"))


def test_csv_export_uses_semicolons_decimal_commas_offsets_and_sums_to_the_same(portal):
    client, _, _ = portal
    response = client.get("/api/v1/supplies/30000001/export.csv", params={"from": "2026-04-04", "to": "2026-04-06"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["cache-control"] == "no-store"
    rows = parse_csv(response.text)
    assert list(rows[0]) == ["inicio", "fin", "zona", "flujo", "kwh", "calidad"]
    assert {row["zona"] for row in rows} == {"America/Santiago"}
    consumo = [row for row in rows if row["flujo"] == "consumo"]
    inyeccion = [row for row in rows if row["flujo"] == "inyeccion"]
    assert (len(consumo), len(inyeccion)) == (196, 100)
    assert sum(float(row["kwh"].replace(",", ".")) for row in consumo) == pytest.approx(10.6 + 4.8)
    assert consumo[0] == {"inicio": "2026-04-04T00:00:00-03:00", "fin": "2026-04-04T00:15:00-03:00",
                          "zona": "America/Santiago", "flujo": "consumo", "kwh": "0,100", "calidad": "real"}
    # The repeated hour of the 25-hour day appears twice, told apart by its offset.
    starts = [row["inicio"] for row in consumo]
    assert "2026-04-04T23:00:00-03:00" in starts and "2026-04-04T23:00:00-04:00" in starts
    assert {row["calidad"] for row in consumo} == {"real", "estimada", "editada"}


def test_green_button_export_is_valid_espi_and_reimports_to_the_same_energy(portal):
    xmlschema = pytest.importorskip("xmlschema")
    if not REFERENCE.is_dir():
        pytest.skip(f"Green Button reference folder {REFERENCE} is absent")
    client, _, _ = portal
    response = client.get("/api/v1/supplies/30000001/export/greenbutton.xml",
                          params={"from": "2026-04-04", "to": "2026-04-06"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    assert response.headers["cache-control"] == "no-store"
    schema = xmlschema.XMLSchema(str(REFERENCE / "xsd" / "espi.xsd"))
    schema.validate(response.content)
    from cim_ingest.greenbutton import parse_green_button

    intervals = parse_green_button(response.content).intervals
    totals = dict(intervals.group_by("flow").agg(pl.col("kwh").sum()).iter_rows())
    assert totals["delivered"] == pytest.approx(15.4) and totals["received"] == pytest.approx(12.0)
    assert set(intervals["usage_point_mrid"]) == {UP}
    assert intervals.filter(pl.col("quality") == "edited").height == 2


def test_exports_of_someone_elses_or_a_missing_supply_answer_404_and_need_a_login(portal):
    client, url, _ = portal
    for supply_id in ("30000009", "30000404"):
        for path in ("export.csv", "export/greenbutton.xml"):
            response = client.get(f"/api/v1/supplies/{supply_id}/{path}", params={"from": "2026-04-04",
                                                                                 "to": "2026-04-06"})
            assert response.status_code == 404, (supply_id, path)
    import httpx

    anonymous = httpx.get(f"{url}/api/v1/supplies/30000001/export.csv", timeout=10)
    assert anonymous.status_code == 401


def test_export_rejects_bad_windows(portal):
    client, _, _ = portal
    bad = client.get("/api/v1/supplies/30000001/export.csv", params={"from": "2026-04-06", "to": "2026-04-04"})
    assert bad.status_code == 400 and bad.json()["field"] == "from"
    too_long = client.get("/api/v1/supplies/30000001/export.csv", params={"from": "2024-01-01", "to": "2026-04-04"})
    assert too_long.status_code == 400


def test_cli_exits_non_zero_and_prints_the_reason_for_a_quarantined_file(portal, tmp_path):
    _, _, data_dir = portal
    bad = tmp_path / "broken.xml"
    bad.write_text("<ResponseMessage xmlns='http://iec.ch/TC57/2011/schema/message'><Header>")
    result = ingest(data_dir, bad)
    assert result.returncode == 1
    assert "QUARANTINED" in result.stderr and "MalformedXml" in result.stderr
    assert (data_dir / "quarantine" / "broken.xml.reason.txt").exists()

"""pipelines.file_ingest: real message files in, warehouse rows, rollups and processed/quarantine moves out."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from ingest_helpers import METERS, SUPPLIES, UTC, query, write_message

from cim_ingest.writer import (
    READING_TYPE_15MIN_DELIVERED,
    READING_TYPE_REGISTER_DELIVERED,
    IntervalBlockOut,
    MeterReadingOut,
    RegisterReadOut,
)
from pipelines.file_ingest import ingest_files

CIM_DATA = Path(__file__).resolve().parents[1] / "cim_ingest" / "data"
UP1, UP2 = SUPPLIES["30000001"], SUPPLIES["30000002"]
# Local 2026-03-01 00:15 .. 02:00 (-03:00): eight quarter-hours of the first of March.
ENDS = [dt.datetime(2026, 3, 1, 3, 15, tzinfo=UTC) + dt.timedelta(minutes=15 * i) for i in range(8)]


def reading(usage_point: str, values_wh: list[int], qualities=None, registers=()) -> MeterReadingOut:
    supply = next(s for s, up in SUPPLIES.items() if up == usage_point) if usage_point in SUPPLIES.values() else None
    return MeterReadingOut(
        usage_point,
        METERS.get(supply, "aaaaaaaa-0000-4000-8000-000000000000"),
        [IntervalBlockOut(READING_TYPE_15MIN_DELIVERED, ENDS[: len(values_wh)], values_wh=values_wh,
                          qualities=qualities)],
        registers,
    )


def message(path: Path, readings, at: dt.datetime, message_id: str) -> Path:
    return write_message(path, readings, at, message_id)


def day_kwh(data_dir: Path, supply_id: str = "30000001") -> Decimal | None:
    rows = query(data_dir, "SELECT kwh FROM daily_consumption WHERE supply_id = ? AND local_date = ?",
                 [supply_id, dt.date(2026, 3, 1)])
    return rows[0][0] if rows else None


def test_good_file_is_loaded_rolled_up_and_moved_to_processed(data_dir, tmp_path):
    path = message(tmp_path / "in" / "a.xml", [reading(UP1, [100] * 8, registers=[
        RegisterReadOut(READING_TYPE_REGISTER_DELIVERED, ENDS[-1], value_wh=1_234_567)])],
        dt.datetime(2026, 3, 2, tzinfo=UTC), "msg-a")
    [outcome] = ingest_files([path], data_dir)
    assert outcome.status == "processed" and outcome.reason is None
    assert outcome.path == data_dir / "processed" / "a.xml" and outcome.path.exists() and not path.exists()
    assert outcome.readings == 9
    assert outcome.changed_local_dates == [dt.date(2026, 3, 1)]
    assert day_kwh(data_dir) == Decimal("0.8")
    assert query(data_dir, "SELECT kwh, source_message_id FROM register_reads") == [(Decimal("1234.567"), "msg-a")]


def test_same_file_again_changes_nothing(data_dir, tmp_path):
    first = message(tmp_path / "a.xml", [reading(UP1, [100] * 8)], dt.datetime(2026, 3, 2, tzinfo=UTC), "m1")
    copy = tmp_path / "again" / "a.xml"
    copy.parent.mkdir()
    shutil.copy(first, copy)
    ingest_files([first], data_dir)
    loaded_at = query(data_dir, "SELECT max(loaded_at) FROM interval_readings")
    [outcome] = ingest_files([copy], data_dir)
    assert outcome.status == "processed" and outcome.readings == 0 and outcome.changed_local_dates == []
    assert outcome.path.name == "a-1.xml"  # never overwrites an earlier file of the same name
    assert query(data_dir, "SELECT max(loaded_at) FROM interval_readings") == loaded_at
    assert query(data_dir, "SELECT count(*) FROM interval_reading_versions") == [(0,)]


@pytest.mark.parametrize("order", ["old_then_new", "new_then_old"])
def test_newest_message_wins_whatever_order_and_every_version_is_kept(data_dir, tmp_path, order):
    old = message(tmp_path / "old.xml", [reading(UP1, [100] * 8)], dt.datetime(2026, 3, 2, tzinfo=UTC), "m-old")
    new = message(tmp_path / "new.xml", [reading(UP1, [100] * 7 + [500], qualities=[()] * 7 + [("3.7.0",)])],
                  dt.datetime(2026, 3, 5, tzinfo=UTC), "m-new")
    files = [old, new] if order == "old_then_new" else [new, old]
    outcomes = ingest_files(files, data_dir)
    assert [o.status for o in outcomes] == ["processed", "processed"]
    current = query(data_dir, "SELECT kwh, quality, source_message_id FROM interval_readings WHERE interval_end = ?",
                    [ENDS[-1]])
    assert current == [(Decimal("0.5"), "edited", "m-new")]
    versions = query(data_dir, "SELECT kwh, quality, source_message_id, source_message_at FROM "
                               "interval_reading_versions WHERE interval_end = ?", [ENDS[-1]])
    assert [(kwh, quality, mid) for kwh, quality, mid, _ in versions] == [(Decimal("0.1"), "actual", "m-old")]
    assert versions[0][3] == dt.datetime(2026, 3, 2, tzinfo=UTC)
    assert day_kwh(data_dir) == Decimal("1.2")
    # The other seven intervals were identical in both messages: no versions for them.
    assert query(data_dir, "SELECT count(*) FROM interval_reading_versions") == [(1,)]


def test_old_message_arriving_twice_late_records_its_version_once(data_dir, tmp_path):
    new = message(tmp_path / "new.xml", [reading(UP1, [300] * 8)], dt.datetime(2026, 3, 5, tzinfo=UTC), "m-new")
    ingest_files([new], data_dir)
    for copy in range(2):
        old = message(tmp_path / f"old{copy}.xml", [reading(UP1, [100] * 8)], dt.datetime(2026, 3, 2, tzinfo=UTC),
                      "m-old")
        [outcome] = ingest_files([old], data_dir)
        assert outcome.status == "processed" and outcome.readings == 0
    assert query(data_dir, "SELECT count(*), min(source_message_id) FROM interval_reading_versions") == [(8, "m-old")]
    assert day_kwh(data_dir) == Decimal("2.4")


def test_unknown_usage_point_quarantines_the_whole_file(data_dir, tmp_path):
    stranger = "99999999-9999-4999-8999-999999999999"
    path = message(tmp_path / "mixed.xml", [reading(UP1, [100] * 8), reading(stranger, [100] * 8)],
                   dt.datetime(2026, 3, 2, tzinfo=UTC), "m-mixed")
    [outcome] = ingest_files([path], data_dir)
    assert outcome.status == "quarantined"
    assert "UnknownUsagePoints" in outcome.reason and stranger in outcome.reason
    assert query(data_dir, "SELECT count(*) FROM interval_readings") == [(0,)]  # nothing half applied
    reason_file = data_dir / "quarantine" / "mixed.xml.reason.txt"
    assert stranger in reason_file.read_text() and (data_dir / "quarantine" / "mixed.xml").exists()


HOSTILE = {
    "xxe.xml": "UnsafeXml",
    "billion_laughs.xml": "UnsafeXml",
    "external_dtd.xml": "UnsafeXml",
    "truncated.xml": "MalformedXml",
    "unknown_namespace.xml": "UnexpectedMessage",
    "wrong_noun.xml": "UnexpectedMessage",
    "non_numeric_value.xml": "InvalidValue",
    "impossible_timestamp.xml": "InvalidValue",
    "naive_timestamp.xml": "InvalidValue",
    "unsupported_varh.xml": "UnsupportedReadingType",
    "response_failed.xml": "BackendReplyError",
    "fault.xml": "BackendReplyError",
}


def test_hostile_and_broken_files_are_quarantined_with_specific_reasons_and_the_rest_goes_on(data_dir, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    paths = []
    for name in HOSTILE:
        shutil.copy(CIM_DATA / name, inbox / name)
        paths.append(inbox / name)
    huge = inbox / "huge_text.xml"
    huge.write_bytes(
        b'<MeterReadings xmlns="http://iec.ch/TC57/2011/MeterReadings#"><MeterReading><IntervalBlocks>'
        b"<IntervalReadings><timeStamp>2026-03-01T00:15:00-03:00</timeStamp><value>" + b"1" * (11 << 20)
        + b"</value></IntervalReadings></IntervalBlocks></MeterReading></MeterReadings>"
    )
    empty = inbox / "empty.xml"
    empty.write_bytes(b"")
    missing_ns = inbox / "no_namespace.xml"
    missing_ns.write_text("<MeterReadings><MeterReading/></MeterReadings>")
    good = message(inbox / "good.xml", [reading(UP1, [100] * 8)], dt.datetime(2026, 3, 2, tzinfo=UTC), "m-good")
    outcomes = ingest_files([*paths, huge, empty, missing_ns, good], data_dir)
    by_name = {outcome.path.name: outcome for outcome in outcomes}
    for name, error in HOSTILE.items():
        assert by_name[name].status == "quarantined", name
        assert by_name[name].reason.startswith(error + ":"), (name, by_name[name].reason)
        assert (data_dir / "quarantine" / f"{name}.reason.txt").read_text().count(error) == 1
    assert by_name["huge_text.xml"].reason.startswith("UnsafeXml:") and "safety limits" in by_name["huge_text.xml"].reason
    assert "empty" in by_name["empty.xml"].reason
    assert by_name["no_namespace.xml"].reason.startswith("UnexpectedMessage:")
    assert by_name["good.xml"].status == "processed"
    assert day_kwh(data_dir) == Decimal("0.8")
    assert sorted(p.name for p in (data_dir / "processed").iterdir()) == ["good.xml"]


def test_green_button_file_is_detected_and_loaded(data_dir, tmp_path):
    from cim_ingest.greenbutton import ExportInterval, ExportSupply, iter_green_button_feed

    intervals = [ExportInterval(end, 900, 0.25, "estimated") for end in ENDS]
    feed = b"".join(iter_green_button_feed(
        ExportSupply("30000002", "C000001", UP2), {"delivered": intervals}, [], dt.date(2026, 3, 1),
        dt.date(2026, 3, 1), now=dt.datetime(2026, 3, 3, tzinfo=UTC)))
    path = tmp_path / "gb.xml"
    path.write_bytes(feed)
    [outcome] = ingest_files([path], data_dir)
    assert outcome.status == "processed", outcome.reason
    assert outcome.readings == 8
    assert day_kwh(data_dir, "30000002") == Decimal("2")
    rows = query(data_dir, "SELECT DISTINCT quality, quality_codes, source_message_at FROM interval_readings")
    assert rows == [("estimated", "espi:8", dt.datetime(2026, 3, 3, tzinfo=UTC))]


def test_gas_green_button_feed_is_quarantined_naming_the_unit(data_dir, tmp_path):
    sample = Path(__file__).resolve().parents[2].parent / "shared/reference/greenbutton/samples/opower_gas_monthly_billing.xml"
    if not sample.exists():
        pytest.skip(f"Green Button reference sample {sample} is absent")
    path = tmp_path / "gas.xml"
    shutil.copy(sample, path)
    [outcome] = ingest_files([path], data_dir)
    assert outcome.status == "quarantined" and "therm" in outcome.reason


def test_a_bad_value_in_a_later_chunk_rolls_back_the_chunks_already_loaded(data_dir, tmp_path, monkeypatch):
    from pipelines import file_ingest

    monkeypatch.setattr(file_ingest, "PIECE_BYTES", 64)  # one MeterReading per piece
    path = message(tmp_path / "three.xml", [reading(UP1, [100] * 8), reading(UP2, [100] * 8),
                                            reading(UP1, [200] * 8)], dt.datetime(2026, 3, 2, tzinfo=UTC), "m3")
    text = path.read_text()
    cut = text.rindex("<value>0.200</value>")
    path.write_text(text[:cut] + "<value>doscientos</value>" + text[cut + len("<value>0.200</value>"):])
    [outcome] = ingest_files([path], data_dir)
    assert outcome.status == "quarantined" and "'doscientos'" in outcome.reason
    assert query(data_dir, "SELECT count(*) FROM interval_readings") == [(0,)]
    assert query(data_dir, "SELECT count(*) FROM daily_consumption") == [(0,)]


def test_ingest_in_pieces_of_many_meter_readings_loads_them_all(data_dir, tmp_path, monkeypatch):
    from pipelines import file_ingest

    monkeypatch.setattr(file_ingest, "PIECE_BYTES", 64)
    path = message(tmp_path / "many.xml", [reading(UP1, [100] * 8), reading(UP2, [300] * 8)],
                   dt.datetime(2026, 3, 2, tzinfo=UTC), "m-many")
    [outcome] = ingest_files([path], data_dir)
    assert outcome.status == "processed" and outcome.readings == 16
    assert day_kwh(data_dir, "30000001") == Decimal("0.8") and day_kwh(data_dir, "30000002") == Decimal("2.4")


def test_partial_reply_is_loaded_and_its_errors_are_logged(data_dir, tmp_path, caplog):
    from cim_ingest.writer import ReplyError

    path = write_message(tmp_path / "partial.xml", [reading(UP1, [100] * 8)], dt.datetime(2026, 3, 2, tzinfo=UTC),
                         "m-partial", result="PARTIAL",
                         errors=[ReplyError("2.4", "WARNING", "Usage point not found", "mRID x")])
    with caplog.at_level("WARNING", logger="pipelines.file_ingest"):
        [outcome] = ingest_files([path], data_dir)
    assert outcome.status == "processed" and outcome.readings == 8
    assert "PARTIAL" in caplog.text and "Usage point not found" in caplog.text


@pytest.fixture
def threaded_pieces(monkeypatch):
    """Every CIM file is parsed on parse threads, one MeterReading per piece, one staged batch per piece."""
    from cim_ingest import parallel_meter_readings
    from pipelines import file_ingest

    monkeypatch.setattr(file_ingest, "PIECE_BYTES", 64)
    monkeypatch.setattr(parallel_meter_readings, "PARALLEL_MIN_BYTES", 0)


def test_file_parsed_on_threads_in_pieces_is_loaded_whole(data_dir, tmp_path, threaded_pieces):
    path = message(tmp_path / "big.xml", [reading(UP1, [100] * 8), reading(UP2, [300] * 8)],
                   dt.datetime(2026, 3, 2, tzinfo=UTC), "m-big")
    [outcome] = ingest_files([path], data_dir)
    assert outcome.status == "processed" and outcome.readings == 16
    assert outcome.changed_local_dates == [dt.date(2026, 3, 1)]
    assert day_kwh(data_dir, "30000001") == Decimal("0.8") and day_kwh(data_dir, "30000002") == Decimal("2.4")
    assert not any((data_dir / "spool").iterdir())


@pytest.mark.parametrize("problem", ["bad_value_in_last_chunk", "unknown_usage_point_in_last_chunk"])
def test_a_late_problem_in_a_file_in_pieces_rejects_it_before_any_write(
        data_dir, tmp_path, threaded_pieces, problem):
    stranger = "99999999-9999-4999-8999-999999999999"
    last = reading(stranger if problem.startswith("unknown") else UP1, [200] * 8)
    path = message(tmp_path / "late.xml", [reading(UP1, [100] * 8), reading(UP2, [100] * 8), last],
                   dt.datetime(2026, 3, 2, tzinfo=UTC), "m-late")
    if problem.startswith("bad_value"):
        text = path.read_text()
        cut = text.rindex("<value>0.200</value>")
        path.write_text(text[:cut] + "<value>NaN</value>" + text[cut + len("<value>0.200</value>"):])
    [outcome] = ingest_files([path], data_dir)
    assert outcome.status == "quarantined"
    assert ("UnknownUsagePoints" if problem.startswith("unknown") else "InvalidValue") in outcome.reason
    assert query(data_dir, "SELECT count(*) FROM interval_readings") == [(0,)]
    assert "Nothing of this file was loaded." in (data_dir / "quarantine" / "late.xml.reason.txt").read_text()
    assert not any((data_dir / "spool").iterdir())


def test_a_file_ingest_loads_neither_dagster_nor_pyarrow(data_dir, tmp_path):
    """Memory budget: a file ingest (`ami-portal ingest`, the ingest benchmark) runs in a process that never
    imports Dagster or pyarrow (together some 75 MB of peak RSS). Checked in a fresh interpreter."""
    path = message(tmp_path / "in" / "a.xml", [reading(UP1, [100] * 8, registers=[
        RegisterReadOut(READING_TYPE_REGISTER_DELIVERED, ENDS[-1], value_wh=1_234_567)])],
        dt.datetime(2026, 3, 2, tzinfo=UTC), "msg-a")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pipelines.file_ingest import ingest_files\n"
        "[outcome] = ingest_files([Path(sys.argv[1])], Path(sys.argv[2]))\n"
        "print(outcome.status, outcome.readings, outcome.changed_local_dates,"
        " sorted(m for m in ('dagster', 'pyarrow') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(path), str(data_dir)], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "processed 9 [datetime.date(2026, 3, 1)] []"

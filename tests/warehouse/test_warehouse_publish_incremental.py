"""Incremental publish: closed months stay as immutable Parquet files that each snapshot references, so a publish
after a one-day increment writes only the running month; a late correction rewrites only its month; only intervals
loaded since the current snapshot are looked at; the portal's daily base plus recent months read like `daily`;
and the snapshot reads the same as a full rebuild."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pytest
from warehouse_frames import SUPPLY_A, SUPPLY_B, intervals_frame, local_day_intervals

from readmodel import ReadModel
from readmodel.day_columns import DayColumns
from warehouse import publish
from warehouse.loads import upsert_interval_readings
from warehouse.publish import publish_read_model, read_current
from warehouse.rollups import local_midnight_utc, rebuild_daily

DAYS = [dt.date(2026, 6, 29), dt.date(2026, 6, 30), dt.date(2026, 7, 1), dt.date(2026, 8, 3)]


def _load_day(con, day: dt.date, kwh: float = 0.2, supplies=(SUPPLY_A, SUPPLY_B)) -> None:
    rows = []
    for _, usage_point in supplies:
        rows += local_day_intervals(usage_point, local_midnight_utc(day) + dt.timedelta(minutes=15), 96,
                                    lambda index: kwh + index / 1000)
    upsert_interval_readings(con, intervals_frame(rows))
    rebuild_daily(con, day, day)


def _snapshot_rows(readmodel, table: str, order: str) -> list[tuple]:
    con = duckdb.connect(str(readmodel / read_current(readmodel)), read_only=True)
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
    finally:
        con.close()


def test_one_day_increment_writes_only_the_running_month(loaded_con, tmp_path):
    readmodel = tmp_path / "readmodel"
    for day in DAYS[:3]:
        _load_day(loaded_con, day)
    first = publish_read_model(loaded_con, readmodel)
    assert first.parts_written == 4  # intervals and daily, June and July
    parts_before = {path: path.stat().st_mtime_ns for path in (readmodel / "parts").rglob("*.parquet")}

    _load_day(loaded_con, DAYS[3])  # a new day in August
    second = publish_read_model(loaded_con, readmodel)
    assert (second.parts_written, second.parts_reused) == (2, 4)
    for path, mtime in parts_before.items():
        assert path.stat().st_mtime_ns == mtime  # closed months untouched
    assert second.row_counts["intervals"] == 4 * 96 * 2

    # Publishing again with nothing changed writes no month file.
    assert publish_read_model(loaded_con, readmodel).parts_written == 0


def test_late_correction_rewrites_only_its_month_and_old_snapshots_keep_their_data(loaded_con, tmp_path):
    readmodel = tmp_path / "readmodel"
    for day in DAYS:
        _load_day(loaded_con, day)
    old = publish_read_model(loaded_con, readmodel)
    old_view = duckdb.connect(str(old.path), read_only=True)
    corrected_at = local_midnight_utc(DAYS[0]) + dt.timedelta(hours=10)
    upsert_interval_readings(loaded_con, intervals_frame([(SUPPLY_A[1], corrected_at, 9.5, "edited")]))
    rebuild_daily(loaded_con, DAYS[0], DAYS[0])
    new = publish_read_model(loaded_con, readmodel)
    assert new.parts_written == 2  # June intervals and June daily
    corrected = [row for row in _snapshot_rows(readmodel, "intervals", "supply_id, flow, interval_end")
                 if row[0] == SUPPLY_A[0] and row[2] == corrected_at]
    assert [row[4:] for row in corrected] == [(9.5, "edited")]
    # A reader still on the old snapshot sees the old value: its month file was not replaced in place.
    old_value = old_view.execute(
        "SELECT kwh FROM intervals WHERE supply_id = ? AND interval_end = ?", [SUPPLY_A[0], corrected_at]
    ).fetchall()
    old_view.close()
    assert old_value[0][0] == pytest.approx(0.2 + 39 / 1000)


def test_incremental_snapshot_reads_the_same_as_a_full_rebuild(loaded_con, tmp_path):
    incremental = tmp_path / "incremental"
    for day in DAYS:
        _load_day(loaded_con, day)
        publish_read_model(loaded_con, incremental)
    full = tmp_path / "full"
    shutil.rmtree(full, ignore_errors=True)
    publish_read_model(loaded_con, full)
    for table, order in (("intervals", "supply_id, flow, interval_end"), ("daily", "supply_id, flow, local_date"),
                         ("supplies", "supply_id"), ("monthly", "supply_id, flow, month")):
        assert _snapshot_rows(incremental, table, order) == _snapshot_rows(full, table, order), table


def _consumption_by_day(readmodel, supply_id: str) -> dict[str, tuple]:
    model = ReadModel(readmodel)
    try:
        answer = model.consumption(supply_id, "day", dt.date(2026, 6, 1), dt.date(2026, 9, 1))
    finally:
        model.close()
    return {point["start"][:10]: (point["kwh"], point["quality"]) for point in answer["points"]}


def _days_from_view(readmodel, supply_id: str) -> dict[str, float]:
    rows = _snapshot_rows(readmodel, "daily", "supply_id, flow, local_date")
    return {row[2].isoformat(): row[3] for row in rows if row[0] == supply_id and row[1] == "delivered"}


def test_only_changes_since_the_current_snapshot_are_scanned(loaded_con, tmp_path):
    readmodel = tmp_path / "readmodel"
    _load_day(loaded_con, DAYS[0])
    first = publish_read_model(loaded_con, readmodel)
    assert not first.incremental  # nothing published there yet: everything is scanned once
    _load_day(loaded_con, DAYS[1])
    second = publish_read_model(loaded_con, readmodel)
    assert second.incremental
    # A change that no load stamped is not looked for: loads stamp what they write (loaded_at).
    loaded_con.execute("UPDATE interval_readings SET kwh = kwh + 1 WHERE interval_end = "
                       "(SELECT min(interval_end) FROM interval_readings)")
    assert publish_read_model(loaded_con, readmodel).parts_written == 0
    loaded_con.execute("UPDATE interval_readings SET loaded_at = now() WHERE interval_end = "
                       "(SELECT min(interval_end) FROM interval_readings)")
    assert publish_read_model(loaded_con, readmodel).parts_written == 1  # June intervals; daily is unchanged


def test_portal_reads_days_from_the_base_and_the_months_changed_since(loaded_con, tmp_path):
    readmodel = tmp_path / "readmodel"
    for day in DAYS[:3]:
        _load_day(loaded_con, day)
    first = publish_read_model(loaded_con, readmodel)
    assert (first.daily_base_rebuilt, first.daily_recent_months) == (True, 0)

    _load_day(loaded_con, DAYS[3])  # August is new
    corrected_at = local_midnight_utc(DAYS[0]) + dt.timedelta(hours=10)  # June is corrected
    upsert_interval_readings(loaded_con, intervals_frame([(SUPPLY_A[1], corrected_at, 9.5, "edited")]))
    rebuild_daily(loaded_con, DAYS[0], DAYS[0])
    second = publish_read_model(loaded_con, readmodel)
    assert (second.daily_base_rebuilt, second.daily_recent_months) == (False, 2)

    for supply_id in (SUPPLY_A[0], SUPPLY_B[0]):
        served = _consumption_by_day(readmodel, supply_id)
        stored = _days_from_view(readmodel, supply_id)
        assert {day: kwh for day, (kwh, _) in served.items() if kwh is not None} == pytest.approx(stored)
    assert _consumption_by_day(readmodel, SUPPLY_A[0])[DAYS[0].isoformat()][1] == "edited"


def test_daily_base_is_rewritten_when_too_many_months_changed(loaded_con, tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "DAILY_MAX_RECENT_MONTHS", 1)
    readmodel = tmp_path / "readmodel"
    for day in DAYS[:3]:
        _load_day(loaded_con, day)
    publish_read_model(loaded_con, readmodel)
    _load_day(loaded_con, DAYS[3])
    assert publish_read_model(loaded_con, readmodel).daily_recent_months == 1  # August only
    _load_day(loaded_con, DAYS[1], kwh=0.3)  # June changes too: two months beside the base, one too many
    third = publish_read_model(loaded_con, readmodel)
    assert (third.daily_base_rebuilt, third.daily_recent_months) == (True, 0)
    served = _consumption_by_day(readmodel, SUPPLY_B[0])
    assert {day: kwh for day, (kwh, _) in served.items() if kwh is not None} == pytest.approx(
        _days_from_view(readmodel, SUPPLY_B[0]))


def _base_of(readmodel) -> str:
    return dict(_snapshot_rows(readmodel, "meta", "key"))["daily_base"]


def test_daily_base_gives_each_supply_a_contiguous_row_range(loaded_con, tmp_path):
    readmodel = tmp_path / "readmodel"
    for day in DAYS[:3]:
        _load_day(loaded_con, day)
    publish_read_model(loaded_con, readmodel)
    base = duckdb.connect(str(readmodel / _base_of(readmodel)), read_only=True)
    try:
        for supply_id, flow, first_row, last_row, rows in base.execute("SELECT * FROM spans").fetchall():
            days = base.execute("SELECT rowid, supply_id, flow FROM daily WHERE rowid BETWEEN ? AND ?",
                                [first_row, last_row]).fetchall()
            assert len(days) == rows == 3
            assert {(row[1], row[2]) for row in days} == {(supply_id, flow)}
        assert base.execute("SELECT count(*) FROM spans").fetchall()[0][0] == 2
    finally:
        base.close()


def test_a_supply_new_since_the_base_is_served_from_the_recent_months(loaded_con, tmp_path):
    readmodel = tmp_path / "readmodel"
    for day in DAYS[:3]:
        _load_day(loaded_con, day, supplies=(SUPPLY_A,))
    publish_read_model(loaded_con, readmodel)
    _load_day(loaded_con, DAYS[3])  # supply B's first day, in August
    assert publish_read_model(loaded_con, readmodel).daily_base_rebuilt is False
    served = _consumption_by_day(readmodel, SUPPLY_B[0])
    assert {day: kwh for day, (kwh, _) in served.items() if kwh is not None} == pytest.approx(
        _days_from_view(readmodel, SUPPLY_B[0]))
    assert [day for day, (kwh, _) in served.items() if kwh is not None] == [DAYS[3].isoformat()]


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_a_base_of_an_earlier_layout_is_read_the_same_then_replaced(loaded_con, tmp_path, layout):
    readmodel = tmp_path / "readmodel"
    for day in DAYS[:3]:
        _load_day(loaded_con, day)
    publish_read_model(loaded_con, readmodel)
    # What an earlier publisher wrote: v2 had `spans` but no day columns; v1 neither, and no layout in the name.
    relative = _base_of(readmodel)
    old_relative = relative.replace(f"base-{publish.DAILY_BASE_LAYOUT}-", "base-v2-" if layout == "v2" else "base-")
    publish.day_columns_path(readmodel / relative).unlink()
    if layout == "v1":
        with duckdb.connect(str(readmodel / relative)) as base:
            base.execute("DROP TABLE spans")
    (readmodel / relative).rename(readmodel / old_relative)
    with duckdb.connect(str(readmodel / read_current(readmodel))) as snapshot:
        snapshot.execute("UPDATE meta SET value = ? WHERE key = 'daily_base'", [old_relative])
        snapshot.execute("UPDATE published_parts SET path = ? WHERE path = ?", [old_relative, relative])
    for supply_id in (SUPPLY_A[0], SUPPLY_B[0]):
        served = _consumption_by_day(readmodel, supply_id)
        assert {day: kwh for day, (kwh, _) in served.items() if kwh is not None} == pytest.approx(
            _days_from_view(readmodel, supply_id))
        assert len([kwh for kwh, _ in served.values() if kwh is not None]) == 3

    _load_day(loaded_con, DAYS[3])
    assert publish_read_model(loaded_con, readmodel).daily_base_rebuilt is True
    assert _base_of(readmodel).startswith(f"parts/daily_base/base-{publish.DAILY_BASE_LAYOUT}-")
    assert publish.day_columns_path(readmodel / _base_of(readmodel)).is_file()


def test_day_columns_beside_the_base_hold_its_rows_and_are_what_the_portal_reads(loaded_con, tmp_path):
    readmodel = tmp_path / "readmodel"
    for day in DAYS[:3]:
        _load_day(loaded_con, day)
    _load_day(loaded_con, DAYS[3], supplies=(SUPPLY_A,))
    publish_read_model(loaded_con, readmodel)
    base_path = readmodel / _base_of(readmodel)
    columns = DayColumns(publish.day_columns_path(base_path))
    with duckdb.connect(str(base_path), read_only=True) as base:
        assert columns.rows == base.execute("SELECT count(*) FROM daily").fetchall()[0][0] == 7  # 3 + 3 + 1 days
        assert len(columns) == 2
        for supply_id, flow in base.execute("SELECT supply_id, flow FROM spans").fetchall():
            stored = base.execute(
                "SELECT day, kwh, intervals, expected_intervals, quality FROM daily WHERE supply_id = ? AND flow = ? "
                "ORDER BY day", [supply_id, flow]).fetchall()
            assert columns.days(supply_id, flow, -10**6, 10**6) == {row[0]: row[1:] for row in stored}
            # the window is cut by day: the first day alone, then nothing
            assert list(columns.days(supply_id, flow, stored[0][0], stored[0][0] + 1)) == [stored[0][0]]
            assert columns.days(supply_id, flow, 0, stored[0][0]) == {}
    model = ReadModel(readmodel)
    try:
        model.consumption(SUPPLY_A[0], "day", DAYS[0], DAYS[3])
        assert model._base_columns(model._connections.connection()) is not None
        assert not model._spans_by_base  # the columns' own index: the base's spans were never loaded
    finally:
        model.close()
    served = _consumption_by_day(readmodel, SUPPLY_A[0])
    assert {day: kwh for day, (kwh, _) in served.items() if kwh is not None} == pytest.approx(
        _days_from_view(readmodel, SUPPLY_A[0]))


def _replace(path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(data)
    temporary.replace(path)


def test_the_months_changed_since_the_base_are_day_columns_too(loaded_con, tmp_path, caplog):
    readmodel = tmp_path / "readmodel"
    for day in DAYS[:3]:
        _load_day(loaded_con, day)
    publish_read_model(loaded_con, readmodel)
    assert "daily_recent_columns" not in dict(_snapshot_rows(readmodel, "meta", "key"))  # nothing recent yet
    _load_day(loaded_con, DAYS[3])  # August is new
    corrected_at = local_midnight_utc(DAYS[0]) + dt.timedelta(hours=10)  # June is corrected
    upsert_interval_readings(loaded_con, intervals_frame([(SUPPLY_A[1], corrected_at, 9.5, "edited")]))
    rebuild_daily(loaded_con, DAYS[0], DAYS[0])
    assert publish_read_model(loaded_con, readmodel).daily_recent_months == 2
    recent_path = readmodel / dict(_snapshot_rows(readmodel, "meta", "key"))["daily_recent_columns"]
    recent = DayColumns(recent_path)
    recent_rows = _snapshot_rows(readmodel, "daily_recent", "supply_id, flow, day")
    assert recent.rows == len(recent_rows) == 2 + 2 * 2  # June: both supplies' two days; August: one day each
    for supply_id, flow, _, _, intervals, expected, quality, day in recent_rows:
        assert recent.days(supply_id, flow, day, day + 1)[day][1:] == (intervals, expected, quality)
    model = ReadModel(readmodel)
    try:
        assert model._recent_columns(model._connections.connection()) is not None
    finally:
        model.close()
    served = _consumption_by_day(readmodel, SUPPLY_A[0])
    assert served[DAYS[0].isoformat()][1] == "edited"
    assert {day: kwh for day, (kwh, _) in served.items() if kwh is not None} == pytest.approx(
        _days_from_view(readmodel, SUPPLY_A[0]))
    # Without them (a damaged file, replaced whole: mapped files are never changed in place), the same answer
    # from the `daily_recent` table.
    _replace(recent_path, b"")
    assert _consumption_by_day(readmodel, SUPPLY_A[0]) == served
    assert "unusable" in caplog.text
    # The next snapshots do not need them: deleted with their snapshot.
    for _ in range(4):
        publish_read_model(loaded_con, readmodel)
    publish.clean_old_snapshots(readmodel, keep=1, min_age_seconds=0)
    assert not recent_path.exists()
    assert len(list(recent_path.parent.iterdir())) == 1


def test_unusable_day_columns_are_read_around_through_the_base(loaded_con, tmp_path, caplog):
    readmodel = tmp_path / "readmodel"
    for day in DAYS[:3]:
        _load_day(loaded_con, day)
    publish_read_model(loaded_con, readmodel)
    expected = _consumption_by_day(readmodel, SUPPLY_A[0])
    columns_path = publish.day_columns_path(readmodel / _base_of(readmodel))
    _replace(columns_path, columns_path.read_bytes()[:-1])  # one byte short
    assert _consumption_by_day(readmodel, SUPPLY_A[0]) == expected
    assert "unusable" in caplog.text
    columns_path.unlink()
    assert _consumption_by_day(readmodel, SUPPLY_A[0]) == expected


def test_a_replaced_base_goes_with_its_day_columns(loaded_con, tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "DAILY_MAX_RECENT_MONTHS", 0)
    readmodel = tmp_path / "readmodel"
    _load_day(loaded_con, DAYS[0])
    first_base = readmodel / _base_of_publish(loaded_con, readmodel)
    assert publish.day_columns_path(first_base).exists()
    for day in DAYS[1:]:
        _load_day(loaded_con, day)
        publish_read_model(loaded_con, readmodel)
    publish.clean_old_snapshots(readmodel, keep=1, min_age_seconds=0)
    assert not first_base.exists() and not publish.day_columns_path(first_base).exists()
    current = readmodel / _base_of(readmodel)
    assert current.exists() and publish.day_columns_path(current).exists()


def _base_of_publish(con, readmodel) -> str:
    publish_read_model(con, readmodel)
    return _base_of(readmodel)

"""The day columns the publisher writes (beside a daily base, and for a snapshot's recent months) read back as the
same rows DuckDB holds, NULLs and odd qualities included, for any supply and window; rows out of order are not
written; a file of the wrong size or kind is refused rather than misread."""

from __future__ import annotations

from unittest import mock

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from readmodel.day_columns import DayColumns, DayColumnsError
from warehouse import publish

QUALITIES = st.one_of(st.none(), st.sampled_from(["actual", "edited", "estimated", "missing", "questionable"]))


SUPPLIES = ("30000001", "30000002", "30000003")
FLOWS = ("delivered", "received")


def _write(tmp_path, rows: list[tuple], order: str = "supply_id, flow, day",
           chunk_rows: int = 3) -> tuple[DayColumns | None, list]:
    """`rows` (supply, flow, kwh, intervals, expected, quality) as consecutive days of each supply and flow, in a
    table sorted by `order`, written by the publisher's own code, `chunk_rows` rows at a time (small: the checks
    across chunks run); (the columns read back or None, the rows)."""
    con = duckdb.connect()
    path = tmp_path / "table.days"
    path.unlink(missing_ok=True)
    try:
        con.execute("CREATE TABLE source (supply_id VARCHAR, flow VARCHAR, day INTEGER, kwh DOUBLE, "
                    "intervals INTEGER, expected_intervals INTEGER, quality VARCHAR)")
        if rows:
            con.executemany("INSERT INTO source VALUES (?, ?, 20000 + ?, ?, ?, ?, ?)",
                            [(supply, flow, index, *values) for index, (supply, flow, *values) in enumerate(rows)])
        con.execute(f"CREATE TABLE daily AS SELECT * FROM source ORDER BY {order}")
        with mock.patch.object(publish, "_DAY_COLUMNS_CHUNK_ROWS", chunk_rows):
            written = publish._write_day_columns(con, "daily", path)
        stored = con.execute("SELECT supply_id, flow, day, kwh, intervals, expected_intervals, quality FROM daily "
                             "ORDER BY rowid").fetchall()
    finally:
        con.close()
    assert written == path.exists()
    return (DayColumns(path) if written else None), stored


ROWS = st.lists(
    st.tuples(
        st.sampled_from(SUPPLIES),
        st.sampled_from(FLOWS),
        st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
        st.one_of(st.none(), st.integers(0, 300)),
        st.one_of(st.none(), st.integers(0, 300)),
        QUALITIES,
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, window=st.tuples(st.integers(19990, 20070), st.integers(0, 80)),
       chunk_rows=st.sampled_from([1, 3, 1 << 20]))
def test_day_columns_read_back_as_the_rows_duckdb_holds(tmp_path, rows, window, chunk_rows):
    columns, stored = _write(tmp_path, rows, chunk_rows=chunk_rows)
    first_day, stop_day = window[0], window[0] + window[1]
    for supply in SUPPLIES:
        for flow in FLOWS:
            expected = {
                day: (kwh, intervals, expected_intervals,
                      quality if quality in ("actual", "edited", "estimated", "missing") else None)
                for supply_id, row_flow, day, kwh, intervals, expected_intervals, quality in stored
                if (supply_id, row_flow) == (supply, flow) and first_day <= day < stop_day
            }
            assert columns.days(supply, flow, first_day, stop_day) == expected
    assert len(columns) == len({(supply, flow) for supply, flow, *_ in rows})


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 1 << 20])
def test_rows_out_of_order_are_not_written(tmp_path, chunk_rows):
    rows = [("30000001", "delivered", 1.0, 96, 96, "actual")] * 3
    columns, _ = _write(tmp_path, rows, order="day DESC", chunk_rows=chunk_rows)
    assert columns is None  # days not increasing within a supply (also across a chunk's edge)
    columns, _ = _write(tmp_path, rows + [("30000002", "delivered", 1.0, 96, 96, "actual")], order="day")
    assert columns is not None
    interleaved = [(supply, "delivered", 1.0, 96, 96, "actual") for supply in SUPPLIES * 2]
    columns, _ = _write(tmp_path, interleaved, order="day")
    assert columns is None  # a supply's rows not contiguous


def test_a_file_of_the_wrong_size_or_kind_is_refused(tmp_path):
    _write(tmp_path, [("30000001", "delivered", 1.5, 96, 96, "actual")] * 3)
    path = tmp_path / "table.days"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DayColumnsError, match="bytes"):
        DayColumns(path)
    path.write_bytes(b"PAR1" + bytes(100))
    with pytest.raises(DayColumnsError, match="not a day-columns file"):
        DayColumns(path)

"""The day columns the publisher writes beside a daily base read back as the same rows DuckDB holds, NULLs and odd
qualities included, for any window; a file of the wrong size or kind is refused rather than misread."""

from __future__ import annotations

import math

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from readmodel.day_columns import DayColumns, DayColumnsError
from warehouse import publish

QUALITIES = st.one_of(st.none(), st.sampled_from(["actual", "edited", "estimated", "missing", "questionable"]))
ROWS = st.lists(
    st.tuples(
        st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
        st.one_of(st.none(), st.integers(0, 300)),
        st.one_of(st.none(), st.integers(0, 300)),
        QUALITIES,
    ),
    max_size=60,
)


def _write(tmp_path, rows: list[tuple]) -> tuple[DayColumns, list[tuple]]:
    """`rows` as one supply's consecutive days in a base written by the publisher's own code."""
    con = duckdb.connect()
    path = tmp_path / "base.days"
    try:
        con.execute(f"ATTACH ':memory:' AS {publish._BASE_ALIAS}")
        con.execute(f"CREATE TABLE {publish._BASE_ALIAS}.daily (day INTEGER, kwh DOUBLE, intervals INTEGER, "
                    "expected_intervals INTEGER, quality VARCHAR)")
        if rows:
            con.executemany(f"INSERT INTO {publish._BASE_ALIAS}.daily VALUES (?, ?, ?, ?, ?)",
                            [(20000 + index, *row) for index, row in enumerate(rows)])
        publish._write_day_columns(con, path)
        stored = con.execute(f"SELECT * FROM {publish._BASE_ALIAS}.daily ORDER BY rowid").fetchall()
    finally:
        con.close()
    return DayColumns(path), stored


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, window=st.tuples(st.integers(19990, 20070), st.integers(0, 80)))
def test_day_columns_read_back_as_the_rows_duckdb_holds(tmp_path, rows, window):
    columns, stored = _write(tmp_path, rows)
    first_day, stop_day = window[0], window[0] + window[1]
    expected = {
        day: (kwh, intervals, expected_intervals,
              quality if quality in ("actual", "edited", "estimated", "missing") else None)
        for day, kwh, intervals, expected_intervals, quality in stored if first_day <= day < stop_day
    }
    assert columns.days(0, len(stored), first_day, stop_day) == expected


def test_a_row_range_outside_the_file_is_refused(tmp_path):
    columns, stored = _write(tmp_path, [(1.5, 96, 96, "actual")] * 3)
    with pytest.raises(DayColumnsError):
        columns.days(2, 2, 0, 10**6)
    assert [value[0] for value in columns.days(1, 2, 0, 10**6).values()] == [1.5, 1.5]
    assert not math.isnan(columns.days(0, 1, 0, 10**6)[20000][0])


def test_a_file_of_the_wrong_size_or_kind_is_refused(tmp_path):
    _write(tmp_path, [(1.5, 96, 96, "actual")] * 3)
    path = tmp_path / "base.days"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DayColumnsError, match="bytes"):
        DayColumns(path)
    path.write_bytes(b"PAR1" + bytes(100))
    with pytest.raises(DayColumnsError, match="not a day-columns file"):
        DayColumns(path)

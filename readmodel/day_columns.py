"""A daily base's day columns, mapped into memory: one supply's days by row range without a query.

The publisher writes them beside each supply-sorted daily base (`parts/daily_base/base-v3-<digest>.days`, see
`warehouse.publish._write_day_columns` and docs/architecture.md): a 64-byte header (`AMIDAYS1`, then the row count
as a little-endian uint64), then for all rows of the base's `daily`, in rowid order, `kwh` float64 (NaN for NULL),
`day` int32 (days since 1970-01-01), `intervals` and `expected_intervals` int32 (-1 for NULL) and `quality` uint8
(0 actual, 1 edited, 2 estimated, 3 missing, 255 anything else). The file is immutable once in place; the mapping
is shared by every thread of the process and by every process through the page cache.
"""

from __future__ import annotations

import mmap
import sys
from bisect import bisect_left
from pathlib import Path

SUFFIX = ".days"  # beside the base, same stem
MAGIC = b"AMIDAYS1"
HEADER_BYTES = 64
QUALITIES = ("actual", "edited", "estimated", "missing")
_QUALITY_OF_CODE = tuple(QUALITIES[code] if code < len(QUALITIES) else None for code in range(256))
# (column, memoryview format, item size), in file order
_LAYOUT = (("kwh", "d", 8), ("day", "i", 4), ("intervals", "i", 4), ("expected_intervals", "i", 4),
           ("quality", "B", 1))


class DayColumnsError(ValueError):
    """The file is not a day-columns file of this layout (or this machine cannot read it as such)."""


class DayColumns:
    """Read-only view of one day-columns file."""

    def __init__(self, path: Path):
        if sys.byteorder != "little":
            raise DayColumnsError("day columns are little-endian; this machine is not")
        with open(path, "rb") as handle:
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        header = self._map[:len(MAGIC) + 8]
        if len(header) < len(MAGIC) + 8 or header[:len(MAGIC)] != MAGIC:
            raise DayColumnsError(f"{path} is not a day-columns file")
        self.rows = int.from_bytes(header[len(MAGIC):], "little")
        expected_size = HEADER_BYTES + self.rows * sum(size for _, _, size in _LAYOUT)
        if len(self._map) != expected_size:
            raise DayColumnsError(f"{path} holds {len(self._map)} bytes; {self.rows} rows need {expected_size}")
        whole, offset, views = memoryview(self._map), HEADER_BYTES, {}
        for name, code, size in _LAYOUT:
            views[name] = whole[offset:offset + self.rows * size].cast(code)
            offset += self.rows * size
        self._kwh, self._day = views["kwh"], views["day"]
        self._intervals, self._expected, self._quality = (
            views["intervals"], views["expected_intervals"], views["quality"])

    def days(self, first_row: int, rows: int, first_day: int, stop_day: int) -> dict[int, tuple]:
        """The rows first_row .. first_row + rows - 1 (one supply and flow, sorted by day) whose day lies in
        [first_day, stop_day): day -> (kwh, intervals, expected_intervals, quality), NULLs as None, as the same
        rows give from DuckDB (a quality outside QUALITIES comes back as None: the portal shows both as missing)."""
        if first_row < 0 or rows < 0 or first_row + rows > self.rows:
            raise DayColumnsError(f"rows {first_row}..{first_row + rows - 1} outside 0..{self.rows - 1}")
        span = self._day[first_row:first_row + rows]
        low = first_row + bisect_left(span, first_day)
        high = first_row + bisect_left(span, stop_day)
        kwh = [None if value != value else value for value in self._kwh[low:high].tolist()]  # NaN: NULL
        intervals = [None if value < 0 else value for value in self._intervals[low:high].tolist()]
        expected = [None if value < 0 else value for value in self._expected[low:high].tolist()]
        quality = [_QUALITY_OF_CODE[code] for code in self._quality[low:high].tolist()]
        return dict(zip(self._day[low:high].tolist(), zip(kwh, intervals, expected, quality, strict=True),
                        strict=True))

"""Day columns of the read model's daily rows, mapped into memory: one supply's days without a query.

The publisher writes them beside each supply-sorted daily base (`parts/daily_base/base-v3-<digest>.days`) and, for
a snapshot whose `daily_recent` holds months changed since its base, for those rows too
(`parts/daily_recent/<snapshot>.days`); see `warehouse.publish._write_day_columns` and docs/architecture.md.
Layout, all little-endian: a 64-byte header (`AMIDAYS1`, then as uint64 the row count N, the key count K and the
byte length of the key text), then for all N rows, sorted by supply, flow and day: `kwh` float64 (NaN for NULL),
`day` int32 (days since 1970-01-01), `intervals` and `expected_intervals` int32 (-1 for NULL), `quality` uint8
(0 actual, 1 edited, 2 estimated, 3 missing, 255 anything else); zero padding to a multiple of 8; then for the K
keys (`supply_id + "\\x1f" + flow`) their rows as int64 `first_row << 24 | rows`; then the keys as UTF-8 text joined
by newlines, in the same order. A file is immutable once in place; the mapping is shared by every thread of the
process and, through the page cache, by every process.
"""

from __future__ import annotations

import mmap
import sys
from bisect import bisect_left
from pathlib import Path

SUFFIX = ".days"
MAGIC = b"AMIDAYS1"
HEADER_BYTES = 64
QUALITIES = ("actual", "edited", "estimated", "missing")
SPAN_ROWS_BITS = 24
_SPAN_ROWS_MASK = (1 << SPAN_ROWS_BITS) - 1
_QUALITY_OF_CODE = tuple(QUALITIES[code] if code < len(QUALITIES) else None for code in range(256))
# (column, memoryview format, item size), in file order
_LAYOUT = (("kwh", "d", 8), ("day", "i", 4), ("intervals", "i", 4), ("expected_intervals", "i", 4),
           ("quality", "B", 1))
ROW_BYTES = sum(size for _, _, size in _LAYOUT)


def key_of(supply_id: str, flow: str) -> str:
    return f"{supply_id}\x1f{flow}"


def padded(size: int) -> int:
    return -(-size // 8) * 8


class DayColumnsError(ValueError):
    """The file is not a day-columns file of this layout (or this machine cannot read it as such)."""


class DayColumns:
    """Read-only view of one day-columns file."""

    def __init__(self, path: Path):
        if sys.byteorder != "little":
            raise DayColumnsError("day columns are little-endian; this machine is not")
        with open(path, "rb") as handle:
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        header = self._map[:32]
        if len(header) < 32 or header[:len(MAGIC)] != MAGIC:
            raise DayColumnsError(f"{path} is not a day-columns file")
        self.rows, keys, text_bytes = (int.from_bytes(header[start:start + 8], "little") for start in (8, 16, 24))
        columns_end = padded(HEADER_BYTES + self.rows * ROW_BYTES)
        expected_size = columns_end + 8 * keys + text_bytes
        if len(self._map) != expected_size:
            raise DayColumnsError(f"{path} holds {len(self._map)} bytes; its header says {expected_size}")
        whole, offset, views = memoryview(self._map), HEADER_BYTES, {}
        for name, code, size in _LAYOUT:
            views[name] = whole[offset:offset + self.rows * size].cast(code)
            offset += self.rows * size
        self._kwh, self._day = views["kwh"], views["day"]
        self._intervals, self._expected, self._quality = (
            views["intervals"], views["expected_intervals"], views["quality"])
        spans = whole[columns_end:columns_end + 8 * keys].cast("q").tolist()
        names = bytes(whole[columns_end + 8 * keys:]).decode("utf-8").split("\n") if keys else []
        if len(names) != keys:
            raise DayColumnsError(f"{path} names {len(names)} keys; its header says {keys}")
        self._spans = dict(zip(names, spans, strict=True))

    def __len__(self) -> int:
        """How many supply-and-flow keys the file holds."""
        return len(self._spans)

    def days(self, supply_id: str, flow: str, first_day: int, stop_day: int) -> dict[int, tuple]:
        """The supply's rows of `flow` whose day lies in [first_day, stop_day): day -> (kwh, intervals,
        expected_intervals, quality), NULLs as None, as the same rows give from DuckDB (a quality outside
        QUALITIES comes back as None: the portal shows both as missing)."""
        span = self._spans.get(key_of(supply_id, flow))
        if span is None:
            return {}
        first_row, rows = span >> SPAN_ROWS_BITS, span & _SPAN_ROWS_MASK
        if first_row + rows > self.rows:
            raise DayColumnsError(f"rows {first_row}..{first_row + rows - 1} outside 0..{self.rows - 1}")
        span_days = self._day[first_row:first_row + rows]
        low = first_row + bisect_left(span_days, first_day)
        high = first_row + bisect_left(span_days, stop_day)
        kwh = [None if value != value else value for value in self._kwh[low:high].tolist()]  # NaN: NULL
        intervals = [None if value < 0 else value for value in self._intervals[low:high].tolist()]
        expected = [None if value < 0 else value for value in self._expected[low:high].tolist()]
        quality = [_QUALITY_OF_CODE[code] for code in self._quality[low:high].tolist()]
        return dict(zip(self._day[low:high].tolist(), zip(kwh, intervals, expected, quality, strict=True),
                        strict=True))

"""IEC 61968-9 ReadingQuality codes (`system.category.index`) reduced to the portal's one quality per value.

Precedence when several codes apply: missing > estimated > edited > actual. A value that came without any
ReadingQuality is valid, i.e. actual."""

from __future__ import annotations

import re
from functools import lru_cache

from cim_ingest.errors import InvalidValue

ACTUAL = "actual"
EDITED = "edited"
ESTIMATED = "estimated"
MISSING = "missing"
QUALITIES = (ACTUAL, EDITED, ESTIMATED, MISSING)
_RANK = {quality: rank for rank, quality in enumerate(QUALITIES)}

MISSING_READ = (5, 259)
ESTIMATED_CATEGORIES = frozenset({8, 12})  # estimated, projected
EDITED_CATEGORIES = frozenset({7, 11})  # edited, derived

_CODE_PATTERN = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,5}$")


def parse_quality_code(code: str) -> tuple[int, int, int]:
    """`'2.5.259'` -> `(2, 5, 259)`; InvalidValue when not three dot-separated non-negative integers."""
    if not _CODE_PATTERN.match(code):
        raise InvalidValue(
            f"ReadingQuality code {code!r} is not of the form system.category.index (e.g. 3.8.0)."
        )
    system, category, index = code.split(".")
    return int(system), int(category), int(index)


def quality_of_code(code: str) -> str:
    """The portal quality one raw code implies on its own."""
    _system, category, index = parse_quality_code(code)
    if (category, index) == MISSING_READ:
        return MISSING
    if category in ESTIMATED_CATEGORIES:
        return ESTIMATED
    if category in EDITED_CATEGORIES:
        return EDITED
    return ACTUAL


def worst_quality(qualities: list[str] | tuple[str, ...]) -> str:
    """The quality that wins under missing > estimated > edited > actual."""
    return max(qualities, key=_RANK.__getitem__, default=ACTUAL)


def portal_quality(codes: list[str] | tuple[str, ...]) -> str:
    """One portal quality for all the raw codes of a value ([] means actual)."""
    return worst_quality([quality_of_code(code) for code in codes])


@lru_cache(maxsize=4096)
def portal_quality_of_joined(joined_codes: str) -> str:
    """Same as `portal_quality` for codes joined with ';' (cached: real data repeats a handful of combinations)."""
    if not joined_codes:
        return ACTUAL
    return portal_quality(joined_codes.split(";"))

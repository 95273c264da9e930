"""ReadingQuality codes reduced to one portal quality, with precedence missing > estimated > edited > actual."""

from __future__ import annotations

import pytest

from cim_ingest.errors import InvalidValue
from cim_ingest.quality import parse_quality_code, portal_quality, portal_quality_of_joined, quality_of_code


@pytest.mark.parametrize(
    "code, quality",
    [
        ("1.0.0", "actual"),
        ("1.4.9", "actual"),
        ("1.2.32", "actual"),
        ("3.6.0", "actual"),
        ("2.5.259", "missing"),
        ("3.5.259", "missing"),
        ("3.5.258", "actual"),
        ("3.8.0", "estimated"),
        ("3.12.1", "estimated"),
        ("3.7.0", "edited"),
        ("3.11.0", "edited"),
    ],
)
def test_single_codes(code, quality):
    assert quality_of_code(code) == quality


@pytest.mark.parametrize(
    "codes, quality",
    [
        ([], "actual"),
        (["1.0.0", "1.4.9"], "actual"),
        (["3.7.0", "1.4.9"], "edited"),
        (["3.7.0", "3.8.0"], "estimated"),
        (["3.8.0", "3.7.0"], "estimated"),
        (["3.11.0", "3.12.0", "2.5.259"], "missing"),
        (["2.5.259", "3.8.0"], "missing"),
    ],
)
def test_precedence(codes, quality):
    assert portal_quality(codes) == quality
    assert portal_quality_of_joined(";".join(codes)) == quality


@pytest.mark.parametrize("code", ["", "3.8", "3.8.0.1", "a.b.c", "3.8.-1", " 3.8.0", "3..0"])
def test_malformed_codes_are_rejected(code):
    with pytest.raises(InvalidValue):
        parse_quality_code(code)


def test_code_parts():
    assert parse_quality_code("2.5.259") == (2, 5, 259)

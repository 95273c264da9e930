"""Green Button import against an independent oracle: the real ESPI samples in ../shared/reference/greenbutton
parse to exactly the readings another library (greenbutton_objects) extracted from them (`expected/*.txt`)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest

from cim_ingest.errors import CimError, InvalidValue, UnexpectedMessage, UnsupportedReadingType
from cim_ingest.greenbutton import parse_green_button

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "greenbutton"
pytestmark = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"Green Button reference folder {REFERENCE} is absent (read-only, not in the repo)"
)

_LINE = re.compile(
    r"^\s+(?P<start>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00), (?:(?P<days>\d+) days?, )?(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d):"
    r" (?P<value>-?[\d.]+) (?P<unit>\S+?)(?:\(\$(?P<cost>-?[\d.]+)\))?$"
)


def oracle(name: str) -> list[tuple]:
    rows = []
    for line in (REFERENCE / "expected" / f"{name}.txt").read_text().splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        duration = int(match["days"] or 0) * 86400 + int(match["h"]) * 3600 + int(match["m"]) * 60 + int(match["s"])
        rows.append(
            (
                dt.datetime.fromisoformat(match["start"]),
                duration,
                Decimal(match["value"]),
                match["unit"],
                Decimal(match["cost"]) if match["cost"] else None,
            )
        )
    return rows


def parsed(name: str) -> list[tuple]:
    feed = parse_green_button(REFERENCE / "samples" / f"{name}.xml")
    return [
        (
            row["start"],
            row["duration_seconds"],
            Decimal(row["raw_value"]) * Decimal(10) ** row["power_of_ten"],
            row["unit"],
            None if row["cost"] is None else Decimal(str(row["cost"])),
        )
        for row in feed.readings.iter_rows(named=True)
    ]


@pytest.mark.parametrize(
    "name", ["abridged_electric_containerized", "nist_one_year_daily_binned_monthly", "opower_gas_monthly_billing"]
)
def test_valid_samples_parse_to_the_oracles_readings(name):
    expected = oracle(name)
    assert expected, "the oracle file yielded no readings; the line format changed"
    got = parsed(name)
    assert len(got) == len(expected)
    assert sorted(got, key=lambda r: (r[0], r[1])) == sorted(expected, key=lambda r: (r[0], r[1]))


def test_opower_gas_scales_by_power_of_ten_and_cost_in_hundred_thousandths():
    first = parsed("opower_gas_monthly_billing")[0]
    assert first == (dt.datetime(2021, 5, 26, tzinfo=dt.timezone.utc), 35 * 86400, Decimal(37), "therm", Decimal("51"))


@pytest.mark.parametrize(
    "name, readings",
    [("openespi_15min_usage_with_cost", 1340), ("openespi_usage_small", 96), ("nist_coastal_multifamily_hourly_2011", 8760)],
)
def test_other_valid_usage_samples_parse_completely(name, readings):
    feed = parse_green_button(REFERENCE / "samples" / f"{name}.xml")
    assert feed.readings.height == readings
    assert feed.readings["start"].is_sorted() or feed.readings["start"].n_unique() == readings


def test_reading_qualities_map_to_portal_qualities():
    feed = parse_green_button(REFERENCE / "samples" / "openespi_usage_small.xml")
    first_two = feed.readings.head(2)
    assert first_two["quality_codes"].to_list() == ["espi:8", "espi:7"]
    # As loadable intervals (the UsagePoint id is a urn:uuid, so it maps to a usage point mRID).
    intervals = feed.intervals
    assert intervals["quality"].head(3).to_list() == ["estimated", "edited", "actual"]
    assert intervals["usage_point_mrid"][0] == "48c2a019-5598-4e16-b0f9-49e4ff27f5fb"
    # ESPI timePeriod/start is the START; the warehouse keys intervals by their END.
    assert intervals["interval_end"][0] == dt.datetime(2012, 3, 1, 5, 15, tzinfo=dt.timezone.utc)
    assert intervals["kwh"][0] == pytest.approx(0.282)
    assert intervals["reading_type"][0] == "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.0.72.0"


def test_invalid_sample_is_rejected_with_a_reason_naming_the_nested_reading_type():
    with pytest.raises(UnexpectedMessage, match="nests its ReadingType inside the MeterReading"):
        parse_green_button(REFERENCE / "samples" / "INVALID_usage_subscription_feed_anonymized.xml")


def test_gas_feed_is_not_loadable_and_says_which_unit():
    feed = parse_green_button(REFERENCE / "samples" / "opower_gas_monthly_billing.xml")
    with pytest.raises(UnsupportedReadingType, match="therm is not Wh"):
        feed.intervals


def test_non_uuid_usage_point_id_cannot_be_matched_to_a_supply(tmp_path):
    text = (REFERENCE / "samples" / "abridged_electric_containerized.xml").read_text()
    broken = tmp_path / "feed.xml"
    broken.write_text(text.replace("urn:uuid:C4B46B5D-D4AC-4CD3-9E29-13717DD04140", "tag:example,2012:up-1"))
    with pytest.raises(InvalidValue, match="cannot be matched to a supply"):
        parse_green_button(broken).intervals


def test_non_atom_root_is_refused(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text('<feed xmlns="urn:not-atom"><entry/></feed>')
    with pytest.raises(UnexpectedMessage, match="not an Atom feed"):
        parse_green_button(path)


def test_non_integer_value_is_an_invalid_value(tmp_path):
    text = (REFERENCE / "samples" / "abridged_electric_containerized.xml").read_text()
    path = tmp_path / "feed.xml"
    path.write_text(text.replace("<value>450</value>", "<value>4x0</value>", 1))
    with pytest.raises(CimError, match="'4x0'"):
        parse_green_button(path)

"""ReadingType codes: decoding table, derived properties, and the refusal of anything that is not loadable energy."""

from __future__ import annotations

import pytest

from cim_ingest.errors import InvalidValue, UnsupportedReadingType
from cim_ingest.reading_types import decode_reading_type, energy_reading_type

# code, interval_seconds, flow, is_interval, is_register, kwh_factor
SUPPORTED = [
    ("0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0", 900, "delivered", True, False, 1.0),
    ("0.0.2.4.19.1.12.0.0.0.0.0.0.0.0.3.72.0", 900, "received", True, False, 1.0),
    ("0.0.2.4.4.1.12.0.0.0.0.0.0.0.0.3.72.0", 900, "net", True, False, 1.0),
    ("0.0.7.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0", 3600, "delivered", True, False, 1.0),
    ("0.0.5.4.1.2.12.0.0.0.0.0.0.0.0.3.72.0", 1800, "delivered", True, False, 1.0),
    ("0.0.6.4.1.1.12.0.0.0.0.0.0.0.0.0.72.0", 300, "delivered", True, False, 0.001),
    ("0.0.3.4.1.1.12.0.0.0.0.0.0.0.0.6.72.0", 60, "delivered", True, False, 1000.0),
    ("11.0.0.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0", 86400, "delivered", True, False, 1.0),
    ("0.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0", None, "delivered", False, True, 1.0),
    ("0.0.0.1.19.1.12.0.0.0.0.0.0.0.0.3.72.0", None, "received", False, True, 1.0),
    ("0.0.0.9.1.1.12.0.0.0.0.0.0.0.224.0.72.0", None, "delivered", False, True, 0.001),
]


@pytest.mark.parametrize("code, seconds, flow, is_interval, is_register, factor", SUPPORTED)
def test_supported_codes_decode_to_their_meaning(code, seconds, flow, is_interval, is_register, factor):
    reading_type = energy_reading_type(code)
    assert reading_type.code == code
    assert reading_type.interval_seconds == seconds
    assert reading_type.flow == flow
    assert reading_type.is_interval is is_interval
    assert reading_type.is_register is is_register
    assert reading_type.kwh_factor == pytest.approx(factor)


def test_fields_are_decoded_in_iec_order():
    reading_type = decode_reading_type("11.8.2.4.19.2.12.1.2.3.4.5.6.7.128.-3.72.152")
    assert (
        reading_type.macro_period,
        reading_type.aggregate,
        reading_type.measuring_period,
        reading_type.accumulation,
        reading_type.flow_direction,
        reading_type.commodity,
        reading_type.kind,
        reading_type.interharmonic_numerator,
        reading_type.interharmonic_denominator,
        reading_type.argument_numerator,
        reading_type.argument_denominator,
        reading_type.tou,
        reading_type.cpp,
        reading_type.consumption_tier,
        reading_type.phases,
        reading_type.multiplier,
        reading_type.unit,
        reading_type.currency,
    ) == (11, 8, 2, 4, 19, 2, 12, 1, 2, 3, 4, 5, 6, 7, 128, -3, 72, 152)
    assert reading_type.flow == "received"


# code, words the refusal must contain
UNSUPPORTED = [
    ("0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.73.0", "unit 73 (VArh) is not an energy unit we load"),
    ("0.0.2.4.1.1.8.0.0.0.0.0.0.0.0.3.38.0", "measurementKind 8 (demand)"),
    ("0.0.2.4.1.7.12.0.0.0.0.0.0.0.0.3.72.0", "commodity 7 (natural gas)"),
    ("0.0.2.4.20.1.12.0.0.0.0.0.0.0.0.3.72.0", "flowDirection 20 (total)"),
    ("0.0.4.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0", "measuringPeriod 4 (24 h)"),
    ("13.0.0.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0", "macroPeriod 13 (monthly)"),
    ("0.8.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0", "aggregate 8 (maximum)"),
    ("0.0.2.4.1.1.12.0.0.0.0.1.0.0.0.3.72.0", "tou 1"),
    ("0.0.2.4.1.1.12.0.0.0.0.0.0.0.128.3.72.0", "phases 128 (phase A)"),
    ("0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.-3.72.0", "multiplier -3 (milli)"),
    ("0.0.0.12.1.1.12.0.0.0.0.0.0.0.0.3.72.0", "accumulation 12 (instantaneous)"),
    ("0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.152", "currency 152"),
]


@pytest.mark.parametrize("code, words", UNSUPPORTED)
def test_unsupported_codes_are_refused_in_words(code, words):
    with pytest.raises(UnsupportedReadingType) as caught:
        energy_reading_type(code)
    assert caught.value.code == code
    assert words in str(caught.value)
    assert caught.value.name  # the decoded name travels with the error


def test_varh_error_names_the_quantity():
    with pytest.raises(UnsupportedReadingType) as caught:
        energy_reading_type("0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.73.0")
    assert caught.value.name == "15 min delta forward (delivered) electricity secondary metered energy in kVArh"


@pytest.mark.parametrize(
    "code",
    [
        "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72",
        "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0.0",
        "0.0.x.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0",
        "",
    ],
)
def test_malformed_codes_are_invalid_values(code):
    with pytest.raises(InvalidValue):
        decode_reading_type(code)

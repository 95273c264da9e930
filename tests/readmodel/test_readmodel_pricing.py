"""The series arithmetic's shortcuts give exactly what the plain computation gives: pesos priced per stretch between
tariff breakpoints (`_priced_points`) equal pricing each point on its own day (`_priced`), whatever the schedule
(gaps, overlapping rows, open ends, one flow or both); the one-pass day series (`_priced_day_points`) equals
building the day points, pricing them and rounding their kWh one step after another; `round6` equals
`round(value, 6)`."""

from __future__ import annotations

import datetime as dt
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from readmodel.model import (
    _EPOCH_ORDINAL,
    _day_points,
    _priced,
    _priced_day_points,
    _priced_points,
    _rate_lookup,
    round6,
)

FIRST = dt.date(2025, 1, 1)


@st.composite
def schedules(draw):
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        start = FIRST + dt.timedelta(days=draw(st.integers(-30, 400)))
        length = draw(st.one_of(st.none(), st.integers(1, 200)))
        rows.append({
            "valid_from": start.isoformat(),
            "valid_to": None if length is None else (start + dt.timedelta(days=length)).isoformat(),
            "energy_clp_per_kwh": draw(st.one_of(st.none(), st.floats(0, 400, allow_nan=False))),
            "injection_clp_per_kwh": draw(st.one_of(st.none(), st.floats(0, 200, allow_nan=False))),
        })
    return rows


kwh_values = st.one_of(st.none(), st.floats(0, 80, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(schedule=schedules(), days=st.lists(st.tuples(kwh_values, kwh_values), min_size=1, max_size=60),
       both_flows=st.booleans(), first_offset=st.integers(0, 380))
def test_series_pricing_equals_pricing_each_day_alone(schedule, days, both_flows, first_offset):
    first = FIRST + dt.timedelta(days=first_offset)
    dates = [first + dt.timedelta(days=index) for index in range(len(days))]
    per_flow = {"delivered": [{"start": f"{day.isoformat()}T00:00:00-03:00", "kwh": kwh}
                              for day, (kwh, _) in zip(dates, days)]}
    if both_flows:
        per_flow["received"] = [{"start": f"{day.isoformat()}T00:00:00-03:00", "kwh": kwh}
                                for day, (_, kwh) in zip(dates, days)]
    rate_of = _rate_lookup(schedule)
    expected = [_priced({flow: series[index]["kwh"] for flow, series in per_flow.items()}, day, rate_of)
                for index, day in enumerate(dates)]
    assert _priced_points(per_flow["delivered"], per_flow, rate_of) == expected


daily_rows = st.one_of(st.none(), st.tuples(
    st.one_of(st.none(), st.floats(-5, 80, allow_nan=False), st.integers(0, 10**7).map(lambda n: (n + 0.5) / 10**6)),
    st.one_of(st.none(), st.integers(0, 100)),
    st.one_of(st.none(), st.integers(0, 100)),
    st.one_of(st.none(), st.sampled_from(["actual", "edited", "estimated", "missing", "questionable"])),
))


@settings(max_examples=300, deadline=None)
@given(schedule=st.one_of(st.none(), schedules()), rows=st.lists(daily_rows, min_size=1, max_size=70),
       received=st.booleans(), first_offset=st.integers(0, 380))
def test_the_one_pass_day_series_equals_the_steps_one_after_another(schedule, rows, received, first_offset):
    first_day = (FIRST + dt.timedelta(days=first_offset)).toordinal() - _EPOCH_ORDINAL
    daily = {first_day + index: row for index, row in enumerate(rows) if row is not None}
    stop_day = first_day + len(rows)
    rate_of = None if schedule is None else _rate_lookup(schedule)
    flow = "received" if received else "delivered"
    expected = _day_points(daily, first_day, stop_day)
    costs = [None] * len(expected) if rate_of is None else _priced_points(expected, {flow: expected}, rate_of)
    for point, clp in zip(expected, costs, strict=True):
        point["kwh"] = None if point["kwh"] is None else round6(float(point["kwh"]))
        point["clp"] = clp
    assert _priced_day_points(daily, first_day, stop_day, rate_of, received) == expected


def test_a_tariff_change_mid_series_prices_each_side_at_its_own_rate():
    schedule = [{"valid_from": "2025-01-01", "valid_to": "2025-01-03", "energy_clp_per_kwh": 100.0,
                 "injection_clp_per_kwh": 50.0},
                {"valid_from": "2025-01-03", "valid_to": None, "energy_clp_per_kwh": 200.0,
                 "injection_clp_per_kwh": 50.0}]
    points = [{"start": f"2025-01-0{day}T00:00:00-03:00", "kwh": 10.0} for day in range(1, 6)]
    assert _priced_points(points, {"delivered": points}, _rate_lookup(schedule)) == [1190, 1190, 2380, 2380, 2380]


@settings(max_examples=2000, deadline=None)
@given(value=st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e4, 1e4),
    st.integers(-10**9, 10**9).map(lambda n: n / 10**7),  # ties and near-ties of the sixth decimal
    st.integers(-10**12, 10**12).map(lambda n: (n + 0.5) / 10**6),
))
def test_round6_is_round_to_six_decimals(value):
    assert round6(value) == round(value, 6)
    assert math.copysign(1, round6(value)) == math.copysign(1, round(value, 6)) or round6(value) != 0

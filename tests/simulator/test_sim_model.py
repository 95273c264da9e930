"""The simulated world: determinism, identities, Chile's clock changes, energy realism, registers and bills."""

from __future__ import annotations

import datetime as dt
import re
import time

import numpy as np
import pytest

from simulator.model import (
    COMUNAS,
    SimulationConfig,
    World,
    _round_half_up,
    add_months,
    is_valid_rut,
    local_midnight,
    rut_check_digit,
)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 26, 12, 7, 31, tzinfo=UTC)


@pytest.fixture(scope="module")
def world() -> World:
    return World(SimulationConfig(seed=42, supplies=60, months=13, now=NOW))


def _day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return local_midnight(day), local_midnight(day + dt.timedelta(days=1))


def test_config_floors_now_and_history_starts_at_local_midnight(world):
    assert world.now == dt.datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert world.history_start_date == dt.date(2025, 10, 26)
    assert world.history_start == dt.datetime(2025, 10, 26, 3, 0, tzinfo=UTC)  # 00:00 -03:00
    with pytest.raises(ValueError):
        SimulationConfig(now=dt.datetime(2026, 1, 1))


def test_add_months_clamps_to_the_end_of_the_month():
    assert add_months(dt.date(2026, 3, 31), -1) == dt.date(2026, 2, 28)
    assert add_months(dt.date(2026, 1, 15), 13) == dt.date(2027, 2, 15)
    assert add_months(dt.date(2026, 12, 5), 1) == dt.date(2027, 1, 5)


def test_same_seed_same_world_and_other_seed_other_world(world):
    again = World(SimulationConfig(seed=42, supplies=60, months=13, now=NOW))
    other = World(SimulationConfig(seed=43, supplies=60, months=13, now=NOW))
    start, end = local_midnight(dt.date(2026, 5, 1)), local_midnight(dt.date(2026, 5, 8))
    assert list(again.customers()) == list(world.customers())
    assert list(again.supplies()) == list(world.supplies())
    assert again.bills(3) == world.bills(3)
    ends, values = world.intervals(5, start, end)
    ends_again, values_again = again.intervals(5, start, end)
    assert np.array_equal(ends, ends_again) and np.array_equal(values, values_again)
    assert not np.array_equal(values, other.intervals(5, start, end)[1])
    assert world.supply(0).usage_point_mrid != other.supply(0).usage_point_mrid
    assert world.customer(0).name != other.customer(0).name or world.customer(0).rut != other.customer(0).rut


def test_any_window_is_computed_independently(world):
    """Pieces computed separately (and in any order) equal the whole window, to the Wh."""
    start, end = local_midnight(dt.date(2026, 3, 30)), local_midnight(dt.date(2026, 4, 8))
    whole_ends, whole = world.intervals(7, start, end)
    cut = start + dt.timedelta(days=4, hours=5, minutes=15)
    late_ends, late = world.intervals(7, cut, end)
    early_ends, early = world.intervals(7, start, cut)
    assert np.array_equal(np.concatenate([early_ends, late_ends]), whole_ends)
    assert np.array_equal(np.concatenate([early, late]), whole)


def test_rut_check_digit_modulo_11():
    assert rut_check_digit(12345678) == "5"  # 8*2+7*3+6*4+5*5+4*6+3*7+2*2+1*3 = 138; 11 - 138 % 11 = 5
    assert rut_check_digit(10000013) == "K"  # 3*2+1*3+1*3 = 12; 11 - 1 = 10 -> K
    assert rut_check_digit(10000004) == "0"  # 4*2+1*3 = 11; 11 - 0 = 11 -> 0
    assert is_valid_rut("12.345.678-5") and not is_valid_rut("12.345.678-4") and is_valid_rut("10.000.013-k")


def test_customers_have_valid_unique_identities(world):
    customers = list(world.customers())
    assert all(is_valid_rut(customer.rut) for customer in customers)
    assert all(re.fullmatch(r"\d{1,2}\.\d{3}\.\d{3}-[\dK]", customer.rut) for customer in customers)
    assert len({customer.rut for customer in customers}) == len(customers)
    emails = [customer.email for customer in customers]
    assert len(set(emails)) == len(emails)
    assert all(re.fullmatch(r"[a-z]+\.[a-z]+\.\d+@correo\.example", email) for email in emails)
    assert [customer.customer_id for customer in customers[:2]] == ["C000001", "C000002"]
    assert all(re.fullmatch(r"\d{8}", customer.client_number) for customer in customers)
    assert len({customer.client_number for customer in customers}) == len(customers)
    assert any(set(customer.name) & set("áéíóúñÁÉÍÓÚÑ") for customer in customers)


def test_supplies_identities_and_master_data(world):
    supplies = list(world.supplies())
    assert [supply.supply_id for supply in supplies[:2]] == ["30000001", "30000002"]
    assert len({supply.usage_point_mrid for supply in supplies}) == len(supplies)
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", s.meter_mrid)
               for s in supplies)
    assert {supply.comuna for supply in supplies} <= set(COMUNAS)
    assert {"Ñuñoa", "Maipú", "Estación Central"} <= set(COMUNAS)
    assert all(supply.tariff == "BT1" and supply.status == "active" for supply in supplies)
    assert all(1 <= supply.billing_cycle_day <= 28 for supply in supplies)
    assert {supply.customer_id for supply in supplies} == {c.customer_id for c in world.customers()}
    assert world.supply_index_by_usage_point(supplies[9].usage_point_mrid) == 9
    assert world.supply_index_by_id("30000010") == 9 and world.supply_index_by_id("30000061") is None


def test_about_one_and_a_quarter_supplies_per_customer_and_a_tenth_solar():
    big = World(SimulationConfig(seed=5, supplies=2000, months=2, now=NOW))
    assert 1.15 <= big.supply_count / big.customer_count <= 1.35
    assert max(len(big.supplies_of_customer(index)) for index in range(big.customer_count)) == 3
    solar = sum(big.supply(index).has_solar for index in range(big.supply_count))
    assert solar == 200


def test_ten_thousand_supplies_construct_quickly():
    started = time.perf_counter()
    big = World(SimulationConfig(seed=1, supplies=10_000, months=13, now=NOW))
    big.supply(9_999), big.customer(big.customer_count - 1)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(("day", "quarter_hours"), [
    (dt.date(2026, 6, 15), 96), (dt.date(2026, 4, 4), 100), (dt.date(2026, 9, 6), 92), (dt.date(2026, 4, 5), 96),
])
def test_local_day_has_the_right_number_of_quarter_hours(world, day, quarter_hours):
    assert world.expected_intervals(day) == quarter_hours
    ends, values = world.intervals(2, *_day_window(day))
    assert len(ends) == quarter_hours and np.all(np.diff(ends) == 900)
    (total,) = world.daily_totals(2, day, day + dt.timedelta(days=1))
    assert (total.intervals, total.expected_intervals, total.wh) == (quarter_hours, quarter_hours, int(values.sum()))


def test_no_data_after_now_or_before_history(world):
    ends, _ = world.intervals(0, local_midnight(dt.date(2026, 11, 26)), local_midnight(dt.date(2026, 11, 27)))
    assert ends.max() == int(NOW.replace(minute=0, second=0).timestamp())
    (today,) = world.daily_totals(0, dt.date(2026, 11, 26), dt.date(2026, 11, 27))
    assert today.intervals == 4 * 9  # 00:15 .. 09:00 local (-03:00) is 12:00 UTC
    assert len(world.intervals(0, local_midnight(dt.date(2025, 1, 1)), world.history_start)[0]) == 0


def test_register_difference_equals_interval_sum_equals_billed_kwh(world):
    solar_index = next(supply.index for supply in world.supplies() if supply.has_solar)
    for index in (0, 11, solar_index):
        bills = world.bills(index)
        assert len(bills) >= 11
        for bill in bills[:3] + bills[-2:]:
            start, end = local_midnight(bill.period_start), local_midnight(bill.period_end)
            for flow, billed in (("delivered", bill.billed_wh), ("received", bill.received_wh)):
                if flow == "received" and not world.supply(index).has_solar:
                    assert billed == 0
                    continue
                interval_sum = int(world.intervals(index, start, end, flow)[1].sum())
                registers = world.register_at(index, bill.period_end, flow) - world.register_at(
                    index, bill.period_start, flow)
                assert billed == interval_sum == registers
            assert bill.register_end_wh - bill.register_start_wh == bill.billed_wh


def test_register_reads_are_daily_at_local_midnight_and_cumulative(world):
    start, end = local_midnight(dt.date(2026, 9, 4)), local_midnight(dt.date(2026, 9, 8))
    read_at, values = world.register_reads(4, start, end)
    assert [dt.datetime.fromtimestamp(t, UTC) for t in read_at.tolist()] == [
        local_midnight(dt.date(2026, 9, day)) for day in (5, 6, 7, 8)]
    daily = world.daily_totals(4, dt.date(2026, 9, 5), dt.date(2026, 9, 8))
    assert np.diff(values).tolist() == [day.wh for day in daily]


def test_bill_arithmetic_periods_and_status(world):
    unit_prices = set()
    for index in range(0, world.supply_count, 5):
        bills = world.bills(index)
        for previous, bill in zip(bills, bills[1:]):
            assert previous.period_end == bill.period_start
        for bill in bills:
            assert world.history_start_date <= bill.period_start and bill.period_end <= world.today
            assert bill.bill_id == f"B{bill.supply_id}-{bill.period_end:%Y%m}"
            assert bill.net_clp == sum(line.amount_clp for line in bill.lines)
            assert bill.iva_clp == int(bill.net_clp * 19 / 100 + 0.5) and bill.total_clp == bill.net_clp + bill.iva_clp
            assert all(isinstance(v, int) for v in (bill.net_clp, bill.iva_clp, bill.total_clp))
            fixed, energy = bill.lines[0], bill.lines[1]
            assert fixed.code == "FIXED" and 1000 <= fixed.amount_clp <= 1200
            assert energy.code == "ENERGY" and 160 <= energy.unit_price_clp <= 200
            assert energy.quantity * 1000 == bill.billed_wh
            assert abs(energy.amount_clp - float(energy.quantity * energy.unit_price_clp)) <= 0.5
            unit_prices.add(energy.unit_price_clp)
            assert bill.issue_date == bill.period_end + dt.timedelta(days=2)
            assert bill.due_date == bill.issue_date + dt.timedelta(days=20)
            assert bill.status == ("paid" if (world.today - bill.due_date).days > 5 else "unpaid")
            if world.supply(index).has_solar:
                credit = bill.lines[2]
                assert credit.code == "INJECTION" and -energy.amount_clp <= credit.amount_clp <= 0
    assert len(unit_prices) >= 2, "the tariff must change inside the history"


def test_round_half_up_is_exact():
    assert [_round_half_up(n, 10) for n in (4, 5, 15, -5, -4)] == [0, 1, 2, -1, 0]


def test_monthly_consumption_is_realistic_and_higher_in_winter(world):
    consumer_indices = [s.index for s in world.supplies() if not s.has_solar]
    monthly = []
    for index in consumer_indices:
        month_wh = [sum(day.wh for day in world.daily_totals(index, dt.date(2026, m, 1), add_months(
            dt.date(2026, m, 1), 1))) for m in range(1, 11)]
        monthly.append(month_wh)
    monthly_kwh = np.array(monthly) / 1000
    assert 150 <= monthly_kwh.mean() <= 250
    assert np.all((monthly_kwh > 60) & (monthly_kwh < 450))
    summer, winter = monthly_kwh[:, 0:2].mean(), monthly_kwh[:, 5:8].mean()
    assert winter > 1.2 * summer


def test_daily_shape_has_evening_peak_above_night(world):
    hours = {"night": [], "evening": []}
    for day in (dt.date(2026, 5, 12), dt.date(2026, 5, 13), dt.date(2026, 5, 14)):
        for index in range(20):
            _, values = world.intervals(index, *_day_window(day))
            hours["night"].append(values[8:16].mean())  # 02:00-04:00
            hours["evening"].append(values[80:88].mean())  # 20:00-22:00
    assert np.mean(hours["evening"]) > 2.5 * np.mean(hours["night"])


def test_solar_supplies_export_at_midday_and_others_never(world):
    solar = [s.index for s in world.supplies() if s.has_solar]
    assert len(solar) == 6
    day = dt.date(2026, 1, 20)
    for index in solar:
        ends, received = world.intervals(index, *_day_window(day), flow="received")
        local_hours = (ends - 900 - 3 * 3600) % 86400 // 3600
        assert received[(local_hours >= 12) & (local_hours < 16)].sum() > 0
        assert received[(local_hours < 5) | (local_hours >= 22)].sum() == 0
    plain = next(s.index for s in world.supplies() if not s.has_solar)
    assert len(world.intervals(plain, *_day_window(day), flow="received")[0]) == 0
    assert world.daily_totals(plain, day, day + dt.timedelta(days=1), "received") == []


def test_one_month_for_fifty_supplies_is_fast(world):
    start, end = local_midnight(dt.date(2026, 7, 1)), local_midnight(dt.date(2026, 8, 1))
    started = time.perf_counter()
    count = sum(len(world.intervals_both(index, start, end)[0]) for index in range(50))
    assert count == 50 * 31 * 96
    assert time.perf_counter() - started < 0.5

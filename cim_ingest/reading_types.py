"""IEC 61968-9 ReadingType codes: decode the 18-field dotted code and decide whether the portal loads it.

`decode_reading_type` decodes any well-formed code; `energy_reading_type` additionally insists on an energy
quantity we know how to turn into kWh (interval deltas or cumulative registers of active energy in Wh) and
raises `UnsupportedReadingType` naming, in words, every field that is not. Nothing is guessed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cim_ingest.errors import InvalidValue, UnsupportedReadingType

FIELD_NAMES = (
    "macro_period",
    "aggregate",
    "measuring_period",
    "accumulation",
    "flow_direction",
    "commodity",
    "kind",
    "interharmonic_numerator",
    "interharmonic_denominator",
    "argument_numerator",
    "argument_denominator",
    "tou",
    "cpp",
    "consumption_tier",
    "phases",
    "multiplier",
    "unit",
    "currency",
)

MACRO_PERIOD_NAMES = {0: "none", 8: "billing period", 11: "daily", 13: "monthly", 24: "weekly"}
AGGREGATE_NAMES = {0: "none", 8: "maximum", 9: "minimum", 12: "normal", 26: "sum"}
MEASURING_PERIOD_SECONDS = {2: 900, 3: 60, 5: 1800, 6: 300, 7: 3600, 4: 86400}
MEASURING_PERIOD_NAMES = {0: "none", 2: "15 min", 3: "1 min", 4: "24 h", 5: "30 min", 6: "5 min", 7: "60 min"}
ACCUMULATION_NAMES = {1: "bulk", 4: "delta", 6: "indicating", 9: "summation", 12: "instantaneous"}
FLOW_NAMES = {1: "delivered", 19: "received", 4: "net", 20: "total"}
FLOW_DIRECTION_NAMES = {1: "forward", 19: "reverse", 4: "net", 20: "total"}
COMMODITY_NAMES = {
    1: "electricity secondary metered",
    2: "electricity primary metered",
    7: "natural gas",
    9: "potable water",
}
KIND_NAMES = {8: "demand", 12: "energy", 37: "power", 54: "voltage"}
PHASE_NAMES = {0: "none", 128: "phase A", 224: "phases ABC", 769: "S1S2N"}
MULTIPLIER_PREFIXES = {-3: "milli", 0: "none", 3: "kilo", 6: "mega"}
MULTIPLIER_SYMBOLS = {-3: "m", 0: "", 3: "k", 6: "M"}
UNIT_SYMBOLS = {38: "W", 72: "Wh", 73: "VArh", 61: "VA", 42: "m3"}

DAILY_MACRO_PERIOD = 11
DAILY_SECONDS = 86400
WH_UNIT = 72
ENERGY_KIND = 12
INTERVAL_ACCUMULATIONS = frozenset({4})
REGISTER_ACCUMULATIONS = frozenset({1, 9})
SUPPORTED_COMMODITIES = frozenset({1, 2})
SUPPORTED_FLOWS = frozenset({1, 19, 4})
SUPPORTED_INTERVAL_PERIODS = frozenset({2, 3, 5, 6, 7})
SUPPORTED_MULTIPLIERS = frozenset({0, 3, 6})
# 224 (ABC) is the sum over all phases, i.e. the same quantity as "none"; a single phase is only part of it.
SUPPORTED_PHASES = frozenset({0, 224})


def _named(value: int, names: dict[int, str]) -> str:
    return f"{value} ({names[value]})" if value in names else f"{value} (unknown)"


@dataclass(frozen=True)
class ReadingType:
    """A decoded ReadingType code. Field names follow IEC 61968-9 (`kind` is measurementKind)."""

    code: str
    macro_period: int
    aggregate: int
    measuring_period: int
    accumulation: int
    flow_direction: int
    commodity: int
    kind: int
    interharmonic_numerator: int
    interharmonic_denominator: int
    argument_numerator: int
    argument_denominator: int
    tou: int
    cpp: int
    consumption_tier: int
    phases: int
    multiplier: int
    unit: int
    currency: int

    @property
    def is_interval(self) -> bool:
        return self.accumulation in INTERVAL_ACCUMULATIONS

    @property
    def is_register(self) -> bool:
        return self.accumulation in REGISTER_ACCUMULATIONS

    @property
    def interval_seconds(self) -> int | None:
        """Nominal interval length; None for registers. A daily value says 86400 even on 23/25-hour days."""
        if not self.is_interval:
            return None
        if self.measuring_period == 0 and self.macro_period == DAILY_MACRO_PERIOD:
            return DAILY_SECONDS
        return MEASURING_PERIOD_SECONDS.get(self.measuring_period)

    @property
    def flow(self) -> str | None:
        """'delivered' | 'received' | 'net' | 'total', or None for any other flow direction."""
        return FLOW_NAMES.get(self.flow_direction)

    @property
    def kwh_factor(self) -> float | None:
        """What one unit of the value is in kWh (Wh x 10**multiplier / 1000); None when not in Wh."""
        if self.unit != WH_UNIT:
            return None
        return 10.0 ** (self.multiplier - 3)

    @property
    def name(self) -> str:
        """The code in words, for messages: e.g. '15 min delta forward (delivered) electricity secondary
        metered energy in kWh'."""
        if self.macro_period == DAILY_MACRO_PERIOD and self.measuring_period == 0:
            period = "daily"
        elif self.measuring_period:
            period = MEASURING_PERIOD_NAMES.get(self.measuring_period, f"measuring period {self.measuring_period}")
        else:
            period = MACRO_PERIOD_NAMES.get(self.macro_period, f"macro period {self.macro_period}")
            period = "" if period == "none" else period
        accumulation = ACCUMULATION_NAMES.get(self.accumulation, f"accumulation {self.accumulation}")
        flow = FLOW_DIRECTION_NAMES.get(self.flow_direction, f"flow {self.flow_direction}")
        if self.flow:
            flow = f"{flow} ({self.flow})"
        commodity = COMMODITY_NAMES.get(self.commodity, f"commodity {self.commodity}")
        kind = KIND_NAMES.get(self.kind, f"kind {self.kind}")
        prefix = MULTIPLIER_SYMBOLS.get(self.multiplier, f"10^{self.multiplier} ")
        unit = prefix + UNIT_SYMBOLS.get(self.unit, f"unit {self.unit}")
        words = [period, accumulation, flow, commodity, kind, f"in {unit}"]
        return " ".join(word for word in words if word)

    def unsupported_reasons(self) -> list[str]:
        """Why this is not an energy reading the portal loads, one phrase per offending field; [] if fine."""
        reasons: list[str] = []
        if self.unit != WH_UNIT:
            reasons.append(f"unit {_named(self.unit, UNIT_SYMBOLS)} is not an energy unit we load")
        if self.kind != ENERGY_KIND:
            reasons.append(f"measurementKind {_named(self.kind, KIND_NAMES)} is not energy")
        if self.commodity not in SUPPORTED_COMMODITIES:
            reasons.append(f"commodity {_named(self.commodity, COMMODITY_NAMES)} is not electricity")
        if self.flow_direction not in SUPPORTED_FLOWS:
            reasons.append(
                f"flowDirection {_named(self.flow_direction, FLOW_DIRECTION_NAMES)} is not forward, reverse or net"
            )
        if self.multiplier not in SUPPORTED_MULTIPLIERS:
            reasons.append(f"multiplier {_named(self.multiplier, MULTIPLIER_PREFIXES)} is not none, kilo or mega")
        if self.aggregate != 0:
            reasons.append(f"aggregate {_named(self.aggregate, AGGREGATE_NAMES)} is not none")
        if self.phases not in SUPPORTED_PHASES:
            reasons.append(f"phases {_named(self.phases, PHASE_NAMES)} is not the whole supply")
        for field_name in ("tou", "cpp", "consumption_tier"):
            if getattr(self, field_name):
                reasons.append(f"{field_name} {getattr(self, field_name)} selects only part of the energy")
        harmonic_fields = ("interharmonic_numerator", "interharmonic_denominator")
        argument_fields = ("argument_numerator", "argument_denominator")
        for field_name in (*harmonic_fields, *argument_fields):
            if getattr(self, field_name):
                reasons.append(f"{field_name} {getattr(self, field_name)} is not 0")
        if self.currency != 0:
            reasons.append(f"currency {self.currency} is set on an energy quantity")
        if self.is_interval:
            daily = self.macro_period == DAILY_MACRO_PERIOD and self.measuring_period == 0
            regular = self.macro_period == 0 and self.measuring_period in SUPPORTED_INTERVAL_PERIODS
            if not (daily or regular):
                reasons.append(
                    f"measuringPeriod {_named(self.measuring_period, MEASURING_PERIOD_NAMES)} with macroPeriod "
                    f"{_named(self.macro_period, MACRO_PERIOD_NAMES)} is not a 1/5/15/30/60-minute or daily interval"
                )
        elif self.is_register:
            if self.measuring_period != 0 or self.macro_period not in (0, DAILY_MACRO_PERIOD):
                reasons.append(
                    f"a register read with measuringPeriod {_named(self.measuring_period, MEASURING_PERIOD_NAMES)} "
                    f"and macroPeriod {_named(self.macro_period, MACRO_PERIOD_NAMES)} is not a plain register"
                )
        else:
            reasons.append(
                f"accumulation {_named(self.accumulation, ACCUMULATION_NAMES)} is neither an interval delta "
                "nor a register (bulk/summation)"
            )
        return reasons


@lru_cache(maxsize=1024)
def decode_reading_type(code: str) -> ReadingType:
    """Decode `code` (18 dot-separated integers, multiplier may be negative); InvalidValue if malformed."""
    parts = code.strip().split(".")
    if len(parts) != len(FIELD_NAMES):
        raise InvalidValue(
            f"ReadingType code {code!r} has {len(parts)} fields; IEC 61968-9 codes have {len(FIELD_NAMES)}."
        )
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise InvalidValue(f"ReadingType code {code!r} has a field that is not an integer.") from None
    if any(not part.lstrip("-").isdigit() for part in parts):
        raise InvalidValue(f"ReadingType code {code!r} has a field that is not a plain integer.")
    return ReadingType(code.strip(), *values)


@lru_cache(maxsize=1024)
def energy_reading_type(code: str) -> ReadingType:
    """Decode `code` and require an energy interval or register we load; UnsupportedReadingType otherwise."""
    reading_type = decode_reading_type(code)
    reasons = reading_type.unsupported_reasons()
    if reasons:
        raise UnsupportedReadingType(reading_type.code, reading_type.name, "; ".join(reasons))
    return reading_type

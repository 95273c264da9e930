"""The simulated utility: a deterministic (seeded) world of customers, supplies, 15-minute energy, daily register
reads and monthly bills, standing in for the CIS, MDM and billing backends.

Everything derives from `SimulationConfig` alone, so two worlds with the same config agree to the Wh and the peso.
Energy is not stored: every 15-minute value is a pure function of (seed, supply, local date, position in the day)
through a counter-based hash, so any window is computed independently, vectorised with numpy, in any order. Only
per-day totals are cached (per supply, on first use) so register reads and bills are cheap.

Time rules: a local day (America/Santiago) holds the intervals whose END lies in (local midnight, next local
midnight]. Chile changes clocks at midnight, so 4 April 2026 has 100 quarter-hours and 6 September 2026 has 92.
Data exists from `history_start` (local midnight, `months` months before now's local date) up to `now`.

Bills: each supply has a billing cycle day (1..28); a period runs [cycle day of month M, cycle day of M+1) in local
dates and is billed once it has ended (period end <= now's local date) if it began inside the history. Billed kWh
= register difference = interval sum over the period. Rates (BT1-style) change every 1 January and 1 July; a
period is billed at the rates in force on its last day. Solar supplies get an injection credit for received
energy, capped at the energy charge (this simulator carries no credit over). IVA is 19%, rounded half up.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import unicodedata
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterator

import numpy as np

from cim_ingest.writer import SANTIAGO, BillLineOut, BillOut

UTC = dt.timezone.utc
INTERVAL_SECONDS = 900
FLOWS = ("delivered", "received")
IVA_PERCENT = 19

# Stream identifiers keep the hashed random numbers of different uses independent of each other.
_STREAM_LOAD_A, _STREAM_LOAD_B, _STREAM_DAY_A, _STREAM_DAY_B = 1, 2, 3, 4
_STREAM_PV_A, _STREAM_PV_B, _STREAM_CLOUD = 5, 6, 7
_STREAM_SCALE, _STREAM_SOLAR, _STREAM_PV_CAPACITY, _STREAM_CYCLE_DAY = 11, 12, 13, 14
_STREAM_REGISTER_DELIVERED, _STREAM_REGISTER_RECEIVED = 15, 16

SOLAR_SHARE = 0.10


def floor_to_quarter_hour(instant: dt.datetime) -> dt.datetime:
    instant = instant.astimezone(UTC)
    return instant.replace(minute=instant.minute - instant.minute % 15, second=0, microsecond=0)


def local_midnight(local_date: dt.date) -> dt.datetime:
    """The UTC instant at which `local_date` begins in America/Santiago. On 6 September 2026 local 00:00 does
    not exist; zoneinfo's fold=0 reading gives 01:00 -03:00, which is when that day begins."""
    return dt.datetime(local_date.year, local_date.month, local_date.day, tzinfo=SANTIAGO).astimezone(UTC)


def local_date_of(instant: dt.datetime) -> dt.date:
    return instant.astimezone(SANTIAGO).date()


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day of month `months` later (negative: earlier), clamped to the month's last day."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    month += 1
    next_month_first = dt.date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_month_first - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last_day))


def rut_check_digit(body: int) -> str:
    """Modulo-11 check digit of a RUT body ('0'..'9' or 'K')."""
    total, factor = 0, 2
    while body > 0:
        body, digit = divmod(body, 10)
        total += digit * factor
        factor = 2 if factor == 7 else factor + 1
    remainder = 11 - total % 11
    return {11: "0", 10: "K"}.get(remainder, str(remainder))


def format_rut(body: int) -> str:
    return f"{body:,}".replace(",", ".") + "-" + rut_check_digit(body)


def is_valid_rut(text: str) -> bool:
    """True for 'dd.ddd.ddd-D' style text whose check digit is right (dots optional, 'k' accepted)."""
    cleaned = text.replace(".", "").strip().upper()
    body, _, digit = cleaned.partition("-")
    return bool(body.isdigit() and digit and rut_check_digit(int(body)) == digit)


# --- counter-based random numbers ---------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _splitmix(values: np.ndarray) -> np.ndarray:
    values = values + _GOLDEN
    values = (values ^ (values >> np.uint64(30))) * _MIX_1
    values = (values ^ (values >> np.uint64(27))) * _MIX_2
    return values ^ (values >> np.uint64(31))


def _uniform(*keys) -> np.ndarray:
    """Uniform numbers in (0, 1), one per broadcast position of the integer keys; a pure function of the keys."""
    arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(key, dtype=np.int64)) for key in keys))
    state = np.zeros(arrays[0].shape, dtype=np.uint64)
    for key in arrays:
        state = _splitmix(state ^ key.astype(np.uint64))
    return ((state >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 2**53)


def _normal(*keys_and_streams) -> np.ndarray:
    """Standard normal numbers (Box-Muller); the last key is the pair of streams to use."""
    *keys, (stream_a, stream_b) = keys_and_streams
    first, second = _uniform(*keys, stream_a), _uniform(*keys, stream_b)
    return np.sqrt(-2.0 * np.log(first)) * np.cos(2.0 * np.pi * second)


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hours - centre) / width) ** 2)


# --- people and places --------------------------------------------------------------------------------------

FIRST_NAMES = (
    "María", "José", "Juan", "Francisca", "Camila", "Sofía", "Martín", "Benjamín", "Matías", "Tomás", "Valentina",
    "Catalina", "Joaquín", "Agustín", "Ignacio", "Javiera", "Constanza", "Fernanda", "Daniela", "Cristóbal",
    "Sebastián", "Vicente", "Antonia", "Isidora", "Florencia", "Rocío", "Andrés", "Héctor", "Raúl", "Verónica",
    "Patricio", "Ximena", "Ana", "Luis", "Carmen", "Jorge", "Paula", "Rodrigo", "Nicolás", "Gonzalo", "Marisol",
    "Inés", "Germán", "Ramón", "Mónica", "Bárbara", "Maximiliano", "Renata", "Emilia", "Damián",
)
SURNAMES = (
    "González", "Muñoz", "Rojas", "Díaz", "Pérez", "Soto", "Contreras", "Silva", "Martínez", "Sepúlveda",
    "Morales", "Rodríguez", "López", "Fuentes", "Hernández", "Torres", "Araya", "Flores", "Espinoza",
    "Valenzuela", "Castillo", "Tapia", "Reyes", "Gutiérrez", "Castro", "Pizarro", "Álvarez", "Vásquez",
    "Sánchez", "Fernández", "Ramírez", "Carrasco", "Gómez", "Cortés", "Herrera", "Núñez", "Jara", "Vergara",
    "Rivera", "Figueroa", "Riquelme", "García", "Miranda", "Bravo", "Vera", "Molina", "Vega", "Campos",
    "Sandoval", "Orellana", "Zúñiga", "Olivares", "Alarcón", "Gallardo", "Ortiz", "Garrido", "Salazar", "Guzmán",
    "Henríquez", "Saavedra", "Navarro", "Aguilera", "Parra", "Romero", "Aravena", "Cáceres", "Ibáñez", "Yáñez",
    "Peña", "Quiroz",
)
STREETS_BY_COMUNA = {
    "Santiago": ("San Diego", "Av. Matta", "Santa Rosa", "Av. Santa Isabel", "Carmen", "Lord Cochrane"),
    "Providencia": ("Av. Providencia", "Los Leones", "Pedro de Valdivia", "Manuel Montt", "Eliodoro Yáñez"),
    "Ñuñoa": ("Av. Irarrázaval", "José Pedro Alessandri", "Av. Grecia", "Dublé Almeyda", "Av. Ossa"),
    "Las Condes": ("Av. Apoquindo", "Av. Las Condes", "Av. Tomás Moro", "Av. Cristóbal Colón", "Av. Manquehue"),
    "Maipú": ("Av. Pajaritos", "Av. 5 de Abril", "Av. Américo Vespucio", "Av. Primera Transversal"),
    "La Florida": ("Av. Vicuña Mackenna", "Av. La Florida", "Av. Walker Martínez", "Av. Rojas Magallanes"),
    "Puente Alto": ("Av. Concha y Toro", "Av. San Carlos", "Av. Gabriela", "Av. Eyzaguirre"),
    "Estación Central": ("Av. Ecuador", "General Velásquez", "Av. Las Rejas", "San Borja"),
    "Macul": ("Av. Macul", "Av. Quilín", "Av. Los Olmos"),
    "Peñalolén": ("Av. José Arrieta", "Av. Tobalaba", "Av. Consistorial"),
    "La Reina": ("Av. Larraín", "Av. Príncipe de Gales", "Av. Echeñique"),
    "San Miguel": ("Gran Avenida José Miguel Carrera", "Av. Departamental", "El Llano Subercaseaux"),
    "Independencia": ("Av. Independencia", "Av. Fermín Vivaceta"),
    "Recoleta": ("Av. Recoleta", "Av. Einstein", "Av. El Salto"),
    "Vitacura": ("Av. Vitacura", "Av. Luis Pasteur", "Av. Tabancura"),
    "Quilicura": ("Av. Manuel Antonio Matta", "Av. Lo Marcoleta"),
    "La Cisterna": ("Gran Avenida José Miguel Carrera", "Av. Fernández Albano"),
    "Pudahuel": ("Av. San Pablo", "Av. Teniente Cruz"),
    "Lo Barnechea": ("Av. La Dehesa", "Av. El Rodeo"),
    "San Bernardo": ("Av. América", "Covadonga", "Av. Colón"),
}
COMUNAS = tuple(STREETS_BY_COMUNA)


def _ascii_slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if char.isascii() and char.isalnum()).lower()


@dataclass(frozen=True)
class SimulationConfig:
    """What defines a world. `now` (aware) is floored to 15 minutes; None means the current time."""

    seed: int = 42
    supplies: int = 50
    months: int = 13
    now: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.supplies < 1 or self.months < 1:
            raise ValueError("a simulation needs at least one supply and one month of history")
        now = self.now if self.now is not None else dt.datetime.now(UTC)
        if now.tzinfo is None:
            raise ValueError("SimulationConfig.now must be timezone-aware (UTC)")
        object.__setattr__(self, "now", floor_to_quarter_hour(now))


@dataclass(frozen=True)
class Customer:
    index: int
    customer_id: str
    client_number: str
    name: str
    rut: str
    email: str


@dataclass(frozen=True)
class Supply:
    index: int
    supply_id: str
    usage_point_mrid: str
    meter_mrid: str
    customer_id: str
    address: str
    comuna: str
    tariff: str
    status: str
    has_solar: bool
    billing_cycle_day: int
    pv_capacity_kw: float


@dataclass(frozen=True)
class Tariff:
    """BT1-style rates in force from `valid_from` (local date). Prices have one decimal, in CLP."""

    valid_from: dt.date
    fixed_clp_per_month: Decimal
    energy_clp_per_kwh: Decimal
    injection_clp_per_kwh: Decimal


def tariff_on(day: dt.date) -> Tariff:
    """Rates are fixed each 1 January and 1 July, rising ~3% (energy) per half-year from a 2025 base."""
    half_year = (day.year - 2025) * 2 + (0 if day.month < 7 else 1)
    valid_from = dt.date(day.year, 1 if day.month < 7 else 7, 1)

    def price(base: float, growth: float) -> Decimal:
        return Decimal(str(round(base * growth**half_year, 1)))

    return Tariff(valid_from, price(1040.0, 1.02), price(168.0, 1.03), price(98.0, 1.025))


def _round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero, exactly (integers only)."""
    sign = -1 if (numerator < 0) != (denominator < 0) else 1
    quotient, remainder = divmod(abs(numerator) * 2 + abs(denominator), abs(denominator) * 2)
    return sign * quotient


def _charge_clp(wh: int, price: Decimal) -> int:
    """Energy charge for `wh` at `price` CLP/kWh, rounded half up to whole pesos, exactly."""
    numerator, denominator = price.as_integer_ratio()
    return _round_half_up(wh * numerator, 1000 * denominator)


@dataclass(frozen=True)
class DayTotal:
    local_date: dt.date
    wh: int
    intervals: int
    expected_intervals: int


@dataclass
class _SupplyTotals:
    """Per-day totals over the whole history (intervals after `now` excluded) and cumulative sums."""

    day_wh: dict[str, np.ndarray]
    day_counts: np.ndarray
    cumulative: dict[str, np.ndarray] = field(default_factory=dict)


class World:
    """The simulated utility for one `SimulationConfig`. Cheap to construct (per-supply data is lazy);
    safe to share between threads (caches are filled idempotently)."""

    def __init__(self, config: SimulationConfig):
        self.config = config
        self.seed = int(config.seed)
        self.now: dt.datetime = config.now
        self.today: dt.date = local_date_of(self.now)
        self.history_start_date: dt.date = add_months(self.today, -config.months)
        self.history_start: dt.datetime = local_midnight(self.history_start_date)
        self._now_epoch = int(self.now.timestamp())
        self._build_calendar()
        self._build_supply_parameters()
        self._totals: dict[int, _SupplyTotals] = {}
        self._lock = threading.Lock()
        self._usage_point_index: dict[str, int] | None = None
        self._customer_cache: dict[int, Customer] = {}
        self._supply_cache: dict[int, Supply] = {}

    def _require_supply(self, supply_index: int) -> None:
        if not 0 <= supply_index < self.supply_count:
            raise IndexError(f"supply index {supply_index} is outside 0..{self.supply_count - 1}")

    # --- calendar ---------------------------------------------------------------------------------------

    def _build_calendar(self) -> None:
        """Local days from the history start to today: start instants, interval counts, wall-clock offsets."""
        day_count = (self.today - self.history_start_date).days + 1
        self.days = [self.history_start_date + dt.timedelta(days=offset) for offset in range(day_count)]
        starts = [int(local_midnight(day).timestamp()) for day in self.days]
        starts.append(int(local_midnight(self.today + dt.timedelta(days=1)).timestamp()))
        self._day_starts = np.array(starts, dtype=np.int64)
        self._day_counts = np.diff(self._day_starts) // INTERVAL_SECONDS
        self._day_ordinals = np.array([day.toordinal() for day in self.days], dtype=np.int64)
        self._day_weekend = np.array([day.weekday() >= 5 for day in self.days])
        day_of_year = np.array([day.timetuple().tm_yday for day in self.days], dtype=np.float64)
        # Winter peaks in mid July (heating, lighting); summer is the trough.
        self._day_season = 1.0 + 0.22 * np.cos(2 * np.pi * (day_of_year - 196) / 365.25)
        self._day_summerness = 0.5 * (1.0 + np.cos(2 * np.pi * (day_of_year - 355) / 365.25))
        # Offset of each day's first instant; days with a clock change get per-interval offsets instead.
        self._day_offsets = np.array(
            [int(dt.datetime.fromtimestamp(start, SANTIAGO).utcoffset().total_seconds()) for start in starts[:-1]],
            dtype=np.int64,
        )
        self._transition_offsets: dict[int, np.ndarray] = {}
        for index in range(day_count):
            end_offset = int(
                dt.datetime.fromtimestamp(starts[index + 1] - 1, SANTIAGO).utcoffset().total_seconds()
            )
            if end_offset != self._day_offsets[index]:
                interval_starts = starts[index] + INTERVAL_SECONDS * np.arange(self._day_counts[index])
                self._transition_offsets[index] = np.array(
                    [int(dt.datetime.fromtimestamp(s, SANTIAGO).utcoffset().total_seconds())
                     for s in interval_starts.tolist()],
                    dtype=np.int64,
                )

    def day_index(self, local_date: dt.date) -> int:
        return (local_date - self.history_start_date).days

    def expected_intervals(self, local_date: dt.date) -> int:
        """Quarter-hours in a local day: 96, or 100 / 92 on the days the clock changes."""
        start, end = local_midnight(local_date), local_midnight(local_date + dt.timedelta(days=1))
        return int((end - start).total_seconds()) // INTERVAL_SECONDS

    # --- customers and supplies -------------------------------------------------------------------------

    def _build_supply_parameters(self) -> None:
        count = self.config.supplies
        indices = np.arange(count)
        # 80% of customers hold one supply, 15% two, 5% three: about 1.25 supplies per customer.
        group_rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 101])
        sizes = group_rng.choice([1, 2, 3], size=count, p=[0.80, 0.15, 0.05])
        sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), count)) + 1]
        sizes[-1] -= int(sizes.sum()) - count
        self.customer_count = len(sizes)
        self._supply_customer = np.repeat(np.arange(self.customer_count), sizes)
        self._customer_first_supply = np.concatenate([[0], np.cumsum(sizes)])
        self._scale = 0.75 + 0.5 * _uniform(self.seed, indices, _STREAM_SCALE)
        solar_rank = np.argsort(np.argsort(_uniform(self.seed, indices, _STREAM_SOLAR)))
        self._has_solar = solar_rank < int(SOLAR_SHARE * count + 0.5)
        self._pv_capacity = np.where(self._has_solar, 1.0 + 1.5 * _uniform(self.seed, indices, _STREAM_PV_CAPACITY), 0)
        self._cycle_day = 1 + np.floor(28 * _uniform(self.seed, indices, _STREAM_CYCLE_DAY)).astype(np.int64)
        self._initial_register = {
            "delivered": 2_000_000 + np.floor(
                40_000_000 * _uniform(self.seed, indices, _STREAM_REGISTER_DELIVERED)).astype(np.int64),
            "received": np.where(
                self._has_solar,
                np.floor(3_000_000 * _uniform(self.seed, indices, _STREAM_REGISTER_RECEIVED)).astype(np.int64),
                0,
            ),
        }

    @property
    def supply_count(self) -> int:
        return self.config.supplies

    def customer(self, index: int) -> Customer:
        cached = self._customer_cache.get(index)
        if cached is not None:
            return cached
        if not 0 <= index < self.customer_count:
            raise IndexError(f"customer index {index} is outside 0..{self.customer_count - 1}")
        rng = random.Random(f"{self.seed}:customer:{index}")
        first, paternal, maternal = rng.choice(FIRST_NAMES), rng.choice(SURNAMES), rng.choice(SURNAMES)
        # Bodies spaced 1,711 apart with a random offset: unique, and spread like real RUTs.
        rut_body = 5_000_000 + index * 1_711 + rng.randrange(1_711)
        customer = Customer(
            index=index,
            customer_id=f"C{index + 1:06d}",
            client_number=f"{10_000_000 + index * 7 + rng.randrange(7):08d}",
            name=f"{first} {paternal} {maternal}",
            rut=format_rut(rut_body),
            email=f"{_ascii_slug(first)}.{_ascii_slug(paternal)}.{index + 1}@correo.example",
        )
        self._customer_cache[index] = customer
        return customer

    def customers(self) -> Iterator[Customer]:
        return (self.customer(index) for index in range(self.customer_count))

    def supply(self, index: int) -> Supply:
        cached = self._supply_cache.get(index)
        if cached is not None:
            return cached
        self._require_supply(index)
        rng = random.Random(f"{self.seed}:supply:{index}")
        usage_point = uuid.UUID(bytes=rng.randbytes(16), version=4)
        meter = uuid.UUID(bytes=rng.randbytes(16), version=4)
        comuna = rng.choice(COMUNAS)
        address = f"{rng.choice(STREETS_BY_COMUNA[comuna])} {rng.randrange(100, 9900)}"
        if rng.random() < 0.35:
            address += f", depto {rng.randrange(1, 25)}{rng.randrange(1, 9):02d}"
        supply = Supply(
            index=index,
            supply_id=f"{30_000_001 + index:08d}",
            usage_point_mrid=str(usage_point),
            meter_mrid=str(meter),
            customer_id=f"C{int(self._supply_customer[index]) + 1:06d}",
            address=address,
            comuna=comuna,
            tariff="BT1",
            status="active",
            has_solar=bool(self._has_solar[index]),
            billing_cycle_day=int(self._cycle_day[index]),
            pv_capacity_kw=round(float(self._pv_capacity[index]), 2),
        )
        self._supply_cache[index] = supply
        return supply

    def supplies(self) -> Iterator[Supply]:
        return (self.supply(index) for index in range(self.supply_count))

    def supplies_of_customer(self, customer_index: int) -> list[Supply]:
        first, last = self._customer_first_supply[customer_index], self._customer_first_supply[customer_index + 1]
        return [self.supply(index) for index in range(int(first), int(last))]

    def supply_index_by_id(self, supply_id: str) -> int | None:
        if not (len(supply_id) == 8 and supply_id.isdigit()):
            return None
        index = int(supply_id) - 30_000_001
        return index if 0 <= index < self.supply_count else None

    def supply_index_by_usage_point(self, usage_point_mrid: str) -> int | None:
        if self._usage_point_index is None:
            self._usage_point_index = {supply.usage_point_mrid: supply.index for supply in self.supplies()}
        return self._usage_point_index.get(usage_point_mrid.strip().lower())

    # --- energy -----------------------------------------------------------------------------------------

    def _energy_for_days(self, supply_index: int, first_day: int, last_day: int):
        """Interval end instants (epoch seconds) and delivered / received Wh of days [first_day, last_day),
        including intervals after `now` (callers mask them)."""
        counts = self._day_counts[first_day:last_day]
        total = int(counts.sum())
        day_of_interval = np.repeat(np.arange(first_day, last_day), counts)
        position = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        ends = self._day_starts[day_of_interval] + INTERVAL_SECONDS * (position + 1)
        offsets = self._day_offsets[day_of_interval]
        for day, day_offsets in self._transition_offsets.items():
            if first_day <= day < last_day:
                offsets[day_of_interval == day] = day_offsets
        # Shape is driven by the local wall-clock time of the interval's middle.
        local_hour = ((ends - INTERVAL_SECONDS // 2 + offsets) % 86400) / 3600.0
        weekend = self._day_weekend[day_of_interval]
        ordinal = self._day_ordinals[day_of_interval]

        morning = np.where(weekend, 0.28 * _bump(local_hour, 10.0, 1.6), 0.38 * _bump(local_hour, 7.25, 0.9))
        midday = np.where(weekend, 0.22 * _bump(local_hour, 14.0, 2.2), 0.08 * _bump(local_hour, 13.5, 1.8))
        evening = np.where(weekend, 0.55 * _bump(local_hour, 20.75, 1.9), 0.62 * _bump(local_hour, 20.5, 1.5))
        day_sigma, interval_sigma = 0.10, 0.35
        day_factor = np.exp(
            day_sigma * _normal(self.seed, supply_index, ordinal, (_STREAM_DAY_A, _STREAM_DAY_B))
            - day_sigma**2 / 2
        )
        noise = np.exp(
            interval_sigma * _normal(self.seed, supply_index, ordinal, position, (_STREAM_LOAD_A, _STREAM_LOAD_B))
            - interval_sigma**2 / 2
        )
        load_kw = (0.13 + morning + midday + evening) * self._day_season[day_of_interval] * self._scale[
            supply_index] * day_factor * noise
        load_wh = np.rint(load_kw * 250.0).astype(np.int64)

        capacity = float(self._pv_capacity[supply_index])
        if capacity <= 0:
            return ends, load_wh, np.zeros_like(load_wh)
        summerness = self._day_summerness[day_of_interval]
        # Solar noon in Santiago is about 16:42 UTC all year, so the sun is placed on the UTC clock.
        utc_hour = ((ends - INTERVAL_SECONDS // 2) % 86400) / 3600.0
        day_length = 10.0 + 4.3 * summerness
        angle = np.clip(np.pi * (utc_hour - 16.7) / day_length, -np.pi / 2, np.pi / 2)
        sun = np.clip(np.cos(angle), 0.0, None) ** 1.2
        cloudiness = _uniform(self.seed, ordinal, _STREAM_CLOUD) ** 2 * (0.3 + 0.5 * (1.0 - summerness))
        pv_noise = np.exp(0.08 * _normal(self.seed, supply_index, ordinal, position, (_STREAM_PV_A, _STREAM_PV_B)))
        pv_kw = capacity * (0.45 + 0.25 * summerness) * (1.0 - cloudiness) * sun * pv_noise
        pv_wh = np.rint(pv_kw * 250.0).astype(np.int64)
        return ends, np.maximum(load_wh - pv_wh, 0), np.maximum(pv_wh - load_wh, 0)

    def _day_range(self, start_epoch: int, end_epoch: int) -> tuple[int, int]:
        """Days whose intervals can end in (start_epoch, end_epoch]."""
        first = max(int(np.searchsorted(self._day_starts, start_epoch, side="right")) - 1, 0)
        last = min(int(np.searchsorted(self._day_starts, end_epoch, side="left")), len(self.days))
        return first, max(first, last)

    def intervals(
        self, supply_index: int, start: dt.datetime, end: dt.datetime, flow: str = "delivered"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(interval end epoch seconds, Wh) of the intervals whose end t satisfies start < t <= end, clipped to
        the history and to `now`. A supply without solar has no received channel: empty arrays."""
        ends, values = self.intervals_both(supply_index, start, end)
        if flow == "received" and not self._has_solar[supply_index]:
            return ends[:0], values["received"][:0]
        return ends, values[flow]

    def intervals_both(
        self, supply_index: int, start: dt.datetime, end: dt.datetime
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Like `intervals`, computing both flows in one pass."""
        self._require_supply(supply_index)
        start_epoch = max(int(start.timestamp()), int(self._day_starts[0]))
        end_epoch = min(int(end.timestamp()), self._now_epoch)
        first, last = self._day_range(start_epoch, end_epoch)
        if end_epoch <= start_epoch or first >= last:
            empty = np.zeros(0, dtype=np.int64)
            return empty, {"delivered": empty, "received": empty}
        ends, delivered, received = self._energy_for_days(supply_index, first, last)
        keep = (ends > start_epoch) & (ends <= end_epoch)
        return ends[keep], {"delivered": delivered[keep], "received": received[keep]}

    def _supply_totals(self, supply_index: int) -> _SupplyTotals:
        totals = self._totals.get(supply_index)
        if totals is not None:
            return totals
        ends, delivered, received = self._energy_for_days(supply_index, 0, len(self.days))
        available = ends <= self._now_epoch
        segment_starts = np.concatenate([[0], np.cumsum(self._day_counts)[:-1]])
        day_wh = {
            "delivered": np.add.reduceat(np.where(available, delivered, 0), segment_starts),
            "received": np.add.reduceat(np.where(available, received, 0), segment_starts),
        }
        day_counts = np.add.reduceat(available.astype(np.int64), segment_starts)
        cumulative = {flow: np.concatenate([[0], np.cumsum(values)]) for flow, values in day_wh.items()}
        totals = _SupplyTotals(day_wh=day_wh, day_counts=day_counts, cumulative=cumulative)
        with self._lock:
            self._totals.setdefault(supply_index, totals)
        return totals

    def daily_totals(
        self, supply_index: int, first: dt.date, last_exclusive: dt.date, flow: str = "delivered"
    ) -> list[DayTotal]:
        """Per local day in [first, last_exclusive) ∩ history: Wh, intervals available (up to `now`), expected
        intervals. A supply without solar has no received channel: an empty list."""
        self._require_supply(supply_index)
        if flow == "received" and not self._has_solar[supply_index]:
            return []
        totals = self._supply_totals(supply_index)
        lo = max(self.day_index(first), 0)
        hi = min(self.day_index(last_exclusive), len(self.days))
        return [
            DayTotal(self.days[index], int(totals.day_wh[flow][index]), int(totals.day_counts[index]),
                     int(self._day_counts[index]))
            for index in range(lo, hi)
        ]

    def register_at(self, supply_index: int, local_date: dt.date, flow: str = "delivered") -> int:
        """Cumulative register (Wh) at the local midnight that starts `local_date` (within the history)."""
        index = self.day_index(local_date)
        if not 0 <= index < len(self.days):
            raise ValueError(f"{local_date} is outside the simulated history")
        totals = self._supply_totals(supply_index)
        return int(self._initial_register[flow][supply_index] + totals.cumulative[flow][index])

    def register_reads(
        self, supply_index: int, start: dt.datetime, end: dt.datetime, flow: str = "delivered"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(read instant epoch seconds, cumulative Wh) of the daily reads at local midnights in (start, end]."""
        if flow == "received" and not self._has_solar[supply_index]:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        midnights = self._day_starts[:-1]
        keep = (midnights > int(start.timestamp())) & (midnights <= min(int(end.timestamp()), self._now_epoch))
        totals = self._supply_totals(supply_index)
        values = self._initial_register[flow][supply_index] + totals.cumulative[flow][:-1]
        return midnights[keep], values[keep].astype(np.int64)

    # --- bills ------------------------------------------------------------------------------------------

    def billing_periods(self, supply_index: int) -> list[tuple[dt.date, dt.date]]:
        cycle_day = int(self._cycle_day[supply_index])
        start = self.history_start_date.replace(day=cycle_day)
        if start < self.history_start_date:
            start = add_months(start, 1)
        periods = []
        while (end := add_months(start, 1)) <= self.today:
            periods.append((start, end))
            start = end
        return periods

    def bills(self, supply_index: int) -> list[BillOut]:
        supply = self.supply(supply_index)
        return [self._bill(supply, start, end) for start, end in self.billing_periods(supply_index)]

    def _bill(self, supply: Supply, period_start: dt.date, period_end: dt.date) -> BillOut:
        register_start = self.register_at(supply.index, period_start)
        register_end = self.register_at(supply.index, period_end)
        billed_wh = register_end - register_start
        received_wh = 0
        if supply.has_solar:
            received_wh = self.register_at(supply.index, period_end, "received") - self.register_at(
                supply.index, period_start, "received")
        tariff = tariff_on(period_end - dt.timedelta(days=1))
        fixed_amount = _round_half_up(*tariff.fixed_clp_per_month.as_integer_ratio())
        energy_amount = _charge_clp(billed_wh, tariff.energy_clp_per_kwh)
        lines = [
            BillLineOut(1, "FIXED", "Cargo fijo mensual", Decimal(1), "mes", tariff.fixed_clp_per_month, fixed_amount),
            BillLineOut(2, "ENERGY", "Cargo por energía", Decimal(billed_wh).scaleb(-3), "kWh",
                        tariff.energy_clp_per_kwh, energy_amount),
        ]
        if supply.has_solar:
            credit = min(_charge_clp(received_wh, tariff.injection_clp_per_kwh), energy_amount)
            lines.append(BillLineOut(3, "INJECTION", "Descuento por energía inyectada",
                                     Decimal(received_wh).scaleb(-3), "kWh", tariff.injection_clp_per_kwh, -credit))
        net = sum(line.amount_clp for line in lines)
        iva = _round_half_up(net * IVA_PERCENT, 100)
        issue_date = period_end + dt.timedelta(days=2)
        due_date = issue_date + dt.timedelta(days=20)
        return BillOut(
            bill_id=f"B{supply.supply_id}-{period_end:%Y%m}",
            supply_id=supply.supply_id,
            period_start=period_start,
            period_end=period_end,
            issue_date=issue_date,
            due_date=due_date,
            billed_wh=billed_wh,
            register_start_wh=register_start,
            register_end_wh=register_end,
            received_wh=received_wh,
            net_clp=net,
            iva_clp=iva,
            total_clp=net + iva,
            status="paid" if (self.today - due_date).days > 5 else "unpaid",
            lines=tuple(lines),
        )


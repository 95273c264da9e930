"""Simulated head-end: on-demand meter reads ("request, then poll"), and billing's live account balance.

Head-end (`POST /cim/headend`, see `cim_ingest.live` for the message shapes):
- `create MeterReadings` naming one `UsagePoint/mRID`: accepted at once (Result OK); the read itself takes a
  delay drawn from [delay_min_s, delay_max_s] (default 2-60 s) and fails with probability `failure_rate`
  (default 0.1). Both draws are deterministic in the request's CorrelationID, which identifies the read.
- `get MeterReadings` with `Request/Option ReadRequestID`: pending (Result OK + INFORM Error READ_PENDING),
  done (one delivered register read at the simulated clock, `World.now`) or failed (Result FAILED, FATAL Error
  METER_UNREACHABLE). An unknown read: FaultMessage, HTTP 404.
Settings: `POST /admin/headend` JSON `{"delay_min_s", "delay_max_s", "failure_rate"}` or the environment
variables `SIMULATOR_READ_DELAY` (`2-60`, seconds) and `SIMULATOR_READ_FAILURE_RATE` (`0.1`).

Billing (`POST /cim/billing`, `get AccountBalance` with `Request/Option supply_id`): the amount due is the sum
of the supply's unpaid bills (integer CLP), the due date the earliest unpaid one, the payment status `paid`
(nothing due), `due` or `overdue` (a due date before the simulated clock's local date)."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator

from cim_ingest.live import READ_PENDING_CODE, READ_REQUEST_OPTION, AccountBalance, account_balance_document
from cim_ingest.writer import (
    READING_TYPE_REGISTER_DELIVERED,
    MeterReadingOut,
    RegisterReadOut,
    ReplyError,
    ReplyHeader,
    _encoded,
    _response_open,
    iter_meter_readings_response,
)
from simulator.model import World, local_date_of, local_midnight

MAX_READS_KEPT = 10_000
MAX_READ_DELAY_S = 600.0


class HeadEndRejected(Exception):
    """A head-end request answered with a FaultMessage."""

    def __init__(self, code: str, reason: str, details: str = "", status: int = 400):
        super().__init__(reason)
        self.code, self.reason, self.details, self.status = code, reason, details, status


@dataclass
class ReadSettings:
    delay_min_s: float = 2.0
    delay_max_s: float = 60.0
    failure_rate: float = 0.1

    def update(self, delay_min_s=None, delay_max_s=None, failure_rate=None) -> None:
        low = float(self.delay_min_s if delay_min_s is None else delay_min_s)
        high = float(self.delay_max_s if delay_max_s is None else delay_max_s)
        rate = float(self.failure_rate if failure_rate is None else failure_rate)
        if not (0 <= low <= high <= MAX_READ_DELAY_S) or not 0 <= rate <= 1:
            raise ValueError(f"need 0 <= delay_min_s <= delay_max_s <= {MAX_READ_DELAY_S:.0f} and 0 <= failure_rate <= 1")
        self.delay_min_s, self.delay_max_s, self.failure_rate = low, high, rate

    def configure_from_env(self, delay_text: str | None, rate_text: str | None) -> None:
        low = high = None
        if delay_text:
            low_text, _, high_text = delay_text.partition("-")
            low = float(low_text)
            high = float(high_text) if high_text else low
        self.update(low, high, float(rate_text) if rate_text else None)

    def as_dict(self) -> dict:
        return {"delay_min_s": self.delay_min_s, "delay_max_s": self.delay_max_s, "failure_rate": self.failure_rate}


@dataclass(frozen=True)
class _Read:
    supply_index: int
    ready_at: float  # time.monotonic()
    fails: bool


def _draw(key: str, salt: str) -> float:
    """A uniform number in [0, 1) determined by `key` (so a read's fate does not depend on timing)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class HeadEnd:
    """On-demand reads in flight, keyed by the create request's CorrelationID."""

    def __init__(self, world: World, settings: ReadSettings | None = None):
        self.world = world
        self.settings = settings or ReadSettings()
        self._reads: OrderedDict[str, _Read] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, correlation_id: str, usage_point_mrids: list[str], header: ReplyHeader) -> Iterator[bytes]:
        if len(usage_point_mrids) != 1:
            raise HeadEndRejected("ONE_USAGE_POINT", "An on-demand read names exactly one UsagePoint/mRID.")
        index = self.world.supply_index_by_usage_point(usage_point_mrids[0])
        if index is None:
            raise HeadEndRejected("UNKNOWN_USAGE_POINT", "Unknown usage point.", usage_point_mrids[0])
        settings = self.settings
        delay = settings.delay_min_s + _draw(correlation_id, "delay") * (settings.delay_max_s - settings.delay_min_s)
        read = _Read(index, time.monotonic() + delay, _draw(correlation_id, "fail") < settings.failure_rate)
        with self._lock:
            if correlation_id in self._reads:
                raise HeadEndRejected("DUPLICATE_READ_REQUEST", "A read with this CorrelationID already exists.")
            self._reads[correlation_id] = read
            while len(self._reads) > MAX_READS_KEPT:
                self._reads.popitem(last=False)
        return iter_meter_readings_response(header, [])

    def poll(self, options: dict[str, str], header: ReplyHeader) -> Iterator[bytes]:
        read_id = options.get(READ_REQUEST_OPTION, "")
        with self._lock:
            read = self._reads.get(read_id)
        if read is None:
            raise HeadEndRejected("UNKNOWN_READ_REQUEST", "No on-demand read with this ReadRequestID.", read_id, 404)
        if time.monotonic() < read.ready_at:
            pending = ReplyError(READ_PENDING_CODE, "INFORM", "The meter is being read.")
            return iter_meter_readings_response(header, [], "OK", [pending])
        if read.fails:
            error = ReplyError("METER_UNREACHABLE", "FATAL", "The meter did not answer the on-demand read.")
            return _encoded(_response_open(header, "FAILED", [error]), [])
        supply = self.world.supply(read.supply_index)
        read_at, value_wh = self.register_now(read.supply_index)
        register = RegisterReadOut(READING_TYPE_REGISTER_DELIVERED, read_at, value_wh=value_wh)
        return iter_meter_readings_response(
            header, [MeterReadingOut(supply.usage_point_mrid, supply.meter_mrid, (), [register])])

    def register_now(self, supply_index: int) -> tuple[dt.datetime, int]:
        """The delivered register (Wh) at the simulated clock: last midnight's read plus today's intervals."""
        now = self.world.now
        today = local_date_of(now)
        midnight = local_midnight(today)
        base = self.world.register_at(supply_index, today)
        _, values = self.world.intervals(supply_index, midnight, now, "delivered")
        return now, int(base + int(values.sum()))


def account_balance(world: World, supply_index: int) -> AccountBalance:
    supply = world.supply(supply_index)
    unpaid = [bill for bill in world.bills(supply_index) if bill.status != "paid"]
    amount = sum(bill.total_clp for bill in unpaid)
    due_date = min((bill.due_date for bill in unpaid), default=None)
    if not unpaid:
        status = "paid"
    else:
        status = "overdue" if due_date < world.today else "due"
    return AccountBalance(supply.supply_id, amount, due_date, status, dt.datetime.now(dt.UTC).replace(microsecond=0))


def iter_account_balance_response(header: ReplyHeader, balance: AccountBalance) -> Iterator[bytes]:
    return _encoded(_response_open(header, "OK", []), [account_balance_document(balance)])

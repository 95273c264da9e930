"""HTTP client for the utility's backends (MDM, CIS, billing) speaking IEC 61968-100 `get` requests.

Each call builds a RequestMessage with a fresh MessageID and CorrelationID, POSTs it, streams the reply body
to a temporary file (replies can be hundreds of MB; nothing is held in memory twice), parses it (meter readings
with the piecewise parser of `cim_ingest.parallel_meter_readings` in the calling thread, documents with the
streaming parsers), and checks that the reply's CorrelationID is the request's. Transport errors and HTTP 5xx
are retried with exponential backoff and full jitter; every request here is a read, so retrying is safe. A
FaultMessage or a FAILED result raises BackendReplyError; anything else that goes wrong raises BackendError."""

from __future__ import annotations

import datetime as dt
import logging
import random
import tempfile
import time
import uuid
from typing import IO, Callable, Iterable, TypeVar

import httpx
import polars as pl

from cim_ingest.documents import parse_bills, parse_customers, parse_supplies
from cim_ingest.errors import BackendError, CimError
from cim_ingest.messages import (
    EnvelopeHeader,
    build_get_meter_readings,
    build_get_request,
    parse_envelope_header,
    raise_for_reply,
)
from cim_ingest.meter_readings import MeterReadingsBatch
from cim_ingest.parallel_meter_readings import iter_meter_readings_batches

log = logging.getLogger(__name__)

T = TypeVar("T")
MDM_PATH = "/cim/mdm"
CIS_PATH = "/cim/cis"
BILLING_PATH = "/cim/billing"
CONTENT_TYPE = "application/xml; charset=utf-8"
SPOOL_CHUNK_BYTES = 1 << 20


MAX_PARTS = 10_000


def _combine(batches: list[MeterReadingsBatch]) -> MeterReadingsBatch:
    """One batch from the parts of a multi-part reply (same CorrelationID)."""
    first = batches[0].header
    errors = tuple(error for batch in batches for error in batch.header.errors)
    results = {batch.header.result for batch in batches}
    result = "PARTIAL" if errors or "PARTIAL" in results else first.result
    header = EnvelopeHeader(**{**first.__dict__, "result": result, "errors": errors,
                               "timestamp": max((b.header.timestamp for b in batches if b.header.timestamp),
                                                default=first.timestamp)})
    return MeterReadingsBatch(
        header=header,
        intervals=pl.concat([batch.intervals for batch in batches]),
        registers=pl.concat([batch.registers for batch in batches]),
    )


def _parse_meter_readings_reply(spool: IO[bytes]) -> MeterReadingsBatch:
    """A spooled MeterReadings reply, parsed piece by piece in this thread: regular interval blocks are read in C
    (about half the CPU of the element-by-element parser), with the same rows and errors as `parse_meter_readings`.
    A rare fallback may repeat rows; loads keep the last row of a repeated key."""
    spool.flush()
    batches = list(iter_meter_readings_batches(spool.name, workers=1))
    return MeterReadingsBatch(
        header=batches[-1].header,
        intervals=pl.concat([batch.intervals for batch in batches]),
        registers=pl.concat([batch.registers for batch in batches]),
    )


class BackendClient:
    """Pull meter readings, customers, supplies and bills from the backends at `base_url`.

    `retries` is the number of extra attempts after the first for transport errors and HTTP 5xx;
    `backoff_base`/`backoff_cap` (seconds) shape the full-jitter exponential backoff between attempts."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 30.0,
        retries: int = 3,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap

    # --- public calls -------------------------------------------------------------------------------------

    def get_meter_readings(
        self, usage_point_mrids: Iterable[str], start: dt.datetime, end: dt.datetime
    ) -> MeterReadingsBatch:
        """Interval readings ending in (start, end] and register reads in the same window, for the usage points.

        A multi-part reply (Header/Property `part` k of `partCount` n) is followed to the end: the same request
        is sent again with `Request/Option part=k+1` and the same CorrelationID until the last part, and the
        parts are combined (errors of every PARTIAL part kept, result the worst of them)."""
        mrids = list(usage_point_mrids)
        correlation_id = str(uuid.uuid4())
        batches: list[MeterReadingsBatch] = []
        part, part_count = 1, 1
        while part <= part_count:
            options = {"part": part} if part > 1 else None
            body = build_get_meter_readings(mrids, start, end, correlation_id=correlation_id, options=options)
            batch = self._exchange(MDM_PATH, body, correlation_id, _parse_meter_readings_reply)
            self._check_correlation(batch.header, correlation_id, MDM_PATH)
            batches.append(batch)
            part_count = self._part_count(batch.header, part, part_count)
            part += 1
        return batches[0] if len(batches) == 1 else _combine(batches)

    def _part_count(self, header: EnvelopeHeader, part: int, expected: int) -> int:
        count_text, part_text = header.property("partCount"), header.property("part")
        if count_text is None:
            if part > 1:
                raise BackendError(f"Part {part} of a multi-part reply from {self.base_url}{MDM_PATH} lost its "
                                   "partCount; the reply cannot be completed.")
            return 1
        try:
            count, number = int(count_text), int(part_text or part)
        except ValueError:
            raise BackendError(f"{self.base_url}{MDM_PATH} sent a non-numeric part/partCount "
                               f"({part_text!r}/{count_text!r}).") from None
        if number != part or count < part or (part > 1 and count != expected) or count > MAX_PARTS:
            raise BackendError(f"{self.base_url}{MDM_PATH} answered part {number} of {count} when part {part} "
                               f"of {expected if part > 1 else count} was asked; the multi-part reply is inconsistent.")
        return count

    def get_customers(self) -> pl.DataFrame:
        """All customers (CIS `get Customers`)."""
        return self._get_document(CIS_PATH, "Customers", None, parse_customers)

    def get_supplies(self) -> pl.DataFrame:
        """All supplies (CIS `get UsagePoints`)."""
        return self._get_document(CIS_PATH, "UsagePoints", None, parse_supplies)

    def get_bills(self, supply_id: str | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
        """All bills and their lines, or only those of `supply_id` (billing `get Bills`)."""
        options = {"supply_id": supply_id} if supply_id is not None else None
        return self._get_document(BILLING_PATH, "Bills", options, parse_bills)

    def get_tariffs(self) -> pl.DataFrame:
        """The tariff schedule (billing `get Tariffs`), see `cim_ingest.tariffs`."""
        from cim_ingest.tariffs import parse_tariffs

        return self._get_document(BILLING_PATH, "Tariffs", None, parse_tariffs)

    # --- plumbing -----------------------------------------------------------------------------------------

    def _get_document(self, path: str, noun: str, options: dict | None, parse: Callable[[IO[bytes]], T]) -> T:
        correlation_id = str(uuid.uuid4())
        body = build_get_request(noun, options, correlation_id=correlation_id)

        def parse_and_check(stream: IO[bytes]) -> T:
            # Documents' parsers return frames only, so the header is read (cheaply) before them.
            header = parse_envelope_header(stream)
            self._check_correlation(header, correlation_id, path)
            stream.seek(0)
            return parse(stream)

        return self._exchange(path, body, correlation_id, parse_and_check)

    def _check_correlation(self, header: EnvelopeHeader, correlation_id: str, path: str) -> None:
        if header.kind == "Document":
            raise BackendError(f"{self.base_url}{path} answered a bare document without a 61968-100 envelope.")
        if header.correlation_id != correlation_id:
            raise BackendError(
                f"{self.base_url}{path} replied with CorrelationID {header.correlation_id!r} to request "
                f"{correlation_id!r}; the reply belongs to another request and was discarded."
            )

    def _sleep_before_retry(self, attempt: int) -> None:
        time.sleep(random.uniform(0.0, min(self.backoff_cap, self.backoff_base * (2**attempt))))

    def _exchange(self, path: str, body: bytes, correlation_id: str, parse: Callable[[IO[bytes]], T]) -> T:
        url = f"{self.base_url}{path}"
        last_problem = ""
        with httpx.Client(timeout=self.timeout) as http:
            for attempt in range(self.retries + 1):
                if attempt:
                    self._sleep_before_retry(attempt - 1)
                with tempfile.NamedTemporaryFile() as spool:
                    try:
                        status = self._post_to_spool(http, url, body, spool)
                    except httpx.HTTPError as error:
                        last_problem = f"{type(error).__name__}: {error}"
                        log.warning(
                            "POST %s failed (attempt %d/%d): %s", url, attempt + 1, self.retries + 1, last_problem
                        )
                        continue
                    spool.seek(0)
                    if status >= 500:
                        last_problem = f"HTTP {status}"
                        log.warning(
                            "POST %s answered HTTP %d (attempt %d/%d)", url, status, attempt + 1, self.retries + 1
                        )
                        if attempt < self.retries:
                            continue
                        self._raise_fault_if_any(spool)
                        break
                    if status >= 400:
                        self._raise_fault_if_any(spool)
                        raise BackendError(
                            f"POST {url} answered HTTP {status} without a FaultMessage explaining why; "
                            "check the request and the backend's logs."
                        )
                    if status != 200:
                        raise BackendError(f"POST {url} answered HTTP {status}; expected 200 with a ResponseMessage.")
                    return parse(spool)
        raise BackendError(
            f"POST {url} failed after {self.retries + 1} attempt(s), last problem {last_problem}; "
            "check that the backend is up and reachable."
        )

    @staticmethod
    def _post_to_spool(http: httpx.Client, url: str, body: bytes, spool: IO[bytes]) -> int:
        with http.stream("POST", url, content=body, headers={"Content-Type": CONTENT_TYPE}) as response:
            for chunk in response.iter_bytes(SPOOL_CHUNK_BYTES):
                spool.write(chunk)
            return response.status_code

    @staticmethod
    def _raise_fault_if_any(spool: IO[bytes]) -> None:
        """An error status whose body is a FaultMessage (or a FAILED reply) becomes BackendReplyError; any
        other body is left for the caller to report."""
        try:
            header = parse_envelope_header(spool)
        except CimError:
            return
        finally:
            spool.seek(0)
        raise_for_reply(header)

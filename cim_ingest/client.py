"""HTTP client for the utility's backends (MDM, CIS, billing) speaking IEC 61968-100 `get` requests.

Each call builds a RequestMessage with a fresh MessageID and CorrelationID, POSTs it, streams the reply body
to a temporary file (replies can be hundreds of MB; nothing is held in memory twice), parses it with the
streaming parsers, and checks that the reply's CorrelationID is the request's. Transport errors and HTTP 5xx
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
from cim_ingest.meter_readings import MeterReadingsBatch, parse_meter_readings

log = logging.getLogger(__name__)

T = TypeVar("T")
MDM_PATH = "/cim/mdm"
CIS_PATH = "/cim/cis"
BILLING_PATH = "/cim/billing"
CONTENT_TYPE = "application/xml; charset=utf-8"
SPOOL_CHUNK_BYTES = 1 << 20


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
        """Interval readings ending in (start, end] and register reads in the same window, for the usage points."""
        correlation_id = str(uuid.uuid4())
        body = build_get_meter_readings(list(usage_point_mrids), start, end, correlation_id=correlation_id)
        batch = self._exchange(MDM_PATH, body, correlation_id, parse_meter_readings)
        self._check_correlation(batch.header, correlation_id, MDM_PATH)
        return batch

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
                with tempfile.TemporaryFile() as spool:
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

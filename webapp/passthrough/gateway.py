"""The passthrough gateway: every live call from the portal to a backend goes through `BackendGateway.call`.

One call = allow-list check -> circuit breaker -> bulkhead -> attempts under one deadline. Only idempotent
reads are retried (at most `retries` extra attempts, full-jitter backoff, never past the deadline). Every
attempt, and every call refused before reaching the network, is logged on logger `webapp.passthrough` as
`passthrough call backend=... operation=... correlation_id=... attempt=... duration_ms=... outcome=...`.

Outcomes: `ok`; the backend answered but said no: `failed` (Result FAILED / FaultMessage), `partial`,
`rejected` (HTTP 4xx); the backend is unwell: `timeout`, `unavailable` (transport error), `http_error` (5xx),
`malformed` (not a valid reply); refused locally: `breaker_open`, `bulkhead_full`, `not_allowed`. Only the
"unwell" outcomes count against the breaker."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, TypeVar
from urllib.parse import urlsplit

import httpx

from cim_ingest.errors import BackendReplyError, CimError
from webapp.passthrough.resilience import Bulkhead, CircuitBreaker, Deadline, full_jitter_backoff

log = logging.getLogger("webapp.passthrough")

T = TypeVar("T")
BACKENDS = ("mdm", "billing", "headend", "cis")
BACKEND_PATHS = {name: f"/cim/{name}" for name in BACKENDS}
CONTENT_TYPE = "application/xml; charset=utf-8"
MAX_REPLY_BYTES = 8 * 1024 * 1024
UNWELL = frozenset({"timeout", "unavailable", "http_error", "malformed"})
RETRYABLE = UNWELL


class PassthroughError(Exception):
    """A live call that gave no usable answer. `outcome` says why (see the module docstring)."""

    def __init__(self, backend: str, outcome: str, detail: str = "", result: str | None = None):
        super().__init__(f"{backend}: {outcome}" + (f" ({detail})" if detail else ""))
        self.backend = backend
        self.outcome = outcome
        self.detail = detail
        self.result = result


class _AttemptFailed(Exception):
    def __init__(self, outcome: str, detail: str, result: str | None = None):
        super().__init__(detail)
        self.outcome, self.detail, self.result = outcome, detail, result


def _number(config: Mapping, environ: Mapping, name: str, default: float) -> float:
    value = config.get(name)
    if value is None:
        value = environ.get(name)
    return float(default if value in (None, "") else value)


@dataclass
class PassthroughSettings:
    """Backend base URLs (the allow-list) and the resilience parameters."""

    backends: dict[str, str] = field(default_factory=dict)
    deadline_s: float = 3.0
    retries: int = 2
    backoff_base_s: float = 0.1
    backoff_cap_s: float = 1.0
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    bulkhead: int = 2

    @classmethod
    def from_config(cls, config: Mapping, environ: Mapping | None = None) -> "PassthroughSettings":
        """`AMI_BACKEND_URL` (default `http://127.0.0.1:$SIMULATOR_PORT`) for every backend, overridden per
        backend by `AMI_BACKEND_URL_MDM`, `_BILLING`, `_HEADEND`, `_CIS`; `PASSTHROUGH_*` numbers. Values in
        the Flask config win over the environment."""
        environ = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = config.get(name) or environ.get(name)
            return str(value) if value else None

        default_url = text("AMI_BACKEND_URL") or f"http://127.0.0.1:{environ.get('SIMULATOR_PORT', '8600')}"
        backends = {}
        for name in BACKENDS:
            url = (text(f"AMI_BACKEND_URL_{name.upper()}") or default_url).rstrip("/")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"backend URL for {name} must be http(s)://host[:port], got {url!r}")
            backends[name] = url
        return cls(
            backends=backends,
            deadline_s=_number(config, environ, "PASSTHROUGH_DEADLINE_S", 3.0),
            retries=min(2, int(_number(config, environ, "PASSTHROUGH_RETRIES", 2))),
            backoff_base_s=_number(config, environ, "PASSTHROUGH_BACKOFF_BASE_S", 0.1),
            backoff_cap_s=_number(config, environ, "PASSTHROUGH_BACKOFF_CAP_S", 1.0),
            breaker_failures=int(_number(config, environ, "PASSTHROUGH_BREAKER_FAILURES", 5)),
            breaker_reset_s=_number(config, environ, "PASSTHROUGH_BREAKER_RESET_S", 30.0),
            bulkhead=int(_number(config, environ, "PASSTHROUGH_BULKHEAD", 2)),
        )


class BackendGateway:
    """Live calls to the configured backends. One per worker process (breakers and bulkhead are per process)."""

    def __init__(self, settings: PassthroughSettings):
        self.settings = settings
        self.breakers = {
            name: CircuitBreaker(name, settings.breaker_failures, settings.breaker_reset_s)
            for name in settings.backends
        }
        self.bulkhead = Bulkhead(settings.bulkhead)
        self._http: httpx.Client | None = None
        self._http_lock = threading.Lock()

    # --- allow-list ---------------------------------------------------------------------------------------

    def url_for(self, backend: str) -> str:
        """The only URLs the portal ever calls: a configured base URL plus the backend's fixed path."""
        base = self.settings.backends.get(backend)
        if base is None or backend not in BACKEND_PATHS:
            raise PassthroughError(backend, "not_allowed", "backend is not configured")
        return base + BACKEND_PATHS[backend]

    def _client(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                # created lazily, after gunicorn forks; no redirects: a backend cannot send us elsewhere
                self._http = httpx.Client(follow_redirects=False, trust_env=False,
                                          limits=httpx.Limits(max_connections=max(4, self.settings.bulkhead * 2)))
            return self._http

    def close(self) -> None:
        with self._http_lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    # --- the call -----------------------------------------------------------------------------------------

    def call(self, backend: str, operation: str, body: bytes, correlation_id: str, parse: Callable[[bytes], T],
             *, idempotent: bool, deadline_s: float | None = None) -> T:
        """POST `body` to `backend` and return `parse(reply)`. `parse` raises CimError for a reply that is not
        valid (counted as `malformed`) and BackendReplyError when the backend said the request failed."""
        started = time.monotonic()
        try:
            url = self.url_for(backend)
        except PassthroughError:
            self._log(backend, operation, correlation_id, 0, started, "not_allowed", "")
            raise
        breaker = self.breakers[backend]
        if not breaker.allow():
            self._log(backend, operation, correlation_id, 0, started, "breaker_open", "")
            raise PassthroughError(backend, "breaker_open", "circuit breaker open")
        if not self.bulkhead.try_acquire():
            breaker.release_probe()
            self._log(backend, operation, correlation_id, 0, started, "bulkhead_full", f"limit {self.bulkhead.limit}")
            raise PassthroughError(backend, "bulkhead_full", "too many live calls in flight in this worker")
        try:
            return self._attempts(backend, operation, url, body, correlation_id, parse, idempotent,
                                  Deadline(self.settings.deadline_s if deadline_s is None else deadline_s), breaker)
        finally:
            self.bulkhead.release()

    def _attempts(self, backend, operation, url, body, correlation_id, parse, idempotent, deadline, breaker):
        attempts = 1 + (self.settings.retries if idempotent else 0)
        failure = _AttemptFailed("timeout", "deadline reached before the first attempt")
        for attempt in range(attempts):
            if attempt:
                pause = full_jitter_backoff(attempt - 1, self.settings.backoff_base_s, self.settings.backoff_cap_s)
                if pause >= deadline.remaining():
                    break
                time.sleep(pause)
            if deadline.expired:
                break
            attempt_started = time.monotonic()
            try:
                result = parse(self._post(url, body, deadline))
            except _AttemptFailed as error:
                failure = error
            except BackendReplyError as error:
                outcome = "partial" if error.result == "PARTIAL" else "failed"
                failure = _AttemptFailed(outcome, str(error), error.result)
            except CimError as error:
                failure = _AttemptFailed("malformed", str(error))
            else:
                breaker.record_success()
                self._log(backend, operation, correlation_id, attempt + 1, attempt_started, "ok", "")
                return result
            self._log(backend, operation, correlation_id, attempt + 1, attempt_started, failure.outcome,
                      failure.detail)
            if failure.outcome not in RETRYABLE:
                break
        if failure.outcome in UNWELL:
            breaker.record_failure()
        else:
            breaker.record_success()  # it answered: the backend is up, the request itself was refused
        raise PassthroughError(backend, failure.outcome, failure.detail, failure.result)

    def _post(self, url: str, body: bytes, deadline: Deadline) -> bytes:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise _AttemptFailed("timeout", "deadline reached")
        chunks, size = [], 0
        try:
            with self._client().stream("POST", url, content=body, headers={"Content-Type": CONTENT_TYPE},
                                       timeout=httpx.Timeout(remaining)) as response:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_REPLY_BYTES:
                        raise _AttemptFailed("malformed", f"reply larger than {MAX_REPLY_BYTES} bytes")
                    if deadline.expired:  # a backend that trickles bytes must not outlive the deadline
                        raise _AttemptFailed("timeout", "deadline reached while reading the reply")
                    chunks.append(chunk)
                status = response.status_code
        except httpx.TimeoutException as error:
            raise _AttemptFailed("timeout", f"{type(error).__name__} after {deadline.seconds:g} s deadline") from None
        except httpx.HTTPError as error:
            raise _AttemptFailed("unavailable", f"{type(error).__name__}: {error}") from None
        if status >= 500:
            raise _AttemptFailed("http_error", f"HTTP {status}")
        if status >= 400:
            raise _AttemptFailed("rejected", f"HTTP {status}")
        if status != 200:
            raise _AttemptFailed("malformed", f"HTTP {status}; expected 200")
        return b"".join(chunks)

    @staticmethod
    def _log(backend: str, operation: str, correlation_id: str, attempt: int, started: float, outcome: str,
             detail: str) -> None:
        level = logging.INFO if outcome == "ok" else logging.WARNING
        log.log(level, "passthrough call backend=%s operation=%r correlation_id=%s attempt=%d duration_ms=%.1f "
                "outcome=%s%s", backend, operation, correlation_id, attempt, (time.monotonic() - started) * 1000,
                outcome, f" detail={detail!r}" if detail else "")

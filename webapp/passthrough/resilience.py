"""Resilience primitives of the passthrough: a per-call deadline, capped exponential backoff with full jitter,
a circuit breaker per backend and a bulkhead per worker process. Pure Python, thread-safe, no I/O."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable

log = logging.getLogger("webapp.passthrough")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class Deadline:
    """A point in monotonic time that a whole call (every attempt and every backoff sleep) must finish by."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.seconds = seconds
        self.expires_at = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self.expires_at - self._clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0


def full_jitter_backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Sleep before retry number `attempt` (0 for the first retry): uniform in [0, min(cap, base * 2**attempt)]
    ("full jitter"), so retries of many clients spread out instead of arriving together."""
    ceiling = min(cap, base * (2 ** attempt))
    return (rng or random).uniform(0.0, ceiling)


class CircuitBreaker:
    """Per backend: after `failure_threshold` consecutive failed calls it opens and fails fast for `reset_s`
    seconds; then it lets one probe call through (half-open): success closes it, failure opens it again.
    State changes are logged (WARNING when opening, INFO otherwise)."""

    def __init__(self, name: str, failure_threshold: int = 5, reset_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.failure_threshold = max(1, failure_threshold)
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.reset_s:
                return HALF_OPEN
            return self._state

    def _change(self, new_state: str, reason: str) -> None:
        old_state, self._state = self._state, new_state
        if old_state != new_state:
            level = logging.WARNING if new_state == OPEN else logging.INFO
            log.log(level, "circuit breaker backend=%s %s -> %s (%s)", self.name, old_state, new_state, reason)

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one probe at a time is allowed."""
        with self._lock:
            if self._state == CLOSED:
                return True
            if self._state == OPEN:
                if self._clock() - self._opened_at < self.reset_s:
                    return False
                self._change(HALF_OPEN, f"{self.reset_s:g} s elapsed, probing")
            if self._probe_in_flight:
                return False
            self._probe_in_flight = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._probe_in_flight = False
            if self._state != CLOSED:
                self._change(CLOSED, "probe succeeded")

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            was_probe, self._probe_in_flight = self._probe_in_flight, False
            if self._state == HALF_OPEN or was_probe:
                self._opened_at = self._clock()
                self._change(OPEN, "probe failed")
            elif self._state == CLOSED and self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
                self._change(OPEN, f"{self._failures} consecutive failures")

    def release_probe(self) -> None:
        """A call that was allowed but never reached the backend (e.g. bulkhead full) gives its probe back."""
        with self._lock:
            self._probe_in_flight = False


class Bulkhead:
    """At most `limit` passthrough calls in flight in this worker process; the next one is refused at once,
    so a hanging backend can hold at most `limit` of the worker's threads and the rest keep serving pages."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self._semaphore = threading.BoundedSemaphore(self.limit)
        self._lock = threading.Lock()
        self.in_flight = 0

    def try_acquire(self) -> bool:
        if not self._semaphore.acquire(blocking=False):
            return False
        with self._lock:
            self.in_flight += 1
        return True

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1
        self._semaphore.release()

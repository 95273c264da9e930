"""Fault injection for the simulated backends, per backend (`mdm`, `billing`, `cis`, `headend`).

Modes (what a backend does with each IEC 61968-100 request while the fault is set):
- `hang`      accept the request and answer nothing until the fault is cleared (or `delay_s`, default 300 s).
- `slow`      wait `delay_s` seconds (default 5), then answer normally.
- `http500`   answer HTTP 500 with a plain-text body (no envelope), like a crashed application server.
- `malformed` answer HTTP 200 with truncated, not well-formed XML.
- `failed`    answer HTTP 200 with a ResponseMessage whose Result is FAILED with one FATAL Error.
- `partial`   answer normally, but with Result PARTIAL and one WARNING Error added to the Reply.
`count` (optional) limits the fault to the next N requests to that backend; then it clears itself.

Set them over HTTP (`POST /admin/faults` with JSON `{"backend": "billing", "mode": "hang", "delay_s": 10,
"count": 3}`; mode `none` clears; `DELETE /admin/faults` clears all; `GET /admin/faults` lists them) or at start
with the environment variable `SIMULATOR_FAULTS`, e.g. `billing=hang;mdm=slow:2.5;headend=failed`."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

BACKENDS = ("mdm", "billing", "cis", "headend")
MODES = ("none", "hang", "slow", "http500", "malformed", "failed", "partial")
DEFAULT_DELAY_S = {"hang": 300.0, "slow": 5.0}
MAX_DELAY_S = 3600.0


class FaultConfigError(ValueError):
    """A fault setting that cannot be applied (unknown backend or mode, bad number)."""


@dataclass
class Fault:
    mode: str
    delay_s: float = 0.0
    remaining: int | None = None
    released: threading.Event = field(default_factory=threading.Event)

    def as_dict(self) -> dict:
        return {"mode": self.mode, "delay_s": self.delay_s, "remaining": self.remaining}


class FaultInjector:
    """Thread-safe table of the active fault per backend."""

    def __init__(self) -> None:
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()

    def set(self, backend: str, mode: str, delay_s: float | None = None, count: int | None = None) -> Fault | None:
        if backend not in BACKENDS:
            raise FaultConfigError(f"unknown backend {backend!r}; one of {', '.join(BACKENDS)}")
        if mode not in MODES:
            raise FaultConfigError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        try:
            delay = float(delay_s) if delay_s is not None else DEFAULT_DELAY_S.get(mode, 0.0)
            remaining = int(count) if count is not None else None
        except (TypeError, ValueError) as error:
            raise FaultConfigError("delay_s must be a number and count an integer") from error
        if not 0 <= delay <= MAX_DELAY_S or (remaining is not None and remaining < 1):
            raise FaultConfigError(f"delay_s must be within 0..{MAX_DELAY_S:.0f} and count at least 1")
        with self._lock:
            previous = self._faults.pop(backend, None)
            if previous is not None:
                previous.released.set()  # let requests hanging under the old setting finish
            fault = None if mode == "none" else Fault(mode, delay, remaining)
            if fault is not None:
                self._faults[backend] = fault
        log.info("fault for %s set to %s (delay %.1f s, count %s)", backend, mode, delay, remaining)
        return fault

    def clear(self) -> None:
        with self._lock:
            for fault in self._faults.values():
                fault.released.set()
            self._faults.clear()
        log.info("all faults cleared")

    def snapshot(self) -> dict[str, dict]:
        with self._lock:
            return {backend: fault.as_dict() for backend, fault in self._faults.items()}

    def take(self, backend: str) -> Fault | None:
        """The fault that applies to this request (counting it down), or None."""
        with self._lock:
            fault = self._faults.get(backend)
            if fault is None:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._faults[backend]
            return fault

    def configure_from_text(self, text: str) -> None:
        """`billing=hang;mdm=slow:2.5` (the `SIMULATOR_FAULTS` format)."""
        for item in filter(None, (part.strip() for part in text.replace(",", ";").split(";"))):
            backend, _, spec = item.partition("=")
            mode, _, delay = spec.partition(":")
            self.set(backend.strip(), mode.strip(), float(delay) if delay else None)


def wait_out(fault: Fault) -> None:
    """Block for a hang (until released or `delay_s`) or a slow answer (`delay_s`)."""
    if fault.mode == "hang":
        fault.released.wait(fault.delay_s)
    elif fault.mode == "slow":
        time.sleep(fault.delay_s)


MALFORMED_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<ResponseMessage xmlns="http://iec.ch/TC57/2011/schema/'
                  b'message"><Header><Verb>reply</Verb><Noun>')


def faulty_response(fault: Fault, header, normal):
    """The answer under `fault`: `header` is the reply's `cim_ingest.writer.ReplyHeader`, `normal()` builds the
    answer the backend would give without the fault (a Flask Response)."""
    from flask import Response

    from cim_ingest.writer import ReplyError, _encoded, _response_open

    wait_out(fault)
    if fault.mode == "http500":
        return Response("Internal Server Error (injected)\n", status=500, mimetype="text/plain")
    if fault.mode == "malformed":
        return Response(MALFORMED_BODY, status=200, mimetype="application/xml")
    if fault.mode == "failed":
        error = ReplyError("INJECTED_FAILURE", "FATAL", "The backend failed to process the request (injected).")
        return Response(_encoded(_response_open(header, "FAILED", [error]), []), mimetype="application/xml")
    response = normal()
    if fault.mode == "partial" and response.status_code == 200:
        warning = (b"<Reply><Result>PARTIAL</Result><Error><code>INJECTED_PARTIAL</code><level>WARNING</level>"
                   b"<reason>Part of the requested data is unavailable (injected).</reason></Error>")
        body = response.get_data().replace(b"<Reply><Result>OK</Result>", warning, 1)
        return Response(body, status=200, mimetype="application/xml")
    return response

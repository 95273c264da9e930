"""BackendClient against a small local HTTP server (standard library) that answers canned replies: request
shape per service, CorrelationID check, retries with backoff on 5xx and transport errors, faults."""

from __future__ import annotations

import datetime as dt
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cim_ingest.client import BackendClient
from cim_ingest.errors import BackendError, BackendReplyError
from cim_ingest.messages import parse_get_request

DATA_DIR = Path(__file__).parent / "data"
UTC = dt.timezone.utc
CORRELATION = re.compile(rb"<CorrelationID>([^<]*)</CorrelationID>")


class CannedBackend:
    """Answers each POST with the next (status, file name) of `script`, copying the request's CorrelationID
    into the reply unless told to answer with another one."""

    def __init__(self) -> None:
        self.script: list[tuple[int, str]] = []
        self.requests: list[tuple[str, bytes]] = []
        self.wrong_correlation = False
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                backend.requests.append((self.path, body))
                status, name = backend.script.pop(0) if len(backend.script) > 1 else backend.script[0]
                reply = (DATA_DIR / name).read_bytes()
                match = CORRELATION.search(body)
                correlation = b"not-your-request" if backend.wrong_correlation else match.group(1)
                reply = CORRELATION.sub(b"<CorrelationID>" + correlation + b"</CorrelationID>", reply, count=1)
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backend():
    server = CannedBackend()
    yield server
    server.close()


def client_for(url: str, retries: int = 3) -> BackendClient:
    return BackendClient(url, timeout=5.0, retries=retries, backoff_base=0.001, backoff_cap=0.01)


def test_get_meter_readings_posts_the_request_and_parses_the_reply(backend):
    backend.script = [(200, "response_ok.xml")]
    start, end = dt.datetime(2026, 1, 1, 3, tzinfo=UTC), dt.datetime(2026, 1, 2, 3, tzinfo=UTC)
    batch = client_for(backend.url).get_meter_readings(["up-1", "up-2"], start, end)
    assert batch.intervals.height == 7 and batch.registers.height == 2
    [(path, body)] = backend.requests
    assert path == "/cim/mdm"
    request = parse_get_request(body)
    assert (request.header.noun, request.start, request.end) == ("MeterReadings", start, end)
    assert request.usage_point_mrids == ("up-1", "up-2")
    assert batch.header.correlation_id == request.header.correlation_id


def test_master_data_and_bills_go_to_their_services(backend):
    client = client_for(backend.url)
    backend.script = [(200, "customers.xml")]
    assert client.get_customers()["customer_id"].to_list() == ["C000001", "C000002"]
    backend.script = [(200, "usage_points.xml")]
    assert client.get_supplies()["supply_id"].to_list() == ["30000001", "30000002"]
    backend.script = [(200, "bills.xml")]
    bills, lines = client.get_bills(supply_id="30000001")
    assert bills.height == 2 and lines.height == 5
    paths = [path for path, _body in backend.requests]
    assert paths == ["/cim/cis", "/cim/cis", "/cim/billing"]
    nouns = [parse_get_request(body).header.noun for _path, body in backend.requests]
    assert nouns == ["Customers", "UsagePoints", "Bills"]
    assert parse_get_request(backend.requests[2][1]).options == {"supply_id": "30000001"}


def test_reply_to_another_request_is_refused(backend):
    backend.script = [(200, "customers.xml")]
    backend.wrong_correlation = True
    with pytest.raises(BackendError, match="CorrelationID 'not-your-request'"):
        client_for(backend.url).get_customers()


def test_5xx_is_retried_until_it_succeeds(backend):
    backend.script = [(503, "fault.xml"), (502, "fault.xml"), (200, "customers.xml")]
    frame = client_for(backend.url, retries=3).get_customers()
    assert frame.height == 2
    assert len(backend.requests) == 3


def test_5xx_that_persists_gives_up_after_the_retries(backend):
    backend.script = [(503, "truncated.xml")]
    with pytest.raises(BackendError, match="after 3 attempt"):
        client_for(backend.url, retries=2).get_customers()
    assert len(backend.requests) == 3


def test_5xx_with_a_fault_message_raises_the_fault_after_retrying(backend):
    backend.script = [(500, "fault.xml")]
    with pytest.raises(BackendReplyError) as caught:
        client_for(backend.url, retries=1).get_supplies()
    assert caught.value.errors[0].reason == "Unknown noun"
    assert len(backend.requests) == 2


def test_4xx_fault_is_not_retried(backend):
    backend.script = [(400, "fault.xml")]
    with pytest.raises(BackendReplyError, match="Unknown noun"):
        client_for(backend.url).get_bills()
    assert len(backend.requests) == 1


def test_4xx_without_fault_is_a_backend_error(backend):
    backend.script = [(404, "truncated.xml")]
    with pytest.raises(BackendError, match="HTTP 404 without a FaultMessage"):
        client_for(backend.url).get_customers()
    assert len(backend.requests) == 1


def test_failed_reply_raises(backend):
    backend.script = [(200, "response_failed.xml")]
    with pytest.raises(BackendReplyError, match="MDM database unavailable"):
        client_for(backend.url).get_meter_readings(
            ["up-1"], dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 2, tzinfo=UTC)
        )


def test_unreachable_backend_is_a_backend_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more: every attempt is refused.
    with pytest.raises(BackendError, match="failed after 2 attempt"):
        client_for(f"http://127.0.0.1:{port}", retries=1).get_customers()

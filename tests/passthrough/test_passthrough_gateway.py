"""The gateway against the simulator process: retries only for reads and within the deadline, the circuit
breaker opening, failing fast without touching the backend and closing after a probe, the bulkhead refusing a
call while a hanging one holds the slot, the allow-list, and the call log on both sides with one CorrelationID."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import httpx
import pytest

from cim_ingest.live import build_get_account_balance, parse_account_balance
from live_testkit import set_fault
from webapp.passthrough import BackendGateway, PassthroughError, PassthroughSettings


def make_gateway(simulator_url: str, **changes) -> BackendGateway:
    settings = PassthroughSettings.from_config({"AMI_BACKEND_URL": simulator_url}, environ={})
    settings.deadline_s, settings.backoff_base_s, settings.backoff_cap_s = 1.0, 0.01, 0.05
    settings.breaker_failures, settings.breaker_reset_s = 3, 0.3
    for name, value in changes.items():
        setattr(settings, name, value)
    return BackendGateway(settings)


def balance_call(gateway: BackendGateway, supply_id: str):
    correlation_id = str(uuid.uuid4())
    return gateway.call("billing", "get AccountBalance", build_get_account_balance(supply_id, correlation_id=correlation_id),
                        correlation_id, lambda body: parse_account_balance(body, correlation_id), idempotent=True)


def remaining_faults(simulator_url: str, backend: str) -> int:
    return httpx.get(f"{simulator_url}/admin/faults").json().get(backend, {}).get("remaining", 0)


def test_reads_are_retried_at_most_twice(simulator, world):
    gateway = make_gateway(simulator["url"])
    set_fault(simulator["url"], "billing", "http500", count=2)
    assert balance_call(gateway, world["supply"]["supply_id"]).supply_id == world["supply"]["supply_id"]
    set_fault(simulator["url"], "billing", "http500", count=5)
    with pytest.raises(PassthroughError) as caught:
        balance_call(gateway, world["supply"]["supply_id"])
    assert caught.value.outcome == "http_error"
    assert remaining_faults(simulator["url"], "billing") == 2  # 3 attempts: the first and two retries


def test_breaker_opens_fails_fast_without_calling_and_closes_after_a_probe(simulator, world, caplog):
    caplog.set_level(logging.INFO, logger="webapp.passthrough")
    gateway = make_gateway(simulator["url"], retries=0)
    supply_id = world["supply"]["supply_id"]
    set_fault(simulator["url"], "billing", "http500", count=100)
    for _ in range(3):
        with pytest.raises(PassthroughError):
            balance_call(gateway, supply_id)
    assert gateway.breakers["billing"].state == "open"
    left = remaining_faults(simulator["url"], "billing")
    for _ in range(5):
        with pytest.raises(PassthroughError) as caught:
            balance_call(gateway, supply_id)
        assert caught.value.outcome == "breaker_open"
    assert remaining_faults(simulator["url"], "billing") == left  # nothing reached the backend
    assert "circuit breaker backend=billing closed -> open" in caplog.text
    set_fault(simulator["url"], "billing", "none")
    time.sleep(0.35)
    assert balance_call(gateway, supply_id).supply_id == supply_id  # the probe
    assert gateway.breakers["billing"].state == "closed"
    assert "circuit breaker backend=billing half_open -> closed" in caplog.text


def test_a_failed_reply_does_not_open_the_breaker(simulator, world):
    gateway = make_gateway(simulator["url"], retries=0)
    set_fault(simulator["url"], "billing", "failed")
    for _ in range(5):
        with pytest.raises(PassthroughError) as caught:
            balance_call(gateway, world["supply"]["supply_id"])
        assert caught.value.outcome == "failed"
    assert gateway.breakers["billing"].state == "closed"


def test_bulkhead_refuses_a_call_while_a_hanging_one_holds_the_slot(simulator, world):
    gateway = make_gateway(simulator["url"], bulkhead=1, deadline_s=2.0)
    set_fault(simulator["url"], "billing", "hang")
    outcomes = []

    def hanging_call():
        try:
            balance_call(gateway, world["supply"]["supply_id"])
        except PassthroughError as error:
            outcomes.append(error.outcome)

    worker = threading.Thread(target=hanging_call)
    worker.start()
    for _ in range(100):
        if gateway.bulkhead.in_flight:
            break
        time.sleep(0.01)
    with pytest.raises(PassthroughError) as caught:
        balance_call(gateway, world["supply"]["supply_id"])
    assert caught.value.outcome == "bulkhead_full"
    worker.join()
    assert outcomes == ["timeout"]
    assert gateway.bulkhead.in_flight == 0


def test_only_configured_backends_can_be_called(simulator):
    gateway = make_gateway(simulator["url"])
    with pytest.raises(PassthroughError) as caught:
        gateway.call("elsewhere", "get", b"<x/>", "c", lambda body: body, idempotent=True)
    assert caught.value.outcome == "not_allowed"
    with pytest.raises(ValueError):
        PassthroughSettings.from_config({"AMI_BACKEND_URL": "file:///etc/passwd"}, environ={})


def test_backend_urls_come_from_the_environment_with_per_backend_overrides():
    settings = PassthroughSettings.from_config({}, environ={
        "AMI_BACKEND_URL": "http://backends.example:9000/", "AMI_BACKEND_URL_BILLING": "https://billing.example"})
    assert settings.backends == {"mdm": "http://backends.example:9000", "billing": "https://billing.example",
                                 "headend": "http://backends.example:9000", "cis": "http://backends.example:9000"}
    assert PassthroughSettings.from_config({}, environ={"SIMULATOR_PORT": "8611"}).backends["mdm"] == \
        "http://127.0.0.1:8611"


def test_every_call_is_logged_on_both_sides_with_its_correlation_id(simulator, world, caplog):
    caplog.set_level(logging.INFO, logger="webapp.passthrough")
    gateway = make_gateway(simulator["url"])
    correlation_id = str(uuid.uuid4())
    supply_id = world["supply"]["supply_id"]
    gateway.call("billing", "get AccountBalance", build_get_account_balance(supply_id, correlation_id=correlation_id),
                 correlation_id, lambda body: parse_account_balance(body, correlation_id), idempotent=True)
    portal_lines = [line for line in caplog.text.splitlines() if correlation_id in line]
    assert len(portal_lines) == 1
    assert "backend=billing" in portal_lines[0] and "outcome=ok" in portal_lines[0]
    assert "duration_ms=" in portal_lines[0]
    simulator_log = simulator["log_path"].read_text()
    simulator_lines = [line for line in simulator_log.splitlines() if correlation_id in line]
    assert len(simulator_lines) == 1
    assert "service=billing" in simulator_lines[0] and "status=200" in simulator_lines[0]
    assert "duration_ms=" in simulator_lines[0]

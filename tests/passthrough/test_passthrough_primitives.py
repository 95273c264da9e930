"""Resilience primitives on their own (a fake clock where time matters) and the live CIM messages."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from cim_ingest.errors import BackendReplyError, MalformedXml, UnexpectedMessage, UnsafeXml
from cim_ingest.live import (
    AccountBalance, account_balance_document, build_create_meter_read, build_get_account_balance,
    build_get_meter_read, parse_account_balance, parse_meter_read_reply,
)
from cim_ingest.messages import parse_get_request
from cim_ingest.writer import ReplyError, ReplyHeader, _encoded, _response_open, to_bytes
from webapp.passthrough.resilience import Bulkhead, CircuitBreaker, Deadline, full_jitter_backoff


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_deadline_counts_down_and_expires():
    clock = FakeClock()
    deadline = Deadline(3.0, clock)
    clock.now += 1.0
    assert deadline.remaining() == pytest.approx(2.0) and not deadline.expired
    clock.now += 2.5
    assert deadline.remaining() == 0.0 and deadline.expired


def test_full_jitter_backoff_is_capped_and_spread():
    rng = random.Random(1)
    samples = [full_jitter_backoff(attempt, 0.1, 0.5, rng) for attempt in range(6) for _ in range(200)]
    assert all(0.0 <= sample <= 0.5 for sample in samples)
    first_retry = [full_jitter_backoff(0, 0.1, 0.5, rng) for _ in range(500)]
    assert max(first_retry) <= 0.1 and min(first_retry) < 0.01  # full jitter: anywhere from 0 to the ceiling
    assert max(full_jitter_backoff(5, 0.1, 0.5, rng) for _ in range(500)) > 0.4  # grows to the cap


def test_breaker_opens_after_consecutive_failures_and_probes_once():
    clock = FakeClock()
    breaker = CircuitBreaker("billing", failure_threshold=3, reset_s=10, clock=clock)
    for outcome in ("failure", "failure", "success", "failure", "failure"):
        breaker.record_failure() if outcome == "failure" else breaker.record_success()
    assert breaker.state == "closed"  # a success in between resets the count
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 10
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 10
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_breaker_gives_back_an_unused_probe():
    clock = FakeClock()
    breaker = CircuitBreaker("mdm", failure_threshold=1, reset_s=1, clock=clock)
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow()
    breaker.release_probe()
    assert breaker.allow()


def test_bulkhead_bounds_concurrent_calls():
    bulkhead = Bulkhead(2)
    assert bulkhead.try_acquire() and bulkhead.try_acquire()
    assert not bulkhead.try_acquire()
    bulkhead.release()
    assert bulkhead.try_acquire()
    assert bulkhead.in_flight == 2


def test_live_requests_are_well_formed_61968_100():
    request = parse_get_request(build_get_account_balance("30000001", correlation_id="c-1"))
    assert request.header.noun == "AccountBalance" and request.header.correlation_id == "c-1"
    assert request.options == {"supply_id": "30000001"}
    poll = parse_get_request(build_get_meter_read("read-7"))
    assert poll.header.correlation_id == "read-7" and poll.options == {"ReadRequestID": "read-7"}
    assert b"<Verb>create</Verb>" in build_create_meter_read("up-1", correlation_id="read-7")


def balance_reply(correlation_id: str, result: str = "OK", document: str | None = None) -> bytes:
    header = ReplyHeader(noun="AccountBalance", correlation_id=correlation_id, source="SIM-BILLING")
    balance = AccountBalance("30000001", 41135, dt.date(2026, 12, 5), "due", dt.datetime(2026, 11, 26, tzinfo=dt.UTC))
    errors = [ReplyError("X", "WARNING", "partial")] if result != "OK" else []
    return to_bytes(_encoded(_response_open(header, result, errors), [document or account_balance_document(balance)]))


def test_account_balance_round_trip_and_refusals():
    parsed = parse_account_balance(balance_reply("c-1"), "c-1")
    assert (parsed.amount_due_clp, parsed.due_date, parsed.payment_status) == (41135, dt.date(2026, 12, 5), "due")
    with pytest.raises(UnexpectedMessage):
        parse_account_balance(balance_reply("someone-else"), "c-1")
    with pytest.raises(BackendReplyError):
        parse_account_balance(balance_reply("c-1", "PARTIAL"), "c-1")
    with pytest.raises(BackendReplyError):
        parse_account_balance(balance_reply("c-1", "FAILED"), "c-1")
    with pytest.raises(MalformedXml):
        parse_account_balance(balance_reply("c-1")[:-40], "c-1")
    with pytest.raises(UnsafeXml):
        parse_account_balance(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>', "c-1")
    bad_amount = account_balance_document(AccountBalance("30000001", 1, None, "paid", None)).replace(
        "<amountDueCLP>1</amountDueCLP>", "<amountDueCLP>1.5</amountDueCLP>")
    with pytest.raises(Exception, match="amountDueCLP"):
        parse_account_balance(balance_reply("c-1", document=bad_amount), "c-1")


def test_meter_read_reply_states():
    header = ReplyHeader(noun="MeterReadings", correlation_id="r-1", source="SIM-HEADEND")
    pending = to_bytes(_encoded(_response_open(header, "OK", [ReplyError("READ_PENDING", "INFORM", "wait")]), []))
    assert parse_meter_read_reply(pending, "r-1").state == "pending"
    failed = to_bytes(_encoded(_response_open(header, "FAILED", [ReplyError("METER_UNREACHABLE", "FATAL", "x")]), []))
    assert parse_meter_read_reply(failed, "r-1").state == "failed"
    with pytest.raises(UnexpectedMessage):
        parse_meter_read_reply(pending, "another-read")

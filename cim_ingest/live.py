"""IEC 61968-100 request/reply messages for the live passthrough: on-demand meter reads (head-end) and the
account balance (billing), plus the `created MeterReadings` event that carries an on-demand read into the inbox.

On-demand read, "request then poll" (one CorrelationID for the whole conversation)::

    portal -> head-end  RequestMessage  create MeterReadings   Request/GetMeterReadings/UsagePoint/mRID
    head-end -> portal  ResponseMessage reply  MeterReadings   Result OK (accepted; nothing in the Payload)
    portal -> head-end  RequestMessage  get MeterReadings      Request/Option ReadRequestID = the CorrelationID
    head-end -> portal  ResponseMessage reply  MeterReadings   one of
        Result OK, Error code READ_PENDING (level INFORM), empty Payload      -> still reading
        Result OK, Payload MeterReadings with one register read (Readings)    -> done
        Result FAILED (or a FaultMessage), Error(s)                           -> the read failed
        Result PARTIAL, Error(s) WARNING                                      -> incomplete: treated as failed

Account balance::

    portal -> billing   RequestMessage get AccountBalance      Request/Option supply_id
    billing -> portal   ResponseMessage reply AccountBalance   Payload <AccountBalance xmlns="urn:ami-portal:cim:2026">
        <supplyId/><amountDueCLP/>(integer CLP)<dueDate/>(local date, empty when nothing is due)
        <paymentStatus/>(paid | due | overdue)<asOf/>(UTC instant the billing system computed it)

Everything parsed here goes through `cim_ingest.xml_safety` (no DTDs, no entities, no network)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from cim_ingest.errors import BackendReplyError, CimError, InvalidValue, ReplyErrorDetail, UnexpectedMessage
from cim_ingest.messages import (
    RESULT_FAILED,
    RESULT_OK,
    RESULT_PARTIAL,
    EnvelopeHeader,
    _request_message,
    _serialize,
    _sub,
    parse_envelope_header,
    parse_instant,
    raise_for_reply,
)
from cim_ingest.meter_readings import parse_meter_readings
from cim_ingest.namespaces import GET_METER_READINGS_NS, MESSAGE_NS, PORTAL_DOCS_NS
from cim_ingest.writer import (
    READING_TYPE_REGISTER_DELIVERED,
    MeterReadingOut,
    RegisterReadOut,
    escape_text,
    iter_meter_readings,
    utc_text,
)
from cim_ingest.xml_safety import local_name, namespace_of, parse_document

READ_REQUEST_OPTION = "ReadRequestID"
READ_PENDING_CODE = "READ_PENDING"
ACCOUNT_BALANCE_NOUN = "AccountBalance"
PAYMENT_STATUSES = frozenset({"paid", "due", "overdue"})
READ_PENDING, READ_DONE, READ_FAILED = "pending", "done", "failed"


# --- on-demand meter reads ----------------------------------------------------------------------------------


def build_create_meter_read(usage_point_mrid: str, *, correlation_id: str, message_id: str | None = None) -> bytes:
    """`create MeterReadings`: ask the head-end to read the meter of `usage_point_mrid` now."""
    if not usage_point_mrid.strip():
        raise InvalidValue("An on-demand read needs the usage point mRID of the meter to read.")
    root, request = _request_message("create", "MeterReadings", message_id, correlation_id)
    profile = _sub(request, "GetMeterReadings", namespace=GET_METER_READINGS_NS)
    usage_point = _sub(profile, "UsagePoint", namespace=GET_METER_READINGS_NS)
    _sub(usage_point, "mRID", usage_point_mrid, namespace=GET_METER_READINGS_NS)
    return _serialize(root)


def build_get_meter_read(read_request_id: str, *, message_id: str | None = None) -> bytes:
    """`get MeterReadings` polling the on-demand read `read_request_id` (the create request's CorrelationID,
    which the poll reuses so the whole conversation shares one CorrelationID)."""
    root, request = _request_message("get", "MeterReadings", message_id, read_request_id)
    option = _sub(request, "Option")
    _sub(option, "name", READ_REQUEST_OPTION)
    _sub(option, "value", read_request_id)
    return _serialize(root)


@dataclass(frozen=True)
class MeterReadStatus:
    """Where an on-demand read stands. `value_kwh`/`read_at` are set when `state` is done."""

    state: str
    result: str | None
    value_kwh: float | None = None
    read_at: dt.datetime | None = None
    usage_point_mrid: str | None = None
    errors: tuple[ReplyErrorDetail, ...] = ()


def check_reply(header: EnvelopeHeader, noun: str, correlation_id: str) -> None:
    """A reply must be a 61968-100 envelope for `noun` that carries our CorrelationID."""
    if header.kind not in ("Response", "Fault"):
        raise UnexpectedMessage(f"Expected a ResponseMessage or FaultMessage, got a {header.kind}.")
    if header.correlation_id != correlation_id:
        raise UnexpectedMessage(
            f"The reply carries CorrelationID {header.correlation_id!r}, not ours ({correlation_id!r}); discarded.")
    if header.kind == "Response" and (header.noun != noun or (header.verb or "").lower() != "reply"):
        raise UnexpectedMessage(f"Expected 'reply {noun}', got {header.verb!r} {header.noun!r}.")


def parse_create_reply(body: bytes, correlation_id: str) -> EnvelopeHeader:
    """The head-end's answer to `create MeterReadings`. Raises BackendReplyError when it refused the request
    (FAILED, PARTIAL or a FaultMessage) and CimError subclasses when the reply is not a valid envelope."""
    root = parse_document(body)  # whole-document parse: rejects truncated or malformed replies up front
    del root
    header = parse_envelope_header(body)
    check_reply(header, "MeterReadings", correlation_id)
    raise_for_reply(header)
    if header.result not in (None, RESULT_OK):
        raise BackendReplyError(header.result or "", header.errors, "create MeterReadings")
    return header


def parse_meter_read_reply(body: bytes, correlation_id: str) -> MeterReadStatus:
    """The head-end's answer to a poll. A FAILED/Fault or PARTIAL reply is a *valid* answer meaning the read
    failed; malformed or foreign replies raise CimError subclasses (a broken backend, not a failed read)."""
    parse_document(body)
    header = parse_envelope_header(body)
    check_reply(header, "MeterReadings", correlation_id)
    if header.kind == "Fault" or header.result in (RESULT_FAILED, RESULT_PARTIAL):
        return MeterReadStatus(READ_FAILED, header.result or RESULT_FAILED, errors=header.errors)
    if any(error.code == READ_PENDING_CODE for error in header.errors):
        return MeterReadStatus(READ_PENDING, header.result, errors=header.errors)
    batch = parse_meter_readings(body)
    registers = batch.registers.filter(batch.registers["flow"] == "delivered").sort("read_at")
    if registers.height == 0 or registers["kwh"][-1] is None:
        return MeterReadStatus(READ_FAILED, header.result, errors=(
            ReplyErrorDetail("NO_VALUE", "FATAL", "The reply holds no register value.", ""),))
    row = registers.row(registers.height - 1, named=True)
    return MeterReadStatus(
        READ_DONE, header.result, value_kwh=float(row["kwh"]), read_at=row["read_at"],
        usage_point_mrid=row["usage_point_mrid"], errors=header.errors)


def build_meter_read_event(
    usage_point_mrid: str, meter_mrid: str, read_at: dt.datetime, value_kwh: float | str | Decimal,
    *, correlation_id: str, source: str = "AMI-PORTAL",
) -> bytes:
    """An EventMessage `created MeterReadings` with one delivered register read: how an on-demand read enters
    the warehouse through the inbox, exactly like a pushed file. The value is written with 3 decimals (Wh)."""
    try:
        value = Decimal(str(value_kwh)).quantize(Decimal("0.001"))
    except InvalidOperation as error:
        raise InvalidValue(f"Register value {value_kwh!r} is not a number.") from error
    header = (
        f"<Header><Verb>created</Verb><Noun>MeterReadings</Noun><Timestamp>{utc_text(dt.datetime.now(dt.UTC))}"
        f"</Timestamp><Source>{escape_text(source)}</Source><MessageID>{uuid.uuid4()}</MessageID>"
        f"<CorrelationID>{escape_text(correlation_id)}</CorrelationID></Header>"
    )
    reading = MeterReadingOut(usage_point_mrid, meter_mrid, (),
                              [RegisterReadOut(READING_TYPE_REGISTER_DELIVERED, read_at, value=value)])
    payload = "".join(iter_meter_readings([reading]))
    text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<EventMessage xmlns="{MESSAGE_NS}">{header}'
            f"<Payload>{payload}</Payload></EventMessage>\n")
    return text.encode("utf-8")


# --- account balance -----------------------------------------------------------------------------------------


def build_get_account_balance(supply_id: str, *, correlation_id: str, message_id: str | None = None) -> bytes:
    """`get AccountBalance` for one supply (billing)."""
    if not supply_id.strip():
        raise InvalidValue("An AccountBalance request needs a supply_id.")
    root, request = _request_message("get", ACCOUNT_BALANCE_NOUN, message_id, correlation_id)
    option = _sub(request, "Option")
    _sub(option, "name", "supply_id")
    _sub(option, "value", supply_id)
    return _serialize(root)


@dataclass(frozen=True)
class AccountBalance:
    supply_id: str
    amount_due_clp: int
    due_date: dt.date | None
    payment_status: str
    as_of: dt.datetime | None


def parse_account_balance(body: bytes, correlation_id: str) -> AccountBalance:
    """Billing's answer to `get AccountBalance`. FAILED, PARTIAL (an incomplete balance is never shown as
    if it were complete) and FaultMessage raise BackendReplyError; anything malformed raises CimError."""
    root = parse_document(body)
    header = parse_envelope_header(body)
    check_reply(header, ACCOUNT_BALANCE_NOUN, correlation_id)
    raise_for_reply(header)
    if header.result not in (None, RESULT_OK):
        raise BackendReplyError(header.result or "", header.errors, "get AccountBalance")
    document = None
    for part in root:
        if local_name(part.tag) == "Payload":
            for child in part:
                if isinstance(child.tag, str) and local_name(child.tag) == ACCOUNT_BALANCE_NOUN:
                    document = child
    if document is None or namespace_of(document.tag) != PORTAL_DOCS_NS:
        raise UnexpectedMessage("The reply has no AccountBalance document in the portal namespace.")
    fields = {local_name(child.tag): (child.text or "").strip() for child in document if isinstance(child.tag, str)}
    try:
        amount = int(fields.get("amountDueCLP", ""))
    except ValueError as error:
        raise InvalidValue(f"amountDueCLP {fields.get('amountDueCLP')!r} is not an integer amount.") from error
    try:
        due_date = dt.date.fromisoformat(fields["dueDate"]) if fields.get("dueDate") else None
    except ValueError as error:
        raise InvalidValue(f"dueDate {fields.get('dueDate')!r} is not a date.") from error
    status = fields.get("paymentStatus", "")
    if status not in PAYMENT_STATUSES:
        raise InvalidValue(f"paymentStatus {status!r} is not one of {sorted(PAYMENT_STATUSES)}.")
    return AccountBalance(
        supply_id=fields.get("supplyId", ""), amount_due_clp=amount, due_date=due_date, payment_status=status,
        as_of=parse_instant(fields.get("asOf"), "AccountBalance asOf"))


def account_balance_document(balance: AccountBalance) -> str:
    """The AccountBalance payload document (used by the simulator)."""
    return (
        f'<AccountBalance xmlns="{PORTAL_DOCS_NS}"><supplyId>{escape_text(balance.supply_id)}</supplyId>'
        f"<amountDueCLP>{int(balance.amount_due_clp)}</amountDueCLP>"
        f"<dueDate>{balance.due_date.isoformat() if balance.due_date else ''}</dueDate>"
        f"<paymentStatus>{escape_text(balance.payment_status)}</paymentStatus>"
        f"<asOf>{utc_text(balance.as_of) if balance.as_of else ''}</asOf></AccountBalance>"
    )


__all__ = [
    "AccountBalance", "MeterReadStatus", "CimError", "READ_DONE", "READ_FAILED", "READ_PENDING",
    "account_balance_document", "build_create_meter_read", "build_get_account_balance", "build_get_meter_read",
    "build_meter_read_event", "check_reply", "parse_account_balance", "parse_create_reply",
    "parse_meter_read_reply",
]

"""IEC 61968-100 envelopes: build the `get` RequestMessages the portal sends, and read the envelopes it receives.

Request shape (namespace `MESSAGE_NS`)::

    <RequestMessage>
      <Header><Verb>get</Verb><Noun>MeterReadings</Noun><Timestamp>...Z</Timestamp><Source>AMI-PORTAL</Source>
        <MessageID>uuid4</MessageID><CorrelationID>uuid4</CorrelationID></Header>
      <Request>
        <StartTime>...Z</StartTime><EndTime>...Z</EndTime>              (MeterReadings only)
        <Option><name>supply_id</name><value>30000001</value></Option>  (zero or more)
        <GetMeterReadings xmlns=GET_METER_READINGS_NS><UsagePoint><mRID>..</mRID></UsagePoint>...</GetMeterReadings>
      </Request>
    </RequestMessage>

Nouns: `MeterReadings` (mdm), `Customers` and `UsagePoints` (cis), `Bills` (billing). For MeterReadings the
window is half-open: interval readings whose END is in (StartTime, EndTime].

Received envelopes may use any namespace in `ACCEPTED_MESSAGE_NAMESPACES`; parts are matched by local name.
`EnvelopeReader` is the streaming core shared by the MeterReadings and document parsers: it checks the root, the
Header (verb, noun) and the Reply (FAILED and FaultMessage raise `BackendReplyError`) and hands out payload
records as they end, so callers can clear them and keep memory flat."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

from lxml import etree

from cim_ingest.errors import BackendReplyError, InvalidValue, ReplyErrorDetail, UnexpectedMessage
from cim_ingest.namespaces import ACCEPTED_MESSAGE_NAMESPACES, GET_METER_READINGS_NS, MESSAGE_NS
from cim_ingest.xml_safety import XmlSource, local_name, namespace_of, parse_document, safe_iterparse

SOURCE_NAME = "AMI-PORTAL"
GET_NOUNS = frozenset({"Customers", "UsagePoints", "Bills", "Tariffs"})
ROOT_KINDS = {
    "RequestMessage": "Request",
    "ResponseMessage": "Response",
    "EventMessage": "Event",
    "FaultMessage": "Fault",
}
DOCUMENT_KIND = "Document"
EVENT_VERBS = frozenset({"created", "changed"})
RESULT_OK, RESULT_PARTIAL, RESULT_FAILED = "OK", "PARTIAL", "FAILED"


@dataclass(frozen=True)
class EnvelopeHeader:
    """What an envelope says about itself. `kind` is Request/Response/Event/Fault, or Document for a bare
    payload document without envelope. `result` and `errors` come from `Reply` (None / () when absent)."""

    kind: str
    verb: str | None = None
    noun: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    timestamp: dt.datetime | None = None
    source: str | None = None
    result: str | None = None
    errors: tuple[ReplyErrorDetail, ...] = ()
    namespace: str = ""
    properties: tuple[tuple[str, str], ...] = ()  # Header/Property Name/Value pairs, in document order

    def property(self, name: str) -> str | None:
        return next((value for key, value in self.properties if key == name), None)


@dataclass(frozen=True)
class GetRequest:
    """A parsed `get` RequestMessage (used by the backend simulator and by tests)."""

    header: EnvelopeHeader
    start: dt.datetime | None
    end: dt.datetime | None
    options: dict[str, str] = field(default_factory=dict)
    usage_point_mrids: tuple[str, ...] = ()


# --- building -------------------------------------------------------------------------------------------------


def format_instant(instant: dt.datetime) -> str:
    """An aware datetime as UTC ISO 8601 with 'Z'; naive datetimes are refused (we never guess a zone)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InvalidValue(f"Datetime {instant.isoformat()} has no time zone; pass an aware datetime (UTC).")
    utc = instant.astimezone(dt.timezone.utc)
    timespec = "seconds" if utc.microsecond == 0 else "microseconds"
    return utc.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def _sub(parent: etree._Element, name: str, text: str | None = None, namespace: str = MESSAGE_NS) -> etree._Element:
    element = etree.SubElement(parent, f"{{{namespace}}}{name}")
    if text is not None:
        element.text = text
    return element


def _request_message(
    verb: str, noun: str, message_id: str | None, correlation_id: str | None
) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(f"{{{MESSAGE_NS}}}RequestMessage", nsmap={None: MESSAGE_NS})
    header = _sub(root, "Header")
    _sub(header, "Verb", verb)
    _sub(header, "Noun", noun)
    _sub(header, "Timestamp", format_instant(dt.datetime.now(dt.timezone.utc).replace(microsecond=0)))
    _sub(header, "Source", SOURCE_NAME)
    _sub(header, "MessageID", message_id or str(uuid.uuid4()))
    _sub(header, "CorrelationID", correlation_id or str(uuid.uuid4()))
    request = _sub(root, "Request")
    return root, request


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def build_get_meter_readings(
    usage_point_mrids: Iterable[str],
    start: dt.datetime,
    end: dt.datetime,
    message_id: str | None = None,
    correlation_id: str | None = None,
    options: Mapping[str, object] | None = None,
) -> bytes:
    """`get MeterReadings` for the usage points over the window (start, end] (aware datetimes), with optional
    `Request/Option` name/value pairs (e.g. `part` when following a multi-part reply)."""
    mrids = [str(mrid) for mrid in usage_point_mrids]
    if not mrids:
        raise InvalidValue("A MeterReadings request needs at least one usage point mRID.")
    if any(not mrid.strip() for mrid in mrids):
        raise InvalidValue("A MeterReadings request got an empty usage point mRID.")
    start_text, end_text = format_instant(start), format_instant(end)
    if start >= end:
        raise InvalidValue(f"The request window start {start_text} is not before its end {end_text}.")
    root, request = _request_message("get", "MeterReadings", message_id, correlation_id)
    _sub(request, "StartTime", start_text)
    _sub(request, "EndTime", end_text)
    for name, value in (options or {}).items():
        if value is not None:
            option = _sub(request, "Option")
            _sub(option, "name", str(name))
            _sub(option, "value", str(value))
    profile = etree.SubElement(
        request, f"{{{GET_METER_READINGS_NS}}}GetMeterReadings", nsmap={None: GET_METER_READINGS_NS}
    )
    for mrid in mrids:
        usage_point = _sub(profile, "UsagePoint", namespace=GET_METER_READINGS_NS)
        _sub(usage_point, "mRID", mrid, namespace=GET_METER_READINGS_NS)
    return _serialize(root)


def build_get_request(
    noun: str,
    options: Mapping[str, object] | None = None,
    *,
    message_id: str | None = None,
    correlation_id: str | None = None,
) -> bytes:
    """`get Customers` / `get UsagePoints` / `get Bills`, with optional `Request/Option` name/value pairs."""
    if noun not in GET_NOUNS:
        raise InvalidValue(f"Noun {noun!r} is not one we request this way; expected one of {sorted(GET_NOUNS)}.")
    root, request = _request_message("get", noun, message_id, correlation_id)
    for name, value in (options or {}).items():
        if value is None:
            continue
        option = _sub(request, "Option")
        _sub(option, "name", str(name))
        _sub(option, "value", str(value))
    return _serialize(root)


# --- reading --------------------------------------------------------------------------------------------------


def parse_instant(text: str | None, what: str) -> dt.datetime | None:
    """ISO 8601 with offset or Z -> aware UTC datetime; None for absent/empty; InvalidValue otherwise."""
    if text is None or not text.strip():
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidValue(f"{what} {text.strip()!r} is not a valid ISO 8601 timestamp.") from None
    if value.tzinfo is None:
        raise InvalidValue(f"{what} {text.strip()!r} has no UTC offset; timestamps must carry one (e.g. -03:00).")
    return value.astimezone(dt.timezone.utc)


def _child_texts(element: etree._Element) -> dict[str, str]:
    """Local name -> stripped text of the direct children (first occurrence wins)."""
    texts: dict[str, str] = {}
    for child in element:
        name = local_name(child.tag)
        if name and name not in texts:
            texts[name] = (child.text or "").strip()
    return texts


def _properties(header: etree._Element | None) -> tuple[tuple[str, str], ...]:
    if header is None:
        return ()
    found = []
    for child in header:
        if local_name(child.tag) == "Property":
            texts = _child_texts(child)
            found.append((texts.get("Name") or texts.get("name") or "", texts.get("Value") or texts.get("value") or ""))
    return tuple(found)


def _header_from_element(kind: str, namespace: str, header: etree._Element | None) -> EnvelopeHeader:
    texts = _child_texts(header) if header is not None else {}
    return EnvelopeHeader(
        kind=kind,
        verb=texts.get("Verb") or None,
        noun=texts.get("Noun") or None,
        message_id=texts.get("MessageID") or None,
        correlation_id=texts.get("CorrelationID") or None,
        timestamp=parse_instant(texts.get("Timestamp"), "Header Timestamp"),
        source=texts.get("Source") or None,
        namespace=namespace,
        properties=_properties(header),
    )


def _reply_from_element(reply: etree._Element) -> tuple[str | None, tuple[ReplyErrorDetail, ...]]:
    result: str | None = None
    errors: list[ReplyErrorDetail] = []
    for child in reply:
        name = local_name(child.tag)
        if name == "Result":
            result = (child.text or "").strip().upper() or None
        elif name == "Error":
            texts = _child_texts(child)
            errors.append(
                ReplyErrorDetail(
                    code=texts.get("code", ""),
                    level=texts.get("level", ""),
                    reason=texts.get("reason", ""),
                    details=texts.get("details", ""),
                )
            )
    return result, tuple(errors)


def _envelope_kind(root: etree._Element) -> str | None:
    name, namespace = local_name(root.tag), namespace_of(root.tag) if isinstance(root.tag, str) else ""
    if name in ROOT_KINDS:
        if namespace not in ACCEPTED_MESSAGE_NAMESPACES:
            raise UnexpectedMessage(
                f"Envelope {name} is in namespace {namespace!r}, not one of the IEC 61968-100 namespaces we accept "
                f"({', '.join(sorted(ACCEPTED_MESSAGE_NAMESPACES))})."
            )
        return ROOT_KINDS[name]
    return None


def parse_envelope_header(source: XmlSource) -> EnvelopeHeader:
    """Header and Reply of any envelope (Request/Response/Event/Fault), reading no further than needed.
    Does not raise on FAILED or Fault: it reports them (see `raise_for_reply`)."""
    header_element: etree._Element | None = None
    reply: tuple[str | None, tuple[ReplyErrorDetail, ...]] = (None, ())
    root: etree._Element | None = None
    tags = ["{*}Header", "{*}Reply", "{*}Payload", "{*}Request"]
    for event, element in safe_iterparse(source, tags):
        root = element if event == "root" else element.getroottree().getroot()
        if event == "root":
            break
        if element.getparent() is not root:
            continue
        name = local_name(element.tag)
        if name == "Header":
            header_element = element
        elif name == "Reply":
            reply = _reply_from_element(element)
        else:
            break
    assert root is not None
    kind = _envelope_kind(root)
    if kind is None:
        raise UnexpectedMessage(
            f"Root element {local_name(root.tag)!r} is not an IEC 61968-100 envelope "
            "(RequestMessage, ResponseMessage, EventMessage or FaultMessage)."
        )
    header = _header_from_element(kind, namespace_of(root.tag), header_element)
    return _with_reply(header, *reply)


def _with_reply(header: EnvelopeHeader, result: str | None, errors: tuple[ReplyErrorDetail, ...]) -> EnvelopeHeader:
    return EnvelopeHeader(**{**header.__dict__, "result": result, "errors": errors})


def raise_for_reply(header: EnvelopeHeader) -> None:
    """BackendReplyError for a FaultMessage or a FAILED result; PARTIAL and OK pass."""
    if header.kind == "Fault" or header.result == RESULT_FAILED:
        context = f"{header.kind} for {header.verb or '?'} {header.noun or '?'}"
        if header.correlation_id:
            context += f" (CorrelationID {header.correlation_id})"
        raise BackendReplyError(header.result or RESULT_FAILED, header.errors, context)


def parse_get_request(source: XmlSource) -> GetRequest:
    """A `get` RequestMessage (small; parsed whole) into its header, window, options and usage points."""
    root = parse_document(source)
    if _envelope_kind(root) != "Request":
        raise UnexpectedMessage(f"Expected a RequestMessage, got {local_name(root.tag)!r}.")
    children = {local_name(child.tag): child for child in root}
    header = _header_from_element("Request", namespace_of(root.tag), children.get("Header"))
    if (header.verb or "").lower() != "get":
        raise UnexpectedMessage(f"Expected verb 'get' in the request, got {header.verb!r}.")
    start = end = None
    options: dict[str, str] = {}
    mrids: list[str] = []
    request = children.get("Request")
    if request is not None:
        for child in request:
            name = local_name(child.tag)
            if name == "StartTime":
                start = parse_instant(child.text, "Request StartTime")
            elif name == "EndTime":
                end = parse_instant(child.text, "Request EndTime")
            elif name == "Option":
                texts = _child_texts(child)
                options[texts.get("name", "")] = texts.get("value", "")
            elif name == "GetMeterReadings":
                for usage_point in child:
                    if local_name(usage_point.tag) == "UsagePoint":
                        mrid = _child_texts(usage_point).get("mRID")
                        if mrid:
                            mrids.append(mrid)
    return GetRequest(header=header, start=start, end=end, options=options, usage_point_mrids=tuple(mrids))


class EnvelopeReader:
    """Stream the payload records of a ResponseMessage, an EventMessage (created/changed) or a bare payload
    document whose root is `noun` in one of `document_namespaces`.

    Iterating yields `(local_name, element)` at the end of every element named in `record_names`; callers
    should `clear()` what they consumed. `header` is complete once iteration finishes; while records are handed
    out it already holds the Header and Reply (they precede the Payload). Raises
    UnexpectedMessage (wrong root, verb, noun, namespace), BackendReplyError (Fault, FAILED)."""

    def __init__(self, source: XmlSource, noun: str, document_namespaces: Iterable[str], record_names: Iterable[str]):
        self.source = source
        self.noun = noun
        self.document_namespaces = frozenset(document_namespaces)
        self.record_names = tuple(record_names)
        self.header: EnvelopeHeader | None = None

    def _check_document(self, document: etree._Element) -> None:
        name, namespace = local_name(document.tag), namespace_of(document.tag)
        if name != self.noun or namespace not in self.document_namespaces:
            raise UnexpectedMessage(
                f"Expected a {self.noun} document in namespace {' or '.join(sorted(self.document_namespaces))}, "
                f"got {name!r} in namespace {namespace!r}."
            )

    def _check_header(self, header: EnvelopeHeader) -> None:
        verb = (header.verb or "").lower()
        if header.kind == "Fault":
            return
        if header.kind == "Request":
            raise UnexpectedMessage("Got a RequestMessage where a reply or event was expected.")
        if header.kind == "Response" and verb != "reply":
            raise UnexpectedMessage(f"A ResponseMessage must have verb 'reply', this one has {header.verb!r}.")
        if header.kind == "Event" and verb not in EVENT_VERBS:
            raise UnexpectedMessage(
                f"An EventMessage for {self.noun} must have verb 'created' or 'changed', this one has {header.verb!r}."
            )
        if header.noun != self.noun:
            raise UnexpectedMessage(f"Expected noun {self.noun!r} in the Header, got {header.noun!r}.")

    def __iter__(self) -> Iterator[tuple[str, etree._Element]]:
        tags = ["{*}Header", "{*}Reply", *(f"{{*}}{name}" for name in self.record_names)]
        root: etree._Element | None = None
        kind: str | None = None
        header_element: etree._Element | None = None
        reply: tuple[str | None, tuple[ReplyErrorDetail, ...]] = (None, ())
        records_checked = False
        names: dict[str, str] = {}
        envelope_parts = ("Header", "Reply")
        for event, element in safe_iterparse(self.source, tags):
            if root is None:
                root = element if event == "root" else element.getroottree().getroot()
                kind = _envelope_kind(root)
                if kind is None:
                    self._check_document(root)
                    kind = DOCUMENT_KIND
                    self.header = EnvelopeHeader(kind=DOCUMENT_KIND, noun=self.noun, namespace=namespace_of(root.tag))
            if event == "root":
                break
            tag = element.tag
            name = names.get(tag)
            if name is None:
                name = names[tag] = local_name(tag)
            if name in envelope_parts and kind != DOCUMENT_KIND and element.getparent() is root:
                if name == "Header":
                    header_element = element
                    self._check_header(_header_from_element(kind, namespace_of(root.tag), element))
                else:
                    reply = _reply_from_element(element)
                    self._raise_if_failed(kind, root, header_element, reply)
                # Provisional until the end (then checked again): Header and Reply precede the Payload.
                self.header = _with_reply(_header_from_element(kind, namespace_of(root.tag), header_element), *reply)
                continue
            if name in envelope_parts:
                continue
            if not records_checked:
                self._check_record_location(element, root, kind)
                records_checked = True
            yield name, element
        assert root is not None and kind is not None
        if kind == DOCUMENT_KIND:
            self.header = EnvelopeHeader(kind=DOCUMENT_KIND, noun=self.noun, namespace=namespace_of(root.tag))
            return
        header = _header_from_element(kind, namespace_of(root.tag), header_element)
        self._check_header(header)
        self._raise_if_failed(kind, root, header_element, reply)
        for part in root:
            if local_name(part.tag) == "Payload":
                for document in part:
                    if isinstance(document.tag, str):
                        self._check_document(document)
        self.header = _with_reply(header, *reply)

    def _raise_if_failed(
        self,
        kind: str,
        root: etree._Element,
        header_element: etree._Element | None,
        reply: tuple[str | None, tuple[ReplyErrorDetail, ...]],
    ) -> None:
        header = _with_reply(_header_from_element(kind, namespace_of(root.tag), header_element), *reply)
        raise_for_reply(header)

    def _check_record_location(self, element: etree._Element, root: etree._Element, kind: str) -> None:
        """The first record must sit inside the payload document (not, say, inside the Header)."""
        ancestor = element.getparent()
        while ancestor is not None:
            parent = ancestor.getparent()
            if local_name(ancestor.tag) == self.noun and (
                (kind == DOCUMENT_KIND and ancestor is root)
                or (parent is not None and local_name(parent.tag) == "Payload" and parent.getparent() is root)
            ):
                self._check_document(ancestor)
                return
            ancestor = parent
        raise UnexpectedMessage(
            f"Found a {local_name(element.tag)} element outside the {self.noun} payload document."
        )

"""HTTP stand-in for the utility's backends (MDM, CIS, billing, head-end) over a simulated `World`, plus JSON
ground truth for tests. Runs as its own process (`serve`); `create_app` gives the Flask app for in-process tests.

IEC 61968-100 endpoints (body: a `RequestMessage`; answer: a streamed `ResponseMessage`, HTTP 200, or a
`FaultMessage` with Result FAILED, HTTP 4xx/5xx; the reply's CorrelationID copies the request's, or its MessageID
when it has none):
- `POST /cim/mdm`      `get MeterReadings`: `Request/StartTime`, `Request/EndTime` (with offset or Z; window at
                       most 62 days) and `Request/GetMeterReadings/UsagePoint/mRID` (one or more). One
                       `MeterReading` per known usage point: 15-minute delivered energy (and received, for solar)
                       whose interval END t satisfies StartTime < t <= EndTime, and the daily register reads at
                       local midnights in the same window. Unknown usage points among known ones: Result PARTIAL
                       with one WARNING Error each; all unknown: FaultMessage. Multi-part replies: with
                       `SIMULATOR_PART_SIZE=N` a request for more than N usage points is answered in parts of N
                       (Header/Property `part` k and `partCount` n); the client asks for the next part by
                       repeating the request with `Request/Option` name `part`, value k+1.
- `POST /cim/cis`      `get Customers` (all customers), `get UsagePoints` (all supplies).
- `POST /cim/billing`  `get Bills` (all bills, or one supply's with `Request/Option` name `supply_id`).
                       `get Tariffs`: the BT1 tariff schedule (one row per half-year) covering the history.
- `POST /cim/billing`  `get AccountBalance` (`Request/Option` supply_id): live balance (see simulator.headend).
- `POST /cim/headend`  `create MeterReadings` / `get MeterReadings`: on-demand reads (see simulator.headend).
Fault injection per backend: `POST /admin/faults`, `GET /admin/faults`, `DELETE /admin/faults`, or the
`SIMULATOR_FAULTS` environment variable (see simulator.faults); head-end read delay and failure rate:
`POST /admin/headend` or `SIMULATOR_READ_DELAY` / `SIMULATOR_READ_FAILURE_RATE`. Every CIM call is logged
with its service, verb, noun, CorrelationID, HTTP status and duration.
Malformed or unsafe XML (any DOCTYPE), a wrong root, verb or noun, missing or bad times, a too long window,
unknown usage points or supply: FaultMessage, HTTP 400, never a stack trace.

Ground truth (JSON; dates are local America/Santiago dates, `from` inclusive and `to` exclusive):
- `GET /truth/config`     seed, supplies, months, customers, history_start (local ISO with offset),
                          history_start_date, now (UTC ISO), timezone.
- `GET /truth/customers`  [{customer_id, client_number, name, rut, email, supply_ids}]
- `GET /truth/supplies`   [{supply_id, usage_point_mrid, meter_mrid, customer_id, address, comuna, tariff, status,
                          has_solar, billing_cycle_day, pv_capacity_kw}]
- `GET /truth/intervals?supply_id=&from=YYYY-MM-DD&to=YYYY-MM-DD&flow=delivered|received`
                          {supply_id, flow, points: [{interval_end (ISO with offset), wh}]}
- `GET /truth/daily?supply_id=&from=&to=&flow=`
                          {supply_id, flow, days: [{local_date, wh, intervals, expected_intervals}]}; the days of
                          [from, to) inside the history; `intervals` counts those available up to `now`.
- `GET /truth/bills[?supply_id=]`  [{bill_id, supply_id, period_start, period_end, issue_date, due_date, kwh,
                          billed_wh, register_start_kwh, register_end_kwh, received_kwh, received_wh, net_clp,
                          iva_clp, total_clp, status, lines: [{line_no, code, description, quantity, unit,
                          unit_price_clp, amount_clp}]}]
A supply without solar has no received channel: its received points and days are empty lists.
- `GET /healthz`          "ok"
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Iterator

from flask import Flask, Response, g, jsonify, request
from lxml import etree
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.serving import make_server

from cim_ingest.errors import CimError, UnsafeXml
from cim_ingest.writer import (
    READING_TYPE_15MIN_DELIVERED,
    READING_TYPE_15MIN_RECEIVED,
    READING_TYPE_REGISTER_DELIVERED,
    READING_TYPE_REGISTER_RECEIVED,
    SANTIAGO,
    BillOut,
    CustomerOut,
    IntervalBlockOut,
    MeterReadingOut,
    RegisterReadOut,
    ReplyError,
    ReplyHeader,
    UsagePointOut,
    iter_bills_response,
    iter_customers_response,
    iter_fault_message,
    iter_meter_readings_response,
    iter_usage_points_response,
    local_timestamps,
)
from cim_ingest.xml_safety import local_name, parse_document
from cim_ingest.tariffs import TariffOut, iter_tariffs_response
from simulator.faults import FaultConfigError, FaultInjector, faulty_response
from simulator.headend import HeadEnd, HeadEndRejected, account_balance, iter_account_balance_response
from simulator.model import FLOWS, SimulationConfig, World, _round_half_up, local_midnight, tariff_on

log = logging.getLogger(__name__)

MAX_WINDOW = dt.timedelta(days=62)
MAX_REQUEST_BYTES = 4 * 1024 * 1024
XML_MIMETYPE = "application/xml"

SOURCES = {"mdm": "SIM-MDM", "cis": "SIM-CIS", "billing": "SIM-BILLING", "headend": "SIM-HEADEND"}
NOUNS = {"mdm": {"MeterReadings"}, "cis": {"Customers", "UsagePoints"}, "billing": {"Bills", "Tariffs", "AccountBalance"},
         "headend": {"MeterReadings"}}


class RequestRejected(Exception):
    """A request we answer with a FaultMessage."""

    def __init__(self, code: str, reason: str, details: str = "", status: int = 400, level: str = "FATAL"):
        super().__init__(reason)
        self.error = ReplyError(code=code, level=level, reason=reason, details=details)
        self.status = status


@dataclass
class ParsedRequest:
    verb: str = ""
    noun: str = ""
    message_id: str = ""
    correlation_id: str = ""
    start_text: str = ""
    end_text: str = ""
    options: dict[str, str] = field(default_factory=dict)
    usage_point_mrids: list[str] = field(default_factory=list)

    @property
    def reply_correlation_id(self) -> str:
        return self.correlation_id or self.message_id


def _child_text(element: etree._Element | None, name: str) -> str:
    if element is None:
        return ""
    for child in element:
        if local_name(child.tag) == name:
            return (child.text or "").strip()
    return ""


def _child(element: etree._Element | None, name: str) -> etree._Element | None:
    if element is None:
        return None
    for child in element:
        if local_name(child.tag) == name:
            return child
    return None


def parse_request(body: bytes) -> ParsedRequest:
    """The parts of a RequestMessage we act on, matched by local name (any message namespace edition)."""
    if not body.strip():
        raise RequestRejected("EMPTY_REQUEST", "The request body is empty; send a RequestMessage.")
    try:
        root = parse_document(body)
    except UnsafeXml as error:
        raise RequestRejected("UNSAFE_XML", "The request uses a DOCTYPE or entities, which are refused.",
                              str(error)) from error
    except CimError as error:
        raise RequestRejected("MALFORMED_XML", "The request is not well-formed XML.", str(error)) from error
    if local_name(root.tag) != "RequestMessage":
        raise RequestRejected(
            "UNEXPECTED_MESSAGE", f"Expected a RequestMessage, got {local_name(root.tag) or 'no element'}.")
    header = _child(root, "Header")
    request_part = _child(root, "Request")
    parsed = ParsedRequest(
        verb=_child_text(header, "Verb"),
        noun=_child_text(header, "Noun"),
        message_id=_child_text(header, "MessageID"),
        correlation_id=_child_text(header, "CorrelationID"),
        start_text=_child_text(request_part, "StartTime"),
        end_text=_child_text(request_part, "EndTime"),
    )
    if request_part is not None:
        for element in request_part.iter():
            name = local_name(element.tag)
            if name == "Option" and element.getparent() is request_part:
                parsed.options[_child_text(element, "name")] = _child_text(element, "value")
            elif name == "UsagePoint":
                mrid = _child_text(element, "mRID")
                if mrid and mrid not in parsed.usage_point_mrids:
                    parsed.usage_point_mrids.append(mrid)
    return parsed


def _parse_instant(text: str, field_name: str) -> dt.datetime:
    if not text:
        raise RequestRejected("MISSING_TIME", f"Request/{field_name} is required for get MeterReadings.")
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise RequestRejected("INVALID_TIME", f"Request/{field_name} is not an ISO 8601 instant: {text!r}.") from error
    if instant.tzinfo is None:
        raise RequestRejected("INVALID_TIME", f"Request/{field_name} has no UTC offset: {text!r}.")
    return instant


def _fault(correlation_id: str, service: str, noun: str, error: ReplyError, status: int) -> Response:
    header = ReplyHeader(noun=noun or "Unknown", correlation_id=correlation_id, source=SOURCES[service])
    return Response(iter_fault_message(header, [error]), status=status, mimetype=XML_MIMETYPE)


def _meter_reading(world: World, supply_index: int, start: dt.datetime, end: dt.datetime) -> MeterReadingOut:
    supply = world.supply(supply_index)
    ends, values = world.intervals_both(supply_index, start, end)
    blocks = []
    registers = []
    channels = [("delivered", READING_TYPE_15MIN_DELIVERED, READING_TYPE_REGISTER_DELIVERED)]
    if supply.has_solar:
        channels.append(("received", READING_TYPE_15MIN_RECEIVED, READING_TYPE_REGISTER_RECEIVED))
    for flow, interval_type, register_type in channels:
        if len(ends):
            blocks.append(IntervalBlockOut(interval_type, ends, values_wh=values[flow]))
        read_times, read_values = world.register_reads(supply_index, start, end, flow)
        registers.extend(
            RegisterReadOut(register_type, read_at, value_wh=value)
            for read_at, value in zip(read_times.tolist(), read_values.tolist())
        )
    return MeterReadingOut(supply.usage_point_mrid, supply.meter_mrid, blocks, registers)


def _answer_meter_readings(world: World, parsed: ParsedRequest, header: ReplyHeader) -> Response:
    start = _parse_instant(parsed.start_text, "StartTime")
    end = _parse_instant(parsed.end_text, "EndTime")
    if end <= start:
        raise RequestRejected("INVALID_WINDOW", "Request/EndTime must be after Request/StartTime.")
    if end - start > MAX_WINDOW:
        raise RequestRejected(
            "WINDOW_TOO_LONG", f"The window is {end - start}; at most {MAX_WINDOW.days} days per request.",
            "Split the request into shorter windows.")
    if not parsed.usage_point_mrids:
        raise RequestRejected("NO_USAGE_POINT", "Name at least one Request/GetMeterReadings/UsagePoint/mRID.")
    known, errors = [], []
    for mrid in parsed.usage_point_mrids:
        index = world.supply_index_by_usage_point(mrid)
        if index is None:
            errors.append(ReplyError("UNKNOWN_USAGE_POINT", "WARNING", "Unknown usage point.", mrid))
        else:
            known.append(index)
    if not known:
        raise RequestRejected(
            "UNKNOWN_USAGE_POINT", "None of the requested usage points exists.", ", ".join(parsed.usage_point_mrids))
    part_size = int(os.environ.get("SIMULATOR_PART_SIZE") or 0)  # usage points per reply part; 0: one part
    if part_size > 0 and len(known) > part_size:
        part_count = -(-len(known) // part_size)
        part = int(parsed.options.get("part") or 1) if str(parsed.options.get("part") or "1").isdigit() else 0
        if not 1 <= part <= part_count:
            raise RequestRejected("INVALID_PART", f"Request/Option part must be 1..{part_count}.")
        known = known[(part - 1) * part_size: part * part_size]
        errors = errors if part == 1 else []
        header = dataclasses.replace(header, properties=(("part", str(part)), ("partCount", str(part_count))))
    readings = (_meter_reading(world, index, start, end) for index in known)
    result = "PARTIAL" if errors else "OK"
    return Response(iter_meter_readings_response(header, readings, result, errors), mimetype=XML_MIMETYPE)


def _customers_out(world: World) -> Iterator[CustomerOut]:
    for customer in world.customers():
        yield CustomerOut(customer.customer_id, customer.client_number, customer.name, customer.rut, customer.email)


def _usage_points_out(world: World) -> Iterator[UsagePointOut]:
    for supply in world.supplies():
        yield UsagePointOut(supply.usage_point_mrid, supply.supply_id, supply.meter_mrid, supply.customer_id,
                            supply.address, supply.comuna, supply.tariff, supply.status, supply.has_solar)


def _bills_of(world: World, supply_id: str | None) -> Iterator[BillOut]:
    indices = range(world.supply_count) if supply_id is None else [world.supply_index_by_id(supply_id)]
    for index in indices:
        yield from world.bills(index)


def _tariffs_out(world: World) -> Iterator[TariffOut]:
    """The schedule of `simulator.model.tariff_on`, one row per half-year from the history start to today."""
    day = tariff_on(world.history_start_date).valid_from
    while day <= world.today:
        tariff = tariff_on(day)
        valid_to = dt.date(day.year + (day.month == 7), 1 if day.month == 7 else 7, 1)
        yield TariffOut("BT1", tariff.valid_from, valid_to,
                        _round_half_up(*tariff.fixed_clp_per_month.as_integer_ratio()),
                        tariff.energy_clp_per_kwh, tariff.injection_clp_per_kwh)
        day = valid_to


def _answer(world: World, service: str, parsed: ParsedRequest) -> Response:
    if parsed.verb.lower() != "get":
        raise RequestRejected("UNSUPPORTED_VERB", f"Only verb 'get' is served here, not {parsed.verb!r}.")
    if parsed.noun not in NOUNS[service]:
        raise RequestRejected(
            "UNKNOWN_NOUN", f"Noun {parsed.noun!r} is not served by /cim/{service}.",
            f"Served nouns: {', '.join(sorted(NOUNS[service]))}.")
    header = ReplyHeader(noun=parsed.noun, correlation_id=parsed.reply_correlation_id, source=SOURCES[service])
    if parsed.noun == "MeterReadings":
        return _answer_meter_readings(world, parsed, header)
    if parsed.noun == "Customers":
        return Response(iter_customers_response(header, _customers_out(world)), mimetype=XML_MIMETYPE)
    if parsed.noun == "UsagePoints":
        return Response(iter_usage_points_response(header, _usage_points_out(world)), mimetype=XML_MIMETYPE)
    if parsed.noun == "Tariffs":
        return Response(iter_tariffs_response(header, _tariffs_out(world)), mimetype=XML_MIMETYPE)
    supply_id = parsed.options.get("supply_id") or None
    if supply_id is not None and world.supply_index_by_id(supply_id) is None:
        raise RequestRejected("UNKNOWN_SUPPLY", "Unknown supply_id.", supply_id)
    if parsed.noun == "AccountBalance":
        if supply_id is None:
            raise RequestRejected("NO_SUPPLY", "Name the supply with Request/Option supply_id.")
        balance = account_balance(world, world.supply_index_by_id(supply_id))
        return Response(iter_account_balance_response(header, balance), mimetype=XML_MIMETYPE)
    return Response(iter_bills_response(header, _bills_of(world, supply_id)), mimetype=XML_MIMETYPE)


# --- ground truth -------------------------------------------------------------------------------------------


class TruthQueryError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _truth_supply_index(world: World) -> int:
    supply_id = request.args.get("supply_id", "")
    index = world.supply_index_by_id(supply_id)
    if index is None:
        raise TruthQueryError(f"unknown supply_id {supply_id!r}", 404)
    return index


def _truth_dates() -> tuple[dt.date, dt.date]:
    try:
        first = dt.date.fromisoformat(request.args["from"])
        last = dt.date.fromisoformat(request.args["to"])
    except (KeyError, ValueError) as error:
        raise TruthQueryError("from and to must be local dates YYYY-MM-DD") from error
    if last <= first:
        raise TruthQueryError("to must be after from (to is exclusive)")
    return first, last


def _truth_flow() -> str:
    flow = request.args.get("flow", "delivered")
    if flow not in FLOWS:
        raise TruthQueryError(f"flow must be one of {', '.join(FLOWS)}")
    return flow


def bill_json(bill: BillOut) -> dict:
    return {
        "bill_id": bill.bill_id, "supply_id": bill.supply_id,
        "period_start": bill.period_start.isoformat(), "period_end": bill.period_end.isoformat(),
        "issue_date": bill.issue_date.isoformat(), "due_date": bill.due_date.isoformat(),
        "kwh": bill.billed_wh / 1000, "billed_wh": bill.billed_wh,
        "register_start_kwh": bill.register_start_wh / 1000, "register_end_kwh": bill.register_end_wh / 1000,
        "received_kwh": bill.received_wh / 1000, "received_wh": bill.received_wh,
        "net_clp": bill.net_clp, "iva_clp": bill.iva_clp, "total_clp": bill.total_clp, "status": bill.status,
        "lines": [
            {"line_no": line.line_no, "code": line.code, "description": line.description,
             "quantity": float(line.quantity), "unit": line.unit, "unit_price_clp": float(line.unit_price_clp),
             "amount_clp": line.amount_clp}
            for line in bill.lines
        ],
    }


def _register_truth_routes(app: Flask, world: World) -> None:
    @app.errorhandler(TruthQueryError)
    def truth_query_error(error: TruthQueryError):
        return jsonify({"error": str(error)}), error.status

    @app.get("/truth/config")
    def truth_config():
        return jsonify({
            "seed": world.config.seed, "supplies": world.supply_count, "months": world.config.months,
            "customers": world.customer_count,
            "history_start": world.history_start.astimezone(SANTIAGO).isoformat(),
            "history_start_date": world.history_start_date.isoformat(),
            "now": world.now.isoformat(), "timezone": "America/Santiago",
        })

    @app.get("/truth/customers")
    def truth_customers():
        return jsonify([
            {"customer_id": customer.customer_id, "client_number": customer.client_number, "name": customer.name,
             "rut": customer.rut, "email": customer.email,
             "supply_ids": [supply.supply_id for supply in world.supplies_of_customer(customer.index)]}
            for customer in world.customers()
        ])

    @app.get("/truth/supplies")
    def truth_supplies():
        return jsonify([
            {"supply_id": s.supply_id, "usage_point_mrid": s.usage_point_mrid, "meter_mrid": s.meter_mrid,
             "customer_id": s.customer_id, "address": s.address, "comuna": s.comuna, "tariff": s.tariff,
             "status": s.status, "has_solar": s.has_solar, "billing_cycle_day": s.billing_cycle_day,
             "pv_capacity_kw": s.pv_capacity_kw}
            for s in world.supplies()
        ])

    @app.get("/truth/intervals")
    def truth_intervals():
        index, (first, last), flow = _truth_supply_index(world), _truth_dates(), _truth_flow()
        ends, values = world.intervals(index, local_midnight(first), local_midnight(last), flow)
        points = [{"interval_end": stamp, "wh": wh} for stamp, wh in zip(local_timestamps(ends), values.tolist())]
        return jsonify({"supply_id": world.supply(index).supply_id, "flow": flow, "points": points})

    @app.get("/truth/daily")
    def truth_daily():
        index, (first, last), flow = _truth_supply_index(world), _truth_dates(), _truth_flow()
        days = [
            {"local_date": day.local_date.isoformat(), "wh": day.wh, "intervals": day.intervals,
             "expected_intervals": day.expected_intervals}
            for day in world.daily_totals(index, first, last, flow)
        ]
        return jsonify({"supply_id": world.supply(index).supply_id, "flow": flow, "days": days})

    @app.get("/truth/bills")
    def truth_bills():
        supply_id = request.args.get("supply_id") or None
        if supply_id is not None:
            _truth_supply_index(world)
        return jsonify([bill_json(bill) for bill in _bills_of(world, supply_id)])


def _answer_headend(headend: HeadEnd, parsed: ParsedRequest) -> Response:
    verb = parsed.verb.lower()
    if parsed.noun != "MeterReadings" or verb not in ("create", "get"):
        raise RequestRejected("UNKNOWN_NOUN", f"The head-end serves 'create'/'get MeterReadings', not "
                              f"{parsed.verb!r} {parsed.noun!r}.")
    header = ReplyHeader(noun="MeterReadings", correlation_id=parsed.reply_correlation_id, source=SOURCES["headend"])
    try:
        if verb == "create":
            body = headend.create(parsed.reply_correlation_id, parsed.usage_point_mrids, header)
        else:
            body = headend.poll(parsed.options, header)
    except HeadEndRejected as rejected:
        raise RequestRejected(rejected.code, rejected.reason, rejected.details, rejected.status) from rejected
    return Response(body, mimetype=XML_MIMETYPE)


def _register_admin_routes(app: Flask, faults: FaultInjector, headend: HeadEnd) -> None:
    """Fault injection and head-end settings (JSON; a test and operator tool, like /truth)."""

    @app.get("/admin/faults")
    def list_faults():
        return jsonify(faults.snapshot())

    @app.post("/admin/faults")
    def set_fault():
        body = request.get_json(silent=True) or {}
        try:
            faults.set(str(body.get("backend", "")), str(body.get("mode", "")), body.get("delay_s"), body.get("count"))
        except FaultConfigError as error:
            return jsonify({"error": str(error)}), 400
        return jsonify(faults.snapshot())

    @app.delete("/admin/faults")
    def clear_faults():
        faults.clear()
        return jsonify({})

    @app.post("/admin/headend")
    def headend_settings():
        body = request.get_json(silent=True) or {}
        try:
            headend.settings.update(body.get("delay_min_s"), body.get("delay_max_s"), body.get("failure_rate"))
        except (TypeError, ValueError) as error:
            return jsonify({"error": str(error)}), 400
        return jsonify(headend.settings.as_dict())

    @app.before_request
    def start_clock():
        g.cim_started = time.monotonic()

    @app.after_request
    def log_cim_call(response: Response) -> Response:
        if request.path.startswith("/cim/"):
            parsed = g.get("cim_request") or ParsedRequest()
            log.info("cim call service=%s verb=%s noun=%s correlation_id=%s status=%d duration_ms=%.1f",
                     request.path.rsplit("/", 1)[-1], parsed.verb or "-", parsed.noun or "-",
                     parsed.reply_correlation_id or "-", response.status_code,
                     (time.monotonic() - g.get("cim_started", time.monotonic())) * 1000)
        return response


def create_app(config: SimulationConfig | None = None) -> Flask:
    """The simulator's Flask app over a `World` built from `config` (default: `SimulationConfig()`)."""
    world = World(config or SimulationConfig())
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.ensure_ascii = False
    app.extensions["simulator_world"] = world

    @app.get("/healthz")
    def healthz():
        return Response("ok", mimetype="text/plain")

    faults = FaultInjector()
    faults.configure_from_text(os.environ.get("SIMULATOR_FAULTS", ""))
    headend = HeadEnd(world)
    headend.settings.configure_from_env(
        os.environ.get("SIMULATOR_READ_DELAY"), os.environ.get("SIMULATOR_READ_FAILURE_RATE"))
    app.extensions["simulator_faults"] = faults
    app.extensions["simulator_headend"] = headend
    _register_admin_routes(app, faults, headend)

    @app.post("/cim/<service>")
    def cim(service: str):
        if service not in SOURCES:
            return _fault("", "mdm", "", ReplyError("UNKNOWN_SERVICE", "FATAL", f"No service {service!r}."), 404)
        parsed = ParsedRequest()
        try:
            parsed = parse_request(request.get_data(cache=False))
            g.cim_request = parsed

            def answer() -> Response:
                if service == "headend":
                    return _answer_headend(headend, parsed)
                return _answer(world, service, parsed)

            fault = faults.take(service)
            if fault is not None:
                header = ReplyHeader(noun=parsed.noun or "Unknown", correlation_id=parsed.reply_correlation_id,
                                     source=SOURCES[service])
                return faulty_response(fault, header, answer)
            return answer()
        except RequestRejected as rejected:
            log.info("rejected %s request: %s", service, rejected.error.reason)
            return _fault(parsed.reply_correlation_id, service, parsed.noun, rejected.error, rejected.status)
        except RequestEntityTooLarge:
            error = ReplyError("REQUEST_TOO_LARGE", "FATAL", f"Requests are limited to {MAX_REQUEST_BYTES} bytes.")
            return _fault("", service, "", error, 413)
        except Exception:
            log.exception("unexpected failure answering a %s request", service)
            error = ReplyError("INTERNAL_ERROR", "FATAL", "The simulator failed to answer; see its log.")
            return _fault(parsed.reply_correlation_id, service, parsed.noun, error, 500)

    _register_truth_routes(app, world)
    return app


def serve(host: str = "127.0.0.1", port: int = 8600, config: SimulationConfig | None = None) -> None:
    """Run the simulator until interrupted (werkzeug's threaded server; a process of its own)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config or SimulationConfig()
    app = create_app(config)
    world: World = app.extensions["simulator_world"]
    server = make_server(host, port, app, threaded=True)
    log.info(
        "simulator on http://%s:%d: seed %d, %d supplies, %d customers, history %s .. %s (UTC now)",
        host, port, config.seed, world.supply_count, world.customer_count, world.history_start.isoformat(),
        world.now.isoformat(),
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

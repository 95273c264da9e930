"""Live passthrough endpoints under /api/v1 (what must be asked of a backend at request time):

- `GET  /supplies/<id>/balance`                 billing's live balance, or the last known one marked stale.
- `POST /supplies/<id>/meter-reads`             ask the head-end for an on-demand read: 202 + `status_url`;
                                                rate-limited per supply (429 with a Spanish message).
- `GET  /supplies/<id>/meter-reads/<read_id>`   `pending` / `done` (value, not validated) / `failed`.
- `GET  /supplies/<id>/today`                   intervals newer than the last publish, live from the MDM,
                                                marked provisional.

Calls go through `webapp.passthrough.BackendGateway` (deadline, retries for reads only, breaker, bulkhead).
Customers see Spanish sentences; logs are English. Anything not the caller's is a 404."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
import uuid
from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, request, url_for
from flask_login import login_required

from cim_ingest.errors import UnexpectedMessage
from cim_ingest.live import (
    READ_DONE,
    READ_FAILED,
    READ_PENDING,
    build_create_meter_read,
    build_get_account_balance,
    build_get_meter_read,
    build_meter_read_event,
    parse_account_balance,
    parse_create_reply,
    parse_meter_read_reply,
)
from cim_ingest.messages import build_get_meter_readings
from cim_ingest.meter_readings import parse_meter_readings
from readmodel.timeutil import local_midnight_utc, local_today, to_local_iso
from webapp.access import owned_supply_or_404
from webapp.passthrough import BackendGateway, LiveStore, PassthroughError, PassthroughSettings
from webapp.passthrough.inbox import write_inbox_file

bp = Blueprint("live", __name__, url_prefix="/api/v1")
log = logging.getLogger("webapp.passthrough")

INTERVAL = dt.timedelta(minutes=15)
FLOWS = ("delivered", "received")
MESSAGES = {
    "balance_unavailable": "No pudimos consultar tu saldo en este momento. Intenta nuevamente en unos minutos.",
    "balance_stale": "No pudimos consultar tu saldo actualizado. Te mostramos el último saldo conocido, "
                     "consultado hace {age}; puede no estar al día.",
    "read_rate_limited": "Ya solicitaste una lectura de este medidor hace poco. Puedes pedir otra en {wait}.",
    "read_request_failed": "No pudimos enviar la solicitud de lectura a tu medidor. Intenta nuevamente en unos "
                           "minutos.",
    "read_pending": "Estamos leyendo tu medidor. Puede tardar hasta un minuto.",
    "read_pending_unconfirmed": "Estamos leyendo tu medidor, pero no pudimos confirmar su avance en este momento. "
                                "Seguimos intentando.",
    "read_done": "Lectura recibida. Es un valor aún no validado.",
    "read_failed": "Tu medidor no respondió a la lectura. Intenta nuevamente más tarde.",
    "read_incomplete": "La lectura de tu medidor llegó incompleta y no podemos mostrarla. Intenta nuevamente más "
                       "tarde.",
    "read_timed_out": "La lectura de tu medidor tardó demasiado y se canceló. Intenta nuevamente más tarde.",
    "today_unavailable": "No pudimos obtener el consumo de hoy en este momento. Intenta nuevamente en unos minutos.",
    "today_partial": "Algunos datos de hoy aún no están disponibles.",
    "today_provisional": "Datos de hoy provisionales: aún no están validados y pueden cambiar.",
}


_ERROR = {"description": "Error (Spanish `error` text)", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]}}}}}}
_SUPPLY = {"name": "supply_id", "in": "path", "required": True, "schema": {"type": "string"}}
_READ_STATUS = {"type": "object", "required": ["read_id", "state", "validated", "message"], "properties": {
    "read_id": {"type": "string"}, "supply_id": {"type": "string"},
    "state": {"type": "string", "enum": [READ_PENDING, READ_DONE, READ_FAILED]},
    "value_kwh": {"type": ["number", "null"]}, "read_at": {"type": ["string", "null"], "format": "date-time"},
    "validated": {"type": "boolean", "const": False}, "requested_at": {"type": "string", "format": "date-time"},
    "message": {"type": "string"}}}
OPENAPI_PATHS = {
    "/supplies/{supply_id}/balance": {"get": {
        "summary": "Live balance from billing; the last known one with stale=true when billing does not answer",
        "parameters": [_SUPPLY],
        "responses": {"200": {"description": "Balance", "content": {"application/json": {"schema": {
            "type": "object", "required": ["amount_due_clp", "due_date", "as_of", "stale"], "properties": {
                "supply_id": {"type": "string"}, "amount_due_clp": {"type": "integer"},
                "due_date": {"type": ["string", "null"], "format": "date"},
                "payment_status": {"type": "string", "enum": ["paid", "due", "overdue"]},
                "as_of": {"type": "string", "format": "date-time"}, "stale": {"type": "boolean"},
                "age_seconds": {"type": "integer"}, "message": {"type": ["string", "null"]}}}}}},
            "401": _ERROR, "404": _ERROR, "503": _ERROR}}},
    "/supplies/{supply_id}/meter-reads": {"post": {
        "summary": "Ask the meter for a read now (X-CSRFToken); poll status_url until it is done or failed",
        "parameters": [_SUPPLY],
        "responses": {"202": {"description": "Accepted", "content": {"application/json": {"schema": {
            "type": "object", "required": ["status_url", "state"], "properties": {
                "read_id": {"type": "string"}, "state": {"type": "string"}, "status_url": {"type": "string"},
                "validated": {"type": "boolean"}, "message": {"type": "string"}}}}}},
            "400": _ERROR, "401": _ERROR, "404": _ERROR, "429": _ERROR, "503": _ERROR}}},
    "/supplies/{supply_id}/meter-reads/{read_id}": {"get": {
        "summary": "State of an on-demand read; when done, the value (never validated)",
        "parameters": [_SUPPLY, {"name": "read_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "Read status", "content": {"application/json": {
            "schema": _READ_STATUS}}}, "401": _ERROR, "404": _ERROR}}},
    "/supplies/{supply_id}/today": {"get": {
        "summary": "Today's 15-minute intervals newer than the last publish, live from the MDM, provisional",
        "parameters": [_SUPPLY, {"name": "flow", "in": "query", "schema": {
            "type": "string", "enum": list(FLOWS)}}],
        "responses": {"200": {"description": "Provisional intervals", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"provisional": {"type": "boolean"}, "since": {"type": "string"},
                                             "points": {"type": "array"}}}}}},
            "400": _ERROR, "401": _ERROR, "404": _ERROR, "503": _ERROR}}},
}


@bp.record_once
def _setup(state) -> None:
    app = state.app
    from webapp.openapi import OPENAPI

    OPENAPI["paths"].update(OPENAPI_PATHS)
    config = app.config
    settings = PassthroughSettings.from_config(config)
    app.extensions["passthrough"] = BackendGateway(settings)
    data_dir = Path(config["AMI_DATA_DIR"])
    store = LiveStore(Path(config.get("PASSTHROUGH_DB") or data_dir / "passthrough.sqlite"))
    store.initialize()
    app.extensions["passthrough_store"] = store
    config.setdefault("METER_READ_RATE_LIMIT_S", float(_env("METER_READ_RATE_LIMIT_S", 900)))
    config.setdefault("METER_READ_TIMEOUT_S", float(_env("METER_READ_TIMEOUT_S", 120)))
    config.setdefault("PASSTHROUGH_ENRICH_DEADLINE_S", float(_env("PASSTHROUGH_ENRICH_DEADLINE_S", settings.deadline_s)))
    if not log.handlers and not logging.getLogger().handlers:
        # gunicorn configures only its own loggers: give the call log a home on stderr (the worker's log)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"))
        log.addHandler(handler)
        log.propagate = False  # a root handler configured later must not print every line twice
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


def _env(name: str, default):
    return os.environ.get(name) or default


def gateway() -> BackendGateway:
    return current_app.extensions["passthrough"]


def store() -> LiveStore:
    return current_app.extensions["passthrough_store"]


def _age_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return "menos de un minuto"
    if minutes < 60:
        return "1 minuto" if minutes == 1 else f"{minutes} minutos"
    hours = minutes // 60
    if hours < 48:
        return "1 hora" if hours == 1 else f"{hours} horas"
    return f"{hours // 24} días"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- balance ---------------------------------------------------------------------------------------------------


@bp.get("/supplies/<supply_id>/balance")
@login_required
def balance(supply_id: str):
    owned_supply_or_404(supply_id)
    correlation_id = str(uuid.uuid4())

    def parse(body: bytes):
        result = parse_account_balance(body, correlation_id)
        if result.supply_id != supply_id:
            raise UnexpectedMessage(f"billing answered for supply {result.supply_id!r}, not {supply_id!r}")
        return result

    try:
        result = gateway().call("billing", "get AccountBalance",
                                build_get_account_balance(supply_id, correlation_id=correlation_id),
                                correlation_id, parse, idempotent=True,
                                deadline_s=current_app.config["PASSTHROUGH_ENRICH_DEADLINE_S"])
    except PassthroughError:
        last = store().last_balance(supply_id)
        if last is None:
            return jsonify(error=MESSAGES["balance_unavailable"], field=None, supply_id=supply_id, stale=None), 503
        age = max(0.0, time.time() - last["read_at"])
        return jsonify(
            supply_id=supply_id, amount_due_clp=last["amount_due_clp"], due_date=last["due_date"],
            payment_status=last["payment_status"],
            as_of=to_local_iso(dt.datetime.fromtimestamp(last["read_at"], dt.UTC)), stale=True,
            age_seconds=int(age), message=MESSAGES["balance_stale"].format(age=_age_text(age)))
    read_at = time.time()
    due_date = result.due_date.isoformat() if result.due_date else None
    store().save_balance(supply_id, result.amount_due_clp, due_date, result.payment_status, read_at)
    return jsonify(
        supply_id=supply_id, amount_due_clp=result.amount_due_clp, due_date=due_date,
        payment_status=result.payment_status, as_of=to_local_iso(dt.datetime.fromtimestamp(read_at, dt.UTC)),
        stale=False, age_seconds=0, message=None)


# --- on-demand meter reads -------------------------------------------------------------------------------------


def _wait_text(seconds: float) -> str:
    minutes = max(1, int(-(-seconds // 60)))
    return "1 minuto" if minutes == 1 else f"{minutes} minutos"


@bp.post("/supplies/<supply_id>/meter-reads")
@login_required
def request_meter_read(supply_id: str):
    supply = owned_supply_or_404(supply_id)
    read_id = uuid.uuid4().hex
    correlation_id = str(uuid.uuid4())
    wait = store().reserve_read(
        read_id=read_id, supply_id=supply_id, usage_point_mrid=supply["usage_point_mrid"],
        meter_mrid=supply["meter_mrid"], correlation_id=correlation_id,
        window_s=float(current_app.config["METER_READ_RATE_LIMIT_S"]))
    if wait:
        response = jsonify(error=MESSAGES["read_rate_limited"].format(wait=_wait_text(wait)), field=None,
                           retry_after_s=int(-(-wait // 1)))
        response.headers["Retry-After"] = str(int(-(-wait // 1)))
        return response, 429
    try:
        # not idempotent (each create starts a read on the meter): never retried
        gateway().call("headend", "create MeterReadings",
                       build_create_meter_read(supply["usage_point_mrid"], correlation_id=correlation_id),
                       correlation_id, lambda body: parse_create_reply(body, correlation_id), idempotent=False)
    except PassthroughError:
        store().drop_read(read_id)
        return jsonify(error=MESSAGES["read_request_failed"], field=None), 503
    status_url = url_for("live.meter_read_status", supply_id=supply_id, read_id=read_id)
    response = jsonify(read_id=read_id, state=READ_PENDING, status_url=status_url, validated=False,
                       message=MESSAGES["read_pending"])
    response.headers["Location"] = status_url
    return response, 202


def _read_view(row: dict, message_key: str | None = None) -> dict:
    key = message_key or row["message_key"] or {READ_PENDING: "read_pending", READ_DONE: "read_done"}.get(
        row["state"], "read_failed")
    return {
        "read_id": row["read_id"], "supply_id": row["supply_id"], "state": row["state"],
        "value_kwh": row["value_kwh"] if row["state"] == READ_DONE else None,
        "read_at": row["read_at"] if row["state"] == READ_DONE else None,
        "validated": False,
        "requested_at": to_local_iso(dt.datetime.fromtimestamp(row["requested_at"], dt.UTC)),
        "message": MESSAGES[key],
    }


@bp.get("/supplies/<supply_id>/meter-reads/<read_id>")
@login_required
def meter_read_status(supply_id: str, read_id: str):
    owned_supply_or_404(supply_id)
    live_store = store()
    row = live_store.get_read(supply_id, read_id)
    if row is None:
        abort(404)
    if row["state"] != READ_PENDING:
        return jsonify(_read_view(row))
    if time.time() - row["requested_at"] > float(current_app.config["METER_READ_TIMEOUT_S"]):
        live_store.finish_read(read_id, READ_FAILED, "read_timed_out")
        return jsonify(_read_view(live_store.get_read(supply_id, read_id)))
    correlation_id = row["correlation_id"]
    try:
        status = gateway().call("headend", "get MeterReadings (poll)", build_get_meter_read(correlation_id),
                                correlation_id, lambda body: parse_meter_read_reply(body, correlation_id),
                                idempotent=True)
    except PassthroughError as error:
        if error.outcome == "rejected":  # the head-end no longer knows the read: it will never finish
            live_store.finish_read(read_id, READ_FAILED, "read_failed")
            return jsonify(_read_view(live_store.get_read(supply_id, read_id)))
        return jsonify(_read_view(row, "read_pending_unconfirmed"))
    if status.state == READ_PENDING:
        return jsonify(_read_view(row))
    if status.state == READ_DONE and status.usage_point_mrid == row["usage_point_mrid"]:
        read_at = to_local_iso(status.read_at)
        if live_store.finish_read(read_id, READ_DONE, "read_done", round(status.value_kwh, 3), read_at):
            _drop_in_inbox(row, status)
    else:
        key = "read_incomplete" if status.result == "PARTIAL" or status.state == READ_DONE else "read_failed"
        live_store.finish_read(read_id, READ_FAILED, key)
    return jsonify(_read_view(live_store.get_read(supply_id, read_id)))


def _drop_in_inbox(row: dict, status) -> None:
    """The read enters the warehouse the way pushed files do: a `created MeterReadings` event in the inbox."""
    name = f"ondemand-{row['supply_id']}-{row['read_id']}.xml"
    try:
        event = build_meter_read_event(row["usage_point_mrid"], row["meter_mrid"], status.read_at, status.value_kwh,
                                       correlation_id=row["correlation_id"])
        write_inbox_file(Path(current_app.config["AMI_DATA_DIR"]), name, event)
        store().set_inbox_file(row["read_id"], name)
        log.info("on-demand read %s of supply %s dropped in the inbox as %s (correlation_id=%s)",
                 row["read_id"], row["supply_id"], name, row["correlation_id"])
    except OSError:
        log.exception("could not write on-demand read %s to the inbox", row["read_id"])


# --- today so far ----------------------------------------------------------------------------------------------


@bp.get("/supplies/<supply_id>/today")
@login_required
def today(supply_id: str):
    supply = owned_supply_or_404(supply_id)
    flow = request.args.get("flow") or "delivered"
    if flow not in FLOWS:
        return jsonify(error=f"Flujo desconocido; usa uno de: {', '.join(FLOWS)}.", field="flow"), 400
    now = _utc_now()
    published_until = dt.datetime.fromisoformat(supply["data_until"]) if supply.get("data_until") else None
    since = local_midnight_utc(local_today(now))
    if published_until is not None and published_until > since:
        since = published_until.astimezone(dt.UTC)
    answer = {"supply_id": supply_id, "unit": "kWh", "timezone": "America/Santiago", "granularity": "15min",
              "flow": flow, "provisional": True, "since": to_local_iso(since), "as_of": to_local_iso(now),
              "message": MESSAGES["today_provisional"], "points": []}
    if now - since < INTERVAL:
        return jsonify(answer)
    correlation_id = str(uuid.uuid4())

    def parse(body: bytes):
        batch = parse_meter_readings(body)
        if batch.header.correlation_id != correlation_id:
            raise UnexpectedMessage("the MDM reply carries another CorrelationID")
        return batch

    try:
        batch = gateway().call(
            "mdm", "get MeterReadings (today)",
            build_get_meter_readings([supply["usage_point_mrid"]], since, now, correlation_id=correlation_id),
            correlation_id, parse, idempotent=True, deadline_s=current_app.config["PASSTHROUGH_ENRICH_DEADLINE_S"])
    except PassthroughError:
        return jsonify(error=MESSAGES["today_unavailable"], field=None, supply_id=supply_id, provisional=True,
                       points=[]), 503
    intervals = batch.intervals.filter(
        (batch.intervals["usage_point_mrid"] == supply["usage_point_mrid"]) & (batch.intervals["flow"] == flow)
    ).sort("interval_end")
    answer["points"] = [
        {"start": to_local_iso(row["interval_end"] - dt.timedelta(seconds=row["interval_seconds"])),
         "end": to_local_iso(row["interval_end"]), "kwh": None if row["kwh"] is None else round(row["kwh"], 3),
         "quality": row["quality"], "provisional": True}
        for row in intervals.iter_rows(named=True)
    ]
    if batch.header.result == "PARTIAL":
        answer["message"] = MESSAGES["today_partial"] + " " + MESSAGES["today_provisional"]
        answer["partial"] = True
    return jsonify(answer)

"""cim_ingest: a pure library for the IEC CIM messages the portal exchanges with the utility's backends.

IEC 61968-100 envelopes (`messages`), IEC 61968-9 MeterReadings (`meter_readings`), ReadingType and
ReadingQuality decoding (`reading_types`, `quality`), master-data and bill documents (`documents`), the HTTP
client (`client`) and safe XML parsing (`xml_safety`). No Dagster, no Flask, no DuckDB."""

from cim_ingest.documents import parse_bills, parse_customers, parse_supplies
from cim_ingest.errors import (
    BackendError,
    BackendReplyError,
    CimError,
    InvalidValue,
    MalformedXml,
    ReplyErrorDetail,
    UnexpectedMessage,
    UnsafeXml,
    UnknownUsagePoints,
    UnsupportedReadingType,
)
from cim_ingest.messages import (
    EnvelopeHeader,
    build_get_meter_readings,
    build_get_request,
    parse_envelope_header,
    parse_get_request,
)
from cim_ingest.meter_readings import MeterReadingsBatch, parse_meter_readings
from cim_ingest.reading_types import ReadingType, decode_reading_type, energy_reading_type

__all__ = [
    "BackendError",
    "BackendReplyError",
    "CimError",
    "EnvelopeHeader",
    "InvalidValue",
    "MalformedXml",
    "MeterReadingsBatch",
    "ReadingType",
    "ReplyErrorDetail",
    "UnexpectedMessage",
    "UnsafeXml",
    "UnknownUsagePoints",
    "UnsupportedReadingType",
    "build_get_meter_readings",
    "build_get_request",
    "decode_reading_type",
    "energy_reading_type",
    "parse_bills",
    "parse_customers",
    "parse_envelope_header",
    "parse_get_request",
    "parse_meter_readings",
    "parse_supplies",
]

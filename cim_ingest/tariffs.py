"""The billing system's tariff schedule: the `Tariffs` document (namespace `urn:ami-portal:cim:2026`, inside a normal
IEC 61968-100 ResponseMessage Payload, or bare), written for the simulator and parsed into a Polars frame.

Tariffs/Tariff, with the frame column each element lands in (* = required):
    tariff* -> tariff (e.g. BT1), validFrom* -> valid_from (local date, inclusive),
    validTo -> valid_to (local date, exclusive; absent while open-ended),
    fixedCLPMonth -> fixed_clp_month (integer pesos per month),
    energyCLPPerKWh -> energy_clp_per_kwh, injectionCLPPerKWh -> injection_clp_per_kwh (decimal pesos per kWh).

Prices exclude IVA. A tariff change adds a row; rows already valid are never rewritten, so the pesos of past
consumption stay what they were. Bad values raise InvalidValue naming the record; the whole document is rejected.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

import polars as pl

from cim_ingest.documents import _records
from cim_ingest.errors import InvalidValue
from cim_ingest.namespaces import PORTAL_DOCS_NS
from cim_ingest.writer import ReplyError, ReplyHeader, _element, _encoded, _response_open, decimal_text
from cim_ingest.xml_safety import XmlSource

TARIFFS_SCHEMA = {
    "valid_from": pl.Date,
    "valid_to": pl.Date,
    "tariff": pl.Utf8,
    "fixed_clp_month": pl.Int64,
    "energy_clp_per_kwh": pl.Float64,
    "injection_clp_per_kwh": pl.Float64,
}


@dataclass(frozen=True)
class TariffOut:
    tariff: str
    valid_from: dt.date
    valid_to: dt.date | None
    fixed_clp_month: int
    energy_clp_per_kwh: Decimal
    injection_clp_per_kwh: Decimal


def _iter_tariffs(tariffs: Iterable[TariffOut]) -> Iterator[str]:
    yield f'<Tariffs xmlns="{PORTAL_DOCS_NS}">'
    for tariff in tariffs:
        valid_to = _element("validTo", tariff.valid_to.isoformat()) if tariff.valid_to else ""
        yield (
            f"<Tariff>{_element('tariff', tariff.tariff)}{_element('validFrom', tariff.valid_from.isoformat())}"
            f"{valid_to}<fixedCLPMonth>{int(tariff.fixed_clp_month)}</fixedCLPMonth>"
            f"<energyCLPPerKWh>{decimal_text(tariff.energy_clp_per_kwh)}</energyCLPPerKWh>"
            f"<injectionCLPPerKWh>{decimal_text(tariff.injection_clp_per_kwh)}</injectionCLPPerKWh></Tariff>"
        )
    yield "</Tariffs>"


def iter_tariffs_response(
    header: ReplyHeader, tariffs: Iterable[TariffOut], result: str = "OK", errors: Iterable[ReplyError] = ()
) -> Iterator[bytes]:
    """A `ResponseMessage` whose Payload is a `Tariffs` document, as bytes chunks."""
    return _encoded(_response_open(header, result, errors), _iter_tariffs(tariffs))


def parse_tariffs(source: XmlSource) -> pl.DataFrame:
    """A `Tariffs` reply or document -> the tariffs frame (one row per tariff and validity window)."""
    _header, records = _records(source, "Tariffs", "Tariff")
    rows = []
    for record, _lines in records:
        row = {
            "valid_from": record.date("validFrom", required=True),
            "valid_to": record.date("validTo"),
            "tariff": record.text("tariff", required=True),
            "fixed_clp_month": record.integer("fixedCLPMonth"),
            "energy_clp_per_kwh": record.decimal("energyCLPPerKWh"),
            "injection_clp_per_kwh": record.decimal("injectionCLPPerKWh"),
        }
        if row["valid_to"] is not None and row["valid_to"] <= row["valid_from"]:
            raise InvalidValue(f"{record.label}: validTo {row['valid_to']} is not after validFrom {row['valid_from']}")
        rows.append(row)
    return pl.DataFrame(rows, schema=TARIFFS_SCHEMA) if rows else pl.DataFrame(schema=TARIFFS_SCHEMA)

"""Hostile and broken XML: DOCTYPE (XXE, billion laughs, external DTD) is refused before anything is read,
broken documents become MalformedXml, for the streaming parsers and the whole-document parser alike."""

from __future__ import annotations

import pytest

from cim_ingest.documents import parse_customers
from cim_ingest.errors import MalformedXml, UnsafeXml
from cim_ingest.messages import parse_envelope_header, parse_get_request
from cim_ingest.meter_readings import parse_meter_readings

PARSERS = [parse_meter_readings, parse_envelope_header, parse_customers, parse_get_request]


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("name", ["xxe.xml", "billion_laughs.xml", "external_dtd.xml"])
def test_doctype_is_refused(data_file, parse, name):
    with pytest.raises(UnsafeXml, match="DOCTYPE"):
        parse(data_file(name))


def test_xxe_never_reads_the_file(data_file):
    with pytest.raises(UnsafeXml) as caught:
        parse_meter_readings(data_file("xxe.xml"))
    assert "root:" not in str(caught.value)


@pytest.mark.parametrize("parse", [parse_meter_readings, parse_envelope_header, parse_get_request])
def test_truncated_file_is_malformed(data_file, parse):
    with pytest.raises(MalformedXml, match="truncated"):
        parse(data_file("truncated.xml"))


def test_truncated_document_is_malformed(data_file):
    whole = data_file("customers.xml").read_bytes()
    with pytest.raises(MalformedXml):
        parse_customers(whole[: len(whole) - 40])


def test_doctype_after_a_long_comment_is_still_refused():
    padding = "<!--" + "x" * 100_000 + "-->"
    document = f'<?xml version="1.0"?>{padding}<!DOCTYPE r [<!ENTITY a "b">]><MeterReadings/>'
    with pytest.raises(UnsafeXml):
        parse_meter_readings(document.encode())


def test_utf16_doctype_is_refused():
    document = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>'
    with pytest.raises(UnsafeXml):
        parse_envelope_header(document.encode("utf-16"))


@pytest.mark.parametrize("content", [b"", b"   ", b"not xml at all", b"<a><b></a>", b"<a>&undefined;</a>"])
def test_broken_documents_are_malformed(content):
    with pytest.raises(MalformedXml):
        parse_meter_readings(content)

"""XML namespaces of the IEC 61968-100 envelopes, the IEC 61968-9 MeterReadings profile and the portal's
master-data and bill documents. Writers use the first constant of each kind; parsers accept every namespace in
the matching `ACCEPTED_*` set and match envelope parts by local name."""

from __future__ import annotations

MESSAGE_NS = "http://iec.ch/TC57/2011/schema/message"
MESSAGE_NS_WWW = "http://www.iec.ch/TC57/2011/schema/message"
MESSAGE_NS_2021 = "http://iec.ch/TC57/2021/schema/message"
ACCEPTED_MESSAGE_NAMESPACES: frozenset[str] = frozenset({MESSAGE_NS, MESSAGE_NS_WWW, MESSAGE_NS_2021})

METER_READINGS_NS = "http://iec.ch/TC57/2011/MeterReadings#"
ACCEPTED_METER_READINGS_NAMESPACES: frozenset[str] = frozenset({METER_READINGS_NS})

GET_METER_READINGS_NS = "http://iec.ch/TC57/2011/GetMeterReadings#"

PORTAL_DOCS_NS = "urn:ami-portal:cim:2026"

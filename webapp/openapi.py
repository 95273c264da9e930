"""OpenAPI 3.1 description of the JSON API, served at /api/v1/openapi.json."""

_DATE = {"type": "string", "format": "date"}
_ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_SUPPLY_ID = {"name": "supply_id", "in": "path", "required": True, "schema": {"type": "string"}}
_QUERY_DATE = {"type": "string", "format": "date", "pattern": "^20[0-9]{2}-[0-9]{2}-[0-9]{2}$"}
_GRANULARITIES = ["15min", "hour", "day", "month", "billing_period"]

OPENAPI = {
    "openapi": "3.1.0",
    "info": {
        "title": "AMI customer portal API",
        "version": "1.0.0",
        "description": "Consumption and billing data of the logged-in customer's electricity supplies. "
        "Session cookie authentication (log in at /login). Times are ISO 8601 with the America/Santiago offset; "
        "dates are local dates in America/Santiago; energy in kWh; money in whole CLP.",
    },
    "servers": [{"url": "/api/v1"}],
    "components": {
        "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "session"}},
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]}},
                "required": ["error"],
            },
            "Supply": {
                "type": "object",
                "properties": {
                    "supply_id": {"type": "string"}, "usage_point_mrid": {"type": "string"},
                    "meter_mrid": {"type": "string"}, "address": {"type": "string"}, "comuna": {"type": "string"},
                    "tariff": {"type": "string"}, "status": {"type": "string"}, "has_solar": {"type": "boolean"},
                    "data_from": {"type": ["string", "null"], "format": "date-time"},
                    "data_until": {"type": ["string", "null"], "format": "date-time"},
                },
                "required": ["supply_id", "usage_point_mrid", "meter_mrid", "address", "comuna", "tariff"],
            },
            "Point": {
                "type": "object",
                "properties": {
                    "start": {"type": "string", "format": "date-time"},
                    "end": {"type": "string", "format": "date-time"},
                    "kwh": {"type": ["number", "null"]},
                    "quality": {"enum": ["actual", "estimated", "edited", "missing"]},
                    "clp": {"type": ["integer", "null"], "description": "energy charge with IVA, whole CLP, at the "
                            "tariff valid on each local day (received energy is a credit); null without tariffs"},
                    "bill_id": {"type": "string", "description": "billing_period points: the bill issued for it"},
                },
                "required": ["start", "end", "kwh", "quality"],
            },
            "Consumption": {
                "type": "object",
                "properties": {
                    "supply_id": {"type": "string"}, "unit": {"const": "kWh"},
                    "timezone": {"const": "America/Santiago"},
                    "granularity": {"enum": _GRANULARITIES},
                    "as_of": {"type": "string", "format": "date-time"}, "from": _DATE, "to": _DATE,
                    "flow": {"enum": ["delivered", "received", "net"]},
                    "prices_available": {"type": "boolean"},
                    "points": {"type": "array", "items": {"$ref": "#/components/schemas/Point"}},
                },
                "required": ["supply_id", "unit", "timezone", "granularity", "as_of", "points"],
            },
            "BillLine": {
                "type": "object",
                "properties": {
                    "line_no": {"type": "integer"}, "code": {"type": "string"}, "description": {"type": "string"},
                    "quantity": {"type": ["number", "null"]}, "unit": {"type": "string"},
                    "unit_price_clp": {"type": ["number", "null"]}, "amount_clp": {"type": "integer"},
                },
            },
            "Bill": {
                "type": "object",
                "properties": {
                    "bill_id": {"type": "string"}, "supply_id": {"type": "string"}, "period_start": _DATE,
                    "period_end": {**_DATE, "description": "exclusive"}, "issue_date": _DATE, "due_date": _DATE,
                    "kwh": {"type": "number"}, "register_start_kwh": {"type": "number"},
                    "register_end_kwh": {"type": "number"}, "received_kwh": {"type": "number"},
                    "net_clp": {"type": "integer"}, "iva_clp": {"type": "integer"},
                    "total_clp": {"type": "integer"}, "status": {"enum": ["paid", "unpaid"]},
                    "lines": {"type": "array", "items": {"$ref": "#/components/schemas/BillLine"}},
                    "changes_from_previous": {"type": ["object", "null"],
                                              "description": "days, kWh, energy price, estimated and missing days "
                                              "and totals of this bill and the previous one"},
                    "links": {"type": "object"},
                },
                "required": ["bill_id", "supply_id", "period_start", "period_end", "total_clp", "status"],
            },
            "Forecast": {
                "type": "object",
                "description": "Forecast of the open billing period: projected once `days_read` >= `min_days`, as "
                "kWh read / days read x days in period, priced like a bill (fixed + energy at the tariff of the "
                "period's last day - injection credit, + IVA 19%).",
                "properties": {
                    "period_start": _DATE, "period_end": {**_DATE, "description": "exclusive"},
                    "days_in_period": {"type": "integer"}, "days_read": {"type": "integer"},
                    "min_days": {"type": "integer"}, "kwh_read": {"type": "number"},
                    "available": {"type": "boolean"}, "projected_kwh": {"type": "number"},
                    "projected_received_kwh": {"type": "number"}, "prices_available": {"type": "boolean"},
                    "projected_total_clp": {"type": "integer"}, "projected_net_clp": {"type": "integer"},
                    "projected_iva_clp": {"type": "integer"},
                },
                "required": ["period_start", "period_end", "days_in_period", "days_read", "min_days", "available"],
            },
            "Tariff": {
                "type": "object",
                "properties": {
                    "valid_from": _DATE, "valid_to": {"type": ["string", "null"], "format": "date"},
                    "tariff": {"type": "string"}, "fixed_clp_month": {"type": ["integer", "null"]},
                    "energy_clp_per_kwh": {"type": ["number", "null"]},
                    "injection_clp_per_kwh": {"type": ["number", "null"]},
                },
                "required": ["valid_from", "tariff"],
            },
        },
    },
    "security": [{"session": []}],
    "paths": {
        "/supplies": {
            "get": {
                "summary": "The logged-in customer's supplies",
                "responses": {
                    "200": {"description": "Supplies", "content": {"application/json": {"schema": {
                        "type": "array", "items": {"$ref": "#/components/schemas/Supply"}}}}},
                    "401": _ERROR,
                },
            }
        },
        "/supplies/{supply_id}/consumption": {
            "get": {
                "summary": "Consumption series over local dates [from, to)",
                "parameters": [
                    _SUPPLY_ID,
                    {"name": "granularity", "in": "query",
                     "schema": {"enum": _GRANULARITIES, "default": "day"}},
                    {"name": "from", "in": "query", "schema": _QUERY_DATE,
                     "description": "inclusive; default: 13 months before `to` (day, month, billing_period), "
                     "7 days (hour), 1 day (15min); dates between 2000-01-01 and 2099-12-31"},
                    {"name": "to", "in": "query", "schema": _QUERY_DATE, "description": "exclusive; default tomorrow"},
                    {"name": "flow", "in": "query",
                     "schema": {"enum": ["delivered", "received", "net"], "default": "delivered"}},
                ],
                "description": "Longest windows: 15min 31 days, hour 92 days, day 800 days, month and "
                "billing_period 10 years. Bad parameters (unknown granularity or flow, malformed or impossible "
                "dates, from >= to, too long a window) answer 400 with {error, field}.",
                "responses": {
                    "200": {"description": "Series", "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/Consumption"}}}},
                    "400": _ERROR, "401": _ERROR, "404": _ERROR,
                },
            }
        },
        "/supplies/{supply_id}/bills": {
            "get": {
                "summary": "Bills of a supply, newest first",
                "parameters": [_SUPPLY_ID],
                "responses": {
                    "200": {"description": "Bills", "content": {"application/json": {"schema": {
                        "type": "array", "items": {"$ref": "#/components/schemas/Bill"}}}}},
                    "401": _ERROR, "404": _ERROR,
                },
            }
        },
        "/supplies/{supply_id}/forecast": {
            "get": {
                "summary": "Forecast of the open billing period's bill",
                "parameters": [_SUPPLY_ID],
                "responses": {
                    "200": {"description": "Forecast", "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/Forecast"}}}},
                    "401": _ERROR, "404": _ERROR,
                },
            }
        },
        "/supplies/{supply_id}/tariffs": {
            "get": {
                "summary": "The supply's tariff schedule, oldest first (prices without IVA)",
                "parameters": [_SUPPLY_ID],
                "responses": {
                    "200": {"description": "Tariffs", "content": {"application/json": {"schema": {
                        "type": "array", "items": {"$ref": "#/components/schemas/Tariff"}}}}},
                    "401": _ERROR, "404": _ERROR,
                },
            }
        },
        "/supplies/{supply_id}/bills/{bill_id}": {
            "get": {
                "summary": "One bill with its lines",
                "parameters": [_SUPPLY_ID, {"name": "bill_id", "in": "path", "required": True,
                                            "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "Bill", "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/Bill"}}}},
                    "401": _ERROR, "404": _ERROR,
                },
            }
        },
        "/supplies/{supply_id}/export.csv": {
            "get": {
                "summary": "Download the supply's intervals as CSV (';' separator, ',' decimal mark)",
                "description": "Columns inicio;fin;zona;flujo;kwh;calidad: start and end ISO 8601 with the local "
                "offset, America/Santiago, consumo|inyeccion|neto, kWh with a decimal comma (empty when missing), "
                "real|estimada|editada|faltante. Window of local dates [from, to), at most 400 days; default the "
                "last 31 days. See docs/ingestion.md.",
                "parameters": [
                    _SUPPLY_ID,
                    {"name": "from", "in": "query", "schema": _QUERY_DATE, "description": "inclusive"},
                    {"name": "to", "in": "query", "schema": _QUERY_DATE, "description": "exclusive"},
                ],
                "responses": {
                    "200": {"description": "CSV file", "content": {"text/csv": {"schema": {"type": "string"}}}},
                    "400": _ERROR, "401": _ERROR, "404": _ERROR,
                },
            }
        },
        "/supplies/{supply_id}/export/greenbutton.xml": {
            "get": {
                "summary": "Download the supply's intervals and bills as Green Button (ESPI 4.0 Atom feed)",
                "description": "Valid against the NAESB ESPI 4.0 espi.xsd. Window as for export.csv.",
                "parameters": [
                    _SUPPLY_ID,
                    {"name": "from", "in": "query", "schema": _QUERY_DATE, "description": "inclusive"},
                    {"name": "to", "in": "query", "schema": _QUERY_DATE, "description": "exclusive"},
                ],
                "responses": {
                    "200": {"description": "ESPI Atom feed",
                            "content": {"application/atom+xml": {"schema": {"type": "string"}}}},
                    "400": _ERROR, "401": _ERROR, "404": _ERROR,
                },
            }
        },
    },
}

"""OpenAPI 3.1 description of the JSON API, served at /api/v1/openapi.json."""

_DATE = {"type": "string", "format": "date"}
_ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_SUPPLY_ID = {"name": "supply_id", "in": "path", "required": True, "schema": {"type": "string"}}

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
                },
            },
            "Consumption": {
                "type": "object",
                "properties": {
                    "supply_id": {"type": "string"}, "unit": {"const": "kWh"},
                    "timezone": {"const": "America/Santiago"},
                    "granularity": {"enum": ["15min", "hour", "day", "month"]},
                    "as_of": {"type": "string", "format": "date-time"}, "from": _DATE, "to": _DATE,
                    "flow": {"enum": ["delivered", "received", "net"]},
                    "points": {"type": "array", "items": {"$ref": "#/components/schemas/Point"}},
                },
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
                },
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
                     "schema": {"enum": ["15min", "hour", "day", "month"], "default": "day"}},
                    {"name": "from", "in": "query", "schema": _DATE,
                     "description": "inclusive; default: 13 months before `to` (day, month), 7 days (hour), "
                     "1 day (15min)"},
                    {"name": "to", "in": "query", "schema": _DATE, "description": "exclusive; default tomorrow"},
                    {"name": "flow", "in": "query",
                     "schema": {"enum": ["delivered", "received", "net"], "default": "delivered"}},
                ],
                "description": "Longest windows: 15min 31 days, hour 92 days, day 800 days, month 10 years.",
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
    },
}

"""Versioned DDL of the warehouse and the migration runner.

Each migration is applied once, in its own transaction, and recorded in `schema_migrations`. Add new migrations at
the end of MIGRATIONS; never edit one that has shipped. Every table and column is documented with COMMENT ON so an
analyst browsing the warehouse (`duckdb_tables()`, `duckdb_columns()`) sees what each field means.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    description VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""

_TABLES_V1 = """
CREATE TABLE customers (
    customer_id VARCHAR PRIMARY KEY,
    client_number VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    rut VARCHAR,
    email VARCHAR,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE supplies (
    supply_id VARCHAR PRIMARY KEY,
    usage_point_mrid VARCHAR NOT NULL UNIQUE,
    meter_mrid VARCHAR,
    customer_id VARCHAR NOT NULL,
    address VARCHAR,
    comuna VARCHAR,
    tariff VARCHAR,
    status VARCHAR,
    has_solar BOOLEAN NOT NULL DEFAULT false,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE interval_readings (
    supply_id VARCHAR NOT NULL,
    usage_point_mrid VARCHAR NOT NULL,
    flow VARCHAR NOT NULL,
    reading_type VARCHAR NOT NULL,
    interval_end TIMESTAMPTZ NOT NULL,
    interval_seconds INTEGER NOT NULL,
    kwh DECIMAL(18, 6),
    quality VARCHAR NOT NULL,
    quality_codes VARCHAR,
    source_message_id VARCHAR,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (supply_id, flow, interval_seconds, interval_end)
);
CREATE TABLE interval_reading_versions (
    supply_id VARCHAR NOT NULL,
    flow VARCHAR NOT NULL,
    interval_seconds INTEGER NOT NULL,
    interval_end TIMESTAMPTZ NOT NULL,
    kwh DECIMAL(18, 6),
    quality VARCHAR NOT NULL,
    quality_codes VARCHAR,
    source_message_id VARCHAR,
    loaded_at TIMESTAMPTZ NOT NULL,
    superseded_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE register_reads (
    supply_id VARCHAR NOT NULL,
    usage_point_mrid VARCHAR NOT NULL,
    flow VARCHAR NOT NULL,
    reading_type VARCHAR NOT NULL,
    read_at TIMESTAMPTZ NOT NULL,
    kwh DECIMAL(18, 6),
    quality VARCHAR NOT NULL,
    quality_codes VARCHAR,
    source_message_id VARCHAR,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (supply_id, flow, read_at)
);
CREATE TABLE bills (
    bill_id VARCHAR PRIMARY KEY,
    supply_id VARCHAR NOT NULL,
    period_start DATE NOT NULL,
    period_end DATE NOT NULL,
    issue_date DATE,
    due_date DATE,
    kwh DECIMAL(18, 6),
    register_start_kwh DECIMAL(18, 6),
    register_end_kwh DECIMAL(18, 6),
    received_kwh DECIMAL(18, 6),
    net_clp BIGINT NOT NULL,
    iva_clp BIGINT NOT NULL,
    total_clp BIGINT NOT NULL,
    status VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE bill_lines (
    bill_id VARCHAR NOT NULL,
    line_no INTEGER NOT NULL,
    code VARCHAR NOT NULL,
    description VARCHAR,
    quantity DOUBLE,
    unit VARCHAR,
    unit_price_clp DOUBLE,
    amount_clp BIGINT NOT NULL,
    PRIMARY KEY (bill_id, line_no)
);
CREATE TABLE daily_consumption (
    supply_id VARCHAR NOT NULL,
    flow VARCHAR NOT NULL,
    local_date DATE NOT NULL,
    interval_seconds INTEGER NOT NULL,
    kwh DECIMAL(18, 6) NOT NULL,
    intervals INTEGER NOT NULL,
    expected_intervals INTEGER NOT NULL,
    estimated_intervals INTEGER NOT NULL,
    edited_intervals INTEGER NOT NULL,
    missing_intervals INTEGER NOT NULL,
    quality VARCHAR NOT NULL,
    PRIMARY KEY (supply_id, flow, local_date)
);
CREATE TABLE monthly_consumption (
    supply_id VARCHAR NOT NULL,
    flow VARCHAR NOT NULL,
    month DATE NOT NULL,
    kwh DECIMAL(18, 6) NOT NULL,
    days INTEGER NOT NULL,
    quality VARCHAR NOT NULL,
    PRIMARY KEY (supply_id, flow, month)
);
CREATE TABLE publish_log (
    published_at TIMESTAMPTZ NOT NULL,
    snapshot_path VARCHAR NOT NULL,
    row_counts VARCHAR NOT NULL,
    seconds DOUBLE NOT NULL
);
"""

_QUALITY = "actual | estimated | edited | missing"

# table -> (table comment, {column: comment})
_COMMENTS_V1: dict[str, tuple[str, dict[str, str]]] = {
    "schema_migrations": (
        "Applied schema migrations (one row per version).",
        {
            "version": "Migration number, increasing.",
            "description": "What the migration does.",
            "applied_at": "UTC instant the migration was applied.",
        },
    ),
    "customers": (
        "Customers from the CIS (Customers documents).",
        {
            "customer_id": "Customer mRID, C + 6 digits.",
            "client_number": "Client number printed on bills, 8 digits as text.",
            "name": "Full name.",
            "rut": "Chilean RUT with dots and check digit (12.345.678-5).",
            "email": "Contact e-mail.",
            "updated_at": "UTC instant this row's values last changed.",
        },
    ),
    "supplies": (
        "Supplies (usage points) from the CIS (UsagePoints documents).",
        {
            "supply_id": "Supply number printed on bills, 8 digits as text.",
            "usage_point_mrid": "CIM UsagePoint mRID (UUID); the key meter readings arrive with.",
            "meter_mrid": "CIM Meter mRID (UUID) currently installed.",
            "customer_id": "Owning customer (customers.customer_id).",
            "address": "Street address.",
            "comuna": "Comuna of the address.",
            "tariff": "Regulated tariff, e.g. BT1.",
            "status": "Supply status, e.g. active.",
            "has_solar": "True when the supply has generation (received energy channel).",
            "updated_at": "UTC instant this row's values last changed.",
        },
    ),
    "interval_readings": (
        "Interval energy readings (IEC 61968-9 IntervalReadings), newest version of each interval.",
        {
            "supply_id": "Supply the reading belongs to (mapped from usage_point_mrid).",
            "usage_point_mrid": "CIM UsagePoint mRID the reading arrived with.",
            "flow": "delivered | received | net (from the ReadingType flowDirection).",
            "reading_type": "18-field CIM ReadingType code.",
            "interval_end": "UTC instant the interval ENDS (CIM timeStamp).",
            "interval_seconds": "Interval length in seconds (900 for 15 minutes).",
            "kwh": "Energy in the interval, kWh; NULL when missing.",
            "quality": f"Summarised quality: {_QUALITY}.",
            "quality_codes": "Raw CIM ReadingQuality codes joined with ';'.",
            "source_message_id": "MessageID of the CIM message that delivered this version.",
            "loaded_at": "UTC instant this version (value or quality) was first loaded.",
        },
    ),
    "interval_reading_versions": (
        "Superseded versions of interval readings, kept when a correction replaced them.",
        {
            "supply_id": "Supply of the reading.",
            "flow": "delivered | received | net.",
            "interval_seconds": "Interval length in seconds.",
            "interval_end": "UTC instant the interval ends.",
            "kwh": "Energy of the superseded version, kWh.",
            "quality": f"Quality of the superseded version: {_QUALITY}.",
            "quality_codes": "Raw CIM ReadingQuality codes of the superseded version.",
            "source_message_id": "MessageID that delivered the superseded version.",
            "loaded_at": "UTC instant the superseded version was loaded.",
            "superseded_at": "UTC instant a newer version replaced it.",
        },
    ),
    "register_reads": (
        "Register (cumulative) energy reads, newest version of each read.",
        {
            "supply_id": "Supply the read belongs to (mapped from usage_point_mrid).",
            "usage_point_mrid": "CIM UsagePoint mRID the read arrived with.",
            "flow": "delivered | received | net.",
            "reading_type": "18-field CIM ReadingType code.",
            "read_at": "UTC instant of the read.",
            "kwh": "Cumulative register value, kWh.",
            "quality": f"Summarised quality: {_QUALITY}.",
            "quality_codes": "Raw CIM ReadingQuality codes joined with ';'.",
            "source_message_id": "MessageID of the CIM message that delivered this version.",
            "loaded_at": "UTC instant this version (value or quality) was first loaded.",
        },
    ),
    "bills": (
        "Bills from the billing system (Bills documents).",
        {
            "bill_id": "B<supply_id>-<YYYYMM of period end>.",
            "supply_id": "Billed supply.",
            "period_start": "First local date of the billing period (inclusive, America/Santiago).",
            "period_end": "Local date the period ends (exclusive).",
            "issue_date": "Local date the bill was issued.",
            "due_date": "Local date payment is due.",
            "kwh": "Billed energy, kWh (register difference).",
            "register_start_kwh": "Register read at period start, kWh.",
            "register_end_kwh": "Register read at period end, kWh.",
            "received_kwh": "Energy received from the customer (solar export), kWh.",
            "net_clp": "Sum of line amounts, integer CLP.",
            "iva_clp": "IVA (19%), integer CLP.",
            "total_clp": "net_clp + iva_clp, integer CLP.",
            "status": "paid | unpaid.",
            "updated_at": "UTC instant this row's values last changed.",
        },
    ),
    "bill_lines": (
        "Lines of each bill.",
        {
            "bill_id": "Bill the line belongs to.",
            "line_no": "Line number within the bill, from 1.",
            "code": "Charge code, e.g. FIXED, ENERGY, INJECTION.",
            "description": "Charge description in Spanish, as printed.",
            "quantity": "Quantity billed (kWh, months, ...).",
            "unit": "Unit of the quantity.",
            "unit_price_clp": "Price per unit, CLP (may have decimals).",
            "amount_clp": "Line amount, integer CLP (negative for discounts).",
        },
    ),
    "daily_consumption": (
        "Energy per supply, flow and local day (America/Santiago), rebuilt from interval_readings.",
        {
            "supply_id": "Supply.",
            "flow": "delivered | received | net.",
            "local_date": "Local date in America/Santiago of the interval starts.",
            "interval_seconds": "Interval length summed (the finest available that day).",
            "kwh": "Sum of the day's interval kWh.",
            "intervals": "Intervals with a value.",
            "expected_intervals": "Intervals the local day holds (DST-aware: 23, 24 or 25 hours).",
            "estimated_intervals": "Intervals with quality estimated.",
            "edited_intervals": "Intervals with quality edited.",
            "missing_intervals": "expected_intervals - intervals.",
            "quality": "missing if any interval is missing, else estimated, else edited, else actual.",
        },
    ),
    "monthly_consumption": (
        "Energy per supply, flow and local month, rebuilt from daily_consumption.",
        {
            "supply_id": "Supply.",
            "flow": "delivered | received | net.",
            "month": "First local date of the month.",
            "kwh": "Sum of the month's daily kWh.",
            "days": "Days of the month with a daily row.",
            "quality": "missing if a day is absent or missing, else estimated, else edited, else actual.",
        },
    ),
    "publish_log": (
        "One row per read-model snapshot published.",
        {
            "published_at": "UTC instant of the publish.",
            "snapshot_path": "Snapshot path relative to the read-model directory.",
            "row_counts": "JSON object: table -> rows written.",
            "seconds": "Duration of the publish.",
        },
    ),
}


_MESSAGE_AT = (
    "Header/Timestamp of the source message (UTC); the newest message wins for the same key, whatever order "
    "messages arrive in. NULL when the message had none (then it wins over what is stored)."
)
_COMMENTS_V2: dict[str, tuple[str, dict[str, str]]] = {
    "interval_readings": ("Interval energy readings (IEC 61968-9 IntervalReadings), newest version of each "
                          "interval.", {"source_message_at": _MESSAGE_AT}),
    "interval_reading_versions": (
        "Every other version of interval readings: values a newer message replaced, and values of older "
        "messages that arrived after a newer one (superseded on arrival).",
        {"source_message_at": _MESSAGE_AT},
    ),
    "register_reads": ("Register (cumulative) energy reads, newest version of each read.",
                       {"source_message_at": _MESSAGE_AT}),
    "register_read_versions": (
        "Every other version of register reads (replaced by a newer message, or older on arrival).",
        {
            "supply_id": "Supply of the read.",
            "flow": "delivered | received | net.",
            "read_at": "UTC instant of the read.",
            "kwh": "Cumulative register value of this version, kWh.",
            "quality": f"Quality of this version: {_QUALITY}.",
            "quality_codes": "Raw CIM ReadingQuality codes of this version.",
            "source_message_id": "MessageID that delivered this version.",
            "source_message_at": _MESSAGE_AT,
            "loaded_at": "UTC instant this version was loaded.",
            "superseded_at": "UTC instant it stopped being (or was found not to be) the newest.",
        },
    ),
}


def _sql_literal(text: str) -> str:
    # COMMENT ON takes no bound parameters; the texts are constants of this module, quoted defensively anyway.
    return "'" + text.replace("'", "''") + "'"


def _comment_statements(comments: dict[str, tuple[str, dict[str, str]]]) -> list[str]:
    statements = []
    for table, (table_comment, columns) in comments.items():
        statements.append(f"COMMENT ON TABLE {table} IS {_sql_literal(table_comment)}")
        for column, column_comment in columns.items():
            statements.append(f"COMMENT ON COLUMN {table}.{column} IS {_sql_literal(column_comment)}")
    return statements


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="Initial schema: master data, readings, bills, rollups, publish log.",
        statements=(
            *[s.strip() for s in _TABLES_V1.split(";") if s.strip()],
            *_comment_statements(_COMMENTS_V1),
        ),
    ),
    Migration(
        version=2,
        description="Reading versions: source message timestamp on readings, register read versions.",
        statements=(
            "ALTER TABLE interval_readings ADD COLUMN source_message_at TIMESTAMPTZ",
            "ALTER TABLE interval_reading_versions ADD COLUMN source_message_at TIMESTAMPTZ",
            "ALTER TABLE register_reads ADD COLUMN source_message_at TIMESTAMPTZ",
            """CREATE TABLE register_read_versions (
                supply_id VARCHAR NOT NULL,
                flow VARCHAR NOT NULL,
                read_at TIMESTAMPTZ NOT NULL,
                kwh DECIMAL(18, 6),
                quality VARCHAR NOT NULL,
                quality_codes VARCHAR,
                source_message_id VARCHAR,
                source_message_at TIMESTAMPTZ,
                loaded_at TIMESTAMPTZ NOT NULL,
                superseded_at TIMESTAMPTZ NOT NULL
            )""",
            *_comment_statements(_COMMENTS_V2),
        ),
    ),
    Migration(
        version=3,
        description="Tariff schedule from the billing system (Tariffs documents).",
        statements=(
            """CREATE TABLE tariffs (
                valid_from DATE NOT NULL,
                valid_to DATE,
                tariff VARCHAR NOT NULL,
                fixed_clp_month BIGINT,
                energy_clp_per_kwh DOUBLE,
                injection_clp_per_kwh DOUBLE,
                PRIMARY KEY (tariff, valid_from)
            )""",
            *_comment_statements({
                "tariffs": (
                    "Regulated tariff schedule: the prices in force from valid_from to valid_to (without IVA).",
                    {
                        "valid_from": "First local date the prices apply (inclusive, America/Santiago).",
                        "valid_to": "Local date the prices stop applying (exclusive); NULL while open-ended.",
                        "tariff": "Tariff name, e.g. BT1 (supplies.tariff).",
                        "fixed_clp_month": "Fixed charge per month, integer CLP.",
                        "energy_clp_per_kwh": "Energy charge, CLP per kWh delivered.",
                        "injection_clp_per_kwh": "Credit for energy injected (solar), CLP per kWh received.",
                    },
                ),
            }),
        ),
    ),
)

# Version 4 drops the declared PRIMARY KEY of interval_readings. The key (supply_id, flow, interval_seconds,
# interval_end) stays unique because every write goes through warehouse.loads, which classifies each staged row
# against the table before inserting it; the blocking `no_overlapping_intervals` asset check verifies it (a repeated key is an overlap). DuckDB's key
# index tripled the cost of a bulk load and held every uncommitted row of a transaction in memory, so a large
# file could not be loaded in one transaction with flat memory.
_INTERVAL_READINGS_V4 = """
CREATE TABLE interval_readings_v4 (
    supply_id VARCHAR NOT NULL,
    usage_point_mrid VARCHAR NOT NULL,
    flow VARCHAR NOT NULL,
    reading_type VARCHAR NOT NULL,
    interval_end TIMESTAMPTZ NOT NULL,
    interval_seconds INTEGER NOT NULL,
    kwh DECIMAL(18, 6),
    quality VARCHAR NOT NULL,
    quality_codes VARCHAR,
    source_message_id VARCHAR,
    loaded_at TIMESTAMPTZ NOT NULL,
    source_message_at TIMESTAMPTZ
)"""

MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        version=4,
        description="interval_readings without a declared key index (the loads keep the key unique).",
        statements=(
            _INTERVAL_READINGS_V4,
            "INSERT INTO interval_readings_v4 SELECT * FROM interval_readings ORDER BY interval_end, supply_id",
            "DROP TABLE interval_readings",
            "ALTER TABLE interval_readings_v4 RENAME TO interval_readings",
            *_comment_statements({
                "interval_readings": (
                    _COMMENTS_V1["interval_readings"][0]
                    + " Key: supply_id, flow, interval_seconds, interval_end (unique, kept by the loads).",
                    {**_COMMENTS_V1["interval_readings"][1], **_COMMENTS_V2["interval_readings"][1]},
                ),
            }),
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    return {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}


def apply_migrations(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations not yet recorded; return the versions applied now."""
    con.execute(SCHEMA_MIGRATIONS_DDL)
    done = applied_versions(con)
    applied_now = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        con.begin()
        try:
            for statement in migration.statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_migrations (version, description) VALUES (?, ?)",
                [migration.version, migration.description],
            )
            con.commit()
        except Exception:
            con.rollback()
            raise
        applied_now.append(migration.version)
    return applied_now

"""Idempotent loads of the parsed cim_ingest batches (Polars frames) into the warehouse.

Every load runs in one transaction and works set-wise in DuckDB on the registered frame (no Python row loops):
1. stage: the frame is cast to the table's types and de-duplicated on the table key (the last row of the frame
   wins, as it is the newest version the batch carries);
2. classify: each staged row is `inserted` (key unknown), `updated` (a compared column differs) or `unchanged`;
3. write: only inserted and updated rows are written (INSERT ... ON CONFLICT DO UPDATE), stamped with this load's
   instant, so loading the same frame twice changes nothing and a retransmission keeps its original `loaded_at`.

Readings follow "newest message wins": each load carries the Header/Timestamp of its source message
(`message_at`), stored as `source_message_at`. A reading whose value differs from the stored one replaces it only
when its message is not older than the stored one's (or either timestamp is unknown); the replaced version moves to
`interval_reading_versions` / `register_read_versions`. A differing value from an OLDER message (files arriving
out of order) does not replace anything: it is recorded in the versions table directly, once, so every version
stays auditable with its source message whatever order the files came in. The same reading again is a no-op.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

_INCOMING = "_warehouse_incoming"
_INCOMING_LINES = "_warehouse_incoming_lines"
_STAGE = "_warehouse_stage"
_INSTANTS_KEPT = 1_000_000  # distinct key instants a spool holds in memory for the merge (~16 MB), at most


@dataclass(frozen=True)
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class LoadResult:
    """Outcome of a readings load. `changed_local_dates` are the America/Santiago dates whose intervals were
    inserted or updated (the days a rollup must rebuild); `skipped_rows` belong to `unknown_usage_points`."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    unknown_usage_points: list[str] = field(default_factory=list)
    skipped_rows: int = 0
    changed_local_dates: list[dt.date] = field(default_factory=list)


@dataclass(frozen=True)
class _SpoolFacts:
    """What a spool learnt of its readings while writing them, so that the merge need not scan them again:
    their usage points, their time range, and the distinct values of the key's time columns (`instants`, a
    relation: a small Parquet file beside the spool, read by DuckDB as the spool is; handing DuckDB a frame would
    load pyarrow, some 30 MB, into the ingest)."""

    usage_points: list[str]
    first: dt.datetime
    last: dt.datetime
    instants: str


@dataclass(frozen=True)
class _TableSpec:
    table: str
    keys: tuple[str, ...]
    compared: tuple[str, ...]
    # Stored but not a reason for a new version: a retransmission only differs in its message id.
    carried: tuple[str, ...]
    stamp: str
    versions_table: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.keys, *self.compared, *self.carried)


_INTERVALS = _TableSpec(
    table="interval_readings",
    keys=("supply_id", "flow", "interval_seconds", "interval_end"),
    compared=("kwh", "quality", "quality_codes", "usage_point_mrid", "reading_type"),
    carried=("source_message_id",),
    stamp="loaded_at",
    versions_table="interval_reading_versions",
)
_REGISTERS = _TableSpec(
    table="register_reads",
    keys=("supply_id", "flow", "read_at"),
    compared=("kwh", "quality", "quality_codes", "usage_point_mrid", "reading_type"),
    carried=("source_message_id",),
    stamp="loaded_at",
    versions_table="register_read_versions",
)
_CUSTOMERS = _TableSpec(
    table="customers",
    keys=("customer_id",),
    compared=("client_number", "name", "rut", "email"),
    carried=(),
    stamp="updated_at",
)
_SUPPLIES = _TableSpec(
    table="supplies",
    keys=("supply_id",),
    compared=(
        "usage_point_mrid", "meter_mrid", "customer_id", "address", "comuna", "tariff", "status", "has_solar",
    ),
    carried=(),
    stamp="updated_at",
)
_BILLS = _TableSpec(
    table="bills",
    keys=("bill_id",),
    compared=(
        "supply_id", "period_start", "period_end", "issue_date", "due_date", "kwh", "register_start_kwh",
        "register_end_kwh", "received_kwh", "net_clp", "iva_clp", "total_clp", "status",
    ),
    carried=(),
    stamp="updated_at",
)

_INTERVAL_FRAME_COLUMNS = (
    "usage_point_mrid", "reading_type", "flow", "interval_seconds", "interval_end", "kwh", "quality",
    "quality_codes", "source_message_id",
)
_REGISTER_FRAME_COLUMNS = (
    "usage_point_mrid", "reading_type", "flow", "read_at", "kwh", "quality", "quality_codes", "source_message_id",
)
_BILL_LINE_COLUMNS = (
    "bill_id", "line_no", "code", "description", "quantity", "unit", "unit_price_clp", "amount_clp",
)


def _require_columns(df: pl.DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [name for name in required if name not in df.columns]
    if missing:
        raise ValueError(f"{what} frame lacks columns {missing}; it has {df.columns}")


@contextlib.contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.begin()
    try:
        yield
    except BaseException:
        con.rollback()
        raise
    con.commit()


@contextlib.contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, df: pl.DataFrame) -> Iterator[None]:
    # The row index orders duplicates inside one batch so the last one wins deterministically.
    con.register(name, df.with_row_index("_row"))
    try:
        yield
    finally:
        con.unregister(name)


def _now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _merge_stage(con: duckdb.DuckDBPyConnection, spec: _TableSpec, stamp: dt.datetime) -> UpsertCounts:
    """Classify `_STAGE` rows against `spec.table` and write the inserted and updated ones."""
    key_join = " AND ".join(f"s.{key} = t.{key}" for key in spec.keys)
    differs = " OR ".join(f"s.{column} IS DISTINCT FROM t.{column}" for column in spec.compared)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {_STAGE}_classified AS
        SELECT s.*,
               CASE WHEN t.{spec.keys[0]} IS NULL THEN 'inserted'
                    WHEN {differs} THEN 'updated'
                    ELSE 'unchanged' END AS change
        FROM {_STAGE} s LEFT JOIN {spec.table} t ON {key_join}
        """
    )
    counts = dict(
        con.execute(f"SELECT change, count(*) FROM {_STAGE}_classified GROUP BY change").fetchall()
    )
    if spec.versions_table and counts.get("updated"):
        kept = ("kwh", "quality", "quality_codes", "source_message_id", "loaded_at")
        con.execute(
            f"""
            INSERT INTO {spec.versions_table} ({", ".join(spec.keys)}, {", ".join(kept)}, superseded_at)
            SELECT {", ".join(f"t.{c}" for c in spec.keys)}, {", ".join(f"t.{c}" for c in kept)}, ?
            FROM {spec.table} t JOIN {_STAGE}_classified s ON {key_join}
            WHERE s.change = 'updated'
            """,
            [stamp],
        )
    if counts.get("inserted") or counts.get("updated"):
        columns = ", ".join(spec.columns)
        assignments = ", ".join(
            f"{column} = EXCLUDED.{column}" for column in (*spec.compared, *spec.carried, spec.stamp)
        )
        con.execute(
            f"""
            INSERT INTO {spec.table} ({columns}, {spec.stamp})
            SELECT {columns}, ? FROM {_STAGE}_classified WHERE change <> 'unchanged'
            ON CONFLICT ({", ".join(spec.keys)}) DO UPDATE SET {assignments}
            """,
            [stamp],
        )
    return UpsertCounts(
        inserted=counts.get("inserted", 0), updated=counts.get("updated", 0), unchanged=counts.get("unchanged", 0)
    )


def _drop_stage(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP TABLE IF EXISTS {_STAGE}")
    con.execute(f"DROP TABLE IF EXISTS {_STAGE}_classified")


def _upsert_master(
    con: duckdb.DuckDBPyConnection, df: pl.DataFrame, spec: _TableSpec, select_sql: str, what: str
) -> UpsertCounts:
    _require_columns(df, spec.columns, what)
    stamp = _now_utc()
    with _registered(con, _INCOMING, df), _transaction(con):
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {_STAGE} AS
            SELECT {select_sql} FROM {_INCOMING} f
            QUALIFY row_number() OVER (PARTITION BY {", ".join(spec.keys)} ORDER BY _row DESC) = 1
            """
        )
        counts = _merge_stage(con, spec, stamp)
        _drop_stage(con)
    return counts


def upsert_customers(con: duckdb.DuckDBPyConnection, df: pl.DataFrame) -> UpsertCounts:
    """Insert or update customers (cim_ingest customers frame)."""
    return _upsert_master(
        con,
        df,
        _CUSTOMERS,
        "CAST(customer_id AS VARCHAR) AS customer_id, CAST(client_number AS VARCHAR) AS client_number, "
        "CAST(name AS VARCHAR) AS name, CAST(rut AS VARCHAR) AS rut, CAST(email AS VARCHAR) AS email",
        "customers",
    )


def upsert_supplies(con: duckdb.DuckDBPyConnection, df: pl.DataFrame) -> UpsertCounts:
    """Insert or update supplies (cim_ingest supplies frame)."""
    return _upsert_master(
        con,
        df,
        _SUPPLIES,
        "CAST(supply_id AS VARCHAR) AS supply_id, CAST(usage_point_mrid AS VARCHAR) AS usage_point_mrid, "
        "CAST(meter_mrid AS VARCHAR) AS meter_mrid, CAST(customer_id AS VARCHAR) AS customer_id, "
        "CAST(address AS VARCHAR) AS address, CAST(comuna AS VARCHAR) AS comuna, "
        "CAST(tariff AS VARCHAR) AS tariff, CAST(status AS VARCHAR) AS status, "
        "coalesce(CAST(has_solar AS BOOLEAN), false) AS has_solar",
        "supplies",
    )


def upsert_bills(
    con: duckdb.DuckDBPyConnection, bills_df: pl.DataFrame, lines_df: pl.DataFrame
) -> UpsertCounts:
    """Insert or update bills, and replace the lines of every bill named in either frame.

    Returns the counts for the bills; lines are replaced as a set per bill, so a bill re-sent with one line fewer
    loses that line.
    """
    _require_columns(bills_df, _BILLS.columns, "bills")
    _require_columns(lines_df, _BILL_LINE_COLUMNS, "bill_lines")
    stamp = _now_utc()
    with (
        _registered(con, _INCOMING, bills_df),
        _registered(con, _INCOMING_LINES, lines_df),
        _transaction(con),
    ):
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {_STAGE} AS
            SELECT CAST(bill_id AS VARCHAR) AS bill_id, CAST(supply_id AS VARCHAR) AS supply_id,
                   CAST(period_start AS DATE) AS period_start, CAST(period_end AS DATE) AS period_end,
                   CAST(issue_date AS DATE) AS issue_date, CAST(due_date AS DATE) AS due_date,
                   CAST(kwh AS DECIMAL(18, 6)) AS kwh,
                   CAST(register_start_kwh AS DECIMAL(18, 6)) AS register_start_kwh,
                   CAST(register_end_kwh AS DECIMAL(18, 6)) AS register_end_kwh,
                   CAST(received_kwh AS DECIMAL(18, 6)) AS received_kwh,
                   CAST(net_clp AS BIGINT) AS net_clp, CAST(iva_clp AS BIGINT) AS iva_clp,
                   CAST(total_clp AS BIGINT) AS total_clp, CAST(status AS VARCHAR) AS status
            FROM {_INCOMING}
            QUALIFY row_number() OVER (PARTITION BY bill_id ORDER BY _row DESC) = 1
            """
        )
        counts = _merge_stage(con, _BILLS, stamp)
        con.execute(
            f"""
            DELETE FROM bill_lines WHERE bill_id IN (
                SELECT bill_id FROM {_STAGE} UNION SELECT CAST(bill_id AS VARCHAR) FROM {_INCOMING_LINES})
            """
        )
        con.execute(
            f"""
            INSERT INTO bill_lines ({", ".join(_BILL_LINE_COLUMNS)})
            SELECT CAST(bill_id AS VARCHAR), CAST(line_no AS INTEGER), CAST(code AS VARCHAR),
                   CAST(description AS VARCHAR), CAST(quantity AS DOUBLE), CAST(unit AS VARCHAR),
                   CAST(unit_price_clp AS DOUBLE), CAST(amount_clp AS BIGINT)
            FROM {_INCOMING_LINES}
            QUALIFY row_number() OVER (PARTITION BY bill_id, line_no ORDER BY _row DESC) = 1
            """
        )
        _drop_stage(con)
    return counts


_VERSION_COLUMNS = ("kwh", "quality", "quality_codes", "source_message_id", "source_message_at", "loaded_at")


class _Scratch:
    """Intermediate results of a readings load held as Arrow tables registered under a name, not as temporary
    tables: inside a long transaction (a whole file), dropped temporary tables keep their storage until commit,
    while an unregistered Arrow table is freed at once. Memory then stays flat however many batches one
    transaction loads."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self.names: list[str] = []

    def materialize(self, name: str, sql: str, params: list | None = None) -> None:
        table = self.con.sql(sql, params=params).to_arrow_table()
        if name in self.names:
            self.con.unregister(name)
        self.con.register(name, table)
        self.names.append(name)

    def view(self, name: str, sql: str) -> None:
        self.materialize(name, sql)

    def close(self) -> None:
        for name in dict.fromkeys(self.names):
            self.con.unregister(name)
        self.names.clear()


class _TableScratch(_Scratch):
    """The same in DuckDB: for one big merge (a whole spooled file), whose intermediate results must not sit in
    Python memory. `materialize` makes a temporary table (DuckDB keeps it within its memory limit and spills the
    rest to disk); `view` only names a query over data that is already stored (the spool's Parquet files)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        super().__init__(con)
        self.kinds: dict[str, str] = {}

    def _replace(self, name: str, kind: str, sql: str, params: list | None) -> None:
        # Through a second name: the new content may be computed from the old one.
        self.con.execute(f"CREATE OR REPLACE TEMP {kind} {name}__next AS {sql}", params)
        self._drop(name)
        self.con.execute(f"ALTER {kind} {name}__next RENAME TO {name}")
        self.kinds[name] = kind

    def materialize(self, name: str, sql: str, params: list | None = None) -> None:
        self._replace(name, "TABLE", sql, params)

    def view(self, name: str, sql: str) -> None:
        self._replace(name, "VIEW", sql, None)

    def _drop(self, name: str) -> None:
        kind = self.kinds.pop(name, None)
        if kind:
            self.con.execute(f"DROP {kind} IF EXISTS {name}")

    def close(self) -> None:
        for name in list(self.kinds):
            self._drop(name)


def _merge_readings(
    con: duckdb.DuckDBPyConnection, spec: _TableSpec, stamp: dt.datetime, scratch: _Scratch,
    facts: _SpoolFacts | None = None,
) -> tuple[UpsertCounts, str]:
    """Classify `_STAGE` readings against `spec.table` with newest-message-wins and write them (see module doc).

    Classes: `inserted` (new key), `unchanged` (same values), `updated` (differs, message not older: replaces the
    stored row, which moves to the versions table), `older` (differs, message older than the stored one: kept in
    the versions table only, unless that exact version is already there). `older` rows count as unchanged.
    Returns the counts and the relation (SQL) of the inserted and updated rows."""
    key_join = " AND ".join(f"s.{key} = t.{key}" for key in spec.keys)
    differs = " OR ".join(f"s.{column} IS DISTINCT FROM t.{column}" for column in spec.compared)
    if not _overlaps(con, spec, facts):  # nothing stored to compare with: every row is new (a first or a bulk load)
        columns = ", ".join((*spec.columns, "source_message_at"))
        inserted = con.execute(
            f"INSERT INTO {spec.table} ({columns}, {spec.stamp}) SELECT {columns}, ? FROM {_STAGE}", [stamp]
        ).fetchall()[0][0]
        return UpsertCounts(inserted=inserted), _STAGE
    scratch.materialize(
        f"{_STAGE}_classified",
        f"""
        SELECT s.*,
               CASE WHEN t.{spec.keys[0]} IS NULL THEN 'inserted'
                    WHEN NOT ({differs}) THEN 'unchanged'
                    WHEN s.source_message_at < t.source_message_at THEN 'older'
                    ELSE 'updated' END AS change
        FROM {_STAGE} s LEFT JOIN {spec.table} t ON {key_join}
        """,
    )
    counts = dict(con.execute(f"SELECT change, count(*) FROM {_STAGE}_classified GROUP BY change").fetchall())
    keys, kept = ", ".join(spec.keys), ", ".join(_VERSION_COLUMNS)
    if counts.get("updated"):
        con.execute(
            f"""
            INSERT INTO {spec.versions_table} ({keys}, {kept}, superseded_at)
            SELECT {", ".join(f"t.{c}" for c in (*spec.keys, *_VERSION_COLUMNS))}, ?
            FROM {spec.table} t JOIN {_STAGE}_classified s ON {key_join}
            WHERE s.change = 'updated'
            """,
            [stamp],
        )
    if counts.get("older"):
        same_version = " AND ".join(
            f"v.{c} IS NOT DISTINCT FROM s.{c}"
            for c in (*spec.keys, "kwh", "quality", "quality_codes", "source_message_id", "source_message_at")
        )
        con.execute(
            f"""
            INSERT INTO {spec.versions_table} ({keys}, {kept}, superseded_at)
            SELECT {", ".join(f"s.{c}" for c in (*spec.keys, *_VERSION_COLUMNS[:-1]))}, ?, ?
            FROM {_STAGE}_classified s
            WHERE s.change = 'older'
              AND NOT EXISTS (SELECT 1 FROM {spec.versions_table} v WHERE {same_version})
            """,
            [stamp, stamp],
        )
    # A plain INSERT for new keys and an UPDATE for replaced ones: cheaper than INSERT ... ON CONFLICT.
    if counts.get("inserted"):
        columns = ", ".join((*spec.columns, "source_message_at"))
        con.execute(
            f"""
            INSERT INTO {spec.table} ({columns}, {spec.stamp})
            SELECT {columns}, ? FROM {_STAGE}_classified WHERE change = 'inserted'
            """,
            [stamp],
        )
    if counts.get("updated"):
        assignments = ", ".join(
            f"{column} = s.{column}" for column in (*spec.compared, *spec.carried, "source_message_at")
        )
        con.execute(
            f"""
            UPDATE {spec.table} AS t SET {assignments}, {spec.stamp} = ?
            FROM {_STAGE}_classified s
            WHERE {key_join} AND s.change = 'updated'
            """,
            [stamp],
        )
    return UpsertCounts(
        inserted=counts.get("inserted", 0),
        updated=counts.get("updated", 0),
        unchanged=counts.get("unchanged", 0) + counts.get("older", 0),
    ), f"{_STAGE}_classified WHERE change IN ('inserted', 'updated')"


def _overlaps(con: duckdb.DuckDBPyConnection, spec: _TableSpec, facts: _SpoolFacts | None = None) -> bool:
    """Whether `spec.table` holds any row of the staged supplies within the staged time range (the range is
    bound as constants so DuckDB can skip whole row groups by their min/max). `facts`, when given, are the
    staged rows' usage points and range, known without a scan."""
    time_key = spec.keys[-1]
    if facts is None:
        first, last = con.execute(f"SELECT min({time_key}), max({time_key}) FROM {_STAGE}").fetchall()[0]
        supplies = f"SELECT DISTINCT supply_id FROM {_STAGE}"
        params: list = [first, last]
    else:
        first, last = facts.first, facts.last
        supplies = "SELECT supply_id FROM supplies WHERE usage_point_mrid IN (SELECT unnest(?))"
        params = [first, last, facts.usage_points]
    if first is None:
        return False
    return bool(con.execute(
        f"""
        SELECT EXISTS (SELECT 1 FROM {spec.table} t WHERE t.{time_key} BETWEEN ? AND ?
                       AND t.supply_id IN ({supplies}))
        """,
        params,
    ).fetchall()[0][0])


def _upsert_readings(
    con: duckdb.DuckDBPyConnection,
    df: pl.DataFrame,
    spec: _TableSpec,
    reading_select: str,
    local_instant_sql: str,
    message_at: dt.datetime | None,
) -> LoadResult:
    df = df.with_columns(pl.lit(_checked_message_at(message_at), dtype=pl.Datetime("us", "UTC")).alias("_message_at"))
    with _registered(con, _INCOMING, df), _transaction(con):
        return _upsert_readings_from(con, _INCOMING, spec, reading_select, local_instant_sql, _Scratch(con))


def _unknown_of(con: duckdb.DuckDBPyConnection, usage_points: list[str]) -> list[str]:
    """Those of `usage_points` that no supply has."""
    return [row[0] for row in con.execute(
        """
        SELECT u.usage_point_mrid FROM (SELECT unnest(?) AS usage_point_mrid) u
        ANTI JOIN supplies s ON s.usage_point_mrid = u.usage_point_mrid ORDER BY u.usage_point_mrid
        """,
        [usage_points],
    ).fetchall()]


def _checked_message_at(message_at: dt.datetime | None) -> dt.datetime | None:
    if message_at is not None and (message_at.tzinfo is None or message_at.utcoffset() is None):
        raise ValueError(f"message_at {message_at.isoformat()} must be an aware datetime")
    return message_at


def _upsert_readings_from(
    con: duckdb.DuckDBPyConnection,
    source: str,
    spec: _TableSpec,
    reading_select: str,
    local_instant_sql: str,
    scratch: _Scratch,
    keys_unique: bool = False,
    facts: _SpoolFacts | None = None,
) -> LoadResult:
    """Merge the readings of relation `source` (a frame's columns plus `_message_at` and `_row`) into
    `spec.table`, inside the caller's transaction. `keys_unique` says the caller knows no key repeats in
    `source` (the check is then skipped); `facts` are what the caller knows of `source` without a scan."""
    stamp = _now_utc()
    try:
        unknown = []
        if facts is None or _unknown_of(con, facts.usage_points):
            unknown = con.execute(
                f"""
                SELECT f.usage_point_mrid, count(*) FROM {source} f
                ANTI JOIN supplies s ON s.usage_point_mrid = f.usage_point_mrid
                GROUP BY f.usage_point_mrid ORDER BY f.usage_point_mrid
                """
            ).fetchall()
            facts = None  # the stage drops the unknown usage points' rows, which the facts still count
        scratch.view(
            _STAGE,
            f"""
            SELECT s.supply_id, CAST(f.usage_point_mrid AS VARCHAR) AS usage_point_mrid,
                   CAST(f.flow AS VARCHAR) AS flow, CAST(f.reading_type AS VARCHAR) AS reading_type,
                   {reading_select},
                   CAST(f.kwh AS DECIMAL(18, 6)) AS kwh, CAST(f.quality AS VARCHAR) AS quality,
                   CAST(f.quality_codes AS VARCHAR) AS quality_codes,
                   CAST(f.source_message_id AS VARCHAR) AS source_message_id,
                   CAST(f._message_at AS TIMESTAMPTZ) AS source_message_at, f._row
            FROM {source} f JOIN supplies s ON s.usage_point_mrid = f.usage_point_mrid
            """,
        )
        keys = ", ".join(spec.keys)
        duplicated = not keys_unique and con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {_STAGE} GROUP BY {keys} HAVING count(*) > 1)"
        ).fetchall()[0][0]
        if duplicated:  # the same key twice in one batch: the last row wins (the sort only when needed)
            scratch.materialize(
                _STAGE,
                f"""
                SELECT * FROM {_STAGE}
                QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY _row DESC) = 1
                """,
            )
        counts, changed = _merge_readings(con, spec, stamp, scratch, facts)
        instants = f"SELECT DISTINCT {', '.join(spec.keys[2:])} FROM {changed}"
        if facts is not None and changed == _STAGE:  # every staged row was inserted: its instants are known
            instants = f"SELECT {reading_select} FROM {facts.instants} f"  # cast as the stage casts them
        # Time zone conversions are slow: convert each distinct instant once.
        changed_dates = [
            row[0]
            for row in con.execute(
                f"""
                SELECT DISTINCT CAST(timezone('America/Santiago', date_trunc('hour', {local_instant_sql})) AS DATE)
                    AS local_date
                FROM ({instants})
                ORDER BY local_date
                """
            ).fetchall()
        ]
    finally:
        scratch.close()
    return LoadResult(
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        unknown_usage_points=[row[0] for row in unknown if row[0] is not None],
        skipped_rows=sum(row[1] for row in unknown),
        changed_local_dates=changed_dates,
    )


_INTERVAL_SELECT = (
    "CAST(f.interval_end AS TIMESTAMPTZ) AS interval_end, CAST(f.interval_seconds AS INTEGER) AS interval_seconds"
)
# The instant whose local date a reading belongs to: an interval belongs to the day of its START.
_INTERVAL_LOCAL_DATE = "interval_end - to_seconds(interval_seconds)"
_REGISTER_SELECT = "CAST(f.read_at AS TIMESTAMPTZ) AS read_at"
_REGISTER_LOCAL_DATE = "read_at"
_READINGS = {
    "intervals": (_INTERVALS, _INTERVAL_FRAME_COLUMNS, _INTERVAL_SELECT, _INTERVAL_LOCAL_DATE),
    "registers": (_REGISTERS, _REGISTER_FRAME_COLUMNS, _REGISTER_SELECT, _REGISTER_LOCAL_DATE),
}


def upsert_interval_readings(
    con: duckdb.DuckDBPyConnection, df: pl.DataFrame, message_at: dt.datetime | None = None
) -> LoadResult:
    """Load a cim_ingest intervals frame whose source message is timestamped `message_at` (its Header/Timestamp;
    None when unknown); rows of usage points absent from `supplies` are skipped and reported."""
    _require_columns(df, _INTERVAL_FRAME_COLUMNS, "intervals")
    return _upsert_readings(con, df, _INTERVALS, _INTERVAL_SELECT, _INTERVAL_LOCAL_DATE, message_at)


def upsert_register_reads(
    con: duckdb.DuckDBPyConnection, df: pl.DataFrame, message_at: dt.datetime | None = None
) -> LoadResult:
    """Load a cim_ingest registers frame (see `upsert_interval_readings` for `message_at`); rows of usage points
    absent from `supplies` are skipped and reported."""
    _require_columns(df, _REGISTER_FRAME_COLUMNS, "registers")
    return _upsert_readings(con, df, _REGISTERS, _REGISTER_SELECT, _REGISTER_LOCAL_DATE, message_at)


def _keys_ascend_by_channel(df: pl.DataFrame, channel: list[str], time_key: str) -> bool:
    """Whether each channel's rows are together and in strictly ascending time, as a meter's readings normally
    come: then no key repeats, which this shows with a few comparisons of neighbours instead of hashing every key."""
    if df.height < 2:
        return True
    same_channel = pl.all_horizontal([pl.col(name) == pl.col(name).shift() for name in channel]).fill_null(False)
    marked = df.select(*channel, same_channel.alias("_same"),
                       (same_channel & (pl.col(time_key) <= pl.col(time_key).shift())).fill_null(True).any()
                       .alias("_descending"))  # a null time: not known to ascend
    if marked["_descending"][0]:
        return False
    starts = marked.filter(~pl.col("_same")).select(channel)  # one row per run of a channel
    return starts.height == starts.unique().height


def _parquet_relation(paths: list[Path]) -> str:
    # read_parquet takes literal paths; ours are built from the data directory and counters.
    listed = ", ".join("'" + str(path.resolve()).replace("'", "''") + "'" for path in paths)
    return f"read_parquet([{listed}])"


class SpooledReadings:
    """The readings of one file, spooled batch by batch to Parquet files in `directory` (fast to write, nothing
    held in memory: DuckDB would keep a transaction's uncommitted appends in memory), then merged into
    `interval_readings` / `register_reads` by `merge` inside ONE transaction of the caller: a file is applied
    entirely or not at all. `close` deletes the spool; a crashed ingest's leftovers are deleted by the next."""

    def __init__(self, con: duckdb.DuckDBPyConnection, directory: Path):
        self.con = con
        self.directory = Path(directory)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self.rows = dict.fromkeys(_READINGS, 0)
        self.files: dict[str, list[Path]] = {kind: [] for kind in _READINGS}
        self.channels: dict[str, set[tuple]] = {kind: set() for kind in _READINGS}
        self.may_repeat = dict.fromkeys(_READINGS, False)
        # Per kind: the time range and the batches' distinct key instants, noted while spooling (see _SpoolFacts);
        # None when not known (no time yet; too many distinct instants to hold).
        self.ranges: dict[str, tuple[dt.datetime, dt.datetime] | None] = dict.fromkeys(_READINGS)
        self.instants: dict[str, list[pl.DataFrame] | None] = {kind: [] for kind in _READINGS}

    def append(self, kind: str, df: pl.DataFrame, message_at: dt.datetime | None) -> None:
        """Spool one batch; `kind` is intervals or registers."""
        _spec, columns, _select, _local_date = _READINGS[kind]
        _require_columns(df, columns, kind)
        if df.height == 0:
            return
        message_at = _checked_message_at(message_at)
        # Texts as categoricals: they repeat on every row (a usage point, its reading type, one quality), and
        # Parquet then writes each once per page instead of hashing every row's string.
        df = self._unique_keys(kind, df.select(columns).with_columns(pl.col(pl.String).cast(pl.Categorical)))
        path = self.directory / f"{kind}-{len(self.files[kind]):06d}.parquet"
        df.with_columns(pl.lit(message_at, dtype=pl.Datetime("us", "UTC")).alias("_message_at")).with_row_index(
            "_row", offset=self.rows[kind]
        ).write_parquet(path, compression="uncompressed", statistics=False)  # read once, soon: not compressed
        # Noted only once the batch is spooled, so a refused batch leaves no trace in what the merge relies on.
        self.files[kind].append(path)
        self.rows[kind] += df.height
        self._note_channels(kind, df)
        self._note_times(kind, df)

    @staticmethod
    def _channel(kind: str) -> list[str]:
        return ["usage_point_mrid", "flow", *(["interval_seconds"] if kind == "intervals" else [])]

    def _unique_keys(self, kind: str, df: pl.DataFrame) -> pl.DataFrame:
        """The batch with each key once (its last row wins, as in a frame load)."""
        channel, time_key = self._channel(kind), _READINGS[kind][0].keys[-1]
        keys = [*channel, time_key]
        if not _keys_ascend_by_channel(df, channel, time_key) and df.select(
                pl.struct(keys).is_duplicated().any()).item():
            df = df.unique(subset=keys, keep="last", maintain_order=True)
        return df

    def _note_channels(self, kind: str, df: pl.DataFrame) -> None:
        """Note the batch's channels, and whether a later batch has the same usage point and channel as an earlier
        one, so that the merge must look for repeated keys."""
        channels = set(df.select(self._channel(kind)).unique().iter_rows())
        if not self.channels[kind].isdisjoint(channels):
            self.may_repeat[kind] = True
        self.channels[kind] |= channels

    def _note_times(self, kind: str, df: pl.DataFrame) -> None:
        spec = _READINGS[kind][0]
        time_key = spec.keys[-1]
        first, last = df.select(  # nulls ignored, as in SQL
            pl.col(time_key).min().alias("first"), pl.col(time_key).max().alias("last")).row(0)
        known = self.ranges[kind]
        if first is not None:
            self.ranges[kind] = (min(first, known[0]), max(last, known[1])) if known else (first, last)
        instants = self.instants[kind]
        if instants is None:
            return
        instants.append(df.select(spec.keys[2:]).unique())
        if sum(frame.height for frame in instants) > _INSTANTS_KEPT:  # many distinct times: compact, or give up
            compacted = pl.concat(instants).unique()
            self.instants[kind] = [compacted] if compacted.height <= _INSTANTS_KEPT // 2 else None

    def _facts(self, kind: str) -> _SpoolFacts | None:
        instants = self.instants[kind]
        if not self.ranges[kind] or instants is None:
            return None  # the merge scans the spool instead
        first, last = self.ranges[kind]
        path = self.directory / f"{kind}-instants.parquet"
        pl.concat(instants).unique().write_parquet(path)
        return _SpoolFacts(usage_points=self._usage_points(kind), first=first, last=last,
                           instants=_parquet_relation([path]))

    def _usage_points(self, *kinds: str) -> list[str]:
        """The usage points of the spooled readings of `kinds` (a channel starts with its usage point)."""
        return list({channel[0] for kind in kinds for channel in self.channels[kind]})

    def _relation(self, kind: str) -> str:
        return _parquet_relation(self.files[kind])

    def unknown_usage_points(self) -> tuple[list[str], int]:
        """Usage points of the spooled readings that no supply has, and how many readings name them."""
        spooled = [self._relation(kind) for kind, rows in self.rows.items() if rows]
        if not spooled:
            return [], 0
        if not _unknown_of(self.con, self._usage_points(*_READINGS)):
            return [], 0  # every usage point is known: no need to count readings in the spool
        union = " UNION ALL ".join(f"SELECT usage_point_mrid FROM {relation}" for relation in spooled)
        unknown = self.con.execute(
            f"""
            SELECT f.usage_point_mrid, count(*) FROM ({union}) f
            ANTI JOIN supplies s ON s.usage_point_mrid = f.usage_point_mrid
            GROUP BY f.usage_point_mrid ORDER BY f.usage_point_mrid
            """
        ).fetchall()
        return [row[0] for row in unknown], sum(row[1] for row in unknown)

    def merge(self) -> dict[str, LoadResult]:
        """Merge everything spooled (newest message wins, as the frame loads), inside the caller's transaction."""
        results = {}
        for kind, rows in self.rows.items():
            if rows:
                spec, _columns, select, local_date = _READINGS[kind]
                results[kind] = _upsert_readings_from(
                    self.con, self._relation(kind), spec, select, local_date, _TableScratch(self.con),
                    keys_unique=not self.may_repeat[kind], facts=self._facts(kind),
                )
        return results

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

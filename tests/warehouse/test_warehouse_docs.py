"""docs/warehouse.md documents every warehouse table and column (the schema after all migrations)."""

from __future__ import annotations

import re

import duckdb

from tests.conftest import ROOT
from warehouse.schema import apply_migrations


def test_every_table_and_column_is_documented():
    text = (ROOT / "docs" / "warehouse.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^### `(\w+)`\n(.*?)(?=^### |\Z)", text, flags=re.M | re.S))
    con = duckdb.connect()
    apply_migrations(con)
    missing = []
    for table, column in con.execute(
        "SELECT c.table_name, c.column_name FROM duckdb_columns() c "
        "JOIN duckdb_tables() t USING (database_name, schema_name, table_name) "
        "WHERE c.database_name = current_database() AND c.schema_name = 'main' ORDER BY ALL"
    ).fetchall():
        if f"| `{column}` |" not in sections.get(table, ""):
            missing.append(f"{table}.{column}")
    assert missing == []

"""`ami-portal sql`: a read-only SQL shell for analysts on the current published snapshot.

It opens the snapshot that `readmodel/CURRENT` names, read-only, so it never blocks the pipelines (which write
the warehouse file) and never sees half a publish. `-c "SQL"` runs one statement and prints CSV.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import duckdb

from ami_portal.settings import Settings


def current_snapshot(readmodel_dir: Path) -> Path:
    pointer = readmodel_dir / "CURRENT"
    if not pointer.exists():
        raise SystemExit(f"No published read model yet under {readmodel_dir}; run the pipelines first.")
    return readmodel_dir / pointer.read_text().strip()


def _print_csv(result: duckdb.DuckDBPyRelation | None, out) -> None:
    if result is None:
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.fetchall():
        writer.writerow(row)


def run_shell(settings: Settings, command: str | None, out=sys.stdout) -> int:
    con = duckdb.connect(str(current_snapshot(settings.readmodel_dir)), read_only=True)
    try:
        if command is not None:
            try:
                _print_csv(con.sql(command), out)
            except duckdb.Error as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            return 0
        print("Read-only SQL on the published snapshot. Tables: " + ", ".join(
            name for (name,) in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()
        ))
        print("End statements with ';'. Ctrl-D quits.")
        buffer = ""
        while True:
            try:
                line = input("sql> " if not buffer else "...> ")
            except EOFError:
                print()
                return 0
            buffer += line + "\n"
            if buffer.strip().endswith(";"):
                try:
                    relation = con.sql(buffer)
                    if relation is not None:
                        relation.show(max_rows=50)
                except duckdb.Error as error:
                    print(f"error: {error}")
                buffer = ""
    finally:
        con.close()

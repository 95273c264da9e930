"""DuckDB warehouse: schema and migrations (`schema`, `db.connect`), idempotent loads of parsed CIM batches
(`loads`), daily and monthly rollups (`rollups`), read-only helper queries (`queries`) and the publish of
read-model snapshots for the portal (`publish`)."""

"""cim_ingest package."""

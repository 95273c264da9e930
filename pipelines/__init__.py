"""Dagster code location (`pipelines.definitions`): thin assets that pull CIM data from the backends into the
warehouse and publish it. `pipelines.file_ingest` is plain Python: importing the package does not load Dagster,
so `ami-portal ingest` starts fast and small."""

import warnings

# Single-run backfills (BackfillPolicy) are marked beta; we rely on them on purpose and pin Dagster 1.13.x.
# Matched by Dagster's wording, so that the filter needs no import of Dagster.
warnings.filterwarnings("ignore", message=r".* is currently in beta, and may have breaking changes")

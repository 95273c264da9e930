"""Dagster code location: thin assets that pull CIM data from the backends into the warehouse and publish it."""

import warnings

import dagster as dg

# Single-run backfills (BackfillPolicy) are marked beta; we rely on them on purpose and pin Dagster 1.13.x.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

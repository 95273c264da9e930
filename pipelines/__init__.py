"""Dagster code location: thin assets that pull CIM data from the backends into the warehouse and publish it."""

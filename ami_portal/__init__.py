"""The `ami-portal` command line and the `make run` orchestration: the composition root that wires the
simulator, the Dagster pipelines and the portal together. Library packages never import it."""

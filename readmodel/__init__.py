"""The query side: read-only, thread-safe access to the published read-model snapshot, shaped for the portal."""

from readmodel.model import FLOWS, GRANULARITIES, ReadModel, worst_quality
from readmodel.snapshots import ReadModelUnavailable

__all__ = ["FLOWS", "GRANULARITIES", "ReadModel", "ReadModelUnavailable", "worst_quality"]

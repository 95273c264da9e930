"""Fixtures of the file-ingest tests; the helpers live in `ingest_helpers`."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_helpers import seed_supplies


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    seed_supplies(directory)
    return directory

"""Shared helpers for the cim_ingest tests: the handwritten XML files live in `data/`."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA_DIR = Path(__file__).parent / "data"


@pytest.fixture
def data_file():
    def resolve(name: str) -> Path:
        return DATA_DIR / name

    return resolve

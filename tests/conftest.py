"""Shared fixtures: paths to the real recordings shipped beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder of real third-party EEG recordings (``../shared/data/real``)."""
    if not REAL_DATA.is_dir():
        pytest.fail(f"real recordings not found at {REAL_DATA}; clone the repository next to shared/")
    return REAL_DATA

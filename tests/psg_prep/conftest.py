"""Fixtures for the psg_prep tests: the corpus (tests/data/corpus) and small synthetic recordings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CORPUS


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        raise FileNotFoundError(f"corpus not found at {CORPUS}: the repository carries it")
    return CORPUS

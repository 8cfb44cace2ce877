"""Fixtures for the label tests: the real DOMINO/Sleep-EDF files of the shared corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CORPUS
DOMINO = CORPUS / "labels" / "domino" / "rbdtector_test1"
FIXTURES = Path(__file__).parent / "fixtures"


def corpus_file(rel: str) -> Path:
    """A file of the shared corpus; raises when it is missing (a test must not pass without it)."""
    path = CORPUS / rel
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {rel!r} not found under {CORPUS}: shared/ must lie beside the clone")
    return path


@pytest.fixture
def domino_dir() -> Path:
    if not DOMINO.is_dir():
        raise FileNotFoundError(f"corpus not found at {DOMINO}: shared/ must lie beside the clone")
    return DOMINO


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        raise FileNotFoundError(f"corpus not found at {CORPUS}: shared/ must lie beside the clone")
    return CORPUS

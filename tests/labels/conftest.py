"""Fixtures for the label tests: the real DOMINO/Sleep-EDF files of the test corpus (tests/data)."""

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
        raise FileNotFoundError(f"corpus file {rel!r} not found under {CORPUS} (tests/data/corpus, see tests/data/SOURCES.md)")
    return path


@pytest.fixture
def domino_dir() -> Path:
    if not DOMINO.is_dir():
        raise FileNotFoundError(f"corpus not found at {DOMINO} (tests/data/corpus, see tests/data/SOURCES.md)")
    return DOMINO


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        raise FileNotFoundError(f"corpus not found at {CORPUS} (tests/data/corpus, see tests/data/SOURCES.md)")
    return CORPUS

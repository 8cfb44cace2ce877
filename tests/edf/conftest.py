"""Shared fixtures: the real EDF/BDF corpus in shared/corpus beside the clone (see its SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CORPUS

CORPUS_FILES = sorted([*CORPUS.glob("edf/*"), *CORPUS.glob("bdf/*")])


def corpus_path(name: str) -> Path:
    """Path of a corpus file by name (EDF or BDF folder)."""
    for path in CORPUS_FILES:
        if path.name == name:
            return path
    raise FileNotFoundError(name)


@pytest.fixture(scope="session")
def corpus_files() -> list[Path]:
    if not CORPUS_FILES:
        raise FileNotFoundError(f"no corpus under {CORPUS}: shared/ must lie beside the clone")
    return CORPUS_FILES

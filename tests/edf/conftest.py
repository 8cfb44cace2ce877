"""Shared fixtures: the real EDF/BDF corpus in tests/data/corpus (see tests/data/SOURCES.md), plus the
licence-unstated extra files when SUNRISE_TEST_EXTRA_CORPUS names a folder holding them (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import _NOT_CARRIED, CORPUS, EXTRA_PREFIX, extra_corpus_files

CORPUS_FILES = sorted([*CORPUS.glob("edf/*"), *CORPUS.glob("bdf/*"), *extra_corpus_files("edf/*"),
                       *extra_corpus_files("bdf/*")])


def present(names) -> list[str]:
    """The corpus file names of ``names`` this checkout has (the extra, licence-unstated ones may be absent)."""
    have = {p.name for p in CORPUS_FILES}
    return sorted(name for name in names if name in have)


def corpus_path(name: str) -> Path:
    """Path of a corpus file by name (EDF or BDF folder)."""
    for path in CORPUS_FILES:
        if path.name == name:
            return path
    if name.startswith(EXTRA_PREFIX):
        pytest.skip(f"{name} {_NOT_CARRIED}")
    raise FileNotFoundError(name)


@pytest.fixture(scope="session")
def corpus_files() -> list[Path]:
    if not CORPUS_FILES:
        raise FileNotFoundError(f"no corpus under {CORPUS}: tests/data/corpus is missing")
    return CORPUS_FILES

"""Shared fixtures: settings on the embedded backend in a temporary folder, a context, apps."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sunrise_common.service import Context, create_app
from sunrise_common.settings import Settings

DATA = Path(__file__).resolve().parent / "data"  # the test data the repository carries (data/SOURCES.md)
CORPUS = DATA / "corpus"
REFERENCE_EVENTS = DATA / "cloudevents"
# Files kept out of the repository because their licence is unstated (mne-testing-data's,
# tests/data/SOURCES.md): read from the folder SUNRISE_TEST_EXTRA_CORPUS names (laid out like
# tests/data/corpus) when a developer has them, skipped otherwise. Nothing else is looked for.
_EXTRA = os.environ.get("SUNRISE_TEST_EXTRA_CORPUS", "")
EXTRA_CORPUS = Path(_EXTRA).resolve() if _EXTRA else None
EXTRA_PREFIX = "mne__"
_NOT_CARRIED = "is not carried by the repository (licence unstated); set SUNRISE_TEST_EXTRA_CORPUS to read it"


def corpus_file(rel: str) -> Path:
    """A corpus file by its path under corpus/: the repository's copy, else the optional extra corpus's."""
    for root in (CORPUS, EXTRA_CORPUS):
        if root is not None and (root / rel).is_file():
            return root / rel
    pytest.skip(f"{rel} {_NOT_CARRIED}")


def available(rels: list[str] | dict) -> list[str]:
    """The corpus paths of ``rels`` this checkout can read (repository files, plus extra ones when present)."""
    return [rel for rel in rels if (CORPUS / rel).is_file() or (EXTRA_CORPUS is not None and (EXTRA_CORPUS / rel).is_file())]


def extra_corpus_files(pattern: str) -> list[Path]:
    """The licence-unstated extra files matching ``pattern`` (e.g. ``edf/*``), when SUNRISE_TEST_EXTRA_CORPUS names them."""
    if EXTRA_CORPUS is None:
        return []
    return sorted(p for p in EXTRA_CORPUS.glob(pattern) if p.name.startswith(EXTRA_PREFIX))
TEST_KEY = "test-pseudonym-key-0123456789abcdef"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(backend="embedded", data_dir=tmp_path / "data", pseudonym_key=TEST_KEY, prefix="sunrise-test",
                    project="sunrise-test", lease_s=30)


@pytest.fixture
def ctx(settings: Settings) -> Context:
    ctx = Context.from_settings(settings)
    for logical in ("raw", "anonymised", "prepped", "results"):
        ctx.storage.ensure_bucket(settings.bucket(logical))
    return ctx


def app_client(service: str, settings: Settings) -> TestClient:
    from importlib import import_module

    handler = import_module(f"{service}.handler").handle
    return TestClient(create_app(service, handler, settings=settings))


def load_reference(name: str) -> tuple[dict[str, str], bytes]:
    doc = json.loads((REFERENCE_EVENTS / name).read_text())
    headers = {k: v for k, v in doc["headers"].items() if k.lower() != "authorization"}
    return headers, json.dumps(doc["body"]).encode()


@pytest.fixture
def no_sunrise_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ``SUNRISE_`` variable of the machine running the tests reaches the settings under test."""
    for name in [n for n in os.environ if n.startswith("SUNRISE_")]:
        monkeypatch.delenv(name)
    return monkeypatch

"""Fixtures of the dev-stack tests: embedded settings in a temporary folder and the router's
queue file there."""

from __future__ import annotations

import pytest

from sunrise_common.settings import Settings
from sunrise_devstack.router.queue import Queue
from tests.conftest import TEST_KEY


@pytest.fixture
def settings(tmp_path):
    return Settings(backend="embedded", data_dir=tmp_path, pseudonym_key=TEST_KEY, prefix="sunrise-q",
                    project="sunrise-q")


@pytest.fixture
def queue(settings):
    return Queue(settings.data_dir / "router.db")

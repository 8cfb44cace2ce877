"""Real processes on loopback: the four services and the router, on free ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from sunrise_common.service import Context
from sunrise_devstack.settings import DevStackSettings
from sunrise_cli.stack import Stack, wait_until  # noqa: F401 - wait_until is imported by the e2e tests
from sunrise_devstack.emulators import local_service_urls
from tests.conftest import TEST_KEY


def stack_settings(tmp_path: Path, **overrides) -> DevStackSettings:
    urls = local_service_urls()
    values = dict(backend="embedded", data_dir=tmp_path / "data", pseudonym_key=TEST_KEY, prefix="sunrise-e2e",
                  project="sunrise-e2e", router_poll_s=0.1, router_backoff_initial_s=0.2, router_backoff_max_s=1.0,
                  router_max_attempts=60, lease_s=30, **urls)
    values.update(overrides)
    return DevStackSettings(**values)


@pytest.fixture
def embedded_stack(tmp_path):
    settings = stack_settings(tmp_path)
    ctx = Context.from_settings(settings)
    for logical in ("raw", "anonymised", "prepped", "results"):
        ctx.storage.ensure_bucket(settings.bucket(logical))
    stack = Stack(settings, tmp_path / "logs")
    stack.start()
    try:
        yield stack, ctx
    finally:
        stack.stop()

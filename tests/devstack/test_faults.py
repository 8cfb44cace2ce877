"""The dev stack's fault injection: installed per process by the local server, through the
library's port wrappers; the library itself injects nothing."""

from __future__ import annotations

import pytest

from sunrise_common import service
from sunrise_common.errors import TransientError
from sunrise_common.service import Context
from sunrise_devstack.settings import DevStackSettings
from sunrise_devstack import faults


@pytest.fixture
def wrappers(monkeypatch):
    monkeypatch.setattr(service, "PORT_WRAPPERS", [])
    return service.PORT_WRAPPERS


def _settings(tmp_path, **faulty) -> DevStackSettings:
    return DevStackSettings(backend="embedded", data_dir=tmp_path, pseudonym_key="test-key-0123456789abcdef", **faulty)


def test_without_installing_a_context_is_never_flaky_whatever_the_settings(tmp_path, wrappers):
    ctx = Context.from_settings(_settings(tmp_path, fault_rate=1.0))
    assert ctx.state.get("nights", "n1") is None


def test_installed_at_rate_one_every_call_of_the_chosen_ports_fails_transiently(tmp_path, wrappers):
    settings = _settings(tmp_path, fault_rate=1.0, fault_ports="state")
    assert faults.install(settings) and not faults.install(settings)  # once per process
    ctx = Context.from_settings(settings)
    with pytest.raises(TransientError) as info:
        ctx.state.get("nights", "n1")
    assert info.value.reason == "injected_fault"
    ctx.storage.ensure_bucket(settings.bucket("raw"))  # storage is not a chosen port
    assert list(ctx.storage.list(settings.bucket("raw"), "")) == []


def test_a_zero_rate_installs_nothing(tmp_path, wrappers):
    assert not faults.install(_settings(tmp_path, fault_rate=0.0)) and wrappers == []

"""Local ports for a stack: distinct by construction, and a clear error when two collide."""

from __future__ import annotations

from urllib.parse import urlparse

import httpx

from sunrise_cli.stack import Stack
from sunrise_common import names
from sunrise_devstack.settings import DevStackSettings
from sunrise_devstack.emulators import free_ports, local_service_urls


def test_free_ports_are_distinct_within_one_call():
    # Closing each socket before binding the next let the kernel return one port twice.
    ports = free_ports(64)
    assert len(set(ports)) == 64
    assert all(1024 <= p <= 65535 for p in ports)


def test_local_service_urls_give_every_service_its_own_port():
    urls = local_service_urls()
    assert sorted(urls) == sorted(f"{s}_url" for s in names.SERVICES)
    ports = [urlparse(u).port for u in urls.values()]
    assert len(set(ports)) == len(names.SERVICES)
    assert {urlparse(u).hostname for u in urls.values()} == {"127.0.0.1"}


def test_a_port_answered_by_a_sibling_service_is_named_as_a_shared_port(tmp_path):
    stack = Stack(DevStackSettings(backend="embedded", data_dir=tmp_path, **local_service_urls()), tmp_path / "logs")
    sibling = httpx.Response(200, json={"status": "ok", "service": "ingest", "instance": stack.token})
    assert not stack._is_ours(sibling, "sunrise_prep")
    message = stack._not_ours("http://127.0.0.1:1/healthz", sibling)
    assert "this stack's 'ingest'" in message and "same port" in message
    stranger = httpx.Response(200, json={"status": "ok", "service": "sunrise_prep", "instance": "someone-else"})
    assert "did not start" in stack._not_ours("http://127.0.0.1:1/healthz", stranger)

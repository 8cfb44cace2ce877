"""Fault injection at the adapter boundary, for the reliability suite (``make reliability``).

A dev-stack tool, not the library's: the local server (``sunrise_devstack.server``) installs it in
every service process it starts (:func:`install`), through ``sunrise_common.service.PORT_WRAPPERS``.
Off unless ``SUNRISE_FAULT_RATE`` > 0. When on, each call to a port method (storage, state,
publisher) fails with a :class:`TransientError` with that probability (seeded by
``SUNRISE_FAULT_SEED``; rate 1 fails every call, deterministically), exactly as an SDK timeout
or a 503 would once translated at the boundary. The stages must then answer 5xx, be redelivered
and finish; nothing may be lost or done twice.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from sunrise_common.errors import TransientError
from sunrise_devstack.settings import DevStackSettings


class Flaky:
    """Wraps an adapter; public methods fail transiently with probability ``rate``."""

    def __init__(self, inner: Any, port: str, rate: float, seed: int) -> None:
        self._inner = inner
        self._port = port
        self._rate = rate
        # Seeded by (seed, port) only: the same settings give every run the same fault sequence
        # (a str seed is hashed with SHA-512, stable across processes; a pid would not be).
        self._rng = random.Random(f"{seed}/{port}")
        self._lock = threading.Lock()
        self.injected = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name.startswith("_") or not callable(attr) or name in ("ensure_bucket", "bucket_path", "clean_stale_staging"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                fail = self._rng.random() < self._rate
                if fail:
                    self.injected += 1
            if fail:
                raise TransientError("injected_fault", f"{self._port}.{name} failed on purpose (fault injection)")
            return attr(*args, **kwargs)

        return call


def wrap(adapter: Any, settings: DevStackSettings, port: str) -> Any:
    """``adapter`` made flaky when ``settings`` ask for faults on ``port``, else ``adapter``."""
    if settings.fault_rate <= 0 or port not in settings.fault_ports.split(","):
        return adapter
    return Flaky(adapter, port, settings.fault_rate, settings.fault_seed)


def install(settings: DevStackSettings) -> bool:
    """Make every Context this process builds from now on flaky as ``settings`` ask (once per
    process); False, installing nothing, when the fault rate is 0."""
    from sunrise_common import service

    if settings.fault_rate <= 0 or any(getattr(w, "faults", False) for w in service.PORT_WRAPPERS):
        return False

    def wrapper(port: str, adapter: Any) -> Any:
        return wrap(adapter, settings, port)

    wrapper.faults = True  # type: ignore[attr-defined]
    service.PORT_WRAPPERS.append(wrapper)
    return True

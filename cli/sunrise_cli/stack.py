"""Start and stop the local stack: the four services (uvicorn) and the router, on 127.0.0.1.

Each process runs in its own process group so that stopping the stack stops everything it
started. Before a service starts, its port must be free (another stack already answering there
is refused, not mistaken for ours), and a service counts as up only when ``/healthz`` answers with
this launcher's per-run token (``SUNRISE_INSTANCE_TOKEN``). Services run under
:mod:`sunrise_devstack.server` (uvicorn with timeouts for slow clients). Used by ``sunrise run`` (``make run``), the end-to-end tests and the benchmarks.
"""

from __future__ import annotations

import errno
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import httpx

from sunrise_common import names
from sunrise_algo.settings import AlgorithmSettings
from sunrise_devstack.settings import DevStackSettings

# Each service's ASGI app: services/<name>/<name>/main.py, in the order of names.SERVICES.
SERVICE_APPS = {service: f"{service}.main:app" for service in names.SERVICES}


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def settings_env(settings: DevStackSettings) -> dict[str, str]:
    """The environment that gives a child process the same settings."""
    env = {
        "SUNRISE_BACKEND": settings.backend,
        "SUNRISE_PREFIX": settings.prefix,
        "SUNRISE_PROJECT": settings.project,
        "SUNRISE_DATA_DIR": str(Path(settings.data_dir).resolve()),
        "SUNRISE_GCS_ENDPOINT": settings.gcs_endpoint,
        "SUNRISE_FIRESTORE_EMULATOR_HOST": settings.firestore_emulator_host,
        "SUNRISE_PUBSUB_EMULATOR_HOST": settings.pubsub_emulator_host,
        "SUNRISE_ROUTER_POLL_S": str(settings.router_poll_s),
        "SUNRISE_ROUTER_BACKOFF_INITIAL_S": str(settings.router_backoff_initial_s),
        "SUNRISE_ROUTER_BACKOFF_MAX_S": str(settings.router_backoff_max_s),
        "SUNRISE_ROUTER_MAX_ATTEMPTS": str(settings.router_max_attempts),
        "SUNRISE_ROUTER_MAX_IN_FLIGHT": str(settings.router_max_in_flight),
        "SUNRISE_ROUTER_WATCH_RAW": str(settings.router_watch_raw).lower(),
        "SUNRISE_ROUTER_RAW_INOTIFY": str(settings.router_raw_inotify).lower(),
        "SUNRISE_ROUTER_RAW_QUIET_S": str(settings.router_raw_quiet_s),
        "SUNRISE_ROUTER_IN_FLIGHT_DEADLINE_S": str(settings.router_in_flight_deadline_s),
        "SUNRISE_DEAD_LETTER_RETENTION_S": str(settings.dead_letter_retention_s),
        "SUNRISE_LEASE_S": str(settings.lease_s),
        "SUNRISE_FAULT_RATE": str(settings.fault_rate),
        "SUNRISE_FAULT_SEED": str(settings.fault_seed),
        "SUNRISE_FAULT_PORTS": settings.fault_ports,
        "SUNRISE_ROUTER_DUPLICATES": str(settings.router_duplicates),
        "SUNRISE_ROUTER_SHUFFLE": str(settings.router_shuffle).lower(),
        "SUNRISE_LOG_LEVEL": settings.log_level,
    }
    for service in SERVICE_APPS:
        env[f"SUNRISE_{service.upper()}_URL"] = settings.service_url(service)
    if settings.pseudonym_key is not None:
        env["SUNRISE_PSEUDONYM_KEY"] = settings.pseudonym_key.get_secret_value()
    if settings.pseudonym_key_file is not None:
        env["SUNRISE_PSEUDONYM_KEY_FILE"] = str(settings.pseudonym_key_file)
    if settings.psg_channel_map is not None:
        env["SUNRISE_PSG_CHANNEL_MAP"] = str(Path(settings.psg_channel_map).resolve())
    env["SUNRISE_MAINS_HZ"] = str(settings.mains_hz)
    if isinstance(settings, AlgorithmSettings):  # the CLI's: sunalgo's model store and version go on
        if settings.models_dir is not None:
            env["SUNRISE_MODELS_DIR"] = str(Path(settings.models_dir).resolve())
        if settings.model_version:
            env["SUNRISE_MODEL_VERSION"] = settings.model_version
    return env


class PortBusy(RuntimeError):
    """A service's port is already taken by another process (another stack, say)."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` can be bound now, as uvicorn binds it (``SO_REUSEADDR``: a port in
    TIME_WAIT after our own stop counts as free, one with a listener does not)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


@dataclass
class Stack:
    settings: DevStackSettings
    log_dir: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    # Echoed by every service's /healthz: proves the answer comes from a process started here.
    token: str = field(default_factory=lambda: secrets.token_hex(16))

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUNRISE_")}
        env.update(settings_env(self.settings))
        env["SUNRISE_INSTANCE_TOKEN"] = self.token
        return env

    def start_service(self, service: str) -> None:
        url = urlparse(self.settings.service_url(service))
        if url.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"local services bind to 127.0.0.1 only, not {url.hostname}")
        if url.port is None:
            raise ValueError(f"{service}'s URL {self.settings.service_url(service)} names no port")
        if not port_is_free(url.port):
            raise PortBusy(
                f"port {url.port} ({service}) is already in use by another process: stop it, or set "
                f"SUNRISE_{service.upper()}_URL to a free port"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{service}.log", "ab")
        self.procs[service] = subprocess.Popen(
            [sys.executable, "-m", "sunrise_devstack.server", SERVICE_APPS[service], "--host", "127.0.0.1",
             "--port", str(url.port)],
            env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def start_router(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / "router.log", "ab")
        self.procs["router"] = subprocess.Popen(
            [sys.executable, "-m", "sunrise_devstack.router.main"],
            env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def start(self, timeout: float = 60.0, on_ready: Callable[[str], None] | None = None) -> None:
        """Start the services, wait until they answer, then the router (so that its first
        deliveries find them up). If anything fails, whatever was started is stopped again.
        ``on_ready(name)`` is called as each service answers and once the router is started
        (progress output for ``make run``)."""
        try:
            for service in SERVICE_APPS:
                self.start_service(service)
            self.wait_healthy(timeout, on_ready=on_ready)
            self.start_router()
            if on_ready:
                on_ready("router")
        except BaseException:
            self.stop()
            raise

    def wait_healthy(self, timeout: float = 60.0, services: list[str] | None = None,
                     on_ready: Callable[[str], None] | None = None) -> None:
        deadline = time.monotonic() + timeout
        for service in services or list(SERVICE_APPS):
            url = self.settings.service_url(service).rstrip("/") + "/healthz"
            while True:
                proc = self.procs.get(service)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{service} exited with {proc.returncode}; see {self.log_dir / (service + '.log')}")
                try:
                    resp = httpx.get(url, timeout=1.0)
                    if resp.status_code == 200:
                        if self._is_ours(resp, service):
                            if on_ready:
                                on_ready(service)
                            break
                        raise PortBusy(self._not_ours(url, resp))
                except (httpx.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service} did not answer {url} within {timeout:.0f} s")
                time.sleep(0.1)

    def _not_ours(self, url: str, resp: httpx.Response) -> str:
        """Why the answer at ``url`` is not the service this stack started there."""
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("instance") == self.token:
            return (f"{url} is answered by this stack's {body.get('service')!r}: two services were "
                    "given the same port; give each SUNRISE_<SERVICE>_URL its own port")
        return f"{url} is answered by a process this launcher did not start ({resp.text[:100]!r}): another stack holds the port"

    def _is_ours(self, resp: httpx.Response, service: str) -> bool:
        try:
            body = resp.json()
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("service") == service and body.get("instance") == self.token

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)

    def __enter__(self) -> "Stack":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

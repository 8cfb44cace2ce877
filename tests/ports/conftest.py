"""Fixtures for the port tests: the same cases against every adapter of a port.

The emulator-backed parameters (fake-gcs-server, the Firestore and Pub/Sub emulators) are marked
``emulators``. The emulators start once per session and are emptied before every test that uses
them. When Java or gcloud's emulators are missing these tests fail with the reason (CI installs
them); they are never skipped. Deselect them with ``-m "not emulators"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from sunrise_devstack.emulators import Emulators, EmulatorsMissing
from sunrise_common.publisher.local import LocalPublisher
from sunrise_common.publisher.pubsub import PubsubPublisher
from sunrise_devstack.router.pubsub_source import PubsubSource
from sunrise_devstack.router.queue import Queue
from sunrise_devstack.settings import DevStackSettings
from sunrise_common.settings import Settings
from sunrise_common.state.firestore import FirestoreState
from sunrise_common.state.sqlite import SqliteState
from sunrise_common.storage.gcs import GcsStorage
from sunrise_common.storage.local import LocalStorage

PROJECT = "sunrise-contracts"
PREFIX = "sunrise-contracts"


@pytest.fixture(scope="session")
def emulators_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    emulators = Emulators(tmp_path_factory.mktemp("emulator-logs"), project=PROJECT, prefix=PREFIX)
    missing = None
    try:
        emulators.start()
    except EmulatorsMissing as exc:
        missing = str(exc)
    if missing is not None:
        pytest.fail(f"the emulator contract tests need the emulators installed: {missing}", pytrace=False)
    try:
        emulators.provision()
        yield emulators
    finally:
        emulators.stop()


@pytest.fixture
def emulators(emulators_session: Emulators) -> Emulators:
    """The session's emulators, emptied (documents, objects, subscriptions)."""
    emulators_session.reset()
    return emulators_session


@pytest.fixture(params=["embedded", pytest.param("emulators", marks=pytest.mark.emulators)])
def child_backend(request: pytest.FixtureRequest) -> dict:
    """Settings of a child process that measures a stage's memory (tests/*/test_handler_memory.py):
    the embedded backend, or the emulators (fake-gcs-server: the Cloud Storage path, range reads,
    resumable and part uploads, compose, which Cloud Run runs)."""
    from tests.conftest import TEST_KEY

    base = {"pseudonym_key": TEST_KEY, "prefix": PREFIX, "project": PROJECT}
    if request.param == "embedded":
        return {**base, "backend": "embedded"}
    emu = request.getfixturevalue("emulators")
    return {**base, "backend": "emulators", "gcs_endpoint": emu.gcs_endpoint,
            "pubsub_emulator_host": emu.pubsub_emulator_host, "firestore_emulator_host": emu.firestore_emulator_host}


def make_settings(tmp_path: Path, emulators: Emulators | None = None) -> Settings:
    if emulators is None:
        return Settings(backend="embedded", project=PROJECT, prefix=PREFIX, data_dir=tmp_path)
    return Settings(
        backend="emulators",
        project=PROJECT,
        prefix=PREFIX,
        data_dir=tmp_path,
        gcs_endpoint=emulators.gcs_endpoint,
        pubsub_emulator_host=emulators.pubsub_emulator_host,
        firestore_emulator_host=emulators.firestore_emulator_host,
    )


@pytest.fixture
def emulator_settings(emulators: Emulators, tmp_path: Path) -> Settings:
    """Settings of the emulators backend pointing at the session's (emptied) emulators."""
    return make_settings(tmp_path, emulators)


@pytest.fixture(params=["local", pytest.param("gcs", marks=pytest.mark.emulators)])
def storage(request: pytest.FixtureRequest, tmp_path: Path):
    """A Storage adapter with an empty bucket ``{PREFIX}-raw``."""
    if request.param == "local":
        store = LocalStorage(tmp_path / "buckets")
    else:
        emu = request.getfixturevalue("emulators")
        store = GcsStorage.for_emulator(emu.gcs_endpoint, PROJECT)
    store.ensure_bucket(f"{PREFIX}-raw")
    return store


@pytest.fixture
def bucket() -> str:
    return f"{PREFIX}-raw"


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.emulators)])
def state(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        return SqliteState(tmp_path / "state.db")
    emu = request.getfixturevalue("emulators")
    return FirestoreState.for_emulator(emu.firestore_emulator_host, PROJECT)


@pytest.fixture
def state_twin(request: pytest.FixtureRequest, state):
    """A second adapter instance on the same backend (another process, as far as locks go)."""
    if isinstance(state, SqliteState):
        return SqliteState(state.path)
    emu = request.getfixturevalue("emulators")
    return FirestoreState.for_emulator(emu.firestore_emulator_host, PROJECT)


class PublishPath:
    """A publisher and the way its messages reach the router's queue in that backend."""

    def __init__(self, settings: Settings, queue: Queue, publisher, pump) -> None:  # noqa: ANN001
        self.settings = settings
        self.queue = queue
        self.publisher = publisher
        self._pump = pump

    def pump(self, expected: int, timeout_s: float = 10.0) -> int:
        """Move messages into the queue until ``expected`` deliveries exist (or time runs out)."""
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            self._pump()
            count = len(list(self.queue.deliveries()))
            if count >= expected or time.monotonic() > deadline:
                return count
            time.sleep(0.05)


@pytest.fixture(params=["local", pytest.param("pubsub", marks=pytest.mark.emulators)])
def publish_path(request: pytest.FixtureRequest, tmp_path: Path) -> PublishPath:
    if request.param == "local":
        settings = make_settings(tmp_path)
        queue = Queue(tmp_path / "router.db")
        publisher = LocalPublisher(tmp_path / "router.db")
        router_settings = DevStackSettings.model_validate(settings.model_dump())  # the router's side
        return PublishPath(settings, queue, publisher, lambda: queue.route_messages(router_settings))
    emu = request.getfixturevalue("emulators")
    settings = make_settings(tmp_path, emu)
    queue = Queue(tmp_path / "router.db")
    source = PubsubSource(settings, queue, pull_timeout_s=1.0)
    source.ensure_subscriptions()
    publisher = PubsubPublisher.for_emulator(emu.pubsub_emulator_host, PROJECT)
    return PublishPath(settings, queue, publisher, source.poll_once)

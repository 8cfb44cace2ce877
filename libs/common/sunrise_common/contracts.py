"""The contracts between stages: the night document and the per-night messages, typed once.

Who writes what:

- ingest writes ``nights/{night_id}`` (:class:`NightDoc`): the night's identity, its
  :class:`Recording` entries and their pairing, and the ``ingest`` entry of ``stages``; it then
  publishes a :class:`NightMessage` on ``sunrise-anonymised`` (Sunrise) or ``psg-anonymised``
  (PSG, labels).
- every stage's runner (:mod:`sunrise_common.state.runs`) writes ``runs`` and its mirror
  ``stages`` (:class:`StageRun`) and ``history``; ``sunrise rerun`` writes ``reruns``.
- sunrise_prep and psg_prep publish a :class:`NightMessage` on ``sunrise-prepped`` /
  ``psg-prepped``; ``sunrise rerun`` publishes one on the stage's input topic.
- sunrise_prep, psg_prep and sunalgo read the document through :func:`sunrise_common.nights.open_night`.

Wire compatibility: the models read what older code stored and sent (unknown fields are kept on
documents and ignored on messages; ``generation`` is accepted as a string or a number and sent as
a string, proto3 JSON's int64 form). A document is never re-serialised whole through a model:
each writer changes its own part (``Recording.to_doc``, ``StageRun.to_doc``) inside a
transaction on the stored dict, so fields another writer added survive.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator

from sunrise_common.errors import PermanentError
from sunrise_common.events import _problems as problems
from sunrise_common.events import int64 as _int64

NIGHT_ID = re.compile(r"\As[a-z2-7]{12}-n[a-z2-7]{8}\Z")  # \A...\Z: no trailing newline

#: Which upload a per-night message announces (``rerun``: ``sunrise rerun`` asks sunalgo again).
MessageKind = Literal["sunrise", "psg", "labels", "rerun"]


class Recording(BaseModel):
    """One anonymised upload of a night: ``recordings.sunrise``, ``recordings.psg`` or
    ``recordings.labels[label_key]``. Written by ingest, once per raw generation: the newest raw
    generation of an upload wins whatever order the ingests finish in (``raw_generation``), and
    another upload of a kind the night already has is refused (``duplicate_recording``)."""

    model_config = ConfigDict(extra="allow")

    object: str = Field(description="object name in the anonymised bucket (nights/{night_id}/...)")
    generation: int = Field(ge=0, description="storage generation of that object (a write time: µs on "
                            "Cloud Storage, the later of the file's mtime and ctime in ns locally); "
                            "personal in the sense of docs/privacy.md, so it never appears in a name "
                            "(see names.input_key)")
    token: str | None = Field(default=None, description="keyed digest of (object, generation) "
                              "(identity.upload_token): what later stages put into their input keys. "
                              "Absent in documents written before issue 17")
    sha256: str | None = Field(default=None, description="hex SHA-256 of the anonymised bytes")
    size: int | None = Field(default=None, ge=0, description="bytes of the anonymised object")
    start_offset_s: float | None = Field(default=None, description="s from the night's noon anchor to the "
                                         "recording start (identity.start_offset_s)")
    duration_s: float | None = Field(default=None, description="s of recording (0 for text label files)")
    year: int | None = Field(default=None, description="year of the recording start")
    upload_id: str | None = Field(default=None, description="the uploads/ document of the raw object (keyed)")
    format: str | None = Field(default=None, description="EDF, EDF+C, EDF+D, BDF... or the label kind")
    label_kind: str | None = Field(default=None, description="labels only: one of labels.LABEL_KINDS, detected "
                                   "once by ingest from the raw bytes and the raw file name")
    raw_generation: int | None = Field(default=None, ge=0, description="storage generation of the raw object "
                                       "this recording was made from: ingest keeps the newest per upload. A "
                                       "write time, so never in a name. Absent in documents written before "
                                       "issue 22")

    @field_validator("generation", "raw_generation", mode="before")
    @classmethod
    def _generation(cls, value: Any) -> Any:
        return None if value is None else _int64(value)

    @property
    def input(self) -> str:
        """This upload in an input key: its keyed token, or (older documents) its generation."""
        return self.token or str(self.generation)

    def to_doc(self) -> dict[str, Any]:
        """The stored form (no null fields: a Sunrise recording has no ``label_kind``)."""
        return self.model_dump(exclude_none=True)


class Recordings(BaseModel):
    """``recordings`` of a night: at most one Sunrise and one PSG recording, any label files."""

    model_config = ConfigDict(extra="allow")

    sunrise: Recording | None = None
    psg: Recording | None = None
    labels: dict[str, Recording] = Field(default_factory=dict, description="by label key "
                                         "(``{label_kind}-{keyed digest}``)")


class StageRun(BaseModel):
    """One run of a stage (``runs[stage][input_key]``) or its mirror, the stage's latest run
    (``stages[stage]``). Written by :class:`~sunrise_common.state.runs.StageRuns`; ingest writes
    its own mirror (``input_key``: the upload id)."""

    model_config = ConfigDict(extra="allow")

    state: str = Field(description="pending (asked again by `sunrise rerun`), running, retrying, done or failed")
    input_key: str | None = Field(default=None, description="what the run worked on (names.input_key)")
    # The timing fields are all optional: a stored run with a null in one of them (an older
    # writer, a hand edit) is still read, not a ``bad_night_document`` for the whole night.
    attempts: int | None = Field(default=0, description="claims so far; the latest claim's fencing token")
    lease_expires: float | None = Field(default=0, description="epoch s; 0 (or null) once finished")
    started_at: float | None = Field(default=None, description="epoch s of the latest claim")
    finished_at: float | None = Field(default=None, description="epoch s")
    duration_s: float | None = Field(default=None, description="s from the latest claim to its finish")
    error: str | None = Field(default=None, description="reason of a failure (permanent or transient)")
    permanent: bool = Field(default=False, description="the failure is permanent: it is not retried")
    outputs: dict[str, Any] = Field(default_factory=dict, description="what the stage wrote (its ``prefix``...)")
    metrics: dict[str, Any] = Field(default_factory=dict, description="wall_s, cpu_s, bytes...")

    def to_doc(self) -> dict[str, Any]:
        """The stored form: the fields the writer set (ingest's mirror has no lease or attempts)."""
        return self.model_dump(exclude_unset=True)


class NightDoc(BaseModel):
    """``nights/{night_id}``: what the stages after ingest read (see the module docstring for who
    writes which part)."""

    model_config = ConfigDict(extra="allow")

    night_id: str | None = None
    subject: str | None = Field(default=None, description="the subject pseudonym (ingest)")
    site_pseudonym: str | None = Field(default=None, description="keyed site pseudonym (ingest)")
    created_at: float | None = Field(default=None, description="epoch s")
    updated_at: float | None = Field(default=None, description="epoch s")
    recordings: Recordings = Field(default_factory=Recordings)
    pairing: dict[str, Any] = Field(default_factory=dict, description="ingest.pairing.pairing_status")
    stages: dict[str, StageRun] = Field(default_factory=dict, description="each stage's latest run")
    runs: dict[str, dict[str, StageRun]] = Field(default_factory=dict, description="every run, by stage, input key")
    reruns: dict[str, int] = Field(default_factory=dict, description="`sunrise rerun` requests per stage")
    history: list[dict[str, Any]] = Field(default_factory=list, description="the last finished runs")

    def latest_done(self, stage: str) -> StageRun | None:
        """The stage's latest run if it finished, else None."""
        st = self.stages.get(stage)
        return st if st is not None and st.state == "done" else None

    def in_progress(self, stage: str) -> bool:
        """The stage's latest run is working or waiting for a retry."""
        st = self.stages.get(stage)
        return st is not None and st.state in ("running", "retrying")

    def rerun_count(self, stage: str) -> int:
        """How many times ``sunrise rerun`` asked for this stage again; folded into the stage's
        input key so that a rerun writes new outputs instead of finding the old ones done."""
        return int(self.reruns.get(stage, 0))


class NightMessage(BaseModel):
    """The data of every per-night Pub/Sub message (JSON object in ``message.data``).

    - ``*-anonymised`` (ingest; ``sunrise rerun`` for the prep stages): ``night_id``, ``kind``
      (sunrise, psg or labels), ``object`` and ``generation`` of the upload it announces. A
      consumer compares ``generation`` with the night document's and drops a superseded message.
    - ``*-prepped`` (sunrise_prep, psg_prep): ``night_id`` and ``kind``; sunalgo works from the
      night document's latest finished preparations, whatever the message says.
    - ``sunrise rerun`` on sunalgo's topic: ``kind`` ``rerun`` and optionally ``model_version``.

    Fields older code sent (``prefix``, ``input_key`` on the prepped topics) are ignored."""

    model_config = ConfigDict(extra="ignore")

    night_id: str = Field(description="s<12 base32>-n<8 base32> (identity.night_id)")
    kind: MessageKind | None = None
    object: str | None = Field(default=None, max_length=1024, description="anonymised object name")
    generation: int | None = Field(default=None, ge=0, description="storage generation of ``object`` "
                                   "(a decimal string on the wire)")
    model_version: Any = Field(default=None, description="sunalgo: score with this model; checked there "
                               "(sunrise_algo.builtin.model.check_version), which rejects anything else as unknown_model")

    @field_validator("generation", mode="before")
    @classmethod
    def _generation(cls, value: Any) -> Any:
        return None if value is None else _int64(value)

    @field_validator("night_id", mode="before")
    @classmethod
    def _night_id(cls, value: Any) -> Any:
        if not isinstance(value, str) or not NIGHT_ID.match(value):
            raise ValueError(f"night_id must look like s<12 base32>-n<8 base32>, got {str(value)[:40]!r}")
        return value

    @field_serializer("generation")
    def _generation_as_string(self, value: int | None) -> str | None:
        return None if value is None else str(value)

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> "NightMessage":
        """A received payload, checked: anything unusable is a permanent ``bad_payload``
        (redelivering it cannot help)."""
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise PermanentError("bad_payload", problems(exc)) from None

    def to_bytes(self) -> bytes:
        """The published form: JSON without the fields that are not set."""
        return json.dumps(self.model_dump(exclude_none=True)).encode()


__all__ = ["NIGHT_ID", "MessageKind", "NightDoc", "NightMessage", "Recording", "Recordings", "StageRun"]

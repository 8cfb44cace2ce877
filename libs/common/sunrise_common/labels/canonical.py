"""Canonical sleep-label vocabulary (AASM) and the in-memory label model.

Stages (30-s epochs, AASM 2.6): ``W``, ``N1``, ``N2``, ``N3``, ``REM`` and ``UNS`` (unscored; also
artefact, movement time and anything the scorer marked ``?``). Rechtschaffen & Kales labels are
mapped onto AASM: stages 3 and 4 become ``N3``; ``?`` and movement time become ``UNS``.

Event types: ``obstructive_apnea``, ``central_apnea``, ``mixed_apnea``, ``apnea`` (type not
given), ``hypopnea``, ``rera``, ``desaturation``, ``arousal``, ``limb_movement`` and ``other``.
Labels we cannot map exactly (DOMINO ``Flow Limitation``, ``Body event``, RBD muscle-activity
marks such as ``ChinPhasic``) become ``other`` with the original label kept in ``LabelEvent.label``:
flow limitation alone is not a RERA (a RERA needs the arousal that ends it), so calling it one
would inflate the RDI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time

STAGES = ("W", "N1", "N2", "N3", "REM", "UNS")
UNSCORED = "UNS"

EVENT_TYPES = (
    "obstructive_apnea",
    "central_apnea",
    "mixed_apnea",
    "apnea",
    "hypopnea",
    "rera",
    "desaturation",
    "arousal",
    "limb_movement",
    "other",
)

EPOCH_S = 30.0

# Normalised key (lower case, spaces/underscores/dashes removed) -> canonical stage.
_STAGE_ALIASES = {
    "w": "W",
    "wake": "W",
    "wach": "W",
    "sleepstagew": "W",
    "0": "W",
    "n1": "N1",
    "s1": "N1",
    "1": "N1",
    "stage1": "N1",
    "sleepstage1": "N1",
    "n2": "N2",
    "s2": "N2",
    "2": "N2",
    "stage2": "N2",
    "sleepstage2": "N2",
    "n3": "N3",
    "s3": "N3",
    "3": "N3",
    "stage3": "N3",
    "sleepstage3": "N3",
    "n4": "N3",
    "s4": "N3",
    "4": "N3",
    "stage4": "N3",
    "sleepstage4": "N3",
    "rem": "REM",
    "r": "REM",
    "5": "REM",
    "sleepstager": "REM",
    "stagerem": "REM",
    # Unscored, artefact, movement: known labels that carry no stage.
    "?": UNSCORED,
    "sleepstage?": UNSCORED,
    "uns": UNSCORED,
    "unscored": UNSCORED,
    "unsure": UNSCORED,
    "a": UNSCORED,
    "artefact": UNSCORED,
    "artifact": UNSCORED,
    "movement": UNSCORED,
    "movementtime": UNSCORED,
    "mt": UNSCORED,
    "6": UNSCORED,
    "9": UNSCORED,
    "sleepstagen1": "N1",
    "sleepstagen2": "N2",
    "sleepstagen3": "N3",
    "sleepstagen4": "N3",
    "sleepstagerem": "REM",
    "nrem1": "N1",
    "nrem2": "N2",
    "nrem3": "N3",
    "nrem4": "N3",
    "nonrem1": "N1",
    "nonrem2": "N2",
    "nonrem3": "N3",
    "nonrem4": "N3",
    "stage1sleep": "N1",
    "stage2sleep": "N2",
    "stage3sleep": "N3",
    "stage4sleep": "N3",
    "remsleep": "REM",
    "art": UNSCORED,
    "notscored": UNSCORED,
    "unknown": UNSCORED,
    "sleepstageunknown": UNSCORED,
    # BIDS-style (wonambi to_bids, our examples) and Noxturnal (sleep-wake ... sleep-rem) labels.
    "sleepwake": "W",
    "sleepn1": "N1",
    "sleepn2": "N2",
    "sleepn3": "N3",
    "sleeprem": "REM",
    "sleepunscored": UNSCORED,
    "sleepmt": UNSCORED,
    "sleepmovement": UNSCORED,
    "sleepartifact": UNSCORED,
}


def _key(label: str) -> str:
    return re.sub(r"[\s_\-]+", "", label.strip().lower())


def map_stage(label: str) -> tuple[str, bool]:
    """Map a scorer's stage label to the canonical stage.

    Returns
    -------
    (stage, known) : tuple[str, bool]
        ``known`` is False when the label was not recognised; the stage is then ``UNS`` and the
        caller records a warning (a scorer's odd label must never crash the pipeline).
    """
    stage = _STAGE_ALIASES.get(_key(label))
    if stage is None:
        return UNSCORED, False
    return stage, True


# Ordered: the first matching pattern wins (mixed/central/obstructive before plain apnea).
_EVENT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), t)
    for p, t in (
        (r"\bmixed\s*apn", "mixed_apnea"),
        (r"\bcentral\s*apn", "central_apnea"),
        (r"\bobstructive\s*apn", "obstructive_apnea"),
        (r"\bhypopn", "hypopnea"),
        (r"\brera\b|respiratory\s*effort\s*related", "rera"),
        (r"\bapn(o)?ea\b|\bapnoe\b", "apnea"),
        (r"desat", "desaturation"),
        (r"arousal", "arousal"),
        (r"\bp?lm\b|limb\s*movement|leg\s*movement|\bplm", "limb_movement"),
    )
)


def map_event(label: str) -> str:
    """Map an event label to a canonical event type (``other`` when nothing matches).

    ``PLM Arousal (EEG)`` is an arousal (the word arousal wins over the limb-movement cue because
    arousal patterns are checked first among the two).
    """
    text = label.strip()
    for pattern, etype in _EVENT_PATTERNS:
        if pattern.search(text):
            return etype
    return "other"


@dataclass
class Hypnogram:
    """Stages on consecutive fixed-length epochs.

    Attributes
    ----------
    epoch_s : float
        Epoch length in seconds (30 for AASM).
    onset_s : float
        Offset in seconds of epoch 0 from the label file's own start (``LabelSet.start``).
    stages : list[str]
        One canonical stage per epoch (see ``STAGES``).
    native : list[str] | None
        The file's own code per epoch (``SLEEP-MT``, ``Unscored|9``, ``6``...), where the format
        gives one: movement time, artefact and unscored all map to ``UNS`` but stay apart here.
    """

    epoch_s: float = EPOCH_S
    onset_s: float = 0.0
    stages: list[str] = field(default_factory=list)
    native: list[str] | None = None

    def counts(self) -> dict[str, int]:
        """Number of epochs per canonical stage (all six keys present)."""
        out = dict.fromkeys(STAGES, 0)
        for s in self.stages:
            out[s] += 1
        return out


@dataclass
class LabelEvent:
    """One scored event.

    Attributes
    ----------
    type : str
        Canonical event type (see ``EVENT_TYPES``).
    onset_s, duration_s : float
        Seconds from the label file's own start, and length in seconds.
    channel : str
        Channel or scoring signal the event was marked on ("" when unknown).
    nadir : float | None
        SpO2 nadir in % for desaturations when the file gives one.
    label : str
        The original label text.
    stage : str | None
        Canonical sleep stage at the event (one of ``STAGES``) as the scoring software exported
        it (DOMINO event rows carry it after the label), or None when the file does not say
        (older DOMINO exports, NSRR XML, EDF+ annotations): the caller then takes the stage
        from the hypnogram. AASM AHI/RDI count only events during sleep.
    baseline : float | None
        SpO2 baseline (pre-event saturation) in % for desaturations when the file gives one.
    """

    type: str
    onset_s: float
    duration_s: float
    channel: str = ""
    nadir: float | None = None
    label: str = ""
    stage: str | None = None
    baseline: float | None = None

    def __post_init__(self) -> None:
        if self.stage is not None and self.stage not in STAGES:
            raise ValueError(f"event stage {self.stage!r} is not one of {STAGES}")


@dataclass
class LabelSet:
    """Everything parsed from one label file.

    Attributes
    ----------
    start : datetime | None
        Naive local start of the label file (None when the file carries no usable date).
    hypnogram : Hypnogram | None
    events : list[LabelEvent]
    source_kind : str
        The detected kind (``domino_sleep_profile``, ``edf_hypnogram``, ``nsrr_xml`` ...).
    warnings : list[str]
    start_time : datetime.time | None
        Local time of day of the start; known even when the date is not (NSRR ``00.00.00``
        dates, anonymised files). Alignment with the PSG uses only the time of day. Both None:
        the file has no time base (one stage per line, Profusion XML, ELAN ``.hyp``): its epoch 0
        is the PSG's start.
    lights_off_s, lights_on_s : float | None
        Lights off and on in seconds from ``start`` (from the PSG start when ``start`` is
        unknown), where the file marks them.
    """

    start: datetime | None
    hypnogram: Hypnogram | None
    events: list[LabelEvent]
    source_kind: str
    warnings: list[str] = field(default_factory=list)
    start_time: time | None = None
    #: The file is a complete event export that lists no event: a night without scored events
    #: (healthy sleepers have them), not an unread file. Set by the parser that saw the export's
    #: own structure (header and no data row, nothing skipped).
    empty_export: bool = False
    lights_off_s: float | None = None
    lights_on_s: float | None = None

    def __post_init__(self) -> None:
        if self.start_time is None and self.start is not None:
            self.start_time = self.start.time()

    @property
    def start_time_of_day_s(self) -> float | None:
        """Seconds since local midnight of the start, or None when unknown."""
        t = self.start_time
        if t is None:
            return None
        return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6

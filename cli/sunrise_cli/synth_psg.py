"""Write EDF/EDF+/BDF files fast with numpy (synthetic PSG recordings for tests and benchmarks).

The PSG counterpart of ``sunrise_cli.synth`` (the Sunrise night generator); it lives in the CLI
package, not in the psg_prep service image (issue 17).

Samples are generated block by block from a function of time, so an 8-hour, 20-channel,
256-Hz night (~295 MB) is written in a few seconds with bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

Source = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SynthChannel:
    """One ordinary signal: label, rate (Hz), unit, physical range and a sample source.

    ``source(t)`` returns physical values for times ``t`` (seconds from the first sample).
    """

    label: str
    fs: float
    source: Source
    dimension: str = "uV"
    physical_min: float = -500.0
    physical_max: float = 500.0


def _field(value: object, width: int) -> bytes:
    text = str(value)
    if isinstance(value, float):
        text = f"{value:.6g}" if len(f"{value:g}") > width else f"{value:g}"
    raw = text.encode("latin-1")
    if len(raw) > width:
        raise ValueError(f"header value {text!r} does not fit in {width} bytes")
    return raw.ljust(width, b" ")


def write_edf(
    path: str | Path,
    channels: Sequence[SynthChannel],
    n_records: int,
    *,
    record_duration: float = 1.0,
    start: datetime = datetime(2020, 1, 1, 22, 30, 0),
    fmt: str = "EDF",
    plus: str | None = None,
    record_onsets: Sequence[float] | None = None,
    patient: str = "X X X X",
    records_per_block: int = 600,
) -> Path:
    """Write a synthetic EDF/BDF (plain, EDF+C or EDF+D with ``record_onsets``).

    Digital range is the full int16 (EDF) or int24 (BDF) range. For EDF+ an ``EDF Annotations``
    signal with the time-keeping TAL of each record is appended (onsets from ``record_onsets``,
    default contiguous).
    """
    path = Path(path)
    bdf = fmt.upper() == "BDF"
    sample_bytes = 3 if bdf else 2
    dmax = 8388607 if bdf else 32767
    dmin = -8388608 if bdf else -32768
    spr = []
    for ch in channels:
        n = ch.fs * record_duration
        if abs(n - round(n)) > 1e-9:
            raise ValueError(f"{ch.label}: {ch.fs} Hz x {record_duration} s is not an integer sample count")
        spr.append(int(round(n)))
    annot_spr = 0
    if plus is not None:
        annot_spr = 30 if not bdf else 20  # 60 bytes of TAL space per record
    onsets = (
        np.asarray(record_onsets, dtype=float)
        if record_onsets is not None
        else np.arange(n_records) * record_duration
    )
    if len(onsets) != n_records:
        raise ValueError(f"{len(onsets)} record onsets for {n_records} records")
    labels = [c.label for c in channels] + (["EDF Annotations" if not bdf else "BDF Annotations"] if plus else [])
    ns = len(labels)
    dims = [c.dimension for c in channels] + ([""] if plus else [])
    pmins = [c.physical_min for c in channels] + ([-1.0] if plus else [])
    pmaxs = [c.physical_max for c in channels] + ([1.0] if plus else [])
    sprs = spr + ([annot_spr] if plus else [])
    version = b"\xffBIOSEMI" if bdf else b"0       "
    reserved = f"{'BDF' if bdf else 'EDF'}+{plus}" if plus else ("24BIT" if bdf else "")
    recording = f"Startdate {start:%d-%b-%Y}".upper().replace("STARTDATE", "Startdate") + " X X X" if plus else "synthetic"
    head = b"".join(
        [
            version,
            _field(patient, 80),
            _field(recording, 80),
            start.strftime("%d.%m.%y").encode(),
            start.strftime("%H.%M.%S").encode(),
            _field(256 * (ns + 1), 8),
            _field(reserved, 44),
            _field(n_records, 8),
            _field(float(record_duration) if record_duration != int(record_duration) else int(record_duration), 8),
            _field(ns, 4),
        ]
    )
    cols = [
        [_field(lb, 16) for lb in labels],
        [_field("", 80) for _ in labels],
        [_field(d, 8) for d in dims],
        [_field(v, 8) for v in pmins],
        [_field(v, 8) for v in pmaxs],
        [_field(dmin, 8) for _ in labels],
        [_field(dmax, 8) for _ in labels],
        [_field("", 80) for _ in labels],
        [_field(s, 8) for s in sprs],
        [_field("", 32) for _ in labels],
    ]
    head += b"".join(b"".join(c) for c in cols)
    if len(head) != 256 * (ns + 1):
        raise AssertionError("header size")
    gains = [(c.physical_max - c.physical_min) / (dmax - dmin) for c in channels]
    offsets = [c.physical_max - g * dmax for c, g in zip(channels, gains)]
    with open(path, "wb") as f:
        f.write(head)
        for r0 in range(0, n_records, records_per_block):
            k = min(records_per_block, n_records - r0)
            parts = []
            for ch, s, g, o in zip(channels, spr, gains, offsets):
                t0 = r0 * record_duration
                t = t0 + np.arange(k * s) / ch.fs
                phys = np.asarray(ch.source(t), dtype=np.float64)
                dig = np.clip(np.round((phys - o) / g), dmin, dmax).astype(np.int32).reshape(k, s)
                parts.append(_encode(dig, sample_bytes))
            if plus:
                tal = np.zeros((k, annot_spr * sample_bytes), dtype=np.uint8)
                for i in range(k):
                    b = f"+{onsets[r0 + i]:g}\x14\x14\x00".encode()
                    tal[i, : len(b)] = np.frombuffer(b, dtype=np.uint8)
                parts.append(tal)
            f.write(np.concatenate(parts, axis=1).tobytes())
    return path


def _encode(dig: np.ndarray, sample_bytes: int) -> np.ndarray:
    if sample_bytes == 2:
        return dig.astype("<i2").view(np.uint8).reshape(dig.shape[0], -1)
    u = dig.astype("<i4").view(np.uint8).reshape(dig.shape[0], dig.shape[1], 4)[..., :3]
    return np.ascontiguousarray(u).reshape(dig.shape[0], -1)


def psg_sources(seed: int = 0) -> dict[str, Source]:
    """Plausible deterministic sources per channel kind (sums of sines plus seeded noise)."""

    def noise(t: np.ndarray, scale: float, salt: int) -> np.ndarray:
        # Deterministic in t (block-independent): hash of the sample time.
        idx = np.round(t * 1024).astype(np.int64) * 2654435761 + salt * 97 + seed
        return ((idx % 10007) / 10007.0 - 0.5) * 2 * scale

    return {
        "eeg": lambda t: 40 * np.sin(2 * np.pi * 10 * t) + 30 * np.sin(2 * np.pi * 1.5 * t) + noise(t, 20, 1),
        "eog": lambda t: 80 * np.sin(2 * np.pi * 0.5 * t) + noise(t, 10, 2),
        "emg": lambda t: 20 * np.sin(2 * np.pi * 60 * t) + 15 * np.sin(2 * np.pi * 35 * t) + noise(t, 10, 3),
        "ecg": lambda t: 500 * (np.sin(2 * np.pi * 1.1 * t) > 0.98) + noise(t, 20, 4),
        "resp": lambda t: 200 * np.sin(2 * np.pi * 0.25 * t) + noise(t, 5, 5),
        "spo2": lambda t: 95 + 2 * np.sin(2 * np.pi * t / 120),
        "pulse": lambda t: 60 + 5 * np.sin(2 * np.pi * t / 300),
        "position": lambda t: (t // 3600) % 4,
    }

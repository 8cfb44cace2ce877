"""Baselines for psg_prep, each meant to run as a whole process (imports included).

``python -m benchmarks.psg_baselines MODE SRC OUT_DIR`` processes the EDF ``SRC`` and writes
``OUT_DIR/signals.npz`` (float32 per channel, at 100 Hz); it prints one JSON line with the
stage times measured inside the process. The caller times the process as a whole (wall, CPU of
the child, peak RSS), so interpreter start and imports count on both sides, as for
``python -m benchmarks.child psg_ours``.

Modes (issue 14: "the best competent script ... written as a skilled user would"):

- ``competent``: edfio reads the file (its signals decoded one at a time, float64), then per
  channel ``scipy.signal.resample_poly(x, 25, 64)`` to 100 Hz and a zero-phase 4th-order
  Butterworth 0.3-35 Hz band-pass at 100 Hz (``sosfiltfilt``), stored as float32: resampling
  first so the IIR runs at the low rate, the strongest ordering a skilled user picks
  (pyedflib is not installed here; edfio is the maintained pure-Python reader).
- ``competent_filter_first``: the same, band-pass at the input rate, then ``resample_poly``.
- ``mne_polyphase``: ``mne.io.read_raw_edf(preload=True)`` + FIR ``filter(0.3, 35)`` +
  ``resample(100, method="polyphase")``, saved the same way.
- ``io_floor``: the I/O floor, read every data record and convert every signal's int16
  samples to float32 physical values (gain, offset), nothing else: numpy only.

All baselines apply one EEG-style treatment to every channel, which is less work than psg_prep
(per-type bands and rates, notch, quality flags, units, EDF+D gaps); a ratio against them
flatters them, not psg_prep.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

TARGET_HZ = 100
BAND_HZ = (0.3, 35.0)


def _save(out_dir: Path, arrays: dict) -> None:
    import numpy as np

    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "signals.npz", **arrays)


def competent(src: Path, out_dir: Path, resample_first: bool = True) -> dict:
    """edfio + scipy ``resample_poly`` + ``sosfiltfilt``, channel by channel."""
    from fractions import Fraction

    import edfio
    import numpy as np
    from scipy import signal as sps

    t0 = time.perf_counter()
    edf = edfio.read_edf(src, lazy_load_data=True)
    arrays, t_read, t_dsp = {}, 0.0, 0.0
    for i, sig in enumerate(edf.signals):
        ta = time.perf_counter()
        x = sig.data  # float64 physical values, decoded now
        tb = time.perf_counter()
        fs = sig.sampling_frequency
        ratio = Fraction(TARGET_HZ, 1) / Fraction(fs).limit_denominator(1000)
        up, down = ratio.numerator, ratio.denominator
        if resample_first:
            y = sps.resample_poly(x, up, down) if fs > TARGET_HZ else x
            y = sps.sosfiltfilt(sps.butter(4, BAND_HZ, "bandpass", fs=min(fs, TARGET_HZ), output="sos"), y)
        else:
            y = sps.sosfiltfilt(sps.butter(4, BAND_HZ, "bandpass", fs=fs, output="sos"), x)
            y = sps.resample_poly(y, up, down) if fs > TARGET_HZ else y
        arrays[f"ch{i:02d}"] = y.astype(np.float32)
        t_read += tb - ta
        t_dsp += time.perf_counter() - tb
    t1 = time.perf_counter()
    _save(out_dir, arrays)
    return {"read_s": t_read, "dsp_s": t_dsp, "open_s": t1 - t0 - t_read - t_dsp, "save_s": time.perf_counter() - t1}


def mne_polyphase(src: Path, out_dir: Path) -> dict:
    """MNE with polyphase resampling instead of its default FFT resampling."""
    import mne
    import numpy as np

    t0 = time.perf_counter()
    raw = mne.io.read_raw_edf(src, preload=True, verbose=False)
    t1 = time.perf_counter()
    raw.filter(*BAND_HZ, n_jobs=1, verbose=False)
    t2 = time.perf_counter()
    raw.resample(TARGET_HZ, method="polyphase", verbose=False)
    t3 = time.perf_counter()
    data = raw.get_data().astype(np.float32)
    _save(out_dir, {f"ch{i:02d}": row for i, row in enumerate(data)})
    return {"read_s": t1 - t0, "filter_s": t2 - t1, "resample_s": t3 - t2, "save_s": time.perf_counter() - t3}


def io_floor(src: Path, out_dir: Path, records_per_block: int = 300) -> dict:
    """Read all data records and convert every signal to float32 physical values; numpy only.

    EDF header fields (ASCII, fixed width): 256-byte main header with the header size at
    184-192, the number of records at 236-244 and of signals at 252-256, then per signal
    16-char labels ... physical min/max, digital min/max and samples per record.
    """
    import numpy as np

    t0 = time.perf_counter()
    with open(src, "rb") as f:
        main = f.read(256)
        header_bytes, n_records, ns = int(main[184:192]), int(main[236:244]), int(main[252:256])
        rest = f.read(header_bytes - 256)

        def field(offset: int, width: int) -> list[str]:
            return [rest[offset + i * width : offset + (i + 1) * width].decode("ascii").strip() for i in range(ns)]

        widths = [16, 80, 8, 8, 8, 8, 8, 80, 8, 32]
        starts = np.cumsum([0, *[w * ns for w in widths]])
        pmin, pmax, dmin, dmax = (np.array(field(int(starts[k]), 8), dtype=float) for k in (3, 4, 5, 6))
        spr = np.array(field(int(starts[8]), 8), dtype=int)
        gain = (pmax - pmin) / (dmax - dmin)
        offset = pmin - gain * dmin
        bounds = np.r_[0, np.cumsum(spr)]
        total = 0
        while True:
            block = np.fromfile(f, dtype="<i2", count=records_per_block * int(bounds[-1]))
            if block.size == 0:
                break
            recs = block.reshape(-1, int(bounds[-1]))
            for s in range(ns):
                x = recs[:, bounds[s] : bounds[s + 1]].astype(np.float32)
                x *= np.float32(gain[s])
                x += np.float32(offset[s])
                total += x.size
    return {"read_convert_s": time.perf_counter() - t0, "samples": total, "records": n_records}


MODES = {
    "competent": competent,
    "competent_filter_first": lambda src, out: competent(src, out, resample_first=False),
    "mne_polyphase": mne_polyphase,
    "io_floor": io_floor,
}


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] not in MODES:
        raise SystemExit(f"usage: python -m benchmarks.psg_baselines {{{','.join(MODES)}}} SRC OUT_DIR")
    t0 = time.perf_counter()
    extra = MODES[argv[0]](Path(argv[1]), Path(argv[2]))
    print(json.dumps({"task": argv[0], "work_s": time.perf_counter() - t0, **extra}))


if __name__ == "__main__":
    main(sys.argv[1:])

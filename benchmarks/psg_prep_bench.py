"""psg_prep against the naive MNE baseline on an 8-hour, 20-channel, 256-Hz night.

Each measurement runs in a fresh subprocess so that peak RSS (``ru_maxrss``) belongs to that
run alone. Usage::

    uv run python benchmarks/psg_prep_bench.py            # make the file, run both, print JSON
    uv run python benchmarks/psg_prep_bench.py make PATH [HOURS]
    uv run python benchmarks/psg_prep_bench.py baseline PATH
    uv run python benchmarks/psg_prep_bench.py ours PATH OUT_DIR

The design's reference conditions pin everything to one core (``taskset -c 0``, BLAS/OpenMP
threads 1); ``main`` does the same for both runs when ``taskset`` exists.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LABELS = [
    "EEG F3-M2", "EEG F4-M1", "EEG C3-M2", "EEG C4-M1", "EEG O1-M2", "EEG O2-M1",
    "EOG E1-M2", "EOG E2-M2", "EMG Chin", "Leg L", "Leg R", "ECG",
    "SpO2", "Pulse", "Thermistor", "Nasal Pressure", "Thorax", "Abdomen", "Position", "Snore",
]


def make_big_psg(path: str | Path, hours: float = 8, n_channels: int = 20, fs: int = 256) -> Path:
    """Write a synthetic PSG EDF (1-s records, all channels at ``fs``) fast with numpy.

    20 x 256 Hz x 8 h is 294,917,376 bytes (reference/science.md 5.1).
    """
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "psg_prep"))
    from psg_prep.synthetic import SynthChannel, psg_sources, write_edf

    src = psg_sources()
    kinds = ["eeg"] * 6 + ["eog"] * 2 + ["emg"] * 3 + ["ecg", "spo2", "pulse"] + ["resp"] * 4 + ["position", "emg"]
    ranges = {"spo2": (0.0, 100.0, "%"), "pulse": (0.0, 250.0, "bpm"), "position": (0.0, 10.0, "")}
    channels = []
    for i in range(n_channels):
        kind = kinds[i % len(kinds)]
        label = LABELS[i] if i < len(LABELS) else f"EEG X{i}"
        lo, hi, dim = ranges.get(kind, (-1000.0, 1000.0, "uV"))
        channels.append(SynthChannel(label, fs, src[kind], dim, lo, hi))
    del np
    return write_edf(path, channels, int(hours * 3600), record_duration=1.0, records_per_block=300)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    """CPU seconds of this process (all threads): robust to other load on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_baseline(path: str | Path) -> dict:
    """MNE: read_raw_edf(preload=True) + FIR band-pass 0.3-35 Hz + resample to 100 Hz (default)."""
    import mne

    c0 = _cpu_s()
    t0 = time.perf_counter()
    raw = mne.io.read_raw_edf(path, preload=True, verbose=False)
    t1 = time.perf_counter()
    raw.filter(0.3, 35.0, n_jobs=1, verbose=False)
    t2 = time.perf_counter()
    raw.resample(100, verbose=False)
    t3 = time.perf_counter()
    return {"run": "baseline", "seconds": t3 - t0, "cpu_s": _cpu_s() - c0, "read_s": t1 - t0, "filter_s": t2 - t1,
            "resample_s": t3 - t2, "peak_rss_mb": _peak_rss_mb()}


def run_ours(path: str | Path, out_dir: str | Path, workers: int | None = None) -> dict:
    """psg_prep.prepare_psg on the same file (all channels, per-type filters and rates)."""
    from psg_prep.prepare import prepare_psg

    c0 = _cpu_s()
    t0 = time.perf_counter()
    meta = prepare_psg(Path(path), [], Path(out_dir), workers=workers)
    t1 = time.perf_counter()
    return {"run": "ours", "seconds": t1 - t0, "cpu_s": _cpu_s() - c0, "workers": workers,
            "channels": len(meta["channels"]), "peak_rss_mb": _peak_rss_mb()}


def _subprocess(args: list[str], pin: bool = True) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    cmd = [sys.executable, __file__, *args]
    if pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str], repeats: int = 2) -> None:
    if argv and argv[0] == "make":
        t0 = time.perf_counter()
        p = make_big_psg(argv[1], float(argv[2]) if len(argv) > 2 else 8)
        print(json.dumps({"run": "make", "seconds": time.perf_counter() - t0, "bytes": p.stat().st_size}))
        return
    if argv and argv[0] == "baseline":
        print(json.dumps(run_baseline(argv[1])))
        return
    if argv and argv[0] == "ours":
        print(json.dumps(run_ours(argv[1], argv[2], int(argv[3]) if len(argv) > 3 else None)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.edf"
        print(json.dumps(_subprocess(["make", str(path)])), flush=True)
        ours, base, two = [], [], []
        for i in range(repeats):
            ours.append(_subprocess(["ours", str(path), str(Path(tmp) / f"out{i}"), "1"]))
            base.append(_subprocess(["baseline", str(path)]))
            two.append(_subprocess(["ours", str(path), str(Path(tmp) / f"two{i}"), "2"], pin=False))
            for r in (ours[-1], base[-1], two[-1]):
                print(json.dumps(r), flush=True)
        summary = {
            "ours_1core_best_s": min(r["seconds"] for r in ours),
            "ours_1core_best_cpu_s": min(r["cpu_s"] for r in ours),
            "ours_2threads_best_s": min(r["seconds"] for r in two),
            "baseline_1core_best_s": min(r["seconds"] for r in base),
            "baseline_1core_best_cpu_s": min(r["cpu_s"] for r in base),
            "ours_peak_rss_mb": max(r["peak_rss_mb"] for r in ours + two),
            "baseline_peak_rss_mb": max(r["peak_rss_mb"] for r in base),
        }
        summary["speedup_1core_wall"] = summary["baseline_1core_best_s"] / summary["ours_1core_best_s"]
        summary["speedup_1core_cpu"] = summary["baseline_1core_best_cpu_s"] / summary["ours_1core_best_cpu_s"]
        summary["speedup_2threads_wall"] = summary["baseline_1core_best_s"] / summary["ours_2threads_best_s"]
        summary["memory_ratio"] = summary["ours_peak_rss_mb"] / summary["baseline_peak_rss_mb"]
        print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])

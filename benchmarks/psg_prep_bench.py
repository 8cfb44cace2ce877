"""psg_prep against its baselines on an 8-hour, 20-channel, 256-Hz night (issue 14).

Every variant runs as a whole process (interpreter start and imports included on both sides),
unpinned (both cores) and with no thread settings forced: psg_prep (default threads and one
thread), the best competent script and MNE with polyphase resampling
(``benchmarks/psg_baselines.py``), MNE naive (``run_baseline``) and the I/O floor. Usage::

    uv run python benchmarks/psg_prep_bench.py            # make the file, measure all, print JSON
    uv run python benchmarks/psg_prep_bench.py make PATH [HOURS]
    uv run python benchmarks/psg_prep_bench.py measure PATH [REPEATS [VARIANT ...]]
    uv run python benchmarks/psg_prep_bench.py baseline PATH            # MNE naive, in-process
    uv run python benchmarks/psg_prep_bench.py ours PATH OUT_DIR [WORKERS]
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

    20 x 256 Hz x 8 h is 294,917,376 bytes (docs/reference/science.md 5.1).
    """
    import numpy as np

    from sunrise_cli.synth_psg import SynthChannel, psg_sources, write_edf

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


ROOT = Path(__file__).resolve().parents[1]


def whole_process(cmd: list[str]) -> dict:
    """Run ``cmd`` to completion: wall time from fork to exit (interpreter start and imports
    included), the child's own CPU seconds and peak RSS (``os.wait4``), its last JSON line."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd} failed ({proc.returncode}): {err.read()[-2000:]}")
        lines = [ln for ln in out.read().strip().splitlines() if ln.startswith("{")]
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024.0,
            **(json.loads(lines[-1]) if lines else {})}


# The variants of issue 14, same night, whole processes, no thread settings forced (what each
# gets as deployed), run in a rotating order so none is always first (cold caches).
VARIANTS = {
    "psg_prep": lambda src, out: [sys.executable, __file__, "ours", src, out],
    "psg_prep_1thread": lambda src, out: [sys.executable, __file__, "ours", src, out, "1"],
    "competent": lambda src, out: [sys.executable, "-m", "benchmarks.psg_baselines", "competent", src, out],
    "mne_polyphase": lambda src, out: [sys.executable, "-m", "benchmarks.psg_baselines", "mne_polyphase", src, out],
    "mne_naive": lambda src, out: [sys.executable, __file__, "baseline", src],
    "io_floor": lambda src, out: [sys.executable, "-m", "benchmarks.psg_baselines", "io_floor", src, out],
}


def measure(src: Path, tmp: Path, repeats: int, only: list[str] | None = None) -> dict:
    """Each variant ``repeats`` times in a fresh process; min/median/max per figure."""
    import statistics

    keys = only or list(VARIANTS)
    runs: dict[str, list[dict]] = {k: [] for k in keys}
    for i in range(repeats):
        order = keys[i % len(keys):] + keys[: i % len(keys)]
        for k in order:
            out = tmp / f"{k}{i}"
            out.mkdir(parents=True, exist_ok=True)
            r = whole_process(VARIANTS[k](str(src), str(out)))
            r["load1"] = os.getloadavg()[0]
            shutil.rmtree(out, ignore_errors=True)
            runs[k].append(r)
            print(json.dumps({"variant": k, **r}), flush=True)

    def stat(values: list[float]) -> dict:
        return {"min": min(values), "median": statistics.median(values), "max": max(values)}

    summary = {k: {f: stat([r[f] for r in v]) for f in ("wall_s", "cpu_s", "peak_rss_mb")} for k, v in runs.items()}
    med = {k: summary[k]["wall_s"]["median"] for k in summary}
    goals = {}
    if "psg_prep" in med:
        for base, limit in (("competent", 1 / 3), ("mne_naive", 1 / 10)):
            if base in med:
                ratio = med["psg_prep"] / med[base]
                goals[f"psg_prep / {base} <= {limit:.3g}"] = {"ratio": ratio, "met": ratio <= limit}
        if "io_floor" in med:
            ratio = med["psg_prep"] / med["io_floor"]
            goals["psg_prep / io_floor <= 1.5"] = {"ratio": ratio, "met": ratio <= 1.5}
        peak = summary["psg_prep"]["peak_rss_mb"]["max"]
        goals["psg_prep peak RSS <= 160 MB"] = {"mb": peak, "met": peak <= 160}
    return {"runs": runs, "summary": summary, "goals": goals}


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
    if argv and argv[0] == "measure":  # measure SRC [REPEATS [VARIANT ...]]
        with tempfile.TemporaryDirectory() as tmp:
            res = measure(Path(argv[1]), Path(tmp), int(argv[2]) if len(argv) > 2 else repeats, argv[3:] or None)
        print(json.dumps({"summary": res["summary"], "goals": res["goals"]}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.edf"
        print(json.dumps(_subprocess(["make", str(path)])), flush=True)
        res = measure(path, Path(tmp), repeats)
        print(json.dumps({"summary": res["summary"], "goals": res["goals"]}))


if __name__ == "__main__":
    main(sys.argv[1:])

"""One measured task in a fresh process: ``python -m benchmarks.child TASK ARG...``.

The harness times the whole process from outside (``benchmarks/whole.py``: spawn to exit,
imports included). The JSON line printed here adds what only the inside can tell: the time
of the work without the imports, and the task's own step times.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def _usage() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024.0


# Each task imports what it needs, then returns the work (timed apart from the imports).
def task_psg_ours(src: str, out: str):
    from psg_prep.prepare import prepare_psg

    Path(out).mkdir(parents=True, exist_ok=True)
    return lambda: {"channels": len(prepare_psg(Path(src), [], Path(out))["channels"])}


def task_psg_baseline(src: str):
    import mne

    from benchmarks.psg_prep_bench import run_baseline

    del mne  # imported before timing
    return lambda: {k: v for k, v in run_baseline(src).items() if k in ("read_s", "filter_s", "resample_s")}


def task_sunrise_algo(sunrise_edf: str, out: str):
    from sunalgo.run import run_sunalgo
    from sunrise_night.prepare import prepare_sunrise

    prep, res = Path(out) / "prep", Path(out) / "res"
    prep.mkdir(parents=True, exist_ok=True)
    res.mkdir(parents=True, exist_ok=True)

    def work() -> dict:
        t0 = time.perf_counter()
        prepare_sunrise(Path(sunrise_edf), prep)
        t1 = time.perf_counter()
        run_sunalgo(prep, None, res)
        return {"sunrise_prep_s": t1 - t0, "sunalgo_s": time.perf_counter() - t1}

    return work


TASKS = {"psg_ours": task_psg_ours, "psg_baseline": task_psg_baseline, "sunrise_algo": task_sunrise_algo}


def main(argv: list[str]) -> None:
    work = TASKS[argv[0]](*argv[1:])
    cpu0, _ = _usage()
    t0 = time.perf_counter()
    extra = work()
    wall = time.perf_counter() - t0
    cpu1, rss = _usage()
    print(json.dumps({"task": argv[0], "wall_s": wall, "cpu_s": cpu1 - cpu0, "peak_rss_mb": rss, **extra}))


if __name__ == "__main__":
    main(sys.argv[1:])

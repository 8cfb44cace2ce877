"""One measured task in a fresh process: prints a JSON line with wall and CPU seconds and peak RSS.

``python -m benchmarks.child TASK ARG...``. A fresh process per measurement makes the peak RSS
(``ru_maxrss``) that task's alone.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import time
from pathlib import Path


def _usage() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024.0


# Each task imports what it needs, then returns the work to time (imports are not timed).
def task_copy(src: str, dst: str):
    def work() -> dict:
        with open(src, "rb") as f, open(dst, "wb") as g:
            shutil.copyfileobj(f, g, 8 << 20)
        return {"bytes": Path(src).stat().st_size}

    return work


def task_anonymise(src: str, dst: str):
    from sunrise_common.edf import anonymise_edf

    def work() -> dict:
        size = Path(src).stat().st_size
        with open(src, "rb") as f, open(dst, "wb") as g:
            anonymise_edf(f, g, size)
        return {"bytes": size}

    return work


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
    from sunrise_prep.prepare import prepare_sunrise

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


TASKS = {"copy": task_copy, "anonymise": task_anonymise, "psg_ours": task_psg_ours,
         "psg_baseline": task_psg_baseline, "sunrise_algo": task_sunrise_algo}


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

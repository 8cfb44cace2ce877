"""Time whole processes: from spawn to exit, interpreter start and imports included.

Every figure of ``make bench`` that compares us with a baseline is measured this way on both
sides, so an import that one side pays lazily inside its work cannot hide on the other side.
CPU seconds come from ``wait4`` (the process, its threads and its waited-for children). Peak
RSS comes from GNU ``time`` wrapped around the command: Linux starts a child's ``ru_maxrss`` at
the RSS of the process that forked it, so the harness (hundreds of MB) cannot read it itself,
while ``time`` (2 MB) forks the command afresh.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_process(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT) -> dict:
    """Run ``cmd`` to completion; wall seconds from spawn to exit, CPU seconds, peak RSS (MB).

    The last stdout line, when it is a JSON object, is returned under ``"out"`` (what the child
    measured inside itself, e.g. the split between its steps).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss:
        run = [GNU_TIME, "-f", "%M", "-o", rss.name, *cmd] if GNU_TIME else cmd
        t0 = time.perf_counter()
        proc = subprocess.Popen(run, env=env, cwd=cwd, stdout=out, stderr=err)
        # wait4, not Popen.wait: it also returns the child's own CPU time and peak RSS.
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        code = proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        peak_kb = float(rss.read().split()[-1]) if GNU_TIME else usage.ru_maxrss
    if code != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited with {code}:\n{stderr[-3000:]}")
    lines = stdout.strip().splitlines()
    parsed = None
    if lines:
        try:
            parsed = json.loads(lines[-1])
        except ValueError:
            parsed = None
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": peak_kb / 1024.0,
            "out": parsed if isinstance(parsed, dict) else None}


def python(*args: str) -> list[str]:
    """The command of this interpreter running ``args`` (``-m module ...``)."""
    return [sys.executable, *args]


def stat(values: list[float]) -> dict:
    """min / median / max / n of a list of measurements."""
    if not values:
        raise ValueError("no measurements")
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1): with 10 values, p95 is the largest."""
    ordered = sorted(values)
    rank = max(1, -(-int(round(q * 1000)) * len(ordered) // 1000))
    return ordered[min(len(ordered), rank) - 1]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]

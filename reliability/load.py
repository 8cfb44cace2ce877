"""CPU hogs for the loaded runs of the reliability scenarios (issue 13).

CI machines and laptops are loaded and Cloud Run instances are throttled; the delivery guarantees
must hold anyway. :func:`cpu_hogs` starts ``n`` processes that spin on the CPU for as long as the
``with`` block lasts (each in its own process group) and always stops them, whatever happens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator

# A busy loop in a fresh interpreter: no imports, no I/O, 100 % of one core.
_SPIN = "while True:\n    pass\n"


@contextmanager
def cpu_hogs(n: int = 2) -> Iterator[list[subprocess.Popen]]:
    """``n`` busy processes beside whatever runs in the block (n = 0: none)."""
    if n < 0:
        raise ValueError(f"the number of CPU hogs must be >= 0, got {n}")
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", _SPIN], start_new_session=True,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        yield procs
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in procs:
            proc.wait(timeout=30)


def running(procs: list[subprocess.Popen]) -> bool:
    """Every hog is still spinning (none died: the load was really there)."""
    return all(p.poll() is None for p in procs)

"""glibc malloc settings for psg_prep's block processing (Linux/glibc only; a no-op elsewhere).

Every processing block allocates and frees MB-sized temporaries (the decoded chunk, the float64
polyphase and filter buffers). glibc serves allocations above its (dynamic) mmap threshold with
fresh ``mmap``s and unmaps them at ``free``, so every block page-faults its memory in again:
~290,000 minor faults and ~0.45 CPU-s of kernel time on the 8-h, 20-channel, 256-Hz night
(measured with ``/usr/bin/time``). Serving them from the heap (mmap threshold 32 MB, trim
threshold 128 MB) cuts the faults ~10x; one arena keeps the worker threads from each holding a
heap of freed blocks (it added 6 MB to the peak with two workers; the freed memory is reused
by the next block, so the peak stays flat in night length).

These are process-wide settings, so library code (``prepare_psg``) never applies them: the
process's entry point does, once at startup. That is the service (``psg_prep/main.py``) and the
benchmark entry points that run psg_prep as a whole process (``benchmarks/psg_prep_bench.py``
``ours``, ``benchmarks/child.py`` ``psg_ours``), so the measured process is configured exactly
as the service is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

SETTINGS = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 128 << 20), (M_ARENA_MAX, 1))

_done = False


def tune_malloc() -> bool:
    """Apply ``SETTINGS`` once per process; True when glibc accepted all of them."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = all(mallopt(param, value) == 1 for param, value in SETTINGS)
    return _done

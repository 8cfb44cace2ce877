"""The harness's process timer: whole processes, the child's own peak RSS and CPU, its JSON line."""

from __future__ import annotations

import sys

import pytest

from benchmarks.whole import GNU_TIME, percentile, python, run_process


@pytest.mark.skipif(GNU_TIME is None, reason="GNU time is not installed")
def test_peak_rss_is_the_childs_own_not_the_harnesss():
    # Linux starts a forked child's ru_maxrss at its parent's RSS: a 300 MB harness must not
    # make a 10 MB child look like 300 MB.
    ballast = bytearray(300 << 20)
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])  # touch every page so it is resident
    small = run_process(python("-c", "pass"))
    big = run_process(python("-c", "b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096])"))
    del ballast
    assert small["peak_rss_mb"] < 100
    assert 200 < big["peak_rss_mb"] < 300


def test_cpu_seconds_are_the_childs_and_the_last_json_line_is_returned():
    r = run_process(python("-c", "import json, time\n"
                                 "t = time.process_time()\n"
                                 "while time.process_time() - t < 0.3: pass\n"
                                 "print('progress')\nprint(json.dumps({'done': True}))"))
    assert r["cpu_s"] >= 0.3
    assert r["wall_s"] >= r["cpu_s"] * 0.9  # one thread: the wall clock covers its CPU time
    assert r["out"] == {"done": True}


def test_a_failing_process_raises_with_its_stderr():
    with pytest.raises(RuntimeError, match="boom"):
        run_process([sys.executable, "-c", "import sys; sys.exit('boom')"])


def test_percentile_is_nearest_rank():
    assert percentile(list(range(1, 11)), 0.95) == 10
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile(list(range(1, 41)), 0.95) == 38
    assert percentile([7.0], 0.95) == 7.0

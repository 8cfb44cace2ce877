"""The warm benchmark: nights timed after one untimed night in the same process, and memory per
request counted as Cloud Run counts it (RSS plus the scratch bytes, the staged input included)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import warm
from benchmarks.psg_prep_bench import make_big_psg


def test_the_first_night_warms_the_process_and_only_the_nights_after_it_are_timed(tmp_path, monkeypatch):
    calls: list[Path] = []

    def factory():
        return lambda src, out: calls.append(out)

    monkeypatch.setitem(warm.VARIANTS, "counting", factory)
    src = tmp_path / "in.bin"
    src.write_bytes(b"x" * 10)
    result = warm.measure("counting", src, 2)
    assert len(calls) == 3 and len(result["runs"]) == 2
    assert result["tmp_mb"] == 0  # not a stage that downloads its input, and it wrote nothing


def test_ingest_per_request_memory_keeps_nothing_in_tmp(tmp_path):
    src = make_big_psg(tmp_path / "psg.edf", hours=0.02)
    result = warm.measure("ingest", src, 1)
    assert result["tmp_mb"] == 0  # streamed from the raw object into its bucket (issue 26)
    assert result["request_mb"] == result["peak_rss_mb"] + result["tmp_mb"]
    assert result["cpu_s"] > 0 and len(result["runs"]) == 1

"""prepare_psg's worker lanes: an error in a lane thread reaches the caller (no hang, no
partial signals.npz), and a truncated file fails as a PrepError with no lane left running."""

from __future__ import annotations

import threading

import pytest

import psg_prep.filters as filters
from psg_prep.errors import PrepError
from psg_prep.prepare import prepare_psg


def _lane_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "psg-lane"]


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_in_a_lane_reaches_the_caller_and_the_lanes_stop(corpus, tmp_path, monkeypatch, workers):
    calls = {"n": 0}
    original = filters.StreamProcessor.push

    def failing_push(self, x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom in a lane")
        return original(self, x)

    monkeypatch.setattr(filters.StreamProcessor, "push", failing_push)
    with pytest.raises(RuntimeError, match="boom in a lane"):
        prepare_psg(corpus / "edf/edfio__short_psg.edf", [], tmp_path / "out", workers=workers, chunk_seconds=60.0)
    assert not (tmp_path / "out" / "signals.npz").exists()
    assert _lane_threads() == []


def test_a_truncated_file_fails_as_a_prep_error_with_two_lanes(corpus, tmp_path):
    data = (corpus / "edf/edfio__short_psg.edf").read_bytes()
    bad = tmp_path / "truncated.edf"
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(PrepError):
        prepare_psg(bad, [], tmp_path / "out", workers=2, chunk_seconds=60.0)
    assert _lane_threads() == []

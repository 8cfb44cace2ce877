"""glibc malloc settings are process-wide: applied by entry points, never by prepare_psg."""

import importlib
import sys

import psg_prep.alloc as alloc


def test_prepare_psg_does_not_tune_malloc():
    import psg_prep.prepare as prepare

    assert "tune_malloc" not in vars(prepare)
    assert "tune_malloc" not in open(prepare.__file__).read()


def test_service_entry_point_tunes_malloc_at_startup(monkeypatch):
    calls = []
    monkeypatch.setattr(alloc, "tune_malloc", lambda: calls.append(1) or True)
    monkeypatch.delitem(sys.modules, "psg_prep.main", raising=False)
    importlib.import_module("psg_prep.main")
    assert calls == [1]
    monkeypatch.delitem(sys.modules, "psg_prep.main", raising=False)


def test_benchmark_entry_points_tune_malloc(monkeypatch, tmp_path):
    from benchmarks import child, psg_prep_bench

    calls = []
    monkeypatch.setattr(alloc, "tune_malloc", lambda: calls.append(1) or True)
    child.task_psg_ours(str(tmp_path / "x.edf"), str(tmp_path / "out"))  # returns the work, not run
    assert calls == [1]
    monkeypatch.setattr(psg_prep_bench, "run_ours", lambda *a: {"run": "ours"})
    psg_prep_bench.main(["ours", "x.edf", str(tmp_path)])
    assert calls == [1, 1]

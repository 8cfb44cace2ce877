"""psg_prep.npzfile.NpzWriter writes what numpy.savez writes, with members filled in any order
from several threads; a member of the wrong length fails and leaves no file."""

from __future__ import annotations

import threading
import zipfile

import numpy as np
import pytest

from psg_prep.npzfile import NpzWriter


def _arrays():
    rng = np.random.default_rng(0)
    return {"EEG_C3": rng.standard_normal(100_003).astype(np.float32), "SpO2": np.arange(7, dtype=np.float32),
            "empty": np.zeros(0, dtype=np.float32), "gap": np.array([1.0, np.nan, 2.0], dtype=np.float32)}


def test_members_written_interleaved_from_threads_load_as_numpy_savez(tmp_path):
    arrays = _arrays()
    w = NpzWriter(tmp_path / "s.npz", [(k, len(v)) for k, v in arrays.items()])

    def feed(j, v):
        member = w.member(j)
        for i in range(0, len(v), 997):
            member.write(v[i : i + 997])

    threads = [threading.Thread(target=feed, args=(j, v)) for j, v in enumerate(arrays.values())]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    with zipfile.ZipFile(tmp_path / "s.npz") as zf:
        assert zf.testzip() is None  # every member's CRC-32
        assert zf.namelist() == [f"{k}.npy" for k in arrays]
    got = np.load(tmp_path / "s.npz")
    for k, v in arrays.items():
        assert got[k].dtype == np.float32 and np.array_equal(got[k], v, equal_nan=True)
    np.savez(tmp_path / "ref.npz", **arrays)
    ref = np.load(tmp_path / "ref.npz")
    for k in arrays:
        assert zipfile.ZipFile(tmp_path / "s.npz").read(f"{k}.npy") == zipfile.ZipFile(tmp_path / "ref.npz").read(f"{k}.npy")
        assert np.array_equal(ref[k], got[k], equal_nan=True)
    assert not (tmp_path / "s.npz.partial").exists()


def test_pad_to_fills_with_nan(tmp_path):
    w = NpzWriter(tmp_path / "s.npz", [("x", 5)])
    m = w.member(0)
    m.write(np.ones(2, dtype=np.float32))
    m.pad_to(5)
    w.close()
    assert np.array_equal(np.load(tmp_path / "s.npz")["x"], [1, 1, np.nan, np.nan, np.nan], equal_nan=True)


@pytest.mark.parametrize("n_written", [3, 5])
def test_a_member_of_the_wrong_length_fails_and_leaves_no_file(tmp_path, n_written):
    w = NpzWriter(tmp_path / "s.npz", [("x", 4)])
    m = w.member(0)
    with pytest.raises(ValueError):
        m.write(np.ones(n_written, dtype=np.float32))
        w.close()
    w.abort()
    assert list(tmp_path.iterdir()) == []

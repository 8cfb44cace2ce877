"""psg_prep.npzfile.NpzWriter writes what numpy.savez writes, with members filled in any order
from several threads; a member of the wrong length fails and leaves no file."""

from __future__ import annotations

import threading
import zipfile

import numpy as np
import pytest

from psg_prep.errors import PrepError
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
    with pytest.raises(PrepError) as exc:
        m.write(np.ones(n_written, dtype=np.float32))
        w.close()
    assert exc.value.reason == "internal_length_mismatch"
    assert f"{n_written} samples produced, 4 predicted" in exc.value.detail
    w.abort()
    assert list(tmp_path.iterdir()) == []


# output_lengths predicts what the processing writes (NpzWriter fails on any difference):
# per-type plans at the rates PSGs come in, record durations that are not whole seconds or
# not 1 s, odd record counts, and an EDF+D layout with gaps and a non-integer gap onset.
_RATES_AND_RECORDS = [(125, 0.2, 151), (128, 0.5, 61), (200, 2.5, 13), (250, 3.0, 11), (256, 0.25, 123),
                      (500, 1.5, 21), (512, 0.125, 241)]


def _mixed_psg(path, fs, record_duration, n_records, **kw):
    from sunrise_cli.synth_psg import SynthChannel, psg_sources, write_edf

    src = psg_sources()
    chans = [SynthChannel("EEG C3-M2", fs, src["eeg"]), SynthChannel("EOG E1-M2", fs, src["eog"]),
             SynthChannel("EMG Chin", fs, src["emg"]), SynthChannel("ECG", fs, src["ecg"]),
             SynthChannel("Thorax", fs, src["resp"]),
             SynthChannel("SpO2", 1 / record_duration if record_duration < 1 else fs, src["spo2"], "%", 0, 100)]
    return write_edf(path, chans, n_records, record_duration=record_duration, **kw)


def _check_prediction(psg, out):
    from psg_prep.prepare import open_recording, output_lengths, plan_channels, prepare_psg

    with open(psg, "rb") as f:
        rec = open_recording(f)
        infos, plans, _ = plan_channels(rec, chunk_seconds=30.0, notch_hz=50.0, channel_map=None)
        predicted = dict(zip([i.name for i in infos], output_lengths(rec, plans)))
    meta = prepare_psg(psg, [], out, notch_hz=50.0)
    with np.load(out / "signals.npz") as z:
        actual = {k: len(z[k]) for k in z.files}
    assert actual == predicted
    assert {c["name"]: c["n_samples"] for c in meta["channels"]} == predicted
    return rec


@pytest.mark.parametrize(("fs", "record_duration", "n_records"), _RATES_AND_RECORDS)
def test_output_lengths_predict_the_written_lengths(tmp_path, fs, record_duration, n_records):
    _check_prediction(_mixed_psg(tmp_path / "p.edf", fs, record_duration, n_records), tmp_path / "o")


@pytest.mark.parametrize(("fs", "record_duration"), [(125, 0.2), (256, 0.5), (500, 1.5)])
def test_output_lengths_predict_the_written_lengths_with_edf_plus_d_gaps(tmp_path, fs, record_duration):
    # three segments: 0..29 records, a gap, 17 records, a gap of a fraction of a second, 11 records
    onsets = [i * record_duration for i in range(29)]
    t = onsets[-1] + record_duration + 10.3
    onsets += [t + i * record_duration for i in range(17)]
    t = onsets[-1] + record_duration + 0.7
    onsets += [t + i * record_duration for i in range(11)]
    psg = _mixed_psg(tmp_path / "d.edf", fs, record_duration, len(onsets), plus="D", record_onsets=onsets)
    rec = _check_prediction(psg, tmp_path / "o")
    assert len(rec.segments) == 3


# -- StreamedNpzWriter: the same archive, written to a bucket in parts (issue 26) --------------


def _fill_interleaved(w, arrays, step=997):
    """Feed every member ``step`` samples at a time, all members in turn (as the lanes do)."""
    pos = [0] * len(arrays)
    while any(p < len(v) for p, v in zip(pos, arrays.values())):
        for j, v in enumerate(arrays.values()):
            w.member(j).write(v[pos[j] : pos[j] + step])
            pos[j] += step


@pytest.fixture
def small_parts(monkeypatch):
    """Parts of 4 kB: many parts per member, so the compose needs more than one request's 32."""
    import psg_prep.npzfile as npzfile

    monkeypatch.setattr(npzfile, "BUFFER_BUDGET", 16 << 10)
    monkeypatch.setattr(npzfile, "PART_MIN", 4 << 10)


def test_the_streamed_archive_is_byte_for_byte_the_in_place_one_and_leaves_no_pieces(tmp_path, small_parts):
    from psg_prep.npzfile import StreamedNpzWriter
    from sunrise_common.storage.local import LocalStorage

    arrays = _arrays()
    local = NpzWriter(tmp_path / "s.npz", [(k, len(v)) for k, v in arrays.items()])
    _fill_interleaved(local, arrays)
    local.close()
    storage = LocalStorage(tmp_path / "buckets")
    storage.ensure_bucket("prepped")
    streamed = StreamedNpzWriter(storage, "prepped", "n/signals.npz", [(k, len(v)) for k, v in arrays.items()])
    assert streamed.part_bytes == 4 << 10
    _fill_interleaved(streamed, arrays)
    info = streamed.close()
    assert storage.read_bytes("prepped", "n/signals.npz") == (tmp_path / "s.npz").read_bytes()
    assert info.size == (tmp_path / "s.npz").stat().st_size
    assert [o.name for o in storage.list("prepped")] == ["n/signals.npz"]  # every piece deleted


def test_a_streamed_member_of_the_wrong_length_fails_and_leaves_nothing_in_the_bucket(tmp_path, small_parts):
    from psg_prep.npzfile import StreamedNpzWriter
    from sunrise_common.storage.local import LocalStorage

    storage = LocalStorage(tmp_path / "buckets")
    storage.ensure_bucket("prepped")
    w = StreamedNpzWriter(storage, "prepped", "n/signals.npz", [("a", 10_000), ("b", 5)])
    w.member(0).write(np.zeros(9_000, dtype=np.float32))  # parts of "a" already uploaded
    w.member(1).write(np.zeros(5, dtype=np.float32))
    with pytest.raises(PrepError) as err:
        w.close()
    assert err.value.reason == "internal_length_mismatch"
    assert list(storage.list("prepped")) == []


def test_a_failed_part_upload_surfaces_in_the_writing_thread_and_leaves_nothing(tmp_path, small_parts):
    from psg_prep.npzfile import StreamedNpzWriter
    from sunrise_common.errors import TransientError
    from sunrise_common.storage.local import LocalStorage

    class FailingAfter(LocalStorage):
        """A real local bucket whose fourth write fails as Cloud Storage's 503 would."""
        writes = 0

        def write_bytes(self, bucket, name, data, *, if_generation_match=0):
            FailingAfter.writes += 1
            if FailingAfter.writes == 4:
                raise TransientError("storage_unavailable", "injected")
            return super().write_bytes(bucket, name, data, if_generation_match=if_generation_match)

    storage = FailingAfter(tmp_path / "buckets")
    storage.ensure_bucket("prepped")
    w = StreamedNpzWriter(storage, "prepped", "n/signals.npz", [("a", 200_000)])
    with pytest.raises(TransientError):
        for i in range(0, 200_000, 1000):
            w.member(0).write(np.zeros(1000, dtype=np.float32))
        w.close()
    w.abort()
    assert list(storage.list("prepped")) == []

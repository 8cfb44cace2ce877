"""Chunked reading: samples against edfio, chunk boundaries, EDF+D onsets, annotations."""

from __future__ import annotations

import io
import tracemalloc
import warnings

import edfio
import numpy as np
import pytest

from sunrise_common.edf import (
    EdfError,
    iter_chunks,
    read_annotations,
    read_header,
    read_record_onsets,
    read_start_offset,
)
from sunrise_common.edf.header import parse_header

from .conftest import CORPUS_FILES, corpus_path
from .malformed import build_edf, set_field, tal

WITH_SAMPLES = [p.name for p in CORPUS_FILES if (h := read_header(p)).n_records and h.ordinary_indices]


def _edfio(path_or_bytes, fmt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(path_or_bytes, bytes):
            path_or_bytes = io.BytesIO(path_or_bytes)
        return edfio.read_bdf(path_or_bytes) if fmt == "BDF" else edfio.read_edf(path_or_bytes)


def _parse(data: bytes):
    return parse_header(io.BytesIO(data), len(data))


@pytest.mark.parametrize("name", WITH_SAMPLES)
def test_iter_chunks_decodes_the_same_samples_as_edfio(name):
    path = corpus_path(name)
    header = read_header(path)
    chunks = list(iter_chunks(path, header, chunk_seconds=7.0))
    theirs = _edfio(path, header.fmt)
    for k, index in enumerate(header.ordinary_indices):
        sig = header.signals[index]
        ours = np.concatenate([c.data[index] for c in chunks])
        assert ours.dtype == np.float32
        digital = theirs.signals[k].digital.astype(np.float64)
        np.testing.assert_array_equal(ours, (digital * sig.gain + sig.offset).astype(np.float32))
        np.testing.assert_allclose(ours, theirs.signals[k].data, rtol=1e-6, atol=abs(sig.gain) * 1e-3)


def test_chunks_cover_all_records_once_in_order():
    data = build_edf(n_records=10)
    header = _parse(data)
    chunks = list(iter_chunks(io.BytesIO(data), header, chunk_seconds=3.0))
    assert [(c.start_record, c.n_records) for c in chunks] == [(0, 3), (3, 3), (6, 3), (9, 1)]
    assert [c.start_time for c in chunks] == [0.0, 3.0, 6.0, 9.0]
    whole = next(iter_chunks(io.BytesIO(data), header, chunk_seconds=100.0))
    for index in (0, 1):
        np.testing.assert_array_equal(np.concatenate([c.data[index] for c in chunks]), whole.data[index])
        assert whole.data[index].shape == (10 * header.signals[index].samples_per_record,)


def test_signal_subset_is_decoded_alone():
    data = build_edf()
    header = _parse(data)
    chunk = next(iter_chunks(io.BytesIO(data), header, signals=[1]))
    assert list(chunk.data) == [1]
    with pytest.raises(ValueError):
        next(iter_chunks(io.BytesIO(data), header, signals=[2]))  # the annotation signal


def test_bdf_24bit_samples_match_edfio_including_negatives():
    data = build_edf(fmt="BDF", n_records=3, samples_per_record=(16, 5))
    header = _parse(data)
    chunk = next(iter_chunks(io.BytesIO(data), header))
    theirs = _edfio(data, "BDF")
    for k in (0, 1):
        sig = header.signals[k]
        digital = theirs.signals[k].digital
        assert digital.min() < 0
        np.testing.assert_array_equal(chunk.data[k], (digital * sig.gain + sig.offset).astype(np.float32))


def test_edf_plus_d_gaps_are_preserved_in_onsets_and_chunks():
    onsets = [0.0, 1.0, 2.0, 10.0, 11.0, 30.5]
    data = build_edf(plus="D", n_records=6, onsets=onsets)
    header = _parse(data)
    np.testing.assert_array_equal(read_record_onsets(io.BytesIO(data), header), onsets)
    chunks = list(iter_chunks(io.BytesIO(data), header, chunk_seconds=2.0))
    assert [c.start_time for c in chunks] == [0.0, 2.0, 11.0]
    np.testing.assert_array_equal(chunks[1].record_onsets, [2.0, 10.0])


def test_nihon_kohden_edf_plus_d_onsets():
    path = corpus_path("mne__MB0400FU.EDF")
    header = read_header(path)
    onsets = read_record_onsets(path, header)
    assert onsets.shape == (29,)
    np.testing.assert_array_equal(onsets, np.arange(29.0))


def test_subsecond_start_offset_shifts_edf_plus_c_chunks():
    path = corpus_path("pyedflib__test_subsecond.edf")
    header = read_header(path)
    offset = read_start_offset(path, header)
    assert offset == pytest.approx(0.3945312)
    chunks = list(iter_chunks(path, header, chunk_seconds=100.0))
    assert chunks[1].start_time == pytest.approx(offset + 100.0)
    assert read_record_onsets(path, header)[5] == pytest.approx(offset + 5.0)


def test_plain_edf_has_no_start_offset():
    path = corpus_path("edfio__short_psg.edf")
    assert read_start_offset(path, read_header(path)) == 0.0


@pytest.mark.parametrize("name", [p.name for p in CORPUS_FILES])
def test_read_annotations_matches_edfio(name):
    path = corpus_path(name)
    header = read_header(path)
    theirs = _edfio(path, header.fmt)
    offset = read_start_offset(path, header)
    ours = sorted((round(a.onset - offset, 6), a.duration, a.text) for a in read_annotations(path, header))
    expected = sorted((round(a.onset, 6), a.duration, a.text) for a in theirs.annotations)
    assert ours == expected


def test_read_annotations_reads_every_annotation_signal():
    path = corpus_path("mne__multiple_annotation_chans.bdf")
    texts = [a.text for a in read_annotations(path, read_header(path))]
    assert "Ligths-Off#1" in texts and "TestStim#7" in texts and len(texts) == 10


def test_hypnogram_annotations_are_sleep_stages():
    path = corpus_path("edfio__SC4001EC-Hypnogram.edf")
    annotations = read_annotations(path, read_header(path))
    assert len(annotations) == 154
    assert annotations[0].text == "Sleep stage W" and annotations[0].duration == 30630.0


def test_read_annotations_rejects_bad_tals():
    data = build_edf(annotations={1: [b"12\x14oops\x14\x00"]})
    with pytest.raises(EdfError) as info:
        read_annotations(io.BytesIO(data), _parse(data))
    assert info.value.reason == "bad_annotations"


def test_annotation_texts_come_back_in_utf8():
    data = build_edf(annotations={2: [tal("+2.5", ["Obstructive apnea"], "12"), tal("+3", ["仰卧"])]})
    annotations = read_annotations(io.BytesIO(data), _parse(data))
    assert [(a.onset, a.duration, a.text) for a in annotations] == [
        (2.5, 12.0, "Obstructive apnea"),
        (3.0, None, "仰卧"),
    ]


def test_a_short_stream_is_reported_as_truncated():
    data = build_edf(n_records=6)
    header = _parse(data)
    with pytest.raises(EdfError) as info:
        list(iter_chunks(io.BytesIO(data[:-100]), header, chunk_seconds=2.0))
    assert info.value.reason == "truncated"


def test_zero_record_file_yields_no_chunk():
    path = corpus_path("edfize__zero-data-records.edf")
    header = read_header(path)
    assert list(iter_chunks(path, header)) == []
    assert read_record_onsets(path, header).shape == (0,)


def test_reader_memory_is_bounded_by_the_chunk_not_the_file(tmp_path):
    # 64 channels x 256 Hz x 600 s = ~20 MB of int16; 10-s chunks decode ~0.6 MB at a time.
    data = build_edf(n_records=1, labels=tuple(f"EEG{i}" for i in range(64)), samples_per_record=(256,) * 64, plus=None)
    header = _parse(data)
    record = data[header.header_bytes :]
    path = tmp_path / "long.edf"
    with path.open("wb") as f:
        f.write(set_field(data[: header.header_bytes], "n_records", "600"))
        for _ in range(600):
            f.write(record)
    header = read_header(path)
    assert header.n_records == 600
    tracemalloc.start()
    try:
        total = sum(c.data[0].size for c in iter_chunks(path, header, chunk_seconds=10.0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 600 * 256
    assert peak < 8 << 20, f"peak {peak / 1e6:.1f} MB for a {path.stat().st_size / 1e6:.0f} MB file"

"""The anonymisation benchmark's inputs: an EDF+C made from a plain EDF, a longer plain EDF."""

from __future__ import annotations

import io

import numpy as np

from benchmarks.anonymise_bench import repeat_records, to_edf_plus
from sunrise_common.edf import anonymise_edf, read_annotations, read_header
from tests.edf.malformed import build_edf


def test_edf_plus_version_keeps_the_samples_and_annotates_one_record_in_every(tmp_path):
    plain = tmp_path / "plain.edf"
    plain.write_bytes(build_edf(plus=None, n_records=130))
    plus = to_edf_plus(plain, tmp_path / "plus.edf", every=60, records_per_block=7)
    h, hp = read_header(plain), read_header(plus)
    assert (hp.plus, hp.ns, hp.n_records) == ("C", h.ns + 1, h.n_records)
    assert [s.label for s in hp.signals[: h.ns]] == [s.label for s in h.signals]
    a = np.frombuffer(plain.read_bytes(), np.uint8, offset=h.header_bytes).reshape(h.n_records, h.record_bytes)
    b = np.frombuffer(plus.read_bytes(), np.uint8, offset=hp.header_bytes).reshape(hp.n_records, hp.record_bytes)
    np.testing.assert_array_equal(b[:, : h.record_bytes], a)
    with plus.open("rb") as f:
        texts = [(x.onset, x.text) for x in read_annotations(f, hp)]
    assert texts == [(30.5, "Hypopnea"), (30.7, "Jane Doe"), (90.5, "Hypopnea"), (90.7, "Jane Doe")]
    out = io.BytesIO()
    with plus.open("rb") as f:
        report = anonymise_edf(f, out, plus.stat().st_size)
    assert (report.annotations_kept, report.annotations_dropped) == (2, 2)
    assert b"Jane" not in out.getvalue()


def test_repeated_records_make_a_longer_valid_plain_edf(tmp_path):
    plain = tmp_path / "plain.edf"
    plain.write_bytes(build_edf(plus=None, n_records=10))
    h = read_header(plain)
    longer = repeat_records(plain, tmp_path / "long.edf", h.header_bytes + 25 * h.record_bytes)
    hl = read_header(longer)
    assert hl.n_records == 25 and longer.stat().st_size == h.header_bytes + 25 * h.record_bytes
    body, body_long = plain.read_bytes()[h.header_bytes :], longer.read_bytes()[h.header_bytes :]
    assert body_long == (body * 3)[: 25 * h.record_bytes]

"""ingest on the real corpus, on malformed files, and for every arrival order of a night."""

from __future__ import annotations

import itertools
import json
import time

import pytest

from sunrise_common.events import storage_event
from sunrise_cli.synth import synth_night
from tests.conftest import CORPUS, EXTRA_PREFIX, app_client, corpus_file
from tests.edf.malformed import MALFORMED

# What ingest does with every EDF/BDF and DOMINO label file of tests/data/corpus (and the extra corpus): "anonymised" or the reason.
EXPECTED = {
    "edf/edfio__SC4001EC-Hypnogram.edf": ("labels", "anonymised"),
    "edf/edfio__short_psg.edf": ("psg", "anonymised"),
    "edf/edfize__invalid-date.edf": ("psg", "no_data"),  # 0 records (and an already-blanked date)
    "edf/edfize__simulated-01.edf": ("psg", "anonymised"),
    "edf/edfize__zero-data-records.edf": ("psg", "no_data"),
    "edf/mne__MB0400FU.EDF": ("psg", "anonymised"),
    "edf/mne__chtypes_edf.edf": ("psg", "anonymised"),
    "edf/mne__test_edf_overlapping_annotations.edf": ("psg", "anonymised"),
    "edf/mne__test_utf8_annotations.edf": ("psg", "anonymised"),
    "edf/pyedflib__test_generator.edf": ("psg", "anonymised"),
    "edf/pyedflib__test_legacy.edf": ("psg", "anonymised"),
    "edf/pyedflib__test_subsecond.edf": ("psg", "anonymised"),
    "edf/pyedflib__test_utf8.edf": ("psg", "anonymised"),
    "bdf/edfio__SC4001EC-Hypnogram.bdf": ("labels", "anonymised"),
    "bdf/edfio__short_psg.bdf": ("psg", "anonymised"),
    "bdf/mne__multiple_annotation_chans.bdf": ("psg", "anonymised"),
    "bdf/pyedflib__test_generator.bdf": ("psg", "anonymised"),
    "labels/domino/rbdtector_test1/Sleep profile - test1 Unbekannt.txt": ("labels", "anonymised"),
    "labels/domino/rbdtector_test1/Sleep profile - test1 Unbekannt SNORE.txt": ("labels", "anonymised"),
    "labels/domino/rbdtector_test1/Flow Events - test1 Unbekannt.txt": ("labels", "anonymised"),
    "labels/domino/rbdtector_test1/Classification Arousals - test1 Unbekannt.txt": ("labels", "anonymised"),
    "labels/domino/rbdtector_test1/Generic - test1 Unbekannt.txt": ("labels", "anonymised"),
    "labels/domino/rbdtector_test1/Generic_NO_test1.txt": ("labels", "anonymised"),
    "labels/domino/rbdtector_test1/test1_Start-Baseline.txt": ("labels", "unknown_label_format"),
}


@pytest.fixture
def client(settings, ctx):
    with app_client("ingest", settings) as c:
        yield c


def send(client, ctx, name, data: bytes):
    info = ctx.storage.write_bytes(ctx.settings.bucket("raw"), name, data, if_generation_match=None)
    headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
    return client.post("/", headers=headers, content=json.dumps(body))


def test_the_corpus_list_is_complete():
    # labels/formats/ has its own tests (tests/labels); the extra corpus is optional.
    on_disk = {p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*")
               if p.is_file() and not p.relative_to(CORPUS).as_posix().startswith("labels/formats/")}
    assert on_disk == {rel for rel in EXPECTED if EXTRA_PREFIX not in rel}


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_every_corpus_file_is_anonymised_or_rejected_with_a_reason(client, ctx, rel):
    kind, expected = EXPECTED[rel]
    path = corpus_file(rel)
    resp = send(client, ctx, f"{kind}/corpus/subj01/{path.name}", path.read_bytes())
    assert resp.status_code == 200, resp.text
    body = resp.json()
    if expected == "anonymised":
        assert body["status"] == "done", body
        assert body["outputs"]["object"].startswith(f"nights/{body['night_id']}/")
    else:
        assert body["status"] == "rejected" and body["reason"] == expected, body


@pytest.mark.parametrize("name, data, reason", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_are_rejected_fast_with_their_reason(client, ctx, name, data, reason):
    t0 = time.perf_counter()
    resp = send(client, ctx, f"psg/bad/{name}/file.edf", data)
    elapsed = time.perf_counter() - t0
    assert resp.status_code == 200
    expected = "empty_file" if not data else reason
    assert (resp.json()["status"], resp.json()["reason"]) == ("rejected", expected)
    assert elapsed < 2.0


def test_a_bad_file_does_not_disturb_a_good_night(client, ctx):
    send(client, ctx, "psg/bad/X/broken.edf", MALFORMED[7][1])
    good = send(client, ctx, "psg/good/Y/psg.edf", (CORPUS / "edf/edfio__short_psg.edf").read_bytes())
    assert good.json()["status"] == "done"


@pytest.fixture(scope="module")
def night_files(tmp_path_factory):
    night = synth_night(tmp_path_factory.mktemp("night"), seed=21, hours=1.0)
    return {"sunrise": night.sunrise.read_bytes(), "psg": night.psg.read_bytes(), "labels": night.labels[0].read_bytes()}


@pytest.mark.parametrize("order", list(itertools.permutations(["sunrise", "psg", "labels"])), ids="-".join)
def test_pairing_works_for_every_arrival_order_and_duplicate_uploads(client, ctx, night_files, order):
    answers = {}
    for kind in order:
        answers[kind] = send(client, ctx, f"{kind}/site/SUBJ/{kind}-file", night_files[kind]).json()
    again = send(client, ctx, f"{order[0]}/site/SUBJ/{order[0]}-file", night_files[order[0]]).json()  # a re-upload
    assert again["status"] == "done"
    nights = {a["night_id"] for a in [*answers.values(), again]}
    assert len(nights) == 1
    doc = ctx.state.get("nights", nights.pop())
    assert doc["pairing"]["state"] == "paired"
    assert doc["pairing"]["sunrise"] and doc["pairing"]["psg"] and doc["pairing"]["labels"] == 1
    assert doc["pairing"]["overlap_s"] > 3000


def test_a_recording_of_another_night_is_not_paired(client, ctx, night_files, tmp_path):
    other = synth_night(tmp_path / "other", seed=21, hours=1.0, start=__import__("datetime").datetime(2024, 3, 9, 22, 30))
    a = send(client, ctx, "sunrise/site/SUBJ/a", night_files["sunrise"]).json()
    b = send(client, ctx, "psg/site/SUBJ/b", other.psg.read_bytes()).json()
    assert a["night_id"] != b["night_id"]
    assert a["night_id"].split("-n")[0] == b["night_id"].split("-n")[0]  # same subject, other night


def test_a_pair_whose_time_ranges_do_not_overlap_is_flagged():
    from ingest.pairing import pairing_status

    early = {"start_offset_s": 36000.0, "duration_s": 3600.0}
    late = {"start_offset_s": 50000.0, "duration_s": 3600.0}
    assert pairing_status({"sunrise": early, "psg": late}) == {
        "sunrise": True, "psg": True, "labels": 0, "overlap_s": 0.0, "state": "no_overlap"}
    assert pairing_status({"sunrise": early, "psg": {**late, "start_offset_s": 38000.0}})["overlap_s"] == 1600.0

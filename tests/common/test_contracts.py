"""sunrise_common.contracts and names.input_key: the wire forms stay what older code stored and
sent, and no input key carries a storage generation (a write time)."""

from __future__ import annotations

import json
import re

import pytest

from sunrise_common import identity, names
from sunrise_common.contracts import NightDoc, NightMessage, Recording, StageRun
from sunrise_common.errors import PermanentError
from tests.conftest import TEST_KEY

NIGHT = "sabcdefghijkl-nabcdefgh"
GEN = 1712345678901234  # a Cloud Storage generation: µs since the epoch


def test_ingests_message_is_the_json_it_always_published():
    message = NightMessage(night_id=NIGHT, kind="psg", object=f"nights/{NIGHT}/psg.edf", generation=GEN)
    assert json.loads(message.to_bytes()) == {"night_id": NIGHT, "kind": "psg", "object": f"nights/{NIGHT}/psg.edf",
                                              "generation": str(GEN)}  # int64 as proto3 JSON's string
    assert NightMessage.parse(json.loads(message.to_bytes())) == message


def test_a_prepped_message_names_the_night_and_its_half_only():
    assert json.loads(NightMessage(night_id=NIGHT, kind="sunrise").to_bytes()) == {"night_id": NIGHT, "kind": "sunrise"}


def test_a_recording_is_stored_without_null_fields_and_keeps_fields_it_does_not_know():
    rec = Recording(object=f"nights/{NIGHT}/sunrise.edf", generation=GEN, token="v" + "a" * 16, sha256="0" * 64,
                    size=10, start_offset_s=1.5, duration_s=2.0, year=2024, upload_id="u1", format="EDF")
    assert "label_kind" not in rec.to_doc() and rec.to_doc()["generation"] == GEN
    stored = {**rec.to_doc(), "added_later": 1}
    assert Recording.model_validate(stored).to_doc() == stored
    assert Recording.model_validate({**stored, "generation": str(GEN)}).generation == GEN  # old string form


def test_ingests_stage_mirror_holds_only_the_fields_it_sets():
    mirror = StageRun(state="done", input_key="u1", finished_at=5.0, error=None, outputs={"object": "o"}).to_doc()
    assert mirror == {"state": "done", "input_key": "u1", "finished_at": 5.0, "error": None, "outputs": {"object": "o"}}


def test_the_input_key_is_a_digest_that_changes_with_each_input_and_rerun():
    token = identity.upload_token(TEST_KEY.encode(), f"nights/{NIGHT}/sunrise.edf", GEN)
    key = names.input_key(token)
    assert re.fullmatch(r"k[0-9a-f]{16}", key) and str(GEN) not in key
    assert len({key, names.input_key(token, reruns=1),
                names.input_key(identity.upload_token(TEST_KEY.encode(), f"nights/{NIGHT}/sunrise.edf", GEN + 1))}) == 3
    assert names.input_key(token) == key  # deterministic: a redelivery finds its run


def test_the_upload_token_is_keyed():
    name = f"nights/{NIGHT}/psg.edf"
    assert identity.upload_token(b"k" * 32, name, GEN) != identity.upload_token(b"j" * 32, name, GEN)
    assert str(GEN) not in identity.upload_token(b"k" * 32, name, GEN)


def test_a_document_without_tokens_keeps_the_keys_psg_prep_and_sunalgo_gave_it():
    """Runs recorded before tokens existed are still found done (no recomputation on redelivery)."""
    doc = NightDoc.model_validate({"recordings": {"psg": {"object": "o", "generation": GEN},
                                                  "labels": {"nsrr_xml-abc": {"object": "l", "generation": 7}}}})
    legacy_psg_key = "k" + identity.digest(GEN, "nsrr_xml-abc:7", "rerun:0")
    assert names.input_key(doc.recordings.psg.input,
                           *sorted(f"{k}:{v.input}" for k, v in doc.recordings.labels.items())) == legacy_psg_key


def test_the_night_id_of_a_message_must_be_one():
    with pytest.raises(PermanentError, match="night_id must look like"):
        NightMessage.parse({"night_id": "s" + "1" * 12 + "-n" + "b" * 8})


def test_a_run_with_null_timing_fields_reads_and_can_be_claimed_again(tmp_path):
    """A stored run with a null lease, attempt count or times is not a bad_night_document."""
    from sunrise_common.nights import parse_night
    from sunrise_common.state.runs import Outcome, StageRuns
    from sunrise_common.state.sqlite import SqliteState

    nulls = {"state": "running", "input_key": "k1", "attempts": None, "lease_expires": None, "started_at": None,
             "finished_at": None, "duration_s": None}
    stored = {"night_id": "n1", "stages": {"psg_prep": dict(nulls)}, "runs": {"psg_prep": {"k1": dict(nulls)}}}
    doc = parse_night("n1", stored)
    assert doc.stages["psg_prep"].lease_expires is None and doc.runs["psg_prep"]["k1"].attempts is None
    assert doc.in_progress("psg_prep") and doc.latest_done("psg_prep") is None
    assert StageRun.model_validate({"state": "done"}).attempts == 0  # unset: the defaults

    state = SqliteState(tmp_path / "state.db")
    state.set("nights", "n1", stored)
    runs = StageRuns(state, lease_s=60.0, clock=lambda: 1000.0)
    claim = runs.claim("nights", "n1", "psg_prep", "k1")  # a null lease is no live lease
    assert claim.outcome == Outcome.ACQUIRED and claim.run["attempts"] == 1
    assert runs.complete("nights", "n1", "psg_prep", "k1", attempt=1)
    done = parse_night("n1", state.get("nights", "n1"))
    assert done.latest_done("psg_prep").duration_s == 0.0

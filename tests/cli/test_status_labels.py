"""`sunrise status` about labels (issue 23): a date-less label file waiting for its PSG, the
assumption a time-of-day pairing made, a hypnogram covering under half its PSG, and sunalgo
blocked (not pending) behind a sunrise_prep that failed for good."""

from __future__ import annotations

import re

from sunrise_devstack import status as status_lib
from tests.cli.test_status import ctx, deliver, ingest, put, settings, status  # noqa: F401 - fixtures
from tests.inprocess import post_message
from tests.label_night import FORMATS, psg_edf

NSRR_XML = (FORMATS / "nsrr_xml" / "shhs-like-nsrr.xml").read_bytes()  # ClockTime 00.00.00 23.10.00


def test_a_dateless_label_file_without_its_psg_is_listed_as_waiting_for_partner(ctx, ingest):
    done = deliver(ingest, put(ctx, "labels/namur/P1/shhs1-nsrr.xml", NSRR_XML))
    assert done["outputs"]["waiting_for"] == "psg"
    summary = status_lib.summarize(ctx.state)
    (waiting,) = summary["waiting_for_partner"]
    assert waiting["night_id"] is None and waiting["waiting_for"] == "psg"
    out = status().output
    assert re.search(r"upload u\w+ \(no night yet\): has labels without a date, waiting for partner "
                     r"\(its PSG recording\)", out), out
    upload = status("--upload", "labels/namur/P1/shhs1-nsrr.xml").output
    assert "no date in the file: waiting for partner" in upload, upload


def test_one_night_shows_the_pairing_assumption_and_a_short_hypnogram_warning(ctx, ingest, settings, tmp_path):
    psg = psg_edf(tmp_path / "psg.edf", seconds=5 * 3600, rate=8)  # 5 h; the XML scores 2 h of it
    night = deliver(ingest, put(ctx, "psg/namur/P1/night.edf", psg.read_bytes()))["night_id"]
    assert deliver(ingest, put(ctx, "labels/namur/P1/shhs1-nsrr.xml", NSRR_XML))["night_id"] == night
    rec = ctx.state.get("nights", night)["recordings"]["psg"]
    done = post_message(settings, "psg_prep", "psg-anonymised",
                        {"night_id": night, "kind": "psg", "object": rec["object"], "generation": str(rec["generation"])})
    assert done["status"] == "done", done
    out = status(night).output
    assert "assumed: the label file carries no date: paired by time of day" in out, out
    assert "warning: the hypnogram covers 39 % of its PSG (232 scored of 600 recording epochs)" in out, out


def test_sunalgo_is_blocked_not_pending_when_sunrise_prep_failed_for_good(ctx, ingest, tmp_path):
    edf = psg_edf(tmp_path / "short.edf", seconds=600, rate=8).read_bytes()  # stands for both halves
    night = deliver(ingest, put(ctx, "psg/namur/P1/night.edf", edf))["night_id"]
    assert deliver(ingest, put(ctx, "sunrise/namur/P1/night.edf", edf))["night_id"] == night
    claim = ctx.runs.claim("nights", night, "sunrise_prep", "k1")
    ctx.runs.fail("nights", night, "sunrise_prep", "k1", reason="no_gyroscope: no gyroscope channel",
                  permanent=True, attempt=claim.run["attempts"])
    summary = status_lib.summarize(ctx.state)
    assert summary["stages"]["sunalgo"] == {"blocked": 1}
    out = status(night).output
    assert re.search(r"sunalgo\s+│\s+blocked", out), out
    assert "sunalgo: blocked: sunrise_prep failed permanently (no_gyroscope: no gyroscope channel)" in out, out


"""psg_prep's allocation limits (psg_prep.limits): a header that plans an absurd allocation is
refused from the header alone, with a reason in the header's numbers, before any filter is
designed or sample decoded; a realistic night passes; through the service the refusal is a
recorded permanent failure answered 2xx."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from sunrise_common.events import storage_event
from sunrise_cli.synth_psg import SynthChannel, write_edf
from psg_prep import limits
from psg_prep.errors import PrepError
from psg_prep.prepare import prepare_psg
from tests.conftest import app_client
from tests.inprocess import post_message

LABEL = "EEG Zofia Kow"  # a label is free text: it must not reach a reason


def flat(fs: float, label: str = LABEL, **kw) -> SynthChannel:
    return SynthChannel(label, fs, lambda t: np.zeros_like(t), **kw)


def refused(path, tmp_path) -> tuple[PrepError, int]:
    """The refusal and the peak bytes Python and numpy allocated on the way to it."""
    tracemalloc.start()
    try:
        with pytest.raises(PrepError) as raised:
            prepare_psg(path, [], tmp_path / "out")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "Zofia" not in str(raised.value)
    return raised.value, peak


def test_a_header_claiming_2e8_hz_is_refused_before_anything_is_allocated(tmp_path):
    """The issue's bomb: 19 MB, one 0.05-s record of 10^7 samples (3,005 MB RSS and 37 s before)."""
    path = write_edf(tmp_path / "bomb.edf", [flat(2e8)], 1, record_duration=0.05)
    err, peak = refused(path, tmp_path)
    # The EDF header layer may refuse it first (its own rate and samples-per-record bounds).
    assert (err.reason, "2e+08 Hz" in err.detail) == ("sample_rate_too_high", True) or err.reason == "absurd_value"
    assert peak < 4 << 20, peak


def test_a_rate_just_over_the_limit_is_refused_with_its_numbers(tmp_path):
    path = write_edf(tmp_path / "fast.edf", [flat(20_000.0)], 1, record_duration=1)
    err, _ = refused(path, tmp_path)
    assert err.reason in ("sample_rate_too_high", "absurd_value") and "20000 Hz" in err.detail
    assert limits.MAX_SAMPLE_RATE_HZ < 20_000  # the rate this file claims is over psg_prep's own bound


def test_an_irregular_rate_whose_filter_would_need_21_million_taps_is_refused(tmp_path):
    """1001.001 Hz (0.999-s records of 1000 samples) to SpO2's 1 Hz is a 1000/1001001 ratio:
    a 2.2e7-tap FIR (19 GB RSS when it was designed, measured once)."""
    spo2 = flat(1000 / 0.999, "SpO2", dimension="%", physical_min=0, physical_max=100)
    path = write_edf(tmp_path / "rate.edf", [spo2], 60, record_duration=0.999)
    err, peak = refused(path, tmp_path)
    assert err.reason == "resampler_too_large" and "21609551-tap" in err.detail
    assert peak < 4 << 20, peak


def test_a_chunk_of_more_than_8_million_samples_is_refused(tmp_path):
    # 16 channels at 2,048 Hz: 300-s chunks of 9.8e6 samples (each header field within bounds).
    path = write_edf(tmp_path / "wide.edf", [flat(2048.0, f"EEG E{i}") for i in range(16)], 300, record_duration=1)
    err, _ = refused(path, tmp_path)
    assert err.reason == "chunk_too_large" and str(300 * 16 * 2048) in err.detail


def test_the_limits_leave_room_for_real_recordings():
    # The 8-h, 20-channel, 256-Hz night: 1.5e6 samples per 300-s chunk, 1.1e8 output samples.
    assert 20 * 256 * 300 * 5 < limits.MAX_CHUNK_SAMPLES
    for ctype in ("EEG", "EOG", "EMG_CHIN", "ECG", "AIRFLOW_THERMISTOR", "SPO2", "MARKER"):
        for fs in (100, 128, 200, 250, 256, 500, 512, 1000, 1024, 2048, 4096, 16_384):
            assert limits.planned_fir_taps(ctype, fs) < limits.MAX_FIR_TAPS / 10, (ctype, fs)  # 10x room


def test_a_realistic_multichannel_file_passes_the_checks_and_is_prepared(tmp_path):
    channels = [flat(256.0, f"EEG C{i}-A2") for i in range(8)] + [flat(512.0, "ECG")]
    path = write_edf(tmp_path / "ok.edf", channels, 60, record_duration=1)
    meta = prepare_psg(path, [], tmp_path / "out")
    assert meta["n_epochs"] == 2 and len(meta["channels"]) == 9


def test_the_service_records_the_refusal_and_answers_2xx(settings, ctx, tmp_path):
    """ingest accepts the file (its header fields are each valid); psg_prep refuses it."""
    spo2 = flat(1000 / 0.999, "SpO2", dimension="%", physical_min=0, physical_max=100)
    path = write_edf(tmp_path / "rate.edf", [spo2], 60, record_duration=0.999)
    with app_client("ingest", settings) as client:
        info = ctx.storage.upload_file(settings.bucket("raw"), "psg/namur/P001/rate.edf", path, if_generation_match=None)
        headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
        done = client.post("/", headers=headers, content=json.dumps(body)).json()
    assert done["status"] == "done", done
    night = done["night_id"]
    rec = ctx.state.get("nights", night)["recordings"]["psg"]
    answer = post_message(settings, "psg_prep", "psg-anonymised",
                          {"night_id": night, "kind": "psg", "object": rec["object"], "generation": str(rec["generation"])})
    assert answer["status"] == "rejected" and answer["reason"] == "resampler_too_large", answer
    stage = ctx.state.get("nights", night)["stages"]["psg_prep"]
    assert stage["state"] == "failed" and stage["error"].startswith("resampler_too_large")

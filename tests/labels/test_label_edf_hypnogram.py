"""The real Sleep-EDF hypnogram (SC4001EC), EDF+ and BDF+ twins."""

from collections import Counter
from datetime import datetime

import pytest

from sunrise_common.edf import read_annotations, read_header
from sunrise_common.labels import parse_labels

# Epoch counts from the 154 annotations (W 12, 1 24, 2 40, 3 48, 4 23, R 6, ? 1), each
# expanded to duration / 30 s; the final "?" runs to 86400 s, so the total is 2880 epochs.
EXPECTED_EPOCHS = {"W": 1997, "N1": 58, "N2": 250, "N3": 101 + 119, "REM": 125, "UNS": 230}


@pytest.mark.parametrize("sub,name", [("edf", "edfio__SC4001EC-Hypnogram.edf"), ("bdf", "edfio__SC4001EC-Hypnogram.bdf")])
def test_sleep_edf_hypnogram_expands_to_exact_epoch_counts(corpus, sub, name):
    ls = parse_labels("edf_hypnogram", (corpus / sub / name).read_bytes())
    assert ls.start == datetime(1989, 4, 24, 16, 13, 0)
    assert ls.hypnogram.onset_s == 0.0
    assert len(ls.hypnogram.stages) == 2880
    assert ls.hypnogram.counts() == EXPECTED_EPOCHS
    assert ls.events == []
    assert ls.warnings == []


def test_annotation_counts_match_sources_table(corpus):
    path = corpus / "edf" / "edfio__SC4001EC-Hypnogram.edf"
    anns = read_annotations(path, read_header(path))
    assert Counter(a.text for a in anns) == {
        "Sleep stage W": 12, "Sleep stage 1": 24, "Sleep stage 2": 40, "Sleep stage 3": 48,
        "Sleep stage 4": 23, "Sleep stage R": 6, "Sleep stage ?": 1,
    }


def test_epoch_counts_agree_with_mne(corpus):
    mne = pytest.importorskip("mne")
    ann = mne.read_annotations(corpus / "edf" / "edfio__SC4001EC-Hypnogram.edf")
    per_label = Counter()
    for d, text in zip(ann.duration, ann.description):
        per_label[text] += int(round(d / 30))
    assert per_label["Sleep stage W"] == EXPECTED_EPOCHS["W"]
    assert per_label["Sleep stage 3"] + per_label["Sleep stage 4"] == EXPECTED_EPOCHS["N3"]
    assert per_label["Sleep stage ?"] == EXPECTED_EPOCHS["UNS"]


def test_hmc_style_lights_markers_with_a_channel_suffix_set_the_lights_and_events_keep_their_channel():
    """HMC and MNE write ``Lights off@@EEG F4-A1``: the marker is the lights time, not an event."""
    import io
    from datetime import date, time

    from edfio import Edf, EdfAnnotation

    anns = [EdfAnnotation(0, None, "Lights off@@EEG F4-A1")]
    anns += [EdfAnnotation(30 * i, 30, f"Sleep stage {s}") for i, s in enumerate(["W", "W", "N1", "N2", "N3", "R"])]
    anns += [EdfAnnotation(175, None, "Lights on@@EEG F4-A1"), EdfAnnotation(40, 12.5, "Obstructive apnea@@Flow")]
    edf = Edf([], annotations=anns, starttime=time(23, 10, 0))
    edf.startdate = date(2023, 11, 18)
    buf = io.BytesIO()
    edf.write(buf)
    ls = parse_labels("edf_hypnogram", buf.getvalue())
    assert ls.hypnogram.stages == ["W", "W", "N1", "N2", "N3", "REM"]
    assert (ls.lights_off_s, ls.lights_on_s) == (0.0, 175.0)
    assert [(e.type, e.channel, e.onset_s, e.duration_s) for e in ls.events] == [("obstructive_apnea", "Flow", 40.0, 12.5)]

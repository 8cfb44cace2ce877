"""Embla XML event export: a file written here from the example night's MASTER_TRUTH.json (R&K
stages, every event, lights) with a patient block reads back to that truth, before and after
anonymisation, and the patient block, notes and the real date are gone."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sunrise_common.labels import by_kind, detect
from tests.conftest import CORPUS

from .test_label_formats import _check

TRUTH = json.loads((CORPUS / "labels/formats/MASTER_TRUTH.json").read_text())
START = datetime.fromisoformat(TRUTH["true_recording_start"])
RK = {"W": "SLEEP-S0", "S1": "SLEEP-S1", "S2": "SLEEP-S2", "S3": "SLEEP-S3", "S4": "SLEEP-S4", "R": "SLEEP-REM",
      "?": "SLEEP-UNSCORED"}
CODES = {"apnea_obstructive": "APNEA-OBSTRUCTIVE", "apnea_central": "APNEA-CENTRAL", "apnea_mixed": "APNEA-MIXED",
         "hypopnea": "HYPOPNEA", "desaturation": "DESAT", "rera": "RESP-RERA", "arousal_respiratory": "AROUSAL-RESP",
         "arousal_spontaneous": "AROUSAL-SPONT", "limb_movement_left": "PLM-LM", "limb_movement_right": "PLM-LM"}


def _event(code: str, onset: float, duration: float, extra: str = "") -> str:
    a = (START + timedelta(seconds=onset)).isoformat(timespec="microseconds")
    b = (START + timedelta(seconds=onset + duration)).isoformat(timespec="microseconds")
    return f"<Event><Type>{code}</Type><Location>C4</Location><StartTime>{a}</StartTime><StopTime>{b}</StopTime>{extra}</Event>\n"


def embla_xml() -> bytes:
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<EventExport>\n<Patient><Name>Hildegard Mustermann</Name>'
             "<Birth>1957-03-14</Birth></Patient>\n<Events>\n"]
    parts += [_event(RK[s], 30.0 * i, 30.0) for i, s in enumerate(TRUTH["stages_rk"])]
    for e in TRUTH["events"]:
        extra = ""
        if "spo2_nadir" in e:
            extra = ("<Parameters><Parameter><Key>UserVariables</Key><Value><Parameters>"
                     f"<Parameter><Key>Begin of desat</Key><Value>{e['spo2_baseline']}</Value></Parameter>"
                     f"<Parameter><Key>End of desat</Key><Value>{e['spo2_nadir']}</Value></Parameter>"
                     "<Parameter><Key>Scorer</Key><Value>Hildegard Mustermann</Value></Parameter>"
                     "</Parameters></Value></Parameter></Parameters>")
        parts.append(_event(CODES[e["type"]], e["onset_s"], e["duration_s"], extra))
    parts.append(_event("LIGHTS-OFF", TRUTH["lights_off_s"], 0))
    parts.append(_event("LIGHTS-ON", TRUTH["lights_on_s"], 0))
    parts.append(_event("Hildegard Mustermann", 100, 0))
    return ("".join(parts) + "</Events>\n</EventExport>\n").encode()


def _truth() -> dict:
    events = list(TRUTH["events"]) + [{"type": "other", "onset_s": 100.0, "duration_s": 0.0}]
    return {**TRUTH, "events": events, "file": "embla.xml",
            "carries": {"stages": True, "events": True, "lights": True}}


def test_embla_xml_reads_to_the_truth_before_and_after_anonymisation(monkeypatch):
    from . import test_label_formats

    monkeypatch.setitem(test_label_formats.TRUTH_EVENT, "other", "other")
    data = embla_xml()
    fmt = detect(data, "export.xml")
    assert fmt.kind == "embla_xml"
    ls = fmt.parse(data)
    assert ls.start == START
    _check(ls, _truth())
    assert [e.nadir for e in ls.events if e.type == "desaturation"] == [90.0, 86.0, 91.0]
    anon = fmt.anonymise(data)
    _check(by_kind("embla_xml").parse(anon.data), _truth(), anonymised=True)
    text = anon.data.decode()
    for secret in ("Hildegard", "Mustermann", "1957", "2023-11-18", "2023-11-19"):
        assert secret not in text
    assert anon.start == START

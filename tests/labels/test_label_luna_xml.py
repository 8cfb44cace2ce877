"""Luna XML: a file written here from the example night's MASTER_TRUTH.json reads back to it
before and after anonymisation, and the personal data written into it is gone."""

from __future__ import annotations

from sunrise_common.labels import by_kind, detect

from .test_label_embla_xml import TRUTH
from .test_label_formats import _check

STAGE = {"W": "W", "N1": "N1", "N2": "N2", "N3": "N3", "R": "R", "?": "?"}
CLASS = {"apnea_obstructive": ("apnea:obstructive", "."), "apnea_central": ("apnea:central", "."),
         "apnea_mixed": ("apnea:mixed", "."), "hypopnea": ("hypopnea", "."), "desaturation": ("desat", "."),
         "rera": ("arousal:respiratory", "RERA"), "arousal_respiratory": ("arousal:respiratory", "."),
         "arousal_spontaneous": ("arousal:spontaneous", "."), "limb_movement_left": ("LM:left", "."),
         "limb_movement_right": ("LM:right", ".")}


def _inst(cls: str, name: str, start: float, dur: float, extra: str = "") -> str:
    return (f"<Instance><Class>{cls}</Class><Name>{name}</Name><Start>{start}</Start><Duration>{dur}</Duration>"
            f"<Channel>.</Channel>{extra}</Instance>\n")


def luna_xml() -> bytes:
    parts = ['<?xml version="1.0"?>\n<Annotations><SoftwareVersion>Luna Hildegard Mustermann</SoftwareVersion>'
             "<StartTime>23.10.00</StartTime><EpochLength>30</EpochLength>"
             "<Classes><Class><Name>desat</Name><Description>Hildegard Mustermann 14.03.1957</Description></Class></Classes>"
             "<Instances>\n"]
    parts += [_inst(STAGE[s], ".", 30.0 * i, 30.0) for i, s in enumerate(TRUTH["stages"])]
    for e in TRUTH["events"]:
        cls, name = CLASS[e["type"]]
        extra = ""
        if "spo2_nadir" in e:
            extra = f'<Value var="baseline">{e["spo2_baseline"]}</Value><Value var="nadir">{e["spo2_nadir"]}</Value>' \
                    '<Value var="scorer">Hildegard Mustermann</Value>'
        parts.append(_inst(cls, name, e["onset_s"], e["duration_s"], extra))
    parts.append(_inst("lights_off", ".", TRUTH["lights_off_s"], 0))
    parts.append(_inst("lights_on", ".", TRUTH["lights_on_s"], 0))
    return ("".join(parts) + "</Instances></Annotations>\n").encode()


def test_luna_xml_reads_to_the_truth_before_and_after_anonymisation():
    data = luna_xml()
    fmt = detect(data, "night.xml")
    assert fmt.kind == "luna_xml"
    truth = {**TRUTH, "file": "night.annot", "carries": {"stages": True, "events": True, "lights": True}}
    ls = fmt.parse(data)
    assert str(ls.start_time) == "23:10:00"
    _check(ls, truth)
    anon = fmt.anonymise(data)
    _check(by_kind("luna_xml").parse(anon.data), truth, anonymised=True)
    assert b"Hildegard" not in anon.data and b"1957" not in anon.data

"""A personal-data test per format: a file with the patient's name, birth date, recording date,
patient ID and hospital in every field the format has keeps none of them after anonymisation,
and still reads the same (``Format.anonymise`` re-parses its output and compares).

Each file is a format example of tests/data/corpus/labels/formats (or the DOMINO corpus) with
the personal data written into it here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from sunrise_common.labels import LabelError, by_kind
from tests.conftest import CORPUS

F = CORPUS / "labels" / "formats"
NAME = "Hildegard Mustermann"
BIRTH = "14.03.1957"
HOSPITAL = "St. Elsewhere Klinik"
PATIENT_ID = "PSG-4711"
# Every spelling of the recording date (2023-11-18, 2023-11-19 after midnight) the files use.
REC_DATES = ("18/11/2023", "18.11.2023", "2023-11-18", "11/18/2023", "18.11.23", "11/19/2023", "2023-11-19")
SECRETS = ("Hildegard", "Mustermann", "14.03.1957", "14/03/1957", "1957-03-14", "Elsewhere", "4711", *REC_DATES)


def _read(rel: str) -> bytes:
    return (F / rel).read_bytes()


def _xml_insert(data: bytes, after: bytes, block: str) -> bytes:
    assert after in data
    return data.replace(after, after + block.encode(), 1)


def nsrr_xml() -> bytes:
    d = _read("nsrr_xml/shhs-like-nsrr.xml")
    d = d.replace(b"00.00.00 23.10.00", b"18.11.23 23.10.00")
    d = d.replace(b"<SoftwareVersion>Compumedics", f"<SoftwareVersion>Compumedics {HOSPITAL}".encode())
    d = d.replace(b"<ScoredEvent>", f'<ScoredEvent hospital="{HOSPITAL}">'.encode(), 1)
    d = _xml_insert(d, b"<PSGAnnotation>", f"<PatientInfo><Name>{NAME}</Name><DOB>{BIRTH}</DOB>"
                    f"<Hospital>{HOSPITAL}</Hospital><MRN>{PATIENT_ID}</MRN></PatientInfo>")
    return _xml_insert(d, b"<ScoredEvents>", "<ScoredEvent><EventType>Technician Notes|Technician Notes</EventType>"
                       f"<EventConcept>{NAME}|{NAME}</EventConcept><Start>10</Start><Duration>0</Duration>"
                       f"<Notes>{NAME} born {BIRTH} at {HOSPITAL}, {PATIENT_ID}</Notes></ScoredEvent>")


def nsrr_sro_xml() -> bytes:
    d = _read("nsrr_sro_xml/sof-like-sro.xml")
    d = _xml_insert(d, b"<PSGAnnotation>", f"<Patient>{NAME} {BIRTH} {PATIENT_ID}</Patient><Site>{HOSPITAL}</Site>")
    return _xml_insert(d, b"<ScoredEvents>", f"<ScoredEvent><EventConcept>{NAME}</EventConcept><Start>5</Start>"
                       f"<Duration>1</Duration><Notes>{HOSPITAL}</Notes></ScoredEvent>")


def profusion_xml() -> bytes:
    d = _read("profusion_xml/study-profusion.xml")
    d = _xml_insert(d, b"<CMPStudyConfig>", f"<PatientName>{NAME}</PatientName><BirthDate>{BIRTH}</BirthDate>"
                    f"<StudyDate>18.11.2023</StudyDate><Hospital>{HOSPITAL}</Hospital><PatientID>{PATIENT_ID}</PatientID>")
    return _xml_insert(d, b"<ScoredEvents>", f"<ScoredEvent><Name>{NAME}</Name><Start>5</Start><Duration>1</Duration>"
                       f"<Input>EEG</Input><Notes>{HOSPITAL}</Notes></ScoredEvent>")


def alice_rml() -> bytes:
    d = _read("alice_rml/alice-study.rml")
    d = d.replace(b"<ConfigName>PSG adult</ConfigName>", f"<ConfigName>{HOSPITAL}</ConfigName>".encode())
    d = _xml_insert(d, b'xmlns="http://www.respironics.com/PatientStudy.xsd">',
                    f"<Patient><Name>{NAME}</Name><BirthDate>1957-03-14</BirthDate><Id>{PATIENT_ID}</Id>"
                    f"<Hospital>{HOSPITAL}</Hospital></Patient>")
    return _xml_insert(d, b"<Events>", f'<Event Family="User" Type="Comment" Start="12" Duration="0" Note="{NAME}">'
                       f"<Comment>{NAME} {BIRTH}</Comment></Event>")


def _remlogic(rel: str) -> bytes:
    d = _read(rel)
    enc = "latin-1"
    t = d.decode(enc)
    t = re.sub(r"Patient:\t[^\r\n]*", f"Patient:\t{NAME}", t)
    t = re.sub(r"Patient ID:\t[^\r\n]*", f"Patient ID:\t{PATIENT_ID}\nDate of Birth:\t14/03/1957\nHospital:\t{HOSPITAL}", t)
    t = t.replace("\tSupine\t", f"\t{HOSPITAL}\t", 1).replace("\tDos\t", f"\t{HOSPITAL}\t", 1)
    t = t.rstrip("\r\n") + f"\nS2\tSupine\t23:30:00\t{NAME}\t0\t\n"
    return t.encode(enc)


def sandman_txt() -> bytes:
    t = _read("sandman_txt/sandman-events.txt").decode("latin-1")
    t = t.replace("Patient Name:\tDOE, JANE", f"Patient Name:\t{NAME}\r\nDate of Birth:\t14/03/1957\r\nHospital:\t{HOSPITAL}")
    t = t.replace("Patient ID:\tPSG-0003", f"Patient ID:\t{PATIENT_ID}")
    return (t + f"40\t{NAME}\t11:30:00 PM\t0\r\n").encode("latin-1")


def respironics_events() -> bytes:
    t = _read("respironics_csv/study-events.csv").decode()
    t = t.replace('"*",""', f'"{NAME}",""')
    return (t + f'"{NAME} {HOSPITAL}","N2","11:30:00 PM","41","11/18/2023","1","-","-","-","-","-","-","S","{PATIENT_ID}",""\r\n').encode()


def mne_txt() -> bytes:
    t = _read("mne_annotations/night-annot.txt").decode()
    t = t.replace("# MNE-Annotations\n", f"# MNE-Annotations\n# subject_info : {NAME} {BIRTH} {PATIENT_ID}\n# site : {HOSPITAL}\n")
    return (t + f"100.0,0.0,{NAME} 14/03/1957\n").encode()


def onset_duration_tsv() -> bytes:
    t = _read("mne_annotations/night-annot.txt").decode()
    rows = [ln.replace(",", "\t") for ln in t.splitlines() if not ln.startswith("#")]
    return ("\n".join(rows) + f"\n100.0\t0.0\t{NAME} {HOSPITAL} {BIRTH} 18.11.2023 {PATIENT_ID}\n").encode()


def mne_csv() -> bytes:
    t = _read("mne_annotations/night-annot.csv").decode()
    return (t + f"2023-11-18 23:30:00.000000,0.0,{NAME} {HOSPITAL} {PATIENT_ID} 14.03.1957\n").encode()


def bids_events() -> bytes:
    t = _read("bids_events/sub-01/ses-01/eeg/sub-01_ses-01_task-sleep_events.tsv").decode()
    lines = t.splitlines()
    lines[0] += "\tnotes"
    lines[1:] = [ln + f"\t{NAME} {BIRTH} {HOSPITAL} 18.11.2023 {PATIENT_ID}" for ln in lines[1:]]
    lines.append(f"200\t0\t{NAME}\tn/a\tn/a\tn/a\tn/a")
    return ("\n".join(lines) + "\n").encode()


def luna_annot() -> bytes:
    t = _read("luna_annot/night.annot").decode()
    t = f"# {NAME} | {HOSPITAL} {BIRTH} 18.11.2023\n# arousal:respiratory | {HOSPITAL} | Hildegard[txt]\n" + t
    t = t.replace("arousal:respiratory\tRERA", f"arousal:respiratory\t{NAME}", 1)
    return (t + f"{NAME}\t{PATIENT_ID}\t.\t100\t+1\tpatient={NAME};dob={BIRTH}\n").encode()


def visbrain_sd() -> bytes:
    t = _read("visbrain_hyp/night_stage-duration.txt").decode()
    return (f"*Patient\t{NAME}\n*Hospital\t{HOSPITAL}\n*Date\t18.11.2023\n*Birth\t{BIRTH}\n" + t).encode()


def stage_per_line_csv() -> bytes:
    t = _read("one_per_line/hypnogram_yasa_int.csv").decode("utf-8-sig")
    lines = t.splitlines()
    lines[0] += ";patient"
    lines[1:] = [ln + f";{NAME} {BIRTH} {HOSPITAL} {PATIENT_ID} 18.11.2023" for ln in lines[1:]]
    return ("\r\n".join(lines) + "\r\n").encode()


def alice_staging() -> bytes:
    rows = [f"{i + 1},11:{10 + i // 2:02d}:{30 * (i % 2):02d} PM,{'WK' if i < 4 else 'N2'},{NAME} {HOSPITAL}" for i in range(10)]
    return (f"Patient {NAME} {BIRTH} {PATIENT_ID} 18.11.2023\r\n" + "\r\n".join(rows) + "\r\n").encode()


def wsc_txt() -> bytes:
    from .test_label_registry import WSC

    return WSC + f"00:20:00.00\tCOMMENT - {NAME} - {BIRTH} - {HOSPITAL} - {PATIENT_ID} - 18.11.2023\n".encode()


def yasa_json() -> bytes:
    import json

    return json.dumps({"values": ["WAKE", "N1", "N2"] * 10, "n_stages": 5, "freq": "30s",
                       "start": "2023-11-18T23:10:00", "scorer": f"{NAME} {HOSPITAL} {PATIENT_ID}",
                       "proba": None, "patient": {"name": NAME, "dob": BIRTH}}).encode()


def domino() -> bytes:
    t = (CORPUS / "labels/domino/rbdtector_test1/Sleep profile - test1 Unbekannt.txt").read_text()
    t = t.replace("Start Time: 23.09.2020 01:00:00", "Start Time: 18.11.2023 01:00:00")
    return (f"Patient: {NAME}\nBirth date: {BIRTH}\nHospital: {HOSPITAL}\nPatient ID: {PATIENT_ID}\n" + t).encode()


CASES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "nsrr_xml": ("nsrr_xml", nsrr_xml),
    "nsrr_sro_xml": ("nsrr_xml", nsrr_sro_xml),
    "profusion_xml": ("profusion_xml", profusion_xml),
    "alice_rml": ("alice_rml", alice_rml),
    "remlogic_en": ("remlogic_txt", lambda: _remlogic("remlogic_txt/remlogic-export-en.txt")),
    "remlogic_fr": ("remlogic_txt", lambda: _remlogic("remlogic_txt/remlogic-export-fr.txt")),
    "sandman_txt": ("sandman_txt", sandman_txt),
    "respironics_events_csv": ("respironics_events_csv", respironics_events),
    "mne_annotations_txt": ("mne_annotations_txt", mne_txt),
    "mne_annotations_csv": ("mne_annotations_csv", mne_csv),
    "onset_duration_tsv": ("onset_duration_tsv", onset_duration_tsv),
    "bids_events": ("bids_events", bids_events),
    "luna_annot": ("luna_annot", luna_annot),
    "visbrain_stage_duration": ("visbrain_stage_duration", visbrain_sd),
    "stage_per_line": ("stage_per_line", stage_per_line_csv),
    "domino_sleep_profile": ("domino_sleep_profile", domino),
    "alice_staging_csv": ("alice_staging_csv", alice_staging),
    "wsc_txt": ("wsc_txt", wsc_txt),
    "yasa_json": ("yasa_json", yasa_json),
}


def _found(data: bytes) -> list[str]:
    text = data.decode("latin-1").lower()
    return [s for s in SECRETS if s.lower() in text]


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_personal_data_survives_anonymisation(case: str) -> None:
    kind, build = CASES[case]
    data = build()
    planted = _found(data)
    assert {"Hildegard", "Elsewhere"} <= set(planted), "the test file must carry the personal data"
    anon = by_kind(kind).anonymise(data)
    assert _found(anon.data) == []
    assert not any(_found(w.encode("latin-1", "replace")) for w in anon.warnings)


@pytest.mark.parametrize(("kind", "data"), [
    ("respironics_stages_csv", f"255,10,\n{NAME},10,\n".encode()),
    ("elan_hyp", f"time_base 1\nsampling_period 0.004\nepoch_nb 2\nepoch_list\n0\n{NAME}\n".encode()),
])
def test_formats_of_numbers_only_refuse_text_with_a_reason_that_does_not_quote_it(kind: str, data: bytes) -> None:
    with pytest.raises(LabelError) as info:
        by_kind(kind).anonymise(data)
    assert "Hildegard" not in info.value.detail
    assert "line 2" in info.value.detail or "line 6" in info.value.detail


def test_every_text_format_has_a_personal_data_case() -> None:
    from sunrise_common.labels import FORMATS

    # embla_xml, luna_xml: their own files writes the patient block and notes (test_label_embla_xml.py).
    covered = {k for k, _ in CASES.values()} | {"respironics_stages_csv", "elan_hyp", "embla_xml", "luna_xml"}
    # EDF+ label files go through the EDF anonymiser (tests/edf); the other DOMINO kinds share
    # the sleep profile's anonymiser (tests/labels/test_label_anonymise.py).
    skipped = {"edf_hypnogram", "domino_flow_events", "domino_arousals", "domino_generic", "domino_other"}
    assert {f.kind for f in FORMATS} - skipped == covered

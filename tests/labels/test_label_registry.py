"""The registry: detection by content (name second), never a silent empty result, reasons in the
parser's own vocabulary, and the format rules the examples do not all exercise (movement time kept
apart, the ±12 h midnight rule before the start, transitions ending at the recording end,
localised headers, the BIDS hypnogram extension, YASA codes)."""

from __future__ import annotations

import re

import pytest

from sunrise_common.labels import FORMATS, LabelError, by_kind, detect
from tests.conftest import CORPUS

F = CORPUS / "labels" / "formats"
NAME = "Hildegard Mustermann"


def test_the_registry_lists_every_kind_once_and_detect_label_kind_uses_it():
    from sunrise_common.labels import LABEL_KINDS, detect_label_kind

    kinds = [f.kind for f in FORMATS]
    assert len(kinds) == len(set(kinds)) == len(LABEL_KINDS)
    assert detect_label_kind("x.rml", (F / "alice_rml/alice-study.rml").read_bytes()) == "alice_rml"


def test_content_decides_before_the_file_name():
    xml = (F / "nsrr_xml/shhs-like-nsrr.xml").read_bytes()
    assert detect(xml, "night.txt").kind == "nsrr_xml"
    rml = (F / "alice_rml/alice-study.rml").read_bytes()
    assert detect(rml, "study.xml").kind == "alice_rml"


def test_the_name_breaks_a_tie_only_where_content_cannot():
    # A bare label list could be many things: it is read as one stage per line either way.
    data = b"W\nN1\nN2\n"
    assert detect(data, "night.eannot").kind == "stage_per_line"
    assert detect(data, "hypno.txt").kind == "stage_per_line"


# A file of each format that has its headers but no stage and no event.
EMPTY = {
    "nsrr_xml": b"<PSGAnnotation><EpochLength>30</EpochLength><ScoredEvents/></PSGAnnotation>",
    "profusion_xml": b"<CMPStudyConfig><EpochLength>30</EpochLength><SleepStages/></CMPStudyConfig>",
    "alice_rml": b'<PatientStudy xmlns="http://www.respironics.com/PatientStudy.xsd"><ScoringData/></PatientStudy>',
    "embla_xml": b"<EventExport><Event><Type>SLEEP-S0</Type><Location>C4</Location></Event></EventExport>",
    "luna_xml": b"<Annotations><StartTime>23.10.00</StartTime><Instances/></Annotations>",
    "remlogic_txt": b"RemLogic Event Export\nRecording Date:\t18/11/2023\n\nTime [hh:mm:ss]\tEvent\tDuration[s]\n",
    "sandman_txt": b"Sandman Elite\nStart Time: 18/11/2023 11:10:00 PM\n\nEpoch\tEvent\tStart Time\tDuration\n",
    "respironics_events_csv": b'"Event type","Stage","Time","Epoch","Date","Duration"\n',
    "respironics_stages_csv": b"\n",
    "mne_annotations_txt": b"# MNE-Annotations\n# onset, duration, description\n",
    "mne_annotations_csv": b"onset,duration,description\n",
    "onset_duration_tsv": b"\n",
    "alice_staging_csv": b"Epoch,Time,Stage\n",
    "wsc_txt": b"\n",
    "yasa_json": b'{"values": [], "n_stages": 5, "freq": "30s", "start": null}',
    "bids_events": b"onset\tduration\ttrial_type\n",
    "luna_annot": b"class\tinstance\tchannel\tstart\tstop\tmeta\n",
    "elan_hyp": b"time_base 1\nsampling_period 0.004\nepoch_nb 0\nepoch_list\n",
    "visbrain_stage_duration": b"*Duration_sec\t7200\n",
    "stage_per_line": b"\n",
    "domino_sleep_profile": b"Signal ID: SchlafProfil\\profil\nStart Time: 30.05.2024 22:00:00\nRate: 30 s\n\n",
}


@pytest.mark.parametrize("kind", sorted(EMPTY))
def test_a_file_with_no_stage_and_no_event_is_a_permanent_failure_naming_the_format(kind: str):
    fmt = by_kind(kind)
    with pytest.raises(LabelError) as info:
        fmt.parse(EMPTY[kind])
    assert info.value.reason in ("no_labels", "bad_table")
    if info.value.reason == "no_labels":
        assert fmt.title.split()[0] in info.value.detail


def test_every_text_and_xml_format_has_an_empty_case():
    # An event export with its header and no row is an event-free night: tests/labels/test_label_empty_export.py.
    skipped = {"edf_hypnogram", "domino_arousals", "domino_generic", "domino_other", "domino_flow_events"}
    assert {f.kind for f in FORMATS} - skipped == set(EMPTY)


def _examples():
    return sorted(p for p in F.rglob("*") if p.is_file() and p.suffix not in (".json", ".py") and "scans" not in p.name)


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.name)
def test_a_bad_value_is_refused_with_a_reason_that_never_quotes_the_file(path):
    """Replace the first number or clock time of a data row by a name: the reason (if the file
    is refused) names the line and the field, never the name."""
    data = path.read_bytes()
    fmt = detect(data, path.name)
    text = data.decode("latin-1")
    lines = text.splitlines(keepends=True)
    token = re.compile(r"(?<![\w:.+|])(?:\d{1,2}:\d{2}:\d{2}(?:\.\d+)?(?:\s*[AP]M)?|-?\d+(?:\.\d+)?)(?![\w:.])")
    for i in range(len(lines) // 2, len(lines)):
        found = list(token.finditer(lines[i]))
        if found:
            m = found[-1]  # the last value of the row: a time, duration, code or end time
            lines[i] = lines[i][: m.start()] + NAME + lines[i][m.end():]
            break
    else:  # a list of labels without numbers: the middle label becomes the name
        lines[len(lines) // 2] = NAME + "\n"
    bad = "".join(lines).encode("latin-1")
    with pytest.raises(LabelError) as info:
        fmt.parse(bad)
    assert "Hildegard" not in info.value.detail and "Hildegard" not in str(info.value)
    assert re.search(r"line \d+|Event \d+|ScoredEvent \d+|Stage \d+|column \d+", info.value.detail), info.value.detail


def test_detect_reasons_name_the_parser_vocabulary_not_the_file():
    with pytest.raises(LabelError) as info:
        detect(f"{NAME}\nborn 14.03.1957\n".encode(), "x.txt")
    assert info.value.reason == "unknown_label_format"
    assert "Hildegard" not in info.value.detail and "1957" not in info.value.detail
    with pytest.raises(LabelError) as info:
        by_kind("domino_sleep_profile").parse(b"Signal ID: profil\nStart Time: " + NAME.encode() + b"\n\n01:00:00,000; N2\n")
    assert info.value.reason == "bad_start_time"
    assert "Start Time:" in info.value.detail and "Hildegard" not in info.value.detail


def test_movement_time_and_unscored_stay_apart_from_wake_with_their_native_codes():
    en = (F / "remlogic_txt/remlogic-export-en.txt").read_bytes()
    en = en.replace(b"23:10:30\tSLEEP-S0", b"23:10:30\tSLEEP-MT", 1)
    hyp = by_kind("remlogic_txt").parse(en).hypnogram
    assert hyp.stages[:3] == ["W", "UNS", "W"]
    assert hyp.native[1] == "SLEEP-MT" and hyp.native[-1] == "SLEEP-UNSCORED"
    prof = by_kind("profusion_xml").parse((F / "profusion_xml/study-profusion.xml").read_bytes()).hypnogram
    assert prof.stages[-1] == "UNS" and prof.native[-1] == "9"
    assert "4" in prof.native and prof.stages[prof.native.index("4")] == "N3"  # R&K stage 4


def test_time_only_rows_before_the_start_stay_before_it_under_the_twelve_hour_rule():
    data = (F / "sandman_txt/sandman-events.txt").read_bytes()
    data = data.replace(b"5\tLights Out\t11:12:10 PM", b"0\tLights Out\t11:05:00 PM")
    ls = by_kind("sandman_txt").parse(data)
    assert ls.lights_off_s == -300.0  # not 86,100 s: 5 min before the start, not the next evening
    assert ls.lights_on_s == 6930.0  # 01:05:30 AM, across midnight


def test_twelve_hour_clock_at_noon_and_midnight():
    from sunrise_common.labels.common import parse_clock

    assert parse_clock("12:00:00 AM", "t").hour == 0
    assert parse_clock("12:30:00 PM", "t").hour == 12
    assert parse_clock("11:59:30 p.m.", "t").hour == 23
    with pytest.raises(LabelError):
        parse_clock("13:00:00 PM", "t")


def test_alice_transitions_end_at_the_recording_end():
    data = (F / "alice_rml/alice-study.rml").read_bytes().replace(b"<Duration>7200</Duration>", b"<Duration>7260</Duration>", 1)
    hyp = by_kind("alice_rml").parse(data).hypnogram
    assert len(hyp.stages) == 242
    assert hyp.stages[-10:] == ["UNS"] * 10  # NotScored from 6960 s to the session end at 7260 s
    assert hyp.stages[-11] == "W"


def test_alice_ignores_the_machine_staging():
    data = (F / "alice_rml/alice-study.rml").read_bytes()
    hyp = by_kind("alice_rml").parse(data).hypnogram
    assert hyp.stages[20] == "N2" and hyp.stages[12] == "N1"  # the machine block says W until 600 s


def test_a_german_remlogic_export_with_bom_crlf_and_decimal_commas_reads_like_the_english_one():
    en = (F / "remlogic_txt/remlogic-export-en.txt").read_bytes()
    de = en.replace(b"Sleep Stage\tPosition\tTime [hh:mm:ss]\tEvent\tDuration[s]\tLocation",
                    "Schlafstadium\tLage\tUhrzeit [hh:mm:ss]\tEreignis\tDauer[s]\tOrt".encode())
    de = de.replace(b"Recording Date:", b"Aufnahmedatum:").replace(b"\t18.5\t", b"\t18,5\t")
    de = de.replace(b"23:27:21.5", b"23:27:21,5")
    de = b"\xef\xbb\xbf" + de.replace(b"\n", b"\r\n")
    fmt = detect(de, "export.txt")
    assert fmt.kind == "remlogic_txt"
    a, b = fmt.parse(en), fmt.parse(de)
    assert a.hypnogram.stages == b.hypnogram.stages and a.start == b.start
    assert [(e.onset_s, e.duration_s, e.type) for e in a.events] == [(e.onset_s, e.duration_s, e.type) for e in b.events]
    assert any(e.duration_s == 18.5 for e in b.events)


def test_the_proposed_bids_hypnogram_tsv_reads_its_stage_column():
    data = b"onset\tduration\tstage\n0\t30\tW\n30\t60\tN2\n90\t30\tR\n120\t30\tN3\n"
    fmt = detect(data, "sub-01_task-sleep_hypnogram.tsv")
    assert fmt.kind == "bids_events"
    assert fmt.parse(data).hypnogram.stages == ["W", "N2", "N2", "REM", "N3"]


def test_a_yasa_hypnogram_with_a_code_5_is_refused_as_ambiguous():
    with pytest.raises(LabelError) as info:
        by_kind("stage_per_line").parse(b"0\n1\n2\n5\n")
    assert info.value.reason == "ambiguous_stage_code"
    assert "line 4" in info.value.detail


def test_yasa_codes_map_rem_to_4_and_keep_art_and_uns_apart():
    hyp = by_kind("stage_per_line").parse(b"0\n1\n2\n3\n4\n-1\n-2\n").hypnogram
    assert hyp.stages == ["W", "N1", "N2", "N3", "REM", "UNS", "UNS"]
    assert hyp.native[-2:] == ["-1", "-2"]


def test_nsrr_distributed_xml_has_a_time_of_day_but_no_date():
    ls = by_kind("nsrr_xml").parse((F / "nsrr_xml/shhs-like-nsrr.xml").read_bytes())
    assert ls.start is None and str(ls.start_time) == "23:10:00"
    assert len(ls.hypnogram.stages) == 240


def test_translator_xml_without_event_type_yields_its_sro_and_sdo_stages():
    """On main before the registry these files parsed to 0 epochs (stages became events)."""
    ls = by_kind("nsrr_xml").parse((F / "nsrr_sro_xml/sof-like-sro.xml").read_bytes())
    assert len(ls.hypnogram.stages) == 240 and ls.hypnogram.counts()["N3"] == 36
    sdo = (
        b"<PSGAnnotation><EpochLength>30</EpochLength><ScoredEvents>"
        b"<ScoredEvent><EventConcept> SDO:WakeState</EventConcept><Starttime>0</Starttime><Duration>60</Duration></ScoredEvent>"
        b"<ScoredEvent><EventConcept>SDO:NonRapidEyeMovementSleep-N4</EventConcept><Start>60</Start><Duration>30</Duration></ScoredEvent>"
        b"<ScoredEvent><EventConcept>SDO:RapidEyeMovementSleep</EventConcept><Start>90</Start><Duration>30</Duration></ScoredEvent>"
        b"<ScoredEvent><EventConcept>SLEEP-S0</EventConcept><Start>120</Start><Duration>30</Duration></ScoredEvent>"
        b"</ScoredEvents></PSGAnnotation>"
    )
    ls = by_kind("nsrr_xml").parse(sdo)
    assert ls.hypnogram.stages == ["W", "W", "N3", "REM", "W"]


def test_the_misspelled_translator_root_is_accepted():
    data = b"<PSGAnnotaion><ScoredEvents><ScoredEvent><EventType>Stages|Stages</EventType>" \
           b"<EventConcept>Wake|0</EventConcept><Start>0</Start><Duration>30</Duration></ScoredEvent></ScoredEvents></PSGAnnotaion>"
    assert detect(data, "x.xml").kind == "nsrr_xml"
    assert by_kind("nsrr_xml").parse(data).hypnogram.stages == ["W"]


def test_a_headerless_nch_style_tsv_reads_runs_off_the_grid_events_and_lights():
    data = (b"0.0\t30.0\tSleep stage W\n30.0\t60.0\tSleep stage N2\n35.5\t0\tLights Off\n"
            b"40.25\t12.5\tOxygen Desaturation\n90\t30\tSleep stage R\n")
    fmt = detect(data, "nch.tsv")
    assert fmt.kind == "onset_duration_tsv"
    ls = fmt.parse(data)
    assert ls.hypnogram.stages == ["W", "N2", "N2", "REM"]
    assert ls.lights_off_s == 35.5
    assert [(e.type, e.onset_s, e.duration_s) for e in ls.events] == [("desaturation", 40.25, 12.5)]


def test_alice_plain_staging_reads_epochs_by_their_clock_across_midnight():
    data = (b"Epoch,Time,Stage\r\n1,11:59:00 PM,WK\r\n2,11:59:30 PM,N1\r\n3,12:00:00 AM,N2\r\n"
            b"5,12:01:00 AM,RE\r\n6,12:01:30 AM,12\r\n")
    fmt = detect(data, "staging.csv")
    assert fmt.kind == "alice_staging_csv"
    ls = fmt.parse(data)
    assert ls.hypnogram.stages == ["W", "N1", "N2", "UNS", "REM", "N2"]
    assert str(ls.start_time) == "23:59:00"


WSC = (b"23:50:00.00\tLIGHTS OUT\n23:50:00.00\tSTAGE - W\n23:55:00.00\tSTAGE - N1\n23:56:00.00\tSTAGE - N2\n"
       b"23:57:10.50\tRESPIRATORY EVENT - DUR: 44.9 SEC. - HYPOPNEA - DESAT 91.6 %\n"
       b"00:02:00.00\tDESATURATION - DUR: 20 SEC. - MIN 91.6 % - DROP 3.1 %\n00:05:00.00\tSTAGE - R\n"
       b"00:15:00.00\tLIGHTS ON\n")


def test_wsc_text_reads_stage_changes_across_midnight_events_and_desaturation_values():
    fmt = detect(WSC, "wsc.txt")
    assert fmt.kind == "wsc_txt"
    ls = fmt.parse(WSC)
    assert ls.hypnogram.counts() == {"W": 10, "N1": 2, "N2": 18, "N3": 0, "REM": 20, "UNS": 0}
    assert (ls.lights_off_s, ls.lights_on_s) == (0.0, 1500.0)
    hyp, desat = ls.events
    assert (hyp.type, hyp.onset_s, hyp.duration_s) == ("hypopnea", 430.5, 44.9)
    assert (desat.type, desat.onset_s, desat.nadir, round(desat.baseline, 1)) == ("desaturation", 720.0, 91.6, 94.7)


def test_a_one_column_hypnogram_with_its_column_name_is_read():
    data = b"stage\nW\nN1\nN2\nR\n"
    fmt = detect(data, "hypno.csv")
    assert fmt.kind == "stage_per_line"
    assert fmt.parse(data).hypnogram.stages == ["W", "N1", "N2", "REM"]
    assert fmt.parse(fmt.anonymise(data).data).hypnogram.stages == ["W", "N1", "N2", "REM"]


def test_a_yasa_json_hypnogram_reads_values_freq_and_start():
    data = (b'{"values": ["WAKE", "N1", "N2", "N3", "REM", "ART", "UNS"], "n_stages": 5, "freq": "30s", '
            b'"start": "2023-11-18 23:10:00+01:00", "scorer": "S1", "proba": null}')
    fmt = detect(data, "night.json")
    assert fmt.kind == "yasa_json"
    ls = fmt.parse(data)
    assert ls.hypnogram.stages == ["W", "N1", "N2", "N3", "REM", "UNS", "UNS"]
    assert str(ls.start) == "2023-11-18 23:10:00"


def test_deeply_nested_json_is_a_reason_not_a_recursion_error():
    with pytest.raises(LabelError) as info:
        by_kind("yasa_json").parse(b"[" * 100_000 + b"]" * 100_000)
    assert info.value.reason in ("json_too_deep", "bad_json")


def test_a_domino_header_missing_start_time_is_named_in_dominos_words():
    with pytest.raises(LabelError) as info:
        detect(b"Signal ID: SchlafProfil\\profil\nRate: 30 s\n\n01:00:00,000; N2\n", "x.txt")
    assert info.value.reason == "bad_start_time"
    assert info.value.detail == "SOMNOmedics DOMINO: the header has no Start Time: line"

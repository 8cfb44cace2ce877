import pytest

from sunrise_common.labels import LabelError, detect_label_kind

EXPECTED = {
    "Sleep profile - test1 Unbekannt.txt": "domino_sleep_profile",
    "Sleep profile - test1 Unbekannt SNORE.txt": "domino_sleep_profile",
    "Flow Events - test1 Unbekannt.txt": "domino_flow_events",
    "Classification Arousals - test1 Unbekannt.txt": "domino_arousals",
    "Generic - test1 Unbekannt.txt": "domino_generic",
    "Generic_NO_test1.txt": "domino_generic",
}


@pytest.mark.parametrize("name,kind", sorted(EXPECTED.items()))
def test_detect_recognises_each_domino_export(domino_dir, name, kind):
    head = (domino_dir / name).read_bytes()[:4096]
    assert detect_label_kind(name, head) == kind


def test_detect_uses_content_not_the_renamed_file_name(domino_dir):
    for name, kind in EXPECTED.items():
        head = (domino_dir / name).read_bytes()[:4096]
        assert detect_label_kind("labels.txt", head) == kind


def test_detect_rejects_rbdtector_side_file(domino_dir):
    name = "test1_Start-Baseline.txt"
    with pytest.raises(LabelError) as info:
        detect_label_kind(name, (domino_dir / name).read_bytes())
    assert info.value.reason == "unknown_label_format"


def test_detect_recognises_sleep_edf_hypnograms_in_edf_and_bdf(corpus):
    for path in (corpus / "edf" / "edfio__SC4001EC-Hypnogram.edf", corpus / "bdf" / "edfio__SC4001EC-Hypnogram.bdf"):
        assert detect_label_kind(path.name, path.read_bytes()[:4096]) == "edf_hypnogram"


def test_detect_rejects_a_psg_recording_uploaded_as_labels(corpus):
    path = corpus / "edf" / "edfio__short_psg.edf"
    with pytest.raises(LabelError) as info:
        detect_label_kind(path.name, path.read_bytes()[:4096])
    assert info.value.reason == "unknown_label_format"


def test_detect_recognises_nsrr_xml():
    assert detect_label_kind("a.xml", b'<?xml version="1.0"?>\n<PSGAnnotation><EpochLength>30') == "nsrr_xml"


def test_detect_rejects_other_xml_and_empty_files():
    with pytest.raises(LabelError) as info:
        detect_label_kind("a.xml", b"<?xml version='1.0'?><svg/>")
    assert info.value.reason == "unknown_label_format"
    assert detect_label_kind("a.xml", b"<?xml version='1.0'?><CMPStudyConfig/>") == "profusion_xml"
    with pytest.raises(LabelError) as info:
        detect_label_kind("a.txt", b"")
    assert info.value.reason == "empty_label_file"


def test_detect_classifies_unknown_domino_signal_as_other():
    head = b"Signal ID: SpO2\\spo2\r\nStart Time: 30.05.2024 20:59:00\r\nSample Rate: 4\r\nData:\r\n"
    assert detect_label_kind("SpO2.txt", head) == "domino_other"

import json

import pytest

from psg_prep.channels import CHANNEL_TYPES, classify, load_table, map_channels

TYPICAL = {
    "EEG Fpz-Cz": "EEG",
    "EEG Pz-Oz": "EEG",
    "C3-A2": "EEG",
    "EEG(sec)": "EEG",
    "Fc5.": "EEG",
    "A1": "EEG",
    "EOG horizontal": "EOG",
    "E1": "EOG",
    "E1-M2": "EOG",
    "LOC": "EOG",
    "EMG submental": "EMG_CHIN",
    "Chin": "EMG_CHIN",
    "Chin1-Chin2": "EMG_CHIN",
    "Leg": "EMG_LEG",
    "Leg L": "EMG_LEG",
    "ECG": "ECG",
    "EKG": "ECG",
    "SaO2": "SPO2",
    "SpO2": "SPO2",
    "H.R.": "PULSE",
    "Pulse": "PULSE",
    "Resp oro-nasal": "AIRFLOW_THERMISTOR",
    "Flow": "AIRFLOW_THERMISTOR",
    "Thermistor": "AIRFLOW_THERMISTOR",
    "Nasal Pressure": "NASAL_PRESSURE",
    "NEW AIR": "NASAL_PRESSURE",
    "THOR RES": "EFFORT_THORAX",
    "ABDO RES": "EFFORT_ABDOMEN",
    "Thorax": "EFFORT_THORAX",
    "Abdomen": "EFFORT_ABDOMEN",
    "POSITION": "POSITION",
    "Snore": "SNORE",
    "Event marker": "MARKER",
    "Temp rectal": "UNKNOWN",
    "LIGHT": "UNKNOWN",
}


@pytest.mark.parametrize("label,ctype", sorted(TYPICAL.items()))
def test_typical_psg_labels_map_to_their_type(label, ctype):
    assert classify(label)[0] == ctype


def test_every_type_in_the_table_is_a_known_type():
    assert {rule.type for rule in load_table()} <= set(CHANNEL_TYPES)


def test_names_are_canonical_and_unique():
    infos = map_channels(["EEG Fpz-Cz", "EEG Pz-Oz", "SaO2", "SpO2", "EMG submental", "Chin", "Temp rectal", "Temp rectal"])
    names = [i.name for i in infos]
    assert names == ["EEG_FPZ_CZ", "EEG_PZ_OZ", "SPO2", "SPO2_2", "EMG_CHIN_SUBMENTAL", "EMG_CHIN",
                     "UNKNOWN_TEMP_RECTAL", "UNKNOWN_TEMP_RECTAL_2"]
    assert all(n.replace("_", "").isalnum() and n.upper() == n for n in names)


def test_unknown_channels_are_kept_and_marked():
    infos = map_channels(["Foo bar", "Temp rectal"])
    assert [i.type for i in infos] == ["UNKNOWN", "UNKNOWN"]
    assert len(infos) == 2


def test_user_json_rules_extend_and_override(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps([{"pattern": "^Kinn", "type": "EMG_CHIN", "name": "CHIN_EMG"},
                                {"pattern": "^Temp", "type": "MARKER"}]))
    table = load_table(path)
    assert classify("Kinn links", table) == ("EMG_CHIN", "CHIN_EMG")
    assert classify("Temp rectal", table)[0] == "MARKER"
    assert map_channels(["Kinn links"], table)[0].name == "CHIN_EMG"


def test_user_csv_and_mapping_forms(tmp_path):
    csv_path = tmp_path / "map.csv"
    csv_path.write_text("pattern,type,name\n^Atmung,AIRFLOW_THERMISTOR,\n")
    assert classify("Atmung", load_table(csv_path))[0] == "AIRFLOW_THERMISTOR"
    obj = tmp_path / "map2.json"
    obj.write_text(json.dumps({"^Bauch": "EFFORT_ABDOMEN"}))
    assert classify("Bauch", load_table(obj))[0] == "EFFORT_ABDOMEN"


def test_bad_user_rule_is_rejected_with_the_offending_value(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"^X": "NOT_A_TYPE"}))
    with pytest.raises(ValueError, match="NOT_A_TYPE"):
        load_table(path)

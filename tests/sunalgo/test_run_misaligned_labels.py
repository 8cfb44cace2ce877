"""sunalgo makes no training rows and no agreement from labels psg_prep found misaligned
(``labels.misaligned`` in its meta.json, issue 23): rows from labels of another time would teach
the model wrong stages."""

from __future__ import annotations

import json
import shutil

from sunalgo.run import run_sunalgo


def test_sunalgo_makes_no_training_rows_from_misaligned_labels(one_hour_night, tmp_path):
    root = one_hour_night
    run_sunalgo(root / "prep", root / "psg", tmp_path / "aligned")
    assert (tmp_path / "aligned" / "training_rows.csv").is_file()  # the same night, aligned: rows
    psg = tmp_path / "psg"
    shutil.copytree(root / "psg", psg)
    meta = json.loads((psg / "meta.json").read_text())
    mis = {"reason": "label_misaligned", "offset_s": 14400.0, "scored_epochs": 120, "scored_in_recording": 0}
    labels = meta["labels"] if isinstance(meta.get("labels"), dict) else {}
    (psg / "meta.json").write_text(json.dumps({**meta, "labels": {**labels, "misaligned": mis}}))
    run_sunalgo(root / "prep", psg, tmp_path / "out")
    assert not (tmp_path / "out" / "training_rows.csv").exists()
    assert not (tmp_path / "out" / "agreement.json").exists()
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert scores["label_misaligned"] == mis
    assert any(w.startswith("label_misaligned: 0 of 120 scored epochs") for w in scores["warnings"])

"""The accuracy report: which model, side by side, severity classes, readable counts."""

from __future__ import annotations

import json

import pytest

from sunrise_cli.report import build_report, severity_agreement, text_color

OLD, NEW = "sunalgo-1.0+logistic-1", "sunalgo-1.0+mine-1"


def night(i: int, version: str, tst_pred: float, rdi_pred: float, rdi_psg: float, at: float) -> dict:
    return {"night": f"n{i}", "algo_version": version, "finished_at": at, "TST_pred": tst_pred, "TST_psg": 400.0,
            "RDI_pred": rdi_pred, "RDI_psg": rdi_psg, "accuracy_sw": 0.8, "kappa_sw": 0.5,
            "confusion_sw": [[20, 10], [5, 765]]}


PSG_RDI = [2.0, 8.0, 20.0, 40.0]


@pytest.fixture
def two_versions():
    old = [night(i, OLD, 410.0 + i, r + 4.0, r, 1000.0) for i, r in enumerate(PSG_RDI)]
    new = [night(i, NEW, 401.0, r + 0.5, r, 2000.0) for i, r in enumerate(PSG_RDI)]
    return old + new


def test_severity_agreement_counts_nights_at_each_clinical_threshold():
    rows = severity_agreement([6.0, 7.0, 10.0, 35.0], PSG_RDI)
    at = {r["threshold"]: r for r in rows}
    assert sorted(at) == [5.0, 15.0, 30.0]
    assert (at[5.0]["tp"], at[5.0]["fn"], at[5.0]["fp"], at[5.0]["tn"]) == (3, 0, 1, 0)
    assert at[5.0]["sensitivity"] == 1.0 and at[5.0]["specificity"] == 0.0 and at[5.0]["accuracy"] == 0.75
    assert (at[15.0]["tp"], at[15.0]["fn"], at[15.0]["fp"], at[15.0]["tn"]) == (1, 1, 0, 2)
    assert at[30.0]["sensitivity"] == 1.0 and at[30.0]["accuracy"] == 1.0


def test_severity_agreement_leaves_undefined_ratios_empty():
    rows = severity_agreement([1.0, 2.0], [1.0, 3.0])
    assert rows[0]["sensitivity"] is None and rows[0]["specificity"] == 1.0  # no PSG-positive night


def test_the_report_names_both_versions_and_shows_them_side_by_side(two_versions, tmp_path):
    path = build_report(two_versions, tmp_path)
    page = path.read_text()
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["versions"] == [OLD, NEW]  # oldest results first: the new model on the right
    assert "<title>sunalgo vs PSG: logistic-1, mine-1</title>" in page
    old, new = summary["summaries"][OLD], summary["summaries"][NEW]
    assert old["tst"]["bias"] == pytest.approx(11.5) and new["tst"]["bias"] == pytest.approx(1.0)
    assert old["ahi"]["bias"] == pytest.approx(4.0) and new["ahi"]["bias"] == pytest.approx(0.5)
    # both biases in one row of the side-by-side table, with its unit
    assert "<th class='rowhead'>TST bias</th><td class='unit'>min</td><td>+11.5</td><td>+1.0</td>" in page
    assert "<th class='rowhead'>AHI bias</th><td class='unit'>events/h</td><td>+4.00</td><td>+0.50</td>" in page
    # severity classes at 5/15/30 with counts in words and the published figure beside accuracy
    for t in ("5", "15", "30"):
        assert f"AHI ≥ {t}: PSG+ sunalgo+ / PSG+ sunalgo− / PSG− sunalgo+ / PSG− sunalgo−" in page
    assert "AHI ≥ 5: accuracy <small>(published 0.92)</small>" in page
    assert "<td>3 / 0 / 1 / 0</td><td>3 / 0 / 0 / 1</td>" in page  # logistic-1 over-calls n0 at 5/h
    # per-night deltas: the new model minus the first
    assert "<th colspan='7' class='group'>mine-1</th>" in page and "<th>Δ TST<br>min</th>" in page
    assert "<td>-9.0</td>" in page
    assert len(list(tmp_path.glob("*.png"))) == 2


def test_a_single_version_report_has_no_delta_columns(two_versions, tmp_path):
    page = build_report([n for n in two_versions if n["algo_version"] == NEW], tmp_path).read_text()
    assert "mine-1" in page and "logistic-1" not in page and "Δ TST" not in page


def test_counts_on_the_confusion_matrix_contrast_with_their_cell():
    """The '2585' cell was black on navy: the text colour follows the cell's luminance."""
    assert text_color(2585, vmax=2585) == "white"
    assert text_color(0, vmax=2585) != "white"
    assert text_color(40, vmax=2585) != "white"


@pytest.mark.skipif(not __import__("shutil").which("chromium"), reason="needs chromium (apt-get install -y chromium)")
def test_screenshots_of_the_report_show_each_section(two_versions, tmp_path):
    from PIL import Image

    from sunrise_cli.report import SCREENSHOTS, screenshots

    pngs = screenshots(build_report(two_versions, tmp_path / "report"), tmp_path / "img")
    assert [p.name for p in pngs] == list(SCREENSHOTS)
    for png in pngs:
        with Image.open(png) as img:
            assert img.size == SCREENSHOTS[png.name][1]
            # not a blank page: a section under the title has text, rules and (for figures) plots
            assert len(img.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 8
            assert img.convert("L").getextrema()[0] < 64
        assert png.stat().st_size < 200_000

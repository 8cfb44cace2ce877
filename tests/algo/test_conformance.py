"""The conformance kit passes both plug-ins in the repository and names the rule a broken one breaks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sunrise_algo.builtin.model import DEFAULT_MODEL
from sunrise_algo.builtin.plugin import Builtin
from sunrise_algo.scores import CANONICAL_SCORES
from sunrise_algo import conformance, registry
from sunrise_algo.interface import AlgorithmOutput, PreparedNight
from sunrise_algo.plugins.activity_rule import ActivityRule
from sunrise_cli.main import app


def check(plugin, nights):
    return conformance.check(plugin, nights, canonical_scores=CANONICAL_SCORES)


def test_the_repository_registers_both_plugins():
    assert {"sunalgo", "activity-rule"} <= set(registry.names())


@pytest.mark.parametrize("name", registry.names())
def test_every_plugin_in_the_repository_passes_the_kit(nights, name):
    report = check(registry.load(name), nights)
    assert report.ok, report.render()
    assert {f.rule for f in report.findings} == set(conformance.RULES)


class WrongEpochs(ActivityRule):
    name = "wrong-epochs"

    def run(self, night, *, model_version, model_dir=None):
        out = super().run(night, model_version="default")
        return out.model_copy(update={"predictions": out.predictions.model_copy(
            update={"sleep_wake": out.predictions.sleep_wake[:-1]})})


class ReadsThePsg(ActivityRule):
    name = "reads-the-psg"

    def run(self, night, *, model_version, model_dir=None):
        # A plug-in that peeks at the reference: the PSG preparation lies beside the night in scratch.
        for psg in Path(night.reference["meta_url"].removeprefix("file://")).parents[1].glob("psg/hypnogram.csv"):
            psg.read_text()
        return super().run(night, model_version="default")


class NotDeterministic(ActivityRule):
    name = "not-deterministic"

    def run(self, night, *, model_version, model_dir=None):
        out = super().run(night, model_version="default")
        return out.model_copy(update={"scores": {f"{self.name}.noise": random.random()}})


class LeaksAName(ActivityRule):
    name = "leaks-a-name"

    def run(self, night, *, model_version, model_dir=None):
        out = super().run(night, model_version="default")
        notes = json.dumps(night.meta.get("upstream_notes", {}))
        return out.model_copy(update={"scores": {f"{self.name}.note": notes[:190]}})


class UnnamespacedScore(ActivityRule):
    name = "bare-score"

    def run(self, night, *, model_version, model_dir=None):
        out = super().run(night, model_version="default")
        return out.model_copy(update={"scores": {"my_index": 1.0}})


@pytest.mark.parametrize("plugin, rule", [(WrongEpochs(), "epochs"), (ReadsThePsg(), "no_psg"),
                                          (NotDeterministic(), "deterministic"), (LeaksAName(), "no_personal_data"),
                                          (UnnamespacedScore(), "scores")])
def test_a_broken_plugin_fails_naming_the_rule(nights, plugin, rule):
    report = check(plugin, nights[:1])
    assert not report.ok
    assert rule in report.failed_rules()
    assert f"FAIL {rule}" in report.render()


def test_the_builtin_is_run_through_the_interface_with_its_own_units(nights):
    _, folder, _ = nights[0]
    out = Builtin().run(PreparedNight.from_folder("n", folder), model_version=DEFAULT_MODEL)
    assert isinstance(out, AlgorithmOutput)
    units = {f.name: f.unit for f in out.features}
    assert units["act_mean_dps"] == "deg/s" and units["br_amp_mg"] == "mg"
    assert len(out.predictions.sleep_wake) == json.loads((folder / "meta.json").read_text())["n_epochs"]


def test_sunrise_algo_check_exits_nonzero_on_an_unknown_plugin():
    result = CliRunner().invoke(app, ["algo", "check", "no-such-plugin", "--nights", "1"])
    assert result.exit_code != 0
    assert "no plug-in named 'no-such-plugin'" in result.output


def test_sunrise_algo_list_names_both_plugins():
    result = CliRunner().invoke(app, ["algo", "list"])
    assert result.exit_code == 0
    assert "activity-rule 1.0" in result.output and "sunalgo 1.0" in result.output


def test_a_trainable_plugin_is_trained_on_the_training_subjects_only(nights, tmp_path):
    from sunalgo.run import run_sunalgo
    from sunrise_algo.registry import resolve
    from sunrise_cli.train import train_plugin

    rows = []
    for i, (night_id, folder, psg) in enumerate(nights):
        out = tmp_path / f"s{i}n{i}"
        run_sunalgo(folder, psg, out, algorithm=ActivityRule())
        named = tmp_path / f"s{'abcdefghijkl'[i]}{'bcdefghijklm'[i] * 11}-n{'cdefghij'[i] * 8}.csv"
        named.write_bytes((out / "training_rows.csv").read_bytes())
        rows.append(named)
    result = train_plugin(ActivityRule(), rows, tmp_path / "models", version="rule-2", holdout_fraction=0.5)
    artifact = json.loads(result["artifact"].read_text())
    assert artifact["algorithm"] == "activity-rule" and artifact["threshold"] > 0
    assert len(artifact["splits"]["nights"]["train"]) == 1 and len(artifact["splits"]["nights"]["test"]) == 1
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0
    plugin, version = resolve("rule-2", tmp_path / "models")
    assert (plugin.name, version) == ("activity-rule", "rule-2")
    out = plugin.run(PreparedNight.from_folder("n", nights[0][1]), model_version="rule-2", model_dir=tmp_path / "models")
    assert out.scores["activity-rule.threshold"] == artifact["threshold"]


class HoldsMemory(ActivityRule):
    name = "holds-memory"

    def run(self, night, *, model_version, model_dir=None):
        import numpy as np

        block = np.ones(40_000_000)  # 320 MB, touched: resident, as a model runtime's arrays would be
        out = super().run(night, model_version="default")
        return out.model_copy(update={"scores": {f"{self.name}.sum": float(block[:10].sum())}})


class InvalidAndLeaking(ActivityRule):
    name = "invalid-and-leaking"

    def run(self, night, *, model_version, model_dir=None):
        out = super().run(night, model_version="default")
        bad = out.model_dump()
        bad["predictions"]["sleep_wake"][0] = "maybe"
        bad["scores"] = {f"{self.name}.who": night.meta["upstream_notes"]["patient"]}
        return AlgorithmOutput.model_construct(**{**bad, "predictions": out.predictions.model_construct(**bad["predictions"])})


def test_the_memory_budget_sees_what_a_run_keeps_resident(nights):
    report = conformance.check(HoldsMemory(), nights[:1], budget_mb=200.0, canonical_scores=CANONICAL_SCORES)
    assert report.failed_rules() == ["budget"]
    assert report.peak_mb[0] >= 300


def test_an_invalid_output_is_still_scanned_for_personal_data(nights):
    report = check(InvalidAndLeaking(), nights[:1])
    assert {"schema", "no_personal_data"} <= set(report.failed_rules())


def test_a_service_check_reports_the_psg_rule_as_not_checked(nights):
    from tests.algo.test_http import serve

    from sunrise_algo.http import ExternalAlgorithm, create_app

    with serve(create_app(ActivityRule())) as url:
        report = check(ExternalAlgorithm(url), nights[:1])
    assert report.ok, report.render()
    assert "n/a  no_psg" in report.render()

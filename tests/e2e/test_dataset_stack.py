"""The gold layer on the real embedded stack (issue 16, must-show 1): nights processed by the four
services and the router as separate processes show up in ``sunrise dataset list``, and
``sunrise train`` fits on those Parquet rows."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sunrise_cli import ops
from sunrise_cli.main import app
from sunrise_cli.stack import settings_env
from sunrise_common import dataset as ds
from tests.e2e.conftest import wait_until
from tests.e2e.test_operations import settled, start, upload_nights

pytestmark = pytest.mark.slow


def test_processed_nights_are_listed_in_the_dataset_and_train_reads_them(tmp_path, monkeypatch):
    settings, ctx, stack = start(tmp_path)
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    upload_nights(ctx, tmp_path / "nights", 3, hours=0.5)
    with stack:
        ops.send_all(ops.backfill_jobs(ctx, "", force=False, url=settings.ingest_url, token=None, checkpoint=None),
                     rate=None, max_in_flight=4)
        wait_until(lambda: settled(ctx, 3), 180, "3 nights")
    cli = CliRunner()
    listed = cli.invoke(app, ["dataset", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    nights = json.loads(listed.output)
    docs = dict(ctx.state.list("nights"))
    assert sorted(n["night_id"] for n in nights) == sorted(docs)
    for n in nights:
        run = docs[n["night_id"]]["stages"]["sunalgo"]
        assert n["rows"] > 0 and n["algo_version"] == run["outputs"]["prefix"].split("/")[2]
        assert sorted(run["outputs"]["dataset"]) == sorted(
            ds.object_name(t, n["algo_version"], n["night_id"], run["input_key"]) for t in ds.TABLES)

    trained = cli.invoke(app, ["train", "--version", "gold-1", "--out", str(tmp_path / "models")])
    assert trained.exit_code == 0, trained.output
    spec = json.loads((tmp_path / "models" / "gold-1.json").read_text())
    assert sorted(spec["trained_on"] + spec["held_out"]) == sorted(docs)
    assert spec["splits"]["by"] == "subject_pseudonym" and len(spec["held_out"]) == 1

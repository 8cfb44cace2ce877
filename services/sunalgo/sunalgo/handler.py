"""sunalgo: a ``*-prepped`` event -> features, predictions, scores (and, with PSG labels,
training rows and agreement) under ``results/nights/{night_id}/{algo_version}/{input_key}/``.

Whatever event arrives, the stage works from the night's latest finished preparations, so the
order in which the two halves arrive does not matter; the input key names both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sunrise_common import names
from sunrise_common.contracts import NightDoc, StageRun
from sunrise_common.dataset import now_utc
from sunrise_common.errors import Busy, PermanentError, TransientError
from sunrise_common.events import Event
from sunrise_common.nights import open_night
from sunrise_common.service import Context, download_folder, run_stage, scalars, scratch_dir, upload_folder

from sunalgo.dataset import lineage_for, write_night
from sunalgo.model import ModelError, check_version, load_model
from sunalgo.run import run_sunalgo

STAGE = "sunalgo"


def handle(event: Event, ctx: Context) -> dict[str, Any]:
    """Score the night an event names, if its Sunrise half is prepared."""
    night, message, doc = open_night(ctx, event)
    return score_night(ctx, night, doc, model_version=message.model_version or ctx.settings.model_version)


def score_night(ctx: Context, night: str, doc: NightDoc, *, model_version: str | None = None) -> dict[str, Any]:
    """Run sunalgo on a night's latest preparations."""
    for stage in ("sunrise_prep", "psg_prep"):
        if doc.in_progress(stage):
            # Its "prepped" event may arrive before its run is marked done: retry rather than score
            # without that half (or not at all) and never hear of it again.
            raise Busy("preparation_running", f"{stage} is still running for {night}")
    sunrise = doc.latest_done("sunrise_prep")
    if sunrise is None:
        return {"status": "waiting", "detail": "the Sunrise half is not prepared yet"}
    psg = doc.latest_done("psg_prep")
    version = resolve_version(model_version, ctx.settings.model_store())
    input_key = names.input_key(version, sunrise.input_key, psg.input_key if psg else "-",
                                reruns=doc.rerun_count(STAGE))
    stage = STAGE if model_version is None else f"{STAGE}:{version}"
    return run_stage(ctx, "nights", night, stage, input_key,
                     lambda: _score(ctx, night, sunrise, psg, version, input_key, doc))


def resolve_version(version: str | None, models_dir: Path) -> str:
    """The model version to score with: the one asked for, else the activated one
    (``models_dir/ACTIVE.json``, written by ``sunrise activate``), else the packaged default.

    A version named by an event must match ``model.VERSION_PATTERN`` and be a model the store
    lists (or a packaged one); anything else (a path, 5,000 characters, a number) is a permanent
    rejection (``unknown_model``: answered 2xx, logged with the reason), checked before any file
    is looked up."""
    explicit = version is not None
    if explicit:
        try:
            check_version(version)
        except ModelError as exc:
            raise PermanentError("unknown_model", str(exc)) from exc
    pointer = Path(models_dir) / "ACTIVE.json"
    if version is None and pointer.is_file():
        version = json.loads(pointer.read_text()).get("active")
    try:
        return load_model(version, model_dir=models_dir).version
    except ModelError as exc:
        if explicit:
            raise PermanentError("unknown_model", str(exc)) from exc
        # The default or the activated model does not load: a deployment problem, not a bad night.
        raise TransientError("model_unavailable", str(exc)) from exc


def _score(ctx: Context, night: str, sunrise: StageRun, psg: StageRun | None, version: str, input_key: str,
           doc: NightDoc) -> dict[str, Any]:
    prepped = ctx.settings.bucket("prepped")
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        sunrise_dir = download_folder(ctx, prepped, sunrise.outputs["prefix"], tmp / "sunrise")
        psg_dir = download_folder(ctx, prepped, psg.outputs["prefix"], tmp / "psg") if psg else None
        out = tmp / "out"
        out.mkdir()
        summary = run_sunalgo(sunrise_dir, psg_dir, out, model_version=version, model_dir=ctx.settings.model_store())
        prefix = names.results_prefix(night, summary.get("algo_version", version), input_key)
        written = upload_folder(ctx, ctx.settings.bucket("results"), prefix, out)
        # The gold layer (sunrise_common.dataset): after the run's own results, create-only.
        parts = write_night(ctx.storage, ctx.settings.bucket("results"), out, lineage_for(
            night, doc, algo_version=summary.get("algo_version", version), input_key=input_key,
            sunrise_input=sunrise.input_key, psg_input=psg.input_key if psg else None,
            scores=json.loads((out / "scores.json").read_text()), run_at=now_utc()))
    return {"outputs": {"prefix": prefix, "files": sorted(written), "with_psg": psg is not None, "dataset": parts,
                        "sunrise_input": sunrise.input_key, "psg_input": psg.input_key if psg else None},
            "metrics": {"bytes": sum(written.values())},
            "summary": scalars(summary)}

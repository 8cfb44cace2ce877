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
from sunrise_common.settings import Settings
from sunrise_common.service import Context, download_folder, run_stage, scalars, scratch_dir, upload_folder

from sunrise_algo import registry
from sunrise_algo.builtin.model import ModelError
from sunrise_algo.dataset import lineage_for, write_night
from sunrise_algo.http import ExternalAlgorithm, google_id_token
from sunrise_algo.interface import Algorithm, AlgorithmError
from sunrise_algo.settings import AlgorithmSettings

from sunalgo.run import run_sunalgo

STAGE = "sunalgo"


def handle(event: Event, ctx: Context) -> dict[str, Any]:
    """Score the night an event names, if its Sunrise half is prepared."""
    night, message, doc = open_night(ctx, event)
    return score_night(ctx, night, doc, model_version=message.model_version or AlgorithmSettings.of(ctx.settings).model_version)


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
    algorithm, version = resolve_algorithm(model_version, ctx.settings)
    label = run_label(algorithm, version)
    input_key = names.input_key(label, sunrise.input_key, psg.input_key if psg else "-",
                                reruns=doc.rerun_count(STAGE))
    stage = STAGE if model_version is None else f"{STAGE}:{label}"
    return run_stage(ctx, "nights", night, stage, input_key,
                     lambda: _score(ctx, night, sunrise, psg, algorithm, version, input_key, doc))


def run_label(algorithm: Algorithm, version: str) -> str:
    """The name a run goes by in the night's stages and input keys: the model version for the
    built-in plug-in (as before plug-ins existed), ``{plugin}.{model}`` for any other."""
    return version if algorithm.name == registry.BUILTIN else f"{algorithm.name}.{version}"


def _external(url: str, timeout_s: float, retries: int, cloud: bool) -> ExternalAlgorithm:
    # Described again for every run (one small GET): a redeployed algorithm's new name or version
    # names its results from its first night on, never under the old algo_version. In the cloud the
    # service is private: each call carries an ID token for it (terraform/algorithm.tf grants
    # run.invoker); locally it is called as it is.
    return ExternalAlgorithm(url, timeout_s=timeout_s, retries=retries, auth=google_id_token(url) if cloud else None)


def resolve_algorithm(version: str | None, settings: Settings) -> tuple[Algorithm, str]:
    """The plug-in and model version to score with: the external algorithm service when
    ``algorithm_url`` is set and the run asks for nothing else, else
    :func:`sunrise_algo.registry.resolve` (the version asked for, the activated one, the
    active plug-in's default). An unknown name asked by an event is a permanent rejection
    (``unknown_model``); an unloadable default is a deployment problem (transient)."""
    settings = AlgorithmSettings.of(settings)
    if settings.algorithm_url:
        try:
            external = _external(settings.algorithm_url, settings.algorithm_timeout_s, settings.algorithm_retries,
                                 settings.backend == "cloud")
        except AlgorithmError as exc:
            raise (PermanentError if exc.permanent else TransientError)(f"algorithm_{exc.reason}"[:64], str(exc)) from exc
        if version is None or version == external.name:
            return external, external.default_model
        if version in external.packaged_models() and registry.stored_artifact(version, settings.model_store()) is None:
            return external, version
    try:
        return registry.resolve(version, settings.model_store(), active=settings.algorithm)
    except (registry.UnknownAlgorithm, ModelError) as exc:
        if version is not None:
            raise PermanentError("unknown_model", str(exc)) from exc
        raise TransientError("model_unavailable", str(exc)) from exc


def resolve_version(version: str | None, models_dir: Path) -> str:
    """The run label (:func:`run_label`) a version resolves to with the model store ``models_dir``.

    A version named by an event must be a plain name (``registry.VERSION_PATTERN``) naming a
    plug-in, a model the store lists or a packaged one; anything else (a path, 5,000 characters,
    a number) is a permanent rejection (``unknown_model``), checked before any file is looked up."""
    return run_label(*resolve_algorithm(version, AlgorithmSettings(models_dir=models_dir)))


def _score(ctx: Context, night: str, sunrise: StageRun, psg: StageRun | None, algorithm: Algorithm, version: str,
           input_key: str, doc: NightDoc) -> dict[str, Any]:
    prepped = ctx.settings.bucket("prepped")
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        sunrise_dir = download_folder(ctx, prepped, sunrise.outputs["prefix"], tmp / "sunrise")
        psg_dir = download_folder(ctx, prepped, psg.outputs["prefix"], tmp / "psg") if psg else None
        out = tmp / "out"
        out.mkdir()
        reference = (_reference(ctx, prepped, sunrise.outputs["prefix"])
                     if isinstance(algorithm, ExternalAlgorithm) else None)
        store = AlgorithmSettings.of(ctx.settings).model_store()
        summary = run_sunalgo(sunrise_dir, psg_dir, out, model_version=version, model_dir=store,
                              algorithm=algorithm, night_id=night, reference=reference)
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


def _reference(ctx: Context, bucket: str, prefix: str) -> dict[str, str]:
    """Signed references to a prepared night for an external algorithm service (valid 1 h)."""
    return {"meta_url": ctx.storage.signed_url(bucket, prefix + "meta.json", expires_s=3600),
            "signals_url": ctx.storage.signed_url(bucket, prefix + "prepped.npz", expires_s=3600)}

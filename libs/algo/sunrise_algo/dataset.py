"""A sunalgo results folder -> the night's rows of the gold layer (``sunrise_common.dataset``).

Used by the handler when a night with PSG labels is scored, and by ``sunrise dataset build`` to
backfill from results written before the dataset existed: both read the same files
(``training_rows.csv``, ``scores.json``, ``agreement.json``), so both write the same rows.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sunrise_common import dataset as ds
from sunrise_common.contracts import NightDoc
from sunrise_common.storage import Storage

from sunrise_algo.builtin.features import FEATURES

if TYPE_CHECKING:
    import pyarrow as pa

# sunrise_prep's input key before issue 17: g{generation}[r{reruns}] (now a digest; the run's
# outputs name the generation).
_SUNRISE_INPUT = re.compile(r"\Ag(\d+)(?:r\d+)?\Z")


def feature_fields(run_dir: Path | None = None) -> list[tuple[str, str, str]]:
    """(name, unit, description) of every feature of a run, as the schema declares them: the
    plug-in's own (``scores.json["features"]``, written by ``sunalgo.run``), else (results written
    before plug-ins, or no run given) the built-in plug-in's."""
    if run_dir is not None and (Path(run_dir) / "scores.json").is_file():
        declared = json.loads((Path(run_dir) / "scores.json").read_text()).get("features")
        if declared:
            return [(f["name"], f["unit"], f.get("description", "")) for f in declared]
    return [(f.name, f.unit, f.description) for f in FEATURES]


def has_rows(run_dir: Path) -> bool:
    """The run has PSG-aligned training rows (PSG labels with a known start time)."""
    return (Path(run_dir) / "training_rows.csv").is_file() and (Path(run_dir) / "agreement.json").is_file()


def lineage_for(night_id: str, doc: NightDoc, *, algo_version: str, input_key: str,
                sunrise_input: str | None, psg_input: str | None, scores: dict[str, Any],
                run_at: datetime) -> ds.Lineage:
    """The lineage of one sunalgo run of ``night_id`` (``doc``: its night document).

    The Sunrise generation comes from its preparation's run (``outputs.generation``; runs before
    issue 17: its input key, ``g{generation}``); the PSG and
    label generations from the night document, when its psg_prep run is the one that was used
    (a backfill of an older run leaves them null rather than name the wrong upload)."""
    rec = doc.recordings
    m = _SUNRISE_INPUT.match(sunrise_input or "")
    sunrise_run = doc.runs.get("sunrise_prep", {}).get(sunrise_input or "")
    outputs = sunrise_run.outputs if sunrise_run is not None else {}
    sunrise_gen = outputs.get("generation", int(m[1]) if m else None)
    psg_run = doc.stages.get("psg_prep")
    psg_current = psg_input is not None and psg_run is not None and psg_run.input_key == psg_input
    psg_gen = rec.psg.generation if psg_current and rec.psg is not None else None
    labels = {k: int(v.generation) for k, v in rec.labels.items()} if psg_current else {}
    return ds.Lineage(
        night_id=night_id, algo_version=algo_version, input_key=input_key,
        subject_pseudonym=doc.subject or ds.subject_of_night(night_id),
        site_pseudonym=doc.site_pseudonym,
        run_at=run_at, pipeline_version=ds.pipeline_version(),
        model_version=scores.get("model_version"), prep_version=scores.get("prep_version"),
        sunrise_prep_input=sunrise_input, psg_prep_input=psg_input,
        sunrise_generation=int(sunrise_gen) if sunrise_gen is not None else None,
        psg_generation=int(psg_gen) if psg_gen is not None else None,
        label_generations=labels)


def _training_columns(path: Path, schema: "pa.Schema") -> "pa.Table":
    import pyarrow.csv as pcsv

    lineage = {name for name, *_ in ds.LINEAGE_COLUMNS}
    types = {f.name: f.type for f in schema if f.name not in lineage}
    t = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=False))
    missing = [name for name, *_ in ds.TRAINING_ROW_FIELDS + ds.TRAINING_LABEL_FIELDS if name not in t.column_names]
    if missing:
        raise ValueError(f"{path} lacks the columns {missing}")
    return t


def night_tables(run_dir: Path, lineage: ds.Lineage) -> dict[str, "pa.Table"]:
    """``{"training_rows": table, "night_scores": table}`` of a results folder with training rows
    (empty when :func:`has_rows` is false)."""
    run_dir = Path(run_dir)
    if not has_rows(run_dir):
        return {}
    schema = ds.training_rows_schema(feature_fields(run_dir))
    rows = _training_columns(run_dir / "training_rows.csv", schema)
    training = ds.with_lineage({n: rows.column(n) for n in rows.column_names if n in schema.names},
                               rows.num_rows, lineage, schema)
    result = json.loads((run_dir / "scores.json").read_text())
    agr = json.loads((run_dir / "agreement.json").read_text())
    values: dict[str, Any] = {"n_epochs": result.get("n_epochs"), "has_spo2": result.get("has_spo2"),
                              "severity_pred": (result.get("scores") or {}).get("severity"),
                              "severity_psg": (result.get("psg_scores") or {}).get("severity")}
    for name, *_ in ds.NIGHT_SCORE_FIELDS:
        if name not in values:
            values[name] = agr.get(name)
    scores = ds.with_lineage({k: [v] for k, v in values.items()}, 1, lineage, ds.night_scores_schema())
    return {ds.TRAINING_ROWS: training, ds.NIGHT_SCORES: scores}


def write_night(storage: Storage, bucket: str, run_dir: Path, lineage: ds.Lineage) -> list[str]:
    """Write the night's parts (create-only) into ``bucket``; returns their object names (none
    without training rows). Night scores go last: a reader that finds them finds the rows too."""
    tables = night_tables(run_dir, lineage)
    return [ds.write_part(storage, bucket, name, tables[name], lineage)
            for name in (ds.TRAINING_ROWS, ds.NIGHT_SCORES) if name in tables]

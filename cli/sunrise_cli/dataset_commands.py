"""``sunrise dataset build|list|export|stats``: the gold layer (thin wrappers on
:mod:`sunrise_cli.dataset`). pyarrow and DuckDB are imported inside the commands, so
``sunrise --help`` does not pay for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

if TYPE_CHECKING:
    from sunrise_common.service import Context

dataset_app = typer.Typer(help="The training dataset across nights (Parquet in the results bucket's dataset/).",
                          no_args_is_help=True)
console = Console(soft_wrap=True)


def _ctx() -> Context:
    from sunrise_common.service import Context
    from sunrise_common.settings import Settings

    return Context.from_settings(Settings())


@dataset_app.command()
def build() -> None:
    """Backfill the dataset from results already in the bucket (idempotent: existing parts are kept)."""
    from rich.progress import track

    from sunrise_cli.dataset import build as build_dataset

    report = build_dataset(_ctx(), progress=lambda it: track(it, description="Backfilling", console=console))
    console.print(f"{report.runs} sunalgo run(s) with PSG labels: {len(report.written)} part(s) written, "
                  f"{report.present} run(s) already in the dataset, {report.without_rows} without training rows")


@dataset_app.command("list")
def list_nights(
    algo_version: Annotated[Optional[list[str]], typer.Option(
        "--algo-version", help="Only this version (mine-1 or sunalgo-1.0+mine-1); repeatable.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Nights in the dataset: subject, algo and model versions, training rows, parts (uploads, reruns)."""
    from rich.table import Table

    from sunrise_cli.dataset import night_list, open_dataset

    nights = night_list(open_dataset(_ctx()), algo_version)
    if as_json:
        print(json.dumps(nights, indent=1))
        return
    # The subject is the night id's first part (before -n): no column of its own, so that a row fits 80 columns.
    table = Table(box=None, pad_edge=False)
    for name, justify in (("night", "left"), ("algo version", "left"), ("rows", "right"), ("parts", "right"),
                          ("run at (UTC)", "left")):
        table.add_column(name, justify=justify, no_wrap=True)
    for n in nights:
        table.add_row(n["night_id"], n["algo_version"], str(n["rows"]), str(n["parts"]),
                      n["run_at"][:16].replace("T", " "))
    console.print(table)
    console.print(f"{len({n['night_id'] for n in nights})} night(s), {sum(n['rows'] for n in nights)} training row(s) "
                  f"over {len({n['algo_version'] for n in nights})} algo version(s)")


@dataset_app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="Folder for the local copy (created; Hive layout, readable by "
                                                     "pyarrow and DuckDB).")],
    every_part: Annotated[bool, typer.Option("--all", help="Copy every part, not only the newest per night.")] = False,
) -> None:
    """Copy the dataset (the newest part per night) into a local folder, for a notebook."""
    from sunrise_cli.dataset import open_dataset

    written = open_dataset(_ctx()).export(out, every_part=every_part)
    console.print(f"{len(written)} file(s) in {out}; read them with "
                  f"`duckdb -c \"SELECT * FROM read_parquet('{out}/training_rows/*/*/*.parquet', hive_partitioning=true)\"`")


@dataset_app.command()
def stats(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Class balance, nights per site and per subject, missing features (newest rows of every night)."""
    from sunrise_cli.dataset import open_dataset, stats as dataset_stats

    s = dataset_stats(open_dataset(_ctx()))
    if as_json:
        print(json.dumps(s, indent=1))
        return
    if not s["nights"]:
        console.print("the dataset is empty: process nights with PSG labels first (`make run`), "
                      "or `sunrise dataset build` to backfill from existing results")
        return
    epochs = s["epochs"]
    console.print(f"{s['nights']} night(s), {s['subjects']} subject(s), {epochs} epoch(s) of 30 s")
    console.print("PSG stages: " + ", ".join(f"{k} {n} ({n / epochs:.1%})" for k, n in s["stages"].items()))
    console.print("sleep/wake: " + ", ".join(f"{k} {n} ({n / epochs:.1%})" for k, n in s["sleep"].items()))
    console.print("nights per site: " + ", ".join(f"{k} {n}" for k, n in s["sites"].items()))
    console.print("subjects with k nights: " + ", ".join(f"{k}: {n}" for k, n in s["nights_per_subject"].items()))
    gaps = {k: v for k, v in s["missing"].items() if v > 0}
    console.print("missing features: " + (", ".join(f"{k} {v:.1%}" for k, v in sorted(gaps.items(), key=lambda kv: -kv[1]))
                                          or "none"))

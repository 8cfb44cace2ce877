"""Science commands of the ``sunrise`` CLI: synth, train, report (thin wrappers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.progress import track

if TYPE_CHECKING:
    from sunrise_common.settings import Settings

science_app = typer.Typer(help="Synthetic nights, model training and accuracy reports.")
console = Console()


#: Site code of synthetic nights uploaded by ``synth --upload``.
SYNTH_SITE = "synth"


def _fail(message: str, code: int = 2) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@science_app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the nights into (created).")],
    nights: Annotated[int, typer.Option("--nights", help="Number of nights to generate.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same files).")] = 0,
    hours: Annotated[float, typer.Option("--hours", help="PSG duration per night, hours.")] = 8.0,
    ahi: Annotated[float | None, typer.Option(
        "--ahi", help="Target AHI (events/h) for every night; default: spread over 0-60.")] = None,
    no_spo2: Annotated[bool, typer.Option(
        "--no-spo2", help="Leave SpO2/pulse out of the Sunrise recording.")] = False,
    upload: Annotated[bool, typer.Option(
        "--upload", help=f"Also upload each night to the raw bucket as {SYNTH_SITE}/synth-SEED-N/ "
                         "(with `make run` running, they are processed at once).")] = False,
) -> None:
    """Generate synthetic paired nights (Sunrise EDF+, PSG EDF, DOMINO labels, truth.json)."""
    import numpy as np

    from sunrise_cli.synth import synth_night

    ctx = None
    if upload:
        from sunrise_common.service import Context
        from sunrise_common.settings import Settings

        ctx = Context.from_settings(Settings())
    ahis = [ahi] * nights if ahi is not None else list(np.linspace(0, 60, nights)
                                                        if nights > 1 else [15.0])
    for i in track(range(nights), description="Generating nights", console=console):
        n = synth_night(out / f"night-{i:03d}", seed=seed * 1000 + i, hours=hours,
                        ahi=float(ahis[i]), with_spo2=not no_spo2)
        console.print(f"{n.sunrise.parent}: TST {n.tst_min:.0f} min, RDI {n.rdi:.1f}/h", soft_wrap=True)
        if ctx is not None:
            from sunrise_cli.ops import upload_night

            for name in upload_night(ctx, n, site=SYNTH_SITE, subject=f"synth-{seed}-{i:03d}"):
                console.print(f"  uploaded raw/{name}", soft_wrap=True, highlight=False)


def make_more_hint(needed: int, found: int) -> str:
    """How to get enough nights with PSG labels for training (one line)."""
    more = max(needed - found, 1) + 2  # a few spare: a held-out night of a few minutes says little
    return (f"make more with `uv run sunrise synth data/synth --nights {more} --hours 1 --upload` while "
            "`make run` is running (each synthetic night has PSG labels), wait until `uv run sunrise status` "
            "shows them done, then train again")


@science_app.command()
def train(
    version: Annotated[str, typer.Option("--version", help="Version name of the new model.")],
    rows: Annotated[Optional[list[Path]], typer.Argument(
        help="training_rows.csv or dataset .parquet files (default: the newest rows of every night in the "
             "dataset, docs/dataset.md).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for the model artifact (default: the model store).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the subject split (train/validation/test).")] = 0,
    validation_fraction: Annotated[float, typer.Option(
        "--validation-fraction", help="Share of subjects held out for validation, besides the test quarter "
                                      "(default 0: none).")] = 0.0,
    algorithm: Annotated[str, typer.Option(
        "--algorithm", help="The plug-in to train (`sunrise algo list`; it must be trainable); its rows are those "
                            "its own runs wrote.")] = "sunalgo",
) -> None:
    """Train a sleep/wake model from training rows (does not activate it: see `sunrise activate`)."""
    import tempfile

    from sunrise_algo.settings import AlgorithmSettings
    from sunrise_cli.train import TooFewNights, collect_training_rows, train_model

    settings = AlgorithmSettings()
    out = out or settings.model_store()
    if algorithm != "sunalgo":
        _train_plugin(settings, algorithm, rows, out, version, seed)
        return
    with tempfile.TemporaryDirectory() as tmp:
        with console.status("Collecting training rows"):
            rows = rows or collect_training_rows(settings, Path(tmp))
        try:
            with console.status(f"Training on {len(rows)} night(s)"):
                result = train_model(rows, out, version=version, seed=seed, validation_fraction=validation_fraction)
        except TooFewNights as exc:
            _fail(f"{exc}; {make_more_hint(exc.needed, exc.found)}")
        except ValueError as exc:
            _fail(str(exc))
    m = result["metrics"]
    console.print(f"{result['artifact']}: held-out accuracy {m['model']['accuracy']:.3f} "
                  f"(base model {m['base_version']} {m['baseline']['accuracy']:.3f}) on {m['n_heldout_nights']} "
                  f"night(s), trained on {m['n_train_nights']}"
                  + (f", validation accuracy {m['validation']['accuracy']:.3f} on {m['n_validation_nights']} night(s)"
                     if m.get("validation") else "")
                  + f"; next: `uv run sunrise activate {version}`", soft_wrap=True)


def _train_plugin(settings: Settings, name: str, rows: list[Path] | None, out: Path, version: str, seed: int) -> None:
    """`sunrise train --algorithm NAME`: the pipeline's subject split, the plug-in's fit."""
    import tempfile

    from sunrise_algo import registry
    from sunrise_cli.train import TooFewNights, collect_training_rows, train_plugin

    try:
        plugin = registry.load(name)
    except registry.UnknownAlgorithm as exc:
        _fail(str(exc))
    with tempfile.TemporaryDirectory() as tmp:
        rows = rows or collect_training_rows(settings, Path(tmp), plugin=name)
        try:
            result = train_plugin(plugin, rows, out, version=version, seed=seed)
        except TooFewNights as exc:
            _fail(f"{exc}; rerun the nights with it first: `uv run sunrise rerun sunalgo --all --algo-version {name}`")
        except (ValueError, NotImplementedError) as exc:
            _fail(str(exc))
    m = result["metrics"]
    acc = f"held-out accuracy {m['accuracy']:.3f} on {m['n_heldout_nights']} night(s), " if m.get("accuracy") is not None else ""
    console.print(f"{result['artifact']}: {acc}trained on {m['n_train_nights']}; score with it: "
                  f"`uv run sunrise rerun sunalgo --all --algo-version {version}`", soft_wrap=True)


@science_app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="Folder for report.html and figures.")],
    results: Annotated[Optional[list[Path]], typer.Argument(
        help="sunalgo result folders (scores.json + agreement.json); default: every night's latest per model "
             "version in the results bucket.")] = None,
    algo_version: Annotated[Optional[list[str]], typer.Option(
        "--algo-version", help="Only this model version (mine-1 or sunalgo-1.0+mine-1); repeat to compare "
                               "several side by side (default: every version found).")] = None,
    screenshots: Annotated[Optional[Path], typer.Option(
        "--screenshots", help="Also save PNG screenshots of the report here (needs chromium on the PATH).")] = None,
) -> None:
    """Build an HTML accuracy report with one column per model version.

    Bland-Altman of TST and RDI, sleep/wake confusion, severity classes at RDI 5/15/30, per-night table.
    """
    import tempfile

    from sunrise_algo.settings import AlgorithmSettings
    from sunrise_cli.report import build_report, label_of
    from sunrise_cli.train import collect_result_folders

    settings = AlgorithmSettings()
    with tempfile.TemporaryDirectory() as tmp:
        folders = list(results or collect_result_folders(settings, Path(tmp), algo_versions=algo_version))
        if not folders:
            wanted = f" for {', '.join(algo_version)}" if algo_version else ""
            _fail(f"no results with PSG labels{wanted} yet: process nights first (`make run`), rerun with "
                  "`uv run sunrise rerun sunalgo --all --algo-version VERSION`, or pass result folders")
        with console.status("Building report"):
            try:
                path = build_report(folders, out, models_dir=settings.model_store())
            except ValueError as exc:
                _fail(str(exc))
    summary = json.loads((Path(out) / "report.json").read_text())
    for v in summary["versions"]:
        s = summary["summaries"][v]
        console.print(f"{label_of(v)}: {s['n_nights']} nights, sleep/wake accuracy "
                      f"{s['accuracy_sw'] if s['accuracy_sw'] is None else round(s['accuracy_sw'], 3)}", soft_wrap=True)
    console.print(f"report: {path}", soft_wrap=True)
    if screenshots is not None:
        from sunrise_cli.report import screenshots as take

        try:
            with console.status("Taking screenshots with headless Chromium"):
                pngs = take(path, screenshots)
        except (FileNotFoundError, RuntimeError) as exc:
            _fail(str(exc), 1)
        for png in pngs:
            console.print(f"screenshot: {png} ({png.stat().st_size // 1024} KiB)", soft_wrap=True)

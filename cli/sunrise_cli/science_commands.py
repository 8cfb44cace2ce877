"""Science commands of the ``sunrise`` CLI: synth, train, report (thin wrappers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import track

science_app = typer.Typer(help="Synthetic nights, model training and accuracy reports.")
console = Console()


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
) -> None:
    """Generate synthetic paired nights (Sunrise EDF+, PSG EDF, DOMINO labels, truth.json)."""
    import numpy as np

    from sunrise_cli.synth import synth_night

    ahis = [ahi] * nights if ahi is not None else list(np.linspace(0, 60, nights)
                                                        if nights > 1 else [15.0])
    for i in track(range(nights), description="Generating nights", console=console):
        n = synth_night(out / f"night-{i:03d}", seed=seed * 1000 + i, hours=hours,
                        ahi=float(ahis[i]), with_spo2=not no_spo2)
        console.print(f"{n.sunrise.parent}: TST {n.tst_min:.0f} min, RDI {n.rdi:.1f}/h")


@science_app.command()
def train(
    version: Annotated[str, typer.Option("--version", help="Version name of the new model.")],
    rows: Annotated[Optional[list[Path]], typer.Argument(
        help="training_rows.csv files (default: every night's latest rows in the results bucket).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for the model artifact (default: the model store).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the held-out night split.")] = 0,
) -> None:
    """Train a sleep/wake model from training rows (does not activate it: see `sunrise activate`)."""
    import tempfile

    from sunrise_common.settings import Settings
    from sunrise_cli.train import collect_training_rows, train_model

    settings = Settings()
    out = out or settings.model_store()
    with tempfile.TemporaryDirectory() as tmp, console.status("Training"):
        rows = rows or collect_training_rows(settings, Path(tmp))
        if not rows:
            raise typer.BadParameter("no training rows: process nights with PSG labels first, or pass CSV files")
        result = train_model(rows, out, version=version, seed=seed)
    m = result["metrics"]
    console.print(f"{result['artifact']}: held-out accuracy {m['model']['accuracy']:.3f} "
                  f"(baseline {m['baseline']['accuracy']:.3f})")


@science_app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="Folder for report.html and figures.")],
    results: Annotated[Optional[list[Path]], typer.Argument(
        help="sunalgo result folders (scores.json + agreement.json); default: every night's latest in the results bucket.")] = None,
) -> None:
    """Build an HTML accuracy report (Bland-Altman of TST and RDI, confusion matrix, per-night table)."""
    import tempfile

    from sunrise_common.settings import Settings
    from sunrise_cli.report import build_report
    from sunrise_cli.train import collect_result_folders

    tmp = tempfile.TemporaryDirectory()
    results = results or collect_result_folders(Settings(), Path(tmp.name))
    if not results:
        raise typer.BadParameter("no results with PSG labels yet: process nights first, or pass result folders")
    with console.status("Building report"):
        path = build_report(list(results), out)
    console.print(f"report: {path}")

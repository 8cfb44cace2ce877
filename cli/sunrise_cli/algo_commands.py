"""``sunrise algo``: the registered algorithm plug-ins and their conformance check (docs/algorithms.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

algo_app = typer.Typer(help="Algorithm plug-ins of the sunalgo stage: list them, check one.", no_args_is_help=True)
console = Console()

# The example nights the kit runs on: the generator's default night and two shifted ones
# (more obstructive events with oximetry; central events without), 1 h each to keep it quick.
EXAMPLE_NIGHTS = ({"seed": 101, "hours": 1.0}, {"seed": 202, "hours": 1.0, "ahi": 30.0},
                  {"seed": 303, "hours": 1.0, "ahi": 10.0, "obstructive_fraction": 0.2, "with_spo2": False})


def example_nights(root: Path, count: int = len(EXAMPLE_NIGHTS)) -> list[tuple[str, Path, Path]]:
    """Prepare the example nights under ``root``: ``(night_id, sunrise_prep folder, truth PSG folder)``."""
    from sunrise_cli.synth import synth_night, write_truth_labels
    from sunrise_night.prepare import prepare_sunrise

    out = []
    for i, params in enumerate(EXAMPLE_NIGHTS[:count]):
        folder = root / f"example-{i}"
        night = synth_night(folder, **params)
        prepare_sunrise(night.sunrise, folder / "prep")
        out.append((f"example-{i}", folder / "prep", write_truth_labels(night, folder / "truth_psg")))
    return out


@algo_app.command("list")
def list_plugins() -> None:
    """The registered plug-ins, their versions and packaged models."""
    from sunrise_algo import registry

    for name in registry.names():
        try:
            plugin = registry.load(name)
        except registry.UnknownAlgorithm as exc:
            console.print(f"{name}: [red]does not load[/red] ({exc})")
            continue
        models = ", ".join(sorted(plugin.packaged_models()))
        console.print(f"{name} {plugin.version} (interface {plugin.interface_version}"
                      f"{', trainable' if plugin.trainable else ''}): models {models}; default {plugin.default_model}")


@algo_app.command("check")
def check(
    plugin: Annotated[str, typer.Argument(help="A registered plug-in name (`sunrise algo list`).")] = "sunalgo",
    url: Annotated[Optional[str], typer.Option(help="Check the algorithm service at this URL instead "
                                               "(the HTTP adapter's protocol).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model version (default: the plug-in's default).")] = None,
    nights: Annotated[int, typer.Option(min=1, max=len(EXAMPLE_NIGHTS), help="How many example nights.")]
    = len(EXAMPLE_NIGHTS),
    budget_s: Annotated[float, typer.Option(help="Wall-time budget per night, s.")] = 60.0,
    budget_mb: Annotated[float, typer.Option(help="Peak traced memory budget per night, MB.")] = 512.0,
    report: Annotated[Optional[Path], typer.Option(help="Also write the report to this file.")] = None,
) -> None:
    """Run a plug-in on the example nights and check what the pipeline relies on."""
    from sunrise_algo import conformance, registry
    from sunrise_algo.interface import AlgorithmError
    from sunrise_algo.scores import CANONICAL_SCORES

    with tempfile.TemporaryDirectory(prefix="sunrise-algo-check-") as tmp:
        tmp = Path(tmp)
        console.print(f"preparing {nights} example night(s) ...")
        prepared = example_nights(tmp, nights)
        try:
            if url:
                from sunrise_algo.http import ExternalAlgorithm

                algorithm = ExternalAlgorithm(url)
            else:
                algorithm = registry.load(plugin)
        except (registry.UnknownAlgorithm, AlgorithmError) as exc:
            raise typer.BadParameter(str(exc)) from None
        result = conformance.check(algorithm, prepared, model_version=model, budget_s=budget_s, budget_mb=budget_mb,
                                   canonical_scores=CANONICAL_SCORES, progress=lambda n: console.print(f"  {n}"))
    text = result.render()
    console.print(text, markup=False, highlight=False)
    if report is not None:
        report.write_text(text + "\n")
    raise typer.Exit(0 if result.ok else 1)

"""``sunrise forget``: the command (a thin wrapper on :mod:`sunrise_cli.forget`). Its library,
pyarrow and the cloud clients are imported inside, so ``sunrise --help`` does not pay for them."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def forget(
    site: Annotated[Optional[str], typer.Option(help="Site code of the subject (with --subject).")] = None,
    subject: Annotated[Optional[str], typer.Option(help="Subject id at the site (personal data: never printed or stored).")] = None,
    pseudonym: Annotated[Optional[str], typer.Option(help="Or the subject pseudonym (s + 12 characters), as `sunrise status` shows.")] = None,
    apply: Annotated[bool, typer.Option("--apply", "--yes", help="Erase. Without it: a dry run that lists what would go.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    pause_after: Annotated[Optional[int], typer.Option(
        hidden=True, help="Testing: stop after this many deletions, with progress recorded, until killed.")] = None,
) -> None:
    """Erase every object, document, dataset row and dead letter of one subject (GDPR Art. 17).

    Dry run by default; --apply erases and writes an audit record (counts and the pseudonym, never
    the name) in forgets/{pseudonym}. Killed midway, run it again: it finishes the job."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sunrise_common.settings import Settings
    from sunrise_common.state import make_state
    from sunrise_common.storage import make_storage
    from sunrise_devstack.dead_letters import make_dead_letters

    from sunrise_cli import forget as lib

    settings = Settings()
    key = settings.key_bytes()
    try:
        who = lib.subject_of(key, site=site, subject=subject, pseudonym=pseudonym)
    except lib.ForgetError as exc:
        raise typer.BadParameter(str(exc)) from exc
    status = err_console if as_json else console
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("planning", total=None)

        def say(message: str) -> None:
            progress.update(task, description=message)

        def tick(category: str, done: int, total: int) -> None:
            progress.update(task, description=f"erasing {category}", completed=done, total=total)

        outcome = lib.forget(settings, make_storage(settings), make_state(settings), make_dead_letters(settings), who,
                             apply=apply, key=key, progress=tick, pause_after=pause_after, say=say)
    if as_json:
        print(json.dumps({"pseudonym": outcome.pseudonym, "applied": outcome.applied, "resumed": outcome.resumed,
                          "planned": outcome.planned, "removed": outcome.removed,
                          "dataset_rows": outcome.dataset_rows, "remaining": outcome.remaining,
                          "busy_nights": outcome.busy_nights, "complete": outcome.complete}))
    else:
        verb = "removed" if apply else "would remove"
        status.print(f"subject {outcome.pseudonym}{' (resuming an interrupted forget)' if outcome.resumed else ''}:")
        for category in lib.CATEGORIES:
            n = outcome.removed[category] if apply else outcome.planned[category]
            status.print(f"  {category:<15} {verb} {n}")
        status.print(f"  {'dataset rows':<15} {verb} {outcome.dataset_rows}")
        if outcome.busy_nights:
            status.print(f"[yellow]warning:[/] {outcome.busy_nights} night(s) of the subject still have a stage "
                         "running or retrying: it may write after this run; stop its uploads, let `sunrise status` "
                         "show them settled, then run forget (again)")
        if not apply:
            status.print("dry run: nothing was changed; run again with --apply to erase")
        elif outcome.complete:
            status.print(f"done: nothing of the subject is left; audit record {lib.AUDIT_COLLECTION}/{outcome.pseudonym}")
        else:
            status.print(f"[yellow]left after this run[/] (written meanwhile?): {outcome.remaining}; run again")
    if apply and not outcome.complete:
        raise typer.Exit(1)

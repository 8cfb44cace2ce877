"""The conformance kit: what the pipeline relies on from a plug-in, checked on real prepared nights.

Each rule is run on every night given and reported pass/fail with the numbers it saw:

* ``interface``: the plug-in declares ``interface_version`` ``1`` and a valid name.
* ``schema``: the output re-validates as an :class:`AlgorithmOutput` from its own JSON (no
  ``model_construct`` shortcuts, no NaN where JSON has none).
* ``epochs``: one prediction and one value per feature for each epoch of the night.
* ``units``: every feature has a unit; feature names are unique identifiers.
* ``events``: events lie within the recording; their types are the interface's.
* ``scores``: extra scores are namespaced ``{plugin}.``; string values are short codes.
* ``no_psg``: the plug-in opens no file of the night's PSG preparation (a Python audit hook sees
  every ``open`` during the run; the PSG folder lies next to the night, as in the stage's scratch
  folder). Not observable for an algorithm service: reported ``n/a``, not passed.
* ``deterministic``: a second run on the same input gives the same output, byte for byte.
* ``no_personal_data``: none of the personal strings planted in the night's metadata (a patient
  name, a birth date, a hospital: what an upstream mistake could leave there) appears in the
  output, nor any calendar date.
* ``budget``: wall time and the peak resident memory a run adds, per night, within the budgets
  (each run happens in a forked child, so native allocations count too).
"""

from __future__ import annotations

import json
import multiprocessing
import re
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from sunrise_algo.interface import (INTERFACE_VERSION, NAME_PATTERN, Algorithm, AlgorithmError, AlgorithmOutput,
                                    PreparedNight, check_lengths, check_scores)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

#: Planted in the night's metadata; a conformant plug-in never copies metadata text into its outputs.
PERSONAL_CANARIES = ("Zofia O'Neill-Kowalczyk", "1969-06-30", "30.06.1969", "St. Elsewhere Sleep Unit", "P-000417")
DATE = re.compile(r"\b(19|20)\d\d-[01]\d-[0-3]\d\b|\b[0-3]\d\.[01]\d\.(19|20)?\d\d\b")
RULES = ("interface", "schema", "epochs", "units", "events", "scores", "no_psg", "deterministic",
         "no_personal_data", "budget")


@dataclass
class Finding:
    rule: str
    ok: bool
    detail: str
    night: str = ""
    checked: bool = True  # False: the rule could not be observed here (reported as such, not as passed)


@dataclass
class Report:
    plugin: str
    algo_version: str
    nights: list[str]
    findings: list[Finding] = field(default_factory=list)
    timings_s: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def failed_rules(self) -> list[str]:
        return sorted({f.rule for f in self.findings if not f.ok})

    def render(self) -> str:
        """A plain-text report a team can attach to a release."""
        lines = [f"sunrise algo check: {self.plugin} ({self.algo_version}), interface {INTERFACE_VERSION}",
                 f"nights: {len(self.nights)}"
                 + (f"; per night {min(self.timings_s):.2f}-{max(self.timings_s):.2f} s, "
                    f"peak {max(self.peak_mb):.0f} MB RSS added" if self.timings_s else ""), ""]
        for rule in RULES:
            mine = [f for f in self.findings if f.rule == rule]
            if not mine:
                continue
            bad = [f for f in mine if not f.ok]
            mark = "FAIL" if bad else ("ok  " if all(f.checked for f in mine) else "n/a ")
            detail = bad[0].detail + (f" (night {bad[0].night})" if bad[0].night else "") if bad else mine[0].detail
            lines.append(f"{mark} {rule:<17} {detail}")
        lines += ["", "PASSED" if self.ok else f"FAILED: {', '.join(self.failed_rules())}"]
        return "\n".join(lines)


class _OpenWatch:
    """Records every path opened under ``root`` while armed (sys.addaudithook cannot be removed, so
    one hook per process is installed and armed around each run)."""

    installed: _OpenWatch | None = None

    def __init__(self) -> None:
        self.root: str | None = None
        self.seen: list[str] = []

    @classmethod
    def get(cls) -> _OpenWatch:
        if cls.installed is None:
            cls.installed = cls()
            sys.addaudithook(cls.installed._hook)
        return cls.installed

    def _hook(self, event: str, args: tuple) -> None:
        if self.root is None or event not in ("open", "os.listdir", "os.scandir", "shutil.copyfile"):
            return
        target = args[0] if args else None
        if isinstance(target, (str, bytes)) or hasattr(target, "__fspath__"):
            path = str(target if not isinstance(target, bytes) else target.decode(errors="replace"))
            if path.startswith(self.root):
                self.seen.append(path)


def _plant(meta: dict) -> dict:
    planted = dict(meta)
    planted["upstream_notes"] = {"patient": PERSONAL_CANARIES[0], "birth_date": PERSONAL_CANARIES[1],
                                 "birth_date_local": PERSONAL_CANARIES[2], "hospital": PERSONAL_CANARIES[3],
                                 "patient_code": PERSONAL_CANARIES[4]}
    return planted


def _stage_night(folder: Path, psg: Path | None, work: Path) -> tuple[Path, Path]:
    """Copy a prepared night into ``work/sunrise`` (with planted metadata) and a PSG preparation
    (the given one, or a decoy) into ``work/psg``, as the stage's scratch folder holds them."""
    night_dir, psg_dir = work / "sunrise", work / "psg"
    night_dir.mkdir(parents=True)
    shutil.copy2(folder / "prepped.npz", night_dir / "prepped.npz")
    meta = json.loads((folder / "meta.json").read_text())
    (night_dir / "meta.json").write_text(json.dumps(_plant(meta)))
    if psg is not None and psg.is_dir():
        shutil.copytree(psg, psg_dir)
    else:
        psg_dir.mkdir()
        (psg_dir / "meta.json").write_text(json.dumps({"kind": "psg", "epoch_s": 30.0}))
        (psg_dir / "hypnogram.csv").write_text("epoch,onset_s,stage\n0,0,W\n")
    return night_dir, psg_dir


def _child(conn: Connection, plugin: Algorithm, night: PreparedNight, model_version: str,
           model_dir: Path | None, watch_root: str) -> None:
    """One run in a forked process: its output JSON (or why there is none), wall time, the peak
    resident memory the run added (``ru_maxrss`` starts afresh in a forked child on Linux, so native
    allocations — a model runtime's — count too) and the PSG paths it opened."""
    rss_start = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()
    watch = _OpenWatch.get()
    watch.seen = []
    t0 = time.perf_counter()
    watch.root = watch_root
    text, error = None, ""
    try:
        output = plugin.run(night, model_version=model_version, model_dir=model_dir)
        text = output.model_dump_json() if isinstance(output, AlgorithmOutput) else None
        error = "" if text is not None else f"returned {type(output).__name__}, not an AlgorithmOutput"
    except AlgorithmError as exc:
        error = f"raised {'permanent' if exc.permanent else 'transient'} {exc.reason}"
    except Exception as exc:  # a plug-in's crash (or an unserialisable output) is a finding
        error = f"raised {type(exc).__name__}"
    finally:
        watch.root = None
    elapsed = time.perf_counter() - t0
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_start, 0)
    conn.send((text, error, elapsed, peak / 2**20, list(watch.seen)))
    conn.close()


def _run(plugin: Algorithm, night: PreparedNight, model_version: str, model_dir: Path | None,
         watch_root: Path) -> tuple[str | None, str, float, float, list[str]]:
    """Run the plug-in once in a forked child (:func:`_child`); (output JSON or None, error, s, MB, PSG paths)."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, plugin, night, model_version, model_dir, str(watch_root)))
    proc.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:  # the child died (killed for memory, a segfault in native code)
        result = None
    proc.join()
    if result is None:
        return None, f"crashed (exit code {proc.exitcode})", 0.0, 0.0, []
    return result


def check(plugin: Algorithm, nights: Iterable[tuple[str, Path, Path | None]], *, model_version: str | None = None,
          model_dir: Path | None = None, budget_s: float = 60.0, budget_mb: float = 512.0,
          canonical_scores: Iterable[str] = (), progress: Callable[[str], None] | None = None) -> Report:
    """Check ``plugin`` on prepared nights ``(night_id, sunrise_prep folder, psg_prep folder or None)``;
    ``canonical_scores`` are the score names the stage computes itself (allowed without a namespace)."""
    version = model_version or plugin.default_model
    nights = list(nights)
    report = Report(plugin=plugin.name, algo_version=plugin.algo_version(version), nights=[n for n, *_ in nights])
    ok_interface = plugin.interface_version == INTERFACE_VERSION and bool(NAME_PATTERN.match(plugin.name))
    report.findings.append(Finding("interface", ok_interface,
                                   f"interface_version {plugin.interface_version!r}, name {plugin.name!r}"))
    canonical = tuple(canonical_scores)
    for night_id, folder, psg in nights:
        if progress:
            progress(night_id)
        with tempfile.TemporaryDirectory(prefix="algo-check-") as tmp:
            night_dir, psg_dir = _stage_night(Path(folder), psg, Path(tmp))
            reference = {"meta_url": (night_dir / "meta.json").as_uri(),
                         "signals_url": (night_dir / "prepped.npz").as_uri()}
            night = PreparedNight.from_folder(night_id, night_dir, reference)
            text1, err, elapsed, peak, opened = _run(plugin, night, version, model_dir, psg_dir)
            report.timings_s.append(elapsed)
            report.peak_mb.append(peak)
            if getattr(plugin, "url", None):  # an algorithm service: its file access is another process's
                report.findings.append(Finding("no_psg", True, "not checked: the service runs in its own process "
                                               "(it is sent references to the Sunrise night only)", night_id,
                                               checked=False))
            else:
                report.findings.append(Finding("no_psg", not opened, f"{len(opened)} PSG file(s) opened"
                                               if opened else "no PSG file opened", night_id))
            if text1 is None:
                report.findings.append(Finding("schema", False, f"no output: the plug-in {err}", night_id))
                continue
            report.findings.append(_leak_finding(text1, night_id))
            try:
                out1 = AlgorithmOutput.model_validate_json(text1)
            except ValidationError as exc:
                report.findings.append(Finding("schema", False, f"{exc.error_count()} schema error(s) in the "
                                               "output's JSON", night_id))
                continue
            report.findings += _output_findings(plugin, night, out1, canonical, night_id)
            text2, err2, *_ = _run(plugin, night, version, model_dir, psg_dir)
            same = text1 == text2
            report.findings.append(Finding("deterministic", same, "two runs gave identical outputs" if same else
                                           ("the second run " + err2 if text2 is None else "two runs differ"), night_id))
            report.findings.append(Finding("budget", elapsed <= budget_s and peak <= budget_mb,
                                           f"{elapsed:.2f} s (<= {budget_s:g}), {peak:.0f} MB peak RSS added "
                                           f"(<= {budget_mb:g})", night_id))
    return report


def _leak_finding(text: str, night_id: str) -> Finding:
    """``no_personal_data`` on the output's JSON as the plug-in produced it (valid or not)."""
    leaks = [c for c in PERSONAL_CANARIES if c in text] + (["a calendar date"] if DATE.search(text) else [])
    return Finding("no_personal_data", not leaks, f"{len(leaks)} planted personal string(s) in the output"
                   if leaks else "no planted personal string or date in the output", night_id)


def _output_findings(plugin: Algorithm, night: PreparedNight, output: AlgorithmOutput, canonical: tuple[str, ...],
                     night_id: str) -> list[Finding]:
    found = [Finding("schema", True, "the output re-validates from its JSON", night_id)]
    problems = check_lengths(output, night.n_epochs)
    found.append(Finding("epochs", not problems, problems[0] if problems else
                         f"{night.n_epochs} epochs, {len(output.features)} feature(s)", night_id))
    units = [f.name for f in output.features if not f.unit.strip()]
    found.append(Finding("units", not units, f"feature(s) without a unit: {units[:3]}" if units else
                         "every feature has a unit", night_id))
    duration = night.duration_s
    outside = [e for e in output.events if e.onset_s + e.duration_s > duration + 1e-6]
    found.append(Finding("events", not outside, f"{len(outside)} event(s) end after the recording ({duration:g} s)"
                         if outside else f"{len(output.events)} event(s) within the recording", night_id))
    bad_scores = check_scores(output, plugin.name, canonical)
    found.append(Finding("scores", not bad_scores, bad_scores[0] if bad_scores else
                         f"{len(output.scores)} extra score(s), namespaced", night_id))
    return found

"""``make bench``: every performance target of DESIGN.md, each beside its baseline in the same run.

Writes ``BENCHMARKS.md`` (or ``--output``). Each figure is the median of ``--runs`` runs with min
and max; ratios are computed pair by pair (run i of ours against run i of the baseline).
``--quick`` runs everything once on small inputs, to check that it runs (CI).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from sunrise_common.emulators import free_port

ROOT = Path(__file__).resolve().parents[1]
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def child(task: str, *args: object, pin: bool = True) -> dict:
    """Run one task in a fresh process (pinned to one core, one BLAS thread) and return its JSON."""
    cmd = [sys.executable, "-m", "benchmarks.child", task, *map(str, args)]
    if pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    env = {**os.environ, **SINGLE_THREAD, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def stat(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(s: dict, unit: str = "", digits: int = 3) -> str:
    return f"{s['median']:.{digits}f}{unit} (min {s['min']:.{digits}f}, max {s['max']:.{digits}f}, n={s['n']})"


# -- benchmarks -------------------------------------------------------------------------------
def bench_psg(tmp: Path, runs: int, hours: float) -> dict:
    from benchmarks.psg_prep_bench import make_big_psg

    path = make_big_psg(tmp / "psg.edf", hours=hours)
    log(f"psg_prep vs MNE on {path.stat().st_size / 1e6:.0f} MB ({hours} h, 20 ch, 256 Hz), {runs} run(s)")
    ours, base = [], []
    for i in range(runs):
        ours.append(child("psg_ours", path, tmp / f"psg_out{i}"))
        shutil.rmtree(tmp / f"psg_out{i}", ignore_errors=True)
        base.append(child("psg_baseline", path))
    return {
        "file_mb": path.stat().st_size / 1e6, "hours": hours,
        "ours_s": stat([r["wall_s"] for r in ours]), "baseline_s": stat([r["wall_s"] for r in base]),
        "ours_rss_mb": stat([r["peak_rss_mb"] for r in ours]), "baseline_rss_mb": stat([r["peak_rss_mb"] for r in base]),
        "speedup": stat([b["wall_s"] / o["wall_s"] for o, b in zip(ours, base)]),
        "memory_ratio": stat([o["peak_rss_mb"] / b["peak_rss_mb"] for o, b in zip(ours, base)]),
        "baseline_steps": base[0], "path": str(path),
    }


def bench_ingest(tmp: Path, runs: int, psg_path: Path, big_hours: float, big_channels: int) -> dict:
    from benchmarks.psg_prep_bench import make_big_psg

    log(f"anonymise vs copy on {psg_path.stat().st_size / 1e6:.0f} MB, {runs} run(s)")
    copies, anons = [], []
    for _ in range(runs):
        copies.append(child("copy", psg_path, tmp / "copy.edf"))
        anons.append(child("anonymise", psg_path, tmp / "anon.edf"))
    size = psg_path.stat().st_size
    big = make_big_psg(tmp / "big.edf", hours=big_hours, n_channels=big_channels)
    log(f"anonymise peak memory on {big.stat().st_size / 1e6:.0f} MB")
    big_run = child("anonymise", big, tmp / "big-anon.edf")
    big_copy = child("copy", big, tmp / "big-copy.edf")
    for p in (big, tmp / "big-anon.edf", tmp / "big-copy.edf", tmp / "copy.edf", tmp / "anon.edf"):
        p.unlink(missing_ok=True)
    return {
        "file_mb": size / 1e6,
        "copy_mb_s": stat([size / r["wall_s"] / 1e6 for r in copies]),
        "anonymise_mb_s": stat([size / r["wall_s"] / 1e6 for r in anons]),
        "throughput_ratio": stat([c["wall_s"] / a["wall_s"] for c, a in zip(copies, anons)]),
        "big_file_mb": big_run["bytes"] / 1e6, "big_anonymise_rss_mb": big_run["peak_rss_mb"],
        "big_copy_rss_mb": big_copy["peak_rss_mb"], "big_anonymise_s": big_run["wall_s"],
    }


def bench_sunrise(tmp: Path, runs: int, hours: float) -> dict:
    from sunrise_cli.synth import synth_night

    night = synth_night(tmp / "night", seed=11, hours=hours)
    log(f"sunrise_prep + sunalgo on a {hours} h night, {runs} run(s)")
    res = []
    for i in range(runs):
        res.append(child("sunrise_algo", night.sunrise, tmp / f"sa{i}"))
        shutil.rmtree(tmp / f"sa{i}", ignore_errors=True)
    return {"hours": hours, "total_s": stat([r["sunrise_prep_s"] + r["sunalgo_s"] for r in res]),
            "sunrise_prep_s": stat([r["sunrise_prep_s"] for r in res]), "sunalgo_s": stat([r["sunalgo_s"] for r in res]),
            "peak_rss_mb": stat([r["peak_rss_mb"] for r in res]), "sunrise_edf": str(night.sunrise)}


def bench_duplicates(tmp: Path, n: int) -> dict:
    """A duplicate (already done) event through the real ingest app, beside a bare FastAPI endpoint."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from ingest.handler import handle
    from sunrise_common.events import storage_event
    from sunrise_common.service import Context, create_app
    from sunrise_common.settings import Settings

    settings = Settings(backend="embedded", data_dir=tmp / "dup", pseudonym_key="bench-key-0123456789abcdef", log_level="WARNING")
    ctx = Context.from_settings(settings)
    ctx.storage.ensure_bucket(settings.bucket("raw"))
    corpus = ROOT.parent / "shared" / "corpus" / "edf" / "edfio__short_psg.edf"
    info = ctx.storage.upload_file(settings.bucket("raw"), "psg/bench/S1/psg.edf", corpus, if_generation_match=None)
    headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
    payload = json.dumps(body).encode()

    bare = FastAPI()

    @bare.post("/")
    def root() -> dict:
        return {"status": "ok"}

    def measure(app, expect: str | None) -> list[float]:
        with TestClient(app) as client:
            first = client.post("/", headers=headers, content=payload)
            first.raise_for_status()
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                r = client.post("/", headers=headers, content=payload)
                times.append(time.perf_counter() - t0)
                if expect and r.json().get("status") != expect:
                    raise RuntimeError(f"expected a {expect} answer, got {r.text}")
            return times

    import logging

    logging.disable(logging.INFO)
    try:
        ours = measure(create_app("ingest", handle, settings=settings), "duplicate")
        ceiling = measure(bare, None)
    finally:
        logging.disable(logging.NOTSET)
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000  # noqa: E731
    return {"n": n, "p50_ms": q(ours, 0.5), "p99_ms": q(ours, 0.99), "events_per_s": n / sum(ours),
            "bare_p50_ms": q(ceiling, 0.5), "bare_p99_ms": q(ceiling, 0.99), "bare_events_per_s": n / sum(ceiling)}


def _stack_settings(data_dir: Path, **extra):
    from sunrise_common.settings import Settings

    urls = {f"{s}_url": f"http://127.0.0.1:{free_port()}/" for s in ("ingest", "sunrise_prep", "psg_prep", "sunalgo")}
    return Settings(backend="embedded", data_dir=data_dir, pseudonym_key="bench-key-0123456789abcdef", router_poll_s=0.1,
                    router_backoff_initial_s=0.5, router_backoff_max_s=5, log_level="WARNING", **urls, **extra)


def _cpu_per_stage(state, metric: str = "cpu_s") -> dict:
    """Per stage, the distribution of a run metric (``cpu_s`` or ``wall_s``) over done runs."""
    per: dict[str, list[float]] = {}
    for _, doc in state.list("nights"):
        for stage, runs in doc.get("runs", {}).items():
            for run in runs.values():
                if run.get("state") == "done" and metric in run.get("metrics", {}):
                    per.setdefault(stage, []).append(run["metrics"][metric])
    for _, doc in state.list("uploads"):
        for run in doc.get("runs", {}).get("ingest", {}).values():
            if run.get("state") == "done" and metric in run.get("metrics", {}):
                per.setdefault("ingest (per file)", []).append(run["metrics"][metric])
    return {k: stat(v) for k, v in per.items()}


def bench_stack(tmp: Path, hours: float, backfill_nights: int, backfill_hours: float) -> dict:
    from sunrise_cli import ops
    from sunrise_cli.runner import upload_example, wait_for_scores
    from sunrise_cli.stack import Stack
    from sunrise_cli.synth import synth_night
    from sunrise_common import status
    from sunrise_common.service import Context

    settings = _stack_settings(tmp / "stack")
    ctx = Context.from_settings(settings)
    for logical in ("raw", "anonymised", "prepped", "results"):
        ctx.storage.ensure_bucket(settings.bucket(logical))
    with Stack(settings, tmp / "stack-logs"):
        log(f"embedded stack: upload to scores for one {hours} h night pair")
        t0 = time.perf_counter()
        upload_example(ctx, tmp / "example", hours=hours, seed=5)
        done = wait_for_scores(ctx, timeout=600)
        upload_to_scores = time.perf_counter() - t0
        if not done:
            raise RuntimeError("the example night was not scored within 600 s")
    single_cpu = _cpu_per_stage(ctx.state)

    settings = _stack_settings(tmp / "backfill", router_watch_raw=False)
    ctx = Context.from_settings(settings)
    for logical in ("raw", "anonymised", "prepped", "results"):
        ctx.storage.ensure_bucket(settings.bucket(logical))
    log(f"backfill: {backfill_nights} nights of {backfill_hours} h")
    for i in range(backfill_nights):
        night = synth_night(tmp / "bf" / str(i), seed=100 + i, hours=backfill_hours)
        subject = f"B{i:03d}"
        for kind, paths in (("sunrise", [night.sunrise]), ("psg", [night.psg]), ("labels", night.labels)):
            for p in paths:
                ops.upload(ctx, Path(p), kind=kind, site="bench", subject=subject)
        shutil.rmtree(tmp / "bf" / str(i))
    with Stack(settings, tmp / "backfill-logs"):
        t0 = time.perf_counter()
        summary = ops.send_all(ops.backfill_jobs(ctx, "", force=False, url=settings.ingest_url, token=None, checkpoint=None),
                               rate=None, max_in_flight=4)
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            nights = list(ctx.state.list("nights"))
            if len(nights) == backfill_nights and status.all_done(ctx.state):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("the backfill did not finish within 30 min")
        wall = time.perf_counter() - t0
    return {"hours": hours, "upload_to_scores_s": upload_to_scores, "cpu_per_stage_8h": single_cpu,
            "backfill_nights": backfill_nights, "backfill_hours": backfill_hours, "backfill_wall_s": wall,
            "nights_per_minute": backfill_nights / wall * 60, "backfill_summary": summary.as_dict(),
            "cpu_per_stage_backfill": _cpu_per_stage(ctx.state), "wall_per_stage_backfill": _cpu_per_stage(ctx.state, "wall_s"),
            "files_per_night": len(list(ctx.storage.list(settings.bucket("raw")))) / backfill_nights}


def profile_top(fn, *args, limit: int = 12) -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn(*args)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(limit)
    return "\n".join(line for line in out.getvalue().splitlines() if line.strip())[:4000]


# -- report -----------------------------------------------------------------------------------
def machine() -> dict:
    import importlib.metadata as md

    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = {}
    for pkg in ("numpy", "scipy", "mne", "fastapi", "uvicorn"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return {"cores": os.cpu_count(), "memory_gb": round(mem_gb, 1), "cpu": cpu, "python": platform.python_version(),
            "versions": versions}


def write_report(r: dict, output: Path, quick: bool) -> list[str]:
    m = r["machine"]
    psg, ing, sun, dup, stk = r["psg"], r["ingest"], r["sunrise"], r["duplicates"], r["stack"]
    rows = [
        ("psg_prep speed vs MNE naive (same file)", "≥ 6×", f"{psg['speedup']['median']:.1f}×", psg["speedup"]["median"] >= 6),
        ("psg_prep peak memory vs MNE naive", "≤ 1/8 (0.125)", f"{psg['memory_ratio']['median']:.3f}", psg["memory_ratio"]["median"] <= 0.125),
        ("ingest anonymise throughput vs plain copy", "≥ 50 %", f"{100 * ing['throughput_ratio']['median']:.0f} %", ing["throughput_ratio"]["median"] >= 0.5),
        (f"ingest peak memory on a {ing['big_file_mb']:.0f} MB file", "does not grow with the file (≤ 256 MB)", f"{ing['big_anonymise_rss_mb']:.0f} MB", ing["big_anonymise_rss_mb"] <= 256),
        (f"sunrise_prep + sunalgo, {sun['hours']:g} h night", "≤ 1 s", f"{sun['total_s']['median']:.2f} s", sun["total_s"]["median"] <= 1.0),
        ("duplicate event p50, in-process", "≤ 5 ms", f"{dup['p50_ms']:.2f} ms", dup["p50_ms"] <= 5.0),
        (f"embedded stack upload → scores, {stk['hours']:g} h night pair, 2 cores", "≤ 15 s", f"{stk['upload_to_scores_s']:.1f} s", stk["upload_to_scores_s"] <= 15.0),
    ]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench{' --quick' if quick else ''}` (`benchmarks/run.py`) on {r['date']}."
        + (" **Quick mode: single runs on short inputs; these numbers only show that the benchmarks run.**" if quick else ""),
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB, Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        "Single-process figures run pinned to one core with one BLAS thread (`taskset -c 0`), baseline and ours alike;"
        " each is the median of the runs with min and max; ratios are computed pair by pair.",
        "",
        "## Targets (DESIGN.md \"Performance targets\")",
        "",
        "| target | goal | measured | met |",
        "| --- | --- | --- | --- |",
        *[f"| {a} | {b} | {c} | {'met' if ok else '**not met**'} |" for a, b, c, ok in rows],
        "",
        "## psg_prep vs the naive MNE baseline",
        "",
        f"Synthetic {psg['hours']:g}-hour night, 20 channels at 256 Hz, {psg['file_mb']:.0f} MB EDF. Baseline: "
        "`mne.io.read_raw_edf(preload=True)` + `raw.filter(0.3, 35)` (FIR) + `raw.resample(100)`. Ours: "
        "`psg_prep.prepare_psg` (every channel: per-type zero-phase filters, polyphase resampling, quality flags, labels).",
        "",
        f"- ours: {fmt(psg['ours_s'], ' s')}; peak RSS {fmt(psg['ours_rss_mb'], ' MB', 0)}",
        f"- baseline: {fmt(psg['baseline_s'], ' s')}; peak RSS {fmt(psg['baseline_rss_mb'], ' MB', 0)}"
        f" (first run: read {psg['baseline_steps']['read_s']:.2f} s, filter {psg['baseline_steps']['filter_s']:.2f} s,"
        f" resample {psg['baseline_steps']['resample_s']:.2f} s)",
        f"- speed-up {fmt(psg['speedup'], '×', 2)}; memory ratio {fmt(psg['memory_ratio'], '', 3)}",
        "",
        "## ingest: anonymisation vs plain file copy",
        "",
        f"- same {ing['file_mb']:.0f} MB EDF: copy {fmt(ing['copy_mb_s'], ' MB/s', 0)}; anonymise {fmt(ing['anonymise_mb_s'], ' MB/s', 0)};"
        f" throughput ratio {fmt(ing['throughput_ratio'], '', 2)}",
        f"- {ing['big_file_mb']:.0f} MB file: anonymise peak RSS {ing['big_anonymise_rss_mb']:.0f} MB in {ing['big_anonymise_s']:.1f} s"
        f" (plain copy: {ing['big_copy_rss_mb']:.0f} MB)",
        "",
        "## sunrise_prep + sunalgo",
        "",
        f"- {sun['hours']:g}-hour synthetic night: total {fmt(sun['total_s'], ' s')}; sunrise_prep {fmt(sun['sunrise_prep_s'], ' s')};"
        f" sunalgo {fmt(sun['sunalgo_s'], ' s')}; peak RSS {fmt(sun['peak_rss_mb'], ' MB', 0)}",
        "",
        "## A duplicate (already done) event",
        "",
        f"{dup['n']} redeliveries of a done finalize event through the real ingest FastAPI app (in-process test client,"
        " SQLite state), beside a bare FastAPI endpoint through the same client as the ceiling:",
        "",
        f"- ingest: p50 {dup['p50_ms']:.2f} ms, p99 {dup['p99_ms']:.2f} ms, {dup['events_per_s']:.0f} events/s",
        f"- bare FastAPI: p50 {dup['bare_p50_ms']:.2f} ms, p99 {dup['bare_p99_ms']:.2f} ms, {dup['bare_events_per_s']:.0f} events/s",
        "",
        "## Embedded stack (real processes on 2 cores)",
        "",
        f"- upload → scores for one {stk['hours']:g}-hour night pair (Sunrise + PSG + 4 label files): {stk['upload_to_scores_s']:.1f} s",
        f"- backfill of {stk['backfill_nights']} nights of {stk['backfill_hours']:g} h (`sunrise backfill`, 4 in flight):"
        f" {stk['backfill_wall_s']:.1f} s, **{stk['nights_per_minute']:.1f} nights/min**; summary {stk['backfill_summary']['sent']} sent,"
        f" {stk['backfill_summary']['failed']} failed",
        "",
        "### CPU seconds per night and stage",
        "",
        "Measured inside each service (`time.process_time()` around the stage's work, recorded in the state store)."
        " It is the service process's CPU time: in the backfill, with 4 requests in flight, it also counts the"
        " concurrent requests' work (an upper bound); the single night pair ran alone.",
        "",
        "| stage | one 8-h night pair | backfill nights |",
        "| --- | --- | --- |",
    ]
    stages = sorted(set(stk["cpu_per_stage_8h"]) | set(stk["cpu_per_stage_backfill"]))
    for s in stages:
        a, b = stk["cpu_per_stage_8h"].get(s), stk["cpu_per_stage_backfill"].get(s)
        lines.append(f"| {s} | {fmt(a, ' s') if a else '-'} | {fmt(b, ' s') if b else '-'} |")
    if r.get("profiles"):
        lines += ["", "## Profiles of what misses its target", ""]
        for name, text in r["profiles"].items():
            lines += [f"### {name}", "", "```", text, "```", ""]
    output.write_text("\n".join(lines) + "\n")
    return [a for a, _, _, ok in rows if not ok]


def _write_scaling(result: dict) -> None:
    from benchmarks.scaling import write_scaling

    stk = result["stack"]
    write_scaling({k: v["median"] for k, v in stk["wall_per_stage_backfill"].items()},
                  {k: v["median"] for k, v in stk["cpu_per_stage_backfill"].items()},
                  stk["files_per_night"], stk["nights_per_minute"], ROOT / "docs" / "scaling.md", result["date"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="One run each on short inputs (CI: checks that it runs).")
    parser.add_argument("--runs", type=int, default=3, help="Runs per single-process figure (default 3).")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md", help="Where to write the report.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the raw numbers as JSON.")
    parser.add_argument("--render", type=Path, default=None,
                        help="Only rewrite the reports from a JSON file an earlier run wrote with --json.")
    args = parser.parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text())
        write_report(result, args.output, args.quick)
        _write_scaling(result)
        return 0
    runs = 1 if args.quick else args.runs
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    with tempfile.TemporaryDirectory(prefix="sunrise-bench-") as tmp:
        tmp = Path(tmp)
        psg_hours = 0.25 if args.quick else 8.0
        result["psg"] = bench_psg(tmp, runs, psg_hours)
        result["ingest"] = bench_ingest(tmp, runs, Path(result["psg"]["path"]), 0.5 if args.quick else 8.0,
                                        20 if args.quick else 68)
        result["sunrise"] = bench_sunrise(tmp, runs, 1.0 if args.quick else 8.0)
        result["duplicates"] = bench_duplicates(tmp, 50 if args.quick else 1000)
        result["stack"] = bench_stack(tmp, 1.0 if args.quick else 8.0, 3 if args.quick else 50, 0.5 if args.quick else 8.0)
        missed = []
        result["profiles"] = {}
        # the profile of whatever misses its target, where the time goes
        if result["psg"]["speedup"]["median"] < 6 or result["psg"]["memory_ratio"]["median"] > 0.125:
            from psg_prep.prepare import prepare_psg

            (tmp / "prof").mkdir()
            result["profiles"]["psg_prep"] = profile_top(prepare_psg, Path(result["psg"]["path"]), [], tmp / "prof")
        if result["sunrise"]["total_s"]["median"] > 1.0:
            from sunalgo.run import run_sunalgo
            from sunrise_prep.prepare import prepare_sunrise

            def both(edf: Path) -> None:
                (tmp / "p1").mkdir(exist_ok=True)
                (tmp / "p2").mkdir(exist_ok=True)
                prepare_sunrise(edf, tmp / "p1")
                run_sunalgo(tmp / "p1", None, tmp / "p2")

            result["profiles"]["sunrise_prep + sunalgo"] = profile_top(both, Path(result["sunrise"]["sunrise_edf"]))
        missed = write_report(result, args.output, args.quick)
        if not args.quick:
            _write_scaling(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    log(f"wrote {args.output}; targets not met: {missed or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

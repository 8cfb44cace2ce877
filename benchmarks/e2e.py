"""The embedded stack measured as it runs: service cold starts and backfills of N nights.

Each service runs in its own process (``sunrise_cli.stack.Stack``, as ``make run`` starts it).
CPU seconds per stage are the service processes' own CPU time (``/proc`` via psutil) over the
whole backfill divided by the nights, so concurrent requests are neither double counted nor
missed; the per-request wall times come from the state store.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from benchmarks.whole import loadavg, percentile, stat


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stack_settings(data_dir: Path, **extra):
    from sunrise_devstack.emulators import local_service_urls
    from sunrise_devstack.settings import DevStackSettings

    urls = local_service_urls()
    return DevStackSettings(backend="embedded", data_dir=data_dir, pseudonym_key="bench-key-0123456789abcdef", router_poll_s=0.1,
                    router_backoff_initial_s=0.5, router_backoff_max_s=5, log_level="WARNING", **urls, **extra)


def _context(settings):
    from sunrise_common.service import Context

    ctx = Context.from_settings(settings)
    for logical in ("raw", "anonymised", "prepped", "results"):
        ctx.storage.ensure_bucket(settings.bucket(logical))
    return ctx


def _process_cpu_s(pid: int) -> float:
    """CPU seconds of a process, its threads, its reaped children and its live descendants."""
    import psutil

    proc = psutil.Process(pid)
    t = proc.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in proc.children(recursive=True):
        try:
            c = child.cpu_times()
        except psutil.Error:
            continue
        total += c.user + c.system
    return total


# -- cold starts ------------------------------------------------------------------------------
def cold_starts(tmp: Path, runs: int) -> dict:
    """Per service: process start to the first 200 from ``/healthz`` (what a Cloud Run scale-up
    waits for before the instance takes traffic), wall and the process's CPU seconds by then."""
    import httpx

    from sunrise_cli.stack import SERVICE_APPS, Stack

    out: dict[str, dict] = {}
    for service in SERVICE_APPS:
        walls, cpus = [], []
        for i in range(runs):
            settings = stack_settings(tmp / f"cold-{service}-{i}")
            _context(settings)
            stack = Stack(settings, tmp / "cold-logs")
            url = settings.service_url(service).rstrip("/") + "/healthz"
            t0 = time.perf_counter()
            stack.start_service(service)
            proc = stack.procs[service]
            try:
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"{service} exited with {proc.returncode}; see {tmp / 'cold-logs'}")
                    try:
                        if httpx.get(url, timeout=1.0).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.perf_counter() - t0 > 120:
                        raise TimeoutError(f"{service} did not answer {url} within 120 s")
                    time.sleep(0.02)
                walls.append(time.perf_counter() - t0)
                cpus.append(_process_cpu_s(proc.pid))
            finally:
                stack.stop()
            shutil.rmtree(tmp / f"cold-{service}-{i}", ignore_errors=True)
        out[service] = {"wall_s": stat(walls), "cpu_s": stat(cpus)}
        log(f"cold start {service}: {out[service]['wall_s']['median']:.2f} s wall, {out[service]['cpu_s']['median']:.2f} CPU-s")
    return out


# -- nights -----------------------------------------------------------------------------------
def realistic_psg(big_psg: Path, out: Path, start) -> Path:
    """The 20-channel 256-Hz night with its start moved to ``start`` (the Sunrise recording's
    night), so that ingest pairs it with the synthetic Sunrise half: only the header changes."""
    from sunrise_common.edf.header import FIXED_FIELDS

    shutil.copyfile(big_psg, out)
    with open(out, "r+b") as f:
        for name, text in (("startdate", start.strftime("%d.%m.%y")), ("starttime", start.strftime("%H.%M.%S"))):
            offset, width = FIXED_FIELDS[name]
            f.seek(offset)
            f.write(text.encode().ljust(width))
    return out


def _latencies(state) -> tuple[list[float], list[float]]:
    """Per night: seconds from the night's first ingest to its last sunalgo result, and the time
    of that result."""
    latency, finished = [], []
    for _, doc in state.list("nights"):
        runs = [r for r in doc.get("runs", {}).get("sunalgo", {}).values() if r.get("state") == "done"]
        if runs and doc.get("created_at"):
            last = max(r["finished_at"] for r in runs)
            latency.append(last - doc["created_at"])
            finished.append(last)
    return latency, finished


def _wall_per_stage(state) -> dict[str, dict]:
    per: dict[str, list[float]] = {}
    for _, doc in state.list("nights"):
        for stage, runs in doc.get("runs", {}).items():
            for run in runs.values():
                if run.get("state") == "done" and run.get("duration_s") is not None:
                    per.setdefault(stage, []).append(run["duration_s"])
    for _, doc in state.list("uploads"):
        for run in doc.get("runs", {}).get("ingest", {}).values():
            if run.get("state") == "done" and run.get("duration_s") is not None:
                per.setdefault("ingest (per file)", []).append(run["duration_s"])
    # the mean too: the cost of N requests is N x the mean, and ingest's requests are skewed
    # (five small files and one 295 MB PSG a night)
    return {k: stat(v) | {"mean": sum(v) / len(v)} for k, v in per.items()}


def backfill(tmp: Path, n_nights: int, *, hours: float, big_psg: Path | None, distinct: int = 4,
             max_in_flight: int = 4, timeout_s: float = 3600) -> dict:
    """Upload ``n_nights`` night pairs, start the stack, replay the raw bucket with ``sunrise
    backfill``'s sender and wait until every night is scored with its PSG half.

    ``distinct`` synthetic nights (Sunrise EDF+ and labels) are generated and reused round-robin
    under different subjects; with ``big_psg`` every night's PSG is that 20-channel 256-Hz file
    (its start moved to the night), otherwise the synthetic night's light 7-channel PSG.
    """
    from sunrise_cli import ops
    from sunrise_cli.stack import Stack
    from sunrise_cli.synth import synth_night
    from sunrise_devstack import status

    work = tmp / f"bf-{n_nights}-{'psg20' if big_psg else 'light'}"
    settings = stack_settings(work / "data", router_watch_raw=False)
    ctx = _context(settings)
    nights = []
    for k in range(min(distinct, n_nights)):
        night = synth_night(work / "synth" / str(k), seed=100 + k, hours=hours)
        psg = realistic_psg(big_psg, work / "synth" / str(k) / "psg20.edf", night_start(night)) if big_psg else night.psg
        nights.append((night, psg))
    for i in range(n_nights):
        night, psg = nights[i % len(nights)]
        subject = f"B{i:03d}"
        for kind, paths in (("sunrise", [night.sunrise]), ("psg", [psg]), ("labels", night.labels)):
            for p in paths:
                ops.upload(ctx, Path(p), kind=kind, site="bench", subject=subject, name=Path(p).name.replace("psg20", "psg"))
    shutil.rmtree(work / "synth")
    files = len(list(ctx.storage.list(settings.bucket("raw"))))
    load_before = loadavg()
    with Stack(settings, work / "logs") as stack:
        pids = {name: proc.pid for name, proc in stack.procs.items()}
        cpu0 = {name: _process_cpu_s(pid) for name, pid in pids.items()}
        t0, wall0 = time.perf_counter(), time.time()
        summary = ops.send_all(ops.backfill_jobs(ctx, "", force=False, url=settings.ingest_url, token=None, checkpoint=None),
                               rate=None, max_in_flight=max_in_flight)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(list(ctx.state.list("nights"))) == n_nights and status.all_done(ctx.state):
                break
            time.sleep(0.25)
        else:
            raise RuntimeError(f"the backfill of {n_nights} nights did not finish within {timeout_s:.0f} s")
        wall = time.perf_counter() - t0
        cpu = {name: _process_cpu_s(pid) - cpu0[name] for name, pid in pids.items()}
    load_after = loadavg()
    latency, finished = _latencies(ctx.state)
    result = {
        "n": n_nights,
        "psg": f"20 ch x 256 Hz, {big_psg.stat().st_size / 1e6:.0f} MB" if big_psg else "synthetic 7-channel (light)",
        "hours": hours, "files": files, "files_per_night": files / n_nights, "wall_s": wall,
        "nights_per_minute": n_nights / wall * 60, "sent": summary.sent, "failed": summary.failed,
        "latency_s": stat(latency), "latency_p95_s": percentile(latency, 0.95),
        "makespan_s": max(finished) - wall0 if finished else None,
        "cpu_s_per_night": {name: c / n_nights for name, c in cpu.items()},
        "wall_per_stage": _wall_per_stage(ctx.state),
        "load_before": load_before, "load_after": load_after,
    }
    shutil.rmtree(work, ignore_errors=True)
    log(f"backfill N={n_nights} ({result['psg']}): {wall:.1f} s, {result['nights_per_minute']:.1f} nights/min,"
        f" p95 latency {result['latency_p95_s']:.1f} s")
    return result


def night_start(night):
    """The PSG start of a synthetic night (read from its header)."""
    from sunrise_common.edf import read_header

    return read_header(night.psg).start

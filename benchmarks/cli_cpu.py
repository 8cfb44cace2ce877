"""CPU time of the everyday commands: ``sunrise --help`` and ``sunrise status`` (target ≤ 1 s).

Each is run as a whole process (the installed ``sunrise`` entry point: interpreter start and
imports included); CPU seconds (user + system) come from ``wait4``. ``status``
reads a real embedded state: ``n_uploads`` uploads of a corpus PSG file ingested by the real
ingest app (one psg-only night each, waiting for its partner) and one rejected upload, so the
summary, the waiting list and the raw-bucket name lookup of a failed upload all run.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CORPUS_PSG = ROOT / "tests" / "data" / "corpus" / "edf" / "edfio__short_psg.edf"
BENCH_KEY = "bench-pseudonym-key-0123456789abcdef"


def run_process(cmd: list[str], *, env: dict[str, str]) -> dict[str, float]:
    """Wall and CPU seconds (``wait4``: the process and its waited-for children) of one command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {code}: {err[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime}


def stat(values: list[float]) -> dict[str, float]:
    """median / min / max / n of some measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _seed_state(data_dir: Path, n_uploads: int) -> dict[str, str]:
    """Ingest ``n_uploads`` copies of a corpus PSG and one bad file; the environment to read it."""
    from fastapi.testclient import TestClient

    from ingest.handler import handle
    from sunrise_common.events import storage_event
    from sunrise_common.service import Context, create_app
    from sunrise_common.settings import Settings

    logging.disable(logging.WARNING)  # ingest's one JSON line per upload is not what is measured here
    env = {"SUNRISE_DATA_DIR": str(data_dir), "SUNRISE_PSEUDONYM_KEY": BENCH_KEY, "SUNRISE_PREFIX": "sunrise-bench"}
    settings = Settings(backend="embedded", data_dir=data_dir, pseudonym_key=BENCH_KEY, prefix="sunrise-bench")
    ctx = Context.from_settings(settings)
    for logical in ("raw", "anonymised", "prepped", "results"):
        ctx.storage.ensure_bucket(settings.bucket(logical))
    raw = settings.bucket("raw")
    infos = [ctx.storage.upload_file(raw, f"psg/bench/S{i:04d}/night.edf", CORPUS_PSG, if_generation_match=None)
             for i in range(n_uploads)]
    infos.append(ctx.storage.write_bytes(raw, "psg/bench/S9999/not-an-edf.edf", b"not an EDF", if_generation_match=None))
    with TestClient(create_app("ingest", handle, settings=settings)) as client:
        for info in infos:
            headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
            resp = client.post("/", headers=headers, content=json.dumps(body))
            if resp.status_code >= 300:
                raise RuntimeError(f"ingest answered {resp.status_code}: {resp.text}")
    logging.disable(logging.NOTSET)
    return env


def bench_cli(tmp: Path, runs: int, n_uploads: int = 50) -> dict:
    """Median, min and max CPU and wall seconds of ``sunrise --help`` and ``sunrise status``."""
    if not CORPUS_PSG.is_file():
        raise FileNotFoundError(f"{CORPUS_PSG} (the repository's test corpus) is needed to seed the state")
    exe = Path(sys.executable).parent / "sunrise"
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "sunrise_cli.main"]
    seeded = _seed_state(Path(tmp) / "cli-data", n_uploads)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNRISE_")} | seeded | {"COLUMNS": "100"}
    out: dict = {"n_uploads": n_uploads + 1, "commands": {}}
    for args in (["--help"], ["status"], ["status", "--json"]):
        results = [run_process([*cmd, *args], env=env) for _ in range(max(1, runs))]
        out["commands"]["sunrise " + " ".join(args)] = {
            "cpu_s": stat([r["cpu_s"] for r in results]), "wall_s": stat([r["wall_s"] for r in results])}
    return out


def goal_rows(cli: dict) -> list[tuple[str, str, str, str]]:
    """BENCHMARKS.md rows (aim, target, measured, verdict) for ``sunrise --help`` and ``status``."""
    rows = []
    for name, m in cli["commands"].items():
        cpu = m["cpu_s"]
        what = f"`{name}` CPU, whole process" + (f" ({cli['n_uploads']} uploads in the state)" if "status" in name else "")
        rows.append((what, "≤ 1 s", f"{cpu['median']:.2f} s ({cpu['min']:.2f}–{cpu['max']:.2f}, n={cpu['n']}); "
                                    f"wall {m['wall_s']['median']:.2f} s",
                     "met" if cpu["max"] <= 1.0 else "**not met**"))
    return rows


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sunrise-cli-bench-") as d:
        result = bench_cli(Path(d), runs=int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    for row in goal_rows(result):
        print(" | ".join(row))

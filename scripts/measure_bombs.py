"""RELIABILITY.md's bomb rows handled by psg_prep's limits and the service error path:
``uv run python scripts/measure_bombs.py [--hogs N]``.

Each bomb runs in its own process, capped at 4 GB of address space (``RLIMIT_AS``) so that a
regression fails with a MemoryError instead of taking the machine; one JSON line per bomb with
the outcome, the time to refuse (in-process) and the process's peak RSS (imports included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
kind, path = sys.argv[1], sys.argv[2]
if kind in ("ingest-psg", "ingest-labels"):
    import tempfile
    from pathlib import Path
    from fastapi.testclient import TestClient
    from sunrise_common.events import storage_event
    from sunrise_common.service import Context, create_app
    from sunrise_common.settings import Settings
    from ingest.handler import handle
    settings = Settings(backend="embedded", data_dir=Path(tempfile.mkdtemp()) / "d", pseudonym_key="k" * 32,
                        prefix="bomb-x", project="bomb")
    ctx = Context.from_settings(settings)
    for logical in ("raw", "anonymised", "prepped", "results"):
        ctx.storage.ensure_bucket(settings.bucket(logical))
    info = ctx.storage.upload_file(settings.bucket("raw"), f"{kind[7:]}/site/subject/{Path(path).name}", Path(path),
                                   if_generation_match=None)
    client = TestClient(create_app("ingest", handle, settings=settings)).__enter__()
    headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
    def work():
        resp = client.post("/", headers=headers, content=json.dumps(body))
        return f"HTTP {resp.status_code} {resp.json().get('status')} {resp.json().get('reason')}"
elif kind == "psg":
    from pathlib import Path
    from psg_prep.prepare import prepare_psg
    work = lambda: prepare_psg(Path(path), [], Path(path + ".out"))
else:
    import tempfile
    from pathlib import Path
    import numpy as np
    from fastapi.testclient import TestClient
    from sunrise_common.events import pubsub_event
    from sunrise_common.service import create_app, run_stage
    from sunrise_common.settings import Settings
    bombs = {"memory": lambda: np.empty(10**13, np.int16),
             "recursion": lambda: json.loads("[" * 200_000 + "]" * 200_000)}
    settings = Settings(backend="embedded", data_dir=Path(tempfile.mkdtemp()) / "d", pseudonym_key="k" * 32,
                        prefix="bomb-x", project="bomb")
    handle = lambda event, ctx: run_stage(ctx, "nights", "s" + "a" * 12 + "-n" + "b" * 8, "sunalgo", path, bombs[path])
    client = TestClient(create_app("sunalgo", handle, settings=settings)).__enter__()
    headers, body = pubsub_event("bomb", settings.topic("sunrise-prepped"), b"{}")
    def work():
        resp = client.post("/", headers=headers, content=json.dumps(body))
        return f"HTTP {resp.status_code} {resp.json().get('reason')}"
t = time.perf_counter()
try:
    outcome = f"ok: {work()}"
except BaseException as exc:
    outcome = f"{type(exc).__name__} {getattr(exc, 'reason', '')}".strip()
# VmHWM, not ru_maxrss: the latter survives exec and would carry the parent's peak.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "seconds": round(time.perf_counter() - t, 3), "peak_rss_mb": round(hwm / 1024)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=0, help="CPU busy loops beside the bombs")
    args = parser.parse_args()
    import numpy as np

    from sunrise_cli.synth_psg import SynthChannel, write_edf

    folder = Path(tempfile.mkdtemp(prefix="bombs-"))
    zeros = lambda t: np.zeros_like(t)  # noqa: E731
    files = {
        "EDF at 2e8 Hz (one 0.05-s record of 1e7 samples)":
            write_edf(folder / "rate.edf", [SynthChannel("EEG C3-A2", 2e8, zeros)], 1, record_duration=0.05),
        "SpO2 at 1001.001 Hz (a 2.2e7-tap FIR to 1 Hz)":
            write_edf(folder / "odd.edf", [SynthChannel("SpO2", 1000 / 0.999, lambda t: np.full_like(t, 95.0),
                                                        dimension="%", physical_min=0, physical_max=100)],
                      60, record_duration=0.999),
    }
    ingest_files = _ingest_bombs(folder)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    try:
        runs = [(name, "psg", str(path)) for name, path in files.items()]
        runs += [(name, kind, str(path)) for name, (kind, path) in ingest_files.items()]
        runs += [("MemoryError in a stage run", "service", "memory"), ("RecursionError in a stage run", "service", "recursion")]
        for name, kind, arg in runs:
            out = subprocess.run([sys.executable, "-c", CHILD, kind, arg], capture_output=True, text=True, timeout=600)
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith('{"outcome"')), None)
            result = json.loads(line) if line else {"outcome": f"exit {out.returncode}", "stderr": out.stderr[-300:]}
            print(json.dumps({"bomb": name, "hogs": args.hogs, **result}))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _ingest_bombs(folder: Path) -> dict[str, tuple[str, Path]]:
    """The uploads of issue 22 defect 4 that ingest meets first: EDF headers and label files."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.edf.malformed import build_edf, set_field, set_signal_field

    rate = build_edf(n_records=1, labels=("EEG C3-M2",), samples_per_record=(8,), plus=None)
    rate = set_signal_field(rate, "samples_per_record", 0, "99999999", 1)
    rate = set_field(rate, "record_duration", "0.000001")  # 1e8 samples in 1 us: 1e14 Hz claimed
    (folder / "claims.edf").write_bytes(rate)
    annot = build_edf(n_records=1, labels=("EEG C3-M2",), samples_per_record=(8,), plus="C",
                      annotation_bytes=76 << 20)
    (folder / "annotations.edf").write_bytes(annot)
    with open(folder / "one_line.txt", "wb") as f:  # 500 MB without a line break
        f.write(b"Signal ID: FlowD\\flow ")
        f.truncate(500 << 20)
    with open(folder / "Flow Events - rows.txt", "wb") as f:  # 10 M DOMINO rows
        f.write(b"Signal ID: FlowD\\flow\nStart Time: 23.09.2020 01:00:00\nUnit: s\nSignal Type: Impuls\n\n")
        row = b"01:00:00,000-01:00:10,000; 10;Hypopnea\n"
        block = row * 100_000
        for _ in range(100):
            f.write(block)
    depth = 300_000
    (folder / "deep.xml").write_bytes(b"<PSGAnnotation>" + b"<a>" * depth + b"</a>" * depth + b"</PSGAnnotation>")
    return {"EDF header claiming 1e14 Hz": ("ingest-psg", folder / "claims.edf"),
            "EDF+ with 76 MB of annotations": ("ingest-psg", folder / "annotations.edf"),
            "500 MB single-line label file": ("ingest-labels", folder / "one_line.txt"),
            "10 M-row DOMINO export": ("ingest-labels", folder / "Flow Events - rows.txt"),
            "NSRR XML nested 300,000 deep": ("ingest-labels", folder / "deep.xml")}


if __name__ == "__main__":
    main()

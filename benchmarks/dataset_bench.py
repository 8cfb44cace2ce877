"""The gold layer at 2,000 nights: building and reading the dataset (issue 16, must-show 3).

``python -m benchmarks.dataset_bench [--nights 2000] [--epochs 960] [--markdown FILE] [--json FILE]``

Synthetic nights, features only (no signals): each night is a sunalgo results folder
(``training_rows.csv`` with every feature of ``sunrise_algo.builtin.features``, ``scores.json``,
``agreement.json``) as sunalgo writes it, from ~2 nights per subject. Each phase runs in its own
process and reports its wall time, CPU time and peak RSS (``ru_maxrss``), imports included in RSS
but not in the times:

- ``build``: ``sunrise_algo.dataset.write_night`` for every night into a local results bucket,
  create-only through the storage port: exactly the handler's extra step per night.
- ``latest``: ``Dataset.latest`` over every part (footers only).
- ``train_read``: what ``sunrise train`` reads: every newest part through
  ``read_training_rows`` and ``design_matrix``, the design matrix and labels concatenated.
- ``stats``: ``sunrise dataset stats`` (DuckDB over the files).
- ``read_all``: every column of every night in one Arrow table, for contrast.
- ``floor``: the imports alone (pyarrow, duckdb, numpy, sunalgo), the RSS no reader avoids.

Stated bound for ``train_read``: peak RSS <= floor + 2 x (design matrix + labels) + 64 MB. The
design matrix is the data training needs (epochs x features x 8 bytes); twice it covers the
per-night pieces and their concatenation; 64 MB covers Arrow buffers of one night and the
allocator's slack. It grows with epochs x train features, not with files or columns stored.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("floor", "build", "latest", "train_read", "stats", "read_all")


def _usage() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024.0


def _stage_codes(rng, n: int):  # noqa: ANN001, ANN202
    import numpy as np

    # Roughly an adult night in the lab: W 15 %, N1 8 %, N2 45 %, N3 15 %, REM 15 %, UNS 2 %.
    return rng.choice(np.array(["W", "N1", "N2", "N3", "REM", "UNS"]), n, p=[0.15, 0.08, 0.45, 0.15, 0.15, 0.02])


def make_runs(folder: Path, nights: int, epochs: int, seed: int = 0) -> list[tuple[Path, dict]]:
    """``nights`` sunalgo results folders with training rows, and their lineage fields."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from sunrise_algo.builtin.features import FEATURE_NAMES

    rng = np.random.default_rng(seed)
    runs = []
    for i in range(nights):
        d = folder / f"run-{i:05d}"
        d.mkdir(parents=True)
        stages = _stage_codes(rng, epochs)
        feats = rng.lognormal(0.0, 1.0, (epochs, len(FEATURE_NAMES))).astype(np.float32)
        feats[rng.random(feats.shape) < 0.01] = np.nan  # a few undefined values, as real nights have
        sleep = pa.array(np.where(stages == "W", 0, 1), mask=stages == "UNS", type=pa.int8())
        columns = {"epoch": pa.array(np.arange(epochs, dtype=np.int32)),
                   "onset_s": pa.array(np.arange(epochs) * 30.0),
                   **{name: pa.array(feats[:, j], mask=np.isnan(feats[:, j])) for j, name in enumerate(FEATURE_NAMES)},
                   "psg_stage": pa.array(stages), "psg_sleep": sleep}
        # Empty cells for undefined values, as sunalgo.run writes them.
        pcsv.write_csv(pa.table(columns), d / "training_rows.csv",
                       pcsv.WriteOptions(quoting_style="none"))
        (d / "scores.json").write_text(json.dumps({"n_epochs": epochs, "has_spo2": True, "model_version": "bench-1",
                                                   "prep_version": "sunrise_prep-1.0", "scores": {"severity": "mild"},
                                                   "psg_scores": {"severity": "moderate"}}))
        (d / "agreement.json").write_text(json.dumps({"accuracy_sw": float(rng.uniform(0.7, 0.95)),
                                                      "kappa_sw": float(rng.uniform(0.3, 0.7)),
                                                      "TST_diff": float(rng.normal(0, 20))}))
        subject = "s" + format(i // 2, "012d").translate(str.maketrans("0123456789", "abcdefghij"))
        night = subject + "-n" + format(i, "08d").translate(str.maketrans("0123456789", "abcdefghij"))
        runs.append((d, {"night_id": night, "subject": subject, "input_key": f"k{i:016x}"}))
    return runs


def phase_floor(root: Path) -> dict:
    import duckdb  # noqa: F401
    import numpy  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import sunrise_algo.builtin.model  # noqa: F401

    return {}


def phase_build(root: Path, nights: int, epochs: int) -> dict:
    from sunrise_algo.dataset import write_night
    from sunrise_common import dataset as ds
    from sunrise_common.storage.local import LocalStorage

    t0 = time.perf_counter()
    runs = make_runs(root / "runs", nights, epochs)
    generate_s = time.perf_counter() - t0
    storage = LocalStorage(root / "buckets")
    storage.ensure_bucket("results")
    cpu0, _ = _usage()
    t0 = time.perf_counter()
    per_night = []
    for run_dir, meta in runs:
        t = time.perf_counter()
        lineage = ds.Lineage(night_id=meta["night_id"], algo_version="sunalgo-1.0+bench-1", input_key=meta["input_key"],
                             subject_pseudonym=meta["subject"], run_at=ds.now_utc(), pipeline_version=ds.pipeline_version(),
                             model_version="bench-1", prep_version="sunrise_prep-1.0")
        write_night(storage, "results", run_dir, lineage)
        per_night.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    cpu1, _ = _usage()
    files = list((root / "buckets" / "results" / "dataset").rglob("*.parquet"))
    csv_bytes = sum((d / "training_rows.csv").stat().st_size for d, _ in runs)
    per_night.sort()
    return {"wall_s": wall, "cpu_s": cpu1 - cpu0, "generate_s": generate_s, "files": len(files),
            "parquet_mb": sum(f.stat().st_size for f in files) / 2**20, "csv_mb": csv_bytes / 2**20,
            "per_night_ms_p50": per_night[len(per_night) // 2] * 1000,
            "per_night_ms_p95": per_night[int(0.95 * (len(per_night) - 1))] * 1000}


def _dataset(root: Path):  # noqa: ANN202
    from sunrise_common import dataset as ds

    return ds.Dataset(root / "buckets" / "results" / "dataset")


def _timed(work):  # noqa: ANN001, ANN202
    cpu0, _ = _usage()
    t0 = time.perf_counter()
    out = work()
    return out, time.perf_counter() - t0, _usage()[0] - cpu0


def phase_latest(root: Path) -> dict:
    from sunrise_common import dataset as ds

    data = _dataset(root)
    parts, wall, cpu = _timed(lambda: data.latest(ds.TRAINING_ROWS))
    return {"wall_s": wall, "cpu_s": cpu, "nights": len(parts), "epochs": sum(p.n_rows for p in parts)}


def phase_train_read(root: Path) -> dict:
    import numpy as np

    from sunrise_algo.builtin.model import design_matrix
    from sunrise_cli.train import TRAIN_FEATURES, read_training_rows
    from sunrise_common import dataset as ds

    data = _dataset(root)

    def work() -> tuple:
        xs, ys = [], []
        for part in data.latest(ds.TRAINING_ROWS):
            cols, label = read_training_rows(part.path)
            keep = label >= 0
            xs.append(design_matrix(cols, TRAIN_FEATURES)[keep])
            ys.append(label[keep] == 0)
        return np.concatenate(xs), np.concatenate(ys)

    (x, y), wall, cpu = _timed(work)
    return {"wall_s": wall, "cpu_s": cpu, "rows": int(x.shape[0]), "features": int(x.shape[1]),
            "matrix_mb": (x.nbytes + y.nbytes) / 2**20}


def phase_stats(root: Path) -> dict:
    from sunrise_cli.dataset import stats

    s, wall, cpu = _timed(lambda: stats(_dataset(root)))
    return {"wall_s": wall, "cpu_s": cpu, "nights": s["nights"], "epochs": s["epochs"]}


def phase_read_all(root: Path) -> dict:
    from sunrise_common import dataset as ds

    t, wall, cpu = _timed(lambda: _dataset(root).read(ds.TRAINING_ROWS))
    return {"wall_s": wall, "cpu_s": cpu, "rows": t.num_rows, "columns": t.num_columns, "arrow_mb": t.nbytes / 2**20}


def run_phase(phase: str, root: Path, nights: int, epochs: int) -> dict:
    """Run one phase in a fresh process; its JSON line (peak RSS included)."""
    cmd = [sys.executable, "-m", "benchmarks.dataset_bench", "--phase", phase, "--root", str(root),
           "--nights", str(nights), "--epochs", str(epochs)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise RuntimeError(f"phase {phase} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(nights: int, epochs: int, work: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="sunrise-dataset-bench-", dir=work) as tmp:
        root = Path(tmp)
        result = {"nights": nights, "epochs_per_night": epochs, "load_1min": os.getloadavg()[0]}
        for phase in PHASES:
            print(f"dataset bench: {phase} ({nights} nights)", file=sys.stderr, flush=True)
            result[phase] = run_phase(phase, root, nights, epochs)
        result["load_1min_end"] = os.getloadavg()[0]
    tr = result["train_read"]
    result["train_read_bound_mb"] = result["floor"]["peak_rss_mb"] + 2 * tr["matrix_mb"] + 64
    result["train_read_within_bound"] = tr["peak_rss_mb"] <= result["train_read_bound_mb"]
    return result


def markdown(r: dict) -> str:
    b, tr = r["build"], r["train_read"]
    rows = [
        ("build (write_night per night)", b["wall_s"], b["cpu_s"], b["peak_rss_mb"],
         f"{b['files']} files, {b['parquet_mb']:.1f} MB Parquet (the CSVs: {b['csv_mb']:.1f} MB); "
         f"per night p50 {b['per_night_ms_p50']:.1f} ms, p95 {b['per_night_ms_p95']:.1f} ms"),
        ("latest (footers only)", r["latest"]["wall_s"], r["latest"]["cpu_s"], r["latest"]["peak_rss_mb"],
         f"{r['latest']['nights']} nights, {r['latest']['epochs']} epochs"),
        ("train read (design matrix)", tr["wall_s"], tr["cpu_s"], tr["peak_rss_mb"],
         f"{tr['rows']} x {tr['features']} float64 + labels = {tr['matrix_mb']:.0f} MB; bound "
         f"{r['train_read_bound_mb']:.0f} MB: {'met' if r['train_read_within_bound'] else 'MISSED'}"),
        ("stats (DuckDB)", r["stats"]["wall_s"], r["stats"]["cpu_s"], r["stats"]["peak_rss_mb"],
         f"{r['stats']['nights']} nights, {r['stats']['epochs']} epochs"),
        ("read all columns (contrast)", r["read_all"]["wall_s"], r["read_all"]["cpu_s"], r["read_all"]["peak_rss_mb"],
         f"{r['read_all']['rows']} x {r['read_all']['columns']} columns, Arrow {r['read_all']['arrow_mb']:.0f} MB"),
        ("imports only (floor)", 0.0, 0.0, r["floor"]["peak_rss_mb"], "pyarrow, duckdb, numpy, sunalgo"),
    ]
    lines = [f"## Gold layer: {r['nights']:,} synthetic nights x {r['epochs_per_night']} epochs (features only)", "",
             "`python -m benchmarks.dataset_bench` (each phase its own process; times exclude imports, peak RSS "
             f"includes them). Load average {r['load_1min']:.1f} at the start, {r['load_1min_end']:.1f} at the end; "
             f"generating the nights' CSVs (not timed below) took {b['generate_s']:.0f} s.", "",
             "| phase | wall s | CPU s | peak RSS MB | what |", "| --- | ---: | ---: | ---: | --- |"]
    lines += [f"| {name} | {w:.2f} | {c:.2f} | {m:.0f} | {what} |" for name, w, c, m, what in rows]
    lines += ["", "Bound for reading to train: peak RSS <= imports + 2 x (design matrix + labels) + 64 MB "
              "(module docstring); it grows with the epochs and features trained on, not with the number of files "
              "or the columns stored.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nights", type=int, default=2000, help="Synthetic nights (default 2000).")
    parser.add_argument("--epochs", type=int, default=960, help="30-s epochs per night (default 960: 8 h).")
    parser.add_argument("--markdown", type=Path, default=None, help="Write the report section to this file.")
    parser.add_argument("--json", type=Path, default=None, help="Write the raw numbers to this file.")
    parser.add_argument("--phase", choices=PHASES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        fn = {"floor": lambda: phase_floor(args.root), "build": lambda: phase_build(args.root, args.nights, args.epochs),
              "latest": lambda: phase_latest(args.root), "train_read": lambda: phase_train_read(args.root),
              "stats": lambda: phase_stats(args.root), "read_all": lambda: phase_read_all(args.root)}[args.phase]
        out = fn()
        out["peak_rss_mb"] = _usage()[1]
        print(json.dumps(out))
        return 0
    result = measure(args.nights, args.epochs)
    text = markdown(result)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if result["train_read_within_bound"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""What a scenario's row reports about its stack (issue 8): lost inputs and duplicated stage runs
(the census), and the outputs of two runs compared byte for byte modulo input keys."""

from __future__ import annotations


import json
import re
from collections import Counter
from typing import Any

from sunrise_common import identity
from reliability.harness import BACKEND, Harness


# --------------------------------------------------------------------------------------------
# Census: lost inputs and duplicated stage runs
# --------------------------------------------------------------------------------------------


def census(h: Harness, expected_rejections: dict[str, str] | None = None,
           ingest_only: set[str] | None = None) -> dict[str, Any]:
    """Which raw inputs ended done (or rejected as expected) and which did not (lost).
    ``ingest_only``: inputs with no partner (a lone label file) that only have to be ingested."""
    expected_rejections = expected_rejections or {}
    ingest_only = ingest_only or set()
    key = h.settings.key_bytes()
    bucket = h.settings.bucket("raw")
    lost: list[str] = []
    rejected = 0
    for name, generation in h.inputs:
        doc = h.ctx.state.get("uploads", identity.upload_id(key, bucket, name)) or {}
        run = doc.get("runs", {}).get("ingest", {}).get(str(generation))
        if run is None:
            lost.append(f"{name}@{generation}: never ingested")
            continue
        if run["state"] == "failed" and run.get("permanent"):
            want = expected_rejections.get(name)
            if want is not None and str(run.get("error", "")).startswith(want):
                rejected += 1
            else:
                lost.append(f"{name}@{generation}: rejected ({run.get('error')})")
            continue
        if run["state"] != "done":
            lost.append(f"{name}@{generation}: ingest {run['state']}")
            continue
        if name in ingest_only:
            continue
        night = run["outputs"]["night_id"]
        kind = run["outputs"]["kind"]
        ndoc = h.ctx.state.get("nights", night) or {}
        stages = ndoc.get("stages", {})
        runs = ndoc.get("runs", {})
        problem = None
        if stages.get("sunalgo", {}).get("state") != "done" and "sunrise" in ndoc.get("recordings", {}):
            problem = f"sunalgo {stages.get('sunalgo', {}).get('state')}"
        if kind == "sunrise" and not any(r["state"] == "done" for r in runs.get("sunrise_prep", {}).values()):
            problem = "sunrise_prep never done"
        if kind in ("psg", "labels") and stages.get("psg_prep", {}).get("state") != "done":
            problem = f"psg_prep {stages.get('psg_prep', {}).get('state')}"
        if kind == "labels" and problem is None:
            n_labels = len(ndoc.get("recordings", {}).get("labels", {}))
            if stages["psg_prep"].get("outputs", {}).get("labels") != n_labels:
                problem = "the latest psg_prep does not include every label file"
        if problem:
            lost.append(f"{name}@{generation} ({night}): {problem}")
    return {"lost": lost, "rejected": rejected}


def completions(h: Harness) -> dict[str, Any]:
    """Stage runs completed more than once for the same input, and runs that needed retries."""
    done: Counter = Counter()
    for entry in h.service_logs():
        if entry.get("summary") and " done in " in entry.get("message", ""):
            stage = entry["message"].split(" done in ")[0]
            doc = entry.get("night_id") if stage != "ingest" else entry.get("upload_id")
            done[(stage, doc, entry.get("input_key"))] += 1
    from_history: Counter = Counter()
    retried: list[str] = []
    not_once: list[str] = []
    for collection in ("nights", "uploads"):
        for doc_id, doc in h.ctx.state.list(collection):
            for entry in doc.get("history", []):
                if entry.get("state") == "done":
                    from_history[(entry["stage"], doc_id, entry["input_key"])] += 1
            for stage, runs in doc.get("runs", {}).items():
                for key, run in runs.items():
                    if run.get("attempts", 0) > 1:
                        retried.append(f"{collection}/{doc_id} {stage} {key}: {run.get('state')} x{run.get('attempts')}")
                    if run.get("attempts") != 1 or run.get("state") != "done":
                        not_once.append(f"{collection}/{doc_id} {stage} {key}: {run.get('state')} x{run.get('attempts')}")
    twice = {k: max(done[k], from_history[k]) for k in set(done) | set(from_history) if max(done[k], from_history[k]) > 1}
    return {
        "duplicated": sum(n - 1 for n in twice.values()),
        "duplicated_runs": [f"{s} {d} {k} x{n}" for (s, d, k), n in sorted(twice.items(), key=str)],
        "retried": retried,
        "not_once": not_once,
        "completions": sum(max(done[k], from_history[k]) for k in set(done) | set(from_history)),
    }


def make_row(scenario: str, h: Harness | None, *, events: int, files: int, lost: list[str] | int, duplicated: int,
             recover_s: float | None, notes: str, **details: Any) -> dict[str, Any]:
    lost_list = lost if isinstance(lost, list) else []
    return {
        "scenario": scenario,
        "backend": h.backend if h is not None else BACKEND,
        "events": events,
        "files": files,
        "lost": len(lost) if isinstance(lost, list) else lost,
        "duplicated": duplicated,
        "recover_s": None if recover_s is None else round(recover_s, 2),
        "notes": notes,
        "details": {"lost": lost_list[:20], **details},
    }


# --------------------------------------------------------------------------------------------
# Comparing outputs of two runs (byte identity modulo input keys)
# --------------------------------------------------------------------------------------------


def final_outputs(h: Harness) -> dict[str, dict[str, bytes]]:
    """Per night: the anonymised objects and the latest output prefix of every stage, with the
    run-specific tokens (input keys, storage generations) replaced by their role."""
    out: dict[str, dict[str, bytes]] = {}
    for night, doc in h.nights():
        tokens: list[tuple[bytes, bytes]] = []
        for stage, runs in doc.get("runs", {}).items():
            latest = doc.get("stages", {}).get(stage, {}).get("input_key")
            for i, key in enumerate(sorted(runs)):
                role = f"<{stage}:{'latest' if key == latest else i}>"
                tokens.append((key.encode(), role.encode()))
        recs = doc.get("recordings", {})
        for kind in ("sunrise", "psg"):
            if kind in recs:
                tokens.append((str(recs[kind]["generation"]).encode(), f"<gen:{kind}>".encode()))
        for lk, rec in recs.get("labels", {}).items():
            tokens.append((str(rec["generation"]).encode(), f"<gen:{lk}>".encode()))
        tokens.sort(key=lambda t: -len(t[0]))

        def norm(data: bytes) -> bytes:
            for old, new in tokens:
                data = data.replace(old, new)
            return data

        files: dict[str, bytes] = {}
        anon = h.settings.bucket("anonymised")
        for info in h.ctx.storage.list(anon, f"nights/{night}/"):
            # Anonymised objects are named by their raw generation's keyed token (names.anonymised_object),
            # which differs from run to run like a generation does.
            files["anonymised/" + re.sub(r"-g[a-z2-7]{12}(?=\.)", "", info.name)] = norm(h.ctx.storage.read_bytes(anon, info.name))
        for stage, logical in (("sunrise_prep", "prepped"), ("psg_prep", "prepped"), ("sunalgo", "results")):
            st = doc.get("stages", {}).get(stage, {})
            prefix = st.get("outputs", {}).get("prefix")
            if not prefix:
                continue
            bucket = h.settings.bucket(logical)
            for info in h.ctx.storage.list(bucket, prefix):
                files[f"{stage}/" + info.name[len(prefix):]] = norm(h.ctx.storage.read_bytes(bucket, info.name))
        out[night] = files
    return out


def diff_outputs(a: dict[str, dict[str, bytes]], b: dict[str, dict[str, bytes]]) -> list[str]:
    diffs = []
    for night in sorted(set(a) | set(b)):
        fa, fb = a.get(night, {}), b.get(night, {})
        if night not in a or night not in b:
            diffs.append(f"{night}: only in {'clean' if night in a else 'chaos'}")
            continue
        for name in sorted(set(fa) | set(fb)):
            if name not in fa or name not in fb:
                diffs.append(f"{night}/{name}: only in {'clean' if name in fa else 'chaos'}")
            elif fa[name] != fb[name]:
                at = next((i for i, (x, y) in enumerate(zip(fa[name], fb[name])) if x != y), min(len(fa[name]), len(fb[name])))
                diffs.append(f"{night}/{name}: differs at byte {at}: {fa[name][max(0, at - 40):at + 40]!r} vs "
                             f"{fb[name][max(0, at - 40):at + 40]!r}")
    return diffs


def manifest_problems(h: Harness) -> list[str]:
    """Output prefixes whose ``_MANIFEST.json`` is missing or does not list exactly the files present."""
    problems = []
    for logical in ("prepped", "results"):
        bucket = h.settings.bucket(logical)
        prefixes: dict[str, set[str]] = {}
        # Per-night output prefixes only: results/dataset/ is the gold layer (Hive-partitioned
        # Parquet), written beside them without a manifest of its own.
        for info in h.ctx.storage.list(bucket, "nights/"):
            prefix, _, rel = info.name.rpartition("/")
            # prefixes are nights/{night}/{kind or version}/{input_key}/ (files may sit in sub-folders)
            parts = info.name.split("/")
            prefix = "/".join(parts[:4]) + "/"
            prefixes.setdefault(prefix, set()).add(info.name[len(prefix):])
        for prefix, files in sorted(prefixes.items()):
            if "_MANIFEST.json" not in files:
                problems.append(f"{logical}/{prefix}: no manifest ({len(files)} files)")
                continue
            listed = set(json.loads(h.ctx.storage.read_bytes(bucket, prefix + "_MANIFEST.json"))["files"])
            if listed != files - {"_MANIFEST.json"}:
                problems.append(f"{logical}/{prefix}: manifest lists {sorted(listed ^ (files - {'_MANIFEST.json'}))} wrongly")
    return problems

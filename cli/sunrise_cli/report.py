"""HTML accuracy report over many nights, one column per model version, side by side.

For each sunalgo version (``sunalgo-1.0+MODEL``) against the PSG reference of the same nights:

- Bland-Altman of TST (min) and AHI (events/h; sunalgo detects no RERAs, so its index is an AHI
  and is compared with the PSG AHI, issue 24): bias (mean of sunalgo − PSG) and 95 % limits of
  agreement (bias ± 1.96 SD of the differences, SD with ddof=1) — Bland & Altman, Lancet 1986;
- pooled 30-s epoch sleep/wake confusion matrix (rows PSG W/S, columns sunalgo W/S), accuracy and
  Cohen's κ, and the mean of the per-night κ;
- severity-class agreement at the clinical AHI thresholds 5, 15 and 30 events/h (AASM severity:
  < 5 normal, 5–15 mild, 15–30 moderate, ≥ 30 severe; docs/reference/science.md): for each threshold a
  2×2 table of nights (PSG ≥ t vs sunalgo ≥ t), sensitivity, specificity and accuracy, the way
  the Sunrise validation studies report (Pépin et al., JAMA Netw Open 2020: accuracy 0.92 at
  ≥ 5/h and 0.88 at ≥ 15/h; Kelly et al., Front Neurosci 2022: ORDI 5/15/30);
- per-night values of every version and their difference to the first version.

Input: sunalgo result folders holding ``scores.json`` and ``agreement.json`` (and optionally the
``meta.json`` that :func:`sunrise_cli.train.collect_result_folders` writes: night id, stage,
finish time), or per-night dicts with the keys ``night``, ``algo_version``, ``TST_pred``,
``TST_psg``, ``AHI_pred``, ``AHI_psg``, ``accuracy_sw``, ``kappa_sw``, ``confusion_sw`` (2×2,
rows truth W/S, columns prediction).
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from sunrise_common.agreement import kappa_from_confusion

#: Clinical AHI thresholds (events/h) of the severity classes.
THRESHOLDS = (5.0, 15.0, 30.0)

#: Published accuracy of the Sunrise RDI at each PSG-RDI threshold (Pépin et al. 2020, Key Points).
PUBLISHED_ACCURACY = {5.0: 0.92, 15.0: 0.88}


def _night_from_folder(folder: Path) -> dict:
    agr = json.loads((folder / "agreement.json").read_text())
    scores = json.loads((folder / "scores.json").read_text())
    meta = json.loads((folder / "meta.json").read_text()) if (folder / "meta.json").is_file() else {}
    return {"night": meta.get("night_id", folder.name),
            "algo_version": agr.get("algo_version") or scores.get("algo_version") or "unknown",
            "finished_at": meta.get("finished_at"),
            "TST_pred": agr.get("TST_pred"), "TST_psg": agr.get("TST_psg"),
            "AHI_pred": agr.get("AHI_pred"), "AHI_psg": agr.get("AHI_psg"),
            "accuracy_sw": agr.get("accuracy_sw"), "kappa_sw": agr.get("kappa_sw"),
            "confusion_sw": (agr.get("confusion_sw") or {}).get("matrix"),
            "events": agr.get("events")}


def pooled_events(nights: list[dict]) -> dict[str, dict[str, Any]]:
    """Event-level figures pooled over nights (each night's agreement.json ``events``):
    per PSG type the sensitivity (any sunalgo event overlapping) and per sunalgo type the PPV,
    as counts-weighted means, with the event counts (issue 24)."""
    out: dict[str, dict[str, Any]] = {}
    for side, metric in (("psg", "sensitivity"), ("pred", "ppv")):
        for n in nights:
            for etype, v in ((n.get("events") or {}).get(side) or {}).items():
                acc = out.setdefault(etype, {"metric": metric, "n": 0, "hits": 0.0})
                if v.get(metric) is not None:
                    acc["n"] += v["n"]
                    acc["hits"] += v[metric] * v["n"]
    return {k: {"metric": v["metric"], "n": v["n"],
                "value": v["hits"] / v["n"] if v["n"] else None} for k, v in out.items()}


def _from_dict(r: dict) -> dict:
    """A per-night dict; an older one naming the index ``RDI_pred``/``RDI_psg`` (before issue
    24 the predicted AHI was written under that name) is read as the AHI it was."""
    n = dict(r)
    for side in ("pred", "psg"):
        if f"AHI_{side}" not in n and f"RDI_{side}" in n:
            n[f"AHI_{side}"] = n[f"RDI_{side}"]
    return n


def model_of(algo_version: str) -> str:
    """The model part of an algo version: ``sunalgo-1.0+mine-1`` -> ``mine-1``."""
    return algo_version.rsplit("+", 1)[-1]


def label_of(algo_version: str) -> str:
    """How a version is named in the report: the model for the built-in plug-in
    (``sunalgo-1.0+mine-1`` -> ``mine-1``), ``plugin:model`` for any other
    (``activity-rule-1.0+default`` -> ``activity-rule:default``)."""
    prefix, _, model = algo_version.rpartition("+")
    plugin = prefix.rsplit("-", 1)[0]
    return model if plugin in ("sunalgo", "") else f"{plugin}:{model}"


def bland_altman(pred: npt.ArrayLike, ref: npt.ArrayLike) -> dict[str, float] | None:
    """Bias and 95 % limits of agreement of ``pred − ref`` (same units as the inputs).

    None without a pair; with one pair the SD (ddof=1) is undefined and the limits are NaN.
    """
    p, r = np.asarray(pred, float), np.asarray(ref, float)
    keep = np.isfinite(p) & np.isfinite(r)
    diff = p[keep] - r[keep]
    if diff.size == 0:
        return None
    bias = float(np.mean(diff))
    sd = float(np.std(diff, ddof=1)) if diff.size > 1 else float("nan")
    return {"n": int(diff.size), "bias": bias, "sd": sd, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd}


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def severity_agreement(pred: npt.ArrayLike, ref: npt.ArrayLike,
                       thresholds: Iterable[float] = THRESHOLDS) -> list[dict[str, Any]]:
    """Per threshold t (events/h): nights with PSG AHI ≥ t (positives) against sunalgo AHI ≥ t.

    Returns, per threshold, the counts ``tp``, ``fn``, ``fp``, ``tn`` (nights), ``sensitivity``
    = tp / (tp + fn), ``specificity`` = tn / (tn + fp), ``accuracy`` (None where a denominator is
    zero: e.g. no night at or above 30/h).
    """
    p, r = np.asarray(pred, float), np.asarray(ref, float)
    keep = np.isfinite(p) & np.isfinite(r)
    p, r = p[keep], r[keep]
    out = []
    for t in thresholds:
        truth, said = r >= t, p >= t
        tp, fn = int(np.sum(truth & said)), int(np.sum(truth & ~said))
        fp, tn = int(np.sum(~truth & said)), int(np.sum(~truth & ~said))
        out.append({"threshold": float(t), "n": int(truth.size), "tp": tp, "fn": fn, "fp": fp, "tn": tn,
                    "sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
                    "accuracy": _ratio(tp + tn, truth.size)})
    return out


def severity_class(rdi: float | None) -> str:
    """AASM severity class of an index in events/h."""
    if rdi is None or not np.isfinite(rdi):
        return "-"
    return "normal" if rdi < 5 else "mild" if rdi < 15 else "moderate" if rdi < 30 else "severe"


def summarize_version(nights: list[dict]) -> dict[str, Any]:
    """Every figure of one version over its nights (see the module docstring)."""
    cm = np.zeros((2, 2), int)
    for n in nights:
        if n.get("confusion_sw"):
            cm += np.asarray(n["confusion_sw"], int)
    total = int(cm.sum())
    kappas = [n["kappa_sw"] for n in nights if n.get("kappa_sw") is not None]
    ahi = [n for n in nights if n.get("AHI_pred") is not None and n.get("AHI_psg") is not None]
    times = [n["finished_at"] for n in nights if n.get("finished_at")]
    return {
        "n_nights": len(nights),
        "nights": sorted(n["night"] for n in nights),
        "first_at": min(times) if times else None,
        "last_at": max(times) if times else None,
        "tst": bland_altman([n["TST_pred"] for n in nights], [n["TST_psg"] for n in nights]),
        "ahi": bland_altman([n["AHI_pred"] for n in ahi], [n["AHI_psg"] for n in ahi]),
        "confusion_sw": cm.tolist(),
        "n_epochs": total,
        "accuracy_sw": float(np.trace(cm) / total) if total else None,
        "kappa_sw": kappa_from_confusion(cm) if total else None,
        "mean_night_kappa_sw": float(np.mean(kappas)) if kappas else None,
        "sensitivity_sleep": _ratio(int(cm[1, 1]), int(cm[1].sum())),
        "specificity_wake": _ratio(int(cm[0, 0]), int(cm[0].sum())),
        "severity": severity_agreement([n["AHI_pred"] for n in ahi], [n["AHI_psg"] for n in ahi]),
        "events": pooled_events(nights),
    }


def _model_info(version: str, models_dir: Path | None) -> dict[str, Any]:
    """Creation date and training nights of a trained model artifact, if it is in the store."""
    path = Path(models_dir) / f"{model_of(version)}.json" if models_dir else None
    if path is None or not path.is_file():
        return {"source": "packaged with sunalgo"}
    spec = json.loads(path.read_text())
    return {"source": f"model store ({path.name})", "created": spec.get("created"),
            "trained_on": len(spec.get("trained_on") or []), "held_out": len(spec.get("held_out") or [])}


def _order(by_version: dict[str, list[dict]]) -> list[str]:
    """Versions oldest results first, so the newest model is the rightmost column."""
    def newest(v: str) -> tuple[float, str]:
        times = [n["finished_at"] for n in by_version[v] if n.get("finished_at")]
        return (max(times) if times else 0.0, v)

    return sorted(by_version, key=newest)


def _figures(out_dir: Path, versions: list[str], by_version: dict[str, list[dict]],
             summaries: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(versions)
    # One row per version, the same axes on every row: differences read as differences.
    fig, axes = plt.subplots(k, 2, figsize=(11, 3.6 * k), squeeze=False, sharex="col", sharey="col")
    for row, v in enumerate(versions):
        nights = by_version[v]
        for col, (key, unit) in enumerate((("TST", "min"), ("AHI", "events/h"))):
            ax = axes[row][col]
            pairs = [(n[f"{key}_pred"], n[f"{key}_psg"]) for n in nights
                     if n.get(f"{key}_pred") is not None and n.get(f"{key}_psg") is not None]
            ba = summaries[v][key.lower()]
            if pairs:
                p, r = np.asarray(pairs, float).T
                ax.scatter((p + r) / 2, p - r, s=22, color="#1f77b4")
            if ba:
                for y, style in ((ba["bias"], "-"), (ba["loa_low"], "--"), (ba["loa_high"], "--")):
                    if np.isfinite(y):
                        ax.axhline(y, linestyle=style, color="grey")
                loa = f", LoA {ba['loa_low']:+.1f} to {ba['loa_high']:+.1f}" if np.isfinite(ba["sd"]) else ""
                ax.set_title(f"{label_of(v)}: {key} bias {ba['bias']:+.1f}{loa} {unit}", fontsize=10)
            ax.axhline(0, color="black", linewidth=0.5)
            ax.set_xlabel(f"mean of sunalgo and PSG {key} ({unit})")
            ax.set_ylabel(f"sunalgo − PSG ({unit})")
    fig.tight_layout()
    fig.savefig(out_dir / "bland_altman.png", dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, k, figsize=(4.2 * k, 3.8), squeeze=False)
    for ax, v in zip(axes[0], versions):
        cm = np.asarray(summaries[v]["confusion_sw"])
        ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(1, cm.max()))
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{cm[i, j]}", ha="center", va="center", fontsize=13,
                        color=text_color(cm[i, j], vmax=max(1, cm.max())), fontweight="bold")
        ax.set_xticks([0, 1], ["W", "S"])
        ax.set_yticks([0, 1], ["W", "S"])
        ax.set_xlabel("sunalgo (30-s epochs)")
        ax.set_ylabel("PSG")
        ax.set_title(f"{label_of(v)}: sleep/wake epochs", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_dir / "confusion.png", dpi=90)
    plt.close(fig)


DARK_TEXT = "#0b1f3a"


def _luminance(rgb: Sequence[float]) -> float:
    """Relative luminance (WCAG 2.x) of an sRGB colour."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def text_color(value: float, *, vmax: float, cmap: str = "Blues") -> str:
    """Colour of a count drawn on a ``cmap`` cell (0..``vmax``): white or near-black, whichever
    has the higher WCAG contrast ratio, (L1 + 0.05) / (L2 + 0.05), with the cell's colour."""
    from matplotlib import colormaps
    from matplotlib.colors import to_rgb

    cell = _luminance(colormaps[cmap](min(max(value / vmax, 0.0), 1.0) if vmax else 0.0)[:3])
    white = 1.05 / (cell + 0.05)
    dark = (cell + 0.05) / (_luminance(to_rgb(DARK_TEXT)) + 0.05)
    return "white" if white > dark else DARK_TEXT


def _fmt(v: Any, digits: int = 3, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"
    return html.escape(str(v))


def _iso_when(text: str) -> str:
    """An ISO 8601 time (as model artifacts store it) the way the report prints times."""
    try:
        return _when(datetime.fromisoformat(text).timestamp())
    except (TypeError, ValueError):
        return str(text)


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if ts else "–"


def build_report(results: list, out_dir: Path, *, models_dir: Path | None = None,
                 generated_at: datetime | None = None) -> Path:
    """Write ``out_dir/report.html`` (figures and ``report.json`` beside it); return its path.

    Nights without PSG agreement are left out. Several versions are shown side by side, oldest
    results first; per-night differences are each version minus the first.
    """
    nights, versions, by_version = _nights_by_version(results)
    summaries = {v: summarize_version(by_version[v]) for v in versions}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _figures(out_dir, versions, by_version, summaries)
    generated = (generated_at or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    info = {v: _model_info(v, models_dir) for v in versions}
    (out_dir / "report.json").write_text(json.dumps(
        {"generated": generated, "versions": versions, "models": info, "summaries": summaries}, indent=1,
        default=lambda x: None))
    night_head, night_rows = _night_table(nights, versions, by_version)
    page = _page(generated, versions, summaries, _summary_rows(versions, summaries, info),
                 _severity_rows(versions, summaries), night_head, night_rows, n_nights=len({n["night"] for n in nights}))
    path = out_dir / "report.html"
    path.write_text(page)
    return path


def _nights_by_version(results: list) -> tuple[list[dict], list[str], dict[str, list[dict]]]:
    """The nights with PSG agreement, the versions in report order and each version's nights."""
    nights = [_night_from_folder(Path(r)) if isinstance(r, (str, Path)) else _from_dict(r) for r in results]
    nights = [n for n in nights if n.get("TST_psg") is not None]
    if not nights:
        raise ValueError("no night with PSG agreement to report")
    by_version: dict[str, list[dict]] = {}
    for n in nights:
        by_version.setdefault(n.get("algo_version") or "unknown", []).append(n)
    return nights, _order(by_version), by_version


def _row(label: str, unit: str, values: list[str], cls: str = "") -> str:
    """One table row: a label, its unit, one cell per version."""
    return (f"<tr class='{cls}'><th class='rowhead'>{label}</th><td class='unit'>{unit}</td>"
            + "".join(f"<td>{x}</td>" for x in values) + "</tr>")


def _loa(ba: dict | None) -> str:
    """Bland-Altman limits of agreement as a cell (– without a finite SD)."""
    return "–" if not ba or not np.isfinite(ba["sd"]) else f"{ba['loa_low']:+.1f} to {ba['loa_high']:+.1f}"


def _summary_rows(versions: list[str], summaries: dict[str, dict], info: dict[str, dict]) -> list[str]:
    """The side-by-side table: model, TST and AHI agreement, sleep/wake agreement, event overlap."""
    def each(fn: Callable[[dict[str, Any]], str]) -> list[str]:
        return [fn(summaries[v]) for v in versions]

    rows = [
        _row("model", "", [html.escape(info[v]["source"]) + (f", created {html.escape(_iso_when(info[v]['created']))}"
                                                              if info[v].get("created") else "")
                          + (f", trained on {info[v]['trained_on']} nights" if info[v].get("trained_on") else "")
                          for v in versions]),
        _row("nights", "n", each(lambda s: str(s["n_nights"]))),
        _row("scored", "UTC", each(lambda s: _when(s["first_at"]) + (" – " + _when(s["last_at"])
                                                                    if s["last_at"] != s["first_at"] else ""))),
        _row("TST bias", "min", each(lambda s: _fmt(s["tst"]["bias"] if s["tst"] else None, 1, True)), "key"),
        _row("TST limits of agreement", "min", each(lambda s: _loa(s["tst"]))),
        _row("AHI bias", "events/h", each(lambda s: _fmt(s["ahi"]["bias"] if s["ahi"] else None, 2, True)), "key"),
        _row("AHI limits of agreement", "events/h", each(lambda s: _loa(s["ahi"]))),
        _row("sleep/wake accuracy", "30-s epochs", each(lambda s: _fmt(s["accuracy_sw"])), "key"),
        _row("Cohen's κ (pooled)", "", each(lambda s: _fmt(s["kappa_sw"])), "key"),
        _row("κ, mean of nights", "", each(lambda s: _fmt(s["mean_night_kappa_sw"]))),
        _row("sensitivity (sleep)", "", each(lambda s: _fmt(s["sensitivity_sleep"]))),
        _row("specificity (wake)", "", each(lambda s: _fmt(s["specificity_wake"]))),
        _row("epochs compared", "n", each(lambda s: str(s["n_epochs"]))),
    ]
    event_types = sorted({k for s in summaries.values() for k in s.get("events", {})})
    for etype in event_types:
        def cell(s: dict, etype: str = etype) -> str:
            e = s.get("events", {}).get(etype)
            return "–" if not e or e["value"] is None else f"{_fmt(e['value'])} <small>(n {e['n']})</small>"
        metric = next(s["events"][etype]["metric"] for s in summaries.values() if etype in s.get("events", {}))
        rows.append(_row(f"event {metric}: {etype.replace('_', ' ')}", "overlap", each(cell)))
    return rows


def _severity_rows(versions: list[str], summaries: dict[str, dict]) -> list[str]:
    """Counts, sensitivity, specificity and accuracy at each AHI severity threshold."""
    def each(fn: Callable[[dict], str]) -> list[str]:
        return [fn(summaries[v]) for v in versions]

    sev_rows = []
    for i, t in enumerate(THRESHOLDS):
        label = f"AHI ≥ {t:g}"
        sev_rows.append(_row(f"{label}: PSG+ sunalgo+ / PSG+ sunalgo− / PSG− sunalgo+ / PSG− sunalgo−", "nights",
                            each(lambda s: "{tp} / {fn} / {fp} / {tn}".format(**s["severity"][i])), "counts"))
        for metric in ("sensitivity", "specificity", "accuracy"):
            published = PUBLISHED_ACCURACY.get(t) if metric == "accuracy" else None
            note = f" <small>(published {published:.2f})</small>" if published else ""
            sev_rows.append(_row(f"{label}: {metric}{note}", "", each(lambda s: _fmt(s["severity"][i][metric]))))

    return sev_rows


def _night_table(nights: list[dict], versions: list[str], by_version: dict[str, list[dict]]) -> tuple[str, list[str]]:
    """The per-night table's header and rows: PSG, each version, and each version minus the first."""
    first = versions[0]
    base = {n["night"]: n for n in by_version[first]}
    all_nights = sorted({n["night"] for n in nights})
    per = {v: {n["night"]: n for n in by_version[v]} for v in versions}
    night_head = ("<tr><th rowspan='2'>night</th><th colspan='2'>PSG</th>"
                  + "".join(f"<th colspan='{4 if v == first else 7}' class='group'>{html.escape(label_of(v))}</th>"
                            for v in versions)
                  + "</tr><tr><th>TST<br>min</th><th>AHI<br>events/h</th>"
                  + "".join("<th>TST<br>min</th><th>AHI<br>events/h</th><th>accuracy</th><th>κ</th>"
                            + ("" if v == first else "<th>Δ TST<br>min</th><th>Δ AHI<br>events/h</th><th>Δ accuracy</th>")
                            for v in versions) + "</tr>")
    night_rows = []
    for night in all_nights:
        ref = next(per[v][night] for v in versions if night in per[v])
        cells = [html.escape(night), _fmt(ref.get("TST_psg"), 1), _fmt(ref.get("AHI_psg"), 1)
                 + f" <small>{severity_class(ref.get('AHI_psg'))}</small>"]
        for v in versions:
            n = per[v].get(night)
            if n is None:
                cells += ["–"] * (4 if v == first else 7)
                continue
            cells += [_fmt(n.get("TST_pred"), 1), _fmt(n.get("AHI_pred"), 1), _fmt(n.get("accuracy_sw")),
                      _fmt(n.get("kappa_sw"))]
            if v != first:
                b = base.get(night)
                cells += ["–"] * 3 if b is None else [
                    _fmt(_diff(n, b, "TST_pred"), 1, True), _fmt(_diff(n, b, "AHI_pred"), 1, True),
                    _fmt(_diff(n, b, "accuracy_sw"), 3, True)]
        night_rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")

    return night_head, night_rows


def _page(generated: str, versions: list[str], summaries: dict[str, dict], rows: list[str], sev_rows: list[str],
          night_head: str, night_rows: list[str], *, n_nights: int) -> str:
    """The HTML page around the tables and figures."""
    head = "".join(f"<th>{html.escape(label_of(v))}<br><small>{html.escape(v)}</small></th>" for v in versions)
    first = versions[0]
    names = ", ".join(html.escape(label_of(v)) for v in versions)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>sunalgo vs PSG: {names}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#111;max-width:1200px}}
table{{border-collapse:collapse;margin:8px 0 20px}} td,th{{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}}
th{{background:#f3f5f8}} th.rowhead{{text-align:left;font-weight:normal;background:none}} td.unit{{color:#555;text-align:left}}
tr.key td{{font-weight:bold}} tr.key td.unit{{font-weight:normal}} tr.counts td{{font-family:ui-monospace,monospace}} small{{color:#555;font-weight:normal}}
img{{max-width:100%}} table.nights td,table.nights th{{white-space:nowrap}} th.group{{text-align:center;border-left:2px solid #fff}}
/* report.html#figures shows one section under the title (links, screenshots) */
body:has(section:target) section:not(:target){{display:none}}
</style></head><body>
<h1>sunalgo vs PSG: {names}</h1>
<p>Generated {generated}. {n_nights} night(s) with PSG labels; model version(s):
{", ".join(f"<b>{html.escape(v)}</b> ({summaries[v]['n_nights']} nights)" for v in versions)}.
Differences are sunalgo − PSG; limits of agreement are bias ± 1.96 SD.</p>
<section id="summary">
<h2>Side by side</h2>
<table><tr><th></th><th>unit</th>{head}</tr>
{"".join(rows)}</table>
<h2>Severity classes at AHI 5, 15 and 30 events/h</h2>
<p>Nights, PSG AHI as the reference (sunalgo detects no RERAs, so its index is an AHI; the published figures are at the RDI). Counts are PSG+ sunalgo+ (true positives) / PSG+ sunalgo− / PSG− sunalgo+ /
PSG− sunalgo− (true negatives). Published Sunrise accuracy: Pépin et al., JAMA Netw Open 2020.</p>
<table><tr><th></th><th>unit</th>{head}</tr>
{"".join(sev_rows)}</table>
</section>
<section id="figures">
<h2>Bland-Altman</h2>
<img src="bland_altman.png" alt="Bland-Altman plots of TST and AHI, one row per model version">
<h2>Sleep/wake epochs</h2>
<img src="confusion.png" alt="Sleep/wake confusion matrices, one per model version">
</section>
<section id="per-night">
<h2>Per night</h2>
<p>Δ: the version minus {html.escape(label_of(first))}.</p>
<table class="nights">{night_head}
{"".join(night_rows)}</table>
</section>
</body></html>"""
    return page


def _diff(a: dict, b: dict, key: str) -> float | None:
    if a.get(key) is None or b.get(key) is None:
        return None
    return float(a[key]) - float(b[key])


#: Screenshots of a report: file name -> (section anchor, window width and height in CSS px).
SCREENSHOTS = {
    "report-top.png": ("summary", (1200, 1250)),
    "report-figures.png": ("figures", (1200, 1400)),
    "report-per-night.png": ("per-night", (1400, 800)),
}


def screenshots(report_html: Path, out_dir: Path, *, browser: str | None = None, timeout_s: float = 120.0) -> list[Path]:
    """PNG screenshots of a report with headless Chromium (one per :data:`SCREENSHOTS` entry).

    Chromium runs with a throw-away profile, no network beyond the file, no GPU and no sandbox
    (the sandbox needs user namespaces that containers rarely have).

    Raises
    ------
    FileNotFoundError
        No Chromium on the PATH (Debian: ``apt-get install -y chromium``).
    RuntimeError
        Chromium ran but wrote no screenshot (its output is in the message).
    """
    import shutil
    import subprocess
    import tempfile

    exe = browser or next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if exe is None:
        raise FileNotFoundError("no chromium on the PATH: install it (Debian: apt-get install -y chromium)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    url = Path(report_html).resolve().as_uri()
    written = []
    for name, (anchor, (width, height)) in SCREENSHOTS.items():
        png = out_dir / name
        png.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory() as profile:
            proc = subprocess.run(
                [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
                 f"--screenshot={png}", f"--window-size={width},{height}", url + (f"#{anchor}" if anchor else "")],
                capture_output=True, text=True, timeout=timeout_s)
        if not png.is_file():
            raise RuntimeError(f"{exe} wrote no {png} (exit {proc.returncode}): {proc.stderr[-500:]}")
        _shrink(png)
        written.append(png)
    return written


def _shrink(png: Path, colors: int = 64) -> None:
    """Re-save a screenshot with a small palette: text, tables and plots need few colours, and
    the PNGs live in the repository (Pillow comes with matplotlib)."""
    from PIL import Image

    with Image.open(png) as img:
        small = img.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small.save(png, optimize=True)

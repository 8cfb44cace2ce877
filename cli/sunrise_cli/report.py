"""HTML report over many nights: Bland-Altman of TST and RDI, sleep/wake confusion, table.

Input: sunalgo result folders (holding ``scores.json`` and ``agreement.json``) or per-night
dicts with the keys ``night``, ``TST_pred``, ``TST_psg``, ``RDI_pred``, ``RDI_psg``,
``accuracy_sw``, ``kappa_sw``, ``confusion_sw`` (2x2, rows truth W/S, columns prediction).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np


def _night_from_folder(folder: Path) -> dict:
    agr = json.loads((folder / "agreement.json").read_text())
    scores = json.loads((folder / "scores.json").read_text())
    return {"night": folder.name, "algo_version": scores.get("algo_version"),
            "TST_pred": agr.get("TST_pred"), "TST_psg": agr.get("TST_psg"),
            "RDI_pred": agr.get("RDI_pred"), "RDI_psg": agr.get("RDI_psg"),
            "accuracy_sw": agr.get("accuracy_sw"), "kappa_sw": agr.get("kappa_sw"),
            "confusion_sw": (agr.get("confusion_sw") or {}).get("matrix")}


def _bland_altman(ax, pred, ref, title: str, unit: str) -> dict:
    pred, ref = np.asarray(pred, float), np.asarray(ref, float)
    mean, diff = (pred + ref) / 2, pred - ref
    bias, sd = float(np.mean(diff)), float(np.std(diff, ddof=1)) if diff.size > 1 else 0.0
    ax.scatter(mean, diff, s=18)
    for y, style in ((bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--")):
        ax.axhline(y, linestyle=style, color="grey")
    ax.set_title(f"{title}: bias {bias:+.1f}, LoA ±{1.96 * sd:.1f} {unit}")
    ax.set_xlabel(f"mean of sunalgo and PSG ({unit})")
    ax.set_ylabel(f"sunalgo − PSG ({unit})")
    return {"bias": bias, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd}


def build_report(results: list, out_dir: Path) -> Path:
    """Write ``out_dir/report.html`` with PNG figures next to it; return the HTML path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nights = [_night_from_folder(Path(r)) if isinstance(r, (str, Path)) else dict(r)
              for r in results]
    nights = [n for n in nights if n.get("TST_psg") is not None]
    if not nights:
        raise ValueError("no night with PSG agreement to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ba_tst = _bland_altman(axes[0], [n["TST_pred"] for n in nights],
                           [n["TST_psg"] for n in nights], "TST", "min")
    rdi = [n for n in nights if n.get("RDI_pred") is not None and n.get("RDI_psg") is not None]
    ba_rdi = _bland_altman(axes[1], [n["RDI_pred"] for n in rdi], [n["RDI_psg"] for n in rdi],
                           "RDI", "events/h") if rdi else None
    fig.tight_layout()
    fig.savefig(out_dir / "bland_altman.png", dpi=100)
    plt.close(fig)
    cm = np.zeros((2, 2), int)
    for n in nights:
        if n.get("confusion_sw"):
            cm += np.asarray(n["confusion_sw"], int)
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(cm, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center")
    ax.set_xticks([0, 1], ["W", "S"])
    ax.set_yticks([0, 1], ["W", "S"])
    ax.set_xlabel("sunalgo")
    ax.set_ylabel("PSG")
    ax.set_title("Sleep/wake epochs")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion.png", dpi=100)
    plt.close(fig)

    def cell(v):
        return "" if v is None else (f"{v:.3f}" if isinstance(v, float) else html.escape(str(v)))

    cols = ["night", "TST_pred", "TST_psg", "RDI_pred", "RDI_psg", "accuracy_sw", "kappa_sw"]
    rows = "\n".join("<tr>" + "".join(f"<td>{cell(n.get(c))}</td>" for c in cols) + "</tr>"
                     for n in nights)
    total = cm.sum()
    acc = (cm[0, 0] + cm[1, 1]) / total if total else float("nan")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>sunalgo report</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>sunalgo vs PSG: {len(nights)} nights</h1>
<p>Pooled sleep/wake epoch accuracy {acc:.3f}. TST bias {ba_tst['bias']:+.1f} min
(LoA {ba_tst['loa_low']:.1f} to {ba_tst['loa_high']:.1f}).
{'' if ba_rdi is None else f"RDI bias {ba_rdi['bias']:+.2f} events/h (LoA {ba_rdi['loa_low']:.1f} to {ba_rdi['loa_high']:.1f})."}</p>
<img src="bland_altman.png" alt="Bland-Altman plots of TST and RDI">
<img src="confusion.png" alt="Sleep/wake confusion matrix">
<table><tr>{''.join(f'<th>{c}</th>' for c in cols)}</tr>
{rows}</table></body></html>"""
    path = out_dir / "report.html"
    path.write_text(page)
    return path

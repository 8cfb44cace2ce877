"""Cohen's kappa, once: sunalgo's per-night agreement, the CLI's pooled report and training use it.

Cohen (1960), "A coefficient of agreement for nominal scales": kappa = (p_o - p_e) / (1 - p_e),
p_o the observed agreement (the confusion matrix's trace over its total), p_e the agreement
expected by chance (the products of the row and column marginals over the total squared).
Undefined (None, not NaN: it goes into JSON documents and tables) when there is nothing to compare
or chance agreement is 1 (both raters used one and the same class throughout).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def kappa_from_confusion(cm: Sequence[Sequence[float]] | np.ndarray) -> float | None:
    """Cohen's kappa of a square confusion matrix (rows one rater, columns the other)."""
    cm = np.asarray(cm, dtype=float)
    n = cm.sum()
    if n == 0:
        return None
    po = float(np.trace(cm)) / n
    pe = float(cm.sum(axis=0) @ cm.sum(axis=1)) / n**2
    return None if pe >= 1.0 else (po - pe) / (1.0 - pe)


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two label sequences of the same length."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    labels = sorted(set(a.tolist()) | set(b.tolist()))
    cm = [[int(np.sum((a == x) & (b == y))) for y in labels] for x in labels]
    return kappa_from_confusion(cm)

"""Held-out metrics of a Yes/No filter against the human consensus, and threshold choice."""
from __future__ import annotations

from typing import Any

import numpy as np


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, precision/recall/F1 on "yes", Cohen's kappa against the labels at `threshold`."""
    from relcurate.curation.labeling.agreement import cohen_kappa

    pred = p >= threshold
    y = y.astype(bool)
    tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
    prec = tp / (tp + fp) if tp + fp else None
    rec = tp / (tp + fn) if tp + fn else None
    f1 = 2 * prec * rec / (prec + rec) if prec and rec else 0.0
    kappa = cohen_kappa(["yes" if v else "no" for v in pred], ["yes" if v else "no" for v in y])
    return {"accuracy": float((pred == y).mean()), "precision_yes": prec, "recall_yes": rec, "f1_yes": f1,
            "kappa": kappa}


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE of P(yes): mean |accuracy - confidence| over equal-width bins, weighted by bin size."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(float(y[m].mean()) - float(p[m].mean()))
    return float(ece)


def choose_threshold(y: np.ndarray, p: np.ndarray, *, target: str = "precision", value: float = 0.9) -> dict[str, Any]:
    """The lowest threshold reaching `value` precision (keeps the most) or the highest reaching
    `value` recall; when none does, the F1-best threshold (and `reached: False`)."""
    y = y.astype(bool)
    cands = np.unique(np.concatenate([p, [0.5]]))
    rows = []
    for t in cands:
        pred = p >= t
        tp = int((pred & y).sum())
        prec = tp / int(pred.sum()) if pred.sum() else 0.0
        rec = tp / int(y.sum()) if y.sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        rows.append((float(t), prec, rec, f1))
    if target == "precision":
        ok = [r for r in rows if r[1] >= value]
        best = min(ok, key=lambda r: r[0]) if ok else None
    elif target == "recall":
        ok = [r for r in rows if r[2] >= value]
        best = max(ok, key=lambda r: r[0]) if ok else None
    else:
        raise ValueError("target must be 'precision' or 'recall'")
    reached = best is not None
    if best is None:
        best = max(rows, key=lambda r: (r[3], -abs(r[0] - 0.5)))
    return {"threshold": best[0], "target": target, "target_value": value, "reached": reached,
            "precision_at_threshold": best[1], "recall_at_threshold": best[2]}

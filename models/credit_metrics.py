"""The measures a credit-risk team reads a PD model by: Gini, KS, gains and lift by decile.

Plain numpy over (outcome, predicted PD) pairs; ROC AUC, Brier and log loss come from
scikit-learn where the model is trained.
"""

from __future__ import annotations

import numpy as np


def _checked(defaulted: np.ndarray, pd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(defaulted, dtype=float)
    p = np.asarray(pd, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError("outcomes and PDs must be one-dimensional and of the same length")
    if not (0 < y.sum() < len(y)):
        raise ValueError("these measures need both defaulters and non-defaulters")
    return y, p


def ks_statistic(defaulted: np.ndarray, pd: np.ndarray) -> float:
    """Kolmogorov-Smirnov: the largest gap between the PD distributions of bads and goods (0 to 1)."""
    y, p = _checked(defaulted, pd)
    order = np.argsort(-p, kind="stable")
    y, p = y[order], p[order]
    # Evaluate only where the PD changes, so ties never split.
    last_of_tie = np.r_[p[1:] != p[:-1], True]
    bads = np.cumsum(y)[last_of_tie] / y.sum()
    goods = np.cumsum(1 - y)[last_of_tie] / (1 - y).sum()
    return float(np.max(np.abs(bads - goods)))


def gini(auc: float) -> float:
    """Gini coefficient (accuracy ratio) from the ROC AUC: 2 x AUC - 1."""
    return 2 * auc - 1


def gains_table(defaulted: np.ndarray, pd: np.ndarray, bands: int = 10) -> list[dict]:
    """Customers sorted riskiest first in equal bands: defaults captured, cumulative share and lift."""
    y, p = _checked(defaulted, pd)
    order = np.argsort(-p, kind="stable")
    y, p = y[order], p[order]
    edges = np.linspace(0, len(y), bands + 1).round().astype(int)
    total_bads, base_rate = y.sum(), y.mean()
    rows, captured = [], 0.0
    for band in range(bands):
        lo, hi = edges[band], edges[band + 1]
        bads = y[lo:hi].sum()
        captured += bads
        rate = bads / (hi - lo) if hi > lo else 0.0
        rows.append(
            {
                "band": band + 1,
                "customers": int(hi - lo),
                "defaults": int(bads),
                "default_rate": float(rate),
                "min_pd": float(p[lo:hi].min()) if hi > lo else None,
                "max_pd": float(p[lo:hi].max()) if hi > lo else None,
                "cumulative_share_of_defaults": float(captured / total_bads),
                "lift": float(rate / base_rate),
                "cumulative_lift": float((captured / hi) / base_rate),
            }
        )
    return rows

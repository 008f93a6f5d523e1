"""Scorecard points, grades and the credit-risk measures, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.credit_metrics import gains_table, gini, ks_statistic
from models.scorecard import Scorecard, grade


def test_base_odds_give_the_base_score_and_pdo_doubles_the_odds() -> None:
    card = Scorecard()
    pd_at_base = 1 / 51  # 50:1 good:bad
    assert card.score(pd_at_base) == pytest.approx(600)
    pd_double = 1 / 101  # 100:1
    assert card.score(pd_double) == pytest.approx(620)
    assert card.factor == pytest.approx(20 / math.log(2))


def test_score_and_pd_round_trip_and_order() -> None:
    card = Scorecard(base_score=500, base_odds=20, points_to_double_odds=40)
    pds = np.array([0.001, 0.01, 0.1, 0.5, 0.9])
    scores = card.score(pds)
    assert np.all(np.diff(scores) < 0)  # more risk, fewer points
    assert card.pd_at(scores) == pytest.approx(pds)
    assert np.isfinite(card.score(np.array([0.0, 1.0]))).all()


def test_bad_scorecard_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Scorecard(points_to_double_odds=0)


def test_grades_follow_the_pd_bounds() -> None:
    assert grade(np.array([0.0, 0.019, 0.02, 0.07, 0.15, 0.2, 0.99])).tolist() == ["A", "A", "B", "C", "D", "E", "E"]
    with pytest.raises(ValueError):
        grade(0.1, (("A", 0.1), ("B", 0.2)))


def test_ks_and_gini_on_a_known_case() -> None:
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    # After the top 2: 2/3 of bads, 0 goods; after 4: 3/3 bads, 1/5 goods -> KS = 0.8
    assert ks_statistic(y, p) == pytest.approx(0.8)
    auc = roc_auc_score(y, p)
    assert gini(auc) == pytest.approx(2 * auc - 1)


def test_ks_does_not_split_ties() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.5, 0.5, 0.5, 0.5])
    assert ks_statistic(y, p) == pytest.approx(0.0)


def test_gains_table_adds_up() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=1000)
    y = (rng.uniform(size=1000) < p).astype(int)
    rows = gains_table(y, p)
    assert [r["band"] for r in rows] == list(range(1, 11))
    assert sum(r["customers"] for r in rows) == 1000
    assert sum(r["defaults"] for r in rows) == y.sum()
    assert rows[-1]["cumulative_share_of_defaults"] == pytest.approx(1.0)
    assert rows[0]["lift"] > 1.5 > rows[-1]["lift"]
    with pytest.raises(ValueError, match="both defaulters and non-defaulters"):
        gains_table(np.zeros(5), np.ones(5))

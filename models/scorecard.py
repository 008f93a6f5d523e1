"""Scorecard points and risk grades from a probability of default (PD).

Points follow the industry convention: ``score = offset + factor x ln(good:bad odds)`` with
``factor = PDO / ln 2`` and ``offset = base_score - factor x ln(base_odds)``, so a customer at
the base odds gets the base score and every PDO points double the odds. Defaults: 600 points at
50:1, 20 points to double the odds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Grade boundaries on PD: a grade holds PDs at or above its lower bound and below the next one.
DEFAULT_GRADES: tuple[tuple[str, float], ...] = (("A", 0.0), ("B", 0.02), ("C", 0.05), ("D", 0.10), ("E", 0.20))
#: PDs are clipped into this range before taking odds, so the score stays finite.
PD_FLOOR, PD_CEILING = 1e-6, 1 - 1e-6


@dataclass(frozen=True)
class Scorecard:
    """The points scale: base score at base odds (good:bad), and points to double the odds."""

    base_score: float = 600.0
    base_odds: float = 50.0
    points_to_double_odds: float = 20.0

    def __post_init__(self) -> None:
        if self.base_odds <= 0 or self.points_to_double_odds <= 0:
            raise ValueError("base odds and points to double the odds must be positive")

    @property
    def factor(self) -> float:
        return self.points_to_double_odds / math.log(2)

    @property
    def offset(self) -> float:
        return self.base_score - self.factor * math.log(self.base_odds)

    def score(self, pd: np.ndarray | float) -> np.ndarray:
        """Points for each PD: higher points, lower risk."""
        clipped = np.clip(np.asarray(pd, dtype=float), PD_FLOOR, PD_CEILING)
        return self.offset + self.factor * np.log((1 - clipped) / clipped)

    def pd_at(self, score: np.ndarray | float) -> np.ndarray:
        """The PD a score stands for (the inverse of :meth:`score`)."""
        odds = np.exp((np.asarray(score, dtype=float) - self.offset) / self.factor)
        return 1 / (1 + odds)


def grade(pd: np.ndarray | float, grades: tuple[tuple[str, float], ...] = DEFAULT_GRADES) -> np.ndarray:
    """Risk grade of each PD (A best) from the grades' lower PD bounds."""
    names = np.array([name for name, _ in grades])
    bounds = np.array([lower for _, lower in grades])
    if bounds[0] != 0.0 or np.any(np.diff(bounds) <= 0):
        raise ValueError("grade bounds must start at 0 and increase")
    index = np.searchsorted(bounds, np.asarray(pd, dtype=float), side="right") - 1
    return names[np.clip(index, 0, len(names) - 1)]

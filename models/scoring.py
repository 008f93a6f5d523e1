"""Scoring with a trained PD model: the whole population in a run, or one applicant for the API.

:class:`RiskScorer` is what a risk run stores in the warehouse (``ml_model_artifacts``): the
calibrated champion, the reason model, the features and the points scale. Scoring the population
and scoring one applicant go through the same code, so the API, the tables and the reports agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from .policy import Policy, PolicyPopulation, decision_reason
from .reasons import ReasonModel
from .risk import FeatureSet, model_input, predict_pd
from .scorecard import DEFAULT_GRADES, Scorecard, grade

DECISION_NAMES = np.array(["approve", "review", "decline"])


@dataclass
class RiskScorer:
    """A trained PD model ready to score: PD, points, grade and reasons."""

    run_id: str
    model: object
    reasons: ReasonModel
    features: FeatureSet
    scorecard: Scorecard
    grades: tuple[tuple[str, float], ...] = DEFAULT_GRADES

    def score_frame(self, customers: pl.DataFrame) -> pl.DataFrame:
        """customer_id, pd, score, grade, reason_code_1..3, reason_1..3 for every row."""
        missing = [c for c in self.features.columns if c not in customers.columns]
        if missing:
            raise ValueError(f"the model needs the column(s) {', '.join(missing)}, which the data does not have")
        pd = predict_pd(self.model, model_input(customers, self.features))
        scored = pl.DataFrame(
            {
                "customer_id": customers.get_column("customer_id"),
                "pd": pd,
                "score": np.round(self.scorecard.score(pd), 1),
                "grade": grade(pd, self.grades),
            }
        )
        return scored.join(self.reasons.reasons(customers), on="customer_id", how="left", maintain_order="left")

    def score_applicant(self, applicant: dict, policy: Policy | None = None, *, flagged_persona: bool = False) -> dict:
        """One applicant (a dict of mart columns; missing ones count as unknown) to a decision.

        Returns pd, score, grade, decision, decision_reason and the reasons; the decision is the
        given policy's (the default policy when none is given).
        """
        row = {"customer_id": applicant.get("customer_id", 0)} | {
            c: applicant.get(c) for c in self.features.columns + [r.column for r in (policy or Policy()).rules]
        }
        frame = pl.DataFrame([row], schema=self._applicant_schema(row))
        scored = self.score_frame(frame).row(0, named=True)
        population = PolicyPopulation.from_frame(
            frame.with_columns(
                pl.lit(scored["score"]).alias("score"),
                pl.lit(scored["pd"]).alias("pd"),
                pl.lit(flagged_persona).alias("manual_underwriting"),
            )
        )
        policy = policy or Policy()
        decision = population.decide(policy)[0]
        return scored | {
            "decision": str(DECISION_NAMES[decision]),
            "decision_reason": decision_reason(population, policy)[0],
            "policy_version": policy.version,
        }

    def _applicant_schema(self, row: dict) -> dict:
        schema: dict[str, pl.DataType] = {"customer_id": pl.Int64}
        for column in row:
            if column == "customer_id":
                continue
            schema[column] = pl.String if column in self.features.categorical else pl.Float64
        return schema

"""Scoring with a trained PD model: the whole population in a run, or one applicant for the API.

:class:`RiskScorer` is what a risk run stores in the warehouse (``ml_model_artifacts``): the
calibrated champion, the reason model, the features and the points scale.

One applicant must score in milliseconds, and a scikit-learn ColumnTransformer spends about 10 ms
per call on a one-row frame just selecting columns. :class:`ApplicantPath` therefore holds the
fitted preprocessing as plain arrays (medians, means, scales, category positions) read from the
fitted pipeline, and is checked against the pipeline itself on real rows when it is built: if
they ever disagree, single applicants go through the pipeline instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from .policy import Policy, decide_one
from .reasons import ReasonModel, reason_rows
from .risk import FeatureSet, floor_pd, model_input, predict_pd
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

    fast: ApplicantPath | None = None
    fast_reasons: ApplicantPath | None = None

    def prepare_applicants(self, sample: pl.DataFrame) -> bool:
        """Build the fast one-applicant paths and check them against the pipelines on ``sample`` rows."""
        x = model_input(sample, self.features)
        try:
            champion = ApplicantPath.build(self.model.estimator.estimator, self.model.calibrated_classifiers_)
            reasons = ApplicantPath.build(self.reasons.pipeline)
            reason_prep = self.reasons.pipeline.named_steps["prep"]
            ok = np.allclose(champion.pd(champion.transform_frame(x)), predict_pd(self.model, x), atol=1e-9)
            ok = ok and np.allclose(reasons.transform_frame(x), reason_prep.transform(x), atol=1e-9)
        except (AttributeError, KeyError, IndexError, ValueError):
            ok = False
        self.fast, self.fast_reasons = (champion, reasons) if ok else (None, None)
        return ok

    def score_applicant(self, applicant: dict, policy: Policy | None = None, *, flagged_persona: bool = False) -> dict:
        """One applicant (a dict of mart columns; missing ones count as unknown) to a decision.

        Returns pd, score, grade, decision, decision_reason and the reasons; the decision is the
        given policy's (the default policy, without review rules, when none is given).
        """
        policy = policy or Policy()
        if self.fast is None or self.fast_reasons is None:
            scored = self._score_slowly(applicant)
        else:
            pd = float(self.fast.pd(self.fast.transform_row(applicant)[None, :])[0])
            scored = {
                "customer_id": applicant.get("customer_id"),
                "pd": pd,
                "score": round(float(self.scorecard.score(pd)), 1),
                "grade": str(grade(pd, self.grades)),
            } | reason_rows(self.reasons, self.fast_reasons.transform_row(applicant), applicant)
        decision, why = decide_one(policy, scored["score"], applicant, flagged_persona)
        return scored | {"decision": decision, "decision_reason": why, "policy_version": policy.version}

    def _score_slowly(self, applicant: dict) -> dict:
        # The key only ties the row to its reasons: text, so numeric and text ids (C-00017) both fit.
        key = applicant.get("customer_id")
        row = {"customer_id": "applicant" if key is None else str(key)} | {
            c: applicant.get(c) for c in self.features.columns
        }
        schema = {"customer_id": pl.String} | {
            c: pl.String if c in self.features.categorical else pl.Float64 for c in self.features.columns
        }
        return self.score_frame(pl.DataFrame([row], schema=schema)).row(0, named=True)


@dataclass
class ApplicantPath:
    """The fitted preprocessing and model read out as arrays, for one applicant at a time."""

    numeric: list[tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]]
    categorical: list[tuple[str, dict[str, int], int | None]]
    width: int
    model: object
    calibrators: list
    #: The model's decision function as plain arrays (linear terms or the boosted trees), when it has one.
    decision: LinearDecision | TreeDecision | None = None

    @classmethod
    def build(cls, pipeline, calibrated_classifiers: list | None = None) -> ApplicantPath:  # noqa: ANN001
        """From a fitted pipeline (prep, [smote,] model) and, for PDs, its calibrated classifiers."""
        prep = pipeline.named_steps["prep"]
        numeric, categorical, offset = [], [], 0
        for name, part, columns in prep.transformers_:
            if name == "remainder":
                continue
            if name in ("numeric", "amount"):
                imputer, scaler = part.named_steps["impute"], part.named_steps["scale"]
                flagged = imputer.indicator_.features_ if imputer.indicator_ is not None else np.array([], int)
                numeric.append(
                    (
                        list(columns),
                        imputer.statistics_,
                        np.asarray(flagged),
                        scaler.mean_,
                        scaler.scale_,
                        name == "amount",
                    )
                )
                offset += len(columns) + len(flagged)
            else:
                encoder = part.named_steps["onehot"]
                for j, column in enumerate(columns):
                    width = encoder._n_features_outs[j]
                    positions, unknown = {}, None
                    for value in list(encoder.categories_[j]) + ["\0unseen"]:
                        row = np.array([[encoder.categories_[k][0] for k in range(len(columns))]], dtype=object)
                        row[0, j] = value
                        block = encoder.transform(row)[
                            0, sum(encoder._n_features_outs[:j]) : sum(encoder._n_features_outs[: j + 1])
                        ]
                        hit = int(np.argmax(block)) + offset if block.any() else None
                        if value == "\0unseen":
                            unknown = hit
                        else:
                            positions[str(value)] = hit
                    categorical.append((column, positions, unknown))
                    offset += width
        calibrators = [c.calibrators[0] for c in calibrated_classifiers or []]
        model = pipeline.steps[-1][1]
        return cls(numeric, categorical, offset, model, calibrators, LinearDecision.of(model) or TreeDecision.of(model))

    def transform_row(self, applicant: dict) -> np.ndarray:
        out = np.zeros(self.width)
        at = 0
        for columns, medians, flagged, means, scales, logged in self.numeric:
            raw = np.array([_number(applicant.get(c)) for c in columns])
            missing = np.isnan(raw)
            values = np.r_[np.where(missing, medians, raw), missing[flagged].astype(float)]
            if logged:
                values = np.log1p(np.clip(values, 0, None))
            out[at : at + len(values)] = (values - means) / scales
            at += len(values)
        for column, positions, unknown in self.categorical:
            value = applicant.get(column)
            hit = positions.get("missing" if value is None else str(value), unknown)
            if hit is not None:
                out[hit] = 1.0
        return out

    def transform_frame(self, x: pl.DataFrame) -> np.ndarray:
        return np.vstack([self.transform_row(row) for row in x.iter_rows(named=True)])

    def pd(self, terms: np.ndarray) -> np.ndarray:
        raw = self.model.decision_function(terms) if self.decision is None else self.decision(terms)
        return floor_pd(np.mean([_calibrate(calibrator, raw) for calibrator in self.calibrators], axis=0))


def _calibrate(calibrator: object, raw: np.ndarray) -> np.ndarray:
    """``calibrator.predict(raw)`` without scikit-learn's input checks (most of its time on one row):
    isotonic is linear interpolation between its thresholds, clipped at the ends; sigmoid is Platt's."""
    thresholds = getattr(calibrator, "X_thresholds_", None)
    if thresholds is not None and getattr(calibrator, "out_of_bounds", None) == "clip":
        clipped = np.clip(raw, calibrator.X_min_, calibrator.X_max_)
        return np.interp(clipped, thresholds, calibrator.y_thresholds_)
    if hasattr(calibrator, "a_") and hasattr(calibrator, "b_"):
        return 1.0 / (1.0 + np.exp(calibrator.a_ * raw + calibrator.b_))
    return calibrator.predict(raw)


@dataclass
class LinearDecision:
    """A linear model's decision function: scikit-learn's input checks cost more than the sum itself."""

    coefficients: np.ndarray
    intercept: float

    @classmethod
    def of(cls, model: object) -> LinearDecision | None:
        coef, intercept = getattr(model, "coef_", None), getattr(model, "intercept_", None)
        if coef is None or intercept is None or np.shape(coef)[0] != 1:
            return None
        return cls(np.asarray(coef, dtype=float)[0], float(np.asarray(intercept).ravel()[0]))

    def __call__(self, terms: np.ndarray) -> np.ndarray:
        return terms @ self.coefficients + self.intercept


@dataclass
class TreeDecision:
    """A binary HistGradientBoostingClassifier's raw prediction, walking all trees at once with numpy.

    scikit-learn predicts tree by tree through OpenMP, which costs about 0.1-0.3 ms per tree for one
    row (64 trees: several ms). The nodes of every tree are stacked into one table (child indices made
    global) and a row descends all trees together, one level per step, as scikit-learn decides: a
    missing value follows ``missing_go_to_left``, otherwise left when ``value <= threshold``.
    """

    baseline: float
    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray

    @classmethod
    def of(cls, model: object) -> TreeDecision | None:
        predictors = getattr(model, "_predictors", None)
        baseline = getattr(model, "_baseline_prediction", None)
        if predictors is None or baseline is None or np.size(baseline) != 1:
            return None
        trees = [tree for iteration in predictors for tree in iteration]
        if any(len(iteration) != 1 for iteration in predictors) or not trees:
            return None
        nodes = [tree.nodes for tree in trees]
        if any(n["is_categorical"].any() for n in nodes if "is_categorical" in n.dtype.names):
            return None
        offsets = np.cumsum([0] + [len(n) for n in nodes[:-1]])
        stacked = np.concatenate(nodes)
        shift = np.repeat(offsets, [len(n) for n in nodes])
        is_leaf = stacked["is_leaf"].astype(bool)
        return cls(
            float(np.ravel(baseline)[0]),
            offsets.astype(np.int64),
            stacked["feature_idx"].astype(np.int64),
            stacked["num_threshold"].astype(float),
            stacked["missing_go_to_left"].astype(bool),
            np.where(is_leaf, np.arange(len(stacked)), stacked["left"] + shift).astype(np.int64),
            np.where(is_leaf, np.arange(len(stacked)), stacked["right"] + shift).astype(np.int64),
            is_leaf,
            stacked["value"].astype(float),
        )

    def __call__(self, terms: np.ndarray) -> np.ndarray:
        out = np.empty(len(terms))
        for row, x in enumerate(terms):
            at = self.roots
            while not self.is_leaf[at].all():
                values = x[self.feature[at]]
                go_left = np.where(np.isnan(values), self.missing_left[at], values <= self.threshold[at])
                at = np.where(go_left, self.left[at], self.right[at])
            out[row] = self.baseline + self.value[at].sum()
        return out


def _number(value: object) -> float:
    if value is None:
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan

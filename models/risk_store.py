"""The credit-risk tables of the warehouse: what each holds, its grain, and how a run writes them.

Every table carries the ``run_id`` of the run that wrote it; the ``ml_latest_*`` views pick the
newest run so analysts and the dashboard never have to.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from datetime import UTC, datetime
from typing import Any

import duckdb
import polars as pl

from warehouse.dictionary import comment_columns, comment_table
from warehouse.history import latest_run_of

from .policy import Policy, default_policy
from .runs import append_table

RUN_ID = "Identifier of the risk run that wrote the row (see ml_model_runs)."
ROLE = "champion (the model that scores customers) or challenger (the other family, kept for comparison)."
FAMILY = "Model family: logistic (L1/L2 logistic regression) or boosting (histogram gradient boosting)."


SCORES_COMMENTS = {
    "customer_id": "The customer key.",
    "run_id": RUN_ID,
    "pd": "Calibrated probability of default within the outcome window (0 to 1), from the champion model.",
    "score": "Scorecard points: offset + factor x ln(good:bad odds); higher is safer (600 at 50:1, +20 doubles the odds by default).",
    "grade": "Risk grade from the PD: A (lowest risk) to E (see ml_risk_grades for the PD ranges).",
    "decision": "Decision of the policy version recorded in policy_version: approve, review (manual) or decline.",
    "decision_reason": "Why: the cut-off or the manual-review rule that decided.",
    "policy_version": "Version of the approval policy that made the decision (see ml_policies).",
    "reason_code_1": "Mart column that raises this customer's risk most (the logistic model's largest term); null if none raises it.",
    "reason_code_2": "Mart column that raises the risk second most.",
    "reason_code_3": "Mart column that raises the risk third most.",
    "reason_1": "The first reason in words an analyst can read out, e.g. 'Debt-to-income 72%, above 60%'.",
    "reason_2": "The second reason in words.",
    "reason_3": "The third reason in words.",
}
CANDIDATES_COMMENTS = {
    "run_id": RUN_ID,
    "family": FAMILY,
    "imbalance": "How the rare defaults were handled: class_weight (balanced weights) or smote (synthetic oversampling).",
    "cv_auc": "Mean ROC AUC over the cross-validation folds of the training part, best setting.",
    "cv_auc_std": "Standard deviation of that AUC across folds.",
    "best_params": "The regularisation the search chose, as JSON (C and l1_ratio: 1 = L1, 0 = L2; or learning_rate).",
    "is_kept": "True for the imbalance method kept for the family (the higher cross-validated AUC).",
    "role": "champion, challenger, or null for the imbalance method not kept.",
    "calibration": "Calibration fitted on the validation part for the kept candidate: isotonic or sigmoid (lower Brier).",
}
METRICS_COMMENTS = {
    "run_id": RUN_ID,
    "role": ROLE,
    "family": FAMILY,
    "metric": "Measure name: roc_auc, gini, ks, brier, brier_base_rate, log_loss, precision, recall, f1, "
    "true_positives, ..., threshold, cv_auc; all on the held-out test part unless named cv_ or validation_.",
    "value": "The measure's value.",
}
CURVES_COMMENTS = {
    "run_id": RUN_ID,
    "role": ROLE,
    "family": FAMILY,
    "curve": "roc (x false-positive rate, y true-positive rate) or calibration (x mean predicted PD, y observed default rate).",
    "point": "Order of the point along the curve.",
    "x": "The point's x value.",
    "y": "The point's y value.",
    "threshold": "PD threshold at the ROC point; null for calibration points.",
}
GAINS_COMMENTS = {
    "run_id": RUN_ID,
    "role": ROLE,
    "family": FAMILY,
    "band": "Decile of the test part, 1 = the riskiest tenth by PD.",
    "customers": "Customers in the band.",
    "defaults": "Defaulters in the band.",
    "default_rate": "Observed default rate in the band.",
    "min_pd": "Lowest PD in the band.",
    "max_pd": "Highest PD in the band.",
    "cumulative_share_of_defaults": "Share of all test defaulters caught in this band and the riskier ones (gains).",
    "lift": "Band default rate divided by the overall default rate.",
    "cumulative_lift": "Default rate of this band and the riskier ones divided by the overall rate.",
}
IMPORTANCE_COMMENTS = {
    "run_id": RUN_ID,
    "feature": "Mart column fed to the model.",
    "importance": "Fall in the champion's test ROC AUC when the column is shuffled (permutation importance).",
    "importance_std": "Standard deviation of that fall over the repeats.",
    "rank": "1 = most important.",
}
GRADES_COMMENTS = {
    "run_id": RUN_ID,
    "grade": "Risk grade, A (best) to E.",
    "pd_lower": "Lowest PD of the grade (inclusive).",
    "pd_upper": "PD where the next grade starts (exclusive); null for the last grade.",
    "score_lower": "Lowest score of the grade (the score at pd_upper); null for the last grade.",
    "score_upper": "Highest score of the grade (the score at pd_lower); null for the first grade.",
    "customers": "Customers in the grade.",
    "share": "Share of all customers in the grade.",
    "mean_pd": "Average predicted PD in the grade.",
    "defaults": "Observed defaulters in the grade (all customers with a known outcome).",
    "observed_default_rate": "Observed default rate in the grade (all customers with a known outcome).",
    "test_customers": "Customers of the held-out test part in the grade.",
    "test_default_rate": "Observed default rate of the test part in the grade (null when empty).",
}
SPLIT_COMMENTS = {
    "customer_id": "The customer key.",
    "run_id": RUN_ID,
    "split": "train (fits the models), validation (calibration and threshold) or test (the reported measures).",
}
BASELINE_COMMENTS = {
    "run_id": RUN_ID,
    "variable": "Model input, or score: the variable the bins describe.",
    "bin": "Bin number, from the lowest values up; the last bin holds missing values.",
    "lower": "Lower edge of the bin (exclusive of the previous bin's values); null for the missing-value bin.",
    "upper": "Upper edge of the bin; null for the missing-value bin.",
    "expected_share": "Share of the training population in the bin: PSI's expected distribution.",
}
POLICY_COMMENTS = {
    "policy_version": "Version number; each change makes a new version and old ones stay.",
    "name": "Name of the policy.",
    "created_at": "When the version was created (UTC).",
    "approve_min_score": "Auto-approve at or above this score.",
    "decline_below_score": "Auto-decline below this score; between the two cut-offs a person reviews.",
    "lgd": "Loss given default used for expected loss (share of the exposure lost).",
    "policy": "The whole policy as JSON, including the manual-review rules.",
}
EVALUATION_COMMENTS = {
    "run_id": RUN_ID,
    "policy_version": "Version of the policy evaluated.",
    "persona_name": "Persona, or 'All customers' for the whole population.",
    "customers": "Customers evaluated.",
    "approved": "Customers auto-approved.",
    "reviewed": "Customers sent to manual review.",
    "declined": "Customers auto-declined.",
    "automation_rate": "Share decided without a person (approved + declined).",
    "approval_rate": "Share auto-approved.",
    "review_rate": "Share sent to manual review.",
    "decline_rate": "Share auto-declined.",
    "expected_default_rate_approved": "Mean PD of the approved customers: their expected default rate.",
    "expected_loss_approved": "Sum of PD x LGD x exposure over the approved customers, currency units.",
    "expected_loss_review": "Sum of PD x LGD x exposure over the customers in review, currency units.",
}
FAIRNESS_COMMENTS = {
    "run_id": RUN_ID,
    "policy_version": "Version of the policy evaluated.",
    "attribute": "Protected or monitored attribute: sex or age_band (neither is a model input for sex).",
    "group_value": "The group.",
    "customers": "Customers in the group.",
    "approved": "Customers of the group auto-approved.",
    "approval_rate": "Auto-approval rate of the group.",
    "adverse_impact_ratio": "Approval rate divided by that of the most-approved group of the attribute.",
    "is_flagged": "True when the ratio is below 0.8 (the four-fifths rule).",
}
ARTIFACT_COMMENTS = {
    "run_id": RUN_ID,
    "artifact": "What the bytes hold: risk_model (the calibrated champion, reason model, features and scorecard).",
    "format": "Serialisation: python-pickle (load only warehouses you built).",
    "content": "The serialised object.",
    "sha256": "SHA-256 of content, checked before loading.",
    "size_bytes": "Size of content in bytes.",
}

POLICIES_DDL = (
    "policy_version INTEGER PRIMARY KEY, name VARCHAR, created_at TIMESTAMP, approve_min_score DOUBLE, "
    "decline_below_score DOUBLE, lgd DOUBLE, policy JSON"
)


def ensure_policies(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS ml_policies ({POLICIES_DDL})")
    comment_table(con, "ml_policies", "One row per approval-policy version: cut-offs, review rules and LGD.")
    comment_columns(con, "ml_policies", POLICY_COMMENTS)


def read_policy(con: duckdb.DuckDBPyConnection) -> Policy:
    """The newest policy version, or the default policy when none was saved yet."""
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'ml_policies'").fetchall()[0][0]
    row = (
        con.execute("SELECT policy FROM ml_policies ORDER BY policy_version DESC LIMIT 1").fetchall() if exists else []
    )
    if row:
        return Policy.model_validate_json(row[0][0])
    columns = con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'customers'").fetchall()
    return default_policy({c for (c,) in columns})


def save_policy(con: duckdb.DuckDBPyConnection, policy: Policy) -> Policy:
    """Store ``policy`` as a new version (the number after the newest) and return it with that number."""
    ensure_policies(con)
    (newest,) = con.execute("SELECT coalesce(max(policy_version), 0) FROM ml_policies").fetchall()[0]
    saved = policy.model_copy(update={"version": int(newest) + 1})
    con.execute(
        "INSERT INTO ml_policies VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            saved.version,
            saved.name,
            datetime.now(UTC).replace(tzinfo=None),
            saved.approve_min_score,
            saved.decline_below_score,
            saved.lgd,
            saved.model_dump_json(),
        ],
    )
    return saved


def ensure_saved(con: duckdb.DuckDBPyConnection, policy: Policy) -> Policy:
    """The policy as stored: the default policy is saved as version 1 the first time it decides."""
    ensure_policies(con)
    if con.execute("SELECT count(*) FROM ml_policies").fetchall()[0][0] == 0:
        return save_policy(con, policy)
    return policy


def write_artifact(con: duckdb.DuckDBPyConnection, run_id: str, artifact: str, obj: object) -> None:
    content = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    frame = pl.DataFrame(
        {
            "run_id": [run_id],
            "artifact": [artifact],
            "format": ["python-pickle"],
            "content": [content],
            "sha256": [hashlib.sha256(content).hexdigest()],
            "size_bytes": [len(content)],
        }
    )
    append_table(con, "ml_model_artifacts", frame, "One row per stored model object per run.", ARTIFACT_COMMENTS)


#: The newest stored artifact named ``$artifact`` (or that of run ``$run_id``): run_id, content, sha256.
ARTIFACT_SQL = (
    "SELECT a.run_id, a.content, a.sha256 FROM ml_model_artifacts a JOIN ml_model_runs r USING (run_id) "
    "WHERE a.artifact = $artifact AND ($run_id IS NULL OR a.run_id = $run_id) ORDER BY r.finished_at DESC LIMIT 1"
)


class DamagedArtifactError(ValueError):
    """A stored artifact whose content does not match its checksum."""


def read_artifact(con: duckdb.DuckDBPyConnection, artifact: str, run_id: str | None = None) -> tuple[str, object]:
    """(run_id, object) of the newest stored artifact of that name (or of the given run)."""
    rows = con.execute(ARTIFACT_SQL, {"artifact": artifact, "run_id": run_id}).fetchall()
    if not rows:
        raise LookupError(f"no stored {artifact}")
    found_run, content, digest = rows[0]
    return found_run, unpickle_artifact(artifact, found_run, content, digest)


def unpickle_artifact(artifact: str, run_id: str, content: bytes, digest: str) -> Any:
    """The object of a row of :data:`ARTIFACT_SQL`, once its checksum matched (DamagedArtifactError if not)."""
    if hashlib.sha256(content).hexdigest() != digest:
        raise DamagedArtifactError(f"the stored {artifact} of run {run_id} is damaged (checksum mismatch)")
    return pickle.loads(content)  # noqa: S301 - the warehouse's own model, checked above


def with_run(frame: pl.DataFrame, run_id: str, comments: dict[str, str]) -> pl.DataFrame:
    return frame.with_columns(pl.lit(run_id).alias("run_id")).select(list(comments))


def write_latest_views(con: duckdb.DuckDBPyConnection) -> None:
    """``ml_latest_risk_scores``: the newest risk run's scores, for analysts and the dashboard."""
    con.execute(
        f"CREATE OR REPLACE VIEW ml_latest_risk_scores AS SELECT * FROM ml_risk_scores WHERE run_id = {latest_run_of('risk')}"
    )
    comment_table(con, "ml_latest_risk_scores", "View: one row per customer, scored by the latest risk run.", view=True)
    comment_columns(con, "ml_latest_risk_scores", SCORES_COMMENTS)


def params_json(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=float)


def write_risk_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    result,  # noqa: ANN001 - risk.RiskModelResult
    scores: pl.DataFrame,
    grades: pl.DataFrame,
    baseline: pl.DataFrame,
    outcome,  # noqa: ANN001 - policy.PolicyOutcome
    policy: Policy,
) -> None:
    """Every table of one risk run, each row carrying the run id."""
    append_table(
        con,
        "ml_risk_scores",
        with_run(scores, run_id, SCORES_COMMENTS),
        "One row per customer per risk run: PD, score, grade, decision and reasons.",
        SCORES_COMMENTS,
    )
    roles = {
        result.champion.candidate.family: ("champion", result.champion),
        result.challenger.candidate.family: ("challenger", result.challenger),
    }
    candidates = pl.DataFrame(
        [
            {
                "family": c.family,
                "imbalance": c.imbalance,
                "cv_auc": c.cv_auc,
                "cv_auc_std": c.cv_auc_std,
                "best_params": params_json(c.best_params),
                "is_kept": roles[c.family][1].candidate is c,
                "role": roles[c.family][0] if roles[c.family][1].candidate is c else None,
                "calibration": roles[c.family][1].calibration if roles[c.family][1].candidate is c else None,
            }
            for c in result.candidates
        ],
        schema_overrides={"role": pl.String, "calibration": pl.String},
    )
    append_table(
        con,
        "ml_risk_models",
        with_run(candidates, run_id, CANDIDATES_COMMENTS),
        "One row per candidate model (family x imbalance method) per risk run.",
        CANDIDATES_COMMENTS,
    )
    metric_rows, curve_rows, gain_rows = [], [], []
    for family, (role, fitted) in roles.items():
        for metric, value in fitted.metrics.items():
            metric_rows.append({"role": role, "family": family, "metric": metric, "value": float(value)})
        for name, value in fitted.calibration_brier.items():
            metric_rows.append({"role": role, "family": family, "metric": f"validation_brier_{name}", "value": value})
        curve_rows += [{"role": role, "family": family} | point for point in result.curves[family]]
        gain_rows += [{"role": role, "family": family} | band for band in result.gains[family]]
    append_table(
        con,
        "ml_risk_metrics",
        with_run(pl.DataFrame(metric_rows), run_id, METRICS_COMMENTS),
        "One row per measure per model role per risk run.",
        METRICS_COMMENTS,
    )
    append_table(
        con,
        "ml_risk_curves",
        with_run(pl.DataFrame(curve_rows, schema_overrides={"threshold": pl.Float64}), run_id, CURVES_COMMENTS),
        "One row per point of the ROC and calibration curves per model role per risk run.",
        CURVES_COMMENTS,
    )
    append_table(
        con,
        "ml_risk_gains",
        with_run(pl.DataFrame(gain_rows), run_id, GAINS_COMMENTS),
        "One row per PD decile of the test part per model role per risk run.",
        GAINS_COMMENTS,
    )
    append_table(
        con,
        "ml_risk_importances",
        with_run(pl.DataFrame(result.importances), run_id, IMPORTANCE_COMMENTS),
        "One row per model input per risk run: permutation importance of the champion.",
        IMPORTANCE_COMMENTS,
    )
    append_table(
        con,
        "ml_risk_grades",
        with_run(grades, run_id, GRADES_COMMENTS),
        "One row per risk grade per risk run: PD and score range, size and observed default rate.",
        GRADES_COMMENTS,
    )
    append_table(
        con,
        "ml_risk_split",
        with_run(result.split, run_id, SPLIT_COMMENTS),
        "One row per customer with a known outcome per risk run: the part of the split it fell in.",
        SPLIT_COMMENTS,
    )
    append_table(
        con,
        "ml_psi_baseline",
        with_run(baseline, run_id, BASELINE_COMMENTS),
        "One row per bin per variable per risk run: the training population's distribution for PSI.",
        BASELINE_COMMENTS,
    )
    write_policy_outcome(con, run_id, policy, outcome)


def write_policy_outcome(con: duckdb.DuckDBPyConnection, run_id: str, policy: Policy, outcome) -> None:  # noqa: ANN001
    rows = [{"persona_name": "All customers"} | outcome.overall] + outcome.by_persona
    evaluation = pl.DataFrame(rows).with_columns(pl.lit(policy.version).alias("policy_version"))
    append_table(
        con,
        "ml_policy_evaluations",
        with_run(evaluation, run_id, EVALUATION_COMMENTS),
        "One row per persona (and one for all customers) per policy evaluation in a risk run.",
        EVALUATION_COMMENTS,
    )
    if outcome.fairness:
        fairness = pl.DataFrame(outcome.fairness, schema_overrides={"adverse_impact_ratio": pl.Float64}).with_columns(
            pl.lit(policy.version).alias("policy_version")
        )
        append_table(
            con,
            "ml_fairness",
            with_run(fairness, run_id, FAIRNESS_COMMENTS),
            "One row per group of sex and of age band per risk run: approval rate and adverse impact ratio.",
            FAIRNESS_COMMENTS,
        )

"""Credit risk end to end on real warehouse files: PD models, scorecard, reasons, policy, warnings."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from conftest import FIXTURES, SHARED_DATA, Builder, needs_shared_data

from dashboard.cli import main
from models.policy import Policy, PolicyCells, PolicyPopulation, ReviewRule
from models.reasons import format_value, label
from models.risk_store import read_artifact, read_policy
from models.runs import ModelError
from models.scorecard import Scorecard
from models.train import train_risk, train_segments, train_warnings
from warehouse.dictionary import missing_comments
from warehouse.synthetic import generate_bank

RISK_TABLES = (
    "ml_risk_scores",
    "ml_risk_models",
    "ml_risk_metrics",
    "ml_risk_curves",
    "ml_risk_gains",
    "ml_risk_importances",
    "ml_risk_grades",
    "ml_risk_split",
    "ml_psi_baseline",
    "ml_policies",
    "ml_policy_evaluations",
    "ml_fairness",
    "ml_model_artifacts",
    "ml_alerts",
    "ml_alert_rules",
    "ml_stability",
    "ml_product_penetration",
    "ml_recommendations",
    "ml_campaign_mix",
    "ml_statistical_tests",
    "ml_outliers",
)


@pytest.fixture(scope="module")
def trained(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the 2,000-customer demo warehouse after `segrisk train all`."""
    path = tmp_path_factory.mktemp("risk") / "demo.duckdb"
    shutil.copyfile(demo_db, path)
    assert main(["train", "all", "--db", str(path)]) == 0
    return path


def _sql(db: Path, query: str, params: list | None = None) -> pl.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.sql(query, params=params or []).pl()


def _metrics(db: Path, kind: str) -> dict:
    rows = _sql(db, "SELECT metrics FROM ml_model_runs WHERE model_kind = ? ORDER BY finished_at DESC", [kind])
    return json.loads(rows.item(0, 0))


@pytest.mark.slow  # trains on the demo bank
def test_train_all_fills_every_table_with_comments(trained: Path) -> None:
    customers = _sql(trained, "SELECT count(*) FROM customers").item()
    with duckdb.connect(str(trained), read_only=True) as con:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in RISK_TABLES}
        assert missing_comments(con) == []
        kinds = {k for (k,) in con.execute("SELECT model_kind FROM ml_model_runs").fetchall()}
    assert all(counts[t] > 0 for t in RISK_TABLES), counts
    assert counts["ml_risk_scores"] == customers
    assert counts["ml_risk_models"] == 4  # 2 families x 2 imbalance methods
    assert counts["ml_risk_grades"] == 5
    assert counts["ml_risk_gains"] == 20  # deciles, champion and challenger
    assert {"risk", "warnings", "cross_sell", "statistics"} <= kinds
    roles = _sql(trained, "SELECT role, count(*) AS n FROM ml_risk_models WHERE is_kept GROUP BY role ORDER BY role")
    assert roles.get_column("role").to_list() == ["challenger", "champion"]
    needed = {"roc_auc", "gini", "ks", "brier", "log_loss", "precision", "recall", "f1", "true_positives", "cv_auc"}
    measured = set(_sql(trained, "SELECT metric FROM ml_risk_metrics WHERE role = 'champion'").get_column("metric"))
    assert needed <= measured
    curves = _sql(trained, "SELECT curve, count(*) AS n FROM ml_risk_curves GROUP BY curve")
    assert set(curves.get_column("curve")) == {"roc", "calibration"}


def test_split_is_stratified_and_preprocessing_saw_training_rows_only(trained: Path) -> None:
    split = _sql(
        trained,
        "SELECT s.split, avg(c.is_defaulted::INT) AS rate, count(*) AS n FROM ml_risk_split s "
        "JOIN customers c USING (customer_id) GROUP BY s.split",
    )
    rates = dict(zip(split.get_column("split"), split.get_column("rate"), strict=True))
    assert set(rates) == {"train", "validation", "test"}
    assert max(rates.values()) - min(rates.values()) < 0.02
    with duckdb.connect(str(trained), read_only=True) as con:
        _, scorer = read_artifact(con, "risk_model")
        feature = scorer.features.numeric[0]
        medians = con.execute(
            f"SELECT quantile_cont({feature}, 0.5) FILTER (s.split = 'train'), quantile_cont({feature}, 0.5) "
            "FROM customers JOIN ml_risk_split s USING (customer_id)"
        ).fetchone()
    pipeline = scorer.reasons.pipeline
    imputer = pipeline.named_steps["prep"].named_transformers_["numeric"].named_steps["impute"]
    assert imputer.statistics_[0] == pytest.approx(medians[0])


@pytest.mark.slow  # trains on the demo bank
def test_scores_follow_the_points_formula_and_grades(trained: Path, tmp_path: Path) -> None:
    scores = _sql(trained, "SELECT pd, score, grade FROM ml_latest_risk_scores")
    card = Scorecard()
    assert np.allclose(scores.get_column("score"), np.round(card.score(scores.get_column("pd").to_numpy()), 1))
    grades = _sql(trained, "SELECT grade, pd_lower, pd_upper, customers FROM ml_risk_grades ORDER BY grade")
    for row in grades.iter_rows(named=True):
        in_grade = scores.filter(pl.col("grade") == row["grade"])
        assert in_grade.height == row["customers"]
        assert (in_grade.get_column("pd") >= row["pd_lower"]).all()
        if row["pd_upper"] is not None:
            assert (in_grade.get_column("pd") < row["pd_upper"]).all()
    # The points scale is settable: 700 points at 30:1, 40 points to double the odds.
    db = tmp_path / "other-scale.duckdb"
    shutil.copyfile(trained, db)
    assert main(["train", "risk", "--db", str(db), "--base-score", "700", "--base-odds", "30", "--pdo", "40"]) == 0
    rescored = _sql(db, "SELECT pd, score FROM ml_latest_risk_scores")
    other = Scorecard(700, 30, 40)
    assert np.allclose(rescored.get_column("score"), np.round(other.score(rescored.get_column("pd").to_numpy()), 1))


def test_reason_texts_quote_the_customers_own_values(trained: Path) -> None:
    with duckdb.connect(str(trained), read_only=True) as con:
        _, scorer = read_artifact(con, "risk_model")
        reasons = con.sql("SELECT * FROM ml_latest_risk_scores JOIN customers USING (customer_id)").pl()
    from models.reasons import value_kind

    checked = 0
    for row in reasons.filter(pl.col("reason_code_1").is_not_null()).head(300).iter_rows(named=True):
        code, text = row["reason_code_1"], row["reason_1"]
        assert text.startswith(label(code)), (code, text)
        kind = value_kind(code, scorer.features)
        if kind not in ("category", "flag") and row[code] is not None:
            assert format_value(float(row[code]), kind) in text, (code, row[code], text)
            assert re.search(r", (above|below) ", text), text
            checked += 1
        elif kind == "flag":
            assert text.endswith(": yes" if row[code] else ": no"), (code, row[code], text)
    assert checked > 50
    # Reasons are ranked: the slots hold different columns.
    both = reasons.filter(pl.col("reason_code_2").is_not_null())
    assert (both.get_column("reason_code_1") != both.get_column("reason_code_2")).all()


def test_reasons_follow_the_data(trained: Path) -> None:
    """Pushing a customer's value of the strongest risk driver far up makes it their first reason."""
    with duckdb.connect(str(trained), read_only=True) as con:
        _, scorer = read_artifact(con, "risk_model")
        customers = con.sql("SELECT * FROM customers ORDER BY customer_id LIMIT 50").pl()
    reasons = scorer.reasons
    numeric = scorer.features.numeric
    main_terms = {column: list(reasons.term_column).index(i) for i, column in enumerate(numeric)}
    column = max(numeric, key=lambda c: reasons.coefficients[main_terms[c]])
    assert reasons.coefficients[main_terms[column]] > 0
    extreme = customers.get_column(column).cast(pl.Float64).max() * 10 + 10
    worse = customers.with_columns(pl.lit(extreme).alias(column))
    before = scorer.score_frame(customers)
    after = scorer.score_frame(worse)
    assert (after.get_column("pd") >= before.get_column("pd") - 1e-9).mean() > 0.9
    assert (after.get_column("reason_code_1") == column).mean() > 0.8
    assert after.get_column("reason_1").str.starts_with(label(column)).mean() > 0.8


def test_one_applicant_scores_like_the_table(trained: Path) -> None:
    """The API's fast path gives the table's PD, grade, reasons and the policy's decision."""
    with duckdb.connect(str(trained), read_only=True) as con:
        _, scorer = read_artifact(con, "risk_model")
        policy = read_policy(con)
        rows = con.sql(
            "SELECT c.*, s.pd AS stored_pd, s.grade AS stored_grade, s.decision AS stored_decision, "
            "s.decision_reason AS stored_reason, s.reason_1 AS stored_reason_1, s.reason_2 AS stored_reason_2, "
            "coalesce(g.manual_underwriting, false) AS flagged "
            "FROM customers c JOIN ml_latest_risk_scores s USING (customer_id) "
            "LEFT JOIN ml_latest_segments g USING (customer_id) ORDER BY customer_id LIMIT 200"
        ).pl()
    assert scorer.fast is not None, "the fast one-applicant path did not match the pipeline"
    for row in rows.iter_rows(named=True):
        result = scorer.score_applicant(row, policy, flagged_persona=row["flagged"])
        assert result["pd"] == pytest.approx(row["stored_pd"], abs=1e-9)
        assert result["grade"] == row["stored_grade"]
        assert (result["reason_1"], result["reason_2"]) == (row["stored_reason_1"], row["stored_reason_2"])
        assert (result["decision"], result["decision_reason"]) == (row["stored_decision"], row["stored_reason"])
    # Unknown categories and missing values still score.
    odd = rows.row(0, named=True) | {c: None for c in scorer.features.numeric[:3]}
    odd |= {c: "never seen" for c in scorer.features.categorical}
    result = scorer.score_applicant(odd)
    assert 0 < result["pd"] < 1
    scorer.fast = None  # the pipeline path gives the same answer
    assert scorer.score_applicant(odd)["pd"] == pytest.approx(result["pd"], abs=1e-9)
    # ... whatever the applicant's key: it typed the key as a number, and a text id (C-00017) failed.
    assert scorer.score_applicant(odd | {"customer_id": "C-00017"})["pd"] == pytest.approx(result["pd"], abs=1e-9)


def _population(score: list[float], pd: list[float], dti: list[float], flagged: list[bool]) -> PolicyPopulation:
    return PolicyPopulation.from_frame(
        pl.DataFrame(
            {
                "customer_id": list(range(len(score))),
                "score": score,
                "pd": pd,
                "loan_amount": [1000.0] * len(score),
                "debt_to_income": dti,
                "persona_name": ["A" if f else "B" for f in flagged],
                "manual_underwriting": flagged,
                "sex": ["female", "male"] * (len(score) // 2),
            }
        )
    )


def test_policy_cutoffs_rules_and_measures_by_hand() -> None:
    population = _population(
        score=[600, 560, 540, 500, 600, 500],
        pd=[0.01, 0.05, 0.1, 0.3, 0.02, 0.4],
        dti=[0.1, 0.2, 0.3, 0.2, 0.9, 0.1],
        flagged=[False, False, False, False, False, True],
    )
    policy = Policy(
        approve_min_score=550,
        decline_below_score=527,
        lgd=0.5,
        rules=[ReviewRule(column="debt_to_income", op=">", value=0.6)],
    )
    decisions = population.decide(policy).tolist()
    # approve, approve, review (band), decline, review (DTI rule), review (flagged persona, even though score 500)
    assert decisions == [0, 0, 1, 2, 1, 1]
    outcome = population.evaluate(policy)
    overall = outcome.overall
    assert overall["automation_rate"] == pytest.approx(3 / 6)
    assert overall["approval_rate"] == pytest.approx(2 / 6)
    assert overall["expected_default_rate_approved"] == pytest.approx((0.01 + 0.05) / 2)
    assert overall["expected_loss_approved"] == pytest.approx((0.01 + 0.05) * 0.5 * 1000)
    by_persona = {row["persona_name"]: row for row in outcome.by_persona}
    assert by_persona["A"]["review_rate"] == 1.0 and by_persona["B"]["customers"] == 5
    sex = {row["group_value"]: row for row in outcome.fairness if row["attribute"] == "sex"}
    # female: customers 0, 2, 4 -> 1 approved of 3; male: 1, 3, 5 -> 1 of 3.
    assert sex["female"]["approval_rate"] == pytest.approx(1 / 3)
    assert sex["male"]["adverse_impact_ratio"] == pytest.approx(1.0)
    # Turning the rules off moves those customers back to their score band.
    relaxed = policy.model_copy(update={"rules": [], "review_flagged_personas": False})
    assert population.decide(relaxed).tolist() == [0, 0, 1, 2, 0, 2]
    with pytest.raises(ValueError, match="must not be above"):
        Policy(approve_min_score=500, decline_below_score=520)


def test_folded_cells_give_what_every_customer_gives_for_whole_point_cutoffs() -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    population = _population(
        score=list(rng.normal(560, 40, n).round(2)),
        pd=list(rng.uniform(0.001, 0.6, n)),
        dti=list(rng.uniform(0, 1.2, n)),
        flagged=list(rng.uniform(size=n) < 0.1),
    )
    rules = [
        ReviewRule(column="debt_to_income", op=">", value=0.6),
        ReviewRule(column="loan_amount", op=">=", value=1000),
    ]
    cells = PolicyCells.fold(population, rules)
    assert len(cells.customers) < n / 4 and cells.customers.sum() == n
    for decline, approve, flagged, enabled in [
        (527, 550, True, (True, False)),
        (480, 620, False, (False, False)),
        (560, 560, True, (True, True)),
        (400, 700, False, (True, False)),
    ]:
        policy = Policy(
            approve_min_score=approve,
            decline_below_score=decline,
            lgd=0.45,
            review_flagged_personas=flagged,
            rules=[rule.model_copy(update={"enabled": on}) for rule, on in zip(rules, enabled, strict=True)],
        )
        overall, by_persona = cells.summarize(policy)
        outcome = population.evaluate(policy)
        assert overall == pytest.approx(outcome.overall, rel=1e-9)
        for folded, exact in zip(by_persona, outcome.by_persona, strict=True):
            assert folded.pop("persona_name") == exact["persona_name"]
            assert folded == pytest.approx({k: v for k, v in exact.items() if k != "persona_name"}, rel=1e-9)
    half_point = Policy(approve_min_score=550.5, decline_below_score=527, rules=rules)
    assert cells.summarize(half_point) is None  # not a whole point: every customer is evaluated instead
    assert cells.summarize(Policy(approve_min_score=550, decline_below_score=527)) is None  # other rules


def test_fairness_flags_a_group_below_four_fifths() -> None:
    population = _population(
        score=[600, 600, 600, 500, 600, 500, 600, 500],
        pd=[0.01] * 8,
        dti=[0.0] * 8,
        flagged=[False] * 8,
    )
    outcome = population.evaluate(Policy())
    sex = {row["group_value"]: row for row in outcome.fairness}
    assert sex["female"]["approval_rate"] == 1.0 and sex["male"]["approval_rate"] == 0.25
    assert sex["male"]["is_flagged"] and not sex["female"]["is_flagged"]


def test_policy_versions_and_explain_on_the_cli(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "policy.duckdb"
    shutil.copyfile(trained, db)
    assert main(["policy", "show", "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "Policy v1" in shown and "All customers" in shown
    automated_before = float(re.search(r"All customers\s+[\d,]+\s+([\d.]+)%", shown).group(1))
    assert (
        main(
            [
                "policy",
                "set",
                "--approve-min",
                "500",
                "--decline-below",
                "400",
                "--review-rule",
                "utilization > 95%",
                "--db",
                str(db),
            ]
        )
        == 0
    )
    changed = capsys.readouterr().out
    assert "Saved policy version 2" in changed
    automated_after = float(re.search(r"All customers\s+[\d,]+\s+([\d.]+)%", changed).group(1))
    assert automated_after != automated_before
    versions = _sql(db, "SELECT policy_version, approve_min_score FROM ml_policies ORDER BY policy_version")
    assert versions.rows() == [(1, 550.0), (2, 500.0)]
    assert main(["policy", "set", "--review-rule", "no_such_column > 1", "--db", str(db)]) == 2
    assert "no column 'no_such_column'" in capsys.readouterr().err
    ids = _sql(db, "SELECT customer_id FROM ml_latest_risk_scores WHERE reason_1 IS NOT NULL ORDER BY pd DESC LIMIT 3")
    assert main(["policy", "explain", *map(str, ids.get_column("customer_id")), "--db", str(db)]) == 0
    explained = capsys.readouterr().out
    assert explained.count("Customer ") == 3 and explained.count("  - ") >= 3


def test_warnings_ids_are_stable_and_thresholds_settable(trained: Path, tmp_path: Path) -> None:
    db = tmp_path / "warnings.duckdb"
    shutil.copyfile(trained, db)
    first = _sql(db, "SELECT alert_id, rule, value, threshold, severity FROM ml_latest_alerts ORDER BY alert_id")
    assert first.height > 0
    assert first.get_column("alert_id").is_unique().all()
    assert (first.get_column("value") > first.get_column("threshold") - 1e-9).all()
    train_warnings(db)
    again = _sql(db, "SELECT alert_id FROM ml_latest_alerts ORDER BY alert_id")
    assert again.get_column("alert_id").to_list() == first.get_column("alert_id").to_list()
    lower = train_warnings(db, thresholds={"high_utilization": 0.5})
    counts = _sql(db, "SELECT rule, count(*) AS n FROM ml_latest_alerts GROUP BY rule")
    utilization = dict(counts.rows()).get("high_utilization", 0)
    assert utilization > first.filter(pl.col("rule") == "high_utilization").height
    assert lower.metrics["alerts_by_rule"]["high_utilization"] == utilization
    with pytest.raises(ModelError, match="unknown early-warning rule 'nope'"):
        train_warnings(db, thresholds={"nope": 1})
    stability_rows = _sql(db, "SELECT variable, psi, status FROM ml_stability")
    assert "score" in set(stability_rows.get_column("variable"))
    assert set(stability_rows.get_column("status")) <= {"green", "amber", "red"}


def test_grade_worsening_alerts_after_the_data_changes(trained: Path, tmp_path: Path) -> None:
    """Customers whose delinquency jumps fall two grades or more, and the next warnings run says so."""
    db = tmp_path / "worse.duckdb"
    shutil.copyfile(trained, db)
    with duckdb.connect(str(db)) as con:
        con.execute(
            "UPDATE customers SET latest_days_past_due = 120, max_days_past_due = 120, "
            "periods_past_due = 12 WHERE customer_id % 3 = 0"
        )
    run = train_warnings(db)
    worsened = _sql(db, "SELECT customer_id, value FROM ml_latest_alerts WHERE rule = 'grade_worsening'")
    assert run.metrics["alerts_by_rule"]["grade_worsening"] == worsened.height > 0
    assert (worsened.get_column("customer_id") % 3 == 0).all()
    assert (worsened.get_column("value") >= 2).all()
    psi = _sql(db, "SELECT psi FROM ml_stability WHERE variable = 'score' ORDER BY run_id").get_column("psi")
    assert psi[0] < 0.1  # today's book against its own training part: stable
    assert psi[-1] > 0.1  # a third of the book turning delinquent moves the score distribution


def test_cross_sell_respects_risk(trained: Path) -> None:
    blocked = _sql(
        trained,
        "SELECT r.customer_id, r.product, r.is_credit_offer, s.grade FROM ml_recommendations r "
        "JOIN ml_latest_risk_scores s USING (customer_id) WHERE s.grade IN ('D', 'E') AND r.is_credit_offer",
    )
    assert blocked.height == 0
    alerted = _sql(
        trained,
        "SELECT count(*) FROM ml_recommendations r JOIN ml_latest_alerts a USING (customer_id) "
        "WHERE r.is_credit_offer AND r.run_id = (SELECT max(run_id) FROM ml_recommendations)",
    ).item()
    assert alerted == 0


def test_refuses_without_target_or_model(build: Builder) -> None:
    db = build("online-retail", FIXTURES).db_path
    with pytest.raises(ModelError, match="cannot run"):
        train_risk(db)
    with pytest.raises(ModelError, match="need a PD model"):
        train_warnings(db)


# ----------------------------------------------------------------------------- quality on held-out data


def _champion(db: Path) -> dict[str, float]:
    rows = _sql(db, "SELECT metric, value FROM ml_risk_metrics WHERE role = 'champion'")
    return dict(rows.rows())


def _assert_calibrated_and_monotone(db: Path) -> None:
    metrics = _champion(db)
    assert metrics["brier"] < metrics["brier_base_rate"]
    # A grade holding a handful of customers has no measurable default rate (one default in 32
    # is 3%): the order is checked on grades holding at least 2% of the book.
    grades = _sql(db, "SELECT observed_default_rate FROM ml_risk_grades WHERE share >= 0.02 ORDER BY grade")
    assert len(grades) >= 3
    rates = grades.get_column("observed_default_rate").to_list()
    assert rates == sorted(rates), rates


@pytest.mark.slow  # trains on the demo bank
def test_synthetic_bank_is_near_the_best_achievable_auc(tmp_path: Path, build: Builder) -> None:
    data = tmp_path / "bank"
    summary = generate_bank(30_000, 11, data)
    db = build("demo", data).db_path
    train_segments(db, seed=42)
    train_risk(db, seed=42)
    metrics = _champion(db)
    assert abs(metrics["roc_auc"] - summary["best_auc"]) <= 0.02, (metrics["roc_auc"], summary["best_auc"])
    _assert_calibrated_and_monotone(db)


@needs_shared_data
def test_taiwan_reaches_published_auc(build: Builder) -> None:
    db = build("taiwan-default", SHARED_DATA).db_path
    train_risk(db, seed=42)
    assert _champion(db)["roc_auc"] >= 0.77
    _assert_calibrated_and_monotone(db)


@needs_shared_data
def test_german_credit_cross_validated_auc(build: Builder) -> None:
    db = build("german-credit", SHARED_DATA).db_path
    train_risk(db, seed=42)
    metrics = _champion(db)
    assert metrics["cv_auc"] >= 0.75
    assert metrics["brier"] < metrics["brier_base_rate"]


def test_values_read_in_their_own_units() -> None:
    from models.reasons import value_kind
    from models.risk import FeatureSet

    features = FeatureSet(numeric=[], skewed=["loan_amount"], categorical=["purpose"], amounts=("loan_amount",))
    kinds = {
        column: value_kind(column, features)
        for column in (
            "duration_months",
            "debt_to_income",
            "latest_utilization",
            "payment_to_bill_ratio",
            "latest_days_past_due",
            "loan_amount",
            "purpose",
            "has_mortgage",
            "age",
        )
    }
    assert kinds == {
        "duration_months": "number",  # 'ratio' inside 'duration' is not a share
        "debt_to_income": "percent",
        "latest_utilization": "percent",
        "payment_to_bill_ratio": "percent",
        "latest_days_past_due": "days",
        "loan_amount": "amount",
        "purpose": "category",
        "has_mortgage": "flag",
        "age": "number",
    }
    shown = [format_value(v, k) for v, k in ((0.724, "percent"), (12345.0, "amount"), (45.0, "days"), (1.0, "flag"))]
    assert shown == ["72%", "12.3k", "45 days", "yes"]

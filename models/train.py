"""Training entry points: read the customers mart, fit, and write the run back atomically."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl

from warehouse.app_state import MAX_PERSONA_NAME, MAX_PERSONA_STRATEGY, persona_text
from warehouse.db import read_only
from warehouse.features import TARGET
from warehouse.marts import product_flag_columns

from . import risk_store as store
from . import warnings_store
from .cross_sell import run_cross_sell, write_cross_sell
from .early_warnings import baseline_bins, grade_steps, raise_alerts, rules_with_thresholds, stability
from .policy import PolicyPopulation, decision_reason
from .reasons import ReasonModel
from .rfm import fit_rfm, write_rfm
from .risk import RiskSettings, fit_risk_model
from .risk_store import ensure_saved, read_policy
from .runs import ModelError, ModelRun, build_of, fingerprint, write_back
from .scorecard import DEFAULT_GRADES, Scorecard
from .scoring import DECISION_NAMES, RiskScorer
from .segments import K_RANGE, fit_segments
from .segments_store import previous_segments, set_label, write_segments
from .statistics import run_statistics, write_statistics
from .warehouse_io import latest_personas, latest_run_id, read_customers

Progress = Callable[[str], None]


def _supported(db_path: Path, capability: str) -> tuple[bool, str]:
    with read_only(db_path) as con:
        row = con.execute(
            "SELECT is_supported, reason FROM meta_capabilities WHERE capability = ?", [capability]
        ).fetchall()
    return (bool(row[0][0]), row[0][1]) if row else (False, "the warehouse records no capabilities")


def train_rfm(db_path: Path, seed: int = 42, progress: Progress | None = None, as_of: date | None = None) -> ModelRun:
    """RFM scores, named segments and K-Means clusters for every customer with transactions.

    Recency is counted to ``as_of``; by default the build's as-of date, the day after the last
    transaction in the data.
    """
    say = progress or (lambda _message: None)
    supported, reason = _supported(db_path, "rfm")
    if not supported:
        raise ModelError(f"RFM cannot run on {db_path}: it {reason}.")
    with read_only(db_path) as con:
        build = build_of(con)  # checked again under the write lock: a rebuild meanwhile refuses
        customers = con.sql(
            "SELECT customer_id, rfm_recency_days, rfm_frequency, rfm_monetary, last_txn_at FROM customers ORDER BY customer_id"
        ).pl()
        (build_as_of,) = con.execute("SELECT as_of_date FROM meta_builds").fetchone() or (None,)
    if as_of is not None:
        last = customers.get_column("last_txn_at").max()
        if last is not None and as_of <= last.date():
            raise ModelError(f"--as-of must be after the last transaction ({last.date()}), got {as_of}.")
        customers = customers.with_columns(
            (pl.lit(as_of) - pl.col("last_txn_at").dt.date()).dt.total_days().alias("rfm_recency_days")
        )
    customers = customers.drop("last_txn_at")
    run = ModelRun(
        "rfm",
        {"seed": seed, "clusters": 4, "transform": "log1p + StandardScaler", "as_of": str(as_of or build_as_of)},
    )
    run.input_fingerprint, run.input_rows = fingerprint(customers), customers.height
    say(f"rfm: scoring and clustering {customers.height:,} customers")
    scored, clusters, metrics = fit_rfm(customers, seed)
    run.metrics = metrics

    def write(con) -> None:  # noqa: ANN001 - a DuckDB connection
        write_rfm(con, run.run_id, scored, clusters)
        run.record(con)

    write_back(db_path, write, fitted_on_build=build)
    say(
        f"rfm: run {run.run_id} written ({metrics['customers']:,} customers, silhouette {metrics['silhouette_sample']:.3f})"
    )
    return run


def train_segments(db_path: Path, seed: int = 42, k: int | None = None, progress: Progress | None = None) -> ModelRun:
    """K-Means personas over the customers mart, named, profiled and written back with the run id."""
    say = progress or (lambda _message: None)
    supported, reason = _supported(db_path, "personas")
    if not supported:
        raise ModelError(f"Personas cannot run on {db_path}: it {reason}.")
    if k is not None and not 2 <= k <= 12:
        raise ModelError(f"--k must be between 2 and 12, got {k}.")
    with read_only(db_path) as con:
        build = build_of(con)  # checked again under the write lock: a rebuild meanwhile refuses
        customers = read_customers(con)
        meta = con.sql("SELECT * FROM meta_columns").pl()
        previous = previous_segments(con)
    run = ModelRun("segments", {"seed": seed, "k": k, "k_range": [min(K_RANGE), max(K_RANGE)]})
    run.input_fingerprint, run.input_rows = fingerprint(customers), customers.height
    say(f"segments: choosing k over {min(K_RANGE)}..{max(K_RANGE)} for {customers.height:,} customers")
    try:
        result = fit_segments(customers, meta, seed=seed, k=k, previous=previous)
    except ValueError as exc:
        raise ModelError(f"Personas cannot run on {db_path}: {exc}.") from exc
    run.metrics = result.metrics | {"silhouette": next(r["silhouette"] for r in result.k_table if r["is_chosen"])}
    say(f"segments: k = {result.k}; writing {customers.height:,} assignments")

    def write(con) -> None:  # noqa: ANN001 - a DuckDB connection
        write_segments(con, run.run_id, customers.get_column("customer_id"), result)
        run.record(con)

    write_back(db_path, write, fitted_on_build=build)
    names = ", ".join(result.summary.get_column("persona_name").to_list())
    say(f"segments: run {run.run_id} written: {names}")
    return run


def set_persona_label(db_path: Path, segment_key: str, *, name: str | None = None, strategy: str | None = None) -> None:
    """Rename a persona or set its strategy, atomically, kept across re-runs.

    The same limits and cleaning as the dashboard's store (length caps, no control characters or
    ``<``/``>``): a name from the command line reaches the same charts and PDFs.
    """
    try:
        name = None if name is None else persona_text(name, "name", MAX_PERSONA_NAME)
        strategy = None if strategy is None else persona_text(strategy, "strategy", MAX_PERSONA_STRATEGY)
    except ValueError as exc:
        raise ModelError(f"Not saved: {exc}.") from exc

    def write(con) -> None:  # noqa: ANN001 - a DuckDB connection
        try:
            set_label(con, segment_key, name=name, strategy=strategy)
        except LookupError as exc:
            raise ModelError(f"{exc}.") from exc

    write_back(db_path, write)


def list_personas(db_path: Path) -> list[tuple]:
    """(segment_key, persona_name, customers, share, strategy) of the latest segments run."""
    with read_only(db_path) as con:
        exists = con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = 'ml_latest_segment_summary'"
        ).fetchall()
        if not exists[0][0]:
            raise ModelError(f"No personas in {db_path} yet: run `segrisk train segments` first.")
        return con.execute(
            "SELECT segment_key, persona_name, customers, share, description, strategy "
            "FROM ml_latest_segment_summary ORDER BY segment_id"
        ).fetchall()


# ----------------------------------------------------------------------------- credit risk


def policy_population(customers: pl.DataFrame, scored: pl.DataFrame, personas: pl.DataFrame | None) -> PolicyPopulation:
    """The arrays a policy is evaluated on: scores joined to the customer columns and personas."""
    frame = scored.select("customer_id", "pd", "score").join(
        customers, on="customer_id", how="left", maintain_order="left"
    )
    if personas is not None:
        frame = frame.join(
            personas.select("customer_id", "persona_name", "manual_underwriting"),
            on="customer_id",
            how="left",
            maintain_order="left",
        )
    return PolicyPopulation.from_frame(frame)


def _grade_table(
    scored: pl.DataFrame, customers: pl.DataFrame, split: pl.DataFrame, scorecard: Scorecard, grades
) -> pl.DataFrame:
    outcomes = (
        scored.select("customer_id", "grade", "pd")
        .join(customers.select("customer_id", TARGET), on="customer_id", how="left")
        .join(split, on="customer_id", how="left")
    )
    stats = outcomes.group_by("grade").agg(
        pl.len().alias("customers"),
        pl.col("pd").mean().alias("mean_pd"),
        pl.col(TARGET).sum().cast(pl.Int64).alias("defaults"),
        pl.col(TARGET).mean().alias("observed_default_rate"),
        (pl.col("split") == "test").sum().cast(pl.Int64).alias("test_customers"),
        pl.col(TARGET).filter(pl.col("split") == "test").mean().alias("test_default_rate"),
    )
    bounds = []
    for i, (name, lower) in enumerate(grades):
        upper = grades[i + 1][1] if i + 1 < len(grades) else None
        bounds.append(
            {
                "grade": name,
                "pd_lower": lower,
                "pd_upper": upper,
                "score_lower": None if upper is None else round(float(scorecard.score(upper)), 1),
                "score_upper": None if lower == 0 else round(float(scorecard.score(lower)), 1),
            }
        )
    table = pl.DataFrame(
        bounds, schema_overrides={"pd_upper": pl.Float64, "score_lower": pl.Float64, "score_upper": pl.Float64}
    )
    return (
        table.join(stats, on="grade", how="left", maintain_order="left")
        .with_columns(pl.col("customers", "defaults", "test_customers").fill_null(0))
        .with_columns((pl.col("customers") / scored.height).alias("share"))
    )


def train_risk(
    db_path: Path,
    seed: int = 42,
    progress: Progress | None = None,
    scorecard: Scorecard | None = None,
    grades: tuple[tuple[str, float], ...] = DEFAULT_GRADES,
) -> ModelRun:
    """PD champion and challenger, scorecard points, grades, reasons and the policy's decisions."""
    say = progress or (lambda _message: None)
    scorecard = scorecard or Scorecard()
    supported, reason = _supported(db_path, "risk_model")
    if not supported:
        raise ModelError(f"A PD model cannot run on {db_path}: it {reason}.")
    with read_only(db_path) as con:
        build = build_of(con)  # checked again under the write lock: a rebuild meanwhile refuses
        customers = read_customers(con)
        meta = con.sql("SELECT * FROM meta_columns").pl()
        personas = latest_personas(con)
        policy = read_policy(con)
    settings = RiskSettings(seed=seed)
    run = ModelRun(
        "risk",
        {
            "seed": seed,
            "scorecard": {
                "base_score": scorecard.base_score,
                "base_odds": scorecard.base_odds,
                "points_to_double_odds": scorecard.points_to_double_odds,
            },
            "grades": dict(grades),
            "settings": {k: v for k, v in settings.__dict__.items() if k != "seed"},
        },
    )
    run.input_fingerprint, run.input_rows = fingerprint(customers), customers.height
    try:
        result = fit_risk_model(customers, meta, settings, say)
        reasons = ReasonModel.fit(result.reason_model, result.features, result.train_input)
    except ValueError as exc:
        raise ModelError(f"A PD model cannot run on {db_path}: {exc}.") from exc
    scorer = RiskScorer(run.run_id, result.champion.calibrated, reasons, result.features, scorecard, grades)
    fast_applicants = scorer.prepare_applicants(customers.sample(min(500, customers.height), seed=seed))
    say(f"risk: scoring {customers.height:,} customers with reasons")
    scored = scorer.score_frame(customers)
    population = policy_population(customers, scored, personas)
    outcome = population.evaluate(policy)
    scores = scored.with_columns(
        pl.Series("decision", DECISION_NAMES[outcome.decision]),
        pl.Series("decision_reason", decision_reason(population, policy), dtype=pl.String),
        pl.lit(policy.version).alias("policy_version"),
    )
    grade_table = _grade_table(scored, customers, result.split, scorecard, grades)
    train_ids = result.split.filter(pl.col("split") == "train").select("customer_id")
    training_rows = (
        customers.join(train_ids, on="customer_id")
        .select("customer_id", *result.features.numeric_columns)
        .join(scored.select("customer_id", "score"), on="customer_id")
    )
    baseline = baseline_bins(training_rows, [*result.features.numeric_columns, "score"])
    champion, challenger = result.champion, result.challenger
    run.metrics = {
        "champion": champion.candidate.family,
        "imbalance": champion.candidate.imbalance,
        "calibration": champion.calibration,
        "features": len(result.features.columns),
        **{k: champion.metrics[k] for k in ("roc_auc", "gini", "ks", "brier", "brier_base_rate", "log_loss", "cv_auc")},
        "challenger_roc_auc": challenger.metrics["roc_auc"],
        "fast_applicant_path": fast_applicants,
        "policy_version": policy.version,
        **{k: outcome.overall[k] for k in ("automation_rate", "approval_rate", "review_rate", "decline_rate")},
        "expected_default_rate_approved": outcome.overall["expected_default_rate_approved"],
        "expected_loss_approved": outcome.overall["expected_loss_approved"],
    }

    def write(con) -> None:  # noqa: ANN001 - a DuckDB connection
        saved = ensure_saved(con, policy)
        decided = scores.with_columns(pl.lit(saved.version).alias("policy_version"))
        store.write_risk_run(con, run.run_id, result, decided, grade_table, baseline, outcome, saved)
        store.write_artifact(con, run.run_id, "risk_model", scorer)
        run.record(con)
        store.write_latest_views(con)

    write_back(db_path, write, fitted_on_build=build)
    say(
        f"risk: run {run.run_id} written: champion {champion.candidate.family} test AUC {champion.metrics['roc_auc']:.3f}, "
        f"automation {outcome.overall['automation_rate']:.1%}"
    )
    return run


def _load_scorer(con, db_path: Path) -> RiskScorer:  # noqa: ANN001 - a DuckDB connection
    try:
        return store.read_artifact(con, "risk_model")[1]
    except LookupError as exc:
        raise ModelError(f"No PD model in {db_path} yet: run `segrisk train risk` first.") from exc


def train_warnings(
    db_path: Path, thresholds: dict[str, float] | None = None, progress: Progress | None = None
) -> ModelRun:
    """Early-warning alerts on the latest period, and population stability against the PD model's training data.

    The latest stored PD model re-scores today's customers, so after a rebuild on new data the
    score's PSI and the grade changes show drift without retraining.
    """
    say = progress or (lambda _message: None)
    try:
        rules = rules_with_thresholds(thresholds)
    except ValueError as exc:
        raise ModelError(f"{exc}.") from exc
    with read_only(db_path) as con:
        build = build_of(con)  # checked again under the write lock: a rebuild meanwhile refuses
        risk_run = latest_run_id(con, "risk")
        if risk_run is None:
            raise ModelError(f"Early warnings need a PD model: run `segrisk train risk` on {db_path} first.")
        customers = read_customers(con)
        scorer = _load_scorer(con, db_path)
        baseline = con.sql("SELECT * FROM ml_psi_baseline WHERE run_id = ?", params=[risk_run]).pl()
        previous_warnings = latest_run_id(con, "warnings")
        previous_grades = (
            con.sql("SELECT customer_id, grade FROM ml_alert_grades WHERE run_id = ?", params=[previous_warnings]).pl()
            if previous_warnings
            else con.sql("SELECT customer_id, grade FROM ml_risk_scores WHERE run_id = ?", params=[risk_run]).pl()
        )
        (as_of,) = con.execute("SELECT as_of_date FROM meta_builds").fetchone()
    run = ModelRun("warnings", {"risk_run_id": risk_run, "thresholds": {r.key: r.threshold for r in rules}})
    run.input_fingerprint, run.input_rows = fingerprint(customers), customers.height
    say(f"warnings: re-scoring {customers.height:,} customers with the PD model of run {risk_run}")
    try:
        scored = scorer.score_frame(customers)
    except ValueError as exc:
        raise ModelError(f"The PD model of run {risk_run} cannot score this warehouse: {exc}.") from exc
    grade_names = [name for name, _ in scorer.grades]
    steps = grade_steps(previous_grades, scored, grade_names)
    inputs = customers.join(steps, on="customer_id", how="left")
    alerts, coverage = raise_alerts(inputs, rules, as_of)
    stability_rows = stability(baseline, customers.join(scored.select("customer_id", "score"), on="customer_id"))
    run.metrics = {
        "alerts": alerts.height,
        "customers_with_alerts": alerts.get_column("customer_id").n_unique() if alerts.height else 0,
        "alerts_by_rule": {row["rule"]: row["alerts"] for row in coverage},
        "rules_not_run": [row["rule"] for row in coverage if row["status"] != "run"],
        "psi_score": next((r["psi"] for r in stability_rows.iter_rows(named=True) if r["variable"] == "score"), None),
        "psi_red": stability_rows.filter(pl.col("status") == "red").get_column("variable").to_list(),
        "psi_amber": stability_rows.filter(pl.col("status") == "amber").get_column("variable").to_list(),
    }

    def write(con) -> None:  # noqa: ANN001 - a DuckDB connection
        warnings_store.write_warnings(
            con, run.run_id, alerts, pl.DataFrame(coverage), stability_rows, scored.select("customer_id", "grade")
        )
        run.record(con)
        warnings_store.write_latest_views(con)

    write_back(db_path, write, fitted_on_build=build)
    by_rule = ", ".join(f"{rule} {count:,}" for rule, count in run.metrics["alerts_by_rule"].items())
    say(f"warnings: run {run.run_id} written: {alerts.height:,} alerts ({by_rule})")
    return run


def train_cross_sell(db_path: Path, progress: Progress | None = None) -> ModelRun:
    """Product penetration by persona and next-best products, gated by risk grade and open alerts."""
    say = progress or (lambda _message: None)
    supported, reason = _supported(db_path, "cross_sell")
    if not supported:
        raise ModelError(f"Cross-sell cannot run on {db_path}: it {reason}.")
    with read_only(db_path) as con:
        build = build_of(con)  # checked again under the write lock: a rebuild meanwhile refuses
        personas = latest_personas(con)
        if personas is None:
            raise ModelError(f"Cross-sell needs personas: run `segrisk train segments` on {db_path} first.")
        customers = read_customers(con)
        # Only declared product flags: a has_records derogatory flag is no product to offer.
        products = set(product_flag_columns(con))
        customers = customers.drop([c for c in customers.columns if c.startswith("has_") and c not in products])
        risk_run, warnings_run = latest_run_id(con, "risk"), latest_run_id(con, "warnings")
        risk = (
            con.sql("SELECT customer_id, grade, pd FROM ml_risk_scores WHERE run_id = ?", params=[risk_run]).pl()
            if risk_run
            else None
        )
        open_alerts = (
            con.sql(
                "SELECT DISTINCT customer_id FROM ml_latest_alerts WHERE run_id = ? AND NOT is_acknowledged",
                params=[warnings_run],
            ).pl()
            if warnings_run
            else None
        )
    run = ModelRun(
        "cross_sell", {"risk_run_id": risk_run, "warnings_run_id": warnings_run, "blocked_grades": ["D", "E"]}
    )
    run.input_fingerprint, run.input_rows = fingerprint(customers), customers.height
    say(f"cross-sell: recommending products to {customers.height:,} customers")
    result = run_cross_sell(customers, personas, risk, open_alerts)
    run.metrics = result.metrics

    def write(con) -> None:  # noqa: ANN001 - a DuckDB connection
        write_cross_sell(con, run.run_id, result.penetration, result.recommendations, result.mix, result.withheld)
        run.record(con)

    write_back(db_path, write, fitted_on_build=build)
    say(
        f"cross-sell: run {run.run_id} written: {result.metrics['offers']:,} offers to "
        f"{result.metrics['customers_with_offer']:,} customers"
    )
    return run


def train_statistics(db_path: Path, alpha: float = 0.05, seed: int = 42, progress: Progress | None = None) -> ModelRun:
    """The statistical tests of the risk analysis, with corrected p-values and plain-words conclusions."""
    say = progress or (lambda _message: None)
    if not 0 < alpha < 0.5:
        raise ModelError(f"--alpha must be between 0 and 0.5, got {alpha}.")
    with read_only(db_path) as con:
        build = build_of(con)  # checked again under the write lock: a rebuild meanwhile refuses
        customers = read_customers(con)
        meta = con.sql("SELECT * FROM meta_columns").pl()
        personas = latest_personas(con)
    run = ModelRun("statistics", {"alpha": alpha, "seed": seed})
    run.input_fingerprint, run.input_rows = fingerprint(customers), customers.height
    say(f"statistics: testing {customers.height:,} customers")
    try:
        result = run_statistics(customers, meta, personas, alpha=alpha, seed=seed)
    except ValueError as exc:
        raise ModelError(f"Statistics cannot run on {db_path}: {exc}.") from exc
    run.metrics = result.metrics | {"reading": result.reading}

    def write(con) -> None:  # noqa: ANN001 - a DuckDB connection
        write_statistics(con, run.run_id, result)
        run.record(con)

    write_back(db_path, write, fitted_on_build=build)
    say(
        f"statistics: run {run.run_id} written: {result.metrics['tests']} tests, "
        f"{result.metrics['significant']} significant after correction"
    )
    return run

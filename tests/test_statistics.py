"""Statistical tests: each function against a known answer, and a whole run written to a real warehouse."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from scipy import stats

from models.statistics import (
    OUTLIERS_COMMENTS,
    OUTLIERS_GRAIN,
    TESTS_COMMENTS,
    TESTS_GRAIN,
    adjust_p_values,
    anova,
    bootstrap_mean_ci,
    chi_square,
    outlier_flags,
    permutation_test_means,
    permutation_test_means_by_column,
    power_two_sample,
    run_statistics,
    type_errors_reading,
    welch_t_test,
    write_statistics,
)
from warehouse.db import connect_for_build
from warehouse.dictionary import missing_comments

TESTS_COLUMNS = [
    "test",
    "variable",
    "comparison",
    "statistic",
    "p_value",
    "p_adjusted",
    "correction",
    "effect_size",
    "effect_size_name",
    "ci_low",
    "ci_high",
    "n",
    "is_significant",
    "alpha",
    "conclusion",
]
OUTLIERS_COLUMNS = ["customer_id", "variable", "value", "z_score", "is_z_outlier", "is_iqr_outlier"]


def shifted_normals(shift: float, n_a: int, n_b: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(shift, 1.0, n_a), rng.normal(0.0, 1.0, n_b)


def test_welch_finds_a_known_shift_and_its_size() -> None:
    defaulters, others = shifted_normals(0.5, 2_000, 3_000, seed=1)
    result = welch_t_test(defaulters, others)
    assert result.p_value < 0.001
    assert result.effect_size_name == "Hedges g"
    assert result.effect_size == pytest.approx(0.5, abs=0.08)
    assert result.n == 5_000 and result.mean_a > result.mean_b


def test_welch_matches_scipy_and_drops_missing_values() -> None:
    defaulters, others = shifted_normals(0.3, 200, 300, seed=2)
    with_gaps = np.concatenate([defaulters, [np.nan, np.inf]])
    result = welch_t_test(with_gaps, list(others) + [None])
    reference = stats.ttest_ind(defaulters, others, equal_var=False)
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert (result.n_a, result.n_b) == (200, 300)


def test_welch_on_identical_distributions_is_rarely_significant() -> None:
    p_values = [welch_t_test(*shifted_normals(0.0, 200, 200, seed=seed)).p_value for seed in range(200)]
    false_alarms = np.mean(np.array(p_values) < 0.05)
    assert false_alarms < 0.1  # about 5% expected


def test_welch_needs_two_values_per_group() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        welch_t_test([1.0, np.nan], [1.0, 2.0, 3.0])


def test_permutation_test_detects_a_shift_and_not_noise() -> None:
    defaulters, others = shifted_normals(0.4, 500, 800, seed=3)
    shifted = permutation_test_means(defaulters, others, seed=5)
    assert shifted.p_value < 0.01
    assert shifted.effect_size_name == "difference in means"
    assert shifted.statistic == pytest.approx(defaulters.mean() - others.mean())
    same = permutation_test_means(*shifted_normals(0.0, 500, 800, seed=4), seed=5)
    assert same.p_value > 0.05


def test_permutation_test_equals_scipy_on_the_raw_values() -> None:
    """The shared-shuffle statistic must give scipy's own answer, exact (tiny groups) and random."""
    tiny_a, tiny_b = np.array([1.0, 2.5, 3.0, 4.2]), np.array([2.0, 5.0, 6.1, 7.0, 8.3])

    def difference(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
        return x.mean(axis=axis) - y.mean(axis=axis)

    exact = stats.permutation_test((tiny_a, tiny_b), difference, vectorized=True, n_resamples=2_000)
    assert permutation_test_means(tiny_a, tiny_b).p_value == pytest.approx(exact.pvalue)
    a, b = shifted_normals(0.2, 300, 400, seed=6)
    randomised = stats.permutation_test(
        (a, b), difference, vectorized=True, n_resamples=2_000, rng=np.random.default_rng(9)
    )
    assert permutation_test_means(a, b, seed=9).p_value == pytest.approx(randomised.pvalue)


def test_permutation_test_subsamples_large_groups_reproducibly() -> None:
    a, b = shifted_normals(0.1, 20_000, 30_000, seed=7)
    first = permutation_test_means(a, b, n_resamples=500, seed=11)
    assert (first.n_a, first.n_b, first.n) == (5_000, 5_000, 10_000)
    assert permutation_test_means(a, b, n_resamples=500, seed=11) == first


def test_permutation_by_column_ignores_missing_values_per_column() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.normal(1.0, 1.0, (300, 2)), rng.normal(0.0, 1.0, (300, 2))
    a[:100, 1] = np.nan
    results = permutation_test_means_by_column(a, b, n_resamples=500, seed=1)
    assert [r.n_a for r in results] == [300, 200]
    assert results[1].mean_a == pytest.approx(np.nanmean(a[:, 1]))
    assert all(r.p_value < 0.01 for r in results)
    empty = a.copy()
    empty[:, 0] = np.nan
    assert np.isnan(permutation_test_means_by_column(empty, b, n_resamples=200)[0].p_value)


def test_chi_square_on_independent_labels_has_a_small_v() -> None:
    rng = np.random.default_rng(10)
    region = rng.choice(["North", "South", "East"], 5_000)
    defaulted = rng.random(5_000) < 0.1
    result = chi_square(region, defaulted)
    assert result.effect_size_name == "Cramér's V"
    assert result.effect_size < 0.05
    assert result.p_value > 0.01
    reference = stats.chi2_contingency(result.table, correction=False)
    assert result.statistic == pytest.approx(reference.statistic)


def test_chi_square_on_dependent_labels_has_a_large_v_and_drops_missing_labels() -> None:
    rng = np.random.default_rng(11)
    band = rng.choice(["young", "middle", "old"], 3_000)
    risky = np.where(band == "young", rng.random(3_000) < 0.9, rng.random(3_000) < 0.05)
    labels = band.astype(object)
    labels[:10] = None
    result = chi_square(labels, risky)
    assert result.p_value < 0.001
    assert result.effect_size > 0.5
    assert result.n == 2_990
    assert result.row_labels == ("middle", "old", "young")


def test_chi_square_needs_two_levels() -> None:
    with pytest.raises(ValueError, match="two levels"):
        chi_square(["a", "a", "a"], [True, False, True])


def test_anova_detects_a_shifted_group() -> None:
    rng = np.random.default_rng(12)
    groups = np.repeat(["A", "B", "C"], 400)
    values = rng.normal(0.0, 1.0, 1_200) + np.where(groups == "C", 1.0, 0.0)
    result = anova(values, groups)
    reference = stats.f_oneway(values[:400], values[400:800], values[800:])
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.p_value < 0.001
    grand = values.mean()
    between = sum(400 * (values[groups == g].mean() - grand) ** 2 for g in "ABC")
    assert result.effect_size == pytest.approx(between / ((values - grand) ** 2).sum())
    assert result.effect_size > 0.1
    assert result.group_labels == ("A", "B", "C")
    flat = anova(rng.normal(size=1_200), groups)
    assert flat.p_value > 0.05 and flat.effect_size < 0.01


def test_adjusted_p_values_are_never_below_raw_and_keep_their_order() -> None:
    raw = np.array([0.001, 0.04, 0.03, 0.5, 0.01, np.nan, 0.2])
    adjusted = adjust_p_values(raw)
    valid = ~np.isnan(raw)
    for corrected in (adjusted.benjamini_hochberg, adjusted.holm):
        assert np.isnan(corrected[~valid]).all()
        assert (corrected[valid] >= raw[valid]).all() and (corrected[valid] <= 1).all()
        order = np.argsort(raw[valid])
        assert (np.diff(corrected[valid][order]) >= 0).all()
    assert (adjusted.holm[valid] >= adjusted.benjamini_hochberg[valid]).all()
    assert adjusted.benjamini_hochberg[valid] == pytest.approx(stats.false_discovery_control(raw[valid]))
    assert adjusted.holm[0] == pytest.approx(0.001 * 6)


def test_outlier_flags_catch_planted_outliers() -> None:
    rng = np.random.default_rng(13)
    values = rng.normal(100.0, 10.0, 2_000)
    values[[5, 500]] = [400.0, -250.0]
    values[7] = np.nan
    flags = outlier_flags(values)
    assert flags.is_z_outlier[[5, 500]].all() and flags.is_iqr_outlier[[5, 500]].all()
    assert not flags.is_z_outlier[7] and not flags.is_iqr_outlier[7] and np.isnan(flags.z_scores[7])
    assert flags.is_z_outlier.sum() <= 10 and flags.is_iqr_outlier.sum() <= 40
    assert flags.lower_fence < 100 < flags.upper_fence


def test_outlier_flags_skip_the_iqr_rule_when_most_values_are_equal() -> None:
    values = np.zeros(1_000)
    values[:20] = np.arange(1, 21)
    flags = outlier_flags(values)
    assert not flags.is_iqr_outlier.any()
    assert flags.is_z_outlier[:20].any()
    assert not outlier_flags(np.ones(50)).is_z_outlier.any()


def test_bootstrap_interval_covers_the_true_mean() -> None:
    covered = 0
    for seed in range(20):
        values = np.random.default_rng(seed).lognormal(3.0, 0.5, 400)
        result = bootstrap_mean_ci(values, n_resamples=1_000, seed=seed)
        assert result.low < result.mean < result.high and result.method == "BCa"
        covered += result.low <= np.exp(3.0 + 0.5**2 / 2) <= result.high
    assert covered >= 16  # 19 expected at 95%


def test_bootstrap_drops_missing_values_and_samples_large_inputs() -> None:
    small = bootstrap_mean_ci([1.0, 2.0, np.nan, 3.0, None, 4.0], n_resamples=500)
    assert small.n == small.n_total == 4 and small.mean == pytest.approx(2.5)
    large = np.random.default_rng(14).normal(50.0, 5.0, 120_000)
    result = bootstrap_mean_ci(large, n_resamples=500, seed=3)
    assert (result.n, result.n_total, result.method) == (50_000, 120_000, "percentile")
    assert result.low < 50.0 < result.high
    assert bootstrap_mean_ci(large, n_resamples=500, seed=3) == result


def test_power_matches_the_textbook_values() -> None:
    assert power_two_sample(0.5, 64, 64, 0.05) == pytest.approx(0.80, abs=0.02)
    assert power_two_sample(0.0, 1_000, 1_000, 0.05) == pytest.approx(0.05)
    assert power_two_sample(0.2, 100, 100) < power_two_sample(0.2, 1_000, 1_000) < 1
    with pytest.raises(ValueError):
        power_two_sample(0.2, 0, 10)


def test_type_errors_reading_explains_both_risks() -> None:
    text = type_errors_reading(0.05, 50, 400)
    assert "1 in 20" in text and "d 0.2" in text and "d 0.5" in text
    small = power_two_sample(0.2, 50, 400, 0.05)
    assert f"{small:.0%}" in text and f"{1 - small:.0%}" in text
    assert "no proof" in text
    assert "1 in 100" in type_errors_reading(0.01, 50_000, 900_000)
    assert "effect size" in type_errors_reading(0.01, 50_000, 900_000)


def synthetic_mart(n: int = 3_000, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A small customers mart with one feature that drives default, one region that does, and noise."""
    rng = np.random.default_rng(seed)
    debt_to_income = rng.gamma(2.0, 0.2, n)
    region = rng.choice(["North", "South", "East", "West"], n)
    logit = -3.0 + 3.0 * debt_to_income + np.where(region == "South", 1.0, 0.0)
    defaulted = rng.random(n) < 1 / (1 + np.exp(-logit))
    ages = rng.integers(18, 80, n)
    noise = rng.normal(0.0, 1.0, n)
    noise[::50] = np.nan
    customers = pl.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "is_defaulted": defaulted,
            "debt_to_income": debt_to_income,
            "noise_score": noise,
            "tenure_months": rng.integers(1, 120, n),
            "constant_flag_count": np.ones(n),
            "credit_limit": rng.lognormal(8.0, 0.6, n),
            "annual_income": rng.lognormal(10.5, 0.4, n),
            "region": region,
            "age_band": np.where(ages < 36, "18-35", np.where(ages < 56, "36-55", "56+")),
            "email": [f"c{i}@bank.test" for i in range(n)],
        }
    ).with_columns(pl.col("noise_score").fill_nan(None))
    names = customers.columns
    roles = {
        "customer_id": "id",
        "is_defaulted": "target",
        "credit_limit": "amount",
        "annual_income": "amount",
        "region": "categorical",
        "email": "text",
    }
    meta = pl.DataFrame(
        {
            "column_name": names,
            "origin": ["key" if c == "customer_id" else "spec" for c in names],
            "role": [roles.get(c, "numeric" if c != "age_band" else "feature") for c in names],
            "measure": ["income" if c == "annual_income" else None for c in names],
            "is_model_feature": [c not in ("customer_id", "is_defaulted", "email") for c in names],
            "is_skewed_amount": [c in ("credit_limit", "annual_income") for c in names],
        }
    )
    personas = pl.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "persona_name": np.where(debt_to_income > 0.5, "Stretched Borrowers", "Steady Savers"),
        }
    )
    return customers, meta, personas


@pytest.fixture(scope="module")
def mart() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    return synthetic_mart()


def test_run_statistics_produces_the_documented_frames(mart) -> None:
    customers, meta, personas = mart
    result = run_statistics(customers, meta, personas, seed=7)
    tests, outliers = result.tests, result.outliers
    assert tests.columns == TESTS_COLUMNS
    assert outliers.columns == OUTLIERS_COLUMNS
    assert set(TESTS_COMMENTS) == {"run_id", *tests.columns}
    assert set(OUTLIERS_COMMENTS) == {"run_id", *outliers.columns}
    assert all(text.strip() for text in [*TESTS_COMMENTS.values(), *OUTLIERS_COMMENTS.values()])
    assert set(tests["test"]) == {"bootstrap_mean_ci", "welch_t_test", "permutation_test", "chi_square", "anova"}
    for row in tests.iter_rows(named=True):
        assert row["variable"] in row["conclusion"]
    assert tests.filter(pl.col("test") == "bootstrap_mean_ci")["variable"].to_list() == [
        "credit_limit",
        "annual_income",
    ]


def test_run_statistics_finds_what_was_planted(mart) -> None:
    customers, meta, personas = mart
    tests = run_statistics(customers, meta, personas, seed=7).tests

    def row(test: str, variable: str) -> dict:
        return tests.filter((pl.col("test") == test) & (pl.col("variable") == variable)).row(0, named=True)

    welch = row("welch_t_test", "debt_to_income")
    assert welch["is_significant"] and welch["effect_size"] > 0.5
    assert welch["conclusion"].startswith("Defaulters have a higher debt_to_income")
    assert welch["correction"] == "benjamini-hochberg" and welch["p_adjusted"] >= welch["p_value"]
    assert row("permutation_test", "debt_to_income")["is_significant"]
    assert not row("welch_t_test", "noise_score")["is_significant"]
    assert row("chi_square", "region")["is_significant"]
    assert row("chi_square", "region")["effect_size_name"] == "Cramér's V"
    assert row("anova", "debt_to_income")["effect_size"] > 0.3
    assert "age_band" in tests.filter(pl.col("test") == "chi_square")["variable"].to_list()
    tested = set(tests["variable"])
    assert "constant_flag_count" not in tested and "email" not in tested and "customer_id" not in tested
    boot = tests.filter(pl.col("test") == "bootstrap_mean_ci")
    assert (boot["ci_low"] < boot["statistic"]).all() and (boot["statistic"] < boot["ci_high"]).all()
    assert boot["is_significant"].is_null().all() and boot["p_value"].is_null().all()
    others = tests.filter(pl.col("test") != "bootstrap_mean_ci")
    assert others["ci_low"].is_null().all() and others["is_significant"].is_not_null().all()
    assert (others["is_significant"] == (others["p_adjusted"] < 0.05)).all()


def test_run_statistics_is_reproducible_and_counts_its_tests(mart) -> None:
    customers, meta, personas = mart
    first = run_statistics(customers, meta, personas, seed=7)
    second = run_statistics(customers, meta, personas, seed=7)
    assert first.tests.equals(second.tests) and first.outliers.equals(second.outliers)
    assert first.reading == second.reading and first.metrics == second.metrics
    assert first.metrics["tests"] == first.tests.height
    assert first.metrics["significant"] == first.tests["is_significant"].sum()
    assert first.metrics["outlier_rows"] == first.outliers.height
    assert "constant_flag_count" in first.metrics["skipped"] and "email" in first.metrics["skipped"]
    defaulters = int(customers["is_defaulted"].sum())
    assert f"{defaulters:,} defaulters" in first.reading


def test_run_statistics_without_a_default_flag_or_personas(mart) -> None:
    customers, meta, _ = mart
    result = run_statistics(customers.drop("is_defaulted"), meta, None)
    assert set(result.tests["test"]) == {"bootstrap_mean_ci"}
    assert "no usable default flag" in result.reading
    assert result.outliers.height > 0


def test_write_statistics_appends_rows_with_comments(mart, tmp_path: Path) -> None:
    customers, meta, personas = mart
    result = run_statistics(customers, meta, personas, seed=7)
    db = tmp_path / "stats.duckdb"
    con = connect_for_build(db)
    try:
        write_statistics(con, "run-1", result)
        write_statistics(con, "run-2", result)
    finally:
        con.close()
    with duckdb.connect(str(db), read_only=True) as con:
        counts = con.execute("SELECT run_id, count(*) FROM ml_statistical_tests GROUP BY 1 ORDER BY 1").fetchall()
        assert counts == [("run-1", result.tests.height), ("run-2", result.tests.height)]
        stored = con.sql("SELECT * EXCLUDE (run_id) FROM ml_statistical_tests WHERE run_id = 'run-1'").pl()
        assert stored.sort("test", "variable").equals(result.tests.sort("test", "variable"))
        outliers = con.execute("SELECT count(*) FROM ml_outliers WHERE run_id = 'run-2'").fetchall()[0][0]
        assert outliers == result.outliers.height
        columns = con.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() "
            "WHERE table_name IN ('ml_statistical_tests', 'ml_outliers') ORDER BY table_name, column_index"
        ).fetchall()
        comments = {table: {} for table in ("ml_statistical_tests", "ml_outliers")}
        for table, column, comment in columns:
            comments[table][column] = comment
        assert comments["ml_statistical_tests"] == TESTS_COMMENTS
        assert list(comments["ml_statistical_tests"]) == ["run_id", *TESTS_COLUMNS]
        assert comments["ml_outliers"] == OUTLIERS_COMMENTS
        grains = dict(
            con.execute(
                "SELECT table_name, comment FROM duckdb_tables() "
                "WHERE table_name IN ('ml_statistical_tests', 'ml_outliers')"
            ).fetchall()
        )
        assert grains == {"ml_statistical_tests": TESTS_GRAIN, "ml_outliers": OUTLIERS_GRAIN}
        assert missing_comments(con) == []

"""Statistical tests of the credit-risk analysis: do defaulters differ, by how much, and can we trust it.

A risk manager asks three things of every difference a model or a dashboard shows: is it real
(a p-value, corrected because we test dozens of columns at once), is it big enough to matter (an
effect size: a p-value alone says little at a million customers, where everything is
significant), and how sure are we (a confidence interval, and the power to find a difference had
there been one). The functions here answer those on plain numpy arrays with scipy's tests;
``run_statistics`` applies them to the customers mart and ``write_statistics`` stores the results
as ``ml_statistical_tests`` and ``ml_outliers``.

Resampling tests run on fixed-seed samples (at most 5,000 customers per group for the
permutation test, 50,000 values for the bootstrap) so a run over 1,000,000 customers takes
seconds and gives the same answer every time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl
from scipy import stats
from scipy.stats.contingency import association

from warehouse.features import TARGET
from warehouse.spec import CUSTOMER_KEY

from .runs import append_table

ALPHA = 0.05
RESAMPLES = 2_000
PERMUTATION_MAX_PER_GROUP = 5_000
BOOTSTRAP_MAX_VALUES = 50_000
#: BCa needs a jackknife (one mean per left-out value, quadratic in n); above a few thousand
#: values the skew it corrects for barely moves a mean's interval, so the percentile one is used.
BCA_MAX_VALUES = 5_000
#: Cells (resamples x values) per batch of a resampling test: bounds memory near 40 MB.
BATCH_CELLS = 5_000_000
ANOVA_FEATURES = 8
MAX_CATEGORY_LEVELS = 50
OUTLIER_Z = 3.0
OUTLIER_IQR_K = 1.5
KEY_AMOUNTS = ("credit_limit", "credit_card_limit", "annual_income", "loan_amount")
FALLBACK_AMOUNTS = 3
SMALL_D, MEDIUM_D = 0.2, 0.5

DEFAULTERS = "defaulters vs non-defaulters"
ACROSS_CATEGORIES = "default rate across categories"
ACROSS_PERSONAS = "across personas"
ALL_CUSTOMERS = "mean of all customers"
BH = "benjamini-hochberg"

#: Cohen's conventional thresholds (small, medium, large) per effect size.
EFFECT_THRESHOLDS = {
    "Hedges g": (0.2, 0.5, 0.8),
    "Cramér's V": (0.1, 0.3, 0.5),
    "eta squared": (0.01, 0.06, 0.14),
}


@dataclass(frozen=True)
class HypothesisTest:
    """What every test reports: its statistic, how surprising it is, and how big the effect is."""

    statistic: float
    p_value: float
    effect_size: float
    effect_size_name: str
    n: int


@dataclass(frozen=True)
class MeanComparison(HypothesisTest):
    """A two-group comparison of means (Welch or permutation); group a is the defaulters."""

    mean_a: float
    mean_b: float
    n_a: int
    n_b: int


@dataclass(frozen=True, eq=False)
class ChiSquareResult(HypothesisTest):
    """Chi-square test of independence, with the table it was computed on (levels sorted)."""

    dof: int
    table: np.ndarray
    row_labels: tuple
    column_labels: tuple


@dataclass(frozen=True)
class AnovaResult(HypothesisTest):
    """One-way ANOVA, with each group's size and mean (groups sorted by label)."""

    group_labels: tuple
    group_sizes: tuple[int, ...]
    group_means: tuple[float, ...]


@dataclass(frozen=True)
class BootstrapResult:
    """A bootstrap confidence interval of a mean.

    ``n`` is the number of values resampled; when the input had more than the cap, they are a
    fixed-seed sample of the ``n_total`` values and ``mean`` is the sample's, so the interval
    always contains it.
    """

    mean: float
    low: float
    high: float
    confidence: float
    method: str
    n: int
    n_total: int
    n_resamples: int

    @property
    def statistic(self) -> float:
        return self.mean

    @property
    def p_value(self) -> float:
        return math.nan

    @property
    def effect_size(self) -> float:
        return math.nan

    @property
    def effect_size_name(self) -> str:
        return ""


@dataclass(frozen=True, eq=False)
class OutlierFlags:
    """Per-value outlier flags by the z-score rule and Tukey's IQR fences; missing values are never flagged."""

    z_scores: np.ndarray
    is_z_outlier: np.ndarray
    is_iqr_outlier: np.ndarray
    lower_fence: float
    upper_fence: float


@dataclass(frozen=True, eq=False)
class AdjustedPValues:
    """p-values corrected for multiple testing, in the input's order (NaN stays NaN)."""

    benjamini_hochberg: np.ndarray
    holm: np.ndarray


@dataclass(frozen=True, eq=False)
class StatisticsResult:
    """A statistics run: the tests, the flagged outliers, a reading of the error risks, and counts."""

    tests: pl.DataFrame
    outliers: pl.DataFrame
    reading: str
    metrics: dict


@dataclass(frozen=True)
class ColumnChoice:
    """Which mart columns the run tests, and why the others were left out."""

    numeric: list[str]
    categorical: list[str]
    amounts: list[str]
    skipped: dict[str, str]


def _finite(values: np.ndarray | Sequence[float]) -> np.ndarray:
    """A 1-D float array without missing values (None, NaN and infinities all count as missing)."""
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def _need(values: np.ndarray, minimum: int, what: str) -> None:
    if len(values) < minimum:
        raise ValueError(f"{what} needs at least {minimum} non-missing values, got {len(values)}")


def _sample_indices(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """All of 0..n-1 when n <= cap, else ``cap`` of them without replacement, sorted to keep row order."""
    if n <= cap:
        return np.arange(n)
    return np.sort(rng.choice(n, size=cap, replace=False))


def bootstrap_mean_ci(
    values: np.ndarray | Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = RESAMPLES,
    seed: int = 42,
    *,
    max_values: int = BOOTSTRAP_MAX_VALUES,
) -> BootstrapResult:
    """Bootstrap confidence interval of the mean; BCa up to 5,000 values, percentile above.

    Amounts are skewed, so the interval comes from resampling rather than from the normal
    formula. Above ``max_values`` the resampling runs on a fixed-seed sample: the interval is
    then a little wider than the whole data would give, never narrower.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    finite = _finite(values)
    _need(finite, 2, "a bootstrap confidence interval")
    rng = np.random.default_rng(seed)
    sample = finite[_sample_indices(len(finite), max_values, rng)]
    mean = float(sample.mean())
    if np.ptp(sample) == 0:
        return BootstrapResult(mean, mean, mean, confidence, "constant", len(sample), len(finite), 0)
    method = "BCa" if len(sample) <= BCA_MAX_VALUES else "percentile"
    result = stats.bootstrap(
        (sample,),
        np.mean,
        n_resamples=n_resamples,
        batch=max(1, BATCH_CELLS // len(sample)),
        vectorized=True,
        confidence_level=confidence,
        method=method,
        rng=rng,
    )
    low, high = result.confidence_interval
    return BootstrapResult(mean, float(low), float(high), confidence, method, len(sample), len(finite), n_resamples)


def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """Standardised difference of means (a - b) / pooled SD, with Hedges' small-sample correction."""
    n_a, n_b = len(a), len(b)
    pooled = math.sqrt(((n_a - 1) * np.var(a, ddof=1) + (n_b - 1) * np.var(b, ddof=1)) / (n_a + n_b - 2))
    if pooled == 0:
        return math.nan
    correction = 1 - 3 / (4 * (n_a + n_b) - 9)
    return float((np.mean(a) - np.mean(b)) / pooled * correction)


def welch_t_test(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]) -> MeanComparison:
    """Welch's t-test of mean(a) = mean(b) (defaulters vs non-defaulters), with Hedges g as effect size.

    Welch, not Student: defaulters are few and their spread differs from everyone else's, and
    Student's equal-variance assumption then gives wrong p-values.
    """
    first, second = _finite(a), _finite(b)
    _need(first, 2, "Welch's t-test (first group)")
    _need(second, 2, "Welch's t-test (second group)")
    result = stats.ttest_ind(first, second, equal_var=False)
    return MeanComparison(
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        effect_size=hedges_g(first, second),
        effect_size_name="Hedges g",
        n=len(first) + len(second),
        mean_a=float(first.mean()),
        mean_b=float(second.mean()),
        n_a=len(first),
        n_b=len(second),
    )


def _mean_difference_of_assignment(filled: np.ndarray, present: np.ndarray) -> Callable:
    """A permutation_test statistic that takes the row indices drawn into group a, not the values.

    Every column is tested on the same shuffles, so one call to ``scipy.stats.permutation_test``
    serves them all: each batch of shuffles becomes a 0/1 membership matrix and one matrix
    product gives every column's group sums and counts (measured on 2 cores: about 0.8 s for
    60 columns of 5,000 + 5,000 values, against 0.35 s per column one call at a time). Missing values are zeros in ``filled`` and left out of the
    counts, so each column's mean is over its own present values.
    """
    n_rows, columns = filled.shape
    stacked = np.hstack([filled, present.astype(float)])
    totals = stacked.sum(axis=0)

    def statistic(first_indices: np.ndarray, _second_indices: np.ndarray, axis: int = -1) -> np.ndarray:
        indices = np.asarray(first_indices).astype(np.intp)
        single = indices.ndim == 1
        indices = np.atleast_2d(indices)
        membership = np.zeros((indices.shape[0], n_rows))
        np.put_along_axis(membership, indices, 1.0, axis=-1)
        first = membership @ stacked
        second = totals - first
        with np.errstate(divide="ignore", invalid="ignore"):
            difference = first[:, :columns] / first[:, columns:] - second[:, :columns] / second[:, columns:]
        return difference[0] if single else difference

    return statistic


def permutation_test_means_by_column(
    a: np.ndarray,
    b: np.ndarray,
    n_resamples: int = RESAMPLES,
    seed: int = 42,
    *,
    max_per_group: int = PERMUTATION_MAX_PER_GROUP,
) -> list[MeanComparison]:
    """Permutation tests of the difference in means, one per column of ``a`` (rows x columns) and ``b``.

    Each group is first cut to a fixed-seed sample of at most ``max_per_group`` rows: 5,000 per
    group resolves the p-values a report needs and keeps 1,000,000 customers fast. Missing
    values are ignored column by column; a column with fewer than 2 values in a group gets NaN.
    """
    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if first.ndim != 2 or second.ndim != 2 or first.shape[1] != second.shape[1]:
        raise ValueError("a and b must be 2-D arrays (rows x columns) with the same number of columns")
    rng = np.random.default_rng(seed)
    first = first[_sample_indices(len(first), max_per_group, rng)]
    second = second[_sample_indices(len(second), max_per_group, rng)]
    pooled = np.vstack([first, second])
    present = np.isfinite(pooled)
    counts_a, counts_b = present[: len(first)].sum(axis=0), present[len(first) :].sum(axis=0)
    centre = np.where(present, pooled, 0.0).sum(axis=0) / np.maximum(counts_a + counts_b, 1)
    # Centring keeps the sums small, so float64 sums of 5,000 large amounts lose no precision.
    filled = np.where(present, pooled - centre, 0.0)
    sums_a, sums_b = filled[: len(first)].sum(axis=0), filled[len(first) :].sum(axis=0)
    result = stats.permutation_test(
        (np.arange(len(first)), np.arange(len(first), len(pooled))),
        _mean_difference_of_assignment(filled, present),
        permutation_type="independent",
        vectorized=True,
        n_resamples=n_resamples,
        batch=max(1, BATCH_CELLS // max(1, len(pooled))),
        alternative="two-sided",
        rng=rng,
    )
    observed, p_values = np.atleast_1d(result.statistic), np.atleast_1d(result.pvalue)
    comparisons = []
    for column in range(pooled.shape[1]):
        usable = counts_a[column] >= 2 and counts_b[column] >= 2
        difference = float(observed[column]) if usable else math.nan
        comparisons.append(
            MeanComparison(
                statistic=difference,
                p_value=float(p_values[column]) if usable else math.nan,
                effect_size=difference,
                effect_size_name="difference in means",
                n=int(counts_a[column] + counts_b[column]),
                mean_a=float(centre[column] + sums_a[column] / counts_a[column]) if counts_a[column] else math.nan,
                mean_b=float(centre[column] + sums_b[column] / counts_b[column]) if counts_b[column] else math.nan,
                n_a=int(counts_a[column]),
                n_b=int(counts_b[column]),
            )
        )
    return comparisons


def permutation_test_means(
    a: np.ndarray | Sequence[float],
    b: np.ndarray | Sequence[float],
    n_resamples: int = RESAMPLES,
    seed: int = 42,
    *,
    max_per_group: int = PERMUTATION_MAX_PER_GROUP,
) -> MeanComparison:
    """Permutation test of mean(a) - mean(b): shuffle the group labels and see how often chance does as well.

    It assumes nothing about the distributions, so it checks Welch's t-test on skewed amounts.
    Missing values are dropped, then each group is cut to at most ``max_per_group`` values.
    """
    first, second = _finite(a), _finite(b)
    _need(first, 2, "a permutation test (first group)")
    _need(second, 2, "a permutation test (second group)")
    (result,) = permutation_test_means_by_column(
        first[:, None], second[:, None], n_resamples, seed, max_per_group=max_per_group
    )
    return result


def _label_series(values: np.ndarray | Sequence | pl.Series, name: str) -> pl.Series:
    if isinstance(values, pl.Series):
        series = values.alias(name)
    elif isinstance(values, np.ndarray) and values.dtype.kind == "f":
        series = pl.Series(name, values, nan_to_null=True)
    elif isinstance(values, np.ndarray) and values.dtype.kind == "O":
        # Labels with None arrive as object arrays, which polars would keep as opaque objects.
        series = pl.Series(name, values.tolist(), strict=False)
    else:
        series = pl.Series(name, values)
    return series.fill_nan(None) if series.dtype.is_float() else series


def crosstab(
    x_categories: np.ndarray | Sequence | pl.Series, y_categories: np.ndarray | Sequence | pl.Series
) -> tuple[np.ndarray, tuple, tuple]:
    """Counts of each (x, y) pair as a table, rows and columns sorted by label; missing labels dropped."""
    pairs = pl.DataFrame([_label_series(x_categories, "x"), _label_series(y_categories, "y")]).drop_nulls()
    counts = pairs.group_by("x", "y").len()
    rows = tuple(counts.get_column("x").unique().sort().to_list())
    columns = tuple(counts.get_column("y").unique().sort().to_list())
    row_of, column_of = {v: i for i, v in enumerate(rows)}, {v: i for i, v in enumerate(columns)}
    table = np.zeros((len(rows), len(columns)), dtype=np.int64)
    for x, y, count in counts.iter_rows():
        table[row_of[x], column_of[y]] = count
    return table, rows, columns


def chi_square_table(table: np.ndarray, row_labels: Sequence = (), column_labels: Sequence = ()) -> ChiSquareResult:
    """Chi-square test of independence on a contingency table, with Cramér's V as effect size.

    No Yates correction, so the statistic and Cramér's V agree; with a bank's counts the
    correction changes nothing that matters.
    """
    observed = np.asarray(table, dtype=np.int64)
    if observed.ndim != 2 or min(observed.shape) < 2 or (observed.sum(axis=1) > 0).sum() < 2:
        raise ValueError("a chi-square test needs at least two levels of each variable")
    keep_rows, keep_columns = observed.sum(axis=1) > 0, observed.sum(axis=0) > 0
    if keep_columns.sum() < 2:
        raise ValueError("a chi-square test needs at least two levels of each variable")
    observed = observed[keep_rows][:, keep_columns]
    rows = tuple(np.asarray(row_labels, dtype=object)[keep_rows]) if len(row_labels) else ()
    columns = tuple(np.asarray(column_labels, dtype=object)[keep_columns]) if len(column_labels) else ()
    result = stats.chi2_contingency(observed, correction=False)
    return ChiSquareResult(
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        effect_size=float(association(observed, method="cramer", correction=False)),
        effect_size_name="Cramér's V",
        n=int(observed.sum()),
        dof=int(result.dof),
        table=observed,
        row_labels=rows,
        column_labels=columns,
    )


def chi_square(
    x_categories: np.ndarray | Sequence | pl.Series, y_categories: np.ndarray | Sequence | pl.Series
) -> ChiSquareResult:
    """Chi-square test of independence between two arrays of labels (pairs with a missing label dropped)."""
    return chi_square_table(*crosstab(x_categories, y_categories))


def _anova_sorted(values: np.ndarray, codes: np.ndarray, labels: Sequence) -> AnovaResult:
    """ANOVA on values already sorted by group code (0..len(labels)-1), missing values removed."""
    sizes = np.bincount(codes, minlength=len(labels))
    kept = sizes > 0
    if kept.sum() < 2 or len(values) <= kept.sum():
        raise ValueError("ANOVA needs at least two groups with values and more values than groups")
    groups = [group for group in np.split(values, np.cumsum(sizes)[:-1]) if len(group)]
    result = stats.f_oneway(*groups)
    between, within = len(groups) - 1, len(values) - len(groups)
    f = float(result.statistic)
    # eta squared = SS_between / SS_total, which F and its degrees of freedom give exactly.
    eta_squared = f * between / (f * between + within) if math.isfinite(f) else math.nan
    means = np.bincount(codes, weights=values, minlength=len(labels))[kept] / sizes[kept]
    return AnovaResult(
        statistic=f,
        p_value=float(result.pvalue),
        effect_size=float(eta_squared),
        effect_size_name="eta squared",
        n=len(values),
        group_labels=tuple(np.asarray(labels, dtype=object)[kept]),
        group_sizes=tuple(int(s) for s in sizes[kept]),
        group_means=tuple(float(m) for m in means),
    )


def _group_codes(groups: np.ndarray | Sequence | pl.Series) -> tuple[np.ndarray, tuple]:
    """Dense codes 0..k-1 in sorted label order (-1 for a missing label), and the labels."""
    series = _label_series(groups, "group")
    labels = tuple(series.drop_nulls().unique().sort().to_list())
    codes = (series.rank("dense") - 1).fill_null(-1).cast(pl.Int64).to_numpy()
    return codes, labels


def anova(values: np.ndarray | Sequence[float], groups: np.ndarray | Sequence | pl.Series) -> AnovaResult:
    """One-way ANOVA of values across groups, with eta squared (share of variance the groups explain)."""
    numbers = np.asarray(values, dtype=float).ravel()
    codes, labels = _group_codes(groups)
    if len(codes) != len(numbers):
        raise ValueError(f"values and groups differ in length ({len(numbers)} vs {len(codes)})")
    order = np.argsort(codes, kind="stable")
    keep = np.isfinite(numbers[order]) & (codes[order] >= 0)
    return _anova_sorted(numbers[order][keep], codes[order][keep], labels)


def outlier_flags(
    values: np.ndarray | Sequence[float], z: float = OUTLIER_Z, iqr_k: float = OUTLIER_IQR_K
) -> OutlierFlags:
    """Flag values with |z-score| > ``z`` and values outside the quartiles by more than ``iqr_k`` IQRs.

    Both rules, because amounts are skewed: the z rule is blind when a few huge values inflate
    the SD, Tukey's fences are not. When the IQR is zero (most values equal, as with many zero
    balances) the fences would flag every other value, so the IQR rule then flags nothing.
    """
    numbers = np.asarray(values, dtype=float).ravel()
    finite = np.isfinite(numbers)
    numbers = np.where(finite, numbers, np.nan)
    z_scores = np.full(len(numbers), np.nan)
    lower, upper = math.nan, math.nan
    if finite.sum() >= 2:
        if np.ptp(numbers[finite]) > 0:
            z_scores = stats.zscore(numbers, nan_policy="omit")
        q1, q3 = np.quantile(numbers[finite], [0.25, 0.75])
        if q3 > q1:
            lower, upper = float(q1 - iqr_k * (q3 - q1)), float(q3 + iqr_k * (q3 - q1))
    with np.errstate(invalid="ignore"):
        is_z = np.abs(z_scores) > z
        is_iqr = (numbers < lower) | (numbers > upper)
    return OutlierFlags(z_scores, is_z & finite, is_iqr & finite, lower, upper)


def adjust_p_values(p_values: np.ndarray | Sequence[float]) -> AdjustedPValues:
    """Benjamini-Hochberg (false discovery rate) and Holm (family-wise error) adjusted p-values.

    Benjamini-Hochberg is what the report uses: among results called significant, the expected
    share of false alarms stays at alpha. Holm is stricter (no false alarm at all, with
    probability 1 - alpha), for decisions that must not rest on one.
    """
    raw = np.asarray(p_values, dtype=float).ravel()
    valid = np.isfinite(raw)
    if ((raw[valid] < 0) | (raw[valid] > 1)).any():
        raise ValueError("p-values must lie between 0 and 1")
    bh, holm = np.full(len(raw), np.nan), np.full(len(raw), np.nan)
    if valid.any():
        p = raw[valid]
        bh[valid] = stats.false_discovery_control(p, method="bh")
        # scipy has no Holm: multiply the i-th smallest by (m - i), keep it monotone, cap at 1.
        order = np.argsort(p, kind="stable")
        stepped = np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p))))
        holm_valid = np.empty(len(p))
        holm_valid[order] = np.minimum(stepped, 1.0)
        holm[valid] = holm_valid
    return AdjustedPValues(bh, holm)


def power_two_sample(effect_size_d: float, n1: int, n2: int, alpha: float = ALPHA) -> float:
    """Power of a two-sided two-sample test to detect a standardised difference d (normal approximation)."""
    if n1 < 1 or n2 < 1:
        raise ValueError(f"both groups need at least one value, got {n1} and {n2}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    critical = stats.norm.ppf(1 - alpha / 2)
    shift = abs(effect_size_d) * math.sqrt(n1 * n2 / (n1 + n2))
    return float(stats.norm.cdf(shift - critical) + stats.norm.cdf(-shift - critical))


def _percent(share: float) -> str:
    if share >= 0.99:
        return "over 99%"
    if share <= 0.01:
        return "under 1%"
    return f"{share:.0%}"


def _type_one_sentence(alpha: float) -> str:
    return (
        f"Type I risk, a false alarm: at alpha {alpha:g}, about 1 in {round(1 / alpha):,} comparisons with no real "
        "difference would still look significant. The p-values of each family of tests are corrected with "
        "Benjamini-Hochberg, which keeps the expected share of false alarms among the results called significant "
        f"at about {alpha * 100:g}%."
    )


def type_errors_reading(alpha: float, n1: int, n2: int) -> str:
    """One paragraph for a risk manager: the chance of a false alarm, and of missing a real difference."""
    small, medium = power_two_sample(SMALL_D, n1, n2, alpha), power_two_sample(MEDIUM_D, n1, n2, alpha)
    text = (
        f"{_type_one_sentence(alpha)} Type II risk, a missed difference: with {n1:,} defaulters and {n2:,} "
        f"non-defaulters, the power to detect a small difference (Cohen's d {SMALL_D}) is {_percent(small)} and a "
        f"medium one (d {MEDIUM_D}) {_percent(medium)}, so the chance of missing such a difference is "
        f"{_percent(1 - small)} for a small one and {_percent(1 - medium)} for a medium one."
    )
    if small >= 0.99:
        return text + (
            " With groups this large even tiny differences come out significant, so judge each result by its "
            "effect size, not by its p-value alone."
        )
    if small < 0.8:
        return text + (
            " A result that is not significant is therefore no proof that the groups are alike: a small "
            "difference can easily be missed."
        )
    return text


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return "0" if value == 0 else f"{value:.3g}"


def _p_text(p_adjusted: float | None) -> str:
    if p_adjusted is None or not math.isfinite(p_adjusted):
        return "p_adj n/a"
    return "p_adj < 0.001" if p_adjusted < 0.001 else f"p_adj {p_adjusted:.3f}"


def effect_size_word(name: str, value: float) -> str:
    """negligible, small, medium or large, by Cohen's conventional thresholds for the effect size."""
    small, medium, large = EFFECT_THRESHOLDS[name]
    size = abs(value)
    if not math.isfinite(size) or size < small:
        return "negligible"
    return "small" if size < medium else "medium" if size < large else "large"


def _verdict(p_adjusted: float | None, significant: bool | None, name: str, effect: float) -> str:
    """'significant after correction (p_adj < 0.001) and large (Hedges g 0.92)' and its variants."""
    shown = f"{name} {effect:.2f}" if name != "eta squared" else f"{name} {effect:.3f}"
    word = effect_size_word(name, effect)
    if not significant:
        return f"not significant after correction ({_p_text(p_adjusted)}; {shown})"
    if word == "negligible":
        return f"significant after correction ({_p_text(p_adjusted)}) but negligible in size ({shown})"
    return f"significant after correction ({_p_text(p_adjusted)}) and {word} ({shown})"


@dataclass
class _Row:
    """A test result waiting for its family's correction; ``describe`` writes the conclusion from it."""

    test: str
    variable: str
    comparison: str
    statistic: float
    p_value: float | None
    effect_size: float | None
    effect_size_name: str | None
    n: int
    describe: Callable[[float | None, bool | None], str]
    ci_low: float | None = None
    ci_high: float | None = None


TESTS_SCHEMA = {
    "test": pl.String,
    "variable": pl.String,
    "comparison": pl.String,
    "statistic": pl.Float64,
    "p_value": pl.Float64,
    "p_adjusted": pl.Float64,
    "correction": pl.String,
    "effect_size": pl.Float64,
    "effect_size_name": pl.String,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "n": pl.Int64,
    "is_significant": pl.Boolean,
    "alpha": pl.Float64,
    "conclusion": pl.String,
}
TEST_NAMES = ("bootstrap_mean_ci", "welch_t_test", "permutation_test", "chi_square", "anova")

TESTS_TABLE = "ml_statistical_tests"
TESTS_GRAIN = "One row per statistical test per statistics run."
TESTS_COMMENTS = {
    "run_id": "The statistics run that produced the row (see ml_model_runs).",
    "test": "Which test: bootstrap_mean_ci, welch_t_test, permutation_test, chi_square or anova.",
    "variable": "Column of the customers mart the test is about.",
    "comparison": f"What is compared: {DEFAULTERS}, {ACROSS_CATEGORIES}, {ACROSS_PERSONAS} or the {ALL_CUSTOMERS}.",
    "statistic": "The test's statistic: the mean (bootstrap), Welch's t, the difference in means (permutation), "
    "chi-square, or F (anova).",
    "p_value": "Raw p-value: the chance of a result at least this extreme were there no real difference; null for the "
    "bootstrap.",
    "p_adjusted": "p-value corrected for multiple testing within the test's family in the run; null for the bootstrap.",
    "correction": "The multiple-testing correction behind p_adjusted: benjamini-hochberg, or null without a p-value.",
    "effect_size": "How big the difference is, in the measure named by effect_size_name; null for the bootstrap.",
    "effect_size_name": "Hedges g (Welch), difference in means (permutation), Cramér's V (chi-square) or eta squared "
    "(anova).",
    "ci_low": "Lower end of the bootstrap confidence interval of the mean; null for other tests.",
    "ci_high": "Upper end of the bootstrap confidence interval of the mean; null for other tests.",
    "n": "Values the test used, after dropping missing values and any fixed-seed sampling.",
    "is_significant": "True when p_adjusted is below alpha; null for the bootstrap.",
    "alpha": "Significance level of the run.",
    "conclusion": "The result in plain words for a risk manager: direction, significance after correction, size.",
}
OUTLIERS_TABLE = "ml_outliers"
OUTLIERS_GRAIN = (
    "One row per customer per numeric model feature flagged as an outlier (z-score or IQR rule) per statistics run."
)
OUTLIERS_COMMENTS = {
    "run_id": "The statistics run that flagged the value (see ml_model_runs).",
    "customer_id": "The customer.",
    "variable": "Numeric model feature of the customers mart.",
    "value": "The customer's value of the feature.",
    "z_score": "(value - mean) / standard deviation over all customers with a value.",
    "is_z_outlier": f"True when |z_score| exceeds {OUTLIER_Z:g}.",
    "is_iqr_outlier": f"True when the value lies more than {OUTLIER_IQR_K:g} interquartile ranges below the first or "
    "above the third quartile (Tukey's fences; never when the IQR is zero).",
}


def choose_columns(customers: pl.DataFrame, meta_columns: pl.DataFrame) -> ColumnChoice:
    """Numeric features, categoricals and key amounts to test, from the mart and its meta_columns table.

    Numeric: model features of a numeric type (not flags, not coded categoricals) that vary.
    Categorical: role 'categorical', text columns (age_band, ...) and flag features, with 2 to 50
    levels. Amounts: the key credit amounts that exist, else the first amount columns.
    """
    schema = customers.schema
    skipped: dict[str, str] = {}
    numeric_candidates, categorical_candidates, amount_candidates = [], [], []
    for row in meta_columns.iter_rows(named=True):
        name = row["column_name"]
        if name not in schema or name in (CUSTOMER_KEY, TARGET) or row["role"] in ("id", "target"):
            continue
        dtype = schema[name]
        if row["role"] == "categorical" or dtype == pl.String or (dtype == pl.Boolean and row["is_model_feature"]):
            categorical_candidates.append(name)
        elif row["is_model_feature"] and dtype.is_numeric():
            numeric_candidates.append(name)
        is_amount = row["role"] == "amount" or row["measure"] is not None or row["is_skewed_amount"]
        if is_amount and dtype.is_numeric() and not name.startswith("log_"):
            amount_candidates.append(name)
    if numeric_candidates:
        spread = customers.select(
            (pl.col(c).cast(pl.Float64).fill_nan(None).min() < pl.col(c).cast(pl.Float64).fill_nan(None).max()).alias(c)
            for c in numeric_candidates
        ).row(0, named=True)
    else:
        spread = {}
    numeric = [c for c in numeric_candidates if spread[c]]
    skipped |= {c: "fewer than two distinct values" for c in numeric_candidates if not spread[c]}
    categorical = []
    if categorical_candidates:
        levels = customers.select(pl.col(c).drop_nulls().n_unique() for c in categorical_candidates).row(0, named=True)
        for name in categorical_candidates:
            if 2 <= levels[name] <= MAX_CATEGORY_LEVELS:
                categorical.append(name)
            else:
                skipped[name] = f"{levels[name]} levels (a chi-square test needs 2 to {MAX_CATEGORY_LEVELS})"
    named = [c for c in KEY_AMOUNTS if c in schema and schema[c].is_numeric()]
    amounts = named or amount_candidates[:FALLBACK_AMOUNTS]
    return ColumnChoice(numeric, categorical, amounts, skipped)


def _test_row(
    test: str, name: str, comparison: str, result: HypothesisTest, describe: Callable[[float | None, bool | None], str]
) -> _Row:
    return _Row(
        test=test,
        variable=name,
        comparison=comparison,
        statistic=result.statistic,
        p_value=result.p_value,
        effect_size=result.effect_size,
        effect_size_name=result.effect_size_name,
        n=result.n,
        describe=describe,
    )


def _bootstrap_row(name: str, values: np.ndarray, seed: int) -> _Row:
    result = bootstrap_mean_ci(values, seed=seed)
    if result.n < result.n_total:
        source = f"a fixed-seed sample of {result.n:,} of the {result.n_total:,} customers with a value"
    else:
        source = f"the {result.n:,} customers with a value"
    method = f"{result.method} bootstrap, {result.n_resamples:,} resamples of {source}"
    if result.method == "constant":
        method = f"every one of the {result.n:,} customers with a value has it"
    text = (
        f"The mean {name} of all customers is {_number(result.mean)} ({result.confidence:.0%} CI "
        f"{_number(result.low)} to {_number(result.high)}; {method})."
    )
    return _Row(
        test="bootstrap_mean_ci",
        variable=name,
        comparison=ALL_CUSTOMERS,
        statistic=result.mean,
        p_value=None,
        effect_size=None,
        effect_size_name=None,
        n=result.n,
        describe=lambda _p, _s: text,
        ci_low=result.low,
        ci_high=result.high,
    )


def _welch_row(name: str, result: MeanComparison) -> _Row:
    def describe(p_adjusted: float | None, significant: bool | None) -> str:
        means = f"mean {_number(result.mean_a)} vs {_number(result.mean_b)}"
        verdict = _verdict(p_adjusted, significant, "Hedges g", result.effect_size)
        if not significant:
            return f"Defaulters and non-defaulters have a similar {name} ({means}); the difference is {verdict}."
        direction = "higher" if result.mean_a > result.mean_b else "lower"
        return f"Defaulters have a {direction} {name} ({means}); the difference is {verdict}."

    return _test_row("welch_t_test", name, DEFAULTERS, result, describe)


def _permutation_row(name: str, result: MeanComparison, n_resamples: int) -> _Row:
    def describe(p_adjusted: float | None, significant: bool | None) -> str:
        shuffles = (
            f"Shuffling the default labels {n_resamples:,} times on a sample of {result.n_a:,} defaulters and "
            f"{result.n_b:,} non-defaulters"
        )
        observed = f"a difference in mean {name} as large as the observed {_number(result.statistic)}"
        if significant:
            return (
                f"{shuffles} rarely gives {observed}: significant after correction ({_p_text(p_adjusted)}), "
                "with no assumption about the shape of the distribution."
            )
        return f"{shuffles} often gives {observed}: not significant after correction ({_p_text(p_adjusted)})."

    return _test_row("permutation_test", name, DEFAULTERS, result, describe)


def _chi_square_row(name: str, result: ChiSquareResult) -> _Row:
    defaulted = result.column_labels.index(True)
    rates = result.table[:, defaulted] / result.table.sum(axis=1)
    low, high = int(np.argmin(rates)), int(np.argmax(rates))
    spread = (
        f"from {rates[low]:.1%} for '{result.row_labels[low]}' to {rates[high]:.1%} for '{result.row_labels[high]}'"
    )

    def describe(p_adjusted: float | None, significant: bool | None) -> str:
        verdict = _verdict(p_adjusted, significant, "Cramér's V", result.effect_size)
        moves = "differ" if significant else "are similar"
        return f"Default rates {moves} across {name} ({spread}); the association is {verdict}."

    return _test_row("chi_square", name, ACROSS_CATEGORIES, result, describe)


def _anova_row(name: str, result: AnovaResult) -> _Row:
    means = np.asarray(result.group_means)
    low, high = int(np.argmin(means)), int(np.argmax(means))
    spread = (
        f"from {_number(means[low])} in '{result.group_labels[low]}' to {_number(means[high])} in "
        f"'{result.group_labels[high]}'"
    )

    def describe(p_adjusted: float | None, significant: bool | None) -> str:
        verdict = _verdict(p_adjusted, significant, "eta squared", result.effect_size)
        moves = "differs" if significant else "is similar"
        return f"Mean {name} {moves} across personas ({spread}); {verdict}."

    return _test_row("anova", name, ACROSS_PERSONAS, result, describe)


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _tests_frame(rows: list[_Row], alpha: float) -> tuple[pl.DataFrame, dict[str, dict[str, int]]]:
    """Correct p-values within each family, decide significance, write the conclusions."""
    adjusted: list[float | None] = [None] * len(rows)
    holm: list[float | None] = [None] * len(rows)
    for family in TEST_NAMES:
        members = [i for i, row in enumerate(rows) if row.test == family and row.p_value is not None]
        if not members:
            continue
        corrected = adjust_p_values([rows[i].p_value for i in members])
        for position, i in enumerate(members):
            adjusted[i] = _finite_or_none(float(corrected.benjamini_hochberg[position]))
            holm[i] = _finite_or_none(float(corrected.holm[position]))
    records = []
    families: dict[str, dict[str, int]] = {}
    for row, p_adjusted, p_holm in zip(rows, adjusted, holm, strict=True):
        significant = None if p_adjusted is None else p_adjusted < alpha
        counts = families.setdefault(row.test, {"tests": 0})
        counts["tests"] += 1
        if row.p_value is not None:
            counts["significant"] = counts.get("significant", 0) + bool(significant)
            counts["significant_holm"] = counts.get("significant_holm", 0) + (p_holm is not None and p_holm < alpha)
        records.append(
            {
                "test": row.test,
                "variable": row.variable,
                "comparison": row.comparison,
                "statistic": _finite_or_none(row.statistic),
                "p_value": _finite_or_none(row.p_value),
                "p_adjusted": p_adjusted,
                "correction": BH if row.p_value is not None else None,
                "effect_size": _finite_or_none(row.effect_size),
                "effect_size_name": row.effect_size_name,
                "ci_low": _finite_or_none(row.ci_low),
                "ci_high": _finite_or_none(row.ci_high),
                "n": row.n,
                "is_significant": significant,
                "alpha": alpha,
                "conclusion": row.describe(p_adjusted, significant),
            }
        )
    return pl.DataFrame(records, schema=TESTS_SCHEMA), families


def _outliers_schema(customers: pl.DataFrame) -> dict[str, pl.DataType]:
    return {
        "customer_id": customers.schema[CUSTOMER_KEY],
        "variable": pl.String,
        "value": pl.Float64,
        "z_score": pl.Float64,
        "is_z_outlier": pl.Boolean,
        "is_iqr_outlier": pl.Boolean,
    }


def _default_groups(customers: pl.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Boolean masks of defaulters and non-defaulters (customers with no known outcome in neither)."""
    if TARGET not in customers.columns:
        return None
    target = customers.get_column(TARGET).cast(pl.Boolean, strict=False)
    known = target.is_not_null().to_numpy()
    defaulted = target.fill_null(False).to_numpy()
    return defaulted & known, ~defaulted & known


def _persona_codes(customers: pl.DataFrame, personas: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Each customer's persona code in mart row order, the order that sorts rows by code, and the names."""
    if not {CUSTOMER_KEY, "persona_name"} <= set(personas.columns):
        raise ValueError(f"personas must have the columns {CUSTOMER_KEY} and persona_name")
    labels = personas.select(CUSTOMER_KEY, "persona_name")
    if labels.get_column(CUSTOMER_KEY).is_duplicated().any():
        raise ValueError("personas must have one row per customer_id")
    aligned = customers.select(CUSTOMER_KEY).join(labels, on=CUSTOMER_KEY, how="left", maintain_order="left")
    codes, names = _group_codes(aligned.get_column("persona_name"))
    return codes, np.argsort(codes, kind="stable"), names


def run_statistics(
    customers: pl.DataFrame,
    meta_columns: pl.DataFrame,
    personas: pl.DataFrame | None,
    *,
    alpha: float = ALPHA,
    seed: int = 42,
) -> StatisticsResult:
    """Run the report's tests on the customers mart: bootstrap CIs of key amounts, defaulters vs
    non-defaulters (Welch, permutation, chi-square), ANOVA across personas, and outlier flags.

    p-values are corrected with Benjamini-Hochberg within each test family. The same input and
    seed give the same result.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if CUSTOMER_KEY not in customers.columns:
        raise ValueError(f"the customers frame has no {CUSTOMER_KEY} column")
    choice = choose_columns(customers, meta_columns)
    skipped = dict(choice.skipped)
    rows: list[_Row] = []

    def values_of(name: str) -> np.ndarray:
        return customers.get_column(name).cast(pl.Float64).fill_nan(None).to_numpy()

    for name in choice.amounts:
        values = values_of(name)
        if np.isfinite(values).sum() >= 2:
            rows.append(_bootstrap_row(name, values, seed))
        else:
            skipped[name] = "fewer than two values for a confidence interval"

    groups = _default_groups(customers)
    n_defaulters = n_others = 0
    if groups is not None:
        n_defaulters, n_others = int(groups[0].sum()), int(groups[1].sum())
        if min(n_defaulters, n_others) < 2:
            skipped[TARGET] = f"{n_defaulters} defaulters and {n_others} non-defaulters: too few to compare"
            groups = None
    customer_ids = customers.get_column(CUSTOMER_KEY)
    outlier_parts: list[pl.DataFrame] = []
    welch: dict[str, MeanComparison] = {}
    for name in choice.numeric:
        values = values_of(name)
        if groups is not None:
            first, second = values[groups[0]], values[groups[1]]
            if np.isfinite(first).sum() >= 2 and np.isfinite(second).sum() >= 2:
                welch[name] = welch_t_test(first, second)
                rows.append(_welch_row(name, welch[name]))
            else:
                skipped[name] = "fewer than two values among defaulters or non-defaulters"
        flags = outlier_flags(values)
        flagged = np.flatnonzero(flags.is_z_outlier | flags.is_iqr_outlier)
        if len(flagged):
            outlier_parts.append(
                pl.DataFrame(
                    {
                        "customer_id": customer_ids.gather(flagged),
                        "variable": pl.repeat(name, len(flagged), dtype=pl.String, eager=True),
                        "value": values[flagged],
                        "z_score": flags.z_scores[flagged],
                        "is_z_outlier": flags.is_z_outlier[flagged],
                        "is_iqr_outlier": flags.is_iqr_outlier[flagged],
                    },
                    schema=_outliers_schema(customers),
                )
            )

    if groups is not None and welch:
        tested = list(welch)
        # One fixed-seed sample of rows for every feature, drawn apart from the test's own shuffles.
        rng = np.random.default_rng(seed)
        members = [np.flatnonzero(mask) for mask in groups]
        sampled = [group[_sample_indices(len(group), PERMUTATION_MAX_PER_GROUP, rng)] for group in members]
        matrices = [
            customers[picked].select(pl.col(c).cast(pl.Float64).fill_nan(None) for c in tested).to_numpy()
            for picked in sampled
        ]
        results = permutation_test_means_by_column(matrices[0], matrices[1], RESAMPLES, seed)
        for name, result in zip(tested, results, strict=True):
            if math.isfinite(result.p_value):
                rows.append(_permutation_row(name, result, RESAMPLES))
            else:
                skipped[f"{name} permutation test"] = "fewer than two values per group in the sample"
        known = groups[0] | groups[1]
        outcome = pl.Series("y", groups[0][known])
        for name in choice.categorical:
            table = crosstab(customers.get_column(name).filter(known), outcome)
            try:
                rows.append(_chi_square_row(name, chi_square_table(*table)))
            except ValueError:
                skipped[name] = "fewer than two levels among customers with a known outcome"

    n_personas = 0
    if personas is not None:
        codes, order, names = _persona_codes(customers, personas)
        n_personas = len(names)
        ranked = sorted(welch, key=lambda c: -abs(welch[c].effect_size) if math.isfinite(welch[c].effect_size) else 0)
        key_features = ranked[:ANOVA_FEATURES] if welch else choice.numeric[:ANOVA_FEATURES]
        sorted_codes = codes[order]
        for name in key_features:
            values = values_of(name)[order]
            keep = np.isfinite(values) & (sorted_codes >= 0)
            try:
                rows.append(_anova_row(name, _anova_sorted(values[keep], sorted_codes[keep], names)))
            except ValueError:
                skipped[f"{name} across personas"] = "fewer than two personas with values"

    family_order = {name: i for i, name in enumerate(TEST_NAMES)}
    rows.sort(key=lambda row: family_order[row.test])  # stable: columns keep the mart's order within a family
    tests, families = _tests_frame(rows, alpha)
    outliers = (pl.concat(outlier_parts) if outlier_parts else pl.DataFrame(schema=_outliers_schema(customers))).select(
        list(OUTLIERS_COMMENTS)[1:]
    )
    if groups is not None:
        reading = type_errors_reading(alpha, n_defaulters, n_others)
    else:
        reading = (
            f"{_type_one_sentence(alpha)} This data has no usable default flag, so defaulters and non-defaulters "
            "were not compared and there is no power to report for that comparison."
        )
    metrics = {
        "tests": tests.height,
        "significant": int(tests.get_column("is_significant").sum()),
        "by_test": families,
        "alpha": alpha,
        "seed": seed,
        "defaulters": n_defaulters,
        "non_defaulters": n_others,
        "numeric_features": len(choice.numeric),
        "categorical_features": len(choice.categorical),
        "personas": n_personas,
        "outlier_rows": outliers.height,
        "skipped": skipped,
    }
    return StatisticsResult(tests, outliers, reading, metrics)


def write_statistics(con: duckdb.DuckDBPyConnection, run_id: str, result: StatisticsResult) -> None:
    """Append a statistics run's tests to ml_statistical_tests and its outliers to ml_outliers."""
    tag = pl.lit(run_id, dtype=pl.String).alias("run_id")
    append_table(
        con, TESTS_TABLE, result.tests.with_columns(tag).select(list(TESTS_COMMENTS)), TESTS_GRAIN, TESTS_COMMENTS
    )
    append_table(
        con,
        OUTLIERS_TABLE,
        result.outliers.with_columns(tag).select(list(OUTLIERS_COMMENTS)),
        OUTLIERS_GRAIN,
        OUTLIERS_COMMENTS,
    )

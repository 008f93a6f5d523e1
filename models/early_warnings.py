"""Early warnings: threshold rules that flag a customer before a default, and population stability.

Each alert names its customer, rule, the value that tripped it, the threshold, a severity and the
period it refers to. Its id is built from (rule, customer, period), so re-running the rules on the
same period gives the same ids and an acknowledgement made on the dashboard stays attached.

Population stability (PSI) compares today's customers with the population the PD model was
trained on, bin by bin: below 0.1 stable, 0.1 to 0.25 worth a look, above 0.25 the model's
inputs have moved enough to question its scores.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

SEVERITIES = ("low", "medium", "high")


@dataclass(frozen=True)
class WarningRule:
    """``value op threshold`` on the first of ``columns`` the mart has; past ``severe`` it escalates."""

    key: str
    label: str
    columns: tuple[str, ...]
    op: str  # ">" or ">="
    threshold: float
    severity: str
    severe: float | None = None

    def trips(self, value: pl.Expr, threshold: float) -> pl.Expr:
        return value > threshold if self.op == ">" else value >= threshold


#: The rules of the risk issue; thresholds are settable (``segrisk train warnings --threshold key=value``).
DEFAULT_RULES: tuple[WarningRule, ...] = (
    WarningRule(
        "high_debt_to_income",
        "Debt-to-income above 60%",
        ("latest_debt_to_income", "debt_to_income"),
        ">",
        0.6,
        "medium",
        severe=1.0,
    ),
    WarningRule(
        "credit_score_drop",
        "Credit score down more than 15 points in one period",
        ("latest_credit_score_drop",),
        ">",
        15,
        "medium",
        severe=40,
    ),
    WarningRule(
        "high_utilization", "Utilization above 90%", ("latest_utilization", "utilization"), ">", 0.9, "low", severe=1.0
    ),
    WarningRule("days_past_due", "30 or more days past due", ("latest_days_past_due",), ">=", 30, "medium", severe=60),
    WarningRule(
        "grade_worsening",
        "PD grade worse by two or more grades since the previous risk run",
        ("grade_steps_worse",),
        ">=",
        2,
        "high",
    ),
)


def rules_with_thresholds(overrides: dict[str, float] | None = None) -> tuple[WarningRule, ...]:
    """The default rules with some thresholds changed; an unknown rule key is an error."""
    overrides = overrides or {}
    unknown = set(overrides) - {r.key for r in DEFAULT_RULES}
    if unknown:
        raise ValueError(
            f"unknown early-warning rule {sorted(unknown)[0]!r}; rules are {', '.join(r.key for r in DEFAULT_RULES)}"
        )
    return tuple(replace(r, threshold=overrides[r.key]) if r.key in overrides else r for r in DEFAULT_RULES)


def grade_steps(previous: pl.DataFrame, current: pl.DataFrame, grades: list[str]) -> pl.DataFrame:
    """customer_id, grade_steps_worse: how many grades each customer fell between two risk runs."""
    rank = {g: i for i, g in enumerate(grades)}
    as_rank = pl.col("grade").replace_strict(rank, return_dtype=pl.Int32, default=None)
    return (
        current.select("customer_id", as_rank.alias("now"))
        .join(previous.select("customer_id", as_rank.alias("before")), on="customer_id", how="inner")
        .select("customer_id", (pl.col("now") - pl.col("before")).alias("grade_steps_worse"))
    )


def raise_alerts(
    customers: pl.DataFrame, rules: tuple[WarningRule, ...], default_period: object
) -> tuple[pl.DataFrame, list[dict]]:
    """One row per customer per tripped rule, and for each rule whether it could run and how often it fired.

    ``customers`` holds customer_id, the rule columns present, and optionally latest_period (the
    period an alert refers to; ``default_period`` otherwise).
    """
    period = (
        pl.col("latest_period").fill_null(pl.lit(default_period)).cast(pl.Date)
        if "latest_period" in customers.columns
        else pl.lit(default_period).cast(pl.Date)
    )
    frames, coverage = [], []
    for rule in rules:
        column = next((c for c in rule.columns if c in customers.columns), None)
        if column is None:
            coverage.append(
                {"rule": rule.key, "column": None, "alerts": 0, "status": f"not run: needs {rule.columns[0]}"}
            )
            continue
        value = pl.col(column).cast(pl.Float64)
        severity = pl.lit(rule.severity)
        if rule.severe is not None:
            escalated = SEVERITIES[min(SEVERITIES.index(rule.severity) + 1, len(SEVERITIES) - 1)]
            severity = pl.when(rule.trips(value, rule.severe)).then(pl.lit(escalated)).otherwise(severity)
        hits = customers.filter(rule.trips(value, rule.threshold).fill_null(False)).select(
            pl.col("customer_id"),
            pl.lit(rule.key).alias("rule"),
            pl.lit(rule.label).alias("rule_label"),
            pl.lit(column).alias("measured_column"),
            value.alias("value"),
            pl.lit(float(rule.threshold)).alias("threshold"),
            severity.alias("severity"),
            period.alias("period"),
        )
        frames.append(hits)
        coverage.append({"rule": rule.key, "column": column, "alerts": hits.height, "status": "run"})
    alerts = pl.concat(frames) if frames else pl.DataFrame()
    if alerts.height:
        alerts = alerts.with_columns(
            pl.concat_str(
                [pl.col("rule"), pl.col("customer_id").cast(pl.String), pl.col("period").cast(pl.String)], separator=":"
            ).alias("alert_id")
        ).sort("customer_id", "rule")
    return alerts, coverage


# ----------------------------------------------------------------------------- population stability

PSI_BINS = 10
#: Share given to an empty bin so the logarithm stays finite (the usual convention).
PSI_FLOOR = 1e-4


def psi_status(value: float) -> str:
    """Traffic light: green below 0.1, amber 0.1 to 0.25, red from 0.25."""
    return "green" if value < 0.1 else "amber" if value < 0.25 else "red"


def baseline_bins(frame: pl.DataFrame, variables: list[str], bins: int = PSI_BINS) -> pl.DataFrame:
    """Decile bins of each variable on the training population, with the share in each.

    Missing values get a bin of their own (lower and upper null), since a rise in missing data is
    drift too.
    """
    rows = []
    for variable in variables:
        values = frame.get_column(variable).cast(pl.Float64).to_numpy()
        present = values[~np.isnan(values)]
        if present.size == 0:
            continue
        inner = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(inner, present, side="right"), minlength=len(inner) + 1)
        edges = np.r_[-np.inf, inner, np.inf]
        for i, count in enumerate(counts):
            rows.append((variable, i, float(edges[i]), float(edges[i + 1]), count / len(values)))
        rows.append((variable, len(counts), None, None, (len(values) - present.size) / len(values)))
    return pl.DataFrame(
        rows,
        schema={
            "variable": pl.String,
            "bin": pl.Int32,
            "lower": pl.Float64,
            "upper": pl.Float64,
            "expected_share": pl.Float64,
        },
        orient="row",
    )


def stability(baseline: pl.DataFrame, current: pl.DataFrame) -> pl.DataFrame:
    """PSI of each baseline variable present in ``current``: sum((a - e) x ln(a / e)) over the bins."""
    rows = []
    for (variable,), bins in baseline.group_by("variable", maintain_order=True):
        if variable not in current.columns:
            continue
        values = current.get_column(variable).cast(pl.Float64).to_numpy()
        numbered = bins.filter(pl.col("lower").is_not_null()).sort("bin")
        inner = numbered.get_column("upper").to_numpy()[:-1]
        present = values[~np.isnan(values)]
        counts = np.bincount(np.searchsorted(inner, present, side="right"), minlength=len(inner) + 1)
        actual = np.r_[counts, len(values) - present.size] / max(len(values), 1)
        expected = np.r_[
            numbered.get_column("expected_share").to_numpy(),
            bins.filter(pl.col("lower").is_null()).get_column("expected_share").sum(),
        ]
        e, a = np.clip(expected, PSI_FLOOR, None), np.clip(actual, PSI_FLOOR, None)
        value = float(np.sum((a - e) * np.log(a / e)))
        rows.append({"variable": variable, "psi": value, "status": psi_status(value), "customers": len(values)})
    return pl.DataFrame(
        rows, schema={"variable": pl.String, "psi": pl.Float64, "status": pl.String, "customers": pl.Int64}
    )

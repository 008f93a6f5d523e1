"""Engineered features for the ``customers`` mart: pure ``LazyFrame -> LazyFrame`` transforms.

No I/O here: the build collects once, at the edge. Each feature's meaning is in
:data:`FEATURE_DESCRIPTIONS`, which becomes the warehouse column comment.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import polars as pl

from .spec import CUSTOMER_KEY

#: Column name the mart gives the dataset's target, whatever the source called it.
TARGET = "is_defaulted"

FEATURE_DESCRIPTIONS: dict[str, str] = {
    TARGET: "True when the customer defaulted (the spec's target column, positive value mapped to true).",
    "age_band": "Age group used by filters and fairness checks: 18-25, 26-35, 36-45, 46-55, 56-65, 66+.",
    "total_debt": "Sum of all outstanding debt balances (loans, mortgage, BNPL, card balance), currency units.",
    "total_deposits": "Sum of all deposit and investment balances, currency units.",
    "debt_to_income": "Total outstanding debt divided by annual income (0.6 = debt of 60% of a year's income).",
    "emi_to_income": "Monthly instalments times 12 divided by annual income: the share of income spent on repayments.",
    "utilization": "Credit card (or revolving) balance divided by its credit limit; 0 when the limit is 0.",
    "savings_ratio": "Savings (or deposits when no savings column) divided by annual income.",
    "spend_to_income": "Spending in the 365 days before the as-of date divided by annual income.",
    "rfm_recency_days": "Days from the last transaction to the as-of date (the day after the last transaction in the data).",
    "rfm_frequency": "Number of distinct purchases: distinct invoice ids when the data has them, else transactions.",
    "rfm_monetary": "Total amount of all transactions, currency units.",
    "txn_count": "Number of transaction rows.",
    "txn_avg_amount": "Average transaction amount, currency units.",
    "spend_12m": "Total transaction amount in the 365 days before the as-of date, currency units.",
    "first_txn_at": "Timestamp of the customer's first transaction.",
    "last_txn_at": "Timestamp of the customer's last transaction.",
    "snapshot_periods": "Number of periodic snapshots (months) held for the customer.",
    "max_days_past_due": "Worst days-past-due seen in any snapshot.",
    "latest_days_past_due": "Days past due in the latest snapshot.",
    "latest_period": "Period (month) of the customer's latest snapshot: the period early-warning alerts refer to.",
    "previous_days_past_due": "Days past due in the snapshot before the latest (null with a single snapshot).",
    "latest_credit_score_drop": "Fall in credit score from the previous snapshot to the latest, points (negative = rose).",
    "periods_past_due": "Number of snapshots with days past due above 0 (delinquency count).",
    "latest_credit_score": "Credit score in the latest snapshot.",
    "credit_score_change": "Latest credit score minus the earliest one (negative = worsening).",
    "max_credit_score_drop": "Largest fall in credit score from one snapshot to the next, points (0 if it never fell).",
    "latest_utilization": "Utilization in the latest snapshot (bill or balance over credit limit when not given).",
    "avg_utilization": "Average utilization over all snapshots.",
    "latest_balance": "Balance in the latest snapshot, currency units.",
    "avg_balance": "Average balance over all snapshots, currency units.",
    "latest_debt_to_income": "Debt-to-income in the latest snapshot.",
    "latest_bill_amount": "Billed amount in the latest snapshot, currency units.",
    "avg_bill_amount": "Average billed amount over all snapshots, currency units.",
    "avg_payment_amount": "Average amount paid per snapshot, currency units.",
    "payment_to_bill_ratio": "Total paid divided by total billed over all snapshots (null when nothing was billed).",
}

_AGE_BANDS = ((25, "18-25"), (35, "26-35"), (45, "36-45"), (55, "46-55"), (65, "56-65"))


def log_feature_name(column: str) -> str:
    return f"log_{column}"


def log_description(column: str) -> str:
    return f"ln(1 + {column}) with negatives floored at 0: the skewed amount on a scale models can use."


def _by_customer(frame: pl.LazyFrame, presorted: bool) -> pl.lazyframe.group_by.LazyGroupBy:
    """Group by customer; rows already sorted by customer take Polars' sorted fast path (3x faster)."""
    if presorted:
        return frame.set_sorted(CUSTOMER_KEY).group_by(CUSTOMER_KEY, maintain_order=True)
    return frame.group_by(CUSTOMER_KEY)


def transaction_features(
    transactions: pl.LazyFrame, as_of: date, *, has_invoice: bool, presorted: bool = False
) -> pl.LazyFrame:
    """Per customer: recency, frequency and monetary value, and spending habits.

    ``as_of`` is the day after the last transaction in the data, so recency is never negative.
    ``presorted`` says the rows are already ordered by customer (checked by the caller).
    """
    occurred = pl.col("occurred_at")
    year_start = pl.lit(as_of).cast(pl.Datetime("us")) - pl.duration(days=365)
    frequency = pl.col("invoice_id").n_unique() if has_invoice else pl.len()
    return (
        _by_customer(transactions, presorted)
        .agg(
            occurred.max().alias("last_txn_at"),
            occurred.min().alias("first_txn_at"),
            frequency.cast(pl.Int64).alias("rfm_frequency"),
            pl.col("amount").sum().alias("rfm_monetary"),
            pl.len().cast(pl.Int64).alias("txn_count"),
            pl.col("amount").mean().alias("txn_avg_amount"),
            pl.when(occurred >= year_start).then(pl.col("amount")).otherwise(0.0).sum().alias("spend_12m"),
        )
        .with_columns(
            (pl.lit(as_of) - pl.col("last_txn_at").dt.date()).dt.total_days().cast(pl.Int64).alias("rfm_recency_days")
        )
    )


def snapshot_features(snapshots: pl.LazyFrame, measures: Iterable[str], *, presorted: bool = False) -> pl.LazyFrame:
    """Per customer: delinquency counts, score changes and the latest and average of each measure.

    ``presorted`` says the rows are already ordered by customer, then period (checked by the
    caller); otherwise they are sorted here, since first/last/shift depend on the order.
    """
    present = set(measures)
    ordered = snapshots if presorted else snapshots.sort(CUSTOMER_KEY, "period")
    aggregations: list[pl.Expr] = [
        pl.len().cast(pl.Int64).alias("snapshot_periods"),
        pl.col("period").last().alias("latest_period"),
    ]
    # Changes since the customer's previous period are taken on rows before grouping: a shift
    # inside the aggregation runs group by group, six times slower at 24M snapshots.
    same_customer = pl.col(CUSTOMER_KEY) == pl.col(CUSTOMER_KEY).shift(1)
    if "days_past_due" in present:
        dpd = pl.col("days_past_due")
        ordered = ordered.with_columns(pl.when(same_customer).then(dpd.shift(1)).alias("_previous_dpd"))
        aggregations += [
            dpd.max().alias("max_days_past_due"),
            dpd.last().alias("latest_days_past_due"),
            pl.col("_previous_dpd").last().alias("previous_days_past_due"),
            (dpd > 0).sum().cast(pl.Int64).alias("periods_past_due"),
        ]
    if "credit_score" in present:
        score = pl.col("credit_score")
        ordered = ordered.with_columns(pl.when(same_customer).then(score.shift(1) - score).alias("_score_drop"))
        aggregations += [
            score.last().alias("latest_credit_score"),
            (score.last() - score.first()).alias("credit_score_change"),
            pl.col("_score_drop").max().fill_null(0).clip(lower_bound=0).alias("max_credit_score_drop"),
            pl.col("_score_drop").last().alias("latest_credit_score_drop"),
        ]
    for measure, latest, average in (
        ("utilization", "latest_utilization", "avg_utilization"),
        ("balance", "latest_balance", "avg_balance"),
        ("bill_amount", "latest_bill_amount", "avg_bill_amount"),
    ):
        if measure in present:
            aggregations += [pl.col(measure).last().alias(latest), pl.col(measure).mean().alias(average)]
    if "debt_to_income" in present:
        aggregations.append(pl.col("debt_to_income").last().alias("latest_debt_to_income"))
    if "payment_amount" in present:
        aggregations.append(pl.col("payment_amount").mean().alias("avg_payment_amount"))
        if "bill_amount" in present:
            billed = pl.col("bill_amount").clip(lower_bound=0).sum()
            aggregations.append(
                pl.when(billed > 0).then(pl.col("payment_amount").sum() / billed).alias("payment_to_bill_ratio")
            )
    return _by_customer(ordered, presorted=True).agg(aggregations)


def _safe_ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator)


def _total(columns: list[str]) -> pl.Expr:
    return pl.sum_horizontal([pl.col(c).fill_null(0) for c in columns])


def ratio_features(customers: pl.LazyFrame, measures: dict[str, list[str]]) -> pl.LazyFrame:
    """Debt-to-income, EMI-to-income, utilization, savings ratio and spend-to-income, where inputs exist.

    ``measures`` maps a measure (income, debt, deposit, ...) to the mart columns that carry it.
    """
    schema = customers.collect_schema()
    income_columns = measures.get("income", [])
    income = pl.col(income_columns[0]) if income_columns else None
    debts = measures.get("debt", []) + measures.get("card_balance", [])
    deposits = measures.get("deposit", []) + measures.get("savings", [])
    new: list[pl.Expr] = []
    if debts:
        new.append(_total(debts).alias("total_debt"))
    if deposits:
        new.append(_total(deposits).alias("total_deposits"))
    if income is not None:
        if debts:
            new.append(_safe_ratio(_total(debts), income).alias("debt_to_income"))
        if measures.get("instalment"):
            new.append(_safe_ratio(_total(measures["instalment"]) * 12, income).alias("emi_to_income"))
        savings = measures.get("savings") or measures.get("deposit")
        if savings:
            new.append(_safe_ratio(_total(savings), income).alias("savings_ratio"))
        if "spend_12m" in schema:
            new.append(_safe_ratio(pl.col("spend_12m").fill_null(0), income).alias("spend_to_income"))
    limits = measures.get("credit_limit", [])
    if limits:
        balance_columns = measures.get("card_balance", [])
        if balance_columns:
            balance = _total(balance_columns)
        elif "latest_bill_amount" in schema:
            balance = pl.col("latest_bill_amount").clip(lower_bound=0)
        else:
            balance = None
        if balance is not None:
            limit = _total(limits)
            new.append(pl.when(limit > 0).then(balance / limit).otherwise(0.0).alias("utilization"))
    return customers.with_columns(new) if new else customers


def log_features(customers: pl.LazyFrame, columns: Iterable[str]) -> pl.LazyFrame:
    """``log_<col> = ln(1 + max(col, 0))`` for skewed non-negative amounts."""
    return customers.with_columns(
        pl.col(c).cast(pl.Float64).clip(lower_bound=0).log1p().alias(log_feature_name(c)) for c in columns
    )


def age_band(customers: pl.LazyFrame) -> pl.LazyFrame:
    """Add ``age_band`` from ``age``: the bands risk teams report fairness and filters by."""
    age = pl.col("age")
    band = pl.when(age.is_null()).then(pl.lit(None, dtype=pl.String))
    for upper, label in _AGE_BANDS:
        band = band.when(age <= upper).then(pl.lit(label))
    return customers.with_columns(band.otherwise(pl.lit("66+")).alias("age_band"))

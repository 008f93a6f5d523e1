"""Reason codes: the three factors that raise a customer's risk most, in words an analyst can read out.

They come from the logistic PD model, whichever family is champion: its log-odds are a sum of
one term per input column, so "how much does this column push this customer above the average
customer" has an exact answer (coefficient x (customer's value - training mean), summed over the
column's one-hot and missing-value indicators). That is the adverse-action practice of
scorecards, and the same table feeds the dashboard and the reports, so they always agree.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from .risk import FeatureSet, model_input

#: How a column reads in a sentence; unknown columns fall back to their name in words.
FEATURE_LABELS: dict[str, str] = {
    "debt_to_income": "Debt-to-income",
    "latest_debt_to_income": "Debt-to-income (latest month)",
    "emi_to_income": "Repayments-to-income",
    "utilization": "Card utilization",
    "latest_utilization": "Utilization (latest month)",
    "avg_utilization": "Average utilization",
    "savings_ratio": "Savings-to-income",
    "spend_to_income": "Spending-to-income",
    "credit_score": "Credit score",
    "latest_credit_score": "Credit score (latest month)",
    "credit_score_change": "Credit score change",
    "max_credit_score_drop": "Largest monthly credit-score fall",
    "latest_credit_score_drop": "Credit-score fall last month",
    "max_days_past_due": "Worst days past due",
    "latest_days_past_due": "Days past due (latest month)",
    "previous_days_past_due": "Days past due (month before)",
    "periods_past_due": "Months past due",
    "annual_income": "Annual income",
    "loan_amount": "Loan amount",
    "credit_limit": "Credit limit",
    "credit_card_limit": "Card limit",
    "total_debt": "Total debt",
    "total_deposits": "Total deposits",
    "savings_balance": "Savings balance",
    "monthly_emi": "Monthly instalments",
    "duration_months": "Loan duration",
    "age": "Age",
    "tenure_months": "Months with the bank",
    "employment_years": "Years in employment",
    "payment_to_bill_ratio": "Share of bills paid",
    "checking_account": "Checking account",
    "saving_accounts": "Savings account",
}
#: Limits the risk team works with: a reason quotes the limit when the value is past it.
REFERENCE_LIMITS: dict[str, float] = {
    "debt_to_income": 0.6,
    "latest_debt_to_income": 0.6,
    "utilization": 0.9,
    "latest_utilization": 0.9,
    "emi_to_income": 0.4,
    "latest_days_past_due": 30,
    "max_days_past_due": 30,
    "previous_days_past_due": 30,
    "latest_credit_score_drop": 15,
}
#: Terms smaller than this (in log-odds) are noise, not a reason worth reading out.
MIN_CONTRIBUTION = 0.05
#: Whole words of a column name that make it a share, printed as a percentage.
_PERCENT_WORDS = ("ratio", "utilization", "share")
_DAYS_WORDS = ("days_past_due", "recency_days")


def label(column: str) -> str:
    return FEATURE_LABELS.get(column, column.replace("_", " ").capitalize())


def value_kind(column: str, features: FeatureSet) -> str:
    if column in features.categorical:
        return "category"
    if column.startswith(("has_", "is_")):
        return "flag"
    words = column.split("_")
    if column.endswith("_to_income") or any(word in words for word in _PERCENT_WORDS):
        return "percent"
    if column.endswith(_DAYS_WORDS):
        return "days"
    if column in features.amounts:
        return "amount"
    return "number"


def format_value(value: float, kind: str) -> str:
    """One value as the reason sentence shows it: the same expression as the table, so they always agree."""
    frame = pl.DataFrame({"value": [float(value)], "kind": [kind]})
    return frame.select(_format_expr(pl.col("value"), pl.col("kind"))).item()


def _format_expr(value: pl.Expr, kind: pl.Expr) -> pl.Expr:
    """Vectorised :func:`format_value` over a column of values and a column of kinds."""
    whole = value.round(0).cast(pl.Int64).cast(pl.String)
    return (
        pl.when(kind == "flag")
        .then(pl.when(value > 0).then(pl.lit("yes")).otherwise(pl.lit("no")))
        .when(kind == "percent")
        .then(pl.concat_str([(value * 100).round(0).cast(pl.Int64).cast(pl.String), pl.lit("%")]))
        .when(kind == "days")
        .then(pl.concat_str([whole, pl.lit(" days")]))
        .when((kind == "amount") & (value.abs() >= 1e6))
        .then(pl.concat_str([(value / 1e6).round(1).cast(pl.String), pl.lit("m")]))
        .when((kind == "amount") & (value.abs() >= 1e3))
        .then(pl.concat_str([(value / 1e3).round(1).cast(pl.String), pl.lit("k")]))
        .when((kind == "amount") | (value.round(0) == value) | (value.abs() >= 100))
        .then(whole)
        .otherwise(value.round(2).cast(pl.String))
    )


@dataclass
class ReasonModel:
    """The logistic pipeline's terms grouped by mart column, with what each column reads like."""

    pipeline: object
    features: FeatureSet
    columns: list[str]
    term_column: np.ndarray  # for each transformed term, the index of its mart column
    coefficients: np.ndarray
    term_means: np.ndarray
    typical: dict[str, float]

    @classmethod
    def fit(cls, pipeline, features: FeatureSet, training_input: pl.DataFrame) -> ReasonModel:
        prep = pipeline.named_steps["prep"]
        columns = features.columns
        term_column = np.array([_term_owner(name, columns, features) for name in prep.get_feature_names_out()])
        transformed = prep.transform(training_input)
        typical = {
            c: float(training_input.get_column(c).median())
            for c in features.numeric_columns
            if training_input.get_column(c).null_count() < training_input.height
        }
        return cls(
            pipeline,
            features,
            columns,
            term_column,
            pipeline.named_steps["model"].coef_[0].astype(float),
            transformed.mean(axis=0),
            typical,
        )

    def contributions(self, x: pl.DataFrame) -> np.ndarray:
        """Log-odds each mart column adds for each customer, against the average training customer."""
        terms = (self.pipeline.named_steps["prep"].transform(x) - self.term_means) * self.coefficients
        by_column = np.zeros((x.height, len(self.columns)))
        np.add.at(by_column.T, self.term_column, terms.T)
        return by_column

    def reasons(self, customers: pl.DataFrame, top: int = 3, chunk_rows: int = 200_000) -> pl.DataFrame:
        """customer_id, reason_code_1..top (column names) and reason_1..top (sentences)."""
        parts = [self._reasons(customers.slice(s, chunk_rows), top) for s in range(0, customers.height, chunk_rows)]
        return pl.concat(parts) if parts else pl.DataFrame()

    def info(self) -> pl.DataFrame:
        """code, kind, label, typical, limit of every mart column: what a sentence needs to read it."""
        return pl.DataFrame(
            {
                "code": self.columns,
                "kind": [value_kind(c, self.features) for c in self.columns],
                "label": [label(c) for c in self.columns],
                "typical": [self.typical.get(c) for c in self.columns],
                "limit": [REFERENCE_LIMITS.get(c) for c in self.columns],
            },
            schema_overrides={"typical": pl.Float64, "limit": pl.Float64},
        )

    def _reasons(self, customers: pl.DataFrame, top: int) -> pl.DataFrame:
        x = model_input(customers, self.features)
        contributions = self.contributions(x)
        order = np.argsort(-contributions, axis=1, kind="stable")[:, :top]
        picked = np.take_along_axis(contributions, order, axis=1)
        out = {"customer_id": customers.get_column("customer_id")}
        info = self.info()
        numeric_columns = self.features.numeric_columns
        numeric_values = x.select(numeric_columns).to_numpy() if numeric_columns else np.zeros((x.height, 0))
        text_values = x.select(self.features.categorical)
        frames = []
        for slot in range(top):
            index = order[:, slot]
            raises_risk = picked[:, slot] > MIN_CONTRIBUTION
            numeric_index = np.clip(index, 0, max(len(numeric_columns) - 1, 0))
            value = numeric_values[np.arange(x.height), numeric_index] if numeric_columns else np.full(x.height, np.nan)
            code = np.array(self.columns, dtype=object)[index]
            slot_frame = pl.DataFrame(
                {"code": pl.Series(code, dtype=pl.String), "value": value, "raises": raises_risk}
            ).with_columns(
                category=pl.coalesce(
                    [pl.when(pl.col("code") == c).then(text_values.get_column(c)) for c in self.features.categorical]
                    or [pl.lit(None, dtype=pl.String)]
                )
            )
            slot_frame = slot_frame.join(info, on="code", how="left", maintain_order="left")
            frames.append(
                slot_frame.select(
                    _sentence().alias(f"reason_{slot + 1}"),
                    pl.when(pl.col("raises")).then("code").alias(f"reason_code_{slot + 1}"),
                )
            )
        for slot, frame in enumerate(frames, start=1):
            out[f"reason_code_{slot}"] = frame.get_column(f"reason_code_{slot}")
        for slot, frame in enumerate(frames, start=1):
            out[f"reason_{slot}"] = frame.get_column(f"reason_{slot}")
        return pl.DataFrame(out)


@functools.cache
def _sentence() -> pl.Expr:
    """'Debt-to-income 72%, above 60%' / 'Credit score 580, below the typical 690' / 'Checking account: little'."""
    value, kind = pl.col("value"), pl.col("kind")
    is_category = kind == "category"
    missing = pl.when(is_category).then(pl.col("category").is_null()).otherwise(value.is_null() | value.is_nan())
    above = value > pl.col("typical")
    past_limit = pl.col("limit").is_not_null() & (value > pl.col("limit"))
    reference = (
        pl.when(past_limit)
        .then(pl.concat_str([pl.lit("above "), _format_expr(pl.col("limit"), kind)]))
        .otherwise(
            pl.concat_str(
                [
                    pl.when(above).then(pl.lit("above")).otherwise(pl.lit("below")),
                    pl.lit(" the typical "),
                    _format_expr(pl.col("typical"), kind),
                ]
            )
        )
    )
    return (
        pl.when(~pl.col("raises"))
        .then(pl.lit(None, dtype=pl.String))
        .when(missing)
        .then(pl.concat_str([pl.col("label"), pl.lit(" not known")]))
        .when(is_category)
        .then(pl.concat_str([pl.col("label"), pl.lit(": "), pl.col("category")]))
        .when(kind == "flag")
        .then(pl.concat_str([pl.col("label"), pl.lit(": "), _format_expr(value, kind)]))
        .otherwise(pl.concat_str([pl.col("label"), pl.lit(" "), _format_expr(value, kind), pl.lit(", "), reference]))
    )


def _term_owner(term: str, columns: list[str], features: FeatureSet) -> int:
    """Index of the mart column a transformed term comes from ('amount__missingindicator_x' -> x)."""
    part, _, name = term.partition("__")
    name = name.removeprefix("missingindicator_")
    if part == "category":
        owners = [c for c in features.categorical if name == c or name.startswith(f"{c}_")]
        return columns.index(max(owners, key=len))
    return columns.index(name)


def reason_rows(model: ReasonModel, terms: np.ndarray, applicant: dict, top: int = 3) -> dict:
    """reason_code_1..top and reason_1..top of one applicant from its transformed terms.

    The sentences follow the table's expression, in plain Python (:func:`_sentence_text`).
    """
    by_column = np.zeros(len(model.columns))
    np.add.at(by_column, model.term_column, (terms - model.term_means) * model.coefficients)
    order = np.argsort(-by_column, kind="stable")[:top]
    codes = [model.columns[i] for i in order]
    numeric = set(model.features.numeric_columns)
    result: dict = {}
    sentences = []
    for slot, (code, i) in enumerate(zip(codes, order, strict=True), start=1):
        raises = bool(by_column[i] > MIN_CONTRIBUTION)
        given = applicant.get(code)
        result[f"reason_code_{slot}"] = code if raises else None
        sentences.append(
            _sentence_text(
                value=_as_float(given) if code in numeric else None,
                raises=raises,
                category=None if code in numeric or given is None else str(given),
                kind=value_kind(code, model.features),
                label=label(code),
                typical=model.typical.get(code),
                limit=REFERENCE_LIMITS.get(code),
            )
        )
    for slot, sentence in enumerate(sentences, start=1):
        result[f"reason_{slot}"] = sentence
    return result


def _sentence_text(
    value: float | None,
    raises: bool,
    category: str | None,
    kind: str,
    label: str,
    typical: float | None,
    limit: float | None,
) -> str | None:
    """:func:`_sentence` for one reason in plain Python: a Polars query on a one-row frame costs a
    millisecond or more, too much for the scoring API. Same rules, same text (a test compares them)."""
    if not raises:
        return None
    if (category is None) if kind == "category" else (value is None or math.isnan(value)):
        return f"{label} not known"
    if kind == "category":
        return f"{label}: {category}"
    if kind == "flag":
        return f"{label}: {_format_text(value, kind)}"
    if limit is not None and value > limit:
        reference = f"above {_format_text(limit, kind)}"
    elif typical is None:
        return None  # as the expression: no typical value, no sentence
    else:
        reference = f"{'above' if value > typical else 'below'} the typical {_format_text(typical, kind)}"
    return f"{label} {_format_text(value, kind)}, {reference}"


def _format_text(value: float, kind: str) -> str:
    """:func:`_format_expr` for one value: Polars rounds half to even on the scaled value, as ``np.rint``."""
    if kind == "flag":
        return "yes" if value > 0 else "no"
    if not math.isfinite(value) or abs(value) >= 1e17:
        return f"{value:g}"  # past what the table's integer cast takes: shown as it is rather than failing
    if kind == "percent":
        return f"{int(np.rint(value * 100))}%"
    whole = str(int(np.rint(value)))
    if kind == "days":
        return f"{whole} days"
    if kind == "amount" and abs(value) >= 1e6:
        return f"{float(np.rint(value / 1e6 * 10) / 10)!r}m"
    if kind == "amount" and abs(value) >= 1e3:
        return f"{float(np.rint(value / 1e3 * 10) / 10)!r}k"
    if kind == "amount" or np.rint(value) == value or abs(value) >= 100:
        return whole
    return repr(float(np.rint(value * 100) / 100))


def _as_float(value: object) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None

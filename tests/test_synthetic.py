"""The synthetic bank: schema, determinism, realism, default model and recoverable personas."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, roc_auc_score, silhouette_score
from sklearn.preprocessing import StandardScaler

from warehouse import synthetic
from warehouse.synthetic import (
    AS_OF_DATE,
    CATEGORIES,
    DEFAULT_COEFFICIENTS,
    DEFAULT_FEATURES,
    MISSING_RATES,
    PERSONAS,
    PRODUCTS,
    default_probability,
    generate_bank,
)

FILES = (
    "customers",
    "loan_applications",
    "transactions",
    "monthly_snapshots",
    "latent_personas",
)
SMALL_N = 5_000
SMALL_CHUNK = 2_000  # so the small bank spans three chunks, the last one partial

SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "customers": {
        "customer_id": pl.Int64(),
        "age": pl.Int32(),
        "sex": pl.String(),
        "marital_status": pl.String(),
        "education": pl.String(),
        "job_skill": pl.Int32(),
        "housing": pl.String(),
        "region": pl.String(),
        "annual_income": pl.Float64(),
        "employment_years": pl.Float64(),
        "tenure_months": pl.Int32(),
        "app_logins_per_month": pl.Float64(),
        "online_txn_share": pl.Float64(),
        "credit_score": pl.Int32(),
        **{f"has_{name}": pl.Boolean() for name in PRODUCTS},
        **{
            name: pl.Float64()
            for name in (
                "savings_balance",
                "checking_balance",
                "term_deposit_balance",
                "investment_balance",
                "credit_card_limit",
                "credit_card_balance",
                "personal_loan_balance",
                "car_loan_balance",
                "mortgage_balance",
                "bnpl_balance",
                "monthly_emi",
            )
        },
    },
    "loan_applications": {
        "application_id": pl.Int64(),
        "customer_id": pl.Int64(),
        "applied_at": pl.Date(),
        "loan_amount": pl.Float64(),
        "duration_months": pl.Int32(),
        "purpose": pl.String(),
        "defaulted_12m": pl.Boolean(),
    },
    "transactions": {
        "transaction_id": pl.Int64(),
        "customer_id": pl.Int64(),
        "occurred_at": pl.Datetime("us"),
        "amount": pl.Float64(),
        "merchant_category": pl.String(),
        "channel": pl.String(),
    },
    "monthly_snapshots": {
        "customer_id": pl.Int64(),
        "month": pl.Date(),
        "balance": pl.Float64(),
        "utilization": pl.Float64(),
        "debt_to_income": pl.Float64(),
        "credit_score": pl.Int32(),
        "days_past_due": pl.Int32(),
    },
    "latent_personas": {"customer_id": pl.Int64(), "persona": pl.String()},
}

# What a later issue's segmentation does: log1p on skewed amounts, median imputation,
# StandardScaler over every numeric and boolean customer column.
LOG_COLUMNS = ("annual_income", "credit_card_limit", "monthly_emi")


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _generate_small(folder: Path, seed: int) -> tuple[dict, list[str]]:
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synthetic, "_CHUNK_SIZE", SMALL_CHUNK)
        summary = generate_bank(SMALL_N, seed, folder, lines.append)
    return summary, lines


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[str]]:
    folder = tmp_path_factory.mktemp("small-bank")
    summary, lines = _generate_small(folder, 11)
    return folder, summary, lines


@pytest.fixture(scope="module")
def tables(small: tuple[Path, dict, list[str]]) -> dict[str, pl.DataFrame]:
    folder = small[0]
    return {name: pl.read_parquet(folder / f"{name}.parquet") for name in FILES}


@pytest.fixture(scope="module")
def bank_20k(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """20,000-customer banks by seed, each generated once per module."""
    banks: dict[int, Path] = {}

    def get(seed: int) -> Path:
        if seed not in banks:
            banks[seed] = tmp_path_factory.mktemp(f"bank-20k-seed{seed}")
            generate_bank(20_000, seed, banks[seed])
        return banks[seed]

    return get


def _segmentation_matrix(customers: pl.DataFrame) -> np.ndarray:
    columns = [
        name
        for name, dtype in customers.schema.items()
        if name != "customer_id" and (dtype.is_numeric() or dtype == pl.Boolean)
    ]
    exprs = []
    for name in columns:
        expr = pl.col(name).cast(pl.Float64)
        if name in LOG_COLUMNS or name.endswith("_balance"):
            expr = expr.log1p()
        exprs.append(expr.fill_null(expr.median()).alias(name))
    return StandardScaler().fit_transform(customers.select(exprs).to_numpy())


# --------------------------------------------------------------------------- API


@pytest.mark.parametrize("n", [0, 999, 5_000_001])
def test_rejects_sizes_out_of_range(n: int, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="between 1,000 and 5,000,000"):
        generate_bank(n, 1, tmp_path)
    assert not any(tmp_path.iterdir())


def test_rejects_non_integer_sizes(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="integer"):
        generate_bank(2_000.0, 1, tmp_path)  # type: ignore[arg-type]


def test_personas_table_matches_profiles() -> None:
    assert len(PERSONAS) == 7
    assert tuple(p.slug for p in synthetic._PROFILES) == PERSONAS
    assert sum(p.share for p in synthetic._PROFILES) == pytest.approx(1.0)


def test_progress_reports_every_file_and_chunk(small: tuple[Path, dict, list[str]]) -> None:
    _, _, lines = small
    for name in FILES:
        assert f"{name}: 2,000/5,000 customers" in lines
        assert f"{name}: 5,000/5,000 customers" in lines
    assert lines[-1].startswith("generation.json")


def test_summary_is_written_and_consistent(
    small: tuple[Path, dict, list[str]], tables: dict[str, pl.DataFrame]
) -> None:
    folder, summary, _ = small
    assert json.loads((folder / "generation.json").read_text()) == summary
    assert summary["seed"] == 11
    assert summary["n_customers"] == SMALL_N
    assert summary["as_of_date"] == "2026-10-31"
    assert summary["missing_rates"] == MISSING_RATES
    assert summary["default_model"]["coefficients"] == DEFAULT_COEFFICIENTS
    for name in FILES:
        assert summary["row_counts"][f"{name}.parquet"] == tables[name].height
    shares = tables["latent_personas"]["persona"].value_counts(normalize=True)
    realised = dict(zip(shares["persona"], shares["proportion"], strict=True))
    assert summary["persona_shares"] == pytest.approx(realised, abs=1e-6)
    defaults = tables["loan_applications"]["defaulted_12m"].mean()
    assert summary["default_rate"] == pytest.approx(defaults, abs=1e-6)


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_files(small: tuple[Path, dict, list[str]], tmp_path: Path) -> None:
    folder = small[0]
    _generate_small(tmp_path / "again", 11)
    assert _digests(tmp_path / "again") == _digests(folder)


def test_other_seed_gives_other_data(small: tuple[Path, dict, list[str]], tmp_path: Path) -> None:
    generate_bank(1_000, 12, tmp_path)
    first = pl.read_parquet(small[0] / "customers.parquet").head(1_000)
    other = pl.read_parquet(tmp_path / "customers.parquet")
    assert not first.equals(other)


# --------------------------------------------------------------------------- schema and keys


@pytest.mark.parametrize("name", FILES)
def test_schema(tables: dict[str, pl.DataFrame], name: str) -> None:
    assert dict(tables[name].schema) == SCHEMAS[name]


def test_customer_keys_and_one_application_each(tables: dict[str, pl.DataFrame]) -> None:
    ids = pl.Series("customer_id", np.arange(1, SMALL_N + 1))
    assert tables["customers"]["customer_id"].equals(ids)
    assert tables["latent_personas"]["customer_id"].equals(ids)
    apps = tables["loan_applications"]
    assert apps["customer_id"].equals(ids)
    assert apps["application_id"].n_unique() == SMALL_N
    assert set(tables["latent_personas"]["persona"].unique()) == set(PERSONAS)


def test_snapshots_cover_24_months_per_customer(tables: dict[str, pl.DataFrame]) -> None:
    snaps = tables["monthly_snapshots"]
    assert snaps.height == 24 * SMALL_N
    assert snaps.select(["customer_id", "month"]).is_duplicated().sum() == 0
    assert snaps.equals(snaps.sort("customer_id", "month"))
    months = snaps["month"].unique().sort().to_list()
    assert len(months) == 24
    assert months[0] == date(2024, 11, 1)
    assert months[-1] == date(2026, 10, 1)


def test_transactions_are_sorted_numbered_and_in_window(tables: dict[str, pl.DataFrame]) -> None:
    txn = tables["transactions"]
    assert txn.equals(txn.sort("customer_id", "occurred_at", maintain_order=True))
    ids = txn["transaction_id"]
    assert ids.equals(pl.Series("transaction_id", np.arange(1, txn.height + 1)))
    assert txn["occurred_at"].min() >= datetime(2024, 11, 1)
    assert txn["occurred_at"].max() < datetime(2026, 11, 1)
    assert 40 <= txn.height / SMALL_N <= 65
    assert txn["amount"].min() > 0
    assert set(txn["merchant_category"].unique()) == set(CATEGORIES["merchant_category"])
    assert set(txn["channel"].unique()) == set(CATEGORIES["channel"])
    cash = txn.filter(pl.col("merchant_category") == "cash_withdrawal")
    assert set(cash["channel"].unique()) <= {"branch", "atm"}


# --------------------------------------------------------------------------- values


def test_customer_value_domains(tables: dict[str, pl.DataFrame]) -> None:
    c = tables["customers"]
    assert c["age"].min() >= 18
    assert c["age"].max() <= 95
    assert set(c["job_skill"].unique()) == {0, 1, 2, 3}
    assert c["credit_score"].min() >= 300
    assert c["credit_score"].max() <= 850
    assert c["online_txn_share"].min() >= 0
    assert c["online_txn_share"].max() <= 1
    assert c["tenure_months"].min() >= 24
    assert c.filter(pl.col("employment_years") > pl.col("age") - 16).height == 0
    for name in ("sex", "marital_status", "education", "housing", "region"):
        assert set(c[name].drop_nulls().unique()) == set(CATEGORIES[name]), name
    assert c["annual_income"].drop_nulls().min() > 0


def test_balances_follow_holdings(tables: dict[str, pl.DataFrame]) -> None:
    c = tables["customers"]
    pairs = {
        "savings": "savings_balance",
        "checking": "checking_balance",
        "term_deposit": "term_deposit_balance",
        "investments": "investment_balance",
        "credit_card": "credit_card_limit",
        "personal_loan": "personal_loan_balance",
        "car_loan": "car_loan_balance",
        "mortgage": "mortgage_balance",
        "bnpl": "bnpl_balance",
    }
    for product, balance in pairs.items():
        held = c[f"has_{product}"]
        assert (c.filter(held)[balance] > 0).all(), balance
        assert (c.filter(~held)[balance] == 0).all(), balance
    assert (c.filter(~pl.col("has_credit_card"))["credit_card_balance"] == 0).all()
    utilization = c.filter("has_credit_card").select(pl.col("credit_card_balance") / pl.col("credit_card_limit"))
    assert utilization.to_series().max() <= 1.2 + 1e-9
    loans = pl.any_horizontal(pl.col(f"has_{p}") for p in ("personal_loan", "car_loan", "mortgage", "bnpl"))
    assert c.select((loans == (pl.col("monthly_emi") > 0)).all()).item()
    assert (c.filter("has_mortgage")["housing"] == "own").all()


def test_last_snapshot_matches_customer(tables: dict[str, pl.DataFrame]) -> None:
    c = tables["customers"]
    last = tables["monthly_snapshots"].filter(pl.col("month") == date(2026, 10, 1))
    joined = c.join(last, on="customer_id", suffix="_snap")
    assert (joined["credit_score"] == joined["credit_score_snap"]).all()
    deposits = joined["savings_balance"] + joined["checking_balance"] + joined["term_deposit_balance"]
    assert np.allclose(joined["balance"], deposits, atol=0.02)
    utilization = (joined["credit_card_balance"] / joined["credit_card_limit"]).fill_nan(0.0)
    assert np.allclose(joined["utilization"], utilization, atol=1e-4)


def test_snapshot_value_domains(tables: dict[str, pl.DataFrame]) -> None:
    s = tables["monthly_snapshots"]
    assert set(s["days_past_due"].unique()) <= {0, 30, 60, 90, 120}
    assert s["days_past_due"].max() == 120
    assert s["utilization"].min() >= 0
    assert s["utilization"].max() <= 1.2
    assert s["debt_to_income"].min() >= 0
    assert s["balance"].min() >= 0
    assert s["credit_score"].min() >= 300
    assert s["credit_score"].max() <= 850


def test_application_value_domains(tables: dict[str, pl.DataFrame]) -> None:
    a = tables["loan_applications"]
    assert a["applied_at"].min() >= date(2024, 10, 31)
    assert a["applied_at"].max() <= date(2025, 10, 31)
    assert a["duration_months"].min() >= 6
    assert a["duration_months"].max() <= 72
    assert a["loan_amount"].min() > 0
    assert set(a["purpose"].unique()) == set(CATEGORIES["purpose"])


def test_only_customers_have_nulls(tables: dict[str, pl.DataFrame]) -> None:
    for name, frame in tables.items():
        null_columns = {col for col in frame.columns if frame[col].null_count()}
        expected = set(MISSING_RATES) if name == "customers" else set()
        assert null_columns == expected, name


# --------------------------------------------------------------------------- realism at 20k


def test_missing_rates_are_as_documented(bank_20k) -> None:
    customers = pl.read_parquet(bank_20k(1) / "customers.parquet")
    for column, rate in MISSING_RATES.items():
        share = customers[column].null_count() / customers.height
        assert share == pytest.approx(rate, abs=0.004), column


def test_income_outliers_exist_but_are_rare(bank_20k) -> None:
    income = pl.read_parquet(bank_20k(1) / "customers.parquet")["annual_income"].drop_nulls()
    extreme = (income > 10 * income.quantile(0.99)).sum()
    assert 1 <= extreme <= 0.003 * len(income)


def test_about_one_percent_have_a_sharp_score_drop(bank_20k) -> None:
    snaps = pl.read_parquet(bank_20k(1) / "monthly_snapshots.parquet")
    drops = snaps.group_by("customer_id").agg((pl.col("credit_score").diff() < -15).any().alias("dropped"))
    assert 0.006 <= drops["dropped"].mean() <= 0.015


def test_recency_and_activity_vary_by_persona(bank_20k) -> None:
    folder = bank_20k(1)
    personas = pl.read_parquet(folder / "latent_personas.parquet")
    per_customer = (
        pl.scan_parquet(folder / "transactions.parquet")
        .group_by("customer_id")
        .agg(pl.len().alias("n"), pl.col("occurred_at").max().alias("last"))
        .collect()
    )
    stats = (
        personas.join(per_customer, on="customer_id", how="left")
        .with_columns(
            pl.col("n").fill_null(0),
            (pl.col("last").is_null() | (pl.col("last") < datetime(2026, 8, 31))).alias("idle"),
        )
        .group_by("persona")
        .agg(pl.col("n").mean(), pl.col("idle").mean())
    )
    by = {row["persona"]: row for row in stats.iter_rows(named=True)}
    assert by["paylater_users"]["n"] > 3 * by["mass_retail"]["n"]
    assert by["mass_retail"]["idle"] > 0.1
    assert by["paylater_users"]["idle"] < 0.05


def test_online_share_drives_digital_channels(bank_20k) -> None:
    folder = bank_20k(1)
    digital = (
        pl.scan_parquet(folder / "transactions.parquet")
        .group_by("customer_id")
        .agg(pl.col("channel").is_in(["app", "online"]).mean().alias("digital"), pl.len())
        .filter(pl.col("len") >= 30)
        .collect()
    )
    joined = digital.join(pl.read_parquet(folder / "customers.parquet"), on="customer_id")
    assert joined.select(pl.corr("digital", "online_txn_share")).item() > 0.8
    gap = joined.select((pl.col("digital") - pl.col("online_txn_share")).mean()).item()
    assert abs(gap) < 0.02


# --------------------------------------------------------------------------- default model


def _observable_pd(folder: Path) -> pl.DataFrame:
    """Recompute the documented default model from the published files alone."""
    customers = pl.read_parquet(folder / "customers.parquet")
    apps = pl.read_parquet(folder / "loan_applications.parquet")
    dpd = (
        pl.read_parquet(folder / "monthly_snapshots.parquet")
        .filter(pl.col("month") >= date(2025, 11, 1))
        .group_by("customer_id")
        .agg(pl.col("days_past_due").max().alias("max_dpd"))
    )
    frame = customers.join(apps, on="customer_id").join(dpd, on="customer_id")
    frame = frame.filter(pl.col("annual_income").is_not_null())
    income = pl.col("annual_income")
    features = frame.select(
        utilization=(pl.col("credit_card_balance") / pl.col("credit_card_limit")).fill_nan(0.0),
        debt_to_income=pl.min_horizontal(pl.col("monthly_emi") * 12 / income, 3.0),
        max_dpd_12m=pl.col("max_dpd") / 30,
        savings_ratio=pl.min_horizontal(pl.col("savings_balance") / income, 2.0),
        credit_score=(pl.col("credit_score") - 650) / 100,
        loan_to_income=pl.min_horizontal(pl.col("loan_amount") / income, 3.0),
        age=(pl.col("age") - 45) / 10,
    )
    pd_ = default_probability({k: features[k].to_numpy() for k in DEFAULT_FEATURES})
    return frame.select("defaulted_12m", "max_dpd").with_columns(pd=pd_)


def test_default_rate_and_oracle_auc(bank_20k) -> None:
    folder = bank_20k(1)
    summary = json.loads((folder / "generation.json").read_text())
    assert 0.08 <= summary["default_rate"] <= 0.12
    assert 0.80 <= summary["best_auc"] <= 0.88
    observed = _observable_pd(folder)
    auc = roc_auc_score(observed["defaulted_12m"], observed["pd"])
    assert auc == pytest.approx(summary["best_auc"], abs=0.01)
    assert observed["pd"].mean() == pytest.approx(summary["default_rate"], abs=0.01)


def test_delinquency_signals_default(bank_20k) -> None:
    observed = _observable_pd(bank_20k(1))
    rates = observed.group_by(pl.col("max_dpd") > 0).agg(pl.col("defaulted_12m").mean())
    by = dict(rates.iter_rows())
    assert by[True] > 3 * by[False]


def test_default_risk_ranks_personas(bank_20k) -> None:
    folder = bank_20k(1)
    rates = (
        pl.read_parquet(folder / "loan_applications.parquet")
        .join(pl.read_parquet(folder / "latent_personas.parquet"), on="customer_id")
        .group_by("persona")
        .agg(pl.col("defaulted_12m").mean())
    )
    by = dict(rates.iter_rows())
    assert max(by, key=by.get) == "high_stakes_borrowers"
    assert by["affluent_investors"] < 0.03
    assert by["conservative_seniors"] < 0.03


# --------------------------------------------------------------------------- personas


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kmeans_recovers_personas(bank_20k, seed: int) -> None:
    folder = bank_20k(seed)
    X = _segmentation_matrix(pl.read_parquet(folder / "customers.parquet"))
    truth = pl.read_parquet(folder / "latent_personas.parquet")["persona"]
    labels = KMeans(n_clusters=7, n_init=10, random_state=0).fit_predict(X)
    assert adjusted_rand_score(truth, labels) >= 0.85


@pytest.mark.slow  # k-means over 20,000 customers for each k
def test_silhouette_peaks_near_seven_clusters(bank_20k) -> None:
    X = _segmentation_matrix(pl.read_parquet(bank_20k(1) / "customers.parquet"))
    sample = np.random.default_rng(0).choice(len(X), 10_000, replace=False)
    scores = {
        k: silhouette_score(X[sample], KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(X)[sample])
        for k in range(2, 9)
    }
    assert 6 <= max(scores, key=scores.get) <= 8


def test_as_of_date_is_fixed() -> None:
    assert AS_OF_DATE == date(2026, 10, 31)

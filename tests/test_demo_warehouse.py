"""The demo warehouse: engineered features equal what the source files say, computed independently."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest


@pytest.fixture(scope="module")
def mart(demo_db: Path) -> pl.DataFrame:
    with duckdb.connect(str(demo_db), read_only=True) as con:
        return con.sql("SELECT * FROM customers ORDER BY customer_id").pl()


def test_one_row_per_customer_with_target(mart: pl.DataFrame, demo_data: Path) -> None:
    source = pl.read_parquet(demo_data / "customers.parquet")
    applications = pl.read_parquet(demo_data / "loan_applications.parquet")
    assert mart.get_column("customer_id").to_list() == sorted(source.get_column("customer_id").to_list())
    joined = mart.join(applications, on="customer_id")
    assert joined.get_column("is_defaulted").equals(joined.get_column("defaulted_12m"), check_names=False)


def test_ratios_match_the_definitions(mart: pl.DataFrame, demo_data: Path) -> None:
    c = pl.read_parquet(demo_data / "customers.parquet").sort("customer_id")
    debt = (
        c["personal_loan_balance"]
        + c["car_loan_balance"]
        + c["mortgage_balance"]
        + c["bnpl_balance"]
        + c["credit_card_balance"]
    )
    expected_dti = pl.Series(
        [d / i if i is not None and i > 0 else None for d, i in zip(debt, c["annual_income"], strict=True)]
    )
    got = mart.get_column("debt_to_income")
    assert got.null_count() == expected_dti.null_count() > 0  # missing incomes stay missing, not zero
    assert ((got - expected_dti).abs().max() or 0) < 1e-9
    util = [
        b / lim if lim > 0 else 0.0 for b, lim in zip(c["credit_card_balance"], c["credit_card_limit"], strict=True)
    ]
    assert ((mart.get_column("utilization") - pl.Series(util)).abs().max() or 0) < 1e-12
    emi = [
        e * 12 / i if i is not None and i > 0 else None
        for e, i in zip(c["monthly_emi"], c["annual_income"], strict=True)
    ]
    assert ((mart.get_column("emi_to_income") - pl.Series(emi)).abs().max() or 0) < 1e-9
    assert (mart.get_column("log_annual_income") - c["annual_income"].log1p()).abs().max() < 1e-9


def test_rfm_matches_a_plain_recount(mart: pl.DataFrame, demo_data: Path) -> None:
    tx = pl.read_parquet(demo_data / "transactions.parquet")
    as_of = tx.get_column("occurred_at").max().date()
    for customer_id in mart.get_column("customer_id").sample(25, seed=3).to_list():
        mine = tx.filter(pl.col("customer_id") == customer_id)
        row = mart.filter(pl.col("customer_id") == customer_id).row(0, named=True)
        if mine.height == 0:
            assert row["txn_count"] == 0 and row["rfm_recency_days"] is None
            continue
        assert row["rfm_frequency"] == mine.height
        assert abs(row["rfm_monetary"] - mine.get_column("amount").sum()) < 1e-6
        last = mine.get_column("occurred_at").max().date()
        assert row["rfm_recency_days"] == (as_of - last).days + 1


def test_snapshot_features_match(mart: pl.DataFrame, demo_data: Path) -> None:
    snaps = pl.read_parquet(demo_data / "monthly_snapshots.parquet").sort("customer_id", "month")
    expected = snaps.group_by("customer_id").agg(
        pl.col("days_past_due").max().alias("max_days_past_due"),
        (pl.col("credit_score").last() - pl.col("credit_score").first()).alias("credit_score_change"),
        (pl.col("credit_score").shift(1) - pl.col("credit_score"))
        .max()
        .clip(lower_bound=0)
        .alias("max_credit_score_drop"),
        pl.len().alias("snapshot_periods"),
    )
    joined = mart.join(expected, on="customer_id", suffix="_expected")
    for name in ("max_days_past_due", "credit_score_change", "max_credit_score_drop", "snapshot_periods"):
        assert joined.get_column(name).equals(
            joined.get_column(f"{name}_expected"), check_names=False, check_dtypes=False
        ), name
    # The generator plants a few score drops of more than 15 points; the feature must see them.
    assert (mart.get_column("max_credit_score_drop") > 15).sum() > 0


def test_capabilities_and_dictionary(demo_db: Path) -> None:
    with duckdb.connect(str(demo_db), read_only=True) as con:
        capabilities = dict(con.execute("SELECT capability, is_supported FROM meta_capabilities").fetchall())
        comments = con.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'customers' AND column_name = 'debt_to_income'"
        ).fetchall()
        latent = con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE column_name ILIKE '%latent%' OR column_name = 'persona'"
        ).fetchall()
    assert capabilities == {
        "personas": True,
        "rfm": True,
        "risk_model": True,
        "early_warnings": True,
        "cross_sell": True,
        "statistics": True,
    }
    assert "annual income" in comments[0][0]
    assert latent == [(0,)], "the latent persona must never reach the warehouse"


def test_same_input_same_warehouse(demo_data: Path, tmp_path: Path) -> None:
    from warehouse.build import build_warehouse
    from warehouse.spec import load_spec

    spec, text = load_spec("demo")
    contents = []
    for name in ("a.duckdb", "b.duckdb"):
        build_warehouse(spec, text, demo_data, tmp_path / name)
        with duckdb.connect(str(tmp_path / name), read_only=True) as con:
            contents.append(con.sql("SELECT * FROM customers ORDER BY customer_id").pl())
    assert contents[0].equals(contents[1])

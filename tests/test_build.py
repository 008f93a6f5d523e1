"""Every built-in spec builds: on the small fixtures always, on the real datasets when present."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import FIXTURES, SHARED_DATA, Builder, file_digest, needs_shared_data

from warehouse.dictionary import missing_comments


def _query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _retail_expected(data_dir: Path) -> tuple[int, int, int]:
    """Lines kept, customers and lines rejected, computed straight from the source file."""
    lines = pl.read_parquet(data_dir / "online_retail" / "online_retail.parquet")
    kept = lines.filter(pl.col("CustomerID").is_not_null() & (pl.col("Quantity") > 0) & (pl.col("UnitPrice") > 0))
    return kept.height, kept.get_column("CustomerID").n_unique(), lines.height - kept.height


@pytest.mark.parametrize("spec", ["german-credit", "taiwan-default", "online-retail"])
def test_builtin_spec_builds_on_fixtures(build: Builder, spec: str) -> None:
    summary = build(spec)
    db = summary.db_path
    assert summary.customers > 0
    assert all(check.passed for check in summary.checks), summary.checks
    assert missing_comments(duckdb.connect(str(db), read_only=True)) == []
    (customers,) = _query(db, "SELECT count(*) FROM customers")[0]
    assert customers == summary.customers


def test_online_retail_fixture_counts_match_the_source(build: Builder) -> None:
    summary = build("online-retail")
    kept, customers, rejected = _retail_expected(FIXTURES)
    (result,) = summary.sources
    assert (result.rows_out, result.rows_rejected) == (kept, rejected)
    assert summary.customers == customers
    rows = _query(
        summary.db_path,
        "SELECT count(*), count(rfm_recency_days), min(rfm_recency_days), min(rfm_frequency) FROM customers",
    )
    assert rows[0][0] == customers and rows[0][1] == customers
    assert rows[0][2] >= 1 and rows[0][3] >= 1


def test_taiwan_wide_columns_become_snapshot_rows(build: Builder) -> None:
    summary = build("taiwan-default")
    db = summary.db_path
    source = pl.read_csv(FIXTURES / "taiwan_default" / "UCI_Credit_Card.csv")
    (snapshots, periods) = _query(db, "SELECT count(*), count(DISTINCT period) FROM stg_snapshots")[0]
    assert (snapshots, periods) == (source.height * 6, 6)
    first = source.row(0, named=True)
    rows = _query(
        db,
        "SELECT period_index, days_past_due, bill_amount, payment_amount FROM stg_snapshots "
        "WHERE customer_id = ? ORDER BY period_index",
        [first["ID"]],
    )
    pay_columns = ["PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"]
    assert [r[1] for r in rows] == [max(first[c], 0) * 30 for c in pay_columns]
    assert [r[2] for r in rows] == [first[f"BILL_AMT{i}"] for i in range(1, 7)]
    (max_dpd, target) = _query(
        db, "SELECT max_days_past_due, is_defaulted FROM customers WHERE customer_id = ?", [first["ID"]]
    )[0]
    assert max_dpd == max(max(first[c], 0) * 30 for c in pay_columns)
    assert target == (first["default.payment.next.month"] == 1)


def test_german_credit_keeps_na_as_null_and_maps_target(build: Builder) -> None:
    summary = build("german-credit")
    source = pl.read_csv(FIXTURES / "german_credit" / "german_credit_data_with_risk.csv", null_values=["NA"])
    (missing_savings, bad) = _query(
        summary.db_path,
        "SELECT count(*) FILTER (saving_accounts IS NULL), count(*) FILTER (is_defaulted) FROM customers",
    )[0]
    assert missing_savings == source.get_column("Saving accounts").null_count()
    assert bad == (source.get_column("Risk") == "bad").sum()


def test_raw_tables_keep_lineage_and_sha(build: Builder) -> None:
    summary = build("german-credit")
    path = FIXTURES / "german_credit" / "german_credit_data_with_risk.csv"
    rows = _query(
        summary.db_path,
        "SELECT m.source_file, m.sha256, count(*) FROM raw_customers r "
        "JOIN meta_sources m ON r.rowid + 1 BETWEEN m.first_row AND m.last_row GROUP BY ALL",
    )
    assert rows == [("german_credit/german_credit_data_with_risk.csv", file_digest(path), 200)]
    (line_age,) = _query(summary.db_path, 'SELECT "Age" FROM raw_customers WHERE rowid + 1 = 2')[0]
    assert line_age == "22"  # line 3 of the file: the second applicant, aged 22


@needs_shared_data
def test_german_credit_real_file(build: Builder) -> None:
    summary = build("german-credit", SHARED_DATA)
    assert summary.customers == 1000
    assert _query(summary.db_path, "SELECT count(*) FILTER (is_defaulted) FROM customers")[0][0] == 300


@needs_shared_data
def test_taiwan_real_file(build: Builder) -> None:
    summary = build("taiwan-default", SHARED_DATA)
    assert summary.customers == 30000
    rate = _query(summary.db_path, "SELECT avg(is_defaulted::INT) FROM customers")[0][0]
    assert abs(rate - 0.2212) < 0.001


@needs_shared_data
def test_online_retail_real_file_gives_4338_customers(build: Builder) -> None:
    summary = build("online-retail", SHARED_DATA)
    kept, customers, rejected = _retail_expected(SHARED_DATA)
    assert (kept, customers) == (397_884, 4_338)  # the documented RFM base
    assert summary.customers == customers
    (result,) = summary.sources
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (541_909, kept, rejected)
    assert result.quarantine_by_rule["missing_key"] == 135_080
    with_rfm = _query(summary.db_path, "SELECT count(*) FROM customers WHERE rfm_monetary > 0 AND rfm_frequency > 0")
    assert with_rfm[0][0] == 4_338

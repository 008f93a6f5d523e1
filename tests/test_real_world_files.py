"""Real banks' files as they come (issue 12): each fault a new user met, reproduced, and what
the build must do instead: build with the right quarantine, or stop with one sentence and leave
the previous warehouse untouched."""

from __future__ import annotations

from pathlib import Path

import duckdb
from conftest import FIXTURES, Builder

TAIWAN = FIXTURES / "taiwan_default" / "UCI_Credit_Card.csv"


def test_a_build_that_quarantines_a_handful_of_rows_in_a_large_file_does_not_panic(
    build: Builder, tmp_path: Path
) -> None:
    """polars 2.1 panicked (``assertion failed: i < self.len()``) in the long when/then chain of
    string reasons over the filtered frame, once the file had some 30,000 rows and a few rejects."""
    header, *rows = TAIWAN.read_text().splitlines()
    lines, bad = [header], {6: (1, "-5"), 1001: (1, "-5"), 20001: (1, "-5"), 8: (2, "9"), 301: (2, "9"), 901: (5, "x")}
    number = 0
    for _ in range(100):
        for row in rows:
            number += 1
            fields = row.split(",")
            fields[0] = str(number)
            if number in bad:
                position, value = bad[number]
                fields[position] = value
            lines.append(",".join(fields))
    folder = tmp_path / "data" / "taiwan_default"
    folder.mkdir(parents=True)
    (folder / "UCI_Credit_Card.csv").write_text("\n".join(lines) + "\n")
    summary = build("taiwan-default", tmp_path / "data", tmp_path / "taiwan.duckdb")
    customers = next(s for s in summary.sources if s.kind == "customers")
    assert (customers.rows_in, customers.rows_rejected) == (number, len(bad))
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        found = con.execute(
            "SELECT source_row, rule, column_name, reason FROM quarantine_customers ORDER BY 1"
        ).fetchall()
    assert [row[0] for row in found] == sorted(bad)
    by_row = {row[0]: row[1:] for row in found}
    assert by_row[6] == ("out_of_range", "credit_limit", "credit_limit: -5.0 is not above 0")
    assert by_row[8] == ("not_allowed", "sex", "sex: '9' is not one of male, female")
    assert by_row[901][:2] == ("wrong_type", "age")


def test_string_customer_ids_go_through_the_build_and_every_model(string_id_db: Path) -> None:
    """``sub operation not supported for dtypes str and str``: the build's order check took a
    ``.diff()`` of the key as soon as transactions or snapshots existed."""
    with duckdb.connect(str(string_id_db), read_only=True) as con:
        key_types = con.execute(
            "SELECT DISTINCT data_type FROM duckdb_columns() WHERE column_name = 'customer_id' "
            "AND table_name IN ('customers', 'mart_customer_profile', 'ml_risk_scores', 'ml_segments', "
            "'ml_rfm', 'ml_alerts', 'ml_recommendations', 'mart_customer_months')"
        ).fetchall()
        assert key_types == [("VARCHAR",)]
        customers = con.execute("SELECT count(*), min(customer_id) FROM customers").fetchall()[0]
        assert customers == (2_000, "C-00001")
        kinds = {row[0] for row in con.execute("SELECT model_kind FROM ml_model_runs").fetchall()}
        assert kinds >= {"segments", "rfm", "risk", "warnings", "cross_sell", "statistics"}
        scored = con.execute("SELECT count(*) FROM ml_latest_risk_scores WHERE customer_id LIKE 'C-%'").fetchall()
        assert scored == [(2_000,)]
        months = con.execute("SELECT count(DISTINCT customer_id) FROM mart_customer_months").fetchall()
        assert months == [(2_000,)]

"""The stg_ views (SQL) and the build's Polars staging come from one spec: they must agree row for row."""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl
import pytest
from conftest import FIXTURES, Builder

from warehouse.sources import resolve_files, scan_file
from warehouse.spec import load_spec
from warehouse.staging import REJECTED, SOURCE_ROW, column_rules, flag_rejections, staged_columns, with_typed


@pytest.mark.parametrize(
    ("spec_name", "kind"),
    [("german-credit", "customers"), ("taiwan-default", "customers"), ("online-retail", "transactions")],
)
def test_sql_view_equals_polars_staging(build: Builder, spec_name: str, kind: str) -> None:
    summary = build(spec_name)
    spec, _ = load_spec(spec_name)
    source = spec.source(kind)
    assert source is not None
    (file,) = resolve_files(kind, source, FIXTURES)
    raw = scan_file(kind, file, source)
    flagged = flag_rejections(
        with_typed(raw, source),
        column_rules(source, datetime.now(), raw.collect_schema()),
        unique_key=kind == "customers",
        known_keys=None,
    )
    polars_rows = staged_columns(flagged.filter(~pl.col(REJECTED)), source).collect().sort(SOURCE_ROW)
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        sql_rows = con.sql(f"SELECT * FROM stg_{kind} ORDER BY {SOURCE_ROW}").pl()
    assert polars_rows.height > 0
    assert sql_rows.columns == polars_rows.columns
    assert sql_rows.schema == polars_rows.schema
    assert sql_rows.equals(polars_rows)


def test_decimal_comma_and_mapping_agree(build: Builder, tmp_path) -> None:
    spec = """
name = "eu"
[customers]
files = ["c.csv"]
csv = { delimiter = ";", decimal = "," }
[[customers.columns]]
name = "customer_id"
type = "int"
role = "id"
description = "Key."
[[customers.columns]]
name = "income"
type = "float"
role = "amount"
description = "Income."
[[customers.columns]]
name = "sex"
type = "string"
role = "categorical"
mapping = { "M" = "male", "F" = "female" }
mapping_default = "unknown"
description = "Sex."
[[customers.columns]]
name = "active"
type = "bool"
role = "categorical"
description = "Active."
"""
    (tmp_path / "c.csv").write_text("customer_id;income;sex;active\n1;1234,5;M;yes\n2;;X;0\n3;7,25;F;\n")
    summary = build("eu", tmp_path, tmp_path / "eu.duckdb", spec_text=spec)
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        rows = con.execute("SELECT customer_id, income, sex, active FROM stg_customers ORDER BY 1").fetchall()
        mart = con.execute("SELECT customer_id, income, sex, active FROM customers ORDER BY 1").fetchall()
    assert rows == [(1, 1234.5, "male", True), (2, None, "unknown", False), (3, 7.25, "female", None)]
    assert mart == rows

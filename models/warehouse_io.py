"""Reading a warehouse for the models: the customers mart, the latest personas, the latest runs.

Shared by the training entry points and the policy commands, so each question is asked one way.
"""

from __future__ import annotations

import duckdb
import polars as pl

from warehouse.history import LATEST_RUNS_VIEW


def latest_personas(con: duckdb.DuckDBPyConnection) -> pl.DataFrame | None:
    """customer_id, segment_key, persona_name, archetype, manual_underwriting of the latest segments run."""
    exists = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'ml_latest_segments'").fetchall()
    if not exists[0][0]:
        return None
    return con.sql(
        "SELECT g.customer_id, g.segment_key, g.persona_name, s.archetype, g.manual_underwriting "
        "FROM ml_latest_segments g JOIN ml_latest_segment_summary s USING (run_id, segment_key)"
    ).pl()


def read_customers(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The customers mart in customer_id order (models depend on that order to line rows up)."""
    customers = con.sql("SELECT * FROM customers").pl()  # stored in customer_id order by the build
    return customers if customers.get_column("customer_id").is_sorted() else customers.sort("customer_id")


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall()[0][0])


def latest_run_id(con: duckdb.DuckDBPyConnection, kind: str) -> str | None:
    """Run id of the latest run of a model kind (as ``ml_latest_runs`` picks it), or None."""
    if not has_table(con, "ml_model_runs"):
        return None
    rows = con.execute(f"SELECT run_id FROM {LATEST_RUNS_VIEW} WHERE model_kind = ?", [kind]).fetchall()
    return rows[0][0] if rows else None

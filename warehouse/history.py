"""Model history survives a rebuild.

A build writes a fresh file, but the model runs, their outputs and the persona labels people
set (every ``ml_`` table and view) belong to the bank, not to one load of the data. The build
copies them from the warehouse it replaces, with their comments, so a retrain on new data can
match its segments to the previous run's and keep the names people gave them.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from .db import quote_ident
from .runs_view import LATEST_RUNS_SELECT, LATEST_RUNS_VIEW, RUNS_TABLE
from .staging import sql_literal

HISTORY_PREFIX = "ml_"

LATEST_RUNS_SQL = f"CREATE OR REPLACE VIEW {LATEST_RUNS_VIEW} AS {LATEST_RUNS_SELECT}"
LATEST_RUNS_GRAIN = (
    "View: one row per model kind, its latest run (the newest finished_at; of runs finished in the same instant, "
    "the greatest run_id), with that run's record from ml_model_runs."
)


def latest_run_of(kind: str) -> str:
    """SQL for the run id of a model kind's latest run, to use inside a statement (NULL when the kind never ran).

    ``kind`` is a constant of the caller's code, never a user value.
    """
    if not kind.isidentifier():
        raise ValueError(f"not a model kind: {kind!r}")
    return f"(SELECT run_id FROM {LATEST_RUNS_VIEW} WHERE model_kind = '{kind}')"


def refresh_latest_runs(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create ``ml_latest_runs`` over ``ml_model_runs``, its columns commented as the table's are."""
    con.execute(LATEST_RUNS_SQL)
    con.execute(f"COMMENT ON VIEW {LATEST_RUNS_VIEW} IS {sql_literal(LATEST_RUNS_GRAIN)}")
    comments = con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = ? AND comment IS NOT NULL",
        [RUNS_TABLE],
    ).fetchall()
    for column, comment in comments:
        if column == "model_kind":
            comment = f"{comment} One row per kind."
        con.execute(f"COMMENT ON COLUMN {LATEST_RUNS_VIEW}.{quote_ident(column)} IS {sql_literal(comment)}")


def carry_over_history(con: duckdb.DuckDBPyConnection, previous: Path, spec_name: str) -> list[str]:
    """Copy every ml_ table and view of ``previous`` into ``con``; return the names copied.

    Only from a warehouse built from the same spec: another dataset's personas mean nothing here.
    """
    if not previous.exists():
        return []
    try:
        con.execute(f"ATTACH {sql_literal(str(previous))} AS previous_warehouse (READ_ONLY)")
    except duckdb.Error:
        return []  # not a readable DuckDB file: nothing to keep
    try:
        built_from = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'previous_warehouse' AND table_name = 'meta_builds'"
        ).fetchall()[0][0]
        if (
            not built_from
            or con.execute(
                "SELECT count(*) FROM previous_warehouse.meta_builds WHERE spec_name = ?", [spec_name]
            ).fetchall()[0][0]
            == 0
        ):
            return []
        tables = con.execute(
            "SELECT table_name, sql, comment FROM duckdb_tables() "
            "WHERE database_name = 'previous_warehouse' AND starts_with(table_name, ?) ORDER BY table_name",
            [HISTORY_PREFIX],
        ).fetchall()
        views = con.execute(
            "SELECT view_name, sql, comment FROM duckdb_views() "
            "WHERE database_name = 'previous_warehouse' AND starts_with(view_name, ?) ORDER BY view_name",
            [HISTORY_PREFIX],
        ).fetchall()
        column_comments = con.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() "
            "WHERE database_name = 'previous_warehouse' AND starts_with(table_name, ?) AND comment IS NOT NULL",
            [HISTORY_PREFIX],
        ).fetchall()
        for name, ddl, _ in tables:
            con.execute(ddl)  # keeps constraints such as the labels' primary key
            con.execute(f"INSERT INTO {quote_ident(name)} SELECT * FROM previous_warehouse.{quote_ident(name)}")
    finally:
        con.execute("DETACH previous_warehouse")
    if not tables and not views:
        return []
    carried = {name for name, _, _ in tables}
    if RUNS_TABLE in carried:  # first, and in its current form: the other latest views read it
        con.execute(LATEST_RUNS_SQL)
    for name, ddl, _ in views:
        if name != LATEST_RUNS_VIEW:
            con.execute(ddl)
    kinds = {name: "TABLE" for name, _, _ in tables} | {name: "VIEW" for name, _, _ in views}
    for name, _, comment in [*tables, *views]:
        if comment:
            con.execute(f"COMMENT ON {kinds[name]} {quote_ident(name)} IS {sql_literal(comment)}")
    for table, column, comment in column_comments:
        con.execute(f"COMMENT ON COLUMN {quote_ident(table)}.{quote_ident(column)} IS {sql_literal(comment)}")
    if RUNS_TABLE in carried:  # commented from the runs table's comments, now in place
        refresh_latest_runs(con)
    return sorted(kinds)

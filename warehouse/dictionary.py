"""The data dictionary: every table's grain and every column's meaning, written as DuckDB comments.

Analysts see these from any DuckDB client (``duckdb_tables()``, ``duckdb_columns()``), and
``segrisk check`` fails when a table or column has none.
"""

from __future__ import annotations

import duckdb

from .db import quote_ident
from .staging import sql_literal

SOURCE_TABLE_GRAIN = {
    "customers": "one row per customer",
    "applications": "one row per loan application (one per customer)",
    "transactions": "one row per transaction",
    "snapshots": "one row per customer per period",
}

LINEAGE_DESCRIPTIONS = {
    "_source_row": "1-based row number across the source's files in load order (rowid + 1 in the raw_ "
    "table); meta_sources maps each file to its first_row..last_row range, with its sha256 and load time.",
}

QUARANTINE_COLUMNS = {
    "source_file": "Source file of the rejected row, relative to the data folder.",
    "source_row": "1-based data row of the rejected row in its file (header not counted; CSV line = row + 1).",
    "raw_row": "The row's _source_row: it is rowid + 1 in the raw_ table, to join back to it.",
    "rule": "The rule the row broke: missing_key, wrong_type, missing_value, out_of_range, not_allowed, "
    "future_timestamp, duplicate_key or unknown_customer.",
    "column_name": "The canonical column the rule is about.",
    "reason": "One sentence saying what was wrong and what was expected.",
    "raw_record": "The whole source row as loaded, as a JSON object of text values, so nothing is lost.",
}

META_TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "meta_builds": (
        "One row per warehouse build (a rebuild replaces the file, so one row).",
        {
            "build_id": "Identifier of the build: UTC start time and a hash of the spec and source files.",
            "spec_name": "Name of the dataset spec the build used.",
            "spec_text": "The spec file's full text, for reproducibility.",
            "data_dir": "Folder the source files were read from.",
            "started_at": "When the build started (UTC).",
            "finished_at": "When the build finished (UTC).",
            "duration_seconds": "Wall-clock seconds the build took.",
            "schema_version": "Version of the warehouse's table layout; changes when a name or meaning changes.",
            "segrisk_version": "Version of Segrisk that built the file.",
            "as_of_date": "Reference date of the data: the day after the last transaction when there are "
            "transactions, else the build date.",
        },
    ),
    "meta_sources": (
        "One row per source file loaded.",
        {
            "source": "Which source the file belongs to: customers, applications, transactions or snapshots.",
            "source_file": "File name relative to the data folder.",
            "file_format": "csv, parquet or xlsx.",
            "size_bytes": "File size in bytes.",
            "sha256": "SHA-256 of the file's bytes.",
            "rows_read": "Data rows read from the file.",
            "first_row": "The file's first _source_row in the raw_ table; empty for a table of a source query, "
            "whose rows reach raw_ only through the query.",
            "last_row": "The file's last _source_row in the raw_ table; empty for a table of a source query.",
            "loaded_at": "When the file was loaded (UTC).",
        },
    ),
    "meta_row_counts": (
        "One row per source: rows in, rows kept and rows rejected (in = out + rejected).",
        {
            "source": "Source name.",
            "raw_table": "The raw_ table holding every row as loaded.",
            "staged_view": "The stg_ view holding the kept rows, typed.",
            "quarantine_table": "The quarantine_ table holding the rejected rows with their reasons.",
            "rows_in": "Rows loaded from the source files.",
            "rows_out": "Rows kept (in the stg_ view).",
            "rows_rejected": "Rows quarantined.",
        },
    ),
    "meta_step_durations": (
        "One row per build step, in order.",
        {
            "step_order": "Position of the step in the build.",
            "step": "What the step did.",
            "seconds": "Wall-clock seconds the step took.",
        },
    ),
    "meta_capabilities": (
        "One row per capability: whether this dataset supports it, and why.",
        {
            "capability": "personas, rfm, risk_model, early_warnings, cross_sell or statistics: one per model "
            "run of segrisk train all.",
            "is_supported": "True when the data has what the capability needs; train all runs exactly these.",
            "reason": "What the capability needs and what the data has.",
        },
    ),
    "meta_columns": (
        "One row per column of the customers mart: where it came from and whether models may use it.",
        {
            "column_name": "Column of the customers table.",
            "origin": "spec (declared in the dataset spec), engineered (computed by the build) or key.",
            "role": "Role from the spec (numeric, categorical, target, ...) or 'feature' for engineered columns.",
            "measure": "What a money column means (income, debt, deposit, ...), when declared.",
            "is_model_feature": "True when models may use the column as an input (not keys, targets, timestamps).",
            "is_skewed_amount": "True for non-negative amounts the build log-transformed (log_<name> exists).",
            "is_product_flag": "True for a yes/no column the spec declares a product the customer holds "
            "(product = true); cross-sell and the products list read these only.",
        },
    ),
    "meta_check_results": (
        "One row per data test run by the build (segrisk check re-runs them).",
        {
            "check_name": "What the test checks.",
            "table_name": "The table or view it checks.",
            "passed": "True when the test passed.",
            "failing_rows": "How many rows broke it (0 when passed).",
            "detail": "What was found, in a sentence.",
        },
    ),
}

CUSTOMERS_GRAIN = (
    "The customers mart: one row per customer, with attributes from the spec and engineered features "
    "(ratios, RFM, delinquency, log amounts). Models read this table."
)


def comment_table(con: duckdb.DuckDBPyConnection, name: str, text: str, *, view: bool = False) -> None:
    kind = "VIEW" if view else "TABLE"
    con.execute(f"COMMENT ON {kind} {quote_ident(name)} IS {sql_literal(text)}")


def comment_columns(con: duckdb.DuckDBPyConnection, table: str, comments: dict[str, str]) -> None:
    for column, text in comments.items():
        con.execute(f"COMMENT ON COLUMN {quote_ident(table)}.{quote_ident(column)} IS {sql_literal(text)}")


def missing_comments(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables, views and columns of the warehouse that have no comment."""
    rows = con.execute(
        """
        SELECT table_name, NULL FROM duckdb_tables() WHERE NOT internal AND coalesce(comment, '') = ''
        UNION ALL
        SELECT view_name, NULL FROM duckdb_views() WHERE NOT internal AND coalesce(comment, '') = ''
        UNION ALL
        SELECT table_name, column_name FROM duckdb_columns()
        WHERE NOT internal AND coalesce(comment, '') = ''
        ORDER BY 1, 2
        """
    ).fetchall()
    return [table if column is None else f"{table}.{column}" for table, column in rows]


def data_dictionary(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str, str]]:
    """(object, kind, column, type, comment) for every table, view and column, for README and the UI."""
    return con.execute(
        """
        WITH objects AS (
            SELECT table_name AS name, 'table' AS kind, comment FROM duckdb_tables() WHERE NOT internal
            UNION ALL
            SELECT view_name, 'view', comment FROM duckdb_views() WHERE NOT internal
        )
        SELECT o.name, o.kind, c.column_name, c.data_type, coalesce(c.comment, '')
        FROM objects o JOIN duckdb_columns() c ON c.table_name = o.name
        ORDER BY o.name, c.column_index
        """
    ).fetchall()

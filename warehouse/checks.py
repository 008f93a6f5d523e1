"""Data tests on a built warehouse, in the spirit of dbt's: unique, not_null, relationships,
accepted values, row counts that add up, and a comment on every table and column.

The build runs them on the new file before swapping it in; ``segrisk check`` re-runs them, and
adds two checks of the files themselves: a full read of every table (DuckDB verifies each block's
checksum as it reads it, so damaged bytes anywhere in the data show up, where counting rows reads
only the metadata) and the audit log's hash chain in the application-state store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from .app_state import AppState, state_path
from .db import quote_ident
from .dictionary import missing_comments


@dataclass(frozen=True)
class CheckResult:
    check_name: str
    table_name: str
    passed: bool
    failing_rows: int
    detail: str


def _objects(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT internal "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal"
    ).fetchall()
    return {name for (name,) in rows}


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> int:
    row = con.execute(sql, params or []).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _result(name: str, table: str, failing: int, what: str) -> CheckResult:
    detail = "ok" if failing == 0 else f"{failing:,} {what}"
    return CheckResult(name, table, failing == 0, failing, detail)


def run_checks(con: duckdb.DuckDBPyConnection) -> list[CheckResult]:
    """Run every data test that applies to the tables present; never raises for a failed test."""
    objects = _objects(con)
    results: list[CheckResult] = []
    if "customers" not in objects:
        return [CheckResult("has_customers_table", "customers", False, 0, "the customers table is missing")]

    results.append(
        _result(
            "not_null_key",
            "customers",
            _scalar(con, "SELECT count(*) FROM customers WHERE customer_id IS NULL"),
            "rows without customer_id",
        )
    )
    duplicate_customers = _scalar(con, "SELECT count(*) - count(DISTINCT customer_id) FROM customers")
    results.append(_result("unique_key", "customers", duplicate_customers, "duplicate customer_id values"))
    for source in ("customers", "applications"):
        view = f"stg_{source}"
        if view in objects:
            results.append(
                _result(
                    "unique_key",
                    view,
                    _scalar(con, f"SELECT count(*) - count(DISTINCT customer_id) FROM {view}"),
                    "duplicate customer_id values",
                )
            )
    for child in ("stg_applications", "stg_transactions", "stg_snapshots"):
        if child in objects:
            orphans = _scalar(con, _orphans_sql(child, unique_parent=duplicate_customers == 0))
            results.append(
                _result("relationship_customer_id", child, orphans, "rows whose customer_id is not in customers")
            )
    if "is_defaulted" in _columns(con, "customers"):
        results.append(
            _result(
                "not_null_target",
                "customers",
                _scalar(con, "SELECT count(*) FROM customers WHERE is_defaulted IS NULL"),
                "rows without a default outcome",
            )
        )
    if "age_band" in _columns(con, "customers"):
        results.append(
            _result(
                "accepted_values",
                "customers.age_band",
                _scalar(
                    con,
                    "SELECT count(*) FROM customers WHERE age_band NOT IN "
                    "('18-25', '26-35', '36-45', '46-55', '56-65', '66+')",
                ),
                "rows with an unknown age band",
            )
        )
    if "meta_row_counts" in objects:
        for source, staged, quarantine, rows_in, rows_out, rejected in con.execute(
            "SELECT source, staged_view, quarantine_table, rows_in, rows_out, rows_rejected FROM meta_row_counts"
        ).fetchall():
            actual_out = _scalar(con, f"SELECT count(*) FROM {quote_ident(staged)}")
            actual_rejected = _scalar(con, f"SELECT count(*) FROM {quote_ident(quarantine)}")
            mismatch = abs(actual_out - rows_out) + abs(actual_rejected - rejected) + abs(rows_in - rows_out - rejected)
            results.append(
                CheckResult(
                    "row_counts_add_up",
                    source,
                    mismatch == 0,
                    mismatch,
                    f"in {rows_in:,} = out {actual_out:,} + rejected {actual_rejected:,}"
                    + ("" if mismatch == 0 else " does not hold"),
                )
            )
    undocumented = missing_comments(con)
    results.append(
        CheckResult(
            "every_object_commented",
            "(all)",
            not undocumented,
            len(undocumented),
            "ok" if not undocumented else "no comment on " + ", ".join(undocumented[:5]),
        )
    )
    return results


def _orphans_sql(child: str, *, unique_parent: bool) -> str:
    """Rows of ``child`` whose customer_id (null included) is not in customers.

    With customers' key unique, each child row joins at most one customer, so the orphans are
    the rows an inner join drops: DuckDB answers that with a join filter on the scan, three
    times faster than the anti-join needed otherwise (0.2 s instead of 0.7 s at 50M rows).
    """
    if unique_parent:
        return (
            f"SELECT (SELECT count(*) FROM {child}) - (SELECT count(*) FROM {child} JOIN customers USING (customer_id))"
        )
    return (
        f"SELECT count(*) FROM {child} c WHERE c.customer_id IS NULL "
        "OR NOT EXISTS (SELECT 1 FROM customers p WHERE p.customer_id = c.customer_id)"
    )


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]).fetchall()
    return {name for (name,) in rows}


def full_read(con: duckdb.DuckDBPyConnection) -> CheckResult:
    """Read every column of every table (hashing each value, so no column is skipped): a block whose
    checksum does not match fails with DuckDB's "Corrupt database file" message, named here."""
    tables = sorted(
        name for (name,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall()
    )
    damaged: list[str] = []
    for table in tables:
        try:
            con.execute(f"SELECT count(*), max(hash(COLUMNS(*))) FROM {quote_ident(table)}").fetchall()
        except duckdb.Error as exc:
            damaged.append(f"{table} ({str(exc).splitlines()[0][:160]})")
    detail = f"every block of {len(tables)} tables read" if not damaged else "damaged: " + "; ".join(damaged[:3])
    return CheckResult("full_read_integrity", "(file)", not damaged, len(damaged), detail)


def audit_chain(db_path: Path) -> CheckResult | None:
    """The hash chain of the audit log beside ``db_path``; None where there is no store yet."""
    path = state_path(db_path)
    if not path.exists():
        return None
    found = AppState(path).verify_audit_chain()
    if found.holds:
        detail = f"{found.entries - found.unchained:,} entries chained"
        if found.unchained:
            detail += f" ({found.unchained:,} older entries from before the chain, not checked)"
    else:
        detail = (
            f"entry {found.broken_at} does not follow the entry before it: the audit log was changed "
            "outside Segrisk (an entry edited, removed or inserted)"
        )
    return CheckResult("audit_log_chain", path.name, found.holds, 0 if found.holds else 1, detail)

"""The definition of ``ml_latest_runs``, the latest run of each model kind, in one place.

Its own module (importing nothing of the warehouse) because both sides need it: ``history`` and
``models.runs`` create the view in a warehouse they write, and ``db`` gives a read-only
connection to a warehouse written before the view existed a temporary copy of it, so the
dashboard, the models and the SQL console read such a file unchanged until its next build or run.
"""

from __future__ import annotations

import duckdb

RUNS_TABLE = "ml_model_runs"
LATEST_RUNS_VIEW = "ml_latest_runs"
#: The latest run of each model kind: the newest finish time, NULLs last (as ``ORDER BY finished_at
#: DESC`` put them); of runs that finished in the same instant, the greatest run id.
LATEST_RUNS_SELECT = (
    "SELECT model_kind, run_id, started_at, finished_at, parameters, metrics, input_fingerprint, input_rows, "
    f"segrisk_version FROM {RUNS_TABLE} QUALIFY row_number() OVER "
    "(PARTITION BY model_kind ORDER BY finished_at DESC NULLS LAST, run_id DESC) = 1"
)


def lacks_view(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the warehouse ``con`` reads has model runs but no ``ml_latest_runs`` (one saved before
    the view existed)."""
    present = {
        name
        for (name,) in con.execute(
            # The file's own objects: a temporary copy made on this connection does not count.
            "SELECT table_name FROM duckdb_tables() WHERE table_name = ? AND NOT temporary "
            "UNION ALL SELECT view_name FROM duckdb_views() WHERE view_name = ? AND NOT temporary",
            [RUNS_TABLE, LATEST_RUNS_VIEW],
        ).fetchall()
    }
    return RUNS_TABLE in present and LATEST_RUNS_VIEW not in present


def create_temporary_view(con: duckdb.DuckDBPyConnection) -> None:
    """The view as a temporary one, on this connection only (a cursor is a connection of its own:
    each needs it), for a read-only connection to a warehouse that ``lacks_view``."""
    con.execute(f"CREATE TEMP VIEW IF NOT EXISTS {LATEST_RUNS_VIEW} AS {LATEST_RUNS_SELECT}")


def provide_for_reading(con: duckdb.DuckDBPyConnection) -> bool:
    """Give ``con`` the temporary view where its warehouse lacks the view; True when it did."""
    if lacks_view(con):
        create_temporary_view(con)
        return True
    return False

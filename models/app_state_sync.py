"""Copy what people changed in the dashboard (the app-state store) into the warehouse at each run.

The dashboard writes only to the SQLite store beside the warehouse; every model run brings those
edits into its new warehouse file, so analysts querying ``ml_persona_labels`` and
``ml_alert_acknowledgements`` see what the dashboard shows. When the CLI and the dashboard both
labelled a persona, the later change wins.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from warehouse.app_state import AppState, state_path
from warehouse.dictionary import comment_columns, comment_table

from .segments_store import ensure_labels_and_views
from .warnings_store import ACK_COMMENTS, ACK_DDL


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall()[0][0])


def copy_app_state(con: duckdb.DuckDBPyConnection, db_path: Path) -> tuple[int, int]:
    """(labels, acknowledgements) copied from the store of ``db_path`` into the open warehouse."""
    store = AppState(state_path(db_path))
    labels = store.persona_labels()
    if labels and _has_table(con, "ml_segment_summary"):
        ensure_labels_and_views(con)
        con.executemany(
            """
            INSERT INTO ml_persona_labels VALUES (?, ?, ?, ?)
            ON CONFLICT (segment_key) DO UPDATE SET
                persona_name = coalesce(excluded.persona_name, ml_persona_labels.persona_name),
                strategy = coalesce(excluded.strategy, ml_persona_labels.strategy),
                updated_at = excluded.updated_at
            WHERE excluded.updated_at >= ml_persona_labels.updated_at
            """,
            [[label.segment_key, label.persona_name, label.strategy, label.updated_at] for label in labels],
        )
    else:
        labels = []
    acknowledgements = store.acknowledgements()
    if acknowledgements:
        con.execute(f"CREATE TABLE IF NOT EXISTS ml_alert_acknowledgements ({ACK_DDL})")
        comment_table(con, "ml_alert_acknowledgements", "One row per acknowledgement of an alert.")
        comment_columns(con, "ml_alert_acknowledgements", ACK_COMMENTS)
        con.execute(
            "CREATE TEMP TABLE incoming (alert_id VARCHAR, acknowledged_by VARCHAR, acknowledged_at TIMESTAMP, note VARCHAR)"
        )
        con.executemany(
            "INSERT INTO incoming VALUES (?, ?, ?, ?)",
            [[a.alert_id, a.acknowledged_by, a.acknowledged_at, a.note] for a in acknowledgements],
        )
        con.execute(
            "INSERT INTO ml_alert_acknowledgements SELECT * FROM incoming i WHERE NOT EXISTS "
            "(SELECT 1 FROM ml_alert_acknowledgements k WHERE k.alert_id = i.alert_id "
            "AND k.acknowledged_at = i.acknowledged_at)"
        )
        con.execute("DROP TABLE incoming")
    return len(labels), len(acknowledgements)

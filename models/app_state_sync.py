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

from .segments_store import ensure_labels_and_views, upsert_labels
from .warehouse_io import has_table
from .warnings_store import ACK_COMMENTS, ACK_DDL


def copy_app_state(con: duckdb.DuckDBPyConnection, db_path: Path) -> tuple[int, int]:
    """(labels, acknowledgements) copied from the store of ``db_path`` into the open warehouse."""
    store = AppState(state_path(db_path))
    labels = store.persona_labels()
    if labels and has_table(con, "ml_segment_summary"):
        ensure_labels_and_views(con)
        upsert_labels(con, [(x.segment_key, x.persona_name, x.strategy, x.updated_at) for x in labels])
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

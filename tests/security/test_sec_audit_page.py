"""Issue 13, item 10: a viewer's refused 20 MB SQL text made the Admin audit page a 39 MB answer. The
store caps each field (2,000 characters, with a note of the full length) and the page shows a bounded
part of each entry, so a page's size no longer grows with what people typed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dash_helpers import text_of
from werkzeug.security import generate_password_hash

from dashboard import auth
from dashboard.app import create_app
from warehouse.app_state import AppState


def test_an_audit_page_stays_small_whatever_was_typed(tmp_path: Path) -> None:
    app = create_app(
        tmp_path / "bank.duckdb", users={"root": auth.User("root", "admin", generate_password_hash("pw-root-1"))}
    )
    server = app.server
    access: AppState = server.extensions["segrisk_state"]
    huge = "SELECT '" + "x" * 20_000_000 + "'"
    for _ in range(60):
        access.record_audit("sql_query", user="viewer1", detail=huge, outcome="refused")
    stored = access.audit_entries(limit=1)[0].detail or ""
    assert len(stored) <= 2_000 and f"{len(huge):,} characters in all" in stored
    page = sys.modules["pages.admin"]
    with server.test_request_context():
        auth.start_session(access.user("root"))
        table, pages, summary = page.show_audit(None, None, 1)
    size = len(json.dumps(table.to_plotly_json(), default=str))
    assert pages == 2 and summary.startswith("entries 1-50 of 60")
    assert size < 50 * (page.SHOWN_DETAIL + 600), size  # 50 entries of a bounded size, not 50 x 2,000 characters
    shown = text_of(table)
    assert "characters stored; the whole entry is in the store's audit_log" in shown

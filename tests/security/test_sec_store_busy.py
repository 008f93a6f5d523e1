"""Issue 13, item 11: with the app-state store held under another program's exclusive lock, sign-in,
persona names, callbacks and ``/score`` gave HTML 500 pages after 10 s with tracebacks in the log.
Now the store answers ``StoreBusyError`` (a sentence) within seconds; read paths that can do without it
degrade (persona names fall back to the run's own, a known API key keeps scoring); everything else
answers that sentence (JSON for the API, the page's problem box for a callback), never an HTML 500."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from dashboard import auth
from dashboard.app import PROBLEM, create_app
from dashboard.data import reader
from dashboard.state import persona_names
from warehouse.app_state import AppState, StoreBusyError, state_path


@contextmanager
def held_exclusively(path: Path) -> Iterator[None]:
    """The store locked as a hand-opened ``sqlite3`` shell with ``PRAGMA locking_mode=EXCLUSIVE`` and one
    write would hold it: every other connection is refused until it closes."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT OR REPLACE INTO persona_labels VALUES ('zz', NULL, NULL, 'x', '2026-01-01T00:00:00')")
        holder.execute("COMMIT")
        yield
    finally:
        holder.close()


@pytest.fixture(scope="module")
def served(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    db = tmp_path_factory.mktemp("busy") / "demo.duckdb"
    shutil.copyfile(full_db, db)
    app = create_app(db, users={"ana": auth.User("ana", "admin", generate_password_hash("ana-password"))})
    store = AppState(state_path(db))
    return {"db": db, "app": app, "key": store.create_api_key("los"), "store": store}


def test_the_store_answers_a_sentence_within_seconds_not_a_raw_sqlite_error(served: dict) -> None:
    with held_exclusively(served["store"].path), pytest.raises(StoreBusyError, match="locked by another program"):
        AppState(served["store"].path).users()


def test_persona_names_fall_back_to_the_runs_own_while_the_store_is_held(served: dict) -> None:
    store: AppState = served["store"]
    data = reader()
    first = next(iter(persona_names(data)))
    store.set_persona_label(first, user="ana", name="Renamed by a person")
    assert persona_names(data)[first] == "Renamed by a person"
    with held_exclusively(store.path):
        names = persona_names(data)  # no exception: the run's names
    assert names[first] != "Renamed by a person" and names[first]


def test_score_keeps_answering_for_a_known_key_and_others_get_json_not_html(served: dict) -> None:
    client = served["app"].server.test_client()
    headers = {"X-API-Key": served["key"]}
    assert client.get("/api/v1/segments/summary", headers=headers).status_code == 200  # the key is now known
    with held_exclusively(served["store"].path):
        known = client.get("/api/v1/segments/summary", headers=headers)
        unknown = client.get("/api/v1/segments/summary", headers={"X-API-Key": "sk_never-seen-before"})
    assert known.status_code == 200
    assert unknown.status_code == 503 and unknown.mimetype == "application/json"
    assert "locked by another program" in unknown.get_json()["detail"]


def test_a_callback_meeting_a_busy_store_shows_the_sentence_in_the_page(
    served: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signin import login_form

    server = served["app"].server
    client = server.test_client()
    assert client.post("/login", data=login_form(client, "ana", "ana-password")).status_code == 302
    store: AppState = server.extensions["segrisk_state"]

    def busy(*_args: object, **_kwargs: object) -> int:
        raise StoreBusyError("The application-state store is locked by another program; try again in a moment.")

    monkeypatch.setattr(store, "audit_count", busy)  # the admin page's audit callback reads it first
    answer = client.post(
        "/_dash-update-component",
        json={
            "output": "..admin-audit.children...admin-audit-page.max_value...admin-audit-summary.children..",
            "outputs": [
                {"id": "admin-audit", "property": "children"},
                {"id": "admin-audit-page", "property": "max_value"},
                {"id": "admin-audit-summary", "property": "children"},
            ],
            "inputs": [
                {"id": "admin-audit-user", "property": "value", "value": None},
                {"id": "admin-audit-action", "property": "value", "value": None},
                {"id": "admin-audit-page", "property": "active_page", "value": 1},
            ],
            "changedPropIds": ["admin-audit-page.active_page"],
            "state": [],
        },
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    problem = answer.get_json()["sideUpdate"][PROBLEM]
    assert problem["is_open"] is True and "locked by another program" in problem["children"]
    assert "Traceback" not in answer.get_data(as_text=True)

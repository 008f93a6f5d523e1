"""The application-state store: what people change in the dashboard, kept beside the warehouse.

The dashboard never opens the warehouse for writing (DuckDB allows one writer or many readers,
and a rebuild swaps the file). Persona names and strategies set by people and alert
acknowledgements go here instead: a SQLite file in WAL mode beside the warehouse
(``segrisk.duckdb`` -> ``segrisk.state.sqlite``), safe for several server processes, visible to
the dashboard at once. Every model run copies it into the warehouse (``ml_persona_labels``,
``ml_alert_acknowledgements``) so SQL users see the same.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS persona_labels (
    segment_key TEXT PRIMARY KEY,
    persona_name TEXT,
    strategy TEXT,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_acknowledgements (
    alert_id TEXT NOT NULL,
    acknowledged_by TEXT NOT NULL,
    acknowledged_at TEXT NOT NULL,
    note TEXT
);
CREATE INDEX IF NOT EXISTS alert_acknowledgements_by_alert ON alert_acknowledgements (alert_id);
"""


def state_path(db_path: Path) -> Path:
    """Where the store of a warehouse lives: beside it, named after it."""
    return db_path.with_name(f"{db_path.stem}.state.sqlite")


@dataclass(frozen=True)
class PersonaLabel:
    segment_key: str
    persona_name: str | None
    strategy: str | None
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class Acknowledgement:
    alert_id: str
    acknowledged_by: str
    acknowledged_at: datetime
    note: str | None


class AppState:
    """Read and write the store; each call opens its own short connection (cheap in SQLite)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            con.execute("PRAGMA busy_timeout=10000")
            if not self._ready:
                self._prepare(con)
            return con
        except BaseException:
            con.close()
            raise

    def _prepare(self, con: sqlite3.Connection) -> None:
        """WAL mode and the tables, once per instance; switching to WAL needs a moment alone with
        the file, so processes starting together take turns."""
        for attempt in range(100):
            try:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(SCHEMA)
                self._ready = True
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)

    def set_persona_label(
        self, segment_key: str, *, user: str, name: str | None = None, strategy: str | None = None
    ) -> None:
        """Rename a persona or set its strategy; the other field keeps its value."""
        if name is None and strategy is None:
            raise ValueError("give a new name or a new strategy")
        for what, text in (("name", name), ("strategy", strategy)):
            if text is not None and not text.strip():
                raise ValueError(f"the persona's {what} cannot be empty")
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        con = self._connect()
        try:
            con.execute(
                """
                INSERT INTO persona_labels VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (segment_key) DO UPDATE SET
                    persona_name = coalesce(excluded.persona_name, persona_labels.persona_name),
                    strategy = coalesce(excluded.strategy, persona_labels.strategy),
                    updated_by = excluded.updated_by,
                    updated_at = excluded.updated_at
                """,
                [segment_key, name and name.strip(), strategy and strategy.strip(), user, now],
            )
        finally:
            con.close()

    def acknowledge(self, alert_id: str, *, user: str, note: str | None = None) -> None:
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        con = self._connect()
        try:
            con.execute("INSERT INTO alert_acknowledgements VALUES (?, ?, ?, ?)", [alert_id, user, now, note])
        finally:
            con.close()

    def persona_labels(self) -> list[PersonaLabel]:
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            rows = con.execute("SELECT * FROM persona_labels ORDER BY segment_key").fetchall()
        finally:
            con.close()
        return [PersonaLabel(k, n, s, by, datetime.fromisoformat(at)) for k, n, s, by, at in rows]

    def acknowledgements(self) -> list[Acknowledgement]:
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            rows = con.execute("SELECT * FROM alert_acknowledgements ORDER BY acknowledged_at, alert_id").fetchall()
        finally:
            con.close()
        return [Acknowledgement(a, by, datetime.fromisoformat(at), note) for a, by, at, note in rows]

    def acknowledged_ids(self) -> set[str]:
        return {a.alert_id for a in self.acknowledgements()}

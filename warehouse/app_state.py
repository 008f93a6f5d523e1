"""The application-state store: what people change in the dashboard, kept beside the warehouse.

The dashboard never opens the warehouse for writing (DuckDB allows one writer or many readers,
and a rebuild swaps the file). Persona names and strategies set by people and alert
acknowledgements go here instead: a SQLite file in WAL mode beside the warehouse
(``segrisk.duckdb`` -> ``segrisk.state.sqlite``), safe for several server processes, visible to
the dashboard at once. Every model run copies it into the warehouse (``ml_persona_labels``,
``ml_alert_acknowledgements``) so SQL users see the same.

It also holds who may sign in to the dashboard (``users``: name, role, salted password hash),
failed sign-ins per user name (``login_failures``, for a short back-off, never a lockout), the
dashboard's server-side sessions (``sessions``: SHA-256 of the id, user, created, last seen,
address, revoked; a new password or role, or removing the user, revokes them), and the append-only
``audit_log`` (triggers refuse any UPDATE or DELETE of it), and the scoring API's keys
(``api_keys``: name, SHA-256 of the key, a short prefix to recognise it, created, revoked).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from warehouse.errors import SegriskError

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

# -- access control: users, failed sign-ins, the audit log ------------------------------------
ROLES = ("viewer", "analyst", "admin")
ACCESS_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS login_failures (
    user_name TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    first_failed_at TEXT NOT NULL,
    locked_until TEXT
);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    user_name TEXT,
    action TEXT NOT NULL,
    detail TEXT,
    client_address TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_by_user ON audit_log (user_name, id);
CREATE INDEX IF NOT EXISTS audit_log_by_action ON audit_log (action, id);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""
#: How long a store call waits for another process's lock before answering ``StoreBusyError``: short,
#: because a server thread waits with it (writes in the store take milliseconds).
STORE_BUSY_SECONDS = 2.0
#: Per-user back-off, never a lockout: from the LOGIN_FREE_FAILURES-th failed sign-in of a user name
#: within LOGIN_FAILURE_WINDOW, that name may not be tried again before 1 s, then 2 s, 4 s ... after
#: each failure, at most LOGIN_BACKOFF_CAP (``login_failures.locked_until`` holds that "not before"
#: time). The dashboard applies it only to addresses that have failed (see ``dashboard/auth.py``).
LOGIN_FREE_FAILURES = 3
LOGIN_FAILURE_WINDOW = timedelta(hours=1)
LOGIN_BACKOFF_CAP = timedelta(minutes=5)
# -- end of access control schema ---------------------------------------------------------------

# -- dashboard sessions --------------------------------------------------------------------------
# One row per sign-in. Only the SHA-256 of the session id is stored (the id, 256 random bits, is in
# the browser's signed cookie): whoever reads the store cannot take over a session.
SESSIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id_sha256 TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    client_address TEXT,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_name);
"""
#: ``last_seen_at`` is written only when it is older than this, so callbacks do not write the store on
#: every request; the idle timeout is therefore exact to within this.
SESSION_TOUCH_INTERVAL = timedelta(minutes=1)
# -- end of dashboard sessions schema ------------------------------------------------------------

# -- scoring API keys ----------------------------------------------------------------------------
# Only the SHA-256 of each key is stored: a key is a 256-bit random token, so a plain hash is as
# strong as a slow one (nothing to guess) and cheap enough to check on every API call.
API_KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    key_sha256 TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT,
    revoked_at TEXT
);
"""
API_KEY_PREFIX = "sk_"
# -- end of scoring API keys schema ----------------------------------------------------------------


#: Server-side caps (the browser's maxLength is only a convenience).
MAX_PERSONA_NAME = 80
MAX_PERSONA_STRATEGY = 500
MAX_ALERT_ID = 200
MAX_ALERT_NOTE = 1_000
#: Control characters (they break PDF exports) and angle brackets (Plotly renders <a href=...> in a
#: chart label as a live link) are not kept in persona labels.
_UNSAFE_LABEL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f<>]")


def persona_text(text: str, what: str, limit: int) -> str:
    """A persona name or strategy as stored: control characters and ``<``/``>`` removed (a line
    break or tab becomes a space), trimmed; ValueError when empty or longer than ``limit``."""
    cleaned = _UNSAFE_LABEL_CHARS.sub(lambda m: " " if m.group() in "\t\n\r" else "", text).strip()
    if not cleaned:
        raise ValueError(f"the persona's {what} cannot be empty")
    if len(cleaned) > limit:
        raise ValueError(f"the persona's {what} has {len(cleaned):,} characters; at most {limit:,} are allowed")
    return cleaned


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
        con = sqlite3.connect(self.path, timeout=STORE_BUSY_SECONDS, isolation_level=None)
        try:
            con.execute(f"PRAGMA busy_timeout={int(STORE_BUSY_SECONDS * 1000)}")
            if not self._ready:
                self._prepare(con)
            return con
        except BaseException:
            con.close()
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, the write lock taken at once (BEGIN IMMEDIATE, so what the block
        reads cannot change before it writes): committed when the block ends, rolled back when it
        raises, the connection closed either way."""
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            yield con
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def _prepare(self, con: sqlite3.Connection) -> None:
        """WAL mode and the tables, once per instance; switching to WAL needs a moment alone with
        the file, so processes starting together take turns."""
        deadline = time.monotonic() + STORE_BUSY_SECONDS
        while True:
            try:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(SCHEMA)
                con.executescript(ACCESS_SCHEMA)
                con.executescript(API_KEYS_SCHEMA)
                _chain_audit_log(con)
                _owner_only(self.path)
                con.executescript(SESSIONS_SCHEMA)
                self._ready = True
                return
            except sqlite3.OperationalError as exc:
                # Each try may itself wait busy_timeout: the deadline bounds the whole, so a store
                # held under an exclusive lock answers "busy" in seconds, not minutes.
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def set_persona_label(
        self, segment_key: str, *, user: str, name: str | None = None, strategy: str | None = None
    ) -> None:
        """Rename a persona or set its strategy; the other field keeps its value."""
        if name is None and strategy is None:
            raise ValueError("give a new name or a new strategy")
        name = None if name is None else persona_text(name, "name", MAX_PERSONA_NAME)
        strategy = None if strategy is None else persona_text(strategy, "strategy", MAX_PERSONA_STRATEGY)
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
                [segment_key, name, strategy, user, now],
            )
        finally:
            con.close()

    def acknowledge(self, alert_id: str, *, user: str, note: str | None = None) -> None:
        """Store an acknowledgement; refuses (ValueError) an id or note over the length caps. Whether
        the alert exists is the caller's check (``dashboard.state.acknowledge``): the store does not
        read the warehouse."""
        if not alert_id or len(alert_id) > MAX_ALERT_ID:
            raise ValueError(f"an alert id has 1 to {MAX_ALERT_ID} characters")
        if note is not None and len(note) > MAX_ALERT_NOTE:
            raise ValueError(f"a note has at most {MAX_ALERT_NOTE:,} characters")
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

    # -- access control: users, failed sign-ins, the audit log ---------------------------------
    def add_user(self, name: str, role: str, password: str) -> StoredUser:
        """A new user; refused when the name is taken."""
        if self.user(name) is not None:
            raise AccessError(f"User '{name}' already exists; use `segrisk users passwd {name}` to change it.")
        return self.set_user(name, role, password=password)

    def set_user(
        self, name: str, role: str, *, password: str | None = None, password_hash: str | None = None
    ) -> StoredUser:
        """Create or replace a user from a password (hashed here) or a hash made by
        ``werkzeug.security.generate_password_hash``; keeps the creation time of an existing user."""
        _check_user_name(name)
        if role not in ROLES:
            raise AccessError(f"Role '{role}' is not one of {', '.join(ROLES)}.")
        if (password is None) == (password_hash is None):
            raise ValueError("give a password or a password hash")
        stored_hash = _hash_password(password) if password is not None else password_hash
        now = _utc_now()
        with self._write() as con:
            before = con.execute("SELECT role, password_hash FROM users WHERE name = ?", [name]).fetchone()
            con.execute(
                """
                INSERT INTO users VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (name) DO UPDATE SET
                    role = excluded.role, password_hash = excluded.password_hash, updated_at = excluded.updated_at
                """,
                [name, role, stored_hash, now, now],
            )
            if before is not None and tuple(before) != (role, stored_hash):
                _revoke_sessions_of(con, name)  # a new password or role ends the user's sessions
        user = self.user(name)
        assert user is not None
        return user

    def set_password(self, name: str, password: str) -> None:
        stored_hash = _hash_password(password)
        self._update_user(name, "UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?", stored_hash)

    def set_role(self, name: str, role: str) -> None:
        if role not in ROLES:
            raise AccessError(f"Role '{role}' is not one of {', '.join(ROLES)}.")
        self._update_user(name, "UPDATE users SET role = ?, updated_at = ? WHERE name = ?", role)

    def _update_user(self, name: str, sql: str, value: str) -> None:
        """Change one field of a user and end all their sessions, in one transaction."""
        with self._write() as con:
            changed = con.execute(sql, [value, _utc_now(), name]).rowcount
            _revoke_sessions_of(con, name)
        if not changed:
            raise AccessError(f"There is no user '{name}' (see `segrisk users list`).")

    def remove_user(self, name: str) -> None:
        """Delete the user and end their sessions; their audit entries stay."""
        with self._write() as con:
            removed = con.execute("DELETE FROM users WHERE name = ?", [name]).rowcount
            con.execute("DELETE FROM login_failures WHERE user_name = ?", [name])
            _revoke_sessions_of(con, name)
        if not removed:
            raise AccessError(f"There is no user '{name}' (see `segrisk users list`).")

    def user(self, name: str) -> StoredUser | None:
        if not self.path.exists():
            return None
        con = self._connect()
        try:
            row = con.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", [name]).fetchone()
        finally:
            con.close()
        return StoredUser(*row) if row else None

    def users(self) -> list[StoredUser]:
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            rows = con.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name").fetchall()
        finally:
            con.close()
        return [StoredUser(*row) for row in rows]

    def check_password(self, name: str, password: str) -> StoredUser | None:
        """The user when the password is theirs, else None. An unknown name costs as much time as a
        wrong password, so response times do not tell which names exist."""
        user = self.user(name)
        if user is None:
            check_password_hash(_dummy_hash(), password)
            return None
        return user if check_password_hash(user.password_hash, password) else None

    def locked_until(self, name: str, now: datetime | None = None) -> datetime | None:
        """Until when this user name is in its back-off (may not be tried), or None when it may."""
        if not self.path.exists():
            return None
        con = self._connect()
        try:
            row = con.execute("SELECT locked_until FROM login_failures WHERE user_name = ?", [name]).fetchone()
        finally:
            con.close()
        if not row or row[0] is None:
            return None
        until = datetime.fromisoformat(row[0])
        return until if until > (now or datetime.now(UTC)) else None

    def record_login_failure(self, name: str, now: datetime | None = None) -> datetime | None:
        """Count a failed sign-in of this user name (the count forgets after LOGIN_FAILURE_WINDOW);
        from the LOGIN_FREE_FAILURES-th on, the name is not tried again before 1 s, 2 s, 4 s ... (at
        most LOGIN_BACKOFF_CAP) from now. Returns that "not before" time, or None."""
        now = now or datetime.now(UTC)
        # Read and update the count as one step across processes.
        with self._write() as con:
            row = con.execute(
                "SELECT failures, first_failed_at FROM login_failures WHERE user_name = ?", [name]
            ).fetchone()
            if row is None or datetime.fromisoformat(row[1]) < now - LOGIN_FAILURE_WINDOW:
                failures, first = 1, now
            else:
                failures, first = row[0] + 1, datetime.fromisoformat(row[1])
            not_before = None
            if failures >= LOGIN_FREE_FAILURES:
                doublings = min(failures - LOGIN_FREE_FAILURES, 30)
                not_before = now + min(timedelta(seconds=2**doublings), LOGIN_BACKOFF_CAP)
            con.execute(
                """
                INSERT INTO login_failures VALUES (?, ?, ?, ?)
                ON CONFLICT (user_name) DO UPDATE SET failures = excluded.failures,
                    first_failed_at = excluded.first_failed_at, locked_until = excluded.locked_until
                """,
                [name, failures, first.isoformat(), not_before and not_before.isoformat()],
            )
        return not_before

    def clear_login_failures(self, name: str) -> None:
        """A successful sign-in forgets the name's earlier failures."""
        con = self._connect()
        try:
            con.execute("DELETE FROM login_failures WHERE user_name = ?", [name])
        finally:
            con.close()

    # -- dashboard sessions ----------------------------------------------------------------------
    def create_session(
        self, user_name: str, *, client_address: str | None, lifetime: timedelta, now: datetime | None = None
    ) -> str:
        """A new session of ``user_name``; returns its id (for the signed cookie), of which only the
        SHA-256 is stored. Sessions older than ``lifetime``, which can no longer be used, are removed."""
        now = now or datetime.now(UTC)
        session_id = secrets.token_urlsafe(32)
        con = self._connect()
        try:
            con.execute("DELETE FROM sessions WHERE created_at < ?", [(now - lifetime).isoformat()])
            con.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, NULL)",
                [session_digest(session_id), user_name, now.isoformat(), now.isoformat(), client_address],
            )
        finally:
            con.close()
        return session_id

    def session_user(
        self, session_id: str, *, idle: timedelta, lifetime: timedelta, now: datetime | None = None
    ) -> StoredUser | None:
        """The user of session ``session_id`` while it is neither revoked, idle for longer than
        ``idle``, nor older than ``lifetime``, and its user still exists; else None. Notes the session
        as seen (a write at most once per SESSION_TOUCH_INTERVAL)."""
        if not session_id or len(session_id) > 200 or not self.path.exists():
            return None
        now = now or datetime.now(UTC)
        digest = session_digest(session_id)
        con = self._connect()
        try:
            row = con.execute(
                "SELECT s.created_at, s.last_seen_at, s.revoked_at, "
                + ", ".join(f"u.{c.strip()}" for c in _USER_COLUMNS.split(","))
                + " FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.id_sha256 = ?",
                [digest],
            ).fetchone()
            if row is None or row[2] is not None:
                return None
            created, last_seen = datetime.fromisoformat(row[0]), datetime.fromisoformat(row[1])
            if now - last_seen > idle or now - created > lifetime:
                return None
            if now - last_seen >= SESSION_TOUCH_INTERVAL:
                con.execute(
                    "UPDATE sessions SET last_seen_at = ? WHERE id_sha256 = ? AND revoked_at IS NULL",
                    [now.isoformat(), digest],
                )
        finally:
            con.close()
        return StoredUser(*row[3:])

    def revoke_session(self, session_id: str) -> None:
        """End one session (sign-out): its cookie, even copied, no longer signs anyone in."""
        con = self._connect()
        try:
            con.execute(
                "UPDATE sessions SET revoked_at = ? WHERE id_sha256 = ? AND revoked_at IS NULL",
                [_utc_now(), session_digest(session_id)],
            )
        finally:
            con.close()

    def revoke_sessions(self, user_name: str) -> int:
        """End every open session of ``user_name``; returns how many were open."""
        con = self._connect()
        try:
            return _revoke_sessions_of(con, user_name)
        finally:
            con.close()

    def open_sessions(self, user_name: str) -> int:
        """How many sessions of ``user_name`` are not revoked (expired ones included)."""
        if not self.path.exists():
            return 0
        con = self._connect()
        try:
            row = con.execute(
                "SELECT count(*) FROM sessions WHERE user_name = ? AND revoked_at IS NULL", [user_name]
            ).fetchone()
        finally:
            con.close()
        return int(row[0])

    def record_audit(
        self,
        action: str,
        *,
        user: str | None,
        detail: str | None = None,
        client_address: str | None = None,
        outcome: str = "ok",
        now: datetime | None = None,
    ) -> int:
        """Append one entry to the audit log (which has no way to change or remove one); returns its id.

        Each text field is kept to 2,000 characters: a longer one (a refused 20 MB SQL
        text) is cut, ending with a note of its full length."""
        at = (now or datetime.now(UTC)).isoformat(timespec="milliseconds")
        cap = 2_000

        def capped(text: str | None) -> str | None:
            if text is None or len(text) <= cap:
                return text
            note = f" … (cut: {len(text):,} characters in all)"
            return text[: cap - len(note)] + note

        values = [at, *(capped(v) for v in (user, action, detail, client_address, outcome))]
        # BEGIN IMMEDIATE takes the write lock before reading the chain's head, so two processes
        # appending at once cannot both link to the same previous entry.
        with self._write() as con:
            head = con.execute(
                "SELECT entry_hash FROM audit_log WHERE entry_hash IS NOT NULL ORDER BY id DESC LIMIT 1"
            ).fetchone()
            cursor = con.execute(
                "INSERT INTO audit_log (at, user_name, action, detail, client_address, outcome, entry_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [*values, audit_entry_hash(head[0] if head else None, values)],
            )
            return int(cursor.lastrowid or 0)

    def verify_audit_chain(self) -> AuditChainCheck:
        """Recompute the audit log's hash chain from its first entry: an entry changed, removed or
        inserted by hand (with the append-only triggers dropped) breaks the chain at that entry.
        Entries written before the chain existed (no hash) are counted, not checked."""
        if not self.path.exists():
            return AuditChainCheck(0, 0, None)
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT id, at, user_name, action, detail, client_address, outcome, entry_hash FROM audit_log "
                "ORDER BY id"
            )
            previous: str | None = None
            entries = unchained = 0
            for entry_id, *values, stored in rows:
                entries += 1
                if stored is None and previous is None:
                    unchained += 1  # from before the chain: nothing to check it against
                    continue
                expected = audit_entry_hash(previous, values)
                if stored != expected:
                    return AuditChainCheck(entries, unchained, entry_id)
                previous = stored
            return AuditChainCheck(entries, unchained, None)
        finally:
            con.close()

    def audit_entries(
        self, *, user: str | None = None, action: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[AuditEntry]:
        """Entries newest first, optionally of one user name and/or one action."""
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT id, at, user_name, action, detail, client_address, outcome FROM audit_log "
                "WHERE (:user IS NULL OR user_name = :user) AND (:action IS NULL OR action = :action) "
                "ORDER BY id DESC LIMIT :limit OFFSET :offset",
                {"user": user, "action": action, "limit": limit, "offset": offset},
            ).fetchall()
        finally:
            con.close()
        return [AuditEntry(i, datetime.fromisoformat(at), *rest) for i, at, *rest in rows]

    def audit_count(self, *, user: str | None = None, action: str | None = None) -> int:
        if not self.path.exists():
            return 0
        con = self._connect()
        try:
            row = con.execute(
                "SELECT count(*) FROM audit_log "
                "WHERE (:user IS NULL OR user_name = :user) AND (:action IS NULL OR action = :action)",
                {"user": user, "action": action},
            ).fetchone()
        finally:
            con.close()
        return int(row[0])

    def audit_names(self) -> tuple[list[str], list[str]]:
        """(user names, actions) that occur in the audit log, for its filters."""
        if not self.path.exists():
            return [], []
        con = self._connect()
        try:
            users = [r[0] for r in con.execute("SELECT DISTINCT user_name FROM audit_log WHERE user_name IS NOT NULL")]
            actions = [r[0] for r in con.execute("SELECT DISTINCT action FROM audit_log")]
        finally:
            con.close()
        return sorted(users), sorted(actions)

    # -- scoring API keys --------------------------------------------------------------------------
    def create_api_key(self, name: str, *, created_by: str | None = None) -> str:
        """A new API key named ``name``; returns the key itself, which is never stored (only its
        SHA-256). Refused while a key of that name is active; a revoked name may be reused."""
        _check_user_name(name)
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        with self._write() as con:
            row = con.execute("SELECT revoked_at FROM api_keys WHERE name = ?", [name]).fetchone()
            if row is not None and row[0] is None:
                raise AccessError(
                    f"API key '{name}' already exists; revoke it first (`segrisk apikeys revoke {name}`)."
                )
            con.execute(
                "INSERT OR REPLACE INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)",
                [name, api_key_digest(key), key[: len(API_KEY_PREFIX) + 6], _utc_now(), created_by],
            )
        return key

    def revoke_api_key(self, name: str) -> None:
        con = self._connect()
        try:
            changed = con.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", [_utc_now(), name]
            ).rowcount
        finally:
            con.close()
        if not changed:
            raise AccessError(f"There is no active API key '{name}' (see `segrisk apikeys list`).")

    def api_keys(self) -> list[StoredApiKey]:
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT name, key_prefix, created_at, created_by, revoked_at FROM api_keys ORDER BY name"
            ).fetchall()
        finally:
            con.close()
        return [StoredApiKey(*row) for row in rows]

    def api_key_name(self, key: str) -> str | None:
        """The name of the active API key ``key``, or None for an unknown or revoked one."""
        if not key.startswith(API_KEY_PREFIX) or len(key) > 200 or not self.path.exists():
            return None
        con = self._connect()
        try:
            row = con.execute(
                "SELECT name FROM api_keys WHERE key_sha256 = ? AND revoked_at IS NULL", [api_key_digest(key)]
            ).fetchone()
        finally:
            con.close()
        return row[0] if row else None


def api_key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def session_digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _revoke_sessions_of(con: sqlite3.Connection, user_name: str) -> int:
    return con.execute(
        "UPDATE sessions SET revoked_at = ? WHERE user_name = ? AND revoked_at IS NULL", [_utc_now(), user_name]
    ).rowcount


@dataclass(frozen=True)
class StoredApiKey:
    name: str
    key_prefix: str
    created_at: str
    created_by: str | None
    revoked_at: str | None


# -- access control helpers ------------------------------------------------------------------------
MIN_PASSWORD_LENGTH = 8
_USER_COLUMNS = "name, role, password_hash, created_at, updated_at"
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@functools.cache
def _dummy_hash() -> str:
    """Checked against when a user name does not exist, so that case takes as long as a wrong password."""
    return generate_password_hash("segrisk: no such user")


class AccessError(SegriskError):
    """A user, role or password the store refuses (one sentence for the CLI or the page)."""


class StoreBusyError(SegriskError):
    """The store stayed locked by another process (a backup tool, a hand-opened ``sqlite3`` shell
    with an exclusive lock) for longer than ``STORE_BUSY_SECONDS``: callers answer with this
    sentence (JSON for the API) or fall back to what they can show without the store."""


def _busy_is_a_sentence(method):
    """Turn SQLite's "database is locked" into ``StoreBusyError`` for one public method, so no caller
    sees a raw ``sqlite3.OperationalError`` (an HTML 500 with a traceback in the dashboard)."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise StoreBusyError(
                f"The application-state store {self.path.name} is locked by another program for more than "
                f"{STORE_BUSY_SECONDS:g} seconds; try again in a moment, or ask an admin to close whatever holds it."
            ) from exc

    return guarded


# Every public method of the store, present and future, says "busy" in a sentence.
for _name, _method in list(vars(AppState).items()):
    if callable(_method) and not _name.startswith("_"):
        setattr(AppState, _name, _busy_is_a_sentence(_method))


@dataclass(frozen=True)
class StoredUser:
    name: str
    role: str
    password_hash: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class AuditChainCheck:
    """What ``verify_audit_chain`` found: entries read, entries from before the chain, and the id of
    the first entry whose hash does not follow (None: the chain holds)."""

    entries: int
    unchained: int
    broken_at: int | None

    @property
    def holds(self) -> bool:
        return self.broken_at is None


def audit_entry_hash(previous: str | None, values: list) -> str:
    """SHA-256 of the previous entry's hash and this entry's fields (at, user, action, detail,
    client address, outcome) as JSON: each entry vouches for every entry before it."""
    payload = json.dumps([previous or "", *values], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _owner_only(store_path: Path) -> None:
    """The store holds password hashes, session and key digests and the audit log: readable by its
    owner only (mode 600), with SQLite's WAL files alike, whoever creates it (the dashboard or the
    command line) and whatever the umask."""
    for path in (store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")):
        try:
            status = path.stat()
            if status.st_uid == os.getuid() and status.st_mode & 0o077:
                path.chmod(0o600)
        except FileNotFoundError:
            pass


def _chain_audit_log(con: sqlite3.Connection) -> None:
    """Give an audit log made before the hash chain its ``entry_hash`` column (the triggers refuse
    UPDATE, so older entries stay unhashed and the chain starts at the next one)."""
    columns = {row[1] for row in con.execute("PRAGMA table_info(audit_log)")}
    if "entry_hash" not in columns:
        try:
            con.execute("ALTER TABLE audit_log ADD COLUMN entry_hash TEXT")
        except sqlite3.OperationalError as exc:
            # Another process (or thread) opening the store at the same moment added it first.
            if "duplicate column" not in str(exc):
                raise


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    user: str | None
    action: str
    detail: str | None
    client_address: str | None
    outcome: str


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _check_user_name(name: str) -> None:
    if not _USER_NAME.fullmatch(name or ""):
        raise AccessError(
            f"User name '{name}' is not 1 to 64 letters, digits or . _ @ - (starting with a letter or digit)."
        )


def _hash_password(password: str) -> str:
    """A salted hash in werkzeug's standard format (scrypt), never the password itself."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccessError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    return generate_password_hash(password)

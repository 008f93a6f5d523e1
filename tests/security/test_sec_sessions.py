"""Issue 13 item 5: sessions live on the server. Sign-out ends a session even for a copied cookie; an
idle or too old session, a new password or role and a removed user sign out; only the SHA-256 of a
session id is stored; writes of "last seen" are throttled; the settings are checked. Item 11 (the
sign-in part): a store locked by another program answers 503 with a sentence, never an HTML 500."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from signin import login_form

from dashboard import auth
from dashboard.app import create_app
from warehouse import app_state
from warehouse.app_state import AppState, session_digest, state_path

PASSWORD = "a long enough password"
SETTINGS = ("SEGRISK_SESSION_IDLE_MINUTES", "SEGRISK_SESSION_HOURS")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEGRISK_ADMIN_PASSWORD", "SEGRISK_USERS", "SEGRISK_SECRET_KEY", *SETTINGS):
        monkeypatch.delenv(name, raising=False)


def _server(tmp_path: Path):  # noqa: ANN202 - the Flask server
    access = AppState(state_path(tmp_path / "bank.duckdb"))
    access.set_user("alice", "analyst", password=PASSWORD)
    access.set_user("bob", "viewer", password=PASSWORD)
    return create_app(tmp_path / "bank.duckdb").server


def _signed_in(server, name: str = "alice"):  # noqa: ANN001, ANN202 - a test client
    client = server.test_client()
    assert client.post("/login", data=login_form(client, name, PASSWORD)).status_code == 302
    return client


def _session_id(client) -> str:  # noqa: ANN001
    with client.session_transaction() as session:
        return session["sid"]


def _copy(server, client):  # noqa: ANN001, ANN202 - another "browser" holding the same cookie
    thief = server.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def _signed_out(client) -> bool:  # noqa: ANN001
    page = client.get("/_dash-layout")
    return page.status_code == 401


def test_a_copied_cookie_stops_working_after_sign_out(tmp_path: Path) -> None:
    server = _server(tmp_path)
    client = _signed_in(server)
    thief = _copy(server, client)
    assert not _signed_out(thief)  # the copy works while the session lives ...
    assert client.get("/logout").headers["Location"] == "/login"
    assert _signed_out(thief)  # ... and not after sign-out: the server ended the session
    assert thief.get("/risk").headers["Location"].startswith("/login")
    assert thief.post("/_dash-update-component", json={}).status_code == 401
    assert _signed_out(client)
    assert client.get("/logout").headers["Location"] == "/login"  # signed out already: the form, no "next"


def test_signing_in_again_ends_the_browsers_earlier_session(tmp_path: Path) -> None:
    server = _server(tmp_path)
    client = _signed_in(server)
    earlier = _copy(server, client)
    assert client.post("/login", data=login_form(client, "alice", PASSWORD)).status_code == 302
    assert _signed_out(earlier) and not _signed_out(client)
    assert server.extensions["segrisk_state"].open_sessions("alice") == 1


def test_only_the_sha256_of_a_session_id_is_stored(tmp_path: Path) -> None:
    server = _server(tmp_path)
    session_id = _session_id(_signed_in(server))
    assert len(session_id) >= 43  # secrets.token_urlsafe(32): 256 random bits
    with sqlite3.connect(state_path(tmp_path / "bank.duckdb")) as con:
        rows = con.execute("SELECT id_sha256, user_name, client_address, revoked_at FROM sessions").fetchall()
    assert rows == [(session_digest(session_id), "alice", "127.0.0.1", None)]
    assert session_id.encode() not in state_path(tmp_path / "bank.duckdb").read_bytes()


def _age(db: Path, session_id: str, column: str, by: timedelta) -> None:
    """Move a session's ``column`` back in time, as if that much time had passed."""
    at = (datetime.now(UTC) - by).isoformat()
    with sqlite3.connect(state_path(db)) as con:
        con.execute(f"UPDATE sessions SET {column} = ? WHERE id_sha256 = ?", [at, session_digest(session_id)])


def test_an_idle_session_and_a_too_old_one_are_signed_out(tmp_path: Path) -> None:
    server = _server(tmp_path)
    idle, busy = _signed_in(server), _signed_in(server, "bob")
    _age(tmp_path / "bank.duckdb", _session_id(idle), "last_seen_at", timedelta(minutes=31))
    _age(tmp_path / "bank.duckdb", _session_id(busy), "created_at", timedelta(hours=12, minutes=1))
    assert _signed_out(idle)  # idle for longer than SEGRISK_SESSION_IDLE_MINUTES (30)
    assert _signed_out(busy)  # in use, but older than SEGRISK_SESSION_HOURS (12)
    assert idle.get("/").headers["Location"].startswith("/login")


def test_the_cookie_does_not_outlive_the_absolute_lifetime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGRISK_SESSION_HOURS", "2")
    monkeypatch.setenv("SEGRISK_SESSION_IDLE_MINUTES", "15")
    server = _server(tmp_path)
    assert server.config["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=2)
    assert server.config["SEGRISK_SESSION_IDLE"] == timedelta(minutes=15)
    assert server.config["SESSION_REFRESH_EACH_REQUEST"] is False  # not renewed by each request
    client = server.test_client()
    signed_in = client.post("/login", data=login_form(client, "alice", PASSWORD))
    cookie = client.get_cookie("session")
    assert cookie.expires is not None
    assert cookie.expires - datetime.now(UTC) <= timedelta(hours=2)
    assert "Expires=" in signed_in.headers["Set-Cookie"]


def test_last_seen_is_written_at_most_once_a_minute(tmp_path: Path) -> None:
    store = AppState(state_path(tmp_path / "bank.duckdb"))
    store.set_user("alice", "analyst", password=PASSWORD)
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    limits = {"idle": timedelta(minutes=30), "lifetime": timedelta(hours=12)}
    session_id = store.create_session("alice", client_address="10.0.0.1", lifetime=limits["lifetime"], now=start)

    def last_seen() -> str:
        with sqlite3.connect(store.path) as con:
            return con.execute("SELECT last_seen_at FROM sessions").fetchone()[0]

    for second in range(0, 60, 5):  # a callback every 5 seconds: no write
        assert store.session_user(session_id, now=start + timedelta(seconds=second), **limits).name == "alice"
    assert last_seen() == start.isoformat()
    later = start + timedelta(minutes=29)
    assert store.session_user(session_id, now=later, **limits) is not None
    assert last_seen() == later.isoformat()
    # Idle 29 minutes twice over is fine: the timeout counts from the last use.
    assert store.session_user(session_id, now=later + timedelta(minutes=29), **limits) is not None
    assert store.session_user(session_id, now=later + timedelta(minutes=29 + 31), **limits) is None
    assert store.session_user("not a session", now=later, **limits) is None


@pytest.mark.parametrize("change", ["password", "role", "remove", "set_user"])
def test_a_new_password_or_role_or_removal_ends_every_session_of_the_user(tmp_path: Path, change: str) -> None:
    server = _server(tmp_path)
    first, second, other = _signed_in(server), _signed_in(server), _signed_in(server, "bob")
    access: AppState = server.extensions["segrisk_state"]
    assert access.open_sessions("alice") == 2
    if change == "password":
        access.set_password("alice", "a brand new password")  # `segrisk users passwd` calls this
    elif change == "role":
        access.set_role("alice", "viewer")  # `segrisk users role`
    elif change == "remove":
        access.remove_user("alice")  # `segrisk users remove`
    else:
        access.set_user("alice", "admin", password=PASSWORD)  # SEGRISK_USERS / SEGRISK_ADMIN_PASSWORD at start
    assert access.open_sessions("alice") == 0
    assert _signed_out(first) and _signed_out(second)
    assert not _signed_out(other)  # another user's session is untouched


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SEGRISK_SESSION_IDLE_MINUTES", "abc"),
        ("SEGRISK_SESSION_IDLE_MINUTES", "0"),
        ("SEGRISK_SESSION_IDLE_MINUTES", "1.5"),
        ("SEGRISK_SESSION_HOURS", "-1"),
        ("SEGRISK_SESSION_HOURS", "100000"),
    ],
)
def test_a_bad_session_setting_stops_the_start_with_a_sentence_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(auth.AuthError, match=rf"^{name} must be a whole number of .* not '{value}'\.$"):
        _server(tmp_path)


def test_session_settings_default_to_30_minutes_and_12_hours() -> None:
    assert auth.session_limits({}) == (timedelta(minutes=30), timedelta(hours=12))
    assert auth.session_limits({"SEGRISK_SESSION_IDLE_MINUTES": " 5 ", "SEGRISK_SESSION_HOURS": "24"}) == (
        timedelta(minutes=5),
        timedelta(hours=24),
    )


# -- item 11, sign-in part: a locked store ---------------------------------------------------------------
def test_a_locked_store_answers_503_with_a_sentence_not_a_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_state, "STORE_BUSY_SECONDS", 0.2)  # the test need not wait 2 s per call
    server = _server(tmp_path)
    client = _signed_in(server)
    signing_in = server.test_client()
    form = login_form(signing_in, "bob", PASSWORD)
    hold = sqlite3.connect(state_path(tmp_path / "bank.duckdb"), isolation_level=None)
    try:
        hold.execute("PRAGMA locking_mode=EXCLUSIVE")
        hold.execute("BEGIN EXCLUSIVE")
        hold.execute("INSERT INTO persona_labels VALUES ('a', 'b', 'c', 'd', 'e')")
        hold.execute("COMMIT")  # in EXCLUSIVE locking mode the lock stays after the write
        answers = {
            "page": client.get("/risk"),
            "callback": client.post("/_dash-update-component", json={}),
            "sign-in": signing_in.post("/login", data=form),
            "sign-out": client.get("/logout"),
        }
    finally:
        hold.close()
    for what, answer in answers.items():
        text = answer.get_data(as_text=True)
        assert answer.status_code == 503, what
        assert "is locked by another program" in text and "Traceback" not in text, what
        assert answer.headers["Retry-After"] == "5", what
    assert answers["page"].mimetype == "text/html" and answers["callback"].mimetype == "text/plain"
    assert answers["sign-in"].mimetype == "text/html" and 'name="csrf_token"' in answers["sign-in"].get_data(
        as_text=True
    )
    # Once the store is free again everything answers as before, and the sign-in did not half-happen.
    assert _signed_out(signing_in)
    assert signing_in.post("/login", data=login_form(signing_in, "bob", PASSWORD)).status_code == 302

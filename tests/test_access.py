"""Access control and audit: users in the app-state store, roles, the lockout, the append-only audit
log, the secret key, the guard in front of every route, and `segrisk users`."""

from __future__ import annotations

import io
import os
import sqlite3
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dash
import pytest
from conftest import dashboard_page
from dash_helpers import text_of
from signin import login_form

from dashboard import auth
from dashboard.app import create_app
from dashboard.cli import main
from dashboard.data import reader
from dashboard.state import persona_names
from warehouse.app_state import (
    LOGIN_BACKOFF_CAP,
    LOGIN_FREE_FAILURES,
    ROLES,
    AccessError,
    AppState,
    state_path,
)

PASSWORD = "a long enough password"


@pytest.fixture
def store(tmp_path: Path) -> AppState:
    return AppState(state_path(tmp_path / "bank.duckdb"))


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEGRISK_ADMIN_PASSWORD", "SEGRISK_USERS", "SEGRISK_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)


# -- the store ------------------------------------------------------------------------------------------
def test_passwords_are_stored_as_salted_standard_hashes(store: AppState) -> None:
    store.add_user("alice", "analyst", PASSWORD)
    store.add_user("bob", "viewer", PASSWORD)
    alice, bob = store.user("alice"), store.user("bob")
    assert alice is not None and bob is not None
    assert PASSWORD not in alice.password_hash and alice.password_hash.startswith(("scrypt:", "pbkdf2:"))
    assert alice.password_hash != bob.password_hash  # salted: the same password, two hashes
    assert store.check_password("alice", PASSWORD) == alice
    assert store.check_password("alice", PASSWORD + "!") is None
    assert store.check_password("nobody", PASSWORD) is None
    with sqlite3.connect(store.path) as con:
        stored = " ".join(str(v) for row in con.execute("SELECT * FROM users") for v in row)
    assert PASSWORD not in stored


def test_users_are_added_changed_and_removed_with_clear_refusals(store: AppState) -> None:
    store.add_user("alice", "analyst", PASSWORD)
    with pytest.raises(AccessError, match="already exists"):
        store.add_user("alice", "admin", PASSWORD)
    with pytest.raises(AccessError, match="at least 8 characters"):
        store.add_user("carol", "viewer", "short")
    with pytest.raises(AccessError, match="Role 'root'"):
        store.add_user("carol", "root", PASSWORD)
    with pytest.raises(AccessError, match="User name 'c d'"):
        store.add_user("c d", "viewer", PASSWORD)
    before = store.user("alice")
    store.set_password("alice", "another long password")
    store.set_role("alice", "admin")
    after = store.user("alice")
    assert after is not None and before is not None
    assert after.role == "admin" and after.password_hash != before.password_hash
    assert after.created_at == before.created_at
    assert store.check_password("alice", "another long password") is not None
    store.remove_user("alice")
    assert store.users() == []
    with pytest.raises(AccessError, match="no user 'alice'"):
        store.remove_user("alice")
    with pytest.raises(AccessError, match="no user 'alice'"):
        store.set_password("alice", PASSWORD)


def test_failures_of_a_name_give_a_short_back_off_that_doubles_and_is_capped(store: AppState) -> None:
    start = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    for second in range(LOGIN_FREE_FAILURES - 1):
        assert store.record_login_failure("alice", now=start + timedelta(seconds=second)) is None
    assert store.locked_until("alice", now=start + timedelta(seconds=2)) is None
    third = start + timedelta(seconds=10)
    assert store.record_login_failure("alice", now=third) == third + timedelta(seconds=1)
    assert store.record_login_failure("alice", now=third) == third + timedelta(seconds=2)
    assert store.locked_until("alice", now=third + timedelta(seconds=1)) == third + timedelta(seconds=2)
    assert store.locked_until("alice", now=third + timedelta(seconds=3)) is None
    for _ in range(40):
        until = store.record_login_failure("alice", now=third)
    assert until == third + LOGIN_BACKOFF_CAP  # never a lockout: minutes at most
    assert store.locked_until("bob", now=third) is None  # per user name


def test_failures_spread_beyond_the_window_or_cleared_by_a_success_give_no_back_off(store: AppState) -> None:
    start = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    for attempt in range(3 * LOGIN_FREE_FAILURES):  # one every 40 minutes: never 3 within an hour
        assert store.record_login_failure("alice", now=start + timedelta(minutes=40 * attempt)) is None
    for attempt in range(3 * LOGIN_FREE_FAILURES):
        assert store.record_login_failure("bob", now=start + timedelta(seconds=attempt)) is None
        if attempt % 2 == 1:
            store.clear_login_failures("bob")


def test_the_audit_log_is_append_only(store: AppState) -> None:
    first = store.record_audit("login", user="alice", detail="signed in", client_address="10.0.0.1")
    second = store.record_audit("login", user="mallory", outcome="failed")
    assert second > first
    assert not any(name.startswith(("update", "delete", "remove")) for name in dir(store) if "audit" in name)
    with sqlite3.connect(store.path) as con:
        for statement in ("UPDATE audit_log SET outcome = 'ok'", "DELETE FROM audit_log WHERE user_name = 'mallory'"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                con.execute(statement)
    entries = store.audit_entries()
    assert [(e.user, e.outcome) for e in entries] == [("mallory", "failed"), ("alice", "ok")]  # newest first
    assert entries[1].client_address == "10.0.0.1" and entries[1].at.tzinfo is not None
    assert [e.user for e in store.audit_entries(user="alice")] == ["alice"]
    assert store.audit_count(action="login") == 2 and store.audit_count(action="logout") == 0
    assert store.audit_names() == (["alice", "mallory"], ["login"])


# -- roles ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("viewer", {"aggregates"}),
        ("analyst", {"aggregates", "customer_level", "download", "sql", "acknowledge"}),
        (
            "admin",
            {"aggregates", "customer_level", "download", "sql", "acknowledge", "edit_personas", "policy", "admin"},
        ),
        (None, set()),
        ("superuser", set()),
    ],
)
def test_each_role_may_do_what_it_should_and_nothing_else(role: str | None, allowed: set[str]) -> None:
    assert {c for c in auth.ALL_CAPABILITIES if auth.can(role, c)} == allowed


def test_every_role_is_known_to_the_store_and_a_typo_in_a_capability_fails_loudly() -> None:
    assert set(auth.CAPABILITIES) == set(ROLES)
    with pytest.raises(ValueError, match="unknown capability"):
        auth.can("admin", "customer-level")


# -- the web side ---------------------------------------------------------------------------------------
def _app(tmp_path: Path, **users: str):  # noqa: ANN202 - the Flask server
    """A dashboard over a folder without a warehouse (pages say so): enough for the login and guard."""
    access = AppState(state_path(tmp_path / "bank.duckdb"))
    for name, role in users.items():
        access.set_user(name, role, password=PASSWORD)
    return create_app(tmp_path / "bank.duckdb").server


def _sign_in(client, name: str, password: str = PASSWORD):  # noqa: ANN001, ANN202
    return client.post("/login", data=login_form(client, name, password))


def test_logins_and_failures_are_audited_with_the_client_address(tmp_path: Path) -> None:
    server = _app(tmp_path, alice="analyst")
    client = server.test_client()
    refused = _sign_in(client, "alice", "wrong password")
    assert refused.status_code == 401 and b"Wrong user name or password." in refused.data
    assert _sign_in(client, "alice").status_code == 302
    assert client.get("/logout").status_code == 302
    log = server.extensions["segrisk_state"].audit_entries()
    assert [(e.action, e.user, e.outcome) for e in reversed(log)] == [
        ("login", "alice", "failed"),
        ("login", "alice", "ok"),
        ("logout", "alice", "ok"),
    ]
    assert {e.client_address for e in log} == {"127.0.0.1"}


def test_a_name_in_back_off_is_refused_at_once_from_the_failing_address_only(tmp_path: Path) -> None:
    server = _app(tmp_path, alice="analyst")
    client = server.test_client()
    for _ in range(LOGIN_FREE_FAILURES):
        answer = _sign_in(client, "alice", "guess")
    assert answer.status_code == 401
    for _ in range(10):  # more failures of the name (another server process): the back-off grows to its cap
        server.extensions["segrisk_state"].record_login_failure("alice")
    answer = _sign_in(client, "alice")  # the right password, but from the address that kept failing
    assert answer.status_code == 429 and b"wait 5 minutes" in answer.data
    assert 0 < int(answer.headers["Retry-After"]) <= LOGIN_BACKOFF_CAP.total_seconds()
    assert client.get("/", follow_redirects=False).status_code == 302  # still signed out
    other = server.test_client()  # another address: the back-off does not apply there
    answer = other.post("/login", data=login_form(other, "alice", PASSWORD), environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert answer.status_code == 302
    outcomes = [e.outcome for e in server.extensions["segrisk_state"].audit_entries(user="alice")]
    assert outcomes == ["ok", "locked"] + ["failed"] * LOGIN_FREE_FAILURES


def test_every_route_needs_a_session_except_the_api_which_answers_for_itself(tmp_path: Path) -> None:
    server = _app(tmp_path, alice="viewer")
    client = server.test_client()
    assert client.get("/customer?customer_id=1").headers["Location"] == "/login?next=/customer?customer_id=1"
    assert client.post("/_dash-update-component", json={}).status_code == 401
    assert client.get("/_dash-layout").status_code == 401
    # The guard does not redirect API calls to a login form: the API's own code decides (401, key...).
    assert client.get("/api/v1/no-such-route").status_code != 302


def test_removing_a_user_or_changing_their_password_ends_their_sessions(tmp_path: Path) -> None:
    server = _app(tmp_path, alice="analyst", bob="viewer")
    alice, bob = server.test_client(), server.test_client()
    _sign_in(alice, "alice")
    _sign_in(bob, "bob")
    assert alice.get("/_dash-layout").status_code == 200 and bob.get("/_dash-layout").status_code == 200
    access: AppState = server.extensions["segrisk_state"]
    access.set_password("alice", "a brand new password")
    access.remove_user("bob")
    assert alice.get("/_dash-layout").status_code == 401
    assert bob.get("/_dash-layout").status_code == 401


def test_session_user_and_audit_for_the_api(tmp_path: Path) -> None:
    server = _app(tmp_path, alice="analyst")
    with server.test_request_context("/api/v1/score", environ_base={"REMOTE_ADDR": "10.1.2.3"}):
        assert auth.session_user() is None  # no cookie on this request
        auth.audit("api_score", "customer 7", user="key:los")
    with server.test_request_context("/api/v1/score"):
        auth.start_session(server.extensions["segrisk_state"].user("alice"))
        assert auth.session_user() == ("alice", "analyst") and auth.user_can("sql")
    entry = server.extensions["segrisk_state"].audit_entries(action="api_score")[0]
    assert (entry.user, entry.client_address, entry.detail) == ("key:los", "10.1.2.3", "customer 7")


def test_audit_outside_a_request_names_the_command_line(tmp_path: Path) -> None:
    auth.audit("report_export", "overview.pdf", db_path=tmp_path / "bank.duckdb")
    entry = AppState(state_path(tmp_path / "bank.duckdb")).audit_entries()[0]
    assert entry.client_address == "command line" and entry.user.endswith("(command line)")
    with pytest.raises(RuntimeError, match="db_path"):
        auth.audit("report_export")


def test_the_secret_key_is_made_once_with_mode_600_and_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _app(tmp_path, alice="analyst")
    second = create_app(tmp_path / "bank.duckdb").server  # another server process over the same warehouse
    key_file = state_path(tmp_path / "bank.duckdb").with_suffix(".secret")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state_path(tmp_path / "bank.duckdb")).st_mode) == 0o600  # hashes, audit log
    assert first.secret_key == second.secret_key == key_file.read_text() and len(first.secret_key) == 64
    # A session signed by one process is valid in the other (and after a restart).
    client = first.test_client()
    _sign_in(client, "alice")
    cookie = client.get_cookie("session")
    other = second.test_client()
    other.set_cookie("session", cookie.value)
    assert other.get("/_dash-layout").status_code == 200
    monkeypatch.setenv("SEGRISK_SECRET_KEY", "from the environment, 32+ characters")
    assert create_app(tmp_path / "bank.duckdb").server.secret_key == "from the environment, 32+ characters"
    assert first.config["SESSION_COOKIE_HTTPONLY"] and first.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert first.debug is False


def test_the_environment_bootstraps_the_admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGRISK_ADMIN_PASSWORD", PASSWORD)
    server = create_app(tmp_path / "bank.duckdb").server
    access: AppState = server.extensions["segrisk_state"]
    admin = access.user("admin")
    assert admin is not None and admin.role == "admin" and access.check_password("admin", PASSWORD)
    create_app(tmp_path / "bank.duckdb")  # a restart with the same password leaves the user as it is
    assert access.user("admin") == admin
    monkeypatch.setenv("SEGRISK_ADMIN_PASSWORD", "a changed admin password")
    create_app(tmp_path / "bank.duckdb")
    assert access.check_password("admin", "a changed admin password") is not None
    monkeypatch.setenv("SEGRISK_ADMIN_PASSWORD", "short")
    with pytest.raises(auth.AuthError, match="at least 8"):
        create_app(tmp_path / "bank.duckdb")


def test_the_admin_page_is_for_admins_only(tmp_path: Path) -> None:
    server = _app(tmp_path, alice="analyst", root="admin")
    page = sys.modules["pages.admin"]
    access: AppState = server.extensions["segrisk_state"]
    with server.test_request_context():
        auth.start_session(access.user("alice"))
        assert "Only admins see this page; your role is analyst." in text_of(page.layout())
        assert "Only admins" in text_of(page.show_audit(None, None, 1)[0])
    access.record_audit("customer_lookup", user="alice", detail="customer 12")
    access.record_audit("login", user="root")
    with server.test_request_context():
        auth.start_session(access.user("root"))
        shown = text_of(page.layout())
        assert "alice" in shown and "analyst" in shown and "root" in shown
        table, pages, summary = page.show_audit("alice", None, 1)
        assert "customer 12" in text_of(table) and "root" not in text_of(table) and pages == 1
        assert summary.startswith("entries 1-1 of 1")
    menu_entry = next(p for p in dash.page_registry.values() if p["relative_path"] == "/admin")
    assert menu_entry["admin_only"] is True


# -- customer-level data and downloads by role ------------------------------------------------------------
def test_viewers_get_a_sentence_instead_of_customer_rows_and_downloads(full_db_copy: Path) -> None:
    page = dashboard_page(full_db_copy, "cross_sell")
    server = dash.get_app().server
    access: AppState = server.extensions["segrisk_state"]
    viewer = access.set_user("vera", "viewer", password=PASSWORD)
    analyst = access.set_user("anna", "analyst", password=PASSWORD)
    with server.test_request_context():
        auth.start_session(viewer)
        table, pages, _summary = page.show_table({}, [], 1, None, "desc")
        assert "sees aggregates only" in text_of(table) and pages == 1
        sent, message = page.download(1, {}, [], None, "desc")
        assert sent is dash.no_update and "sees aggregates only" in message
    with server.test_request_context():
        auth.start_session(analyst)
        table, _pages, summary = page.show_table({}, [], 1, None, "desc")
        assert "sees aggregates only" not in text_of(table) and summary.startswith("rows 1-")
        sent, message = page.download(1, {"grade": ["A"]}, [], None, "desc")
        assert message == "" and sent["content"].count("\n") > 1
    log = access.audit_entries(action="download")
    assert [(e.user, e.outcome) for e in log] == [("anna", "ok"), ("vera", "refused")]
    assert "grades=['A']" in log[0].detail and "rows" in log[0].detail


def test_the_customer_page_refuses_viewers_and_audits_lookups(full_db_copy: Path) -> None:
    page = dashboard_page(full_db_copy, "customer")
    server = dash.get_app().server
    access: AppState = server.extensions["segrisk_state"]
    with server.test_request_context():
        auth.start_session(access.set_user("vera", "viewer", password=PASSWORD))
        shown = text_of(page.layout(customer_id="1"))
        assert "Your role (viewer) sees aggregates only" in shown and "customer-id" not in str(page.layout())
    with server.test_request_context():
        auth.start_session(access.set_user("anna", "analyst", password=PASSWORD))
        page.layout(customer_id="1")
        page.layout(customer_id="999999999")
    log = access.audit_entries(action="customer_lookup")
    assert [(e.user, e.detail, e.outcome) for e in log] == [
        ("anna", "customer 999999999", "not found"),
        ("anna", "customer 1", "ok"),
    ]


# -- segrisk users ----------------------------------------------------------------------------------------
def test_users_command_adds_lists_changes_and_removes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "bank.duckdb")
    assert main(["users", "list", "--db", db]) == 0
    assert "No users yet" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "alice", "--role", "analyst", "--password-stdin", "--db", db]) == 0
    assert "Added user alice with role analyst." in capsys.readouterr().out
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "typed password 1")
    assert main(["users", "passwd", "alice", "--db", db]) == 0
    assert main(["users", "role", "alice", "--role", "admin", "--db", db]) == 0
    assert main(["users", "list", "--db", db]) == 0
    listed = capsys.readouterr().out
    assert "alice" in listed and "admin" in listed and "typed password" not in listed
    access = AppState(state_path(tmp_path / "bank.duckdb"))
    assert access.check_password("alice", "typed password 1") is not None
    assert main(["users", "remove", "alice", "--db", db]) == 0
    assert access.users() == []
    actions = [e.action for e in reversed(access.audit_entries())]
    assert actions == ["user_add", "user_passwd", "user_role", "user_remove"]


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["users", "add", "bob", "--role", "viewer", "--password-stdin"], "short\n", "at least 8 characters"),
        (["users", "add", "bob", "--role", "viewer", "--password-stdin"], "\n", "No password given"),
        (["users", "add", "b b", "--role", "viewer", "--password-stdin"], PASSWORD + "\n", "User name 'b b'"),
        (["users", "remove", "nobody"], "", "There is no user 'nobody'"),
        (["users", "passwd", "nobody", "--password-stdin"], PASSWORD + "\n", "There is no user 'nobody'"),
    ],
)
def test_users_command_refuses_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main([*argv, "--db", str(tmp_path / "bank.duckdb")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_users_command_refuses_differing_typed_passwords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(["first password", "second password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["users", "add", "bob", "--role", "viewer", "--db", str(tmp_path / "bank.duckdb")]) == 2
    assert "The two passwords differ" in capsys.readouterr().err
    assert AppState(state_path(tmp_path / "bank.duckdb")).users() == []


def test_demo_makes_an_admin_with_a_random_password_only_on_a_first_run(tmp_path: Path) -> None:
    from dashboard.cli import _first_admin

    db = tmp_path / "demo.duckdb"
    password = _first_admin(db)
    access = AppState(state_path(db))
    assert password and len(password) >= 12 and access.check_password("admin", password) is not None
    assert _first_admin(db) is None  # the store has a user now: nothing new, nothing printed
    assert _first_admin(tmp_path / "other.duckdb") != password  # random each time


def test_the_persona_map_hides_customer_numbers_from_viewers(full_db_copy: Path) -> None:
    page = dashboard_page(full_db_copy, "personas")
    server = dash.get_app().server
    access: AppState = server.extensions["segrisk_state"]
    points = page.scatter_points(reader(), {})
    names = persona_names(reader())
    with server.test_request_context():
        auth.start_session(access.set_user("vera", "viewer", password=PASSWORD))
        hidden = page.scatter_figure(points, names)
    with server.test_request_context():
        auth.start_session(access.set_user("anna", "analyst", password=PASSWORD))
        shown = page.scatter_figure(points, names)
    assert all(trace.text is None and "Customer" not in trace.hovertemplate for trace in hidden.data)
    assert sum(len(trace.text) for trace in shown.data) == points.height > 0
    assert [len(t.x) for t in hidden.data] == [len(t.x) for t in shown.data]  # the same points, without ids

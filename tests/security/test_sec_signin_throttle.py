"""Issue 13 item 6: failed sign-ins as a weapon. A failure never holds a server thread (no sleep); an
address that keeps failing is answered 429 at once; a user name's back-off is short and applies only
to addresses that have failed, so an attacker guessing ``admin`` cannot keep the admin out; failures
are counted in memory even when the store cannot be written."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from signin import login_form

from dashboard import auth
from dashboard.app import create_app
from warehouse import app_state
from warehouse.app_state import AppState, state_path

PASSWORD = "the admin's long password"
ATTACKER, ADMIN_DESK = "203.0.113.7", "10.1.1.1"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEGRISK_ADMIN_PASSWORD", "SEGRISK_USERS", "SEGRISK_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(tmp_path: Path):  # noqa: ANN201 - the Flask server
    AppState(state_path(tmp_path / "bank.duckdb")).set_user("admin", "admin", password=PASSWORD)
    return create_app(tmp_path / "bank.duckdb").server


def _try(client, password: str, address: str):  # noqa: ANN001, ANN202 - the response
    form = login_form(client, "admin", password)
    return client.post("/login", data=form, environ_base={"REMOTE_ADDR": address})


def test_an_attacker_is_throttled_and_the_admin_still_signs_in(server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    def no_sleeping(seconds: float) -> None:
        raise AssertionError(f"a sign-in slept {seconds} s, holding a server thread")

    monkeypatch.setattr(time, "sleep", no_sleeping)
    attacker = server.test_client()
    statuses = [_try(attacker, f"guess {n}", ATTACKER).status_code for n in range(50)]
    assert statuses.count(401) <= auth.ADDRESS_FAILURES  # at most this many passwords are checked ...
    assert set(statuses[auth.ADDRESS_FAILURES :]) == {429}  # ... then every try is answered 429 at once
    refused = _try(attacker, PASSWORD, ATTACKER)  # even the right password: no password is checked
    assert refused.status_code == 429
    assert "Too many failed sign-ins from your address" in refused.get_data(as_text=True)
    assert 1 <= int(refused.headers["Retry-After"]) <= auth.ADDRESS_WINDOW
    # The admin, at their own desk, signs in at once with the right password.
    admin = server.test_client()
    assert _try(admin, PASSWORD, ADMIN_DESK).status_code == 302
    assert admin.get("/_dash-layout").status_code == 200
    # Refusals at the address limit are not written to the store (a flood cannot fill the audit log).
    outcomes = [e.outcome for e in server.extensions["segrisk_state"].audit_entries(user="admin", limit=1000)]
    assert outcomes.count("failed") + outcomes.count("locked") <= auth.ADDRESS_FAILURES


def test_no_fixed_delay_is_left_in_the_sign_in() -> None:
    assert not hasattr(auth, "FAILED_LOGIN_DELAY")
    assert not hasattr(app_state, "LOCKOUT_DURATION")  # no lockout either, only a capped back-off


def test_the_back_off_of_a_name_slows_the_failing_address_only(server) -> None:  # noqa: ANN001
    attacker = server.test_client()
    assert _try(attacker, "one guess", ATTACKER).status_code == 401
    store: AppState = server.extensions["segrisk_state"]
    for _ in range(20):  # failures of the name from elsewhere (other processes, other addresses)
        store.record_login_failure("admin")
    answer = _try(attacker, PASSWORD, ATTACKER)  # the right password, from an address that failed
    assert answer.status_code == 429 and "wait 5 minutes" in answer.get_data(as_text=True)
    assert int(answer.headers["Retry-After"]) <= app_state.LOGIN_BACKOFF_CAP.total_seconds()
    assert _try(server.test_client(), PASSWORD, ADMIN_DESK).status_code == 302  # a clean address: at once


def test_the_address_count_forgets_after_its_window_and_stays_bounded() -> None:
    now = [1000.0]
    throttle = auth.SignInThrottle(limit=3, window=60, max_addresses=100, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("a") is None
        throttle.record("a")
        now[0] += 1
    assert throttle.retry_after("a") == 57  # failed at 1000, 1001, 1002; now 1003: the first leaves at 1060
    assert throttle.has_failed("a") and not throttle.has_failed("b")
    now[0] += 57
    assert throttle.retry_after("a") is None
    now[0] += 60
    assert not throttle.has_failed("a")
    for n in range(1_000):
        throttle.record(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle._failures) == 100  # memory bounded: the oldest addresses are forgotten


def test_failures_count_in_memory_while_the_store_cannot_be_written(
    server,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_state, "STORE_BUSY_SECONDS", 0.05)
    attacker = server.test_client()
    forms = [login_form(attacker, "admin", f"guess {n}") for n in range(auth.ADDRESS_FAILURES + 1)]
    hold = sqlite3.connect(state_path(tmp_path / "bank.duckdb"), isolation_level=None)
    hold.execute("BEGIN IMMEDIATE")  # another program holds the write lock: reads work, writes wait
    try:
        answers = [
            attacker.post("/login", data=form, environ_base={"REMOTE_ADDR": ATTACKER}).status_code for form in forms
        ]
    finally:
        hold.execute("ROLLBACK")
        hold.close()
    assert answers == [401] * auth.ADDRESS_FAILURES + [429]

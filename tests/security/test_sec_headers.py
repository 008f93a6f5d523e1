"""Issue 13: security headers on every response, a secure-cookie setting, a minimum secret-key
strength, no Dash shell at /favicon.ico, and audit entries capped in size."""

from __future__ import annotations

from pathlib import Path

import pytest
from signin import login_form

from dashboard import auth
from dashboard.app import create_app
from warehouse.app_state import AppState, state_path

PASSWORD = "a long enough password"
STRONG_KEY = "k" * 32
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEGRISK_ADMIN_PASSWORD", "SEGRISK_USERS", "SEGRISK_SECRET_KEY", "SEGRISK_SECURE_COOKIES"):
        monkeypatch.delenv(name, raising=False)


def _server(tmp_path: Path, **users: str):  # noqa: ANN202 - the Flask server
    access = AppState(state_path(tmp_path / "bank.duckdb"))
    for name, role in users.items():
        access.set_user(name, role, password=PASSWORD)
    return create_app(tmp_path / "bank.duckdb").server


def _responses(client) -> dict[str, object]:  # noqa: ANN001
    return {
        "login page": client.get("/login"),
        "refused sign-in": client.post("/login", data=login_form(client, "alice", "wrong password")),
        "signed-out page": client.get("/"),
        "signed-out callback": client.post("/_dash-update-component", json={}),
        "api": client.get("/api/v1/health"),
        "api unknown": client.get("/api/v1/no-such-route"),
        "favicon": client.get("/favicon.ico"),
    }


def _signed_in_responses(client) -> dict[str, object]:  # noqa: ANN001
    assert client.post("/login", data=login_form(client, "alice", PASSWORD)).status_code == 302
    return {
        "page": client.get("/"),
        "layout": client.get("/_dash-layout"),
        "callbacks": client.get("/_dash-dependencies"),
        "download": client.get("/download/table/no-such-token"),
        "asset": client.get("/assets/bootstrap.min.css"),
        "logout": client.get("/logout"),
    }


def test_every_response_carries_the_security_headers_and_no_hsts_by_default(tmp_path: Path) -> None:
    server = _server(tmp_path, alice="analyst")
    client = server.test_client()
    answers = _responses(client) | _signed_in_responses(client)
    for what, answer in answers.items():
        for header, value in HEADERS.items():
            assert answer.headers.get(header) == value, (what, header, answer.status_code)
        assert "Strict-Transport-Security" not in answer.headers, what
        # Dash needs inline scripts: no Content-Security-Policy is sent.
        assert "Content-Security-Policy" not in answer.headers, what
    assert server.config["SESSION_COOKIE_SECURE"] is False


@pytest.mark.parametrize("value", ["1", "true", "TRUE", " True "])
def test_secure_cookies_turn_on_the_secure_flag_and_hsts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SEGRISK_SECURE_COOKIES", value)
    server = _server(tmp_path, alice="analyst")
    assert server.config["SESSION_COOKIE_SECURE"] is True
    client = server.test_client()
    for what, answer in _responses(client).items():
        assert answer.headers.get("Strict-Transport-Security") == "max-age=31536000", what
        for header, value_expected in HEADERS.items():
            assert answer.headers.get(header) == value_expected, (what, header)
    signing_in = server.test_client()
    signing_in.get("/login", base_url="https://localhost")
    with signing_in.session_transaction(base_url="https://localhost") as session:
        token = session["csrf"]
    answer = signing_in.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token}, base_url="https://localhost"
    )
    assert answer.status_code == 302
    assert "Secure" in answer.headers["Set-Cookie"]


@pytest.mark.parametrize("value", ["0", "false", "", "False"])
def test_secure_cookies_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SEGRISK_SECURE_COOKIES", value)
    server = _server(tmp_path, alice="analyst")
    assert server.config["SESSION_COOKIE_SECURE"] is False
    assert "Strict-Transport-Security" not in server.test_client().get("/login").headers


@pytest.mark.parametrize("value", ["yes", "on", "2", "secure"])
def test_a_bad_secure_cookies_value_is_refused_in_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SEGRISK_SECURE_COOKIES", value)
    with pytest.raises(auth.AuthError, match=r"^SEGRISK_SECURE_COOKIES must be .*\.$") as refused:
        _server(tmp_path, alice="analyst")
    assert "\n" not in str(refused.value) and repr(value.strip()) in str(refused.value)


@pytest.mark.parametrize("key", ["a", "x" * 31])
def test_a_short_secret_key_is_refused_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv("SEGRISK_SECRET_KEY", key)
    with pytest.raises(auth.AuthError, match=r"^SEGRISK_SECRET_KEY .*at least 32 characters.*\.$") as refused:
        _server(tmp_path, alice="analyst")
    assert "\n" not in str(refused.value)


def test_a_strong_secret_key_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGRISK_SECRET_KEY", STRONG_KEY)
    assert _server(tmp_path, alice="analyst").secret_key == STRONG_KEY


@pytest.mark.parametrize("signed_in", [False, True])
def test_the_favicon_is_not_the_dash_page_shell(tmp_path: Path, signed_in: bool) -> None:
    import dash

    client = _server(tmp_path, alice="analyst").test_client()
    if signed_in:
        client.post("/login", data=login_form(client, "alice", PASSWORD))
    answer = client.get("/favicon.ico")
    assert answer.status_code == 204 and answer.data == b""
    assert b"_dash-config" not in answer.data and dash.__version__.encode() not in answer.data
    assert b"dash" not in answer.data.lower()


def test_audit_text_fields_are_capped_with_a_note(tmp_path: Path) -> None:
    store = AppState(state_path(tmp_path / "bank.duckdb"))
    huge = "s" * 20_000_000
    store.record_audit("sql_query", user="u" * 5_000, detail=huge, client_address="127.0.0.1", outcome="refused")
    entry = store.audit_entries()[0]
    assert len(entry.detail) <= 2_000
    assert entry.detail.startswith("sss") and entry.detail.endswith(" … (cut: 20,000,000 characters in all)")
    assert len(entry.user) <= 2_000 and entry.user.endswith("(cut: 5,000 characters in all)")
    store.record_audit("login", user="alice", detail="short", outcome="ok")
    entry = store.audit_entries()[0]
    assert (entry.user, entry.detail, entry.outcome) == ("alice", "short", "ok")
    exact = "d" * 2_000
    store.record_audit("login", user="alice", detail=exact)
    assert store.audit_entries()[0].detail == exact


def test_the_readme_documents_the_settings() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "SEGRISK_SECURE_COOKIES" in readme
    assert "SEGRISK_SECRET_KEY" in readme and "32 characters" in readme

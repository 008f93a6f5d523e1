"""Issue 13, low: sign-in CSRF and foreign-Origin callbacks. The sign-in form carries a token that
must match the session's (400 otherwise), and every state-changing request but the API's whose
Origin (or Referer) names another host is refused (403), signed in or not."""

from __future__ import annotations

import pytest
from signin import csrf_token, login_form

from dashboard.app import create_app
from warehouse.app_state import AppState, state_path

PASSWORD = "a long enough password"
SITE = "http://localhost"  # the Flask test client's host
FOREIGN = ("https://evil.example", "http://localhost.evil.example", "http://localhost:8051", "null")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEGRISK_ADMIN_PASSWORD", "SEGRISK_USERS", "SEGRISK_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - the Flask server
    db = tmp_path_factory.mktemp("csrf") / "bank.duckdb"
    AppState(state_path(db)).set_user("alice", "analyst", password=PASSWORD)
    return create_app(db).server


def _signed_out(client) -> bool:  # noqa: ANN001
    return client.get("/_dash-layout").status_code == 401


def test_the_form_carries_a_token_and_a_sign_in_without_it_is_refused(server) -> None:  # noqa: ANN001
    client = server.test_client()
    form = client.get("/login").get_data(as_text=True)
    assert f'name="csrf_token" value="{csrf_token(client)}"' in form
    for token in (None, "", "a token from another session"):
        data = {"username": "alice", "password": PASSWORD} | ({} if token is None else {"csrf_token": token})
        answer = client.post("/login", data=data)
        text = answer.get_data(as_text=True)
        assert answer.status_code == 400, token
        assert "This sign-in form has expired or came from another site" in text
        assert _signed_out(client)
    # A cross-site form has no token of this browser's session: a fresh browser has none at all.
    fresh = server.test_client()
    assert fresh.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "x"}).status_code == 400
    assert client.post("/login", data=login_form(client, "alice", PASSWORD)).status_code == 302


@pytest.mark.parametrize("origin", FOREIGN)
def test_a_sign_in_from_another_site_is_refused_even_with_a_token(server, origin: str) -> None:  # noqa: ANN001
    client = server.test_client()
    answer = client.post("/login", data=login_form(client, "alice", PASSWORD), headers={"Origin": origin})
    assert answer.status_code == 403
    assert answer.get_data(as_text=True).startswith("Refused: this request came from another site")
    assert _signed_out(client)


def test_a_referer_counts_when_there_is_no_origin(server) -> None:  # noqa: ANN001
    client = server.test_client()
    foreign = {"Referer": "https://evil.example/phish.html"}
    assert client.post("/login", data=login_form(client, "alice", PASSWORD), headers=foreign).status_code == 403
    same = {"Referer": f"{SITE}/login?next=/risk"}
    assert client.post("/login", data=login_form(client, "alice", PASSWORD), headers=same).status_code == 302


@pytest.mark.parametrize("origin", FOREIGN)
def test_callbacks_and_other_posts_from_another_site_are_refused_when_signed_in(server, origin: str) -> None:  # noqa: ANN001
    client = server.test_client()
    assert (
        client.post("/login", data=login_form(client, "alice", PASSWORD), headers={"Origin": SITE}).status_code == 302
    )
    callback = client.post("/_dash-update-component", json={}, headers={"Origin": origin})
    assert callback.status_code == 403 and "another site" in callback.get_data(as_text=True)
    assert client.post("/logout", headers={"Origin": origin}).status_code == 403
    assert not _signed_out(client)  # the foreign sign-out did nothing
    assert client.post("/logout", headers={"Origin": SITE}).status_code == 302
    assert _signed_out(client)


def test_the_api_and_reads_are_not_origin_checked(server) -> None:  # noqa: ANN001
    client = server.test_client()
    foreign = {"Origin": "https://evil.example"}
    # The API authenticates with keys (no cookie is API sign-in): it answers for itself, never 403 here.
    assert client.post("/api/v1/score", json={}, headers=foreign).status_code == 401
    assert client.get("/login", headers=foreign).status_code == 200
    # The default port is the same site whether or not a header spells it.
    client = server.test_client()
    data = login_form(client, "alice", PASSWORD)
    assert client.post("/login", data=data, headers={"Origin": "http://LOCALHOST:80"}).status_code == 302

"""Issue 13, low findings on the scoring API: a dashboard session is not API authentication, and a
body is read only when sent as application/json (a cross-site HTML form cannot send that type)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from dashboard import auth
from dashboard.app import create_app
from warehouse.app_state import AppState, state_path


@pytest.fixture(scope="module")
def served(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    db = tmp_path_factory.mktemp("api-auth") / "demo.duckdb"
    shutil.copyfile(full_db, db)
    app = create_app(db, users={"admin": auth.User("admin", "admin", generate_password_hash("admin-pw"))})
    return {"db": db, "client": app.server.test_client(), "key": AppState(state_path(db)).create_api_key("tests")}


def _sign_in(client) -> None:  # noqa: ANN001
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    data = {"username": "admin", "password": "admin-pw"} | ({"csrf_token": token.group(1)} if token else {})
    assert client.post("/login", data=data).status_code == 302


def test_a_signed_in_dashboard_session_is_not_api_authentication(served: dict) -> None:
    client = served["client"]
    _sign_in(client)
    try:
        assert client.get("/").status_code == 200  # the session is good for the dashboard ...
        answer = client.get("/api/v1/segments/summary")  # ... and not for the API
        assert answer.status_code == 401
        assert "API key" in answer.get_json()["detail"]
        assert client.get("/api/v1/segments/summary", headers={"X-API-Key": served["key"]}).status_code == 200
    finally:
        client.get("/logout")
    document = client.get("/api/v1/openapi.json", headers={"X-API-Key": served["key"]}).get_json()
    assert set(document["components"]["securitySchemes"]) == {"apiKey"}
    assert document["security"] == [{"apiKey": []}]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_body_not_sent_as_json_is_refused_with_415(served: dict, content_type: str) -> None:
    body = json.dumps({"recency_days": 10, "frequency": 3, "monetary": 500.0})
    answer = served["client"].post(
        "/api/v1/segment", data=body, headers={"X-API-Key": served["key"], "Content-Type": content_type}
    )
    assert answer.status_code == 415
    assert "application/json" in answer.get_json()["detail"]
    # The same body as JSON is read (and answered, or refused field by field: never 415).
    same = served["client"].post(
        "/api/v1/segment", data=body, headers={"X-API-Key": served["key"], "Content-Type": "application/json"}
    )
    assert same.status_code in (200, 422, 503)

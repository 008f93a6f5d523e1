"""A warehouse whose customer ids are text (``C-00017``), as real banks' are (issue 12): the
customer lookup in the browser, the scoring API, both reports and ``policy explain`` work on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import openpyxl
import pytest
from browser import chromium, served, settle, signed_in
from conftest import dashboard_page
from playwright.sync_api import expect
from pypdf import PdfReader
from werkzeug.security import generate_password_hash

from dashboard import auth
from dashboard.app import create_app
from dashboard.cli import main
from dashboard.data import reader
from dashboard.state import state_path
from warehouse.app_state import AppState


@pytest.fixture(scope="module")
def db(string_id_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("string-ids") / "bank.duckdb"
    shutil.copyfile(string_id_db, path)
    return path


def _one(db: Path, sql: str) -> tuple:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()[0]


def test_the_customer_page_looks_up_a_text_key_as_typed(db: Path) -> None:
    page = dashboard_page(db, "customer")
    assert page.parse_customer_id(" C-00017 ", numeric=False) == "C-00017"
    assert page.parse_customer_id("00017", numeric=False) == "00017"  # zeros are part of a text key
    view = page.look_up(reader(), "C-00017")
    assert view is not None and view.customer_id == "C-00017"
    assert view.scores is not None and view.scores["customer_id"] == "C-00017"
    assert page.look_up(reader(), "C-17") is None


def test_a_text_key_lookup_in_the_browser(db: Path) -> None:
    customer_id, score = _one(
        db, "SELECT customer_id, score FROM ml_latest_risk_scores ORDER BY customer_id DESC LIMIT 1"
    )
    assert customer_id.startswith("C-")
    with served(db) as base_url, chromium() as browser, signed_in(browser, base_url) as page:
        page.goto("/customer")
        settle(page)
        page.fill("#customer-id", customer_id)
        page.click("#customer-lookup")
        page.wait_for_url(f"**/customer?customer_id={customer_id}*")
        expect(page.locator("#customer-facts")).to_contain_text(f"Customer {customer_id}")
        settle(page)
        expect(page.locator("#customer-view")).to_contain_text(f"{score:,.1f}")
        errors = page.console.errors  # type: ignore[attr-defined]
    assert errors == []


def test_the_scoring_api_scores_a_text_key_customer_as_stored(db: Path) -> None:
    app = create_app(db, users={"admin": auth.User("admin", "admin", generate_password_hash("admin-pw"))})
    key = AppState(state_path(db)).create_api_key("tests")
    client = app.server.test_client()
    fields = client.get("/api/v1/openapi.json", headers={"X-API-Key": key}).get_json()
    properties = fields["components"]["schemas"]["Applicant"]["properties"]
    with duckdb.connect(str(db), read_only=True) as con:
        row = (
            con.sql(
                "SELECT c.*, s.pd AS stored_pd, s.grade AS stored_grade FROM customers c "
                "JOIN ml_latest_risk_scores s USING (customer_id) WHERE customer_id = 'C-00042'"
            )
            .pl()
            .row(0, named=True)
        )
    # The mart's row as an applicant, dates as ISO text (JSON has no date); fields the model does not read are ignored.
    body = {
        k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items() if k in properties and v is not None
    }
    body |= {"applicant_id": "C-00042"}
    answer = client.post(
        "/api/v1/score", data=json.dumps(body), headers={"X-API-Key": key}, content_type="application/json"
    )
    assert answer.status_code == 200, answer.get_json()
    got = answer.get_json()
    assert got["applicant_id"] == "C-00042"
    assert got["pd"] == pytest.approx(row["stored_pd"], abs=1e-9)
    assert got["grade"] == row["stored_grade"]


def test_both_reports_are_written_from_a_text_key_warehouse(db: Path, tmp_path: Path) -> None:
    pdf, xlsx = tmp_path / "report.pdf", tmp_path / "report.xlsx"
    assert main(["report", "--format", "pdf", "--out", str(pdf), "--db", str(db)]) == 0
    assert main(["report", "--format", "xlsx", "--out", str(xlsx), "--db", str(db)]) == 0
    text = "".join(page.extract_text() for page in PdfReader(pdf).pages)
    customers = _one(db, "SELECT count(*) FROM customers")[0]
    assert f"{customers:,}" in text
    book = openpyxl.load_workbook(xlsx, read_only=True)
    ids = [row[0] for row in book["customers"].iter_rows(min_row=2, max_col=1, values_only=True)]
    assert ids and all(isinstance(value, str) and value.startswith("C-") for value in ids)


def test_policy_explain_takes_text_keys(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["policy", "explain", "C-00017", "C-00018", "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "C-00017" in shown and "C-00018" in shown
    assert main(["policy", "explain", "C-99999", "--db", str(db)]) != 0
    assert "No customer C-99999" in capsys.readouterr().err

"""The SQL console in a real headless Chromium: an analyst runs a query on /data and sees the rows,
downloads them, and an attack shows its one-line refusal; a viewer has no console at all."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import SCREENSHOTS, Callbacks, Console, chromium, settle
from playwright.sync_api import Browser, Page, expect
from waitress.server import create_server
from werkzeug.security import generate_password_hash

from dashboard import sql_console
from warehouse.db import read_only

PASSWORD = "console browser password"
QUERY = "SELECT grade, count(*) AS customers FROM mart_customer_profile GROUP BY grade ORDER BY grade"


@pytest.fixture(scope="module")
def served_db(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser-sql") / "demo.duckdb"
    shutil.copyfile(full_db, path)
    return path


@pytest.fixture(scope="module")
def base_url(served_db: Path) -> Iterator[str]:
    from dashboard import auth
    from dashboard.app import create_app

    users = {
        name: auth.User(name, role, generate_password_hash(PASSWORD))
        for name, role in (("ana", "analyst"), ("vic", "viewer"))
    }
    app = create_app(served_db, users=users)
    server = create_server(app.server, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        sql_console.close_all()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as opened:
        yield opened


def open_data_page(browser: Browser, base_url: str, user: str) -> Page:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=base_url, accept_downloads=True)
    page = context.new_page()
    page.console = Console(page)  # type: ignore[attr-defined]
    page.callbacks = Callbacks(page)  # type: ignore[attr-defined]
    page.goto("/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")
    page.goto("/data")
    settle(page)
    return page


def run(page: Page, sql: str) -> None:
    page.fill("#data-sql-text", sql)
    page.click("#data-sql-run")


def test_an_analyst_runs_a_query_and_sees_the_rows(browser: Browser, base_url: str, served_db: Path) -> None:
    page = open_data_page(browser, base_url, "ana")
    try:
        run(page, QUERY)
        expect(page.locator("#data-sql-message")).to_contain_text("rows in")
        expect(page.locator("#data-sql-table tbody tr").first).to_be_visible()
        with read_only(served_db) as con:
            expected = [[str(value) for value in row] for row in con.execute(QUERY).fetchall()]
        shown = page.locator("#data-sql-table tbody tr").evaluate_all(
            "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText.trim()))"
        )
        assert shown == expected
        assert page.locator("#data-sql-table thead th").all_inner_texts() == ["grade", "customers"]
        with page.expect_download() as download:
            page.click("#data-sql-download-button")
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines == ["grade,customers", *(",".join(row) for row in expected)]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#data-sql-text").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "sql-console-rows.png"), full_page=True)
        assert page.console.errors == []  # type: ignore[attr-defined]
    finally:
        page.context.close()


def test_the_passwd_attack_shows_the_refusal_line(browser: Browser, base_url: str) -> None:
    page = open_data_page(browser, base_url, "ana")
    try:
        run(page, "SELECT * FROM read_csv('/etc/passwd')")
        refusal = page.locator("#data-sql-error")
        expect(refusal).to_have_text(
            'The query failed: Permission Error: Cannot access file "/etc/passwd" - '
            "file system operations are disabled by configuration"
        )
        assert page.locator("#data-sql-table").count() == 0
        page.screenshot(path=str(SCREENSHOTS / "sql-console-refused.png"), full_page=True)
        # The console still answers afterwards.
        run(page, "SELECT 40 + 2 AS answer")
        expect(page.locator("#data-sql-table tbody tr")).to_have_text("42")
        assert page.console.errors == []  # type: ignore[attr-defined]
    finally:
        page.context.close()


def test_a_viewer_has_no_console(browser: Browser, base_url: str) -> None:
    page = open_data_page(browser, base_url, "vic")
    try:
        expect(page.locator("#data-build-id")).to_be_visible()
        assert page.locator("#data-sql-text").count() == 0
        assert "SQL console" not in page.locator("#_pages_content").inner_text()
    finally:
        page.context.close()

"""The Export menu in a real browser: the PDF and the workbook download with the filters in the
address, and a viewer is told in a sentence why the workbook is refused."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from browser import PASSWORD, chromium, served, settle, signed_in
from dash_helpers import sql
from playwright.sync_api import Browser
from pypdf import PdfReader

from warehouse.app_state import AppState, state_path


@pytest.fixture(scope="module")
def base_url(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("served-reports") / "demo.duckdb"
    shutil.copyfile(full_db, db)
    AppState(state_path(db)).set_user("vera", "viewer", password=PASSWORD)
    with served(db) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def test_the_export_menu_downloads_both_formats_with_the_filters(
    browser: Browser, base_url: str, full_db: Path
) -> None:
    with signed_in(browser, base_url) as page:
        page.goto(f"{base_url}/risk#grade=D,E")
        settle(page)
        downloaded = {}
        for item, suffix in (("#export-xlsx", "xlsx"), ("#export-pdf", "pdf")):
            page.click("#export-menu")
            with page.expect_download(timeout=120_000) as download:
                page.click(item)
            assert download.value.suggested_filename.endswith(f"-filtered.{suffix}")
            downloaded[suffix] = Path(download.value.path()).read_bytes()
        assert page.console.errors == []  # type: ignore[attr-defined]
    book = openpyxl.load_workbook(io.BytesIO(downloaded["xlsx"]), read_only=True)
    expected = sql(full_db, "SELECT count(*) FROM mart_customer_profile WHERE grade IN ('D', 'E')").item()
    assert book["customers"].max_row - 1 == expected
    first_page = PdfReader(io.BytesIO(downloaded["pdf"])).pages[0].extract_text()
    assert "Filters: Risk grade: D, E" in first_page and f"Customers\n{expected:,}" in first_page


def test_a_viewer_is_told_why_the_workbook_is_refused(browser: Browser, base_url: str) -> None:
    with signed_in(browser, base_url, user="vera") as page:
        settle(page)
        page.click("#export-menu")
        page.click("#export-xlsx")
        message = page.wait_for_selector("#export-message .toast-body", timeout=30_000)
        assert message is not None and "Your role (viewer) sees aggregates only" in message.inner_text()

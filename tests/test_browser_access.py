"""Login, roles and the audit log in a real headless Chromium against the served dashboard.

A wrong password is refused and audited; a viewer sees aggregates only (Customer 360 says so in a
sentence, customer-level tables too, and the Admin page is not in the menu); an analyst looks a
customer up and the lookup is in the audit log; an admin reads that log on the Admin page.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from browser import SCREENSHOTS, choose, chromium, served, settle, signed_in
from playwright.sync_api import Browser, expect

from warehouse.app_state import AppState, state_path

VIEWER, ANALYST = "vera", "anna"
PASSWORD = "a password for the browser"


@pytest.fixture(scope="module")
def served_db(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser-access") / "demo.duckdb"
    shutil.copyfile(full_db, path)
    return path


@pytest.fixture(scope="module")
def access(served_db: Path) -> AppState:
    """The served warehouse's store, with a viewer and an analyst beside the admin ``served`` makes."""
    store = AppState(state_path(served_db))
    store.set_user(VIEWER, "viewer", password=PASSWORD)
    store.set_user(ANALYST, "analyst", password=PASSWORD)
    return store


@pytest.fixture(scope="module")
def base_url(served_db: Path, access: AppState) -> Iterator[str]:
    with served(served_db) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as opened:
        yield opened


@pytest.fixture(scope="module")
def customer_id(served_db: Path) -> int:
    with duckdb.connect(str(served_db), read_only=True) as con:
        return con.execute("SELECT min(customer_id) FROM mart_customer_profile").fetchone()[0]


def fail_to_sign_in(browser: Browser, base_url: str, user: str) -> None:
    """Try a wrong password in a fresh context: refused with a sentence, still signed out."""
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    try:
        page.goto("/customer")
        assert "/login" in page.url  # every page needs a sign-in first
        page.fill("#username", user)
        page.fill("#password", "not the password")
        page.click("button[type=submit]")
        expect(page.locator(".alert-danger")).to_have_text("Wrong user name or password.")
        assert "/login" in page.url
        page.goto("/")
        assert "/login" in page.url
    finally:
        context.close()


def test_a_wrong_password_is_refused_and_audited(browser: Browser, base_url: str, access: AppState) -> None:
    fail_to_sign_in(browser, base_url, ANALYST)
    failures = [e for e in access.audit_entries(user=ANALYST, action="login") if e.outcome == "failed"]
    assert failures and failures[0].client_address == "127.0.0.1"


def test_a_viewer_sees_aggregates_only(browser: Browser, base_url: str, customer_id: int, access: AppState) -> None:
    with signed_in(browser, base_url, VIEWER, PASSWORD) as page:
        settle(page)
        expect(page.locator("#overview-cards")).to_contain_text("Customers")  # aggregates: yes
        expect(page.locator("nav >> text=Admin")).to_be_hidden()
        page.goto(f"/customer?customer_id={customer_id}")
        settle(page)
        content = page.locator("#_pages_content")
        expect(content).to_contain_text("Your role (viewer) sees aggregates only")
        assert page.locator("#customer-view").count() == 0 and page.locator("#customer-facts").count() == 0
        assert f"Customer {customer_id}" not in content.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "access-viewer-customer.png"), full_page=True)
        page.goto("/warnings")
        settle(page)
        expect(page.locator("#warnings-alerts-rows")).to_contain_text("sees aggregates only")
        assert page.locator("#warnings-alerts-rows table").count() == 0
        page.click("#warnings-alerts-download-button")
        expect(page.locator("#warnings-alerts-download-message")).to_contain_text("sees aggregates only")
        page.goto("/admin")
        settle(page)
        expect(page.locator("#_pages_content")).to_contain_text("Only admins see this page; your role is viewer.")
        assert page.console.errors == []  # type: ignore[attr-defined]
    refused = access.audit_entries(user=VIEWER, action="download")
    assert refused and refused[0].outcome == "refused"
    assert access.audit_entries(user=VIEWER, action="customer_lookup") == []


def test_an_analyst_looks_a_customer_up_and_it_is_audited(
    browser: Browser, base_url: str, customer_id: int, access: AppState
) -> None:
    with signed_in(browser, base_url, ANALYST, PASSWORD) as page:
        expect(page.locator("nav >> text=Admin")).to_be_hidden()
        page.goto("/customer")
        settle(page)
        page.fill("#customer-id", str(customer_id))
        page.click("#customer-lookup")
        page.wait_for_url(f"**/customer?customer_id={customer_id}*")
        expect(page.locator("#customer-facts")).to_contain_text(f"Customer {customer_id}")
        settle(page)
        assert page.console.errors == []  # type: ignore[attr-defined]
    lookups = access.audit_entries(user=ANALYST, action="customer_lookup")
    assert f"customer {customer_id}" in [e.detail for e in lookups]
    assert {e.outcome for e in lookups} == {"ok"} and lookups[0].client_address == "127.0.0.1"


def test_an_admin_reads_the_audit_log_with_the_logins(browser: Browser, base_url: str, customer_id: int) -> None:
    # Someone mistypes, signs in and out first, so the log has entries of this test's own.
    fail_to_sign_in(browser, base_url, ANALYST)
    with signed_in(browser, base_url, ANALYST, PASSWORD) as page:
        page.goto("/logout")
    with signed_in(browser, base_url) as page:
        page.click("nav >> text=Admin")
        settle(page)
        users = page.locator("#admin-users")
        for name, role in (("admin", "admin"), (VIEWER, "viewer"), (ANALYST, "analyst")):
            expect(users).to_contain_text(name)
            expect(users).to_contain_text(role)
        log = page.locator("#admin-audit")
        rows = log.locator("tbody tr")
        # Newest first: the admin's own sign-in, then the analyst's sign-out and sign-in.
        expect(rows.nth(0)).to_contain_text("login")
        expect(rows.nth(0)).to_contain_text("admin")
        expect(rows.nth(1)).to_contain_text("logout")
        expect(rows.nth(1)).to_contain_text(ANALYST)
        choose(page, "admin-audit-user", ANALYST)
        expect(log).not_to_contain_text("signed in as admin")
        expect(log).to_contain_text("failed")
        expect(log).to_contain_text(f"customer {customer_id}")
        choose(page, "admin-audit-action", "login")
        settle(page)
        actions = log.locator("tbody tr td:nth-child(3)").all_inner_texts()
        assert actions and set(actions) == {"login"}
        users_shown = set(log.locator("tbody tr td:nth-child(2)").all_inner_texts())
        assert users_shown == {ANALYST}
        page.screenshot(path=str(SCREENSHOTS / "access-admin-audit.png"), full_page=True)
        assert page.console.errors == []  # type: ignore[attr-defined]

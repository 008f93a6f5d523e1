"""Browser-test helpers: the Debian Chromium, a served dashboard, and waits that follow Dash's callbacks.

Without Chromium the browser tests skip with the reason; CI sets ``SEGRISK_REQUIRE_BROWSER=1`` so a
missing browser fails there instead. Screenshots go to ``tests/artifacts/screenshots`` (or
``$SEGRISK_SCREENSHOTS``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import REPO
from waitress.server import create_server
from werkzeug.security import generate_password_hash

CHROMIUM = Path(os.environ.get("SEGRISK_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("SEGRISK_SCREENSHOTS", REPO / "tests" / "artifacts" / "screenshots"))
PASSWORD = "browser test password"

if not CHROMIUM.exists():
    if os.environ.get("SEGRISK_REQUIRE_BROWSER"):
        raise RuntimeError(
            f"The browser tests need Chromium at {CHROMIUM} (Debian packages chromium, chromium-driver)."
        )
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install Debian's chromium to run the browser tests", allow_module_level=True
    )

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402 - only once Chromium is known to exist

# Chromium's background services try to reach Google; this machine's network refuses them.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def served(db: Path) -> Iterator[str]:
    """The dashboard over ``db`` under waitress on 127.0.0.1 (a free port); yields its base URL."""
    from dashboard import auth
    from dashboard.app import create_app

    users = {"admin": auth.User("admin", "admin", generate_password_hash(PASSWORD))}
    app = create_app(db, users=users)
    server = create_server(app.server, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()


@contextmanager
def signed_in(browser: Browser, base_url: str, user: str = "admin", password: str = PASSWORD) -> Iterator[Page]:
    """A fresh browser context signed in (as the admin unless told), on the Overview page."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=base_url)
    page = context.new_page()
    page.console = Console(page)  # type: ignore[attr-defined]
    page.callbacks = Callbacks(page)  # type: ignore[attr-defined]
    page.goto("/login")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")
    try:
        yield page
    finally:
        context.close()


class Console:
    """The browser console's errors and the page's uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))


class Callbacks:
    """Counts Dash callback requests in flight (each callback is one POST to /_dash-update-component)."""

    def __init__(self, page: Page) -> None:
        self.in_flight = 0
        self.quiet_since = time.monotonic()
        page.on("request", self._started)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)
        page.on("framenavigated", lambda _frame: setattr(self, "quiet_since", time.monotonic()))

    def _started(self, request) -> None:  # noqa: ANN001
        if "/_dash-" in request.url:  # the layout, the callback graph, then each callback
            self.in_flight += 1

    def _ended(self, request) -> None:  # noqa: ANN001
        if "/_dash-" in request.url:
            self.in_flight -= 1
            self.quiet_since = time.monotonic()


def settle(page: Page, quiet: float = 0.6, timeout: float = 30) -> None:
    """Wait until no callback has been in flight for ``quiet`` seconds (chained callbacks follow
    each other within milliseconds, so a quiet spell means the page is done updating)."""
    page.wait_for_load_state("load")
    page.wait_for_selector("#_pages_content > *", state="attached")
    callbacks: Callbacks = page.callbacks  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(100)
        if callbacks.in_flight == 0 and time.monotonic() - callbacks.quiet_since >= quiet:
            return
    raise AssertionError(f"the page kept updating for {timeout} s")


def choose(page: Page, dropdown_id: str, option: str) -> None:
    """Pick one option of a (multi-select) dropdown, as a user does: open it, click the option, close it."""
    page.click(f"#{dropdown_id}")
    page.locator("[role=option]", has_text=option).first.click()
    page.keyboard.press("Escape")


def graph_data(page: Page, graph_id: str) -> list[dict]:
    """The Plotly traces a dcc.Graph shows, read from the browser (waits for the chart to be drawn)."""
    page.wait_for_selector(f"#{graph_id} .js-plotly-plot .main-svg")
    return page.evaluate(
        "(id) => { const el = document.getElementById(id).querySelector('.js-plotly-plot');"
        " return el ? el.data.map(t => ({x: t.x, y: t.y, name: t.name})) : null; }",
        graph_id,
    )


def visit_every_page(page: Page, prefix: str) -> tuple[list[str], list[str]]:
    """Open each registered page, wait for its callbacks, screenshot it. Returns the pages that showed
    a failed-query warning (none should) and those that said some of their data is absent."""
    import dash

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    failed, absent = [], []
    for entry in sorted(dash.page_registry.values(), key=lambda p: p.get("order", 99)):
        page.goto(entry["relative_path"])
        settle(page)
        assert page.locator("#_pages_content").inner_text().strip(), entry["name"]
        if page.locator(".alert-warning").count():
            failed.append(f"{entry['name']}: {page.locator('.alert-warning').all_inner_texts()}")
        if page.locator(".alert-secondary").count():
            absent.append(entry["name"])
        name = entry["relative_path"].strip("/") or "overview"
        page.screenshot(path=str(SCREENSHOTS / f"{prefix}-{name}.png"), full_page=True)
    return failed, absent


def bar_total_changes(page: Page, graph_id: str, before: float) -> float:
    """Wait until the bar chart's total differs from ``before``; return the new total."""
    page.wait_for_function(
        "([id, before]) => { const el = document.getElementById(id).querySelector('.js-plotly-plot');"
        " return el && el.data && el.data[0].x.reduce((a, b) => a + b, 0) !== before; }",
        arg=[graph_id, before],
        timeout=20_000,
    )
    return sum(graph_data(page, graph_id)[0]["x"])

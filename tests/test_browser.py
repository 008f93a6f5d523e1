"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

A real waitress server on 127.0.0.1 serves a trained demo warehouse; the browser signs in, opens
every page, and checks what a risk manager would do: filter, click a chart, move a policy slider,
look a customer up, open a bookmarked view, and keep working while a retrain swaps the file.
Screenshots of every page go to ``tests/artifacts/screenshots`` (or ``$SEGRISK_SCREENSHOTS``).

Without Chromium these tests skip with the reason; CI sets ``SEGRISK_REQUIRE_BROWSER=1`` so
there a missing browser fails instead.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
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

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402 - only once Chromium is known to exist

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


@pytest.fixture(scope="module")
def served_db(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained demo warehouse: the tests acknowledge alerts and retrain beside it."""
    path = tmp_path_factory.mktemp("browser") / "demo.duckdb"
    shutil.copyfile(full_db, path)
    return path


@pytest.fixture(scope="module")
def base_url(served_db: Path) -> Iterator[str]:
    from dashboard import auth
    from dashboard.app import create_app

    users = {"admin": auth.User("admin", "admin", generate_password_hash(PASSWORD))}
    app = create_app(served_db, users=users)
    server = create_server(app.server, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Console:
    """The browser console's errors and the page's uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=base_url)
    tab = context.new_page()
    tab.console = Console(tab)  # type: ignore[attr-defined]
    tab.callbacks = Callbacks(tab)  # type: ignore[attr-defined]
    tab.goto("/login")
    tab.fill("#username", "admin")
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{base_url}/")
    try:
        yield tab
    finally:
        context.close()


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


def test_every_page_loads_without_console_errors(page: Page, base_url: str) -> None:
    import dash

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    registered = sorted(dash.page_registry.values(), key=lambda p: p.get("order", 99))
    assert len(registered) >= 3
    for entry in registered:
        page.goto(entry["relative_path"])
        settle(page)
        assert page.locator("h2").first.inner_text().strip(), entry["name"]
        # A query that failed shows a warning box with its sentence: none may appear on the demo.
        failures = page.locator(".alert-warning").all_inner_texts()
        assert failures == [], f"{entry['name']}: {failures}"
        name = entry["relative_path"].strip("/") or "overview"
        page.screenshot(path=str(SCREENSHOTS / f"demo-{name}.png"), full_page=True)
    assert page.console.errors == []  # type: ignore[attr-defined]


def bar_total_changes(page: Page, graph_id: str, before: float) -> float:
    """Wait until the bar chart's total differs from ``before``; return the new total."""
    page.wait_for_function(
        "([id, before]) => { const el = document.getElementById(id).querySelector('.js-plotly-plot');"
        " return el && el.data && el.data[0].x.reduce((a, b) => a + b, 0) !== before; }",
        arg=[graph_id, before],
        timeout=20_000,
    )
    return sum(graph_data(page, graph_id)[0]["x"])


def test_a_filter_changes_the_charts_and_the_url(page: Page) -> None:
    settle(page)
    before = sum(graph_data(page, "overview-personas")[0]["x"])
    choose(page, "filter-grade", "E")
    assert 0 < bar_total_changes(page, "overview-personas", before) < before
    assert "grade=E" in page.url
    # The filter is global: another page opened from the menu keeps it.
    page.click("nav >> text=Early warnings")
    settle(page)
    assert "grade=E" in page.url
    expect(page.locator("#warnings-headline")).to_contain_text("Risk grade: E")
    assert page.console.errors == []  # type: ignore[attr-defined]


def test_a_bookmarked_view_is_restored(page: Page, served_db: Path) -> None:
    page.goto("/#grade=D,E&age=26-35")
    settle(page)
    with duckdb.connect(str(served_db), read_only=True) as con:
        expected = con.execute(
            "SELECT count(*) FROM mart_customer_profile WHERE grade IN ('D', 'E') AND age_band = '26-35'"
        ).fetchone()[0]
    assert expected > 0
    expect(page.locator("#overview-cards")).to_contain_text(f"{expected:,}")
    selected = page.locator("#filter-grade-value").inner_text()
    assert "D" in selected and "E" in selected


def test_clicking_a_bar_filters_the_other_charts(page: Page) -> None:
    settle(page)
    before = sum(graph_data(page, "overview-personas")[0]["x"])
    graph_data(page, "overview-grades")
    bar = page.locator("#overview-grades .bars .point path").nth(4)  # grade E
    box = bar.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert 0 < bar_total_changes(page, "overview-personas", before) < before
    assert "grade=E" in page.url


def test_the_policy_simulator_follows_its_slider(page: Page) -> None:
    page.goto("/risk")
    outcome = page.locator("#risk-outcome-figures")
    expect(outcome).to_contain_text("Approval rate")
    before = outcome.inner_text()
    page.locator("#risk-approve [role=slider]").first.focus()
    for _ in range(25):
        page.keyboard.press("ArrowRight")
    expect(outcome).not_to_have_text(before)
    assert outcome.inner_text() != before
    assert page.console.errors == []  # type: ignore[attr-defined]


def test_a_retrain_while_serving_is_picked_up(page: Page, served_db: Path) -> None:
    from models.train import train_risk

    page.goto("/risk")
    expect(page.locator("#risk-run")).to_contain_text("Model run")
    before = page.locator("#risk-run").inner_text()
    run = train_risk(served_db, seed=3)
    page.reload()
    expect(page.locator("#risk-run")).to_contain_text(run.run_id)
    assert page.locator("#risk-run").inner_text() != before
    settle(page)
    assert page.locator(".alert-warning").count() == 0
    assert page.console.errors == []  # type: ignore[attr-defined]

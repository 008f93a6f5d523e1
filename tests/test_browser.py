"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

A real waitress server on 127.0.0.1 serves a trained demo warehouse; the browser signs in, opens
every page, and checks what a risk manager would do: filter, click a chart, move a policy slider,
look a customer up, open a bookmarked view, and keep working while a retrain swaps the file.
Screenshots of every page go to ``tests/artifacts/screenshots`` (see tests/browser.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from browser import bar_total_changes, choose, chromium, graph_data, served, settle, signed_in, visit_every_page
from playwright.sync_api import Browser, Page, expect


@pytest.fixture(scope="module")
def served_db(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained demo warehouse: the tests acknowledge alerts and retrain beside it."""
    path = tmp_path_factory.mktemp("browser") / "demo.duckdb"
    shutil.copyfile(full_db, path)
    return path


@pytest.fixture(scope="module")
def base_url(served_db: Path) -> Iterator[str]:
    with served(served_db) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as opened:
        yield opened


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    with signed_in(browser, base_url) as tab:
        yield tab


def test_every_page_loads_without_console_errors(page: Page) -> None:
    failed, _absent = visit_every_page(page, "demo")
    assert failed == []
    assert page.console.errors == []  # type: ignore[attr-defined]


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


def test_a_pages_own_choices_are_kept_in_the_address(page: Page) -> None:
    page.goto("/statistics#grade=E")
    settle(page)
    before = page.locator("#statistics-feature-value").inner_text()
    page.click("#statistics-feature")
    options = page.locator("[role=option]")
    chosen = next(t for t in options.all_inner_texts() if t.strip() and t.strip() != before.strip()).strip()
    options.filter(has_text=chosen).first.click()
    page.keyboard.press("Escape")
    page.get_by_label("Default status").check()
    settle(page)
    page.wait_for_function("() => window.location.search.includes('group=default')")
    assert f"feature={chosen}" in page.url and page.url.endswith("#grade=E")
    choose(page, "filter-grade", "D")  # a global filter changes the fragment, not the page's choices
    settle(page)
    assert f"feature={chosen}" in page.url and set(page.url.split("#grade=")[1].split(",")) == {"D", "E"}
    page.reload()
    settle(page)
    expect(page.locator("#statistics-feature-value")).to_have_text(chosen)
    assert page.get_by_label("Default status").is_checked()
    assert page.console.errors == []  # type: ignore[attr-defined]


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
    # While the simulator recomputes, its loading wrapper empties the figures; wait for new figures, not an
    # empty box.
    page.wait_for_function(
        "before => { const el = document.querySelector('#risk-outcome-figures');"
        " return el && el.innerText.includes('Approval rate') && el.innerText !== before; }",
        arg=before,
    )
    assert "Approval rate" in outcome.inner_text()
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


def test_a_customer_lookup_shows_that_customer(page: Page, served_db: Path) -> None:
    with duckdb.connect(str(served_db), read_only=True) as con:
        customer_id, score, grade = con.execute(
            "SELECT customer_id, score, grade FROM ml_latest_risk_scores ORDER BY customer_id DESC LIMIT 1"
        ).fetchone()
    page.goto("/customer#grade=" + grade)
    settle(page)
    page.fill("#customer-id", str(customer_id))
    page.click("#customer-lookup")
    page.wait_for_url(f"**/customer?customer_id={customer_id}*")
    expect(page.locator("#customer-facts")).to_contain_text(f"Customer {customer_id}")
    # The view sits in a dcc.Loading, which hides it (empty innerText) while its charts still update.
    settle(page)
    expect(page.locator("#customer-view")).to_contain_text(f"{score:,.1f}")
    shown = page.locator("#customer-view").inner_text()
    assert f"{score:,.1f}" in shown and f"\n{grade}\n" in f"\n{shown}\n"
    assert f"grade={grade}" in page.url  # the filters stay
    assert page.console.errors == []  # type: ignore[attr-defined]

"""The Cross-sell page: penetration heatmap, campaign mix, headline figures, offers table and CSV, cross-filtering."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from conftest import dashboard_page
from dash.development.base_component import Component
from dash_helpers import sql, triggered

LATEST = "(SELECT run_id FROM ml_model_runs WHERE model_kind = 'cross_sell' ORDER BY finished_at DESC LIMIT 1)"


@pytest.fixture
def page(full_db_copy: Path):  # noqa: ANN201 - the page module
    return dashboard_page(full_db_copy, "cross_sell")


def offers_count(db: Path, where: str = "true", params: list | None = None) -> int:
    return sql(
        db,
        "SELECT count(*) AS n FROM ml_recommendations r JOIN mart_customer_profile p USING (customer_id) "
        f"WHERE r.run_id = {LATEST} AND {where}",
        params,
    ).item()


def texts(component) -> str:  # noqa: ANN001 - a Dash component tree or a string
    """Every string in a component tree, joined: what a reader of the page sees."""
    if isinstance(component, str):
        return component
    if isinstance(component, (list, tuple)):
        return " ".join(texts(c) for c in component)
    if isinstance(component, Component):
        return texts(getattr(component, "children", None) or "")
    return "" if component is None else str(component)


def test_heatmap_shows_the_latest_runs_penetration(page, full_db_copy: Path) -> None:
    figure, style, _note = page.show_heatmap({})
    heatmap = figure.data[0]
    expected = sql(
        full_db_copy,
        f"SELECT coalesce(segment_key, 'unassigned') AS k, product, share FROM ml_product_penetration "
        f"WHERE run_id = {LATEST}",
    )
    assert expected.height > 10 and style == {}
    shown = {
        (key, product): heatmap.z[row][column]
        for row, key in enumerate(heatmap.y)
        for column, product in enumerate(heatmap.x)
        if heatmap.z[row][column] is not None
    }
    assert shown == {(k, p): pytest.approx(s) for k, p, s in expected.rows()}
    assert list(heatmap.y) == sorted(heatmap.y, key=lambda k: int(k[1:]))  # S1, S2, ... in order
    # The persona of the global filter is outlined, and only that one.
    outlined, _, _ = page.show_heatmap({"persona": ["S2"]})
    rows = [(shape.y0 + shape.y1) / 2 for shape in outlined.layout.shapes]
    assert rows == [list(heatmap.y).index("S2")]


def test_headline_and_mix_follow_the_global_filters(page, full_db_copy: Path) -> None:
    headline, figure, style, _ = page.show_mix({}, "first_choice")
    run_mix = sql(full_db_copy, f"SELECT * FROM ml_campaign_mix WHERE run_id = {LATEST}")
    # Unfiltered, the mix is the run's own table: lead offers per product add up to it.
    shown = {}
    for bar in figure.data:
        for product_name, value in zip(bar.y, bar.x, strict=True):
            shown[product_name] = shown.get(product_name, 0) + value
    expected = run_mix.group_by("product_name").agg(pl.col("first_choice").sum())
    assert shown == {name: n for name, n in expected.rows() if n}
    with_offer = sql(
        full_db_copy, f"SELECT count(DISTINCT customer_id) AS n FROM ml_recommendations WHERE run_id = {LATEST}"
    ).item()
    assert f"{with_offer:,}" in texts(headline) and f"{offers_count(full_db_copy):,}" in texts(headline)
    blocked = sql(
        full_db_copy, "SELECT metrics->>'credit_offers_blocked' AS n FROM ml_model_runs WHERE model_kind = 'cross_sell'"
    ).item()
    assert f"{int(blocked):,}" in texts(headline)

    # Filtered on grade C, the figures are counted from the offers of grade-C customers only.
    filtered = page.campaign_mix(page.reader(), {"grade": ["C"]})
    expected = sql(
        full_db_copy,
        "SELECT p.persona_key AS segment_key, r.product, count(*) AS offers, "
        "count(*) FILTER (r.priority = 1) AS first_choice FROM ml_recommendations r "
        f"JOIN mart_customer_profile p USING (customer_id) WHERE r.run_id = {LATEST} AND p.grade = 'C' GROUP BY ALL",
    )
    key = ["segment_key", "product"]
    assert filtered.select(*key, "offers", "first_choice").sort(key).equals(expected.sort(key))
    headline, figure, _, _ = page.show_mix({"grade": ["C"]}, "offers")
    grade_c = offers_count(full_db_copy, "p.grade = 'C'")
    assert 0 < grade_c < offers_count(full_db_copy)
    assert f"{grade_c:,}" in texts(headline) and sum(sum(bar.x) for bar in figure.data) == grade_c
    assert "customers (Risk grade: C)" in texts(headline)  # the held-back count follows the filter too


def test_mix_bars_carry_the_persona_colour(page) -> None:
    from dashboard import ui

    _, figure, _, _ = page.show_mix({}, "first_choice")
    assert figure.data and all(bar.marker.color == ui.persona_colour(bar.customdata[0][0]) for bar in figure.data)


def test_offers_table_pages_and_counts(page, full_db_copy: Path) -> None:
    first, pages, summary = page.show_table({}, [], 1, "customer_id", "asc")
    second, _, summary_2 = page.show_table({}, [], 2, "customer_id", "asc")
    total = offers_count(full_db_copy)
    assert summary == f"rows 1-25 of {total:,}" and summary_2 == f"rows 26-50 of {total:,}"
    assert pages == -(-total // 25)
    assert texts(first) != texts(second)
    # Sorted by priority, the highest priorities come first.
    by_priority = page.TABLE.page(page.reader(), page.offer_params({}, []), 1, "priority", True)
    assert by_priority.get_column("priority").to_list() == [by_priority.get_column("priority").max()] * 25
    # Global filter and page filter together.
    _, _, summary = page.show_table({"persona": ["S1"]}, ["savings"], 1, None, "asc")
    expected = offers_count(full_db_copy, "p.persona_key = 'S1' AND r.product = 'savings'")
    assert 0 < expected and summary.endswith(f"of {expected:,}")


def test_csv_download_has_the_filtered_rows(page, full_db_copy: Path) -> None:
    sent, message = page.download(1, {"grade": ["A", "B"]}, ["term_deposit", "savings"], "priority", "desc")
    frame = pl.read_csv(io.StringIO(sent["content"]))
    expected = offers_count(full_db_copy, "p.grade IN ('A', 'B') AND r.product IN ('term_deposit', 'savings')")
    assert message == "" and sent["filename"] == "cross_sell_offers.csv"
    assert frame.height == expected > 0
    assert set(frame.get_column("grade")) == {"A", "B"} and set(frame.get_column("product")) == {
        "term_deposit",
        "savings",
    }
    assert frame.get_column("priority").is_sorted(descending=True)


def test_a_click_filters_the_persona_and_the_offers(page) -> None:
    options = [{"value": "savings", "label": "Savings account"}, {"value": "credit_card", "label": "Credit card"}]
    click = {"points": [{"x": "savings", "y": "S3", "z": 0.4}]}
    with triggered("cross-sell-heatmap", "clickData", click):
        assert page.filter_by_click(click, None, options) == (["S3"], ["savings"])
    # A product the run never offers clears the page's product filter rather than keeping a stale one.
    click = {"points": [{"x": "mortgage", "y": "S1", "z": 0.1}]}
    with triggered("cross-sell-heatmap", "clickData", click):
        assert page.filter_by_click(click, None, options) == (["S1"], [])
    bar = {"points": [{"x": 12, "y": "Credit card", "customdata": ["S2", "credit_card"]}]}
    with triggered("cross-sell-mix", "clickData", bar):
        assert page.filter_by_click(None, bar, options) == (["S2"], ["credit_card"])


def test_layout_opens_on_the_products_of_the_url(page) -> None:
    layout = page.layout(product="savings,nonsense")
    dropdown = next(c for c in _walk(layout) if getattr(c, "id", None) == "cross-sell-product")
    assert dropdown.value == ["savings"]


def _walk(component):  # noqa: ANN001, ANN202 - a component tree
    yield component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if isinstance(child, Component):
            yield from _walk(child)


def test_says_why_when_there_are_no_offers(build, risk_db: Path, tmp_path: Path) -> None:
    german = dashboard_page(build("german-credit").db_path, "cross_sell")
    sentence = texts(german.layout())
    assert sentence.startswith("Cross-sell is not available for this dataset") and "product = true" in sentence
    # Trained, but not cross-sell yet: the page says what to run.
    db = tmp_path / "risk.duckdb"
    shutil.copyfile(risk_db, db)
    untrained = dashboard_page(db, "cross_sell")
    assert "segrisk train cross-sell" in texts(untrained.layout())
    assert "segrisk train cross-sell" in texts(untrained.show_mix({}, "offers")[0])


def test_credit_held_back_follows_the_global_filters(page, full_db_copy: Path) -> None:
    """Unfiltered the card is the run's own count; filtered, the withheld offers of the customers kept."""
    run_blocked = sql(full_db_copy, f"SELECT metrics FROM ml_model_runs WHERE run_id = {LATEST}").item()
    headline, *_ = page.show_mix({}, "first_choice")
    whole_book = int(json.loads(run_blocked)["credit_offers_blocked"])
    assert whole_book > 0 and f"{whole_book:,}" in texts(headline)
    grade = sql(
        full_db_copy,
        f"SELECT p.grade FROM ml_credit_withheld w JOIN mart_customer_profile p USING (customer_id) "
        f"WHERE w.run_id = {LATEST} GROUP BY ALL ORDER BY count(*) LIMIT 1",
    ).item()
    expected = sql(
        full_db_copy,
        "SELECT count(*) AS offers, count(DISTINCT customer_id) AS customers FROM ml_credit_withheld w "
        f"JOIN mart_customer_profile p USING (customer_id) WHERE w.run_id = {LATEST} AND p.grade = ?",
        [grade],
    ).row(0)
    assert 0 < expected[0] < whole_book
    headline, *_ = page.show_mix({"grade": [grade]}, "first_choice")
    shown = texts(headline)
    assert f"{expected[0]:,}" in shown and f"{expected[1]:,} customers (Risk grade: {grade})" in shown

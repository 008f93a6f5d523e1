"""The Early warnings page: counts under the filters, the paged table, CSV download, acknowledgements."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import dashboard_page

from dashboard import filters


@pytest.fixture
def page(full_db: Path, tmp_path: Path):  # noqa: ANN201 - the page module Dash imported
    db = tmp_path / "demo.duckdb"
    shutil.copyfile(full_db, db)  # acknowledgements are written beside it
    return dashboard_page(db, "warnings")


def _sql(page, query: str, *params: object) -> list[tuple]:  # noqa: ANN001
    from dashboard.data import reader

    with duckdb.connect(str(reader().path), read_only=True) as con:
        return con.execute(query, list(params)).fetchall()


def test_counts_follow_the_global_filters(page) -> None:  # noqa: ANN001
    from dashboard.data import reader

    data = reader()
    everyone = page.alert_params(data, None, [], [], "open")
    graded = page.alert_params(data, {"grade": ["E"]}, [], [], "open")
    by_rule = data.query("warnings_by_rule", **everyone)
    by_rule_e = data.query("warnings_by_rule", **graded)
    (total,) = _sql(page, "SELECT count(*) FROM ml_latest_alerts")[0]
    (total_e,) = _sql(
        page,
        "SELECT count(*) FROM ml_latest_alerts JOIN ml_latest_risk_scores USING (customer_id) WHERE grade = ?",
        "E",
    )[0]
    assert by_rule.get_column("alerts").sum() == total > total_e == by_rule_e.get_column("alerts").sum() > 0
    headline, rule_chart, _period_chart = page.show_charts({"grade": ["E"]}, [], [], "open", 0)
    assert f"{total_e:,} open alerts" in headline.children
    assert sum(sum(trace.x) for trace in rule_chart.figure.data) == total_e


def test_table_pages_sorts_and_downloads_the_current_filter(page) -> None:  # noqa: ANN001
    from dashboard.data import reader

    data = reader()
    params = page.alert_params(data, {"grade": ["D", "E"]}, ["high_utilization"], [], "all")
    (expected,) = _sql(
        page,
        "SELECT count(*) FROM ml_latest_alerts JOIN ml_latest_risk_scores USING (customer_id) "
        "WHERE grade IN ('D', 'E') AND rule = 'high_utilization'",
    )[0]
    assert page.TABLE.count(data, params) == expected > page.TABLE.page_size
    first = page.TABLE.page(data, params, 1, "value", True)
    second = page.TABLE.page(data, params, 2, "value", True)
    assert first.height == page.TABLE.page_size
    assert set(first.get_column("alert_id")).isdisjoint(second.get_column("alert_id"))
    values = first.get_column("value").to_list() + second.get_column("value").to_list()
    assert values == sorted(values, reverse=True)
    _table, pages, summary = page.TABLE.render(data, params, 2, "value", "desc")
    assert summary == f"rows 26-{min(50, expected)} of {expected:,}" and pages == -(-expected // 25)
    text = page.TABLE.csv(data, params, "value", True)
    downloaded = pl.read_csv(io.StringIO(text))
    assert downloaded.height == expected and downloaded.get_column("value").to_list()[:50] == values


def test_acknowledging_an_alert_shows_at_once(page) -> None:  # noqa: ANN001
    from dashboard.data import reader
    from dashboard.state import acknowledged_ids

    data = reader()
    params = page.alert_params(data, None, [], [], "open")
    before = page.TABLE.count(data, params)
    alert_id = page.TABLE.page(data, params, 1).item(0, "alert_id")
    message = page.acknowledge_alert(data, alert_id, "alice")
    assert alert_id in message and "alice" in message
    assert alert_id in acknowledged_ids(data)
    after = page.alert_params(data, None, [], [], "open")
    assert page.TABLE.count(data, after) == before - 1
    assert filters.describe({"grade": ["E"]}) == "Risk grade: E"


def test_unfiltered_twins_give_the_same_answers(page) -> None:  # noqa: ANN001
    """With no global filter the dashboard skips the join to the customer profile; the answers
    must be exactly those of the filtered queries with every filter empty."""
    from dashboard.data import QUERIES, reader

    data = reader()
    twins = [name for name in QUERIES if name.endswith(":all") and name[: -len(":all")] in QUERIES]
    assert {"warnings_by_rule:all", "warnings-alerts:count:all", "rfm_spread:all"} <= set(twins)
    params = page.alert_params(data, None, [], [], "all")
    own = {k: v for k, v in params.items() if k not in filters.FILTER_PARAMS}
    assert data.query("warnings_by_rule", **params).equals(filters.scoped_query(data, "warnings_by_rule", None, **own))
    assert data.query("warnings-alerts:count", **params).item() == page.TABLE.count(data, params)
    for sort, descending in (("value", True), ("customer_id", False), ("severity", True)):
        name = page.TABLE._query_name(sort, descending)
        for number in (1, 3):
            joined = data.query(name, **params, limit=25, offset=(number - 1) * 25)
            assert joined.equals(page.TABLE.page(data, params, number, sort, descending))
    # A query that reads the profile's columns has no twin: skipping the join would change it.
    assert filters.unfiltered(f"SELECT p.grade FROM t {filters.PROFILE_JOIN} WHERE {filters.FILTERED}") is None

"""The Statistics page: every test of the latest run with its conclusion, outlier counts, and the
exploration's histogram, box plot and default rates checked against DuckDB on the same warehouse."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import dash
import duckdb
import plotly.graph_objects as go
import polars as pl
import pytest
from conftest import Builder, dashboard_page
from dash_helpers import texts

from dashboard import filters
from dashboard.data import QUERIES
from models.train import train_statistics

FILTERED = {"persona": ["S1", "S2"], "grade": ["C", "D", "E"]}


def rows_of(component: object) -> list[object]:
    """Every table body row (html.Tr inside html.Tbody) in a component tree."""
    found = []
    if isinstance(component, list | tuple):
        for item in component:
            found += rows_of(item)
        return found
    if isinstance(component, dash.html.Tbody):
        return list(component.children)
    children = getattr(component, "children", None)
    return rows_of(children if isinstance(children, list) else [children]) if children is not None else []


@pytest.fixture(scope="module")
def warehouse(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained demo warehouse after a second statistics run with another alpha, so "latest" matters."""
    path = tmp_path_factory.mktemp("statistics-page") / "demo.duckdb"
    shutil.copyfile(full_db, path)
    train_statistics(path, alpha=0.01, seed=7)
    return path


@pytest.fixture(scope="module")
def page(warehouse: Path):  # noqa: ANN201 - the page module Dash imported
    return dashboard_page(warehouse, "statistics")


def joined(db: Path, sql: str, global_filters: dict | None = None) -> list[tuple]:
    """``sql`` over customers joined to the filtered profile, computed here with DuckDB."""
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "WITH j AS (SELECT c.*, p.persona_key, p.grade FROM customers c JOIN mart_customer_profile p "
            f"USING (customer_id) WHERE {filters.FILTERED}) " + sql,
            filters.params(global_filters),
        ).fetchall()


def test_every_test_of_the_latest_run_is_listed_with_its_conclusion(page, warehouse: Path) -> None:  # noqa: ANN001
    with duckdb.connect(str(warehouse), read_only=True) as con:
        runs = con.execute("SELECT count(DISTINCT run_id) FROM ml_statistical_tests").fetchall()[0][0]
        latest = con.execute(
            "SELECT test, conclusion, is_significant FROM ml_statistical_tests WHERE run_id = "
            "(SELECT run_id FROM ml_model_runs WHERE model_kind = 'statistics' ORDER BY finished_at DESC LIMIT 1)"
        ).fetchall()
    assert runs == 2 and len(latest) > 50
    shown = page.show_tests(None, [])
    words = texts(shown)
    assert len(rows_of(shown)) == len(latest)  # every test of the latest run, none of the older one
    assert all(conclusion in words for _, conclusion, _ in latest)
    # Significant tests are highlighted; the filter keeps only them.
    significant = [c for _, c, s in latest if s]
    highlighted = [r for r in rows_of(shown) if getattr(r, "className", None) == "table-info"]
    assert len(highlighted) == len(significant) > 0
    only = page.show_tests(None, ["yes"])
    assert len(rows_of(only)) == len(significant)
    assert set(significant) <= set(texts(only)) and not {c for _, c, s in latest if not s} & set(texts(only))
    # One family at a time.
    chi = [c for t, c, _ in latest if t == "chi_square"]
    one = page.show_tests(["chi_square"], [])
    assert len(rows_of(one)) == len(chi) and "Chi-square test: default rate across categories" in texts(one)


def test_outlier_counts_per_variable_match_the_latest_run(page, warehouse: Path) -> None:  # noqa: ANN001
    outliers = page.reader().query("statistics_outliers")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        expected = con.execute(
            "SELECT variable, count(*), count_if(is_z_outlier)::BIGINT, count_if(is_iqr_outlier)::BIGINT "
            "FROM ml_outliers WHERE run_id = (SELECT max(run_id) FROM ml_outliers) GROUP BY ALL"
        ).fetchall()
    assert sorted(outliers.rows()) == sorted(expected)
    figure = page.outliers_figure(outliers)
    iqr = next(t for t in figure.data if "Tukey" in t.name)
    assert dict(zip(iqr.y, iqr.x, strict=True)) == {v: n for v, _, _, n in expected}
    # A click on a bar opens that variable in the exploration, when it is explorable.
    variable = next(v for v, *_ in expected if v in page.features(page.reader()))
    assert page.explore_outlier_variable({"points": [{"customdata": [variable]}]}) == variable
    assert page.explore_outlier_variable({"points": [{"customdata": ["no_such_column"]}]}) is dash.no_update


@pytest.mark.parametrize("global_filters", [{}, FILTERED], ids=["all", "filtered"])
@pytest.mark.parametrize("group_by", ["persona", "default"])
def test_histogram_counts_add_up_to_the_filtered_customers(
    page,  # noqa: ANN001
    warehouse: Path,
    global_filters: dict,
    group_by: str,
) -> None:
    data = page.reader()
    column = page.feature(data, "annual_income")  # has missing values in the demo data
    counts, edges = page.histogram(data, column, group_by, global_filters)
    [(customers, with_value)] = joined(warehouse, "SELECT count(*), count(annual_income) FROM j", global_filters)
    assert 0 < with_value < customers
    assert counts.get_column("customers").sum() == customers
    assert counts.filter(pl.col("bin") >= 0).get_column("customers").sum() == with_value
    figure = page.histogram_figure(counts, edges, "annual_income", {})
    assert sum(sum(trace.y) for trace in figure.data) == with_value
    # The bins themselves, recomputed here from the page's edges: values beyond them fall in the end bins.
    values = pl.DataFrame(
        joined(warehouse, "SELECT annual_income FROM j WHERE annual_income IS NOT NULL", global_filters),
        schema=["x"],
        orient="row",
    )
    expected = (
        values.with_columns(
            bin=((pl.col("x") - edges.low) / edges.width).floor().clip(0, edges.count - 1).cast(pl.Int32)
        )
        .group_by("bin")
        .len()
    )
    found = counts.filter(pl.col("bin") >= 0).group_by("bin").agg(pl.col("customers").sum())
    assert dict(found.rows()) == dict(expected.rows())
    assert edges.count == page.BINS


def test_whole_numbers_over_a_short_range_get_one_bar_per_value(page, warehouse: Path) -> None:  # noqa: ANN001
    data = page.reader()
    column = page.feature(data, "periods_past_due")
    counts, edges = page.histogram(data, column, "none", {})
    [(low, high)] = joined(warehouse, "SELECT min(periods_past_due), max(periods_past_due) FROM j")
    assert edges.width == 1 and 1 < edges.count <= high - low + 1
    by_value = dict(joined(warehouse, "SELECT periods_past_due, count(*) FROM j GROUP BY ALL"))
    bars = dict(
        sorted((edges.centre(b), n) for b, n in counts.filter(pl.col("bin") >= 0).select("bin", "customers").rows())
    )
    assert all(float(v).is_integer() for v in bars)  # each bar sits on a whole number
    # Inside bars hold exactly their value; the end bars also hold the tails beyond the percentiles.
    inside = list(bars)[1:-1]
    assert {v: bars[v] for v in inside} == {v: by_value.get(v, 0) for v in inside}
    assert sum(bars.values()) == sum(by_value.values())


@pytest.mark.parametrize("global_filters", [{}, FILTERED], ids=["all", "filtered"])
def test_box_quartiles_are_duckdbs_quantile_cont(page, warehouse: Path, global_filters: dict) -> None:  # noqa: ANN001
    data = page.reader()
    summary = page.groups(data, page.feature(data, "credit_score"), "persona", global_filters)
    figure = page.box_figure(summary, "credit_score", page.persona_names(data))
    expected = joined(
        warehouse,
        "SELECT persona_key, quantile_cont(credit_score, 0.25), quantile_cont(credit_score, 0.5), "
        "quantile_cont(credit_score, 0.75), min(credit_score), max(credit_score) FROM j GROUP BY ALL ORDER BY ALL",
        global_filters,
    )
    assert len(figure.data) == len(expected) > 1
    for box, (key, q1, median, q3, low, high) in zip(figure.data, expected, strict=True):
        assert isinstance(box, go.Box) and box.y[0].startswith(key)
        assert (box.q1[0], box.median[0], box.q3[0]) == pytest.approx((q1, median, q3))
        assert box.lowerfence[0] == pytest.approx(max(low, q1 - 1.5 * (q3 - q1)))
        assert box.upperfence[0] == pytest.approx(min(high, q3 + 1.5 * (q3 - q1)))


def test_default_rate_and_count_by_group(page, warehouse: Path) -> None:  # noqa: ANN001
    data = page.reader()
    summary = page.groups(data, page.feature(data, "age"), "persona", FILTERED)
    expected = joined(
        warehouse, "SELECT persona_key, count(*), avg(is_defaulted::INT) FROM j GROUP BY ALL ORDER BY ALL", FILTERED
    )
    found = summary.sort("grp").select("grp", "customers", "default_rate").rows()
    assert [(k, n) for k, n, _ in found] == [(k, n) for k, n, _ in expected]
    assert [r for *_, r in found] == pytest.approx([r for *_, r in expected])
    figure = page.balance_figure(summary, "persona", {})
    assert list(figure.data[0].x) == pytest.approx([r for *_, r in expected])
    # By default status the balance is customers per outcome, adding up to everyone filtered.
    outcome = page.groups(data, page.feature(data, "age"), "default", FILTERED)
    assert dict(outcome.select("grp", "customers").rows()) == dict(
        joined(
            warehouse,
            "SELECT CASE WHEN is_defaulted THEN 'defaulted' ELSE 'not_defaulted' END, count(*) FROM j GROUP BY ALL",
            FILTERED,
        )
    )
    # A click on a persona's bar filters every page to it; other groupings leave the filters alone.
    click = {"points": [{"customdata": ["S2"]}]}
    assert page.filter_by_persona(click, "persona") == ["S2"]
    assert page.filter_by_persona(click, "default") is dash.no_update


def test_the_features_mart_positional_pairing_and_the_join_agree(page, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    data = page.reader()
    # The build writes mart_customer_features; an older warehouse pairs customers with the profile,
    # by position when both are sorted by customer (as the build writes them), else by a join.
    assert page.catalogue(data).pairing == "features"
    column = page.feature(data, "utilization")
    answers = {}
    real = page.catalogue(data)
    for pairing in ("features", "positional", "joined"):
        monkeypatch.setattr(page, "catalogue", lambda _data, pairing=pairing: real._replace(pairing=pairing))
        answers[pairing] = (
            page.histogram(data, column, "persona", FILTERED)[0],
            page.groups(data, column, "persona", FILTERED),
        )
    for pairing in ("positional", "joined"):
        assert answers["features"][0].equals(answers[pairing][0])
        groups, other = answers["features"][1], answers[pairing][1]
        assert groups.height > 1 and groups.drop("quartiles", "mean").equals(other.drop("quartiles", "mean"))
        assert groups.get_column("mean").to_list() == pytest.approx(other.get_column("mean").to_list())
    assert {"features", "positional", "joined"} <= {
        name.split(":")[1] for name in QUERIES if name.startswith("statistics_groups:")
    }


def test_a_column_not_in_the_warehouse_is_refused_before_any_sql(page, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    data = page.reader()
    page.features(data)  # the whitelist itself may be read; nothing else may run
    ran: list[str] = []
    original = type(data).query
    monkeypatch.setattr(type(data), "query", lambda self, name, /, **kw: ran.append(name) or original(self, name, **kw))
    for name in ('annual_income" FROM customers; DROP TABLE customers; --', "sex", "customer_id", "is_defaulted"):
        note, histogram, rate = page.show_distribution({}, name, "persona", "count")
        box, balance, table = page.show_groups({}, name, "persona")
        assert "is not a numeric feature of this warehouse's customers table" in texts(note)[0]
        assert "is not a numeric feature" in texts(box)[0]
        assert histogram is rate is balance is table is None
    assert not [q for q in ran if ":" in q]  # no per-column query ran
    assert not [q for q in QUERIES if "DROP" in q or q.endswith((":sex", ":customer_id", ":is_defaulted"))]
    assert page.reader().query("customers_count").item() > 0


def test_exploration_callbacks_show_charts_and_the_note(page) -> None:  # noqa: ANN001
    note, histogram, rate = page.show_distribution(FILTERED, "loan_amount", "persona", "share")
    assert "customers have a value" in " ".join(texts(note))
    shares = histogram.figure.data
    assert all(sum(trace.y) == pytest.approx(1) for trace in shares)  # each group's distribution sums to 1
    assert {trace.name.split(" ")[0] for trace in shares} == {"S1", "S2"}
    assert rate.figure.layout.title.text.startswith("Default rate across loan_amount")
    box, balance, table = page.show_groups(FILTERED, "loan_amount", "none")
    assert [trace.y[0] for trace in box.figure.data] == ["All customers"]
    nobody = page.show_distribution({"persona": ["no-such-persona"]}, "loan_amount", "persona", "count")
    assert "No customers match the current filters." in texts(nobody[1])


def test_layout_opens_on_the_feature_in_the_url(page) -> None:  # noqa: ANN001
    words = texts(page.layout(feature="credit_score", group="default"))
    assert "Tests of the risk analysis" in words and "Explore a feature" in words
    layout = page.layout(feature="credit_score", group="default")
    dropdown = _find(layout, "statistics-feature")
    assert dropdown.value == "credit_score" and _find(layout, "statistics-group").value == "default"
    # Unknown values in the URL fall back to the defaults instead of failing.
    layout = page.layout(feature="nope", group="nope")
    assert _find(layout, "statistics-feature").value in page.features(page.reader())
    assert _find(layout, "statistics-group").value == "persona"


def _find(component: object, component_id: str) -> object:
    if getattr(component, "id", None) == component_id:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children] if children is not None else []:
        found = _find(child, component_id)
        if found is not None:
            return found
    return None


def test_a_warehouse_without_statistics_says_so(build: Builder) -> None:
    page = dashboard_page(build("german-credit").db_path, "statistics")
    words = " ".join(texts(page.layout()))
    assert "No statistical tests in this warehouse: `segrisk train statistics` has not run on it" in words
    assert "No outlier counts" in words
    assert "No statistical tests in this warehouse" in texts(page.show_tests(None, []))[0]
    # The exploration needs no model: German Credit has an outcome, so it splits by default status.
    assert page.has_outcome(page.reader())
    _, histogram, rate = page.show_distribution({}, "age", "default", "count")
    assert sum(sum(t.y) for t in histogram.figure.data) == 200 and rate is not None
    # No personas are trained: the split by persona is not offered, and a sentence says why.
    layout = page.layout(group="persona")
    assert {o["value"] for o in _find(layout, "statistics-group").options} == {"default", "none"}
    assert _find(layout, "statistics-group").value == "default"
    assert "Personas are not trained on this warehouse" in " ".join(texts(layout))


def test_a_dataset_without_an_outcome_offers_no_default_split(build: Builder) -> None:
    page = dashboard_page(build("online-retail").db_path, "statistics")
    layout = page.layout(group="default")
    assert {o["value"] for o in _find(layout, "statistics-group").options} == {"none"}
    assert _find(layout, "statistics-group").value == "none"
    assert "This dataset has no default outcome" in " ".join(texts(layout))
    _, histogram, rate = page.show_distribution({}, "txn_count", "none", "count")
    assert rate is None and math.isclose(sum(sum(t.y) for t in histogram.figure.data), 786)
    # Whole-number counts get whole-number bins: every bar holds the same number of values.
    edges = page.bins(page.reader(), page.feature(page.reader(), "txn_count"))
    assert edges.whole and edges.width == int(edges.width) and edges.low % 1 == 0.5
    box, balance, table = page.show_groups({}, "txn_count", "none")
    assert box is not None and balance is None
    assert "Default rate" not in texts(table)

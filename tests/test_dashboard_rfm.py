"""The RFM page: segment treemap, R x F grid, spread by segment, clusters, customer list and CSV, absent data."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest
from conftest import dashboard_page
from dash import no_update
from dash.development.base_component import Component
from dash_helpers import sql, triggered

from models.rfm import SEGMENTS
from models.train import train_rfm

LATEST = "(SELECT run_id FROM ml_model_runs WHERE model_kind = 'rfm' ORDER BY finished_at DESC LIMIT 1)"
SCORED = f"FROM ml_rfm r JOIN mart_customer_profile p USING (customer_id) WHERE r.run_id = {LATEST}"


@pytest.fixture
def page(full_db_copy: Path):  # noqa: ANN201 - the page module
    return dashboard_page(full_db_copy, "rfm")


def texts(component) -> str:  # noqa: ANN001 - a Dash component tree or a string
    if isinstance(component, str):
        return component
    if isinstance(component, (list, tuple)):
        return " ".join(texts(c) for c in component)
    if isinstance(component, Component):
        return texts(getattr(component, "children", None) or "")
    return "" if component is None else str(component)


def treemap_sizes(page, global_filters: dict) -> dict[str, int]:  # noqa: ANN001 - the page module
    _, _, treemap, style, *_ = page.show_segments(global_filters)
    assert style == {}
    sizes = dict(zip(treemap.data[0].labels, treemap.data[0].values, strict=True))
    assert sizes.pop(page.ROOT) == sum(sizes.values())  # the root tile holds every segment
    return sizes


def test_treemap_sizes_are_the_warehouse_counts_and_follow_filters(page, full_db_copy: Path) -> None:
    everyone = treemap_sizes(page, {})
    expected = dict(sql(full_db_copy, f"SELECT r.segment, count(*) AS n {SCORED} GROUP BY ALL").rows())
    assert everyone == expected and len(expected) >= 8
    assert list(everyone) == [s for s in page.SEGMENT_COLOURS if s in everyone]  # best segments first
    # Unfiltered, the page skips the join to the profile: a filter that keeps everyone agrees.
    grades = sql(full_db_copy, "SELECT DISTINCT grade FROM mart_customer_profile").get_column("grade").to_list()
    assert treemap_sizes(page, {"grade": grades}) == everyone

    grade_e = treemap_sizes(page, {"grade": ["E"]})
    expected_e = dict(
        sql(full_db_copy, f"SELECT r.segment, count(*) AS n {SCORED} AND p.grade = 'E' GROUP BY ALL").rows()
    )
    assert grade_e == expected_e and sum(grade_e.values()) < sum(everyone.values())


def test_headline_counts_scored_customers_of_the_filter(page, full_db_copy: Path) -> None:
    headline = texts(page.show_segments({"persona": ["S2"]})[0])
    scored = sql(full_db_copy, f"SELECT count(*) AS n {SCORED} AND p.persona_key = 'S2'").item()
    customers = sql(full_db_copy, "SELECT count(*) AS n FROM mart_customer_profile WHERE persona_key = 'S2'").item()
    best = sql(
        full_db_copy, f"SELECT count(*) AS n {SCORED} AND p.persona_key = 'S2' AND r.segment IN ('Champions', 'Loyal')"
    )
    assert f"{scored:,}" in headline and f"of {customers:,} customers" in headline
    assert f"{best.item() / scored:.1%}" in headline


def test_grid_cells_count_customers_with_mean_spend(page, full_db_copy: Path) -> None:
    grid = page.show_segments({})[4].data[0]
    expected = sql(
        full_db_copy, f"SELECT r.r_score, r.f_score, count(*) AS n, avg(r.rfm_monetary) AS spend {SCORED} GROUP BY ALL"
    )
    assert expected.height == 25
    for r, f, n, spend in expected.rows():
        row, column = list(grid.y).index(r), list(grid.x).index(f)
        assert grid.z[row][column] == n
        assert grid.customdata[row][column][1] == pytest.approx(spend)
        assert grid.customdata[row][column][0] in page.SEGMENT_COLOURS


def test_spread_shows_medians_and_quartiles(page, full_db_copy: Path) -> None:
    figure = page.show_spread({"region": ["North"]}).figure
    values = sql(full_db_copy, f"SELECT r.segment, r.rfm_monetary {SCORED} AND p.region = 'North'")
    spend = figure.data[2]  # recency, frequency, spend
    for segment, median, above in zip(spend.y, spend.x, spend.error_x.array, strict=True):
        mine = values.filter(pl.col("segment") == segment).get_column("rfm_monetary")
        assert median == pytest.approx(mine.median())
        assert median + above == pytest.approx(mine.quantile(0.75, interpolation="linear"))


def test_spread_samples_a_fixed_share_of_a_large_population(page, full_db_copy: Path, monkeypatch) -> None:
    monkeypatch.setattr(page, "SPREAD_SAMPLED_FROM", 50)  # this warehouse's populations count as large
    figure = page.show_spread({}).figure
    every = page.RFM_SAMPLE_EVERY
    assert f"1 customer in {every}" in figure.layout.title.text
    sample = sql(
        full_db_copy, f"SELECT r.segment, count(*) AS n {SCORED} AND hash(r.customer_id) % {every} = 0 GROUP BY ALL"
    )
    total = int(sql(full_db_copy, f"SELECT count(*) AS n {SCORED}").item())
    shown = {segment: row[2] for segment, row in zip(figure.data[0].y, figure.data[0].customdata, strict=True)}
    assert shown == dict(sample.rows()) and total / (2 * every) < sum(shown.values()) < 2 * total / every
    assert figure.to_dict() == page.show_spread({}).figure.to_dict()  # the same sample every time
    # Filtered, the sample keeps the filter's customers only, and small populations are counted whole.
    north = page.show_spread({"region": ["North"]}).figure
    assert f"1 customer in {every}" in north.layout.title.text
    monkeypatch.setattr(page, "SPREAD_SAMPLED_FROM", 10**9)
    assert "sample" not in page.show_spread({}).figure.layout.title.text


def test_clusters_table_counts_the_filtered_customers(page, full_db_copy: Path) -> None:
    table = texts(page.show_segments({"age": ["26-35"]})[-1])
    counts = sql(full_db_copy, f"SELECT r.cluster_name, count(*) AS n {SCORED} AND p.age_band = '26-35' GROUP BY ALL")
    assert counts.height == 4
    for name, n in counts.rows():
        assert name in table and f"{n:,}" in table


def test_customer_list_pages_filters_and_downloads(page, full_db_copy: Path) -> None:
    first, pages, summary = page.show_table({}, [], 1, "rfm_monetary", "desc")
    second, _, _ = page.show_table({}, [], 2, "rfm_monetary", "desc")
    total = sql(full_db_copy, f"SELECT count(*) AS n {SCORED}").item()
    assert summary == f"rows 1-25 of {total:,}" and pages == -(-total // 25)
    assert texts(first) != texts(second)

    where = "p.grade IN ('D', 'E') AND r.segment IN ('At Risk', 'Can''t Lose Them')"
    expected = sql(full_db_copy, f"SELECT count(*) AS n {SCORED} AND {where}").item()
    _, _, summary = page.show_table({"grade": ["D", "E"]}, ["At Risk", "Can't Lose Them"], 1, None, "desc")
    assert expected > 0 and summary.endswith(f"of {expected:,}")
    sent, message = page.download(1, {"grade": ["D", "E"]}, ["At Risk", "Can't Lose Them"], "rfm_monetary", "desc")
    frame = pl.read_csv(io.StringIO(sent["content"]))
    assert message == "" and frame.height == expected
    assert frame.get_column("rfm_monetary").is_sorted(descending=True)
    assert set(frame.get_column("segment")) <= {"At Risk", "Can't Lose Them"}


def test_a_click_lists_the_segment(page) -> None:
    tile = {"points": [{"label": "At Risk", "value": 120}]}
    with triggered("rfm-treemap", "clickData", tile):
        assert page.list_clicked_segment(tile, None) == ["At Risk"]
    # What Dash sends for a heatmap cell: no customdata, the scores as x (F) and y (R).
    cell = {"points": [{"curveNumber": 0, "x": 1, "y": 5, "z": 40, "text": "New<br>40"}]}
    with triggered("rfm-grid", "clickData", cell):
        assert page.list_clicked_segment(None, cell) == ["New"]
    root = {"points": [{"label": page.ROOT}]}
    with triggered("rfm-treemap", "clickData", root):
        assert page.list_clicked_segment(root, None) == []  # the root lists everyone again
    with triggered("rfm-grid", "clickData", {"points": [{"x": 9, "y": 9}]}):
        assert page.list_clicked_segment(None, {"points": [{"x": 9, "y": 9}]}) is no_update


def test_listed_segments_are_outlined(page) -> None:
    _, _, treemap, _, grid, _, _ = page.show_segments({}, ["Hibernating"])
    widths = dict(zip(treemap.data[0].labels, treemap.data[0].marker.line.width, strict=True))
    assert widths["Hibernating"] > widths["Lost"]
    outlined = {(int(shape.y0 + 0.5), int(shape.x0 + 0.5)) for shape in grid.layout.shapes}
    assert outlined == {(r, f) for r in (1, 2) for f in (1, 2)} - {(1, 1)}  # R1F1 is Lost


def test_every_segment_of_the_model_has_a_colour(page) -> None:
    assert list(page.SEGMENT_COLOURS) == page.segment_order(SEGMENTS)
    assert set(page.SEGMENT_COLOURS) == set(SEGMENTS)


def test_online_retail_before_and_after_rfm(build) -> None:
    db = build("online-retail").db_path
    before = dashboard_page(db, "rfm")
    assert "segrisk train rfm" in texts(before.layout())
    train_rfm(db, seed=42)
    after = dashboard_page(db, "rfm")
    assert "RFM run" in texts(after.layout())
    sizes = treemap_sizes(after, {})
    expected = dict(sql(db, f"SELECT r.segment, count(*) AS n {SCORED} GROUP BY ALL").rows())
    assert sizes == expected and sum(sizes.values()) > 100
    assert after.show_spread({}).figure.data  # no personas, no grades: still the whole page


def test_german_credit_says_rfm_needs_transactions(build) -> None:
    page = dashboard_page(build("german-credit").db_path, "rfm")
    sentence = texts(page.layout())
    assert sentence == "RFM is not available for this dataset: it needs transactions; the spec has none."
    assert texts(page.show_segments({})[0]) == sentence

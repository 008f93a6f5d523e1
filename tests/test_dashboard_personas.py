"""The Personas page: scatter, cards, profile heatmap, k-selection, migration, cross-filter and renames."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
import duckdb
import polars as pl
import pytest
from conftest import Builder, dashboard_page
from dash import dcc
from dash._callback_context import context_value
from dash._utils import AttributeDict
from dash_helpers import sql, text_of
from werkzeug.security import generate_password_hash

from dashboard import auth, ui
from dashboard.data import reader
from warehouse.app_state import AppState, state_path


@pytest.fixture(scope="module")
def db(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the fully trained demo warehouse for the tests that only read."""
    path = tmp_path_factory.mktemp("personas") / "demo.duckdb"
    shutil.copyfile(full_db, path)
    return path


@pytest.fixture
def own_db(full_db: Path, tmp_path: Path) -> Path:
    """A copy for one test that writes beside the warehouse (the application-state store)."""
    path = tmp_path / "demo.duckdb"
    shutil.copyfile(full_db, path)
    return path


def ids_in(component: object) -> list:
    found = []
    if isinstance(component, list | tuple):
        for child in component:
            found += ids_in(child)
    elif hasattr(component, "to_plotly_json"):
        if getattr(component, "id", None) is not None:
            found.append(component.id)
        found += ids_in(getattr(component, "children", None))
    return found


@contextmanager
def signed_in(role: str, user: str = "alice") -> Iterator[None]:
    """A request of the dashboard built last whose session carries this user (put in its store), as the
    login would set it."""
    server = dash.get_app().server
    stored = server.extensions["segrisk_state"].set_user(user, role, password_hash=generate_password_hash("pw"))
    with server.test_request_context():
        auth.start_session(stored)
        yield


def test_scatter_shows_the_filtered_customers_on_their_coordinates(db: Path) -> None:
    page = dashboard_page(db, "personas")
    points = page.scatter_points(reader(), {"grade": ["E"], "region": []})
    expected = sql(
        db,
        "SELECT s.customer_id, s.segment_key, s.pca_x, s.pca_y FROM ml_latest_segments s "
        "JOIN mart_customer_profile p USING (customer_id) WHERE p.grade = 'E' ORDER BY customer_id",
    )
    assert 0 < points.height == expected.height < page.SCATTER_LIMIT
    assert points.equals(expected)

    names = dict(sql(db, "SELECT segment_key, persona_name FROM ml_latest_segment_summary").rows())
    names["S1"] = "Renamed One"
    figure = page.scatter_figure(points, names)
    assert sum(len(trace.x) for trace in figure.data) == points.height
    for trace in figure.data:
        key = trace.customdata[0]
        assert set(trace.customdata) == {key}
        assert trace.marker.color == ui.persona_colour(key)
        assert trace.name == f"{key} · {names[key]}"
        in_persona = points.filter(pl.col("segment_key") == key)
        assert list(trace.x) == in_persona.get_column("pca_x").to_list()
        assert list(trace.y) == in_persona.get_column("pca_y").to_list()
        assert list(trace.text) == in_persona.get_column("customer_id").to_list()


def test_scatter_sample_is_capped_and_always_the_same(db: Path) -> None:
    page = dashboard_page(db, "personas")
    data = reader()
    everyone = set(sql(db, "SELECT customer_id FROM mart_customer_profile").get_column("customer_id").to_list())
    sample = page.scatter_points(data, None, limit=300)
    assert sample.height == 300 and sample.equals(page.scatter_points(data, None, limit=300))
    assert set(sample.get_column("customer_id").to_list()) <= everyone
    # A customer sampled without filters stays sampled when a filter keeps them: points do not jump.
    grade_e = set(sql(db, "SELECT customer_id FROM mart_customer_profile WHERE grade = 'E'")["customer_id"].to_list())
    filtered = set(page.scatter_points(data, {"grade": ["E"]}, limit=300).get_column("customer_id").to_list())
    assert set(sample.get_column("customer_id").to_list()) & grade_e <= filtered


def test_persona_figures_follow_the_filters_and_the_acknowledgements(own_db: Path) -> None:
    page = dashboard_page(own_db, "personas")
    chosen = {"grade": ["D", "E"]}
    figures = page.persona_figures(reader(), chosen).sort("persona_key")
    expected = sql(
        own_db,
        "SELECT persona_key, count(*) AS customers, avg(pd) AS mean_pd, avg(is_defaulted::INT) AS default_rate, "
        "sum(open_alerts)::BIGINT AS open_alerts FROM mart_customer_profile WHERE grade IN ('D', 'E') "
        "GROUP BY ALL ORDER BY persona_key",
    )
    assert figures.get_column("persona_key").to_list() == expected.get_column("persona_key").to_list()
    assert figures.get_column("customers").to_list() == expected.get_column("customers").to_list()
    assert figures.get_column("mean_pd").to_list() == pytest.approx(expected.get_column("mean_pd").to_list())
    assert figures.get_column("default_rate").to_list() == pytest.approx(expected.get_column("default_rate").to_list())
    assert figures.get_column("open_alerts").to_list() == expected.get_column("open_alerts").to_list()

    # An acknowledgement on the dashboard counts at once, before the next model run.
    alert_id, persona = sql(
        own_db,
        "SELECT a.alert_id, p.persona_key FROM ml_latest_alerts a JOIN mart_customer_profile p USING (customer_id) "
        "WHERE NOT a.is_acknowledged AND p.grade IN ('D', 'E') ORDER BY a.alert_id LIMIT 1",
    ).row(0)
    AppState(state_path(own_db)).acknowledge(alert_id, user="alice")
    after = dict(page.persona_figures(reader(), chosen).select("persona_key", "open_alerts").rows())
    before = dict(expected.select("persona_key", "open_alerts").rows())
    assert after[persona] == before[persona] - 1
    assert {k: v for k, v in after.items() if k != persona} == {k: v for k, v in before.items() if k != persona}


def test_cards_show_each_persona_with_its_figures(db: Path) -> None:
    page = dashboard_page(db, "personas")
    cards, scope = page.show_cards({"grade": ["E"]}, 0)
    summary = sql(db, "SELECT * FROM ml_latest_segment_summary ORDER BY segment_id")
    in_e = dict(sql(db, "SELECT persona_key, count(*) FROM mart_customer_profile WHERE grade = 'E' GROUP BY 1").rows())
    assert len(cards.children) == summary.height
    for card, row in zip(cards.children, summary.iter_rows(named=True), strict=True):
        text = text_of(card)
        assert row["persona_name"] in text and row["strategy"] in text and row["description"] in text
        assert f"{row['customers']:,} customers, {ui.percent(row['share'])} of the book" in text
        assert f"In view {ui.count(in_e.get(row['segment_key'], 0))}" in text
        assert ({"type": "personas-pick", "key": row["segment_key"]}) in ids_in(card)
    assert "Risk grade: E" in scope


def test_profile_heatmap_holds_the_z_scores_of_the_most_distinctive_features(db: Path) -> None:
    page = dashboard_page(db, "personas")
    profiles = page.profile_matrix(reader())
    names = dict(sql(db, "SELECT segment_key, persona_name FROM ml_latest_segment_summary").rows())
    figure = page.profile_figure(profiles, names)
    heatmap = figure.data[0]
    latest = sql(
        db,
        "SELECT segment_key, feature, z_score, distinctiveness_rank FROM ml_segment_profiles WHERE run_id = "
        "(SELECT run_id FROM ml_latest_segment_summary LIMIT 1)",
    )
    keys = sql(db, "SELECT segment_key FROM ml_latest_segment_summary ORDER BY segment_id")["segment_key"].to_list()
    assert list(heatmap.y) == [f"{k} · {names[k]}" for k in keys]
    assert 0 < len(heatmap.x) <= page.PROFILE_FEATURES
    features = profiles.get_column("feature").unique(maintain_order=True).to_list()
    assert list(heatmap.x) == [f.replace("_", " ") for f in features]
    z = {(k, f): v for k, f, v, _ in latest.rows()}
    for row, key in zip(heatmap.z, keys, strict=True):
        assert list(row) == pytest.approx([z[(key, f)] for f in features])
    # Every persona's most distinctive feature is a column, and the scale is centred on zero.
    assert set(latest.filter(pl.col("distinctiveness_rank") == 1)["feature"].to_list()) <= set(features)
    assert heatmap.zmid == 0 and heatmap.zmin == -heatmap.zmax


def test_k_selection_chart_plots_both_measures_and_marks_the_chosen_k(db: Path) -> None:
    page = dashboard_page(db, "personas")
    expected = sql(
        db,
        "SELECT k, inertia, silhouette, is_chosen FROM ml_k_selection WHERE run_id = "
        "(SELECT run_id FROM ml_latest_segment_summary LIMIT 1) ORDER BY k",
    )
    figure = page.k_figure(reader().query("personas_k_selection"))
    inertia, silhouette = figure.data
    assert list(inertia.x) == expected["k"].to_list() and list(inertia.y) == expected["inertia"].to_list()
    assert list(silhouette.y) == expected["silhouette"].to_list() and silhouette.yaxis == "y2"
    chosen = expected.filter(pl.col("is_chosen"))["k"].item()
    assert any(shape.x0 == chosen for shape in figure.layout.shapes)
    assert any(a.text == f"chosen k = {chosen}" for a in figure.layout.annotations)


def test_one_segmentation_run_says_migration_needs_another(db: Path) -> None:
    page = dashboard_page(db, "personas")
    profile, sankey = page.show_run_charts(0)
    assert "Only one segmentation run so far" in text_of(sankey)
    assert isinstance(profile, dcc.Graph) and profile.id == "personas-profile"


def add_previous_run(db_path: Path) -> None:
    """An earlier segmentation run than the trained one: every tenth customer was in a persona S9
    that no longer exists, customers whose number divides by 17 are new since, one customer has left."""
    with duckdb.connect(str(db_path)) as con:
        current = con.sql("SELECT run_id FROM ml_latest_segment_summary LIMIT 1").fetchall()[0][0]
        con.execute(
            "INSERT INTO ml_model_runs BY NAME SELECT * REPLACE ('previous-run' AS run_id, "
            "started_at - INTERVAL 1 DAY AS started_at, finished_at - INTERVAL 1 DAY AS finished_at) "
            "FROM ml_model_runs WHERE run_id = ?",
            [current],
        )
        con.execute(
            "INSERT INTO ml_segments BY NAME SELECT * REPLACE ('previous-run' AS run_id, "
            "CASE WHEN customer_id % 10 = 0 THEN 'S9' ELSE segment_key END AS segment_key) "
            "FROM ml_segments WHERE run_id = ? AND customer_id % 17 <> 0 "
            "UNION ALL BY NAME (SELECT * REPLACE ('previous-run' AS run_id, 99999999 AS customer_id) "
            "FROM ml_segments WHERE run_id = ? AND segment_key = 'S2' LIMIT 1)",
            [current, current],
        )
        con.execute(
            "INSERT INTO ml_segment_summary BY NAME SELECT * REPLACE ('previous-run' AS run_id) "
            "FROM ml_segment_summary WHERE run_id = ? UNION ALL BY NAME SELECT * REPLACE "
            "('previous-run' AS run_id, 'S9' AS segment_key, 'Old Persona' AS persona_name) "
            "FROM ml_segment_summary WHERE run_id = ? AND segment_key = 'S1'",
            [current, current],
        )


def test_migration_counts_customers_between_the_latest_two_runs(own_db: Path) -> None:
    add_previous_run(own_db)
    page = dashboard_page(own_db, "personas")
    moved = page.migration(reader())
    current = sql(own_db, "SELECT run_id FROM ml_latest_segment_summary LIMIT 1").item()
    assert (moved.previous_run, moved.current_run) == ("previous-run", current)

    runs = sql(own_db, "SELECT run_id, customer_id, segment_key FROM ml_segments")
    before = runs.filter(pl.col("run_id") == "previous-run").select("customer_id", previous_key="segment_key")
    after = runs.filter(pl.col("run_id") == current).select("customer_id", current_key="segment_key")
    expected = (
        before.join(after, on="customer_id", how="full", coalesce=True)
        .with_columns(pl.col("previous_key").fill_null("new"), pl.col("current_key").fill_null("gone"))
        .group_by("previous_key", "current_key")
        .agg(customers=pl.len())
    )
    flows = moved.flows.sort("previous_key", "current_key")
    assert flows.rows() == expected.sort("previous_key", "current_key").rows()
    new = sql(own_db, "SELECT count(*) FROM ml_latest_segments WHERE customer_id % 17 = 0").item()
    assert flows.filter(pl.col("previous_key") == "new")["customers"].sum() == new > 0
    assert flows.filter(pl.col("current_key") == "gone")["customers"].to_list() == [1]

    names = page.persona_names(reader())
    sankey = page.migration_figure(moved, names).data[0]
    nodes = list(sankey.node.label)
    assert "S9 · Old Persona" in nodes and {"Not in previous run", "Not in latest run"} <= set(nodes)
    links = zip(sankey.link.source, sankey.link.target, sankey.link.value, strict=True)
    shown = {(nodes[source], nodes[target]): customers for source, target, customers in links}
    words = {"new": "Not in previous run", "gone": "Not in latest run", "S9": "S9 · Old Persona"}
    for previous, current_key, customers in flows.rows():
        pair = (
            words.get(previous) or f"{previous} · {names[previous]}",
            words.get(current_key) or f"{current_key} · {names[current_key]}",
        )
        assert shown[pair] == customers

    both = flows.filter((pl.col("previous_key") != "new") & (pl.col("current_key") != "gone"))
    changed = both.filter(pl.col("previous_key") != pl.col("current_key"))["customers"].sum()
    # Only the customers put in S9 changed: everyone else kept their key.
    moved_to_s9 = "SELECT count(*) FROM ml_latest_segments WHERE customer_id % 10 = 0 AND customer_id % 17 <> 0"
    assert changed == sql(own_db, moved_to_s9).item() > 0
    _profile, sentence = page.show_run_charts(0)
    assert f"{changed:,} of {both['customers'].sum():,} customers" in text_of(sentence)


def test_clicking_a_point_or_a_card_filters_to_that_persona(db: Path) -> None:
    page = dashboard_page(db, "personas")
    chart, _note = page.show_scatter(None, 0)
    trace = chart.figure.data[1]
    # What Plotly sends for a click on the trace's first point.
    click = {"points": [{"curveNumber": 1, "pointNumber": 0, "customdata": trace.customdata[0], "text": trace.text[0]}]}
    assert page.filter_by_point(click) == [trace.customdata[0]] != [chart.figure.data[0].customdata[0]]
    assert page.filter_by_point(None) is dash.no_update
    assert page.filter_by_point({"points": [{"x": 1, "y": 2}]}) is dash.no_update

    def card_click(key: str, clicks: int | None) -> object:
        prop = '{"key":"' + key + '","type":"personas-pick"}.n_clicks'
        token = context_value.set(AttributeDict(triggered_inputs=[{"prop_id": prop, "value": clicks}]))
        try:
            return page.filter_by_card([clicks])
        finally:
            context_value.reset(token)

    assert card_click("S3", 1) == ["S3"]
    assert card_click("S3", None) is dash.no_update  # the cards re-rendered, nobody clicked


def test_an_admin_renames_a_persona_and_the_page_shows_it_at_once(own_db: Path) -> None:
    page = dashboard_page(own_db, "personas")
    with signed_in("admin"):
        assert "personas-save" in ids_in(page.layout())
        model_names = dict(sql(own_db, "SELECT segment_key, persona_name FROM ml_latest_segment_summary").rows())
        assert page.fill_form("S2")[0] == model_names["S2"]
        version, message, options = page.save(1, "S2", "Young Savers", None, 0)
        assert version == 1 and "Saved the name of S2" in text_of(message)
        assert {"value": "S2", "label": "S2 · Young Savers"} in options
        version, message, _ = page.save(2, "S2", "Young Savers", "Starter savings bundle", 1)
        assert version == 2 and "Saved the strategy of S2" in text_of(message)
        version, message, _ = page.save(3, "S2", "   ", None, 2)
        assert version is dash.no_update and "cannot be empty" in text_of(message)

    labels = AppState(state_path(own_db)).persona_labels()
    assert [(x.segment_key, x.persona_name, x.strategy, x.updated_by) for x in labels] == [
        ("S2", "Young Savers", "Starter savings bundle", "alice")
    ]
    cards, _scope = page.show_cards(None, 2)
    card = next(c for c in cards.children if {"type": "personas-pick", "key": "S2"} in ids_in(c))
    assert "Young Savers" in text_of(card) and "Starter savings bundle" in text_of(card)
    chart, _note = page.show_scatter(None, 2)
    assert "S2 · Young Savers" in [trace.name for trace in chart.figure.data]
    heatmap, _sankey = page.show_run_charts(2)
    assert "S2 · Young Savers" in heatmap.figure.data[0].y


def test_a_viewer_cannot_rename(own_db: Path) -> None:
    page = dashboard_page(own_db, "personas")
    with signed_in("viewer", user="bob"):
        shown = page.layout()
        assert "personas-save" not in ids_in(shown)
        assert "Only administrators can rename personas" in text_of(shown)
        version, message, _ = page.save(1, "S2", "Bob's Persona", None, 0)
    assert version is dash.no_update and "Only administrators" in text_of(message)
    assert AppState(state_path(own_db)).persona_labels() == []
    # Outside a signed-in request nobody is an administrator.
    assert page.is_admin() is False
    assert page.save_label(reader(), "S2", "Nobody's", None, None, None)[0] is False


def test_a_warehouse_without_personas_says_so(build: Builder) -> None:
    summary = build("german-credit")
    page = dashboard_page(summary.db_path, "personas")
    shown = page.layout()
    assert isinstance(shown, dbc.Alert)
    assert text_of(shown) == "No personas in this warehouse yet: run `segrisk train segments` to build them."

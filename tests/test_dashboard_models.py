"""The Models page: every run listed, a run's parameters and measures, the PD candidates, importances,
gains and stability exactly as the ml_* tables hold them, and one sentence where there is no PD model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dash_bootstrap_components as dbc
import polars as pl
import pytest
from conftest import Builder, dashboard_page
from dash import dcc, html
from dash_helpers import find, sql, text_of

from models.train import train_rfm


@pytest.fixture(scope="module")
def db(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "demo.duckdb"
    shutil.copyfile(full_db, path)
    return path


def table_rows(table: dbc.Table | html.Div) -> list[list[str]]:
    """The body of a ui.table as lists of cell texts (inside its wrapper when it has a download link)."""
    if not isinstance(table, dbc.Table):
        table = next(child for child in table.children if isinstance(child, dbc.Table))
    _head, body = table.children
    return [[text_of(cell) for cell in row.children] for row in body.children]


def latest_run(db_path: Path, kind: str) -> str:
    return sql(
        db_path, "SELECT run_id FROM ml_model_runs WHERE model_kind = ? ORDER BY finished_at DESC LIMIT 1", [kind]
    ).item()


def test_runs_table_lists_every_run_newest_first(db: Path) -> None:
    page = dashboard_page(db, "models")
    runs = sql(db, "SELECT run_id, model_kind, input_rows FROM ml_model_runs ORDER BY finished_at DESC")
    assert runs.height >= 6  # segments, rfm, risk, warnings, cross-sell, statistics

    rendered = page.layout()
    rows = table_rows(find(rendered, "models-runs").children)
    assert [row[0] for row in rows] == runs.get_column("run_id").to_list()
    assert [row[1] for row in rows] == [k.replace("_", "-") for k in runs.get_column("model_kind")]
    assert [row[4] for row in rows] == [f"{n:,}" for n in runs.get_column("input_rows")]
    assert f"Showing all {runs.height} runs" in text_of(rendered)
    assert [o["value"] for o in find(rendered, "models-run").options] == runs.get_column("run_id").to_list()


def test_runs_table_keeps_to_the_newest(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = dashboard_page(db, "models")
    monkeypatch.setattr(page, "MAX_RUNS", 2)
    newest = sql(db, "SELECT run_id FROM ml_model_runs ORDER BY finished_at DESC LIMIT 2").get_column("run_id")
    total = sql(db, "SELECT count(*) FROM ml_model_runs").item()
    rendered = page.layout()
    assert [row[0] for row in table_rows(find(rendered, "models-runs").children)] == newest.to_list()
    assert f"Showing the 2 newest of {total} runs" in text_of(rendered)


def test_a_run_shows_its_parameters_and_measures(db: Path) -> None:
    page = dashboard_page(db, "models")
    run_id = latest_run(db, "risk")
    stored = sql(db, "SELECT parameters, metrics FROM ml_model_runs WHERE run_id = ?", [run_id]).row(0, named=True)
    parameters, metrics = json.loads(stored["parameters"]), json.loads(stored["metrics"])

    shown_parameters, shown_metrics = page.show_run(run_id)
    parameter_rows = dict(table_rows(shown_parameters.children[0]))
    assert parameter_rows["seed"] == str(parameters["seed"])
    assert parameter_rows["scorecard.base_score"] == page.readable(parameters["scorecard"]["base_score"])
    assert parameter_rows["settings.logistic_c"] == ", ".join(
        page.readable(c) for c in parameters["settings"]["logistic_c"]
    )
    metric_rows = dict(table_rows(shown_metrics.children[0]))
    assert metric_rows["roc_auc"] == f"{metrics['roc_auc']:.4g}" and metric_rows["champion"] == metrics["champion"]
    assert len(metric_rows) == len(page.flatten(metrics))

    missing = page.show_run("no-such-run")[0]
    assert isinstance(missing, dbc.Alert) and missing.children == "No run no-such-run in this warehouse."


def test_risk_candidates_and_measures_are_the_latest_risk_run(db: Path) -> None:
    page = dashboard_page(db, "models")
    run_id = latest_run(db, "risk")
    models = sql(db, "SELECT family, imbalance, cv_auc, role FROM ml_risk_models WHERE run_id = ?", [run_id])
    section = find(page.layout(), "models-risk")
    candidates, measures = [find_tables(col) for col in section.children[2].children]
    rows = table_rows(candidates[0])
    assert sorted((r[0], r[1].replace(" ", "_")) for r in rows) == sorted(models.select("family", "imbalance").rows())
    champion = models.filter(pl.col("role") == "champion").row(0, named=True)
    assert rows[0][:2] == [champion["family"], champion["imbalance"].replace("_", " ")] and rows[0][4] == "champion"

    auc = sql(
        db,
        "SELECT role, family, value FROM ml_risk_metrics WHERE run_id = ? AND metric = 'roc_auc' "
        "ORDER BY role = 'champion' DESC",
        [run_id],
    )
    measure_rows = {row[0]: row[1:] for row in table_rows(measures[0])}
    assert measure_rows["ROC AUC (test)"] == [page.readable(v) for v in auc.get_column("value")]


def find_tables(component: object) -> list[dbc.Table]:
    if isinstance(component, dbc.Table):
        return [component]
    if isinstance(component, list | tuple):
        return [t for child in component for t in find_tables(child)]
    return find_tables(getattr(component, "children", None)) if hasattr(component, "to_plotly_json") else []


def test_importances_figure_is_the_top_rows_of_the_latest_risk_run(db: Path) -> None:
    page = dashboard_page(db, "models")
    top = sql(
        db,
        "SELECT feature, importance, importance_std FROM ml_risk_importances WHERE run_id = ? ORDER BY rank LIMIT 20",
        [latest_run(db, "risk")],
    )
    assert top.height == 20
    graph = find(page.layout(), "models-importances")
    assert isinstance(graph, dcc.Graph)
    bar = graph.figure.data[0]
    assert list(bar.y) == top.get_column("feature").to_list()
    assert list(bar.x) == top.get_column("importance").to_list()
    assert list(bar.error_x.array) == top.get_column("importance_std").to_list()


def test_gains_figure_is_the_gains_table(db: Path) -> None:
    page = dashboard_page(db, "models")
    gains = sql(
        db,
        "SELECT role, band, cumulative_share_of_defaults FROM ml_risk_gains WHERE run_id = ? ORDER BY role, band",
        [latest_run(db, "risk")],
    )
    traces = {t.name.split(" · ")[0]: t for t in find(page.layout(), "models-gains").figure.data}
    for role in ("champion", "challenger"):
        expected = gains.filter(pl.col("role") == role).get_column("cumulative_share_of_defaults").to_list()
        assert list(traces[role].y) == [0.0] + expected and traces[role].x[-1] == pytest.approx(1.0)


def test_stability_figure_is_the_latest_warnings_run(db: Path) -> None:
    page = dashboard_page(db, "models")
    stability = sql(
        db,
        "SELECT variable, psi, status FROM ml_stability WHERE run_id = ? ORDER BY psi DESC, variable",
        [latest_run(db, "warnings")],
    )
    assert stability.height > 10
    figure = find(page.layout(), "models-stability").figure
    bar = figure.data[0]
    assert list(bar.x) == stability.get_column("variable").to_list()
    assert list(bar.y) == stability.get_column("psi").to_list()
    assert list(bar.marker.color) == [page.STATUS_COLOURS[s] for s in stability.get_column("status")]
    assert sorted(shape.y0 for shape in figure.layout.shapes) == [0.1, 0.25]


def test_stability_figure_shows_both_lines_when_a_variable_has_shifted(db: Path) -> None:
    page = dashboard_page(db, "models")
    shifted = pl.DataFrame(
        {"variable": ["income", "score", "age"], "psi": [0.4, 0.12, 0.01], "status": ["red", "amber", "green"]}
    )
    figure = page.stability_figure(shifted)
    assert figure.layout.yaxis.range[1] >= 0.4 and len(figure.layout.annotations) == 2
    assert list(figure.data[0].marker.color) == [page.STATUS_COLOURS[s] for s in ("red", "amber", "green")]
    assert page.stability_caption(shifted).startswith("3 variables: 1 red, 1 amber, 1 green.")


def test_a_dataset_without_a_target_says_there_is_no_pd_model(build: Builder) -> None:
    summary = build("online-retail")
    page = dashboard_page(summary.db_path, "models")
    assert text_of(page.layout()) == "No model has run on this warehouse yet: run `segrisk train all`."

    train_rfm(summary.db_path, seed=42)
    rendered = page.layout()
    shown = text_of(rendered)
    assert "No PD model: this dataset has no default outcome to learn from" in shown
    assert find(rendered, "models-importances") is None and find(rendered, "models-stability") is None
    rfm_run = latest_run(summary.db_path, "rfm")
    assert [row[0] for row in table_rows(find(rendered, "models-runs").children)] == [rfm_run]


def test_readable_values(db: Path) -> None:
    page = dashboard_page(db, "models")
    assert [page.readable(v) for v in (596175.74, 0.85865, 0.0, 42, True, None, 1.2e-8)] == [
        "596,176",
        "0.8587",
        "0",
        "42",
        "yes",
        "–",
        "1.2e-08",
    ]
    assert page.flatten({"a": {"b": 1, "c": []}, "d": ["x", 2], "e": {}}) == [
        ("a.b", "1"),
        ("a.c", "none"),
        ("d", "x, 2"),
        ("e", "none"),
    ]

"""Models: every model run with its parameters and measures, the PD champion and challengers, what
drives the PD model, its gains, and the stability of its inputs.

Everything here reads the small ``ml_*`` tables (a few rows per run), never the customer tables.
"""

from __future__ import annotations

import json

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
import polars as pl
from dash import Input, Output, callback, dcc, html

from dashboard import ui
from dashboard.data import WarehouseReader, reader, register
from warehouse.errors import SegriskError

dash.register_page(__name__, path="/models", name="Models", order=7)

#: Runs listed (newest first): a warehouse retrained daily for years keeps every run.
MAX_RUNS = 50
TOP_FEATURES = 20
#: Values longer than this (sentences) are shown as paragraphs under a run's table.
LONG_VALUE = 120
#: PSI traffic lights, as the warnings run sets them.
PSI_WATCH, PSI_SHIFTED = 0.1, 0.25
STATUS_COLOURS = {"green": "#1a9850", "amber": "#f39c12", "red": "#d73027"}
ROLE_COLOURS = {"champion": "#4477AA", "challenger": "#EE7733"}
#: Measures a risk team reads first, in this order; the rest follow alphabetically.
METRIC_ORDER = ("roc_auc", "gini", "ks", "brier", "brier_base_rate", "log_loss", "cv_auc", "cv_auc_std")
METRIC_LABELS = {
    "roc_auc": "ROC AUC (test)",
    "gini": "Gini (test)",
    "ks": "KS (test)",
    "brier": "Brier score (test)",
    "brier_base_rate": "Brier of the base rate",
    "log_loss": "Log loss (test)",
    "cv_auc": "ROC AUC (cross-validated)",
    "cv_auc_std": "ROC AUC std across folds",
}

register(
    models_objects="SELECT table_name AS name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()",
    models_run_count="SELECT count(*) AS runs FROM ml_model_runs",
    models_runs="SELECT run_id, model_kind, started_at, finished_at, input_rows FROM ml_model_runs "
    "ORDER BY finished_at DESC, run_id DESC LIMIT $limit",
    models_run="SELECT run_id, model_kind, parameters, metrics FROM ml_model_runs WHERE run_id = $run_id",
    models_candidates="SELECT family, imbalance, cv_auc, cv_auc_std, best_params, calibration, role, is_kept "
    "FROM ml_risk_models WHERE run_id = $run_id "
    "ORDER BY list_position(['champion', 'challenger'], role) NULLS LAST, cv_auc DESC",
    models_metrics="SELECT role, family, metric, value FROM ml_risk_metrics WHERE run_id = $run_id "
    "ORDER BY list_position(['champion', 'challenger'], role), family",
    models_importances="SELECT feature, importance, importance_std, rank FROM ml_risk_importances "
    "WHERE run_id = $run_id ORDER BY rank LIMIT $top",
    models_gains="SELECT role, family, band, customers, defaults, cumulative_share_of_defaults, cumulative_lift "
    "FROM ml_risk_gains WHERE run_id = $run_id ORDER BY list_position(['champion', 'challenger'], role), band",
    models_stability="SELECT variable, psi, status, customers FROM ml_stability WHERE run_id = $run_id "
    "ORDER BY psi DESC, variable",
    models_risk_capability="SELECT is_supported, reason FROM meta_capabilities WHERE capability = 'risk_model'",
)


def readable(value: object) -> str:
    """A parameter's or measure's value for people: numbers to four significant digits, big ones whole."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return "0" if value == 0 else f"{value:.4g}"
    return str(value)


def flatten(value: object, prefix: str = "") -> list[tuple[str, str]]:
    """Nested JSON as (dotted key, readable value) rows: ``{"settings": {"cv_folds": 3}}`` ->
    ``("settings.cv_folds", "3")``. Lists of plain values are one comma-separated value."""
    if isinstance(value, dict):
        if not value:
            return [(prefix, "none")] if prefix else []
        rows: list[tuple[str, str]] = []
        for key, inner in value.items():
            rows += flatten(inner, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list):
        if not value:
            return [(prefix, "none")]
        if all(not isinstance(v, dict | list) for v in value):
            return [(prefix, ", ".join(readable(v) for v in value))]
        return [(prefix, json.dumps(value))]
    return [(prefix, readable(value))]


def key_value_table(text: str | None, what: str):
    """A run's parameters or metrics (JSON text) as a two-column table."""
    try:
        parsed = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return html.P(f"The run's {what} are not readable JSON.", className="small text-muted")
    rows = flatten(parsed)
    if not rows:
        return html.P(f"The run recorded no {what}.", className="small text-muted")
    # Sentences (a run's reading of its results) read better as paragraphs than squeezed into a cell.
    short = [(k, v) for k, v in rows if len(v) <= LONG_VALUE]
    notes = [html.P([html.Strong(f"{k}: "), v], className="small") for k, v in rows if len(v) > LONG_VALUE]
    wrap = {"overflowWrap": "anywhere"}  # dotted keys and id lists have no spaces to break at
    table = ui.table(
        [{"key": html.Span(k, style=wrap), "value": html.Span(v, style=wrap)} for k, v in short],
        [("key", "Name"), ("value", "Value")],
    )
    return html.Div([table, *notes])


def run_rows(runs: pl.DataFrame) -> list[dict]:
    rows = []
    for run in runs.iter_rows(named=True):
        started, finished = run["started_at"], run["finished_at"]
        seconds = (finished - started).total_seconds() if started and finished else None
        rows.append(
            {
                "run_id": run["run_id"],
                "model_kind": run["model_kind"].replace("_", "-"),
                "finished_at": f"{finished:%Y-%m-%d %H:%M} UTC" if finished else "–",
                "duration": "–" if seconds is None else f"{seconds:,.1f} s",
                "input_rows": ui.count(run["input_rows"]),
            }
        )
    return rows


def runs_table(runs: pl.DataFrame):
    return ui.table(
        run_rows(runs),
        [
            ("run_id", "Run"),
            ("model_kind", "Model"),
            ("finished_at", "Finished"),
            ("duration", "Took"),
            ("input_rows", "Input rows"),
        ],
        numeric=("duration", "input_rows"),
        download="model-runs.csv",
    )


def candidates_table(candidates: pl.DataFrame):
    rows = [
        {
            "family": row["family"],
            "imbalance": row["imbalance"].replace("_", " "),
            "cv_auc": f"{row['cv_auc']:.3f} ± {row['cv_auc_std']:.3f}" if row["cv_auc_std"] is not None else "",
            "calibration": row["calibration"] or "–",
            "role": html.Strong(row["role"]) if row["role"] == "champion" else (row["role"] or "not kept"),
        }
        for row in candidates.iter_rows(named=True)
    ]
    return ui.table(
        rows,
        [
            ("family", "Family"),
            ("imbalance", "Imbalance handling"),
            ("cv_auc", "CV ROC AUC"),
            ("calibration", "Calibration"),
            ("role", "Role"),
        ],
        numeric=("cv_auc",),
        download="model-candidates.csv",
    )


def metric_sort_key(metric: str) -> tuple[int, str]:
    return (METRIC_ORDER.index(metric), "") if metric in METRIC_ORDER else (len(METRIC_ORDER), metric)


def metrics_table(metrics: pl.DataFrame):
    """Measures as rows, one column per model (champion first)."""
    models = list(dict.fromkeys(metrics.select("role", "family").rows()))
    values = {(role, family, metric): value for role, family, metric, value in metrics.rows()}
    names = sorted(set(metrics.get_column("metric").to_list()), key=metric_sort_key)
    columns = [("metric", "Measure")] + [(f"m{i}", f"{role} · {family}") for i, (role, family) in enumerate(models)]
    rows = [
        {"metric": METRIC_LABELS.get(name, name.replace("_", " "))}
        | {f"m{i}": readable(values.get((role, family, name))) for i, (role, family) in enumerate(models)}
        for name in names
    ]
    return ui.table(rows, columns, numeric=tuple(key for key, _ in columns[1:]), download="model-metrics.csv")


def importance_figure(importances: pl.DataFrame) -> go.Figure:
    """Permutation importances of the champion, most important on top, with their spread over repeats."""
    bar = {
        "type": "bar",
        "orientation": "h",
        "y": importances.get_column("feature").to_list(),
        "x": importances.get_column("importance").to_list(),
        "error_x": {"type": "data", "array": importances.get_column("importance_std").to_list(), "thickness": 1},
        "marker": {"color": ROLE_COLOURS["champion"]},
        "hovertemplate": "%{y}: AUC falls %{x:.4f} when shuffled<extra></extra>",
    }
    # Figures are built from plain dicts (ui.figure): plotly's property-by-property updates cost tens of ms.
    return ui.figure(
        **{
            "data": [bar],
            "layout": {
                "title": {"text": f"What drives the PD: top {importances.height} inputs"},
                "xaxis": {"title": {"text": "Fall in test ROC AUC when the input is shuffled"}},
                "yaxis": {"autorange": "reversed", "automargin": True},
                "height": 140 + 22 * importances.height,
                "margin": {"t": 50, "l": 10, "r": 10},
            },
        }
    )


def gains_figure(gains: pl.DataFrame) -> go.Figure:
    """Cumulative gains of each model on the test part: share of defaulters caught in the riskiest x%."""
    traces = []
    for (role, family), part in gains.group_by("role", "family", maintain_order=True):
        customers = part.get_column("customers").cum_sum()
        share = (customers / customers[-1]).to_list() if customers.len() else []
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": [0.0] + share,
                "y": [0.0] + part.get_column("cumulative_share_of_defaults").to_list(),
                "customdata": [None] + part.get_column("cumulative_lift").to_list(),
                "name": f"{role} · {family}",
                "line": {"color": ROLE_COLOURS.get(str(role), "#888888")},
                "hovertemplate": "riskiest %{x:.0%}: %{y:.0%} of defaulters (lift %{customdata:.2f})<extra></extra>",
            }
        )
    traces.append(
        {
            "type": "scatter",
            "mode": "lines",
            "x": [0, 1],
            "y": [0, 1],
            "name": "random",
            "line": {"dash": "dot", "color": "#999999"},
        }
    )
    return ui.figure(
        **{
            "data": traces,
            "layout": {
                "title": {"text": "Cumulative gains (test part)"},
                "xaxis": {"title": {"text": "Share of customers, riskiest first"}, "tickformat": ".0%"},
                "yaxis": {"title": {"text": "Share of defaulters caught"}, "tickformat": ".0%"},
                "legend": {"orientation": "h", "y": -0.2},
                "margin": {"t": 50},
            },
        }
    )


def stability_figure(stability: pl.DataFrame) -> go.Figure:
    """PSI of every model input (and the score), coloured by traffic light, with the 0.1 and 0.25 lines."""
    psi = stability.get_column("psi").to_list()
    statuses = stability.get_column("status").to_list()
    bar = {
        "type": "bar",
        "x": stability.get_column("variable").to_list(),
        "y": psi,
        "marker": {"color": [STATUS_COLOURS.get(s, "#888888") for s in statuses]},
        "customdata": statuses,
        "hovertemplate": "%{x}: PSI %{y:.4f} (%{customdata})<extra></extra>",
    }
    largest = max((p for p in psi if p is not None), default=0.0)
    # When every input is stable the bars would be invisible under the 0.1 line: zoom to the data
    # (the caption says so) rather than draw an empty-looking chart.
    top = max(largest * 1.1, PSI_SHIFTED * 1.1) if largest >= PSI_WATCH else max(largest * 1.15, 1e-6)
    lines = [(PSI_WATCH, "0.1 watch"), (PSI_SHIFTED, "0.25 shifted")]
    return ui.figure(
        **{
            "data": [bar],
            "layout": {
                "title": {"text": "Population stability of the PD model's inputs (latest warnings run)"},
                "yaxis": {"title": {"text": "PSI"}, "range": [0, top]},
                "xaxis": {"tickangle": -45, "automargin": True},
                "shapes": [
                    {
                        "type": "line",
                        "xref": "paper",
                        "x0": 0,
                        "x1": 1,
                        "y0": level,
                        "y1": level,
                        "line": {"color": "#555555", "dash": "dash", "width": 1},
                    }
                    for level, _ in lines
                ],
                "annotations": [
                    {
                        "xref": "paper",
                        "x": 0,
                        "y": level,
                        "text": label,
                        "showarrow": False,
                        "xanchor": "left",
                        "yanchor": "bottom",
                    }
                    for level, label in lines
                    if level <= top
                ],
                "height": 480,
                "margin": {"t": 50, "b": 10},
            },
        }
    )


def stability_caption(stability: pl.DataFrame) -> str:
    counts = dict(stability.group_by("status").len().rows())
    parts = [f"{counts[s]} {s}" for s in ("red", "amber", "green") if counts.get(s)]
    worst = stability.row(0, named=True)
    sentence = (
        f"{stability.height} variables: {', '.join(parts)}. Largest PSI {worst['psi']:.4f} ({worst['variable']})."
    )
    if worst["psi"] < PSI_WATCH:
        sentence += " Every input is below the 0.1 watch line, so the axis is zoomed to the data."
    return sentence


def risk_unavailable(data: WarehouseReader, objects: set[str]) -> str | None:
    """Why there is no PD model to show, in one sentence; None when there is one."""
    if {"ml_risk_models", "ml_model_runs"} <= objects and data.query("latest_run", kind="risk").height:
        return None
    if "meta_capabilities" in objects:
        capability = data.query("models_risk_capability")
        if capability.height and not capability.item(0, "is_supported"):
            return (
                "No PD model: this dataset has no default outcome to learn from, so there are no risk models, "
                "importances, gains or stability checks."
            )
    return "The PD model has not been trained on this warehouse yet: run `segrisk train risk`."


def risk_section(data: WarehouseReader, objects: set[str], reason: str | None) -> html.Div:
    title = html.H3("PD model", className="h5 mt-4")
    if reason:
        return html.Div([title, ui.unavailable(reason)], id="models-risk")
    run = data.query("latest_run", kind="risk").row(0, named=True)
    run_id = run["run_id"]
    candidates = data.query("models_candidates", run_id=run_id)
    metrics = data.query("models_metrics", run_id=run_id)
    importances = data.query("models_importances", run_id=run_id, top=TOP_FEATURES)
    gains = data.query("models_gains", run_id=run_id) if "ml_risk_gains" in objects else pl.DataFrame()
    champion = candidates.filter(pl.col("role") == "champion")
    summary = f"Latest risk run {run_id}, finished {run['finished_at']:%Y-%m-%d %H:%M} UTC"
    if champion.height:
        best = champion.row(0, named=True)
        summary += (
            f": the champion is {best['family']} ({best['imbalance'].replace('_', ' ')}, "
            f"{best['calibration'] or 'no'} calibration)."
        )
    charts = [
        dbc.Col(
            dcc.Graph(figure=importance_figure(importances), id="models-importances")
            if importances.height
            else ui.unavailable("The risk run recorded no feature importances."),
            lg=6,
        ),
        dbc.Col(
            dcc.Graph(figure=gains_figure(gains), id="models-gains")
            if gains.height
            else ui.unavailable("The risk run recorded no gains table."),
            lg=6,
        ),
    ]
    return html.Div(
        [
            title,
            html.P(summary),
            dbc.Row(
                [
                    dbc.Col([html.H4("Candidates", className="h6"), candidates_table(candidates)], lg=6),
                    dbc.Col([html.H4("Measures by model", className="h6"), metrics_table(metrics)], lg=6),
                ]
            ),
            dbc.Row(charts, className="mt-3"),
        ],
        id="models-risk",
    )


def stability_section(data: WarehouseReader, objects: set[str], has_risk: bool) -> html.Div:
    title = html.H3("Stability", className="h5 mt-4")
    if not has_risk:
        return html.Div()
    warnings_run = data.query("latest_run", kind="warnings") if "ml_stability" in objects else pl.DataFrame()
    if not warnings_run.height:
        return html.Div(
            [title, ui.unavailable("No stability check yet: `segrisk train warnings` computes it after a risk run.")]
        )
    stability = data.query("models_stability", run_id=warnings_run.item(0, "run_id"))
    if not stability.height:
        return html.Div([title, ui.unavailable("The latest warnings run recorded no stability measures.")])
    return html.Div(
        [
            title,
            html.P(stability_caption(stability), className="mb-1"),
            dcc.Graph(figure=stability_figure(stability), id="models-stability"),
        ]
    )


def layout(**_query: str) -> html.Div:
    try:
        data = reader()
        objects = set(data.query("models_objects").get_column("name").to_list())
        if "ml_model_runs" not in objects:
            return ui.unavailable("No model has run on this warehouse yet: run `segrisk train all`.")
        total = data.query("models_run_count").item()
        runs = data.query("models_runs", limit=MAX_RUNS)
        no_risk = risk_unavailable(data, objects)
        risk = risk_section(data, objects, no_risk)
        stability = stability_section(data, objects, has_risk=no_risk is None)
    except SegriskError as exc:
        return ui.failed(exc)
    if runs.height == 0:
        return ui.unavailable("No model has run on this warehouse yet: run `segrisk train all`.")
    shown = f"the {runs.height} newest of {total:,}" if total > runs.height else f"all {total}"
    options = [
        {"value": r["run_id"], "label": f"{r['model_kind'].replace('_', '-')} · {r['run_id']}"}
        for r in runs.iter_rows(named=True)
    ]
    return html.Div(
        [
            html.H2("Models", className="h4 mb-3"),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            html.H3("Runs", className="h5"),
                            html.P(f"Showing {shown} runs, newest first."),
                            html.Div(runs_table(runs), id="models-runs"),
                        ],
                        lg=6,
                    ),
                    dbc.Col(
                        [
                            html.H3("Run details", className="h5"),
                            dcc.Dropdown(id="models-run", options=options, value=options[0]["value"], clearable=False),
                            dcc.Loading(
                                html.Div(
                                    [
                                        html.H4("Parameters", className="h6 mt-3"),
                                        html.Div(id="models-parameters"),
                                        html.H4("Measures", className="h6 mt-3"),
                                        html.Div(id="models-metrics"),
                                    ]
                                )
                            ),
                        ],
                        lg=6,
                    ),
                ]
            ),
            risk,
            stability,
        ]
    )


@callback(
    Output("models-parameters", "children"),
    Output("models-metrics", "children"),
    Input("models-run", "value"),
)
def show_run(run_id: str | None):
    if not run_id:
        return None, None
    try:
        run = reader().query("models_run", run_id=run_id)
    except SegriskError as exc:
        return ui.failed(exc), None
    if run.height == 0:
        return ui.unavailable(f"No run {run_id} in this warehouse."), None
    row = run.row(0, named=True)
    return key_value_table(row["parameters"], "parameters"), key_value_table(row["metrics"], "measures")

"""Risk and policy: the model's measures, the grades, and the approval-policy simulator.

The simulator evaluates a policy over every scored customer on each slider move. The scored
population is loaded into memory once per warehouse file (about 2 s at a million customers) and
each evaluation then takes tens of milliseconds; a retrain swaps the file and the next move
loads the new scores.
"""

from __future__ import annotations

import threading

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
import polars as pl
from dash import Input, Output, callback, dcc, html

from dashboard import disclosure, filters, ui
from dashboard.data import WarehouseReader, reader, register
from models.policy import Policy, PolicyCells, PolicyPopulation
from warehouse.errors import SegriskError

dash.register_page(__name__, path="/risk", name="Risk & policy", order=2)

_CACHE: dict[str, object] = {}
_CACHE_LOCK = threading.Lock()


def population(data: WarehouseReader) -> tuple[Policy, PolicyPopulation]:
    """The current policy and scored population, loaded once per warehouse file."""
    stamp = data.stamp()
    with _CACHE_LOCK:
        if _CACHE.get("stamp") != stamp or _CACHE.get("path") != data.path:
            # Imported here: it pulls in the model-training stack (a second or two), which the
            # report, drawing this page's figures from the command line, does not need.
            from models.policy_actions import load_population

            policy, loaded = load_population(data.path)
            _CACHE.update(stamp=stamp, path=data.path, policy=policy, population=loaded, cells=None)
        return _CACHE["policy"], _CACHE["population"]  # type: ignore[return-value]


def cells(data: WarehouseReader) -> PolicyCells:
    """The population folded for whole-point what-ifs on the current policy's rules, once per file."""
    policy, loaded = population(data)
    with _CACHE_LOCK:
        if _CACHE.get("cells") is None or _CACHE.get("cells_of") is not loaded:
            _CACHE.update(cells=PolicyCells.fold(loaded, policy.rules), cells_of=loaded)
        return _CACHE["cells"]  # type: ignore[return-value]


def simulate(data: WarehouseReader, decline_below: float, approve_min: float, toggles: list[str]) -> dict:
    """The policy with these cut-offs and rule toggles, evaluated: overall and by persona."""
    policy, loaded = population(data)
    rules = [rule.model_copy(update={"enabled": f"rule:{i}" in toggles}) for i, rule in enumerate(policy.rules)]
    changed = policy.model_copy(
        update={
            "decline_below_score": min(decline_below, approve_min),
            "approve_min_score": max(decline_below, approve_min),
            "review_flagged_personas": "personas" in toggles,
            "rules": rules,
        }
    )
    # The slider moves in whole points: the folded cells answer in well under a millisecond at a
    # million customers; other cut-offs (a saved policy's own) evaluate every customer.
    summary = cells(data).summarize(changed)
    if summary is not None:
        overall, by_persona = summary
        return {"overall": overall, "by_persona": by_persona}
    outcome = loaded.evaluate(changed)
    return {"overall": outcome.overall, "by_persona": outcome.by_persona}


def curves_figure(data: WarehouseReader) -> go.Figure:
    curves = data.query("champion_curves")
    traces = []
    for curve, name in (("roc", "ROC"), ("calibration", "Calibration")):
        points = curves.filter(curves.get_column("curve") == curve)
        traces.append(
            {
                "type": "scatter",
                "x": points.get_column("x").to_list(),
                "y": points.get_column("y").to_list(),
                "name": name,
                "mode": "lines" if curve == "roc" else "lines+markers",
            }
        )
    traces.append(
        {"type": "scatter", "x": [0, 1], "y": [0, 1], "name": "Chance / perfect calibration", "line": {"dash": "dot"}}
    )
    layout = {
        "title": {"text": "ROC and calibration (test part)"},
        "xaxis": {"title": {"text": "False-positive rate (ROC) / predicted PD (calibration)"}},
        "yaxis": {"title": {"text": "True-positive rate (ROC) / observed default rate (calibration)"}},
        "margin": {"t": 50},
    }
    return ui.figure(traces, layout)


register(
    risk_score_bands="SELECT floor(p.score / 10) * 10 AS score_band, p.grade, count(*) AS customers "
    f"FROM mart_customer_profile p WHERE {filters.FILTERED} AND p.score IS NOT NULL GROUP BY ALL ORDER BY ALL",
)


def score_figure(bands: pl.DataFrame, caption: str) -> go.Figure:
    """Customers by 10-point score band, stacked by grade, under the global filters."""
    bars = []
    for grade, colour in ui.GRADE_COLOURS.items():
        part = bands.filter(pl.col("grade") == grade)
        if part.height:
            bars.append(
                {
                    "type": "bar",
                    "x": part.get_column("score_band").to_list(),
                    "y": part.get_column("customers").to_list(),
                    "name": f"Grade {grade}",
                    "marker": {"color": colour},
                    "hovertemplate": "Score band from %{x}: %{y:,} customers<extra>Grade " + grade + "</extra>",
                }
            )
    layout = {
        "barmode": "stack",
        "title": {"text": f"Score distribution ({caption})"},
        "xaxis": {"title": {"text": "Score (10-point bands)"}},
        "yaxis": {"title": {"text": "Customers"}},
        "margin": {"t": 50},
    }
    return ui.figure(bars, layout)


def cutoff_slider(slider_id: str, value: float) -> dcc.Slider:
    return dcc.Slider(id=slider_id, min=400, max=700, step=1, value=value, marks=None, tooltip={"always_visible": True})


def layout(**_query: str) -> html.Div:
    try:
        data = reader()
        if not data.has("ml_latest_risk_scores"):
            return ui.unavailable(
                "No PD model in this warehouse: it has no default outcome, or `segrisk train risk` has not run."
            )
        policy, _ = population(data)
        metrics = dict(data.query("champion_metrics").rows())
        # The whole book, but a grade of too few customers (a small bank's best grade) is a small cell too.
        grades, hidden_grades = disclosure.suppress(data.query("grades"), ["mean_pd", "observed_default_rate"])
        run = data.query("latest_run", kind="risk").row(0, named=True)
        curves = curves_figure(data)
    except SegriskError as exc:
        return ui.unavailable(str(exc))
    toggles = [{"label": "Personas flagged for manual underwriting", "value": "personas"}] + [
        {"label": rule.describe(), "value": f"rule:{i}"} for i, rule in enumerate(policy.rules)
    ]
    on = ["personas"] if policy.review_flagged_personas else []
    on += [f"rule:{i}" for i, rule in enumerate(policy.rules) if rule.enabled]
    cards = [
        ui.headline(
            "Test ROC AUC", f"{metrics.get('roc_auc', float('nan')):.3f}", f"Gini {metrics.get('gini', 0):.3f}"
        ),
        ui.headline("KS", f"{metrics.get('ks', float('nan')):.3f}"),
        ui.headline(
            "Brier", f"{metrics.get('brier', float('nan')):.4f}", f"base rate {metrics.get('brier_base_rate', 0):.4f}"
        ),
    ]
    grade_table = ui.table(
        [
            {
                "grade": row["grade"],
                "customers": ui.count(row["customers"]),
                "share": ui.percent(row["share"]),
                "mean_pd": ui.percent(row["mean_pd"], 2),
                "observed": ui.percent(row["observed_default_rate"], 2),
            }
            for row in grades.iter_rows(named=True)
        ],
        [
            ("grade", "Grade"),
            ("customers", "Customers"),
            ("share", "Share"),
            ("mean_pd", "Mean PD"),
            ("observed", "Observed default rate"),
        ],
        numeric=("customers", "share", "mean_pd", "observed"),
        download="risk-grades.csv",
    )
    simulator = dbc.Card(
        dbc.CardBody(
            [
                html.H3("Policy simulator", className="h5"),
                html.Label("Decline below score"),
                cutoff_slider("risk-decline", policy.decline_below_score),
                html.Label("Auto-approve at or above score"),
                cutoff_slider("risk-approve", policy.approve_min_score),
                dcc.Checklist(
                    id="risk-rules", options=toggles, value=on, className="my-2", inputStyle={"marginRight": "0.4rem"}
                ),
                dcc.Loading(html.Div(id="risk-outcome")),
            ]
        )
    )
    return html.Div(
        [
            html.H2("Risk & policy", className="h4 mb-1"),
            html.P(
                f"Model run {run['run_id']}, trained {run['finished_at']:%Y-%m-%d %H:%M} UTC.",
                id="risk-run",
                className="small text-muted",
            ),
            dbc.Row([dbc.Col(card, md=2, sm=4, className="mb-3") for card in cards]),
            dbc.Row(
                [
                    dbc.Col(dcc.Loading(html.Div(id="risk-scores")), md=6),
                    dbc.Col(dcc.Graph(figure=curves), md=6),
                ]
            ),
            dbc.Row(
                [dbc.Col([grade_table, disclosure.note(hidden_grades)], md=5), dbc.Col(simulator, md=7)],
                className="mt-3",
            ),
        ]
    )


@callback(
    Output("risk-outcome", "children"),
    Input("risk-decline", "value"),
    Input("risk-approve", "value"),
    Input("risk-rules", "value"),
)
def show_outcome(decline_below: float, approve_min: float, toggles: list[str] | None) -> html.Div:
    try:
        result = simulate(reader(), float(decline_below), float(approve_min), toggles or [])
    except SegriskError as exc:
        return ui.unavailable(str(exc))
    overall = result["overall"]
    by_persona, hidden = _hide_small_personas(result["by_persona"])
    cards = [
        ui.headline("Automation rate", ui.percent(overall["automation_rate"])),
        ui.headline("Approval rate", ui.percent(overall["approval_rate"])),
        ui.headline("Expected default rate (approved)", ui.percent(overall["expected_default_rate_approved"], 2)),
        ui.headline("Expected loss (approved)", ui.money(overall["expected_loss_approved"])),
    ]
    rows = [
        {
            "persona": row["persona_name"],
            "customers": ui.count(row["customers"]),
            "automated": ui.percent(row["automation_rate"]),
            "approved": ui.percent(row["approval_rate"]),
            "review": ui.percent(row["review_rate"]),
            "expected_default_rate": ui.percent(row["expected_default_rate_approved"], 2),
            "expected_loss": ui.money(row["expected_loss_approved"]),
        }
        for row in by_persona
    ]
    return html.Div(
        [
            dbc.Row([dbc.Col(card, md=3, className="mb-2") for card in cards]),
            ui.table(
                rows,
                [
                    ("persona", "Persona"),
                    ("customers", "Customers"),
                    ("automated", "Automated"),
                    ("approved", "Approved"),
                    ("review", "Review"),
                    ("expected_default_rate", "Exp. default rate"),
                    ("expected_loss", "Exp. loss"),
                ],
                numeric=("customers", "automated", "approved", "review", "expected_default_rate", "expected_loss"),
                download="policy-by-persona.csv",
            ),
            disclosure.note(hidden),
        ],
        id="risk-outcome-figures",
    )


def _hide_small_personas(by_persona: list[dict]) -> tuple[list[dict], int]:
    """The simulator's rows per persona without the rates and losses of a persona of too few customers
    for a viewer."""
    if not by_persona:
        return by_persona, 0
    frame, hidden = disclosure.suppress(
        pl.DataFrame(by_persona, infer_schema_length=None),
        ["automation_rate", "approval_rate", "review_rate", "expected_default_rate_approved", "expected_loss_approved"],
    )
    return (frame.to_dicts() if hidden else by_persona), hidden


@callback(Output("risk-scores", "children"), Input("filters", "data"))
def show_scores(global_filters: dict | None):
    try:
        bands = reader().query("risk_score_bands", **filters.params(global_filters))
    except SegriskError as exc:
        return ui.failed(exc)
    if bands.height == 0:
        return ui.unavailable("No scored customers match the current filters.")
    return dcc.Graph(id="risk-score-chart", figure=score_figure(bands, filters.describe(global_filters)))

"""Overview: the headline figures of the book and the charts that tell its story, under the global filters.

Clicking a grade bar or a persona bar filters every page to it (cross-filtering through the global
filter bar).
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
import polars as pl
from dash import Input, Output, callback, dcc, html, no_update

from dashboard import disclosure, filters, ui
from dashboard.data import WarehouseReader, reader, register
from dashboard.state import acknowledged_ids, persona_names
from warehouse.errors import SegriskError

dash.register_page(__name__, path="/", name="Overview", order=0)

register(
    # Counts and rates come from the customer cube (some 30,000 rows at a million customers).
    overview_figures="SELECT coalesce(sum(p.customers), 0)::BIGINT AS customers, "
    "sum(p.defaulted) / nullif(sum(p.known_outcomes), 0) AS default_rate, "
    "sum(p.automated) / nullif(sum(p.decided), 0) AS automation_rate, "
    "sum(p.approved) / nullif(sum(p.decided), 0) AS approval_rate, "
    "sum(p.open_alerts) AS open_alerts, sum(p.pd_sum) / nullif(sum(p.scored), 0) AS mean_pd "
    f"FROM {filters.CUBE} p WHERE {filters.FILTERED}",
    # Acknowledged on the dashboard since the last model run: not yet in the profile's counts.
    overview_acknowledged_since="SELECT count(*) AS n FROM ml_latest_alerts a JOIN mart_customer_profile p "
    f"USING (customer_id) WHERE {filters.FILTERED} AND NOT a.is_acknowledged "
    "AND list_contains($acknowledged, a.alert_id)",
    overview_grades="SELECT p.grade, sum(p.customers)::BIGINT AS customers, "
    "sum(p.defaulted) / nullif(sum(p.known_outcomes), 0) AS observed_default_rate "
    f"FROM {filters.CUBE} p WHERE {filters.FILTERED} AND p.grade <> 'unscored' GROUP BY ALL ORDER BY ALL",
    overview_personas="SELECT p.persona_key, sum(p.customers)::BIGINT AS customers, "
    "sum(p.pd_sum) / nullif(sum(p.scored), 0) AS mean_pd "
    f"FROM {filters.CUBE} p WHERE {filters.FILTERED} AND p.persona_key <> 'unassigned' "
    "GROUP BY ALL ORDER BY ALL",
)


def headline_figures(
    data: WarehouseReader, global_filters: dict | None = None, personas: pl.DataFrame | None = None
) -> dict[str, float | int | None]:
    """Customers, personas, default rate, automation rate, open alerts and expected loss (None when absent).

    ``personas``: the persona breakdown under the same filters, when the caller has it already."""
    params = filters.params(global_filters)
    row = data.query("overview_figures", **params).row(0, named=True)
    if personas is None:
        personas = data.query("overview_personas", **params)
    figures: dict[str, float | int | None] = {
        "customers": row["customers"],
        "personas": personas.height or None,
        "default_rate": row["default_rate"],
        "automation_rate": row["automation_rate"],
        "approval_rate": row["approval_rate"],
        "expected_loss": None,
        "open_alerts": None,
    }
    if data.has("ml_policy_evaluations") and not filters.is_filtered(global_filters):
        policy = data.query("policy_overall")
        figures["expected_loss"] = policy.item(0, "expected_loss_approved") if policy.height else None
    if data.has("ml_latest_alerts"):
        acknowledged = acknowledged_ids(data)
        # Skip the join when nothing was acknowledged since the last run (the usual case).
        since = (
            data.query("overview_acknowledged_since", **params, acknowledged=acknowledged).item() if acknowledged else 0
        )
        figures["open_alerts"] = int(row["open_alerts"] or 0) - int(since)
    return figures


def grade_figure(grades: pl.DataFrame) -> go.Figure:
    bars = {
        "type": "bar",
        "x": grades.get_column("grade").to_list(),
        "y": grades.get_column("customers").to_list(),
        "marker": {"color": [ui.GRADE_COLOURS.get(g, "#888") for g in grades.get_column("grade")]},
        # Formatted here: a rate hidden from a viewer (a grade of too few customers) shows as "–".
        "customdata": [[ui.percent(rate)] for rate in grades.get_column("observed_default_rate").to_list()],
        "hovertemplate": "Grade %{x}: %{y:,} customers, observed default rate %{customdata[0]}<extra></extra>",
    }
    layout = {
        "title": {"text": "Customers by risk grade (click a bar to filter)"},
        "xaxis": {"title": {"text": "Grade (A best)"}},
        "yaxis": {"title": {"text": "Customers"}},
        "margin": {"t": 50},
    }
    return ui.figure([bars], layout)


def persona_figure(personas: pl.DataFrame, names: dict[str, str]) -> go.Figure:
    keys = personas.get_column("persona_key").to_list()
    bars = {
        "type": "bar",
        "y": [f"{names.get(k, k)} ({k})" for k in keys],
        "x": personas.get_column("customers").to_list(),
        "orientation": "h",
        "marker": {"color": [ui.persona_colour(k) for k in keys]},
        "customdata": [[k] for k in keys],
        "hovertemplate": "%{y}: %{x:,} customers<extra></extra>",
    }
    layout = {
        "title": {"text": "Customers by persona (click a bar to filter)"},
        "xaxis": {"title": {"text": "Customers"}},
        "yaxis": {"autorange": "reversed", "automargin": True},
        "margin": {"t": 50, "l": 10},
    }
    return ui.figure([bars], layout)


def layout(**_query: str) -> html.Div:
    return html.Div(
        [
            html.H2("Overview", className="h4 mb-3"),
            dcc.Loading(html.Div(id="overview-cards"), delay_show=300),
            dbc.Row(
                [
                    dbc.Col(dcc.Graph(id="overview-grades", style={"display": "none"}), md=6),
                    dbc.Col(dcc.Graph(id="overview-personas", style={"display": "none"}), md=6),
                ]
            ),
            html.Div(id="overview-notes"),
        ]
    )


HIDDEN, SHOWN = {"display": "none"}, {}


@callback(
    Output("overview-cards", "children"),
    Output("overview-grades", "figure"),
    Output("overview-grades", "style"),
    Output("overview-personas", "figure"),
    Output("overview-personas", "style"),
    Output("overview-notes", "children"),
    Input("filters", "data"),
)
def show_overview(global_filters: dict | None):
    try:
        data = reader()
        if not data.has(filters.CUBE):
            return (
                ui.outdated(filters.CUBE, "segrisk train all"),
                *([no_update, HIDDEN] * 2),
                None,
            )
        params = filters.params(global_filters)
        personas = data.query("overview_personas", **params)
        figures = headline_figures(data, global_filters, personas)
        grades = data.query("overview_grades", **params)
        # A viewer sees no grade's observed default rate, nor a persona's mean PD, under 5 customers.
        grades, hidden_grades = disclosure.suppress(grades, ["observed_default_rate"])
        personas, hidden_personas = disclosure.suppress(personas, ["mean_pd"])
        names = persona_names(data)
    except SegriskError as exc:
        return ui.failed(exc), no_update, HIDDEN, no_update, HIDDEN, None
    scope = "whole book" if filters.is_filtered(global_filters) else "approved book"
    cards = [
        ui.headline("Customers", ui.count(figures["customers"]), filters.describe(global_filters)),
        ui.headline("Personas", ui.count(figures["personas"]), "" if figures["personas"] else "not trained"),
        ui.headline("Default rate", ui.percent(figures["default_rate"]), "observed"),
        ui.headline("Automation rate", ui.percent(figures["automation_rate"]), "current policy"),
        ui.headline("Open alerts", ui.count(figures["open_alerts"])),
        ui.headline(
            "Expected loss",
            ui.money(figures["expected_loss"]),
            scope if figures["expected_loss"] is not None else "whole book only, unfiltered",
        ),
    ]
    row = dbc.Row([dbc.Col(card, md=2, sm=4, xs=6, className="mb-3") for card in cards])
    notes = [disclosure.note(hidden_grades + hidden_personas)]
    if grades.height == 0:
        notes.append(
            ui.unavailable("No PD model yet: this dataset has no default outcome, or `segrisk train risk` has not run.")
        )
    return (
        row,
        grade_figure(grades) if grades.height else no_update,
        SHOWN if grades.height else HIDDEN,
        persona_figure(personas, names) if personas.height else no_update,
        SHOWN if personas.height else HIDDEN,
        notes,
    )


@callback(
    Output("filter-grade", "value", allow_duplicate=True),
    Input("overview-grades", "clickData"),
    prevent_initial_call=True,
)
def filter_by_grade(click: dict | None):
    if not click or not click.get("points"):
        return no_update
    return [click["points"][0]["x"]]


@callback(
    Output("filter-persona", "value", allow_duplicate=True),
    Input("overview-personas", "clickData"),
    prevent_initial_call=True,
)
def filter_by_persona(click: dict | None):
    if not click or not click.get("points"):
        return no_update
    return [click["points"][0]["customdata"][0]]

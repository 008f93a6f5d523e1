"""Overview: the headline figures of the book and the two charts that tell its story."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import dcc, html

from dashboard import ui
from dashboard.data import WarehouseReader, reader
from warehouse.app_state import AppState, state_path
from warehouse.errors import WarehouseError

dash.register_page(__name__, path="/", name="Overview", order=0)


def headline_figures(data: WarehouseReader) -> dict[str, float | int | None]:
    """Customers, personas, default rate, automation rate, open alerts and expected loss (None when absent)."""
    figures: dict[str, float | int | None] = {"customers": data.query("customers_count").item()}
    capabilities = dict(data.query("capabilities").select("capability", "is_supported").rows())
    figures["default_rate"] = data.query("default_rate").item() if capabilities.get("risk_model") else None
    figures["personas"] = data.query("persona_sizes").height if data.has("ml_latest_segment_summary") else None
    policy = data.query("policy_overall") if data.has("ml_policy_evaluations") else None
    has_policy = policy is not None and policy.height > 0
    figures["automation_rate"] = policy.item(0, "automation_rate") if has_policy else None
    figures["expected_loss"] = policy.item(0, "expected_loss_approved") if has_policy else None
    if data.has("ml_latest_alerts"):
        acknowledged = AppState(state_path(data.path)).acknowledged_ids()
        open_ids = set(data.query("open_alert_ids").get_column("alert_id").to_list())
        figures["open_alerts"] = len(open_ids - acknowledged)
    else:
        figures["open_alerts"] = None
    return figures


def grade_figure(data: WarehouseReader) -> go.Figure | None:
    if not data.has("ml_risk_grades"):
        return None
    grades = data.query("grades")
    figure = go.Figure(
        go.Bar(
            x=grades.get_column("grade").to_list(),
            y=grades.get_column("customers").to_list(),
            marker_color=[ui.GRADE_COLOURS.get(g, "#888") for g in grades.get_column("grade")],
            customdata=grades.select("observed_default_rate").to_numpy(),
            hovertemplate="Grade %{x}: %{y:,} customers, observed default rate %{customdata[0]:.1%}<extra></extra>",
        )
    )
    figure.update_layout(
        title="Customers by risk grade", xaxis_title="Grade (A best)", yaxis_title="Customers", margin=dict(t=50)
    )
    return figure


def persona_figure(data: WarehouseReader) -> go.Figure | None:
    if not data.has("ml_latest_segment_summary"):
        return None
    personas = data.query("persona_sizes")
    figure = go.Figure(
        go.Bar(
            y=personas.get_column("persona_name").to_list(),
            x=personas.get_column("customers").to_list(),
            orientation="h",
            hovertemplate="%{y}: %{x:,} customers<extra></extra>",
        )
    )
    figure.update_layout(title="Customers by persona", xaxis_title="Customers", margin=dict(t=50, l=10))
    figure.update_yaxes(autorange="reversed", automargin=True)
    return figure


def layout(**_query: str) -> html.Div:
    try:
        data = reader()
        figures = headline_figures(data)
        charts = [grade_figure(data), persona_figure(data)]
    except WarehouseError as exc:
        return ui.unavailable(str(exc))
    cards = [
        ui.headline("Customers", ui.count(figures["customers"])),
        ui.headline("Personas", ui.count(figures["personas"]), "" if figures["personas"] else "not trained"),
        ui.headline("Default rate", ui.percent(figures["default_rate"]), "observed"),
        ui.headline("Automation rate", ui.percent(figures["automation_rate"]), "current policy"),
        ui.headline("Open alerts", ui.count(figures["open_alerts"])),
        ui.headline("Expected loss", ui.money(figures["expected_loss"]), "approved book"),
    ]
    body = [dbc.Row([dbc.Col(card, md=2, sm=4, xs=6, className="mb-3") for card in cards])]
    shown = [dbc.Col(dcc.Graph(figure=chart), md=6) for chart in charts if chart is not None]
    if shown:
        body.append(dbc.Row(shown))
    if charts[0] is None:
        body.append(
            ui.unavailable("No PD model yet: this dataset has no default outcome, or `segrisk train risk` has not run.")
        )
    return html.Div([html.H2("Overview", className="h4 mb-3"), *body])

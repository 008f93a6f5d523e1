"""Early warnings: the alerts of the latest run, counted by rule and over time, paged, acknowledged.

Alerts are read from ``mart_alerts``, which carries each customer's filter dimensions, so the
global filters apply without a join. An acknowledgement goes
to the application-state store at once and shows here at once; the warehouse gets it at the next
model run.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
import polars as pl
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from dashboard import disclosure, filters, ui
from dashboard.auth import audit, can, current_user, refusal
from dashboard.data import WarehouseReader, reader, register
from dashboard.filters import register_scoped
from dashboard.paged import Column, PagedTable
from dashboard.state import AcknowledgementRefused, acknowledged_ids
from dashboard.state import acknowledge as record_acknowledgement
from warehouse.app_state import MAX_ALERT_ID
from warehouse.errors import SegriskError
from warehouse.history import latest_run_of

dash.register_page(__name__, path="/warnings", name="Early warnings", order=3)

#: Alerts under the global filters and this page's own (rule, severity, open or all).
ALERTS = (
    f"FROM mart_alerts a WHERE a.in_latest_run AND {filters.condition('a')} "
    "AND (len($rules) = 0 OR list_contains($rules, a.rule)) "
    "AND (len($severities) = 0 OR list_contains($severities, a.severity)) "
    "AND ($status = 'all' OR NOT (a.is_acknowledged OR list_contains($acknowledged, a.alert_id)))"
)

register_scoped(
    # customers: how many the alerts of a group are about (a viewer sees no group of under 5).
    warnings_by_rule="SELECT a.rule_label, a.severity, count(*) AS alerts, count(DISTINCT a.customer_id) AS customers "
    f"{ALERTS} GROUP BY ALL ORDER BY ALL",
    # Every run's alerts, not just the latest: the history a risk manager reads the trend from.
    # An alert raised again by a later run counts once, as its newest run saw it.
    warnings_by_period="SELECT a.period, a.rule_label, count(*) AS alerts, count(DISTINCT a.customer_id) AS customers "
    f"FROM mart_alerts a WHERE a.is_newest_of_alert AND {filters.condition('a')} AND (len($rules) = 0 OR list_contains($rules, a.rule)) "
    "AND (len($severities) = 0 OR list_contains($severities, a.severity)) GROUP BY ALL ORDER BY ALL",
)

register(
    warnings_rules="SELECT DISTINCT rule, rule_label FROM mart_alerts WHERE in_latest_run ORDER BY rule",
    warnings_rule_status="SELECT rule, alerts, status FROM ml_alert_rules "
    f"WHERE run_id = {latest_run_of('warnings')} ORDER BY rule",
)


def acknowledge_cell(row: dict) -> object:
    """An "Acknowledge" button for an open alert; the word "acknowledged" for one already done."""
    if row["acknowledged"]:
        return html.Span("acknowledged", className="text-muted")
    button_id = {"type": "warnings-ack", "alert": row["alert_id"]}
    return dbc.Button("Acknowledge", id=button_id, size="sm", color="outline-primary", className="py-0")


TABLE = PagedTable(
    name="warnings-alerts",
    select="a.alert_id, a.customer_id, a.persona_key, a.grade, a.rule_label, a.value, a.threshold, a.severity, "
    "a.period, (a.is_acknowledged OR list_contains($acknowledged, a.alert_id)) AS acknowledged",
    from_where=ALERTS,
    columns=(
        Column("customer_id", "Customer", lambda v: dcc.Link(f"{v:,}", href=f"/customer?customer_id={v}")),
        Column("persona_key", "Persona"),
        Column("grade", "Grade"),
        Column("rule_label", "Rule"),
        Column("value", "Value", lambda v: f"{v:,.2f}", numeric=True),
        Column("threshold", "Threshold", lambda v: f"{v:,.2f}", numeric=True),
        Column("severity", "Severity"),
        Column("period", "Period", lambda v: str(v)[:10]),
        Column("acknowledged", "", from_row=acknowledge_cell),
    ),
    sortable=("severity", "value", "customer_id", "period", "rule_label"),
    default_sort="severity",
    stored_sort=("severity", "DESC"),  # mart_alerts is stored high severity first
    tiebreak="a.customer_id, a.alert_id",
    sort_sql=(("severity", "list_position(['low', 'medium', 'high'], a.severity)"),),
)


def alert_params(data: WarehouseReader, global_filters: dict | None, rules, severities, status) -> dict:
    return {
        **filters.params(global_filters),
        "rules": list(rules or []),
        "severities": list(severities or []),
        "status": status or "open",
        "acknowledged": acknowledged_ids(data),
    }


def hide_small_groups(by_rule: pl.DataFrame, by_period: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Both charts' counts without the groups (rule and severity, period and rule) of too few customers
    for a viewer, and how many groups went: they drop out of the charts (totals are read before)."""
    by_rule, hidden_rules = disclosure.suppress(by_rule, ["alerts"])
    by_period, hidden_periods = disclosure.suppress(by_period, ["alerts"])
    return (
        by_rule.filter(pl.col("alerts").is_not_null()),
        by_period.filter(pl.col("alerts").is_not_null()),
        hidden_rules + hidden_periods,
    )


def rule_figure(by_rule: pl.DataFrame) -> go.Figure:
    """Alerts by rule, stacked by severity."""
    bars = [
        {
            "type": "bar",
            "y": part.get_column("rule_label").to_list(),
            "x": part.get_column("alerts").to_list(),
            "orientation": "h",
            "name": severity,
            "marker": {"color": ui.SEVERITY_COLOURS[severity]},
            "hovertemplate": "%{y}: %{x:,} " + severity + "<extra></extra>",
        }
        for severity in ("low", "medium", "high")
        if (part := by_rule.filter(pl.col("severity") == severity)).height
    ]
    layout = {
        "barmode": "stack",
        "title": {"text": "Alerts by rule"},
        "xaxis": {"title": {"text": "Alerts"}},
        "yaxis": {"automargin": True},
        "margin": {"t": 50, "l": 10},
    }
    return ui.figure(bars, layout)


def period_figure(by_period: pl.DataFrame) -> go.Figure:
    """Alerts per period over every run kept in the warehouse, one bar group per rule."""
    bars = [
        {
            "type": "bar",
            "x": [str(p)[:10] for p in part.get_column("period").to_list()],
            "y": part.get_column("alerts").to_list(),
            "name": str(label),
            "hovertemplate": "%{x}: %{y:,} alerts<extra>" + str(label) + "</extra>",
        }
        for (label,), part in by_period.group_by("rule_label", maintain_order=True)
    ]
    layout = {
        "title": {"text": "Alerts by period (all runs)"},
        "xaxis": {"title": {"text": "Period"}, "type": "category"},
        "yaxis": {"title": {"text": "Alerts"}},
        "legend": {"orientation": "h", "y": -0.25},
        "margin": {"t": 50},
    }
    return ui.figure(bars, layout)


def layout(**_query: str) -> html.Div:
    try:
        data = reader()
        if not data.has("ml_latest_alerts"):
            return ui.unavailable(
                "No early warnings in this warehouse: it has no periodic snapshots, or `segrisk train warnings` "
                "has not run."
            )
        if not data.has("mart_alerts"):
            return ui.outdated("mart_alerts", "segrisk train warnings")
        rules = data.query("warnings_rules")
        statuses = data.query("warnings_rule_status")
    except SegriskError as exc:
        return ui.failed(exc)
    not_run = [f"{r} ({s})" for r, _, s in statuses.rows() if s != "run"]
    return html.Div(
        [
            html.H2("Early warnings", className="h4 mb-3"),
            dbc.Row(
                [
                    dbc.Col(
                        dcc.Dropdown(
                            id="warnings-rule",
                            options=[{"value": r, "label": label} for r, label in rules.rows()],
                            multi=True,
                            placeholder="Rule: all",
                        ),
                        md=4,
                    ),
                    dbc.Col(
                        dcc.Dropdown(
                            id="warnings-severity",
                            options=[{"value": s, "label": s} for s in ui.SEVERITY_COLOURS],
                            multi=True,
                            placeholder="Severity: all",
                        ),
                        md=3,
                    ),
                    dbc.Col(
                        dbc.RadioItems(
                            id="warnings-status",
                            options=[{"label": "Open", "value": "open"}, {"label": "All", "value": "all"}],
                            value="open",
                            inline=True,
                        ),
                        md=3,
                        className="align-self-center",
                    ),
                ],
                className="mb-3 g-2",
            ),
            html.Div(id="warnings-headline"),
            dcc.Loading(dbc.Row([dbc.Col(id="warnings-rule-chart", md=6), dbc.Col(id="warnings-period-chart", md=6)])),
            html.P(
                "Rules that could not run on this data: " + "; ".join(not_run) + "." if not_run else "",
                className="small text-muted",
            ),
            TABLE.layout("Alerts"),
            html.Div(id="warnings-ack-message", className="small text-success"),
            dcc.Store(id="warnings-ack-count", data=0),
        ]
    )


PAGE_INPUTS = (
    Input("filters", "data"),
    Input("warnings-rule", "value"),
    Input("warnings-severity", "value"),
    Input("warnings-status", "value"),
    Input("warnings-ack-count", "data"),
)


@callback(
    Output("warnings-headline", "children"),
    Output("warnings-rule-chart", "children"),
    Output("warnings-period-chart", "children"),
    *PAGE_INPUTS,
)
def show_charts(global_filters, rules, severities, status, _acks):
    try:
        data = reader()
        params = alert_params(data, global_filters, rules, severities, status)
        own = {k: v for k, v in params.items() if k not in filters.FILTER_PARAMS}
        by_rule = filters.scoped_query(data, "warnings_by_rule", global_filters, **own)
        by_period = filters.scoped_query(
            data, "warnings_by_period", global_filters, rules=own["rules"], severities=own["severities"]
        )
    except SegriskError as exc:
        return ui.failed(exc), None, None
    total = int(by_rule.get_column("alerts").sum() or 0)
    high = int(by_rule.filter(pl.col("severity") == "high").get_column("alerts").sum() or 0)
    what = "open alerts" if (status or "open") == "open" else "alerts"
    headline = html.P(
        f"{total:,} {what} ({high:,} high severity) for {filters.describe(global_filters)}.", className="mb-2"
    )
    if total == 0:
        return headline, ui.unavailable("No alerts match the current filters."), None
    by_rule, by_period, hidden = hide_small_groups(by_rule, by_period)
    return (
        headline,
        dcc.Graph(figure=rule_figure(by_rule)),
        [dcc.Graph(figure=period_figure(by_period)), disclosure.note(hidden)],
    )


@callback(
    Output(f"{TABLE.name}-rows", "children"),
    Output(f"{TABLE.name}-page", "max_value"),
    Output(f"{TABLE.name}-summary", "children"),
    *PAGE_INPUTS,
    Input(f"{TABLE.name}-page", "active_page"),
    Input(f"{TABLE.name}-sort", "value"),
    Input(f"{TABLE.name}-direction", "value"),
)
def show_table(global_filters, rules, severities, status, _acks, page, sort, direction):
    try:
        data = reader()
        params = alert_params(data, global_filters, rules, severities, status)
        table, pages, summary = TABLE.render(data, params, page, sort, direction)
    except SegriskError as exc:
        return ui.failed(exc), 1, ""
    return table, pages, summary


@callback(
    Output("warnings-ack-count", "data"),
    Output("warnings-ack-message", "children"),
    Input({"type": "warnings-ack", "alert": ALL}, "n_clicks"),
    State("warnings-ack-count", "data"),
    prevent_initial_call=True,
)
def acknowledge(clicks: list[int | None], count: int):
    if not ctx.triggered_id or not any(clicks):
        return no_update, no_update
    user, role = current_user()
    alert_id = ctx.triggered_id["alert"]
    if not can(role, "acknowledge"):
        audit("acknowledge", f"alert {alert_id}", "refused")
        return no_update, refusal("acknowledge")
    try:
        message = acknowledge_alert(reader(), alert_id, user or "unknown")
    except AcknowledgementRefused as exc:
        audit("acknowledge", f"alert {str(alert_id)[:MAX_ALERT_ID]}", "refused")
        return no_update, str(exc)
    except (SegriskError, OSError) as exc:
        return no_update, f"Could not record the acknowledgement: {exc}"
    audit("acknowledge", f"alert {alert_id}")
    return (count or 0) + 1, message


def acknowledge_alert(data: WarehouseReader, alert_id: str, user: str) -> str:
    """Record the acknowledgement in the app-state store; the table and counts show it at once."""
    record_acknowledgement(data, alert_id, user=user)
    return f"Alert {alert_id} acknowledged by {user}."


@callback(
    Output(f"{TABLE.name}-download", "data"),
    Output(f"{TABLE.name}-download-message", "children"),
    Input(f"{TABLE.name}-download-button", "n_clicks"),
    State("filters", "data"),
    State("warnings-rule", "value"),
    State("warnings-severity", "value"),
    State("warnings-status", "value"),
    State(f"{TABLE.name}-sort", "value"),
    State(f"{TABLE.name}-direction", "value"),
    prevent_initial_call=True,
)
def download(_clicks, global_filters, rules, severities, status, sort, direction):
    try:
        data = reader()
        text = TABLE.csv(data, alert_params(data, global_filters, rules, severities, status), sort, direction != "asc")
    except (SegriskError, ValueError) as exc:
        return no_update, str(exc)
    return dcc.send_string(text, "early_warnings.csv"), ""

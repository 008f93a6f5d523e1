"""Customer 360: one customer by id, with persona, risk, holdings, monthly history, alerts and offers.

The state is the URL's query string (``/customer?customer_id=1204``): a lookup can be bookmarked
and shared, and the lookup button only writes the address, which makes Dash's page router render
the page anew for that customer (Back returns to the previous one). Every query reads one customer
with ``WHERE customer_id = $customer_id``; the tables are sorted by customer, so DuckDB's zone maps
find the rows without a scan even at a million customers.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import urlencode

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
import polars as pl
from dash import Input, Output, State, callback, dcc, html
from flask import has_request_context

from dashboard import auth, filters, ui
from dashboard.data import WarehouseReader, reader, register
from dashboard.state import acknowledged_ids, persona_names
from warehouse.errors import SegriskError
from warehouse.history import latest_run_of

dash.register_page(__name__, path="/customer", name="Customer 360", order=6)

#: DuckDB's BIGINT range: a longer number cannot be a customer key, and binding it would fail.
MAX_CUSTOMER_ID = 2**63 - 1
#: Text keys (C10001, LP001002, 00017) are looked up as typed; none is longer than this.
MAX_TEXT_ID_LENGTH = 100

register(
    customer_key_type="SELECT data_type FROM duckdb_columns() WHERE table_name = 'mart_customer_profile' "
    "AND column_name = 'customer_id'",
    customer_meta_columns="SELECT column_name FROM duckdb_columns() WHERE table_name = 'meta_columns'",
    customer_declared_products="SELECT column_name FROM meta_columns WHERE is_product_flag",
    customer_objects="SELECT table_name AS name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()",
    customer_profile="SELECT * FROM mart_customer_profile WHERE customer_id = $customer_id",
    # Balances and limits of the products held, and the product flags; the log_ model inputs and
    # the snapshot averages also end in _balance but are not an account's balance.
    customer_holdings="SELECT COLUMNS(lambda c: c = 'customer_id' OR starts_with(c, 'has_') OR ("
    "(ends_with(c, '_balance') OR ends_with(c, '_limit')) AND NOT starts_with(c, 'log_') "
    "AND c NOT IN ('latest_balance', 'avg_balance'))) FROM customers WHERE customer_id = $customer_id",
    customer_months="SELECT month, transactions, amount_spent, balance, utilization, days_past_due, credit_score "
    "FROM mart_customer_months WHERE customer_id = $customer_id ORDER BY month",
    customer_alerts="SELECT alert_id, rule_label, measured_column, value, threshold, severity, period, "
    "is_acknowledged FROM ml_latest_alerts WHERE customer_id = $customer_id "
    "ORDER BY list_position(['high', 'medium', 'low'], severity), rule_label",
    customer_offers="SELECT priority, product_name, reason, is_credit_offer FROM ml_recommendations "
    f"WHERE customer_id = $customer_id AND run_id = {latest_run_of('cross_sell')} ORDER BY priority",
)

DECISION_COLOURS = {"approve": "success", "review": "warning", "decline": "danger"}


class Measure(NamedTuple):
    column: str  # of mart_customer_months
    label: str
    bars: bool  # bars for counts and flows, lines for levels
    hover: str  # d3 format of the value


#: What the history chart can show, top to bottom; a measure the customer has no values for is left out.
MEASURES = (
    Measure("balance", "Balance", False, ",.0f"),
    Measure("utilization", "Utilization", False, ".0%"),
    Measure("days_past_due", "Days past due", True, ",.0f"),
    Measure("credit_score", "Credit score", False, ",.0f"),
    Measure("transactions", "Transactions", True, ",.0f"),
    Measure("amount_spent", "Amount spent", True, ",.2f"),
)
#: Months without transactions hold 0, as do all months of a dataset without transactions: these
#: measures are shown only when some month is not 0.
ZERO_FILLED = ("transactions", "amount_spent")


class CustomerView(NamedTuple):
    """Everything the page shows about one customer, as the warehouse holds it (a named tuple: Dash runs
    page modules before they are in ``sys.modules``, where a dataclass looks its module up)."""

    customer_id: int | str
    profile: dict  # mart_customer_profile row
    persona_name: str  # as users see it now (renames included)
    has_personas: bool
    balances: dict[str, float | None]  # customers column -> value, in the table's order
    has_product_flags: bool
    scores: dict | None  # ml_latest_risk_scores row; None when unscored
    has_risk_model: bool
    months: pl.DataFrame  # mart_customer_months rows, by month
    alerts: pl.DataFrame | None  # None when the warehouse has no early warnings
    acknowledged: frozenset[str]
    offers: pl.DataFrame | None  # None when the warehouse has no cross-sell run


def parse_customer_id(text: str | None, numeric: bool = True) -> int | str | None:
    """The customer key typed or bookmarked; None when it cannot be one.

    Numeric keys accept thousands separators, since tables elsewhere show ids as ``1,204``.
    Text keys (``C-00017``, ``LP001002``) are taken as typed, trimmed: their zeros and
    punctuation are part of the key.
    """
    if not numeric:
        cleaned = (text or "").strip()
        return cleaned if 0 < len(cleaned) <= MAX_TEXT_ID_LENGTH else None
    cleaned = re.sub(r"[\s,_]", "", text or "")
    if not re.fullmatch(r"\d{1,19}", cleaned) or int(cleaned) > MAX_CUSTOMER_ID:
        return None
    return int(cleaned)


def has_numeric_keys(data: WarehouseReader) -> bool:
    """Whether the warehouse's customer keys are numbers (the spec declared them ``int``)."""
    types = data.query("customer_key_type").get_column("data_type").to_list()
    return not types or types[0] in ("BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "TINYINT", "UBIGINT")


def search_for(text: str | None) -> str:
    """The URL query string of a lookup (empty input clears it)."""
    text = (text or "").strip()
    return "?" + urlencode({"customer_id": text}) if text else ""


def product_flags(data: WarehouseReader, holdings: dict) -> list[str]:
    """The product flags the spec declared (``product = true``); a warehouse built before flags were
    declared counts its ``has_*`` columns, as it did then."""
    if "is_product_flag" in data.query("customer_meta_columns").get_column("column_name").to_list():
        return data.query("customer_declared_products").get_column("column_name").to_list()
    return [k for k in holdings if k.startswith("has_")]


def look_up(data: WarehouseReader, customer_id: int | str) -> CustomerView | None:
    """The customer's view, or None when the warehouse has no such customer."""
    profile = data.query("customer_profile", customer_id=customer_id)
    if profile.height == 0:
        return None
    row = profile.row(0, named=True)
    objects = set(data.query("customer_objects").get_column("name").to_list())
    holdings = data.query("customer_holdings", customer_id=customer_id).row(0, named=True)
    has_risk_model = "ml_latest_risk_scores" in objects
    scores = data.query("customer_scores", customer_id=customer_id) if has_risk_model else None
    alerts = data.query("customer_alerts", customer_id=customer_id) if "ml_latest_alerts" in objects else None
    offers = (
        data.query("customer_offers", customer_id=customer_id)
        if {"ml_recommendations", "ml_model_runs"} <= objects
        else None
    )
    has_personas = "ml_latest_segments" in objects
    names = persona_names(data) if has_personas else {}
    return CustomerView(
        customer_id=customer_id,
        profile=row,
        persona_name=names.get(row["persona_key"], row["persona_name"]),
        has_personas=has_personas,
        balances={k: v for k, v in holdings.items() if k != "customer_id" and not k.startswith("has_")},
        has_product_flags=bool(product_flags(data, holdings)),
        scores=scores.row(0, named=True) if scores is not None and scores.height else None,
        has_risk_model=has_risk_model,
        months=data.query("customer_months", customer_id=customer_id),
        alerts=alerts,
        acknowledged=frozenset(acknowledged_ids(data)) if alerts is not None and alerts.height else frozenset(),
        offers=offers,
    )


def history_measures(months: pl.DataFrame) -> tuple[list[Measure], list[Measure]]:
    """The measures to chart, and those that were 0 in every month: a flat panel at 0 reads as a
    broken chart, so the page says those in words."""
    charted, always_zero = [], []
    for measure in MEASURES:
        values = months.get_column(measure.column).drop_nulls()
        if values.len() == 0:
            continue
        if (values != 0).any():
            charted.append(measure)
        elif measure.column not in ZERO_FILLED:
            always_zero.append(measure)
    return charted, always_zero


def history_figure(months: pl.DataFrame) -> go.Figure:
    """One panel per measure the customer has, stacked on a shared month axis.

    The panels are laid out by hand: ``make_subplots`` takes about 50 ms, half of a callback's budget.
    """
    measures, _ = history_measures(months)
    panel, gap, top_margin, bottom_margin = 110, 45, 60, 40  # pixels
    height = top_margin + bottom_margin + len(measures) * panel + max(len(measures) - 1, 0) * gap
    plot_height = height - top_margin - bottom_margin
    x = [month.isoformat() for month in months.get_column("month").to_list()]
    data, annotations = [], []
    layout: dict = {
        "height": height,
        "showlegend": False,
        "title": {"text": "History by month"},
        "margin": {"t": top_margin, "b": bottom_margin, "l": 10, "r": 10},
        "bargap": 0.2,
    }
    for i, measure in enumerate(measures):
        axis = "" if i == 0 else str(i + 1)
        upper = 1 - i * (panel + gap) / plot_height
        lower = max(upper - panel / plot_height, 0)
        layout[f"xaxis{axis}"] = {
            "anchor": f"y{axis}",
            "type": "date",
            "showticklabels": i == len(measures) - 1,
            **({"matches": "x"} if i else {}),
        }
        layout[f"yaxis{axis}"] = {
            "domain": [lower, upper],
            "automargin": True,
            "tickformat": measure.hover.replace(".2f", ".0f"),
            "rangemode": "tozero" if measure.bars else "normal",
        }
        annotations.append(
            {
                "text": measure.label,
                "x": 0,
                "y": upper,
                "xref": "paper",
                "yref": "paper",
                "xanchor": "left",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 13},
            }
        )
        trace = {
            "type": "bar" if measure.bars else "scatter",
            "x": x,
            "y": months.get_column(measure.column).to_list(),
            "name": measure.label,
            "xaxis": f"x{axis}",
            "yaxis": f"y{axis}",
            "hovertemplate": "%{x|%b %Y}: %{y:" + measure.hover + "}<extra>" + measure.label + "</extra>",
            **(
                {"marker": {"color": "#4477AA"}}
                if measure.bars
                else {"mode": "lines+markers", "line": {"color": "#4477AA"}}
            ),
        }
        data.append(trace)
    layout["annotations"] = annotations
    return ui.figure(data, layout)


def amount(value: float | None) -> str:
    """A customer's own money, to the cent: rounding hides what the customer actually owes."""
    return "–" if value is None else f"{value:,.2f}"


def label_of(column: str) -> str:
    """``credit_card_limit`` -> ``Credit card limit``, ``bnpl_balance`` -> ``BNPL balance``."""
    return re.sub(r"\bbnpl\b", "BNPL", column.replace("_", " ").capitalize(), flags=re.IGNORECASE)


def alert_value(column: str, value: float | None) -> str:
    """Ratios as percentages (debt-to-income, utilization), the rest as numbers."""
    if value is None:
        return "–"
    if "utilization" in column or "to_income" in column:
        return ui.percent(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def coloured_card(title: str, value: str, note: str, colour: str) -> dbc.Card:
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div(title, className="text-muted small"),
                html.Div(value, className="fs-4 fw-semibold"),
                html.Div(note, className="text-muted small"),
            ]
        ),
        className="h-100",
        style={"borderLeft": f"6px solid {colour}"},
    )


def persona_card(view: CustomerView) -> dbc.Card:
    key = view.profile["persona_key"]
    if not view.has_personas:
        return coloured_card("Persona", "–", "no personas in this warehouse", ui.UNASSIGNED_COLOUR)
    return coloured_card("Persona", view.persona_name, key, ui.persona_colour(key))


def risk_cards(view: CustomerView) -> list:
    """PD, score, grade and decision; one sentence in their place when there are none."""
    if not view.has_risk_model:
        return [
            ui.unavailable(
                "No PD model in this warehouse (the data has no default outcome, or `segrisk train risk` has not "
                "run), so no PD, score, grade or decision."
            )
        ]
    if view.scores is None:
        return [ui.unavailable("The latest risk run did not score this customer.")]
    scores = view.scores
    decision = scores["decision"] or "–"
    return [
        ui.headline("PD", ui.percent(scores["pd"], 2), "probability of default"),
        ui.headline("Score", "–" if scores["score"] is None else f"{scores['score']:,.1f}", "points, higher is safer"),
        coloured_card(
            "Grade", scores["grade"] or "–", "A best, E worst", ui.GRADE_COLOURS.get(scores["grade"], "#888")
        ),
        dbc.Card(
            dbc.CardBody(
                [
                    html.Div("Decision", className="text-muted small"),
                    dbc.Badge(decision, color=DECISION_COLOURS.get(decision, "secondary"), className="fs-6 my-1"),
                    html.Div(scores["decision_reason"] or "", className="text-muted small"),
                ]
            ),
            className="h-100",
        ),
    ]


def reasons_section(view: CustomerView) -> html.Div:
    if view.scores is None:
        return html.Div()
    reasons = [view.scores[f"reason_{i}"] for i in (1, 2, 3) if view.scores.get(f"reason_{i}")]
    body = (
        html.Ol([html.Li(reason) for reason in reasons], className="mb-0")
        if reasons
        else html.P("No factor raises this customer's risk above the typical customer's.", className="mb-0")
    )
    return html.Div([html.H3("What drives the risk", className="h6"), body], className="mb-3")


def holdings_section(view: CustomerView) -> html.Div:
    products = view.profile["products"] or []
    if products:
        held = html.Div(
            [
                dbc.Badge(p.replace("_", " "), color="light", text_color="dark", className="me-1 border")
                for p in products
            ]
        )
    elif view.has_product_flags:
        held = html.P("Holds none of the bank's products.", className="small text-muted")
    else:
        held = html.P("This dataset does not record which products customers hold.", className="small text-muted")
    balances = (
        ui.table(
            [{"account": label_of(column), "amount": amount(value)} for column, value in view.balances.items()],
            [("account", "Account"), ("amount", "Balance / limit")],
            numeric=("amount",),
        )
        if view.balances
        else html.P("This dataset records no balances.", className="small text-muted")
    )
    return html.Div(
        [html.H3("Products held", className="h6"), held, html.H3("Balances", className="h6 mt-3"), balances]
    )


def history_section(view: CustomerView):
    charted, always_zero = history_measures(view.months)
    if not charted and not always_zero:
        return ui.unavailable("No monthly history for this customer: the dataset has no transactions or snapshots.")
    months = view.months.height
    zero_note = (
        html.P(
            f"{join_words([m.label for m in always_zero])} {'was' if len(always_zero) == 1 else 'were'} 0 "
            f"in all {months} months.",
            className="small text-muted",
            id="customer-history-zero",
        )
        if always_zero
        else None
    )
    graph = dcc.Graph(figure=history_figure(view.months), id="customer-history") if charted else None
    return html.Div([graph, zero_note])


def join_words(words: list[str]) -> str:
    """``["A", "B", "C"]`` -> ``A, b and c`` (a sentence's start, the rest in lower case)."""
    words = [words[0]] + [w.lower() for w in words[1:]]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def alerts_section(view: CustomerView) -> html.Div:
    title = html.H3("Early-warning alerts", className="h6")
    if view.alerts is None:
        return html.Div([title, ui.unavailable("No early warnings in this warehouse.")])
    if view.alerts.height == 0:
        return html.Div([title, html.P("No alerts in the latest warnings run.", className="small text-muted")])
    rows = [
        {
            "rule": row["rule_label"],
            "value": alert_value(row["measured_column"], row["value"]),
            "threshold": alert_value(row["measured_column"], row["threshold"]),
            "severity": html.Span(
                row["severity"], className="badge text-dark", style={"background": ui.SEVERITY_COLOURS[row["severity"]]}
            )
            if row["severity"] in ui.SEVERITY_COLOURS
            else row["severity"],
            "period": str(row["period"])[:10],
            "status": "acknowledged"
            if row["is_acknowledged"] or row["alert_id"] in view.acknowledged
            else html.Strong("open"),
        }
        for row in view.alerts.iter_rows(named=True)
    ]
    table = ui.table(
        rows,
        [
            ("rule", "Rule"),
            ("value", "Value"),
            ("threshold", "Threshold"),
            ("severity", "Severity"),
            ("period", "Period"),
            ("status", "Status"),
        ],
        numeric=("value", "threshold"),
    )
    return html.Div([title, table, dcc.Link("Acknowledge alerts on the Early warnings page", href="/warnings")])


def offers_section(view: CustomerView) -> html.Div:
    title = html.H3("Recommended offers", className="h6")
    if view.offers is None:
        return html.Div([title, ui.unavailable("No cross-sell recommendations in this warehouse.")])
    if view.offers.height == 0:
        return html.Div([title, html.P("No offers in the latest cross-sell run.", className="small text-muted")])
    rows = [
        {
            "priority": row["priority"],
            "product": row["product_name"],
            "reason": row["reason"],
            "credit": "yes" if row["is_credit_offer"] else "no",
        }
        for row in view.offers.iter_rows(named=True)
    ]
    table = ui.table(
        rows,
        [("priority", "#"), ("product", "Product"), ("reason", "Why"), ("credit", "New credit")],
        numeric=("priority",),
    )
    return html.Div([title, table])


def facts_line(view: CustomerView) -> str:
    profile = view.profile
    facts = [f"Customer {view.customer_id}"]
    facts += [profile[k] for k in ("age_band", "region") if profile[k] not in (None, "unknown")]
    if profile["is_defaulted"] is not None:
        facts.append("defaulted" if profile["is_defaulted"] else "not defaulted")
    return " · ".join(facts)


def render(view: CustomerView) -> html.Div:
    risk = risk_cards(view)
    cards = [dbc.Col(persona_card(view), lg=3, md=6, className="mb-3")]
    if len(risk) == 1:
        cards.append(dbc.Col(risk[0], lg=9, md=6))
    else:
        cards += [dbc.Col(card, lg=2 if i < 3 else 3, md=6, className="mb-3") for i, card in enumerate(risk)]
    return html.Div(
        [
            html.P(facts_line(view), className="lead mb-2", id="customer-facts"),
            dbc.Row(cards, className="g-3"),
            dbc.Row(
                [
                    dbc.Col([reasons_section(view), holdings_section(view)], lg=4),
                    dbc.Col(history_section(view), lg=8),
                ],
                className="mt-2",
            ),
            dbc.Row([dbc.Col(alerts_section(view), lg=6), dbc.Col(offers_section(view), lg=6)], className="mt-3"),
        ]
    )


def customer_content(data: WarehouseReader, text: str | None):
    """What the page shows for the id in the URL: the customer, or one sentence why not."""
    if not (text or "").strip():
        return html.P(
            "Enter a customer number to see their persona, risk, products, history, alerts and offers.",
            className="text-muted",
        )
    try:
        numeric = has_numeric_keys(data)
        customer_id = parse_customer_id(text, numeric)
        if customer_id is None:
            shown = text.strip() if len(text.strip()) <= 30 else text.strip()[:30] + "…"
            if numeric:
                return ui.unavailable(f"“{shown}” is not a customer number: enter digits only, such as 1204.")
            return ui.unavailable(f"“{shown}” is not a customer key: keys have 1 to {MAX_TEXT_ID_LENGTH} characters.")
        view = look_up(data, customer_id)
    except SegriskError as exc:
        return ui.failed(exc)
    if has_request_context():
        auth.audit("customer_lookup", f"customer {customer_id}", "ok" if view is not None else "not found")
    if view is None:
        return ui.unavailable(f"No customer {customer_id} in this warehouse.")
    return render(view)


def layout(customer_id: str | None = None, **_query: str) -> html.Div:
    if has_request_context() and not auth.user_can("customer_level"):
        return html.Div([html.H2("Customer 360", className="h4 mb-3"), ui.unavailable(auth.refusal("customer_level"))])
    try:
        data = reader()
    except SegriskError as exc:
        return ui.failed(exc)
    return html.Div(
        [
            html.H2("Customer 360", className="h4 mb-3"),
            dbc.Row(
                dbc.Col(
                    dbc.InputGroup(
                        [
                            dbc.Input(
                                id="customer-id",
                                value=customer_id or "",
                                placeholder="Customer number",
                                type="text",
                                inputmode="numeric",
                                autocomplete="off",
                            ),
                            dbc.Button("Look up", id="customer-lookup", color="primary"),
                        ]
                    ),
                    lg=4,
                    md=6,
                ),
                className="mb-3",
            ),
            dcc.Loading(html.Div(customer_content(data, customer_id), id="customer-view")),
            # The frame's location ("url") changes the address without telling the page router; this
            # one ("callback-nav") does, so a lookup renders the page for the new id.
            dcc.Location(id="customer-location", refresh="callback-nav"),
        ]
    )


@callback(
    Output("customer-location", "href"),
    Input("customer-lookup", "n_clicks"),
    Input("customer-id", "n_submit"),
    State("customer-id", "value"),
    State("filters", "data"),
    prevent_initial_call=True,
)
def look_up_customer(_clicks: int | None, _submits: int | None, text: str | None, chosen: dict | None) -> str:
    """Put the id in the URL, keeping the filters' fragment: the page router then renders this page for it.

    The whole address is set: a location composes one from its own pathname and hash otherwise, and
    those are stale once the filters have changed the address since the page was shown."""
    return dash.get_relative_path("/customer") + search_for(text) + filters.to_fragment(chosen or {})

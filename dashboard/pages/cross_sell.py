"""Cross-sell: what each persona already holds, what the latest run offers whom, and the offers themselves.

The penetration heatmap is the run's baseline per persona (it is not filtered: a share of a
persona is a property of the whole persona). The headline figures, the campaign mix and the
offers table follow the global filters (offers are read from ``mart_offers``, which carries each
customer's filter dimensions); with none set the mix comes from ``ml_campaign_mix``
without touching the offers. Credit offers that risk held back come from the run's metrics for
the whole book, and from ``mart_customer_cube`` (counted from ``ml_credit_withheld``) under a
filter.
Clicking a heatmap cell or a mix bar filters every page to the persona and this page's table to
the product.
"""

from __future__ import annotations

import json

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
import polars as pl
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from dashboard import disclosure, filters, page_state, ui
from dashboard.data import WarehouseReader, reader, register
from dashboard.paged import Column, PagedTable
from dashboard.state import persona_names
from models.cross_sell import PRODUCTS
from warehouse.errors import SegriskError
from warehouse.history import latest_run_of

dash.register_page(__name__, path="/cross-sell", name="Cross-sell", order=4)

LATEST_RUN = latest_run_of("cross_sell")
#: The persona key the profile gives customers without a persona (the model's tables leave it null).
NO_PERSONA = "unassigned"
CREDIT_PRODUCTS = frozenset(key for key, product in PRODUCTS.items() if product.is_credit)
MEASURES = {"first_choice": "lead offers", "offers": "all offers"}
HIDDEN, SHOWN = {"display": "none"}, {}

#: The latest run's offers under the global filters.
OFFERS = f"FROM mart_offers r WHERE {filters.condition('r')}"
#: Offers counted per product and customer filter dimensions (warehouse/marts.py).
OFFER_CUBE = "mart_offer_cube"
#: The products chosen for the offers table (none: all).
OFFERED = "(len($offered) = 0 OR list_contains($offered, r.product))"

register(
    cross_sell_penetration="SELECT coalesce(segment_key, 'unassigned') AS segment_key, persona_name, product, "
    f"customers, holders, share FROM ml_product_penetration WHERE run_id = {LATEST_RUN}",
    cross_sell_products="SELECT DISTINCT product, product_name FROM ml_campaign_mix "
    f"WHERE run_id = {LATEST_RUN} ORDER BY product_name",
    cross_sell_withheld_filtered="SELECT coalesce(sum(p.credit_offers_withheld), 0)::BIGINT AS offers, "
    "coalesce(sum(p.customers_with_credit_withheld), 0)::BIGINT AS customers "
    f"FROM {filters.CUBE} p WHERE {filters.FILTERED}",
    cross_sell_mix_run="SELECT coalesce(segment_key, 'unassigned') AS segment_key, product, product_name, "
    f"customers AS offers, first_choice FROM ml_campaign_mix WHERE run_id = {LATEST_RUN}",
    # Every customer with offers has exactly one offer of priority 1, so first_choice also counts customers.
    # Summed from the offer cube: some 45,000 rows at a million customers instead of 1.5 million offers.
    cross_sell_mix_filtered="SELECT r.persona_key AS segment_key, r.product, any_value(r.product_name) AS product_name, "
    "sum(r.offers)::BIGINT AS offers, sum(r.first_choice)::BIGINT AS first_choice "
    f"FROM {OFFER_CUBE} r WHERE {filters.condition('r')} GROUP BY r.persona_key, r.product",
)

TABLE = PagedTable(
    name="cross-sell-offers",
    select="r.customer_id, r.persona_key, r.persona_name, r.grade, r.product, r.product_name, r.priority, "
    "r.reason, r.is_credit_offer",
    from_where=f"{OFFERS} AND {OFFERED}",
    count_sql=f"SELECT coalesce(sum(r.offers), 0)::BIGINT AS n FROM {OFFER_CUBE} r "
    f"WHERE {filters.condition('r')} AND {OFFERED}",
    columns=(
        Column("customer_id", "Customer", lambda v: dcc.Link(ui.count(v), href=f"/customer?customer_id={v}")),
        Column("persona_name", "Persona"),
        Column("grade", "Grade"),
        Column("product_name", "Offer"),
        Column("priority", "Priority", ui.count, numeric=True),
        Column("reason", "Reason"),
        Column("is_credit_offer", "Credit", lambda v: "credit" if v else ""),
    ),
    sortable=("customer_id", "priority", "product_name", "grade", "persona_name"),
    default_sort="customer_id",
    stored_sort=("customer_id", "ASC"),  # mart_offers is stored by customer and priority
    default_descending=False,
    tiebreak="r.customer_id, r.priority",
    sort_sql=(
        ("customer_id", "r.customer_id"),
        ("priority", "r.priority"),
        ("product_name", "r.product_name"),
        ("grade", "r.grade"),
        ("persona_name", "r.persona_name"),
    ),
)


# -- queries ---------------------------------------------------------------------------------------


def latest_run(data: WarehouseReader) -> dict | None:
    """The latest cross-sell run with its parameters and metrics decoded; None when none ran."""
    if not data.has("ml_recommendations"):
        return None
    runs = data.query("latest_run", kind="cross_sell")
    if runs.height == 0:
        return None
    run = runs.row(0, named=True)
    return {**run, "parameters": json.loads(run["parameters"] or "{}"), "metrics": json.loads(run["metrics"] or "{}")}


def absent_sentence(data: WarehouseReader) -> str:
    """Why there are no offers to show, in one sentence."""
    if data.has("meta_capabilities"):
        capabilities = {c: (ok, why) for c, ok, why in data.query("capabilities").rows()}
        supported, reason = capabilities.get("cross_sell", (True, ""))
        if not supported:
            return f"Cross-sell is not available for this dataset: it {reason}."
    return "Cross-sell has not run on this warehouse: run `segrisk train segments`, then `segrisk train cross-sell`."


def campaign_mix(data: WarehouseReader, global_filters: dict | None) -> pl.DataFrame:
    """Offers per persona and product (segment_key, product, product_name, offers, first_choice).

    Unfiltered, the run's own ``ml_campaign_mix``; filtered, counted from the offers of the
    customers the filters keep.
    """
    if filters.is_filtered(global_filters):
        return data.query("cross_sell_mix_filtered", **filters.params(global_filters))
    return data.query("cross_sell_mix_run")


def hide_small_cells(mix: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """The campaign mix without the persona and product cells offered to too few customers for a
    viewer (each customer has at most one offer of a product), and how many went; totals come before."""
    return disclosure.suppress(mix, ["offers", "first_choice"], count="offers")


def mix_totals(mix: pl.DataFrame) -> dict[str, int]:
    """Customers with an offer, offers and credit offers in a campaign mix."""
    credit = mix.filter(pl.col("product").is_in(list(CREDIT_PRODUCTS)))
    return {
        "customers_with_offer": int(mix.get_column("first_choice").sum() or 0),
        "offers": int(mix.get_column("offers").sum() or 0),
        "credit_offers": int(credit.get_column("offers").sum() or 0),
    }


def offer_params(global_filters: dict | None, offered: list[str] | None) -> dict:
    return {**filters.params(global_filters), "offered": [str(p) for p in offered or []]}


# -- figures ---------------------------------------------------------------------------------------


def persona_order(keys) -> list[str]:  # noqa: ANN001 - any iterable of persona keys
    """S1, S2, ..., S10 in number order, customers without a persona last."""
    return sorted(set(keys), key=lambda k: (not k[1:].isdigit(), int(k[1:]) if k[1:].isdigit() else 0, k))


def persona_label(key: str, names: dict[str, str]) -> str:
    return "No persona" if key == NO_PERSONA else f"{key} · {names.get(key, key)}"


def product_label(product: str) -> str:
    return PRODUCTS[product].name if product in PRODUCTS else product.replace("_", " ").capitalize()


def penetration_figure(
    penetration: pl.DataFrame, names: dict[str, str], selected: list[str] | None = None
) -> go.Figure:
    """Share of each persona holding each product: personas down, products across (most held first).

    The personas of the global filter are outlined, so the chart keeps every persona to click.
    """
    names = {**dict(penetration.select("segment_key", "persona_name").unique().rows()), **names}
    personas = persona_order(penetration.get_column("segment_key"))
    products = (
        penetration.group_by("product")
        .agg((pl.col("holders").sum() / pl.col("customers").sum()).alias("overall"))
        .sort(["overall", "product"], descending=[True, False])
        .get_column("product")
        .to_list()
    )
    cells = {
        (key, product): (share, holders, customers)
        for key, product, share, holders, customers in penetration.select(
            "segment_key", "product", "share", "holders", "customers"
        ).rows()
    }
    z, hover = [], []
    for key in personas:
        z.append([cells[(key, p)][0] if (key, p) in cells else None for p in products])
        hover.append(
            [
                f"{persona_label(key, names)}<br>{cells[(key, p)][1]:,} of {cells[(key, p)][2]:,} hold "
                f"{product_label(p).lower()} ({cells[(key, p)][0]:.0%})"
                if (key, p) in cells
                else ""
                for p in products
            ]
        )
    heatmap = {
        "type": "heatmap",
        "x": products,
        "y": personas,
        "z": z,
        "zmin": 0,
        "zmax": 1,
        "colorscale": ui.colorscale("Blues"),
        "customdata": hover,
        "hovertemplate": "%{customdata}<extra></extra>",
        "texttemplate": "%{z:.0%}",
        "colorbar": {"title": {"text": "Hold"}, "tickformat": ".0%"},
        "xgap": 1,
        "ygap": 1,
    }
    outlines = [
        {
            "type": "rect",
            "x0": -0.5,
            "x1": len(products) - 0.5,
            "y0": row - 0.5,
            "y1": row + 0.5,
            "line": {"color": "#d62728", "width": 2},
        }
        for row, key in enumerate(personas)
        if key in (selected or [])
    ]
    layout = {
        "title": {"text": "Product penetration by persona (click a cell to filter)"},
        "margin": {"t": 50, "l": 10},
        "height": 420,
        "shapes": outlines,
        "xaxis": {"tickvals": products, "ticktext": [product_label(p) for p in products], "tickangle": -35},
        "yaxis": {
            "tickvals": personas,
            "ticktext": [persona_label(k, names) for k in personas],
            "autorange": "reversed",
            "automargin": True,
        },
    }
    return ui.figure([heatmap], layout)


def mix_figure(mix: pl.DataFrame, names: dict[str, str], measure: str = "first_choice") -> go.Figure:
    """Offers per product, stacked by persona in the persona's colour; the biggest campaign on top."""
    measure = measure if measure in MEASURES else "first_choice"
    products = (
        mix.group_by("product")
        .agg(pl.col("product_name").first(), pl.col(measure).sum().alias("total"))
        .filter(pl.col("total") > 0)
        .sort(["total", "product"])
    )
    labels = dict(products.select("product", "product_name").rows())
    bars = []
    for key in persona_order(mix.get_column("segment_key")):
        part = mix.filter((pl.col("segment_key") == key) & (pl.col(measure) > 0))
        if part.height == 0:
            continue
        label = persona_label(key, names)
        bars.append(
            {
                "type": "bar",
                "y": [labels.get(p, product_label(p)) for p in part.get_column("product")],
                "x": part.get_column(measure).to_list(),
                "orientation": "h",
                "name": label,
                "marker": {"color": ui.persona_colour(key)},
                "customdata": [[key, p] for p in part.get_column("product")],
                "hovertemplate": "%{y}: %{x:,} " + MEASURES[measure] + "<extra>" + label + "</extra>",
            }
        )
    layout = {
        "barmode": "stack",
        "title": {"text": f"Campaign mix: {MEASURES[measure]} by product and persona"},
        "xaxis": {"title": {"text": MEASURES[measure].capitalize()}},
        "yaxis": {
            "categoryorder": "array",
            "categoryarray": [labels[p] for p in products.get_column("product")],
            "automargin": True,
        },
        "legend": {"orientation": "h", "y": -0.2, "traceorder": "normal"},
        "showlegend": True,
        "margin": {"t": 50, "l": 10},
        "height": 420,
    }
    return ui.figure(bars, layout)


def headline_cards(
    totals: dict[str, int],
    customers: int,
    run: dict,
    global_filters: dict | None,
    withheld: tuple[int, int] | None = None,
) -> dbc.Row:
    """Customers with an offer (of ``customers`` under the filters), offers, and the credit risk held
    back: ``withheld`` (offers, customers) under the filters, else the whole book from the run."""
    metrics = run["metrics"]
    blocked_grades = ", ".join(run["parameters"].get("blocked_grades") or []) or "none"
    held_back = metrics.get("credit_offers_blocked")
    held_back_note = (
        f"{ui.count(metrics.get('customers_with_credit_blocked'))} customers: "
        f"{ui.count(metrics.get('customers_blocked_by_grade'))} by grade ({blocked_grades}), "
        f"{ui.count(metrics.get('customers_blocked_by_alert'))} by an open alert"
    )
    if withheld is not None:
        held_back, withheld_customers = withheld
        held_back_note = f"{ui.count(withheld_customers)} customers ({filters.describe(global_filters)})"
    elif filters.is_filtered(global_filters):
        held_back_note += "; whole book (this warehouse's run counts it, not per customer)"
    offers = totals["offers"]
    cards = [
        ui.headline(
            "Customers with an offer",
            ui.count(totals["customers_with_offer"]),
            f"{ui.percent(totals['customers_with_offer'] / customers)} of {ui.count(customers)} customers "
            f"({filters.describe(global_filters)})"
            if customers
            else filters.describe(global_filters),
        ),
        ui.headline(
            "Offers",
            ui.count(offers),
            f"{ui.count(totals['credit_offers'])} credit offers ({ui.percent(totals['credit_offers'] / offers)})"
            if offers
            else "",
        ),
        ui.headline("Credit offers held back by risk", ui.count(held_back), held_back_note),
    ]
    return dbc.Row([dbc.Col(card, md=4, className="mb-3") for card in cards])


# -- layout and callbacks --------------------------------------------------------------------------


#: The offered products chosen, kept in the address as they are chosen.
PAGE_STATE = page_state.sync("cross-sell", {"product": "cross-sell-product"})


def layout(product: str | None = None, **_query: str) -> html.Div:
    """``?product=credit_card,savings`` opens the table on those offers."""
    try:
        data = reader()
        run = latest_run(data)
        if run is None:
            return ui.unavailable(absent_sentence(data))
        for mart in ("mart_offers", OFFER_CUBE):
            if not data.has(mart):
                return ui.outdated(mart, "segrisk train cross-sell")
        products = data.query("cross_sell_products")
    except SegriskError as exc:
        return ui.failed(exc)
    offered = products.get_column("product").to_list()
    chosen = [p for p in (product or "").split(",") if p in offered]
    return html.Div(
        [
            html.H2("Cross-sell", className="h4 mb-1"),
            page_state.store(PAGE_STATE),
            html.P(
                f"Cross-sell run {run['run_id']}, {run['finished_at']:%Y-%m-%d %H:%M} UTC. Each customer's offers "
                "follow their persona's strategy, first offer first; risk withholds new credit from "
                "blocked grades and customers with an open early-warning alert.",
                className="small text-muted",
            ),
            dcc.Loading(html.Div(id="cross-sell-headline"), delay_show=300),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            dcc.Graph(id="cross-sell-heatmap", style=HIDDEN),
                            html.Div(id="cross-sell-heatmap-note"),
                        ],
                        lg=6,
                    ),
                    dbc.Col(
                        [
                            dbc.RadioItems(
                                id="cross-sell-measure",
                                options=[
                                    {"label": label.capitalize(), "value": key} for key, label in MEASURES.items()
                                ],
                                value="first_choice",
                                inline=True,
                                className="small",
                            ),
                            dcc.Graph(id="cross-sell-mix", style=HIDDEN),
                            html.Div(id="cross-sell-mix-note"),
                        ],
                        lg=6,
                    ),
                ],
                className="mb-3",
            ),
            dbc.Row(
                dbc.Col(
                    dcc.Dropdown(
                        id="cross-sell-product",
                        options=[{"value": p, "label": name} for p, name in products.rows()],
                        value=chosen,
                        multi=True,
                        placeholder="Offered product: all",
                    ),
                    md=4,
                ),
                className="mb-2",
            ),
            TABLE.layout("Offers"),
        ]
    )


@callback(
    Output("cross-sell-heatmap", "figure"),
    Output("cross-sell-heatmap", "style"),
    Output("cross-sell-heatmap-note", "children"),
    Input("filters", "data"),
)
def show_heatmap(global_filters: dict | None):
    try:
        data = reader()
        penetration = data.query("cross_sell_penetration")
        names = persona_names(data)
    except SegriskError as exc:
        return no_update, HIDDEN, ui.failed(exc)
    if penetration.height == 0:
        return no_update, HIDDEN, ui.unavailable("The latest cross-sell run found no product holdings to show.")
    selected = (global_filters or {}).get("persona") or []
    note = html.P(
        "Share of each persona's customers holding each product at the run, for whole personas; the "
        "personas of the persona filter are outlined.",
        className="small text-muted",
    )
    return penetration_figure(penetration, names, selected), SHOWN, note


@callback(
    Output("cross-sell-headline", "children"),
    Output("cross-sell-mix", "figure"),
    Output("cross-sell-mix", "style"),
    Output("cross-sell-mix-note", "children"),
    Input("filters", "data"),
    Input("cross-sell-measure", "value"),
)
def show_mix(global_filters: dict | None, measure: str | None):
    try:
        data = reader()
        run = latest_run(data)
        if run is None:
            return ui.unavailable(absent_sentence(data)), no_update, HIDDEN, None
        mix = campaign_mix(data, global_filters)
        customers = int(data.query("filtered_count", **filters.params(global_filters)).item())
        withheld = None
        if filters.is_filtered(global_filters) and data.has("ml_credit_withheld"):
            withheld = data.query("cross_sell_withheld_filtered", **filters.params(global_filters)).row(0)
        names = persona_names(data)
    except SegriskError as exc:
        return ui.failed(exc), no_update, HIDDEN, None
    headline = headline_cards(mix_totals(mix), customers, run, global_filters, withheld)
    if mix.height == 0:
        return headline, no_update, HIDDEN, ui.unavailable("No offers match the current filters.")
    mix, hidden = hide_small_cells(mix)
    return headline, mix_figure(mix, names, measure or "first_choice"), SHOWN, disclosure.note(hidden)


@callback(
    Output(f"{TABLE.name}-rows", "children"),
    Output(f"{TABLE.name}-page", "max_value"),
    Output(f"{TABLE.name}-summary", "children"),
    Input("filters", "data"),
    Input("cross-sell-product", "value"),
    Input(f"{TABLE.name}-page", "active_page"),
    Input(f"{TABLE.name}-sort", "value"),
    Input(f"{TABLE.name}-direction", "value"),
)
def show_table(global_filters, offered, page, sort, direction):
    try:
        table, pages, summary = TABLE.render(reader(), offer_params(global_filters, offered), page, sort, direction)
    except SegriskError as exc:
        return ui.failed(exc), 1, ""
    return table, pages, summary


@callback(
    Output(f"{TABLE.name}-download", "data"),
    Output(f"{TABLE.name}-download-message", "children"),
    Input(f"{TABLE.name}-download-button", "n_clicks"),
    State("filters", "data"),
    State("cross-sell-product", "value"),
    State(f"{TABLE.name}-sort", "value"),
    State(f"{TABLE.name}-direction", "value"),
    prevent_initial_call=True,
)
def download(_clicks, global_filters, offered, sort, direction):
    try:
        text = TABLE.csv(reader(), offer_params(global_filters, offered), sort, direction != "asc")
    except (SegriskError, ValueError) as exc:
        return no_update, str(exc)
    return dcc.send_string(text, "cross_sell_offers.csv"), ""


def clicked_cell(click: dict | None, from_heatmap: bool) -> tuple[str, str] | None:
    """(persona key, product) of a clicked heatmap cell or mix bar; None for anything else."""
    points = (click or {}).get("points") or []
    if not points:
        return None
    point = points[0]
    if from_heatmap:
        return (str(point["y"]), str(point["x"])) if "x" in point and "y" in point else None
    custom = point.get("customdata")
    return (str(custom[0]), str(custom[1])) if custom and len(custom) == 2 else None


@callback(
    Output("filter-persona", "value", allow_duplicate=True),
    Output("cross-sell-product", "value"),
    Input("cross-sell-heatmap", "clickData"),
    Input("cross-sell-mix", "clickData"),
    State("cross-sell-product", "options"),
    prevent_initial_call=True,
)
def filter_by_click(heatmap_click: dict | None, mix_click: dict | None, product_options: list[dict] | None):
    """A click filters every page to the persona and this table to the product (when the run offers it)."""
    from_heatmap = ctx.triggered_id == "cross-sell-heatmap"
    cell = clicked_cell(heatmap_click if from_heatmap else mix_click, from_heatmap)
    if cell is None:
        return no_update, no_update
    persona, product = cell
    offered = {option["value"] for option in product_options or []}
    return [persona], [product] if product in offered else []

"""RFM: how recently, how often and how much customers buy, in the standard named segments.

Everything follows the global filters: the latest RFM run's scores are read from ``mart_rfm``,
which carries each customer's filter dimensions beside them. Segment sizes, the R x F grid and the cluster counts come from one
grouped query (the named segment is a function of the R and F scores, so the 25 grid cells add
up to the segments); the medians and quartiles are computed in SQL, so no customer's values
travel to the browser. Only customers with transactions have RFM scores.
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
from dashboard.filters import register_scoped
from dashboard.paged import Column, PagedTable
from models.rfm import segment_of
from warehouse.errors import SegriskError
from warehouse.marts import RFM_SAMPLE, RFM_SAMPLE_EVERY

dash.register_page(__name__, path="/rfm", name="RFM", order=5)


#: Segments from the best customers to the lost ones, with a colour each (greens are healthy,
#: yellows need a nudge, reds are slipping away, greys are gone). Names as models/rfm.py gives them.
SEGMENT_COLOURS = {
    "Champions": "#1a9850",
    "Loyal": "#66bd63",
    "Potential Loyalist": "#a6d96a",
    "New": "#4393c3",
    "Promising": "#92c5de",
    "Need Attention": "#fee08b",
    "About to Sleep": "#fdae61",
    "At Risk": "#f46d43",
    "Can't Lose Them": "#d73027",
    "Hibernating": "#bababa",
    "Lost": "#878787",
}
#: Customers who bought often but not lately: the ones a win-back campaign is for.
AT_RISK = ("At Risk", "Can't Lose Them")
BEST = ("Champions", "Loyal")
#: The treemap's root tile: clicking it lists every segment again.
ROOT = "All scored customers"
#: From this many customers on, the quartiles by segment come from the stored sample (mart_rfm_sample,
#: 1 customer in RFM_SAMPLE_EVERY), so at least 10,000 sampled customers give them.
SPREAD_SAMPLED_FROM = 10_000 * RFM_SAMPLE_EVERY
HIDDEN, SHOWN = {"display": "none"}, {}

#: Customers and spend per grid cell and cluster: segment sizes, grid and cluster counts in one query,
#: summed from the RFM cube (some 180,000 rows at a million customers instead of a million scores).
CELLS = (
    "SELECT r.r_score, r.f_score, r.segment, r.cluster_id, sum(r.customers)::BIGINT AS customers, "
    "sum(r.monetary) AS monetary FROM mart_rfm_cube r WHERE r.run_id = $run_id"
)
#: Median and quartiles of recency, frequency and spend, for rfm_spread and its sampled twin.
SPREAD = (
    "SELECT r.segment, count(*) AS customers, quantile_cont(r.rfm_recency_days, [0.25, 0.5, 0.75]) AS recency, "
    "quantile_cont(r.rfm_frequency, [0.25, 0.5, 0.75]) AS frequency, "
    "quantile_cont(r.rfm_monetary, [0.25, 0.5, 0.75]) AS monetary"
)
#: A run's scores of the customers the global filters keep (the RFM mart holds the latest run's
#: scores with each customer's filter dimensions; the run id guards against a stale mart).
SCORED = f"FROM mart_rfm r WHERE r.run_id = $run_id AND {filters.condition('r')}"
#: The same from the stored sample of the scores.
SAMPLED = f"FROM {RFM_SAMPLE} r WHERE r.run_id = $run_id AND {filters.condition('r')}"

register_scoped(
    rfm_spread=f"{SPREAD} {SCORED} GROUP BY ALL",
    # Quartiles sort every value of their group: from SPREAD_SAMPLED_FROM customers on they come from
    # the stored fixed sample, a tenth of the rows for quartiles that move by a hair.
    rfm_spread_sampled=f"{SPREAD} {SAMPLED} GROUP BY ALL",
)

register(
    rfm_cells=f"{CELLS} AND {filters.condition('r')} GROUP BY ALL ORDER BY ALL",
    rfm_cells_all=f"{CELLS} GROUP BY ALL ORDER BY ALL",
    rfm_clusters="SELECT cluster_id, cluster_name, customers, centroid_recency_days, centroid_frequency, "
    "centroid_monetary FROM ml_rfm_clusters WHERE run_id = $run_id ORDER BY cluster_id",
)

TABLE = PagedTable(
    name="rfm-customers",
    select="r.customer_id, r.persona_name, r.grade, r.segment, r.cluster_name, r.rfm_cell, r.rfm_recency_days, "
    "r.rfm_frequency, r.rfm_monetary",
    from_where=f"{SCORED} AND (len($segments) = 0 OR list_contains($segments, r.segment))",
    count_sql="SELECT coalesce(sum(r.customers), 0)::BIGINT AS n "
    f"FROM mart_rfm_cube r WHERE r.run_id = $run_id AND {filters.condition('r')} "
    "AND (len($segments) = 0 OR list_contains($segments, r.segment))",
    columns=(
        Column("customer_id", "Customer", lambda v: dcc.Link(ui.count(v), href=f"/customer?customer_id={v}")),
        Column("persona_name", "Persona"),
        Column("grade", "Grade"),
        Column("segment", "Segment"),
        Column("cluster_name", "Cluster"),
        Column("rfm_cell", "RFM cell"),
        Column("rfm_recency_days", "Days since last purchase", ui.count, numeric=True),
        Column("rfm_frequency", "Purchases", ui.count, numeric=True),
        Column("rfm_monetary", "Spend", lambda v: f"{v:,.2f}", numeric=True),
    ),
    sortable=("rfm_monetary", "rfm_frequency", "rfm_recency_days", "customer_id"),
    default_sort="rfm_monetary",
    stored_sort=("rfm_monetary", "DESC"),  # mart_rfm is stored by spend, highest first
    tiebreak="r.customer_id",
    sort_sql=(
        ("rfm_monetary", "r.rfm_monetary"),
        ("rfm_frequency", "r.rfm_frequency"),
        ("rfm_recency_days", "r.rfm_recency_days"),
        ("customer_id", "r.customer_id"),
    ),
)


# -- queries ---------------------------------------------------------------------------------------


def latest_run(data: WarehouseReader) -> dict | None:
    """The latest RFM run (run_id, finished_at, parameters decoded); None when RFM has not run."""
    if not (data.has("ml_rfm") and data.has("ml_rfm_clusters")):
        return None
    runs = data.query("latest_run", kind="rfm")
    if runs.height == 0:
        return None
    run = runs.row(0, named=True)
    return {**run, "parameters": json.loads(run["parameters"] or "{}")}


def absent_sentence(data: WarehouseReader) -> str:
    """Why there are no RFM scores to show, in one sentence."""
    if data.has("meta_capabilities"):
        capabilities = {c: (ok, why) for c, ok, why in data.query("capabilities").rows()}
        supported, reason = capabilities.get("rfm", (True, ""))
        if not supported:
            return f"RFM is not available for this dataset: it {reason}."
    return "RFM has not run on this warehouse: run `segrisk train rfm`."


def segment_order(segments) -> list[str]:  # noqa: ANN001 - any iterable of segment names
    """Best to lost as in SEGMENT_COLOURS; a segment unknown here goes last rather than missing."""
    known = list(SEGMENT_COLOURS)
    return sorted(set(segments), key=lambda s: (known.index(s) if s in known else len(known), s))


def segment_sizes(cells: pl.DataFrame) -> pl.DataFrame:
    """segment, customers, share, monetary (total spend), mean_monetary; best segment first."""
    sizes = cells.group_by("segment").agg(pl.col("customers").sum(), pl.col("monetary").sum())
    total = sizes.get_column("customers").sum() or 1
    order = segment_order(sizes.get_column("segment"))
    return (
        sizes.with_columns(
            (pl.col("customers") / total).alias("share"),
            (pl.col("monetary") / pl.col("customers")).alias("mean_monetary"),
            pl.col("segment").replace_strict({s: i for i, s in enumerate(order)}, return_dtype=pl.Int32).alias("rank"),
        )
        .sort("rank")
        .drop("rank")
    )


def grid_cells(cells: pl.DataFrame) -> pl.DataFrame:
    """r_score, f_score, segment, customers, mean_monetary: one row per occupied grid cell."""
    return (
        cells.group_by("r_score", "f_score", "segment")
        .agg(pl.col("customers").sum(), (pl.col("monetary").sum() / pl.col("customers").sum()).alias("mean_monetary"))
        .sort("r_score", "f_score")
    )


def cluster_sizes(cells: pl.DataFrame, clusters: pl.DataFrame) -> pl.DataFrame:
    """The run's clusters with the customers the filters keep in each (0 when none)."""
    counted = cells.group_by("cluster_id").agg(pl.col("customers").sum().alias("filtered"))
    return (
        clusters.join(counted, on="cluster_id", how="left")
        .with_columns(pl.col("filtered").fill_null(0))
        .sort("filtered", descending=True)
    )


# -- figures ---------------------------------------------------------------------------------------


def treemap_figure(sizes: pl.DataFrame, selected: list[str] | None = None) -> go.Figure:
    """Customers per named segment, one tile each in the segment's colour; the listed segments outlined.

    The segments hang under an explicit root: Plotly zooms into a top-level tile that is clicked,
    but not into a leaf, and a click here means "list these customers", not "zoom".
    """
    segments = sizes.get_column("segment").to_list()
    chosen = set(selected or [])
    total = int(sizes.get_column("customers").sum() or 0)
    spend = float(sizes.get_column("monetary").sum() or 0)
    treemap = {
        "type": "treemap",
        "ids": [ROOT, *segments],
        "labels": [ROOT, *segments],
        "parents": ["", *[ROOT] * len(segments)],
        "values": [total, *sizes.get_column("customers").to_list()],
        "branchvalues": "total",
        "marker": {
            "colors": ["#f8f9fa", *[SEGMENT_COLOURS.get(s, "#dddddd") for s in segments]],
            "line": {
                "color": ["#ffffff", *["#212529" if s in chosen else "#ffffff" for s in segments]],
                "width": [0, *[4 if s in chosen else 1 for s in segments]],
            },
        },
        "customdata": [(1.0, spend / total if total else None), *sizes.select("share", "mean_monetary").rows()],
        "texttemplate": "<b>%{label}</b><br>%{value:,} customers<br>%{customdata[0]:.1%}",
        "hovertemplate": "<b>%{label}</b><br>%{value:,} customers (%{customdata[0]:.1%})<br>"
        "mean spend %{customdata[1]:,.0f}<extra></extra>",
        "sort": False,
        "pathbar": {"visible": False},
    }
    layout = {
        "title": {"text": "Customers by RFM segment (click a tile to list them)"},
        "margin": {"t": 50, "l": 5, "r": 5, "b": 5},
    }
    return ui.figure([treemap], layout)


def grid_figure(grid: pl.DataFrame, selected: list[str] | None = None) -> go.Figure:
    """The RFM grid: recency score down (5 = bought lately, on top), frequency score across; the
    cells of the listed segments outlined."""
    scores = [1, 2, 3, 4, 5]
    cells = {(r, f): (segment, n, spend) for r, f, segment, n, spend in grid.rows()}
    z = [[cells[(r, f)][1] if (r, f) in cells else None for f in scores] for r in scores]
    custom = [[[cells[(r, f)][0], cells[(r, f)][2]] if (r, f) in cells else ["", None] for f in scores] for r in scores]
    text = [[f"{cells[(r, f)][0]}<br>{cells[(r, f)][1]:,}" if (r, f) in cells else "" for f in scores] for r in scores]
    heatmap = {
        "type": "heatmap",
        "x": scores,
        "y": scores,
        "z": z,
        "text": text,
        "texttemplate": "%{text}",
        "textfont": {"size": 10},
        "customdata": custom,
        "colorscale": ui.colorscale("Blues"),
        "colorbar": {"title": {"text": "Customers"}},
        "hovertemplate": "R %{y}, F %{x}: %{customdata[0]}<br>%{z:,} customers<br>"
        "mean spend %{customdata[1]:,.0f}<extra></extra>",
        "xgap": 2,
        "ygap": 2,
    }
    outlines = [
        {
            "type": "rect",
            "x0": f - 0.5,
            "x1": f + 0.5,
            "y0": r - 0.5,
            "y1": r + 0.5,
            "line": {"color": "#212529", "width": 3},
        }
        for (r, f), (segment, _, _) in cells.items()
        if segment in (selected or [])
    ]
    layout = {
        "title": {"text": "RFM grid: recency score x frequency score"},
        "margin": {"t": 50},
        "shapes": outlines,
        "xaxis": {"title": {"text": "Frequency score (5 = buys most often)"}, "dtick": 1},
        "yaxis": {"title": {"text": "Recency score (5 = bought most recently)"}, "dtick": 1},
    }
    return ui.figure([heatmap], layout)


def spread_sampled(customers: int) -> bool:
    """Whether the quartiles of ``customers`` come from the stored sample: from SPREAD_SAMPLED_FROM
    on; below, exact quartiles of every customer cost little and a sample would be thin."""
    return customers >= SPREAD_SAMPLED_FROM


def spread_figure(spread: pl.DataFrame, modulus: int = 1) -> go.Figure:
    """Median recency, frequency and spend by segment, with the interquartile range as error bars.

    Three panels side by side sharing the segment axis, laid out by hand and built in one go: the
    same figure through make_subplots and trace-by-trace updates takes seven times as long, which
    shows on every filter change."""
    order = segment_order(spread.get_column("segment"))
    rows = {row["segment"]: row for row in spread.iter_rows(named=True)}
    measures = (
        ("recency", "Days since last purchase"),
        ("frequency", "Purchases"),
        ("monetary", "Spend"),
    )
    gap = 0.2 / len(measures)
    width = (1 - gap * (len(measures) - 1)) / len(measures)
    traces, layout = [], {}
    for column, (measure, title) in enumerate(measures):
        quartiles = [rows[s][measure] for s in order]  # [q1, median, q3]: quantile_cont at 0.25, 0.5, 0.75
        q1, median, q3 = ([q[i] for q in quartiles] for i in range(3))
        axis = "" if column == 0 else str(column + 1)
        left = column * (width + gap)
        traces.append(
            {
                "type": "bar",
                "y": order,
                "x": median,
                "orientation": "h",
                "xaxis": f"x{axis}",
                "yaxis": "y",
                "marker": {"color": [SEGMENT_COLOURS.get(s, "#dddddd") for s in order]},
                "error_x": {
                    "type": "data",
                    "symmetric": False,
                    "array": [high - mid for high, mid in zip(q3, median, strict=True)],
                    "arrayminus": [mid - low for low, mid in zip(q1, median, strict=True)],
                    "color": "#444",
                    "thickness": 1,
                },
                "customdata": list(zip(q1, q3, [rows[s]["customers"] for s in order], strict=True)),
                "hovertemplate": "%{y}: median %{x:,.0f} (quartiles %{customdata[0]:,.0f} to "
                "%{customdata[1]:,.0f}; %{customdata[2]:,} customers)<extra>" + title + "</extra>",
                "showlegend": False,
            }
        )
        layout[f"xaxis{axis}"] = {"domain": [left, left + width], "anchor": "y"}
        layout.setdefault("annotations", []).append(
            {
                "text": title,
                "x": left + width / 2,
                "y": 1,
                "xref": "paper",
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 14},
            }
        )
    layout["yaxis"] = {"autorange": "reversed", "automargin": True, "anchor": "x"}
    layout["title"] = {
        "text": "Recency, frequency and spend by segment: median, bars to the quartiles"
        + (f" (from a fixed sample of 1 customer in {modulus})" if modulus > 1 else "")
    }
    layout["margin"] = {"t": 80, "l": 10}
    layout["height"] = 420
    return ui.figure(traces, layout)


def headline_cards(sizes: pl.DataFrame, customers: int, global_filters: dict | None) -> dbc.Row:
    """Scored customers (of those the filters keep), the best segments' share and the win-back pool."""
    scored = int(sizes.get_column("customers").sum() or 0)
    spend = float(sizes.get_column("monetary").sum() or 0)

    def part(segments: tuple[str, ...]) -> tuple[int, float]:
        chosen = sizes.filter(pl.col("segment").is_in(list(segments)))
        return int(chosen.get_column("customers").sum() or 0), float(chosen.get_column("monetary").sum() or 0)

    best, best_spend = part(BEST)
    at_risk, at_risk_spend = part(AT_RISK)
    cards = [
        ui.headline(
            "Customers with RFM scores",
            ui.count(scored),
            f"of {ui.count(customers)} customers ({filters.describe(global_filters)}); "
            f"{ui.count(customers - scored)} without purchases",
        ),
        ui.headline(
            "Champions and Loyal",
            ui.percent(best / scored) if scored else "–",
            f"{ui.count(best)} customers, {ui.percent(best_spend / spend) if spend else '–'} of spend",
        ),
        ui.headline(
            "At risk of leaving",
            ui.percent(at_risk / scored) if scored else "–",
            f"{ui.count(at_risk)} customers (At Risk, Can't Lose Them), "
            f"{ui.percent(at_risk_spend / spend) if spend else '–'} of spend",
        ),
        ui.headline("Total spend", ui.money(spend), "of the scored customers"),
    ]
    return dbc.Row([dbc.Col(card, md=3, sm=6, className="mb-3") for card in cards])


def clusters_table(clusters: pl.DataFrame) -> dbc.Table:
    total = clusters.get_column("filtered").sum() or 1
    return ui.table(
        [
            {
                "name": row["cluster_name"],
                "customers": ui.count(row["filtered"]),
                "share": ui.percent(row["filtered"] / total),
                "recency": ui.count(row["centroid_recency_days"]),
                "frequency": f"{row['centroid_frequency']:,.1f}",
                "monetary": ui.money(row["centroid_monetary"]),
            }
            for row in clusters.iter_rows(named=True)
        ],
        [
            ("name", "Cluster"),
            ("customers", "Customers"),
            ("share", "Share"),
            ("recency", "Centre: days since purchase"),
            ("frequency", "Centre: purchases"),
            ("monetary", "Centre: spend"),
        ],
        numeric=("customers", "share", "recency", "frequency", "monetary"),
    )


# -- layout and callbacks --------------------------------------------------------------------------


#: The segments chosen, kept in the address as they are chosen.
PAGE_STATE = page_state.sync("rfm", {"segment": "rfm-segment"})


def layout(segment: str | None = None, **_query: str) -> html.Div:
    """``?segment=At Risk,Can't Lose Them`` opens the customer list on those segments."""
    try:
        data = reader()
        run = latest_run(data)
        if run is None:
            return ui.unavailable(absent_sentence(data))
        for mart in ("mart_rfm", "mart_rfm_cube"):
            if not data.has(mart):
                return ui.outdated(mart, "segrisk train rfm")
    except SegriskError as exc:
        return ui.failed(exc)
    as_of = run["parameters"].get("as_of")
    chosen = [s for s in (segment or "").split(",") if s]
    return html.Div(
        [
            html.H2("RFM", className="h4 mb-1"),
            page_state.store(PAGE_STATE),
            html.P(
                f"RFM run {run['run_id']}, {run['finished_at']:%Y-%m-%d %H:%M} UTC"
                + (f", recency counted to {as_of}" if as_of else "")
                + ". Scores are quintiles 1-5 (5 best); segments follow the standard map of recency and "
                "frequency scores; clusters are K-Means on log recency, frequency and spend.",
                className="small text-muted",
            ),
            dcc.Loading(html.Div(id="rfm-headline"), delay_show=300),
            html.Div(id="rfm-note"),
            dbc.Row(
                [
                    dbc.Col(dcc.Graph(id="rfm-treemap", style=HIDDEN), lg=6),
                    dbc.Col(dcc.Graph(id="rfm-grid", style=HIDDEN), lg=6),
                ]
            ),
            dcc.Loading(html.Div(id="rfm-spread"), delay_show=300),
            dbc.Row(dbc.Col([html.H3("K-Means clusters", className="h6 mt-3"), html.Div(id="rfm-clusters")], lg=8)),
            dbc.Row(
                dbc.Col(
                    dcc.Dropdown(
                        id="rfm-segment",
                        options=[{"value": s, "label": s} for s in SEGMENT_COLOURS],
                        value=chosen,
                        multi=True,
                        placeholder="Segment: all",
                    ),
                    md=4,
                ),
                className="mb-2 mt-3",
            ),
            TABLE.layout("Customers"),
        ]
    )


@callback(
    Output("rfm-headline", "children"),
    Output("rfm-note", "children"),
    Output("rfm-treemap", "figure"),
    Output("rfm-treemap", "style"),
    Output("rfm-grid", "figure"),
    Output("rfm-grid", "style"),
    Output("rfm-clusters", "children"),
    Input("filters", "data"),
    Input("rfm-segment", "value"),
)
def show_segments(global_filters: dict | None, segments: list[str] | None = None):
    """Headline, treemap, grid and clusters; a segment choice redraws them (it outlines the segment,
    and a new treemap undoes the zoom Plotly does on a click)."""
    try:
        data = reader()
        run = latest_run(data)
        if run is None:
            return ui.unavailable(absent_sentence(data)), None, no_update, HIDDEN, no_update, HIDDEN, None
        params = filters.params(global_filters)
        cells = (
            data.query("rfm_cells", **params, run_id=run["run_id"])
            if filters.is_filtered(global_filters)
            else data.query("rfm_cells_all", run_id=run["run_id"])
        )
        customers = int(data.query("filtered_count", **params).item())
        clusters = data.query("rfm_clusters", run_id=run["run_id"])
    except SegriskError as exc:
        return ui.failed(exc), None, no_update, HIDDEN, no_update, HIDDEN, None
    sizes = segment_sizes(cells)
    headline = headline_cards(sizes, customers, global_filters)
    if cells.height == 0:
        note = ui.unavailable("No customer with RFM scores matches the current filters.")
        return headline, note, no_update, HIDDEN, no_update, HIDDEN, None
    # A viewer sees no mean spend of a segment or grid cell of too few customers (the headline is read before).
    sizes, hidden_segments = disclosure.suppress(sizes, ["mean_monetary"])
    grid, hidden_cells = disclosure.suppress(grid_cells(cells), ["mean_monetary"])
    return (
        headline,
        disclosure.note(hidden_segments + hidden_cells),
        treemap_figure(sizes, segments),
        SHOWN,
        grid_figure(grid, segments),
        SHOWN,
        clusters_table(cluster_sizes(cells, clusters)),
    )


@callback(Output("rfm-spread", "children"), Input("filters", "data"))
def show_spread(global_filters: dict | None):
    try:
        data = reader()
        run = latest_run(data)
        if run is None:
            return None
        params = filters.params(global_filters)
        sampled = spread_sampled(int(data.query("filtered_count", **params).item())) and data.has(RFM_SAMPLE)
        spread = filters.scoped_query(
            data, "rfm_spread_sampled" if sampled else "rfm_spread", global_filters, run_id=run["run_id"]
        )
        modulus = RFM_SAMPLE_EVERY if sampled else 1
    except SegriskError as exc:
        return ui.failed(exc)
    # A segment of too few customers (sampled ones, where sampled) leaves the chart for a viewer.
    spread, hidden = disclosure.suppress(spread, ["recency", "frequency", "monetary"])
    spread = spread.filter(pl.col("recency").is_not_null()) if hidden else spread
    if spread.height == 0:
        return disclosure.note(hidden)
    graph = dcc.Graph(id="rfm-spread-chart", figure=spread_figure(spread, modulus))
    return html.Div([graph, disclosure.note(hidden)]) if hidden else graph


@callback(
    Output(f"{TABLE.name}-rows", "children"),
    Output(f"{TABLE.name}-page", "max_value"),
    Output(f"{TABLE.name}-summary", "children"),
    Input("filters", "data"),
    Input("rfm-segment", "value"),
    Input(f"{TABLE.name}-page", "active_page"),
    Input(f"{TABLE.name}-sort", "value"),
    Input(f"{TABLE.name}-direction", "value"),
)
def show_table(global_filters, segments, page, sort, direction):
    try:
        data = reader()
        params = table_params(data, global_filters, segments)
        if params is None:
            return ui.unavailable(absent_sentence(data)), 1, ""
        table, pages, summary = TABLE.render(data, params, page, sort, direction)
    except SegriskError as exc:
        return ui.failed(exc), 1, ""
    return table, pages, summary


def table_params(data: WarehouseReader, global_filters: dict | None, segments: list[str] | None) -> dict | None:
    """The customer list's parameters: latest run, global filters, chosen segments (None without a run)."""
    run = latest_run(data)
    if run is None:
        return None
    return {**filters.params(global_filters), "run_id": run["run_id"], "segments": [str(s) for s in segments or []]}


@callback(
    Output(f"{TABLE.name}-download", "data"),
    Output(f"{TABLE.name}-download-message", "children"),
    Input(f"{TABLE.name}-download-button", "n_clicks"),
    State("filters", "data"),
    State("rfm-segment", "value"),
    State(f"{TABLE.name}-sort", "value"),
    State(f"{TABLE.name}-direction", "value"),
    prevent_initial_call=True,
)
def download(_clicks, global_filters, segments, sort, direction):
    try:
        data = reader()
        params = table_params(data, global_filters, segments)
        if params is None:
            return no_update, absent_sentence(data)
        text = TABLE.csv(data, params, sort, direction != "asc")
    except (SegriskError, ValueError) as exc:
        return no_update, str(exc)
    return dcc.send_string(text, "rfm_customers.csv"), ""


@callback(
    Output("rfm-segment", "value"),
    Input("rfm-treemap", "clickData"),
    Input("rfm-grid", "clickData"),
    prevent_initial_call=True,
)
def list_clicked_segment(treemap_click: dict | None, grid_click: dict | None):
    """A treemap tile or a grid cell lists its segment's customers below."""
    click = treemap_click if ctx.triggered_id == "rfm-treemap" else grid_click
    points = (click or {}).get("points") or []
    if not points:
        return no_update
    point = points[0]
    if ctx.triggered_id == "rfm-treemap":
        segment = point.get("label")
        if segment == ROOT:
            return []
    else:
        # Dash leaves a heatmap cell's customdata out of clickData: the scores name the segment.
        try:
            segment = segment_of(int(point["y"]), int(point["x"]))
        except (KeyError, TypeError, ValueError):
            return no_update
    return [segment] if segment in SEGMENT_COLOURS else no_update

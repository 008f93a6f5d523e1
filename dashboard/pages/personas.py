"""Personas: who the customer segments are, how they differ, how they were chosen and how they moved.

The scatter and the persona cards follow the global filters; clicking a point or a card's button
filters every page to that persona. The profile heatmap, the k-selection chart and the migration
Sankey describe the segmentation runs themselves and are not filtered. Names and strategies come
from the latest run with the renames of the application-state store laid over them, so an
administrator's edit shows at once.
"""

from __future__ import annotations

import json
import threading
from typing import NamedTuple

import dash
import dash_bootstrap_components as dbc
import flask
import plotly.graph_objects as go
import polars as pl
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from dashboard import disclosure, filters, ui
from dashboard.auth import audit, can, current_user
from dashboard.data import WarehouseReader, reader, register
from dashboard.state import acknowledged_ids, persona_labels, persona_names, store
from warehouse.errors import SegriskError
from warehouse.history import latest_run_of

dash.register_page(__name__, path="/personas", name="Personas", order=1)

#: Most points the scatter sends to the browser, whatever the number of customers.
SCATTER_LIMIT = 5_000
#: Features in the profile comparison heatmap.
PROFILE_FEATURES = 12
#: Node keys of customers present in only one of the two compared runs.
NEW, GONE = "new", "gone"

LATEST_RUN = latest_run_of("segments")

register(
    # The latest two segments runs, newest first, in ml_latest_runs' order (so the first is its run).
    personas_runs="SELECT run_id, finished_at, metrics FROM ml_model_runs WHERE model_kind = 'segments' "
    "ORDER BY finished_at DESC NULLS LAST, run_id DESC LIMIT 2",
    personas_summary="SELECT segment_key, persona_name, description, archetype, strategy, manual_underwriting, "
    "customers, share, top_features FROM ml_latest_segment_summary ORDER BY segment_id",
    personas_run_names="SELECT segment_key, persona_name FROM ml_segment_summary WHERE run_id = $run_id",
    # A sample: the first customers in the order of a hash of their id (deterministic, and a customer
    # shown unfiltered stays shown when a filter keeps them). mart_persona_map is stored in that order,
    # so the first rows meeting the filters are the sample, and the scan stops once it has them.
    personas_scatter="SELECT customer_id, segment_key, pca_x, pca_y FROM (SELECT p.customer_id, "
    "p.persona_key AS segment_key, p.pca_x, p.pca_y FROM mart_persona_map p "
    f"WHERE {filters.FILTERED} LIMIT $limit) ORDER BY customer_id",
    personas_figures="SELECT p.persona_key, sum(p.customers)::BIGINT AS customers, "
    "sum(p.pd_sum) / nullif(sum(p.scored), 0) AS mean_pd, "
    "sum(p.defaulted) / nullif(sum(p.known_outcomes), 0) AS default_rate, sum(p.open_alerts) AS open_alerts "
    f"FROM {filters.CUBE} p WHERE {filters.FILTERED} GROUP BY ALL",
    # Acknowledged on the dashboard since the last model run: not yet in the profile's counts.
    personas_acknowledged_since="SELECT p.persona_key, count(*) AS acknowledged FROM ml_latest_alerts a "
    f"JOIN mart_customer_profile p USING (customer_id) WHERE {filters.FILTERED} AND NOT a.is_acknowledged "
    "AND list_contains($acknowledged, a.alert_id) GROUP BY ALL",
    # Each persona's most distinctive features first, so every persona's signature shows.
    personas_profiles="WITH latest AS (SELECT * FROM ml_segment_profiles WHERE run_id = " + LATEST_RUN + "), "
    "top AS (SELECT feature, min(distinctiveness_rank) AS best_rank, max(abs(z_score)) AS spread FROM latest "
    "GROUP BY feature ORDER BY best_rank, spread DESC, feature LIMIT $limit) "
    "SELECT l.segment_id, l.segment_key, l.feature, l.z_score, l.segment_mean, l.population_mean "
    "FROM latest l JOIN top USING (feature) ORDER BY l.segment_id, top.best_rank, top.spread DESC, l.feature",
    personas_k_selection="SELECT k, inertia, silhouette, is_elbow, is_chosen FROM ml_k_selection "
    f"WHERE run_id = {LATEST_RUN} ORDER BY k",
    personas_migration=f"SELECT coalesce(b.segment_key, '{NEW}') AS previous_key, "
    f"coalesce(a.segment_key, '{GONE}') AS current_key, count(*) AS customers "
    "FROM (SELECT customer_id, segment_key FROM ml_segments WHERE run_id = $previous) b "
    "FULL JOIN (SELECT customer_id, segment_key FROM ml_segments WHERE run_id = $current) a USING (customer_id) "
    "GROUP BY ALL ORDER BY ALL",
)


def label(key: str, names: dict[str, str]) -> str:
    """How a persona is called on every chart: ``S3 · Credit Active Middle``."""
    return f"{key} · {names[key]}" if key in names else key


def feature_label(feature: str) -> str:
    return feature.replace("_", " ")


# ---- queries -----------------------------------------------------------------------------------


def scatter_points(data: WarehouseReader, global_filters: dict | None, limit: int = SCATTER_LIMIT) -> pl.DataFrame:
    """Coordinates of at most ``limit`` customers under the filters, always the same ones."""
    return data.query("personas_scatter", **filters.params(global_filters), limit=limit)


def persona_figures(data: WarehouseReader, global_filters: dict | None) -> pl.DataFrame:
    """Per persona under the filters: customers, mean PD, default rate and open alerts (NULL when absent,
    and for a viewer when the persona has too few customers in view: ``is_hidden`` says so)."""
    figures, _hidden = disclosure.suppress(
        _persona_figures(data, global_filters), ["mean_pd", "default_rate", "open_alerts"], flag="is_hidden"
    )
    return figures


def _persona_figures(data: WarehouseReader, global_filters: dict | None) -> pl.DataFrame:
    params = filters.params(global_filters)
    figures = data.query("personas_figures", **params)
    if not data.has("ml_latest_alerts"):
        return figures.with_columns(pl.lit(None, dtype=pl.Int64).alias("open_alerts"))
    acknowledged = acknowledged_ids(data)
    if not acknowledged:
        return figures.with_columns(pl.col("open_alerts").cast(pl.Int64))
    since = data.query("personas_acknowledged_since", **params, acknowledged=acknowledged)
    return (
        figures.join(since, on="persona_key", how="left")
        .with_columns((pl.col("open_alerts") - pl.col("acknowledged").fill_null(0)).cast(pl.Int64))
        .drop("acknowledged")
    )


def profile_matrix(data: WarehouseReader, limit: int = PROFILE_FEATURES) -> pl.DataFrame:
    return data.query("personas_profiles", limit=limit)


class Migration(NamedTuple):
    """Customers by (previous persona, current persona) between the latest two segmentation runs.

    (A named tuple, not a dataclass: Dash runs page modules before they are in ``sys.modules``.)
    """

    previous_run: str | None
    current_run: str
    previous_finished: object
    current_finished: object
    flows: pl.DataFrame  # previous_key, current_key, customers (empty with one run)
    previous_names: dict[str, str]


_MIGRATION: dict[str, object] = {}
_MIGRATION_LOCK = threading.Lock()


def migration(data: WarehouseReader) -> Migration:
    """The migration between the latest two runs, computed once per warehouse file: it joins two
    full runs (a few hundred milliseconds at a million customers), too slow for every page view."""
    stamp = data.stamp()
    with _MIGRATION_LOCK:
        if _MIGRATION.get("stamp") != stamp or _MIGRATION.get("path") != data.path:
            _MIGRATION.update(stamp=stamp, path=data.path, migration=_compute_migration(data))
        return _MIGRATION["migration"]  # type: ignore[return-value]


def _compute_migration(data: WarehouseReader) -> Migration:
    runs = data.query("personas_runs")
    current, current_finished = runs.item(0, "run_id"), runs.item(0, "finished_at")
    if runs.height < 2:
        return Migration(None, current, None, current_finished, pl.DataFrame(), {})
    previous, previous_finished = runs.item(1, "run_id"), runs.item(1, "finished_at")
    flows = data.query("personas_migration", previous=previous, current=current)
    names = dict(data.query("personas_run_names", run_id=previous).rows())
    return Migration(previous, current, previous_finished, current_finished, flows, names)


# ---- figures -----------------------------------------------------------------------------------


def scatter_figure(points: pl.DataFrame, names: dict[str, str]) -> go.Figure:
    """Customers on the first two principal components, one trace (and colour) per persona."""
    present = set(points.get_column("segment_key").to_list())
    keys = [k for k in names if k in present] + sorted(present - set(names))
    # Viewers see aggregates only: the points without the customer numbers on hover.
    show_ids = not flask.has_request_context() or can(current_user()[1], "customer_level")
    traces = []
    for key in keys:
        part = points.filter(pl.col("segment_key") == key)
        # Arrays, not lists: Plotly encodes them ten times faster, and a click sends the point's
        # persona key back (customdata) for the cross-filter.
        trace = {
            "type": "scatter",
            "x": part.get_column("pca_x").to_numpy(),
            "y": part.get_column("pca_y").to_numpy(),
            "mode": "markers",
            "name": label(key, names),
            "marker": {"color": ui.persona_colour(key), "size": 5, "opacity": 0.75},
            "customdata": part.get_column("segment_key").to_numpy(),
            "hovertemplate": ("Customer %{text}" if show_ids else "") + "<extra>" + label(key, names) + "</extra>",
        }
        if show_ids:
            trace["text"] = part.get_column("customer_id").to_numpy()
        traces.append(trace)
    layout = {
        "title": {"text": "Customers by persona (click a point to filter)"},
        "xaxis": {"title": {"text": "First principal component"}},
        "yaxis": {"title": {"text": "Second principal component"}},
        "legend": {"title": {"text": "Persona"}},
        "margin": {"t": 50, "r": 10},
        "uirevision": "personas-scatter",  # keeps zoom and hidden traces while filters change
    }
    return ui.figure(traces, layout)


def profile_figure(profiles: pl.DataFrame, names: dict[str, str]) -> go.Figure:
    """Personas x their most distinctive features, coloured by z-score (blue below average, red above)."""
    keys = profiles.get_column("segment_key").unique(maintain_order=True).to_list()
    features = profiles.get_column("feature").unique(maintain_order=True).to_list()
    columns = ("segment_key", "feature", "z_score", "segment_mean", "population_mean")
    cells = {(k, f): (z, mean, everyone) for k, f, z, mean, everyone in profiles.select(columns).rows()}
    z = [[cells.get((k, f), (None, None, None))[0] for f in features] for k in keys]
    custom = [[list(cells.get((k, f), (None, None, None))[1:]) for f in features] for k in keys]
    limit = max((abs(v) for row in z for v in row if v is not None), default=1.0)
    heatmap = {
        "type": "heatmap",
        "z": z,
        "x": [feature_label(f) for f in features],
        "y": [label(k, names) for k in keys],
        "customdata": custom,
        "colorscale": ui.colorscale("RdBu"),
        "reversescale": True,
        "zmid": 0,
        "zmin": -limit,
        "zmax": limit,
        "texttemplate": "%{z:.1f}",
        "colorbar": {"title": {"text": "z-score"}},
        "hovertemplate": "%{y}<br>%{x}: z = %{z:.2f}<br>persona mean %{customdata[0]:,.2f}, "
        "everyone %{customdata[1]:,.2f}<extra></extra>",
    }
    layout = {
        "title": {"text": "How the personas differ (z-scores of their most distinctive features)"},
        "margin": {"t": 50, "l": 10},
        "yaxis": {"autorange": "reversed", "automargin": True},
        "xaxis": {"tickangle": -35, "automargin": True},
    }
    return ui.figure([heatmap], layout)


def k_figure(k_table: pl.DataFrame) -> go.Figure:
    """Inertia (the elbow) and silhouette by number of personas tried, the chosen k marked."""
    ks = k_table.get_column("k").to_list()
    traces = [
        {
            "type": "scatter",
            "x": ks,
            "y": k_table.get_column("inertia").to_list(),
            "name": "Inertia (lower is tighter)",
            "mode": "lines+markers",
            "line": {"color": "#332288"},
            "hovertemplate": "k = %{x}: inertia %{y:,.0f}<extra></extra>",
        },
        {
            "type": "scatter",
            "x": ks,
            "y": k_table.get_column("silhouette").to_list(),
            "name": "Silhouette (higher is better)",
            "mode": "lines+markers",
            "line": {"color": "#CC6677"},
            "yaxis": "y2",
            "hovertemplate": "k = %{x}: silhouette %{y:.3f}<extra></extra>",
        },
    ]
    # The chosen k and the elbow as vertical lines across the plot, each with its label.
    marks, labels = [], []
    for k, is_elbow, is_chosen in k_table.select("k", "is_elbow", "is_chosen").rows():
        if not (is_chosen or is_elbow):
            continue
        line = {"color": "#117733", "width": 2} if is_chosen else {"color": "#888888", "dash": "dot"}
        marks.append(
            {"type": "line", "x0": k, "x1": k, "xref": "x", "y0": 0, "y1": 1, "yref": "y domain", "line": line}
        )
        labels.append(
            {
                "text": f"chosen k = {k}" if is_chosen else f"elbow k = {k}",
                "x": k,
                "xref": "x",
                "y": 1 if is_chosen else 0,
                "yref": "y domain",
                "xanchor": "left",
                "yanchor": "top" if is_chosen else "bottom",
                "showarrow": False,
            }
        )
    layout = {
        "title": {"text": "Choosing the number of personas"},
        "xaxis": {"title": {"text": "Personas tried (k)"}, "dtick": 1},
        "yaxis": {"title": {"text": "Inertia"}},
        "yaxis2": {
            "title": {"text": "Silhouette"},
            "overlaying": "y",
            "side": "right",
            "tickmode": "auto",
            "tickformat": ".2f",
            "showgrid": False,
        },
        "shapes": marks,
        "annotations": labels,
        "legend": {"orientation": "h", "y": -0.25},
        "margin": {"t": 60},
    }
    return ui.figure(traces, layout)


def _rgba(hex_colour: str, alpha: float) -> str:
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def migration_figure(moved: Migration, names: dict[str, str]) -> go.Figure:
    """Previous run's personas on the left, latest run's on the right, customers flowing between."""
    flows = moved.flows
    previous_names = {**moved.previous_names, **{k: v for k, v in names.items() if k in moved.previous_names}}
    left = sorted(set(flows.get_column("previous_key").to_list()), key=_node_order)
    right = sorted(set(flows.get_column("current_key").to_list()), key=_node_order)
    words = {NEW: "Not in previous run", GONE: "Not in latest run"}
    nodes = [words.get(k) or label(k, previous_names) for k in left] + [words.get(k) or label(k, names) for k in right]
    colours = [ui.persona_colour(k) for k in left + right]
    source = [left.index(k) for k in flows.get_column("previous_key").to_list()]
    target = [len(left) + right.index(k) for k in flows.get_column("current_key").to_list()]
    sankey = {
        "type": "sankey",
        "node": {"label": nodes, "color": colours, "pad": 12, "thickness": 14},
        "link": {
            "source": source,
            "target": target,
            "value": flows.get_column("customers").to_list(),
            "color": [_rgba(colours[s], 0.45) for s in source],
            "hovertemplate": "%{source.label} → %{target.label}: %{value:,} customers<extra></extra>",
        },
        "valueformat": ",d",
    }
    layout = {"title": {"text": "Persona migration between the latest two runs"}, "margin": {"t": 50, "l": 10, "r": 10}}
    return ui.figure([sankey], layout)


def _node_order(key: str) -> tuple[int, int, str]:
    """S1, S2, ... S10 in number order; customers new to or gone from a run last."""
    if key in (NEW, GONE):
        return (1, 0, key)
    return (0, int(key[1:]) if key[1:].isdigit() else 0, key)


def migration_sentence(moved: Migration) -> str:
    flows = moved.flows
    both = flows.filter((pl.col("previous_key") != NEW) & (pl.col("current_key") != GONE))
    total = int(both.get_column("customers").sum() or 0)
    changed = int(both.filter(pl.col("previous_key") != pl.col("current_key")).get_column("customers").sum() or 0)
    share = ui.percent(changed / total) if total else "–"
    return (
        f"{changed:,} of {total:,} customers ({share}) in both runs changed persona between run "
        f"{moved.previous_run} ({_when(moved.previous_finished)}) and run {moved.current_run} "
        f"({_when(moved.current_finished)}); all customers, not filtered."
    )


def _when(finished: object) -> str:
    return str(finished)[:16] if finished is not None else "unknown time"


# ---- layout pieces -----------------------------------------------------------------------------


def persona_card(row: dict, names: dict[str, str], strategies: dict[str, str], figures: dict | None) -> dbc.Card:
    """One persona: who they are (whole book), what to offer them, and their figures under the filters."""
    key = row["segment_key"]
    name, strategy = names.get(key, row["persona_name"]), strategies.get(key, row["strategy"])
    colour = ui.persona_colour(key)
    badges = []
    if row["archetype"] and row["archetype"] != name:
        badges.append(dbc.Badge(row["archetype"], color="light", text_color="dark", className="ms-1"))
    if row["manual_underwriting"]:
        badges.append(dbc.Badge("manual underwriting", color="danger", className="ms-1"))
    figures = figures or {}
    in_view = figures.get("customers") or 0
    stats = [
        ("In view", ui.count(in_view)),
        ("Mean PD", ui.percent(figures.get("mean_pd"), 2)),
        ("Default rate", ui.percent(figures.get("default_rate"), 2)),
        ("Open alerts", ui.count(figures.get("open_alerts"))),
    ]
    return dbc.Card(
        [
            dbc.CardHeader(
                [html.Span(key, className="fw-semibold me-2 text-muted"), html.Strong(name), *badges],
                style={"borderLeft": f"6px solid {colour}"},
            ),
            dbc.CardBody(
                [
                    html.Div(
                        f"{ui.count(row['customers'])} customers, {ui.percent(row['share'])} of the book",
                        className="small fw-semibold mb-1",
                    ),
                    html.P(row["description"] or "", className="small mb-1"),
                    html.P(
                        "Sets them apart: " + ", ".join(feature_label(f) for f in row["top_features"] or []),
                        className="small text-muted mb-2",
                    ),
                    html.P([html.Span("Strategy: ", className="fw-semibold"), strategy or "–"], className="small mb-2"),
                    dbc.Row(
                        [
                            dbc.Col(
                                [
                                    html.Div(title, className="text-muted small"),
                                    html.Div(value, className="fw-semibold"),
                                ],
                                xs=6,
                            )
                            for title, value in stats
                        ],
                        className="g-1 mb-2",
                    ),
                    dbc.Button(
                        "Show only this persona",
                        id={"type": "personas-pick", "key": key},
                        size="sm",
                        color="outline-primary",
                        className="py-0",
                    ),
                ]
            ),
        ],
        className="h-100" + ("" if in_view else " opacity-50"),
    )


def is_admin() -> bool:
    """True for a signed-in administrator (outside a request, such as a bare unit test, nobody is)."""
    return flask.has_request_context() and can(current_user()[1], "edit_personas")


def edit_form(summary: pl.DataFrame, names: dict[str, str]) -> dbc.Card:
    if not is_admin():
        return html.P(
            "Only administrators can rename personas or change their strategies.",
            className="small text-muted mt-3",
            id="personas-edit-note",
        )
    keys = summary.get_column("segment_key").to_list()
    return dbc.Card(
        dbc.CardBody(
            [
                html.H3("Rename a persona or change its strategy", className="h6"),
                dbc.Row(
                    [
                        dbc.Col(
                            [
                                dbc.Label("Persona", html_for="personas-edit-key", className="small"),
                                dcc.Dropdown(
                                    id="personas-edit-key",
                                    options=[{"value": k, "label": label(k, names)} for k in keys],
                                    clearable=False,
                                    placeholder="Choose a persona",
                                ),
                            ],
                            md=3,
                        ),
                        dbc.Col(
                            [
                                dbc.Label("Name", html_for="personas-edit-name", className="small"),
                                dbc.Input(id="personas-edit-name", maxLength=80),
                            ],
                            md=3,
                        ),
                        dbc.Col(
                            [
                                dbc.Label("Strategy", html_for="personas-edit-strategy", className="small"),
                                dbc.Textarea(id="personas-edit-strategy", rows=2, maxLength=500),
                            ],
                            md=5,
                        ),
                        dbc.Col(
                            dbc.Button("Save", id="personas-save", color="primary"), md=1, className="align-self-end"
                        ),
                    ],
                    className="g-2",
                ),
                html.Div(id="personas-edit-message", className="small mt-2"),
                html.P(
                    "Changes show here at once; the next model run copies them into the warehouse.",
                    className="small text-muted mb-0 mt-1",
                ),
            ]
        ),
        className="mt-3",
    )


def not_trained(data: WarehouseReader) -> str:
    """Why the page has nothing to show, in one sentence."""
    capabilities = (
        {c: (ok, why) for c, ok, why in data.query("capabilities").rows()} if data.has("meta_capabilities") else {}
    )
    supported, reason = capabilities.get("personas", (True, ""))
    if not supported:
        return f"Personas cannot be built on this dataset: it {reason}."
    return "No personas in this warehouse yet: run `segrisk train segments` to build them."


def layout(**_query: str) -> html.Div:
    try:
        data = reader()
        if not data.has("ml_latest_segment_summary") or not data.has("ml_k_selection"):
            return ui.unavailable(not_trained(data))
        summary = data.query("personas_summary")
        if summary.height == 0:
            return ui.unavailable(not_trained(data))
        run = data.query("personas_runs").row(0, named=True)
        k_table = data.query("personas_k_selection")
        names = persona_names(data)
    except SegriskError as exc:
        return ui.failed(exc)
    metrics = json.loads(run["metrics"]) if isinstance(run["metrics"], str) else run["metrics"] or {}
    cards = [
        ui.headline(
            "Personas",
            ui.count(summary.height),
            "k set by hand (--k)" if metrics.get("k_chosen_by") == "--k" else "k chosen by silhouette",
        ),
        ui.headline("Silhouette", f"{metrics['silhouette']:.3f}" if "silhouette" in metrics else "–", "-1 to 1"),
        ui.headline(
            "Stability",
            f"{metrics['stability_ari_seeds']:.3f}" if "stability_ari_seeds" in metrics else "–",
            "adjusted Rand index across seeds",
        ),
        ui.headline("Latest run", _when(run["finished_at"]), str(run["run_id"])),
    ]
    return html.Div(
        [
            html.H2("Personas", className="h4 mb-3"),
            dbc.Row([dbc.Col(card, md=3, sm=6, className="mb-3") for card in cards]),
            dcc.Store(id="personas-labels-version", data=0),
            dbc.Row(
                [
                    dbc.Col(
                        dcc.Loading([html.Div(id="personas-scatter-chart"), html.Div(id="personas-scatter-note")]), lg=6
                    ),
                    dbc.Col(dcc.Loading(html.Div(id="personas-profile-chart")), lg=6),
                ]
            ),
            html.H3("Persona cards", className="h5 mt-3"),
            html.Div(id="personas-cards-scope", className="small text-muted mb-2"),
            dcc.Loading(html.Div(id="personas-cards")),
            dbc.Row(
                [
                    dbc.Col(dcc.Graph(id="personas-k", figure=k_figure(k_table)), lg=5),
                    dbc.Col(dcc.Loading(html.Div(id="personas-migration")), lg=7),
                ],
                className="mt-3",
            ),
            edit_form(summary, names),
        ]
    )


# ---- callbacks ---------------------------------------------------------------------------------


@callback(
    Output("personas-scatter-chart", "children"),
    Output("personas-scatter-note", "children"),
    Input("filters", "data"),
    Input("personas-labels-version", "data"),
)
def show_scatter(global_filters: dict | None, _version: int):
    try:
        data = reader()
        points = scatter_points(data, global_filters)
        total = data.query("filtered_count", **filters.params(global_filters)).item()
        names = persona_names(data)
    except SegriskError as exc:
        return ui.failed(exc), None
    if points.height == 0:
        return ui.unavailable("No customers match the current filters."), None
    note = f"{points.height:,} of {total:,} customers ({filters.describe(global_filters)})"
    if points.height < total:
        note += ", a fixed sample"
    return dcc.Graph(id="personas-scatter", figure=scatter_figure(points, names)), html.P(
        note + ".", className="small text-muted"
    )


@callback(
    Output("personas-cards", "children"),
    Output("personas-cards-scope", "children"),
    Input("filters", "data"),
    Input("personas-labels-version", "data"),
)
def show_cards(global_filters: dict | None, _version: int):
    try:
        data = reader()
        summary = data.query("personas_summary")
        in_view = persona_figures(data, global_filters)
        figures = {row["persona_key"]: row for row in in_view.iter_rows(named=True)}
        names, strategies = persona_labels(data)
    except SegriskError as exc:
        return ui.failed(exc), None
    cards = [
        dbc.Col(
            persona_card(row, names, strategies, figures.get(row["segment_key"])), xl=3, lg=4, md=6, className="mb-3"
        )
        for row in summary.iter_rows(named=True)
    ]
    scope = (
        "Size and profile: the whole book. In view, mean PD, default rate and open alerts: "
        f"{filters.describe(global_filters)}."
    )
    if in_view.get_column("is_hidden").any():
        scope += " " + disclosure.group_note(disclosure.min_cell_size())
    return dbc.Row(cards, className="g-3"), scope


@callback(
    Output("personas-profile-chart", "children"),
    Output("personas-migration", "children"),
    Input("personas-labels-version", "data"),
)
def show_run_charts(_version: int):
    """Charts of the runs themselves: they change with a rename, not with the filters."""
    try:
        data = reader()
        profiles = profile_matrix(data)
        moved = migration(data)
        names = persona_names(data)
    except SegriskError as exc:
        return ui.failed(exc), ui.failed(exc)
    profile = (
        dcc.Graph(id="personas-profile", figure=profile_figure(profiles, names))
        if profiles.height
        else ui.unavailable("This segmentation run has no feature profiles.")
    )
    if moved.previous_run is None:
        sankey = ui.unavailable(
            f"Only one segmentation run so far ({moved.current_run}): persona migration shows after the next "
            "`segrisk train segments`."
        )
    else:
        sankey = html.Div(
            [
                dcc.Graph(id="personas-sankey", figure=migration_figure(moved, names)),
                html.P(migration_sentence(moved), className="small text-muted"),
            ]
        )
    return profile, sankey


def clicked_persona(click: dict | None) -> str | None:
    """The persona key of a clicked scatter point (None for anything else)."""
    points = (click or {}).get("points") or []
    custom = points[0].get("customdata") if points else None
    return custom if isinstance(custom, str) and custom else None


@callback(
    Output("filter-persona", "value", allow_duplicate=True),
    Input("personas-scatter", "clickData"),
    prevent_initial_call=True,
)
def filter_by_point(click: dict | None):
    key = clicked_persona(click)
    return [key] if key else no_update


@callback(
    Output("filter-persona", "value", allow_duplicate=True),
    Input({"type": "personas-pick", "key": ALL}, "n_clicks"),
    prevent_initial_call=True,
)
def filter_by_card(_clicks: list[int | None]):
    # Cards re-render with every filter change, which fires this with n_clicks None: only a click counts.
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not ctx.triggered[0].get("value"):
        return no_update
    return [trigger["key"]]


@callback(
    Output("personas-edit-name", "value"),
    Output("personas-edit-strategy", "value"),
    Input("personas-edit-key", "value"),
    prevent_initial_call=True,
)
def fill_form(key: str | None):
    if not key:
        return "", ""
    try:
        data = reader()
        names, strategies = persona_labels(data)
        return names.get(key, ""), strategies.get(key, "")
    except SegriskError:
        return "", ""


def save_label(
    data: WarehouseReader, key: str | None, name: str | None, strategy: str | None, user: str | None, role: str | None
) -> tuple[bool, str]:
    """Write the fields that changed to the store; (saved, message for the user)."""
    if not can(role, "edit_personas"):
        return False, "Only administrators can rename personas or change their strategies."
    names, strategies = persona_labels(data)
    if key not in names:
        return False, "Choose a persona first."
    # Only the changed fields: an untouched strategy keeps following the model's archetype.
    new_name = None if name is None or name.strip() == names[key] else name
    new_strategy = None if strategy is None or strategy.strip() == (strategies.get(key) or "") else strategy
    if new_name is None and new_strategy is None:
        return False, "Nothing changed."
    try:
        store(data).set_persona_label(key, user=user or "unknown", name=new_name, strategy=new_strategy)
    except ValueError as exc:
        return False, f"Not saved: {exc}."
    except OSError as exc:
        return False, f"Not saved: the application-state store could not be written ({exc})."
    changed = " and ".join(w for w, v in (("name", new_name), ("strategy", new_strategy)) if v is not None)
    return True, f"Saved the {changed} of {key} (by {user})."


@callback(
    Output("personas-labels-version", "data"),
    Output("personas-edit-message", "children"),
    Output("personas-edit-key", "options"),
    Input("personas-save", "n_clicks"),
    State("personas-edit-key", "value"),
    State("personas-edit-name", "value"),
    State("personas-edit-strategy", "value"),
    State("personas-labels-version", "data"),
    prevent_initial_call=True,
)
def save(clicks: int | None, key: str | None, name: str | None, strategy: str | None, version: int | None):
    if not clicks:
        return no_update, no_update, no_update
    user, role = current_user()
    try:
        data = reader()
        saved, message = save_label(data, key, name, strategy, user, role)
        audit("persona_edit", f"{key}: {message}", "ok" if saved else "not saved")
        names = persona_names(data)
    except SegriskError as exc:
        return no_update, html.Span(str(exc), className="text-danger"), no_update
    text = html.Span(message, className="text-success" if saved else "text-danger")
    if not saved:
        return no_update, text, no_update
    return (version or 0) + 1, text, [{"value": k, "label": label(k, names)} for k in names]

"""Global filters: persona, age band, risk grade, product held and region, on every page.

The filter bar sits in the app's frame, outside the pages, so a choice stays while the user
moves between pages. Its state lives in the URL's fragment (``#persona=S1&grade=D,E``): a view
can be bookmarked and shared, and Dash's page router, which listens to the path and the query
string only, does not rebuild the page when a filter changes. Charts filter the other charts by
writing to these dropdowns (cross-filtering), and every page callback takes the ``filters``
store as an input.

Queries apply the filters through one fixed SQL condition over ``mart_customer_profile p``,
with each filter bound as a list parameter (an empty list means "all").
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, clientside_callback, ctx, dcc, html, no_update

from . import disclosure
from .data import WarehouseReader, register
from .state import persona_names


@dataclass(frozen=True)
class Filter:
    key: str  # in the URL and the store
    label: str
    column: str  # of mart_customer_profile
    param: str  # bound parameter name


FILTERS = (
    Filter("persona", "Persona", "persona_key", "personas"),
    Filter("age", "Age band", "age_band", "age_bands"),
    Filter("grade", "Risk grade", "grade", "grades"),
    Filter("product", "Product held", "products", "products"),
    Filter("region", "Region", "region", "regions"),
)


def condition(alias: str) -> str:
    """The condition every filtered query puts on the customer dimensions of the table ``alias``:
    ``mart_customer_profile p``, or a fact mart (``mart_alerts``, ``mart_offers``, ``mart_rfm``) that
    carries the same columns. Products is a list column (a customer passes when they hold any chosen
    product); the rest are plain columns."""
    return " AND ".join(
        # list_filter is about 3x faster than list_has_any over a million short lists (DuckDB 2.0).
        f"(len(${f.param}) = 0 OR len(list_filter({alias}.{f.column}, lambda x: list_contains(${f.param}, x))) > 0)"
        if f.column == "products"
        else f"(len(${f.param}) = 0 OR list_contains(${f.param}, {alias}.{f.column}))"
        for f in FILTERS
    )


FILTERED = condition("p")
#: Counts and sums of customers per combination of the filter dimensions (warehouse/marts.py).
CUBE = "mart_customer_cube"
#: Aliases the pages give the fact marts (alerts, recommendations and RFM scores).
FACT_ALIASES = ("a", "r")

register(
    filter_personas="SELECT DISTINCT persona_key AS value, persona_name AS label FROM mart_customer_cube "
    "ORDER BY (persona_key = 'unassigned'), persona_key",
    # From the customer cube: some 30,000 rows at a million customers, with the same distinct values.
    filter_age_bands="SELECT DISTINCT age_band AS value FROM mart_customer_cube ORDER BY value",
    filter_grades="SELECT DISTINCT grade AS value FROM mart_customer_cube ORDER BY value",
    filter_products="SELECT DISTINCT unnest(products) AS value FROM mart_customer_cube ORDER BY value",
    filter_regions="SELECT DISTINCT region AS value FROM mart_customer_cube ORDER BY value",
    filtered_count=f"SELECT coalesce(sum(p.customers), 0)::BIGINT AS customers FROM {CUBE} p WHERE {FILTERED}",
    # The same from the profile, for a warehouse built before the cube.
    filtered_profile_count=f"SELECT count(*)::BIGINT AS customers FROM mart_customer_profile p WHERE {FILTERED}",
)

EMPTY: dict[str, list[str]] = {f.key: [] for f in FILTERS}

#: How filtered queries reach the customer dimensions of a fact table.
PROFILE_JOIN = "JOIN mart_customer_profile p USING (customer_id)"
FILTER_PARAMS = frozenset(f.param for f in FILTERS)


def without_filters(sql: str) -> str:
    """``sql`` with every global-filter condition replaced by ``true``."""
    for alias in ("p", *FACT_ALIASES):
        sql = sql.replace(condition(alias), "true")
    return sql


def unfiltered(sql: str) -> str | None:
    """The same query without the filter condition and, where it reads no profile column, without
    the profile join; None when there is nothing to drop. With no filter set both give the same
    answer; skipping the join saves a probe of a million customers (20-40 ms) per query at bank scale."""
    text = without_filters(sql)
    if text == sql:
        return None
    if PROFILE_JOIN in text:
        text = text.replace(PROFILE_JOIN, "")
        if "p." in text:
            return None
    return text


def register_scoped(**named: str) -> None:
    """Register filtered queries and, where possible, their unfiltered twins (``name:all``)."""
    register(**named)
    register(**{f"{name}:all": text for name, sql in named.items() if (text := unfiltered(sql)) is not None})


def scoped_query(data: WarehouseReader, name: str, global_filters: dict | None, **extra: object):
    """Run a query registered with ``register_scoped``: its unfiltered twin when no filter is set."""
    from .data import QUERIES

    if not is_filtered(global_filters) and f"{name}:all" in QUERIES:
        return data.query(f"{name}:all", **extra)
    return data.query(name, **params(global_filters), **extra)


def params(filters: dict | None) -> dict[str, list[str]]:
    """Bound parameters for ``FILTERED`` from the store's value (missing keys mean all).

    Every filtered query takes its values from here, so here too a viewer's filters that match fewer
    customers than ``SEGRISK_MIN_CELL_SIZE`` stop with ``disclosure.SmallPopulation`` (a sentence the
    pages show instead of their figures)."""
    filters = filters or {}
    bound = {f.param: [str(v) for v in filters.get(f.key) or []] for f in FILTERS}
    disclosure.check_population(bound)
    return bound


def is_filtered(filters: dict | None) -> bool:
    return any(filters.get(f.key) for f in FILTERS) if filters else False


def describe(filters: dict | None) -> str:
    """The active filters in words, for captions and exports ("all customers" when none)."""
    parts = [f"{f.label}: {', '.join(map(str, filters[f.key]))}" for f in FILTERS if filters and filters.get(f.key)]
    return "; ".join(parts) if parts else "all customers"


def to_fragment(filters: dict) -> str:
    """``#persona=S1,S2&grade=D`` (empty filters leave no trace)."""
    pairs = {f.key: ",".join(map(str, filters[f.key])) for f in FILTERS if filters.get(f.key)}
    return "#" + urlencode(pairs, safe=",") if pairs else ""


def from_fragment(fragment: str | None) -> dict[str, list[str]]:
    parsed = parse_qs((fragment or "").lstrip("#"))
    return {f.key: [v for v in ",".join(parsed.get(f.key, [])).split(",") if v] for f in FILTERS}


_OPTIONS: dict[tuple, dict[str, list[dict[str, str]]]] = {}


def options(data: WarehouseReader) -> dict[str, list[dict[str, str]]]:
    """Dropdown options from the warehouse (read once per warehouse file: five DISTINCTs over a
    million customers cost tens of ms on every page load otherwise); none before the first build."""
    key = (data.path, data.stamp())
    if key not in _OPTIONS:
        _OPTIONS.clear()
        _OPTIONS[key] = _read_options(data)
    found = dict(_OPTIONS[key])
    # A persona renamed on the dashboard shows under its new name at once.
    names = persona_names(data)
    found["persona"] = [
        {"value": o["value"], "label": f"{o['value']} · {names[o['value']]}"} if o["value"] in names else o
        for o in found["persona"]
    ]
    return found


def _read_options(data: WarehouseReader) -> dict[str, list[dict[str, str]]]:
    if not data.has(CUBE):
        return {f.key: [] for f in FILTERS}
    personas = data.query("filter_personas")
    found = {
        "persona": [{"value": v, "label": f"{v} · {name}"} for v, name in personas.iter_rows()],
        "age": data.query("filter_age_bands").get_column("value").to_list(),
        "grade": data.query("filter_grades").get_column("value").to_list(),
        "product": data.query("filter_products").get_column("value").to_list(),
        "region": data.query("filter_regions").get_column("value").to_list(),
    }
    return {
        key: [o if isinstance(o, dict) else {"value": o, "label": str(o).replace("_", " ")} for o in values]
        for key, values in found.items()
    }


#: Marts the pages read, each with the model table that makes it expected (None: always).
MARTS = (
    (CUBE, None),
    ("mart_persona_map", "ml_latest_segments"),
    ("mart_alerts", "ml_alerts"),
    ("mart_offers", "ml_recommendations"),
    ("mart_rfm", "ml_rfm"),
    ("mart_rfm_cube", "ml_rfm"),
    ("mart_rfm_sample", "ml_rfm"),
    ("mart_offer_cube", "ml_recommendations"),
)


def outdated_notice(data: WarehouseReader | None) -> dbc.Alert | None:
    """One sentence when the warehouse predates marts this dashboard reads, saying how to add them."""
    if data is None or not data.has("mart_customer_profile"):
        return None
    missing = [mart for mart, needs in MARTS if not data.has(mart) and (needs is None or data.has(needs))]
    if not missing:
        return None
    return dbc.Alert(
        f"This warehouse was built before the dashboard read {', '.join(missing)}: some figures are missing "
        "until `segrisk train all` or a rebuild adds them.",
        color="secondary",
        className="small py-2 mb-2",
    )


def bar(data: WarehouseReader | None) -> html.Div:
    """The filter bar: one multi-select per filter, and the store the pages listen to."""
    found = options(data) if data is not None else {f.key: [] for f in FILTERS}
    dropdowns = [
        dbc.Col(
            dcc.Dropdown(
                id=f"filter-{f.key}",
                options=found[f.key],
                multi=True,
                placeholder=f"{f.label}: all",
                className="small",
            ),
            lg=True,
            md=4,
            sm=6,
            className="mb-2",
        )
        for f in FILTERS
    ]
    return html.Div(
        [
            dcc.Location(id="url", refresh=False),
            dcc.Store(id="filters", data=EMPTY),
            dcc.Store(id="filters-fragment"),
            dcc.Store(id="filters-fragment-written"),
            dbc.Row(dropdowns, className="g-2"),
            outdated_notice(data),
        ],
        className="px-3 pt-3 bg-light border-bottom",
    )


@callback(
    Output("filters-fragment", "data"),
    Output("filters", "data"),
    *[Output(f"filter-{f.key}", "value") for f in FILTERS],
    Input("url", "hash"),
    *[Input(f"filter-{f.key}", "value") for f in FILTERS],
    State("filters", "data"),
)
def sync_filters(fragment: str | None, *values_and_store):
    """URL fragment and dropdowns kept in step, either way round; the store follows both. The new
    fragment goes to the address through ``write_fragment``."""
    *values, current = values_and_store
    if ctx.triggered_id in (None, "url"):
        if not fragment and ctx.triggered_id == "url" and is_filtered(current):
            # A link inside the app (a customer id, say) drops the fragment: the filters stay,
            # and go back into the address so it can still be bookmarked.
            return to_fragment(current), no_update, *[no_update for _ in FILTERS]
        chosen = from_fragment(fragment)
        return no_update, chosen, *[chosen[f.key] for f in FILTERS]
    chosen = {f.key: list(v or []) for f, v in zip(FILTERS, values, strict=True)}
    return to_fragment(chosen), chosen, *[no_update for _ in FILTERS]


# The fragment is written by the browser with history.replaceState rather than through the Location
# component: the Location would rebuild the address from the query string it last saw, dropping a
# page's own choices written since (dashboard/page_state.py), and Dash's router would hear of it.
clientside_callback(
    """
    function(fragment) {
        if (fragment === null || fragment === undefined) { return window.dash_clientside.no_update; }
        if (fragment !== window.location.hash && !(fragment === '' && window.location.hash === '#')) {
            const address = window.location.pathname + window.location.search + fragment;
            window.history.replaceState(window.history.state, '', address);
        }
        return window.dash_clientside.no_update;
    }
    """,
    Output("filters-fragment-written", "data"),
    Input("filters-fragment", "data"),
    prevent_initial_call=True,
)

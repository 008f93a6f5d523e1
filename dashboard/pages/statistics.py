"""Statistics and exploration: the tests of the risk analysis in plain words, outlier counts, and
any numeric feature's distribution, box plot and default rate by persona or by default status.

The tests and outliers are those of the latest statistics run, over every customer at the time
of that run; the exploration is computed now, under the global filters.

Exploration reads one column of ``customers`` joined to the filtered profile. A column name cannot
be a bound parameter, so the column is looked up in the warehouse's own column list and its SQL
is built from that list's quoted name and registered as its own named query: text a user sends
is only ever a key into that list. Every figure is computed in SQL (bins, quartiles, counts);
no per-customer value leaves the database.
"""

from __future__ import annotations

import math
import threading
from typing import NamedTuple

import dash
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
import polars as pl
from dash import Input, Output, State, callback, dcc, html, no_update

from dashboard import disclosure, downloads, filters, page_state, ui
from dashboard.data import QUERIES, WarehouseReader, reader, register
from dashboard.state import persona_names
from models.statistics import OUTLIER_IQR_K, OUTLIER_Z
from warehouse.db import quote_ident
from warehouse.errors import SegriskError, WarehouseError
from warehouse.history import latest_run_of
from warehouse.marts import FEATURES

dash.register_page(__name__, path="/statistics", name="Statistics", order=8)

LATEST_RUN = latest_run_of("statistics")

#: Test families in reading order: (heading, what the test asks in a sentence).
FAMILIES = {
    "welch_t_test": (
        "Welch's t-test: defaulters against non-defaulters",
        "Do defaulters and non-defaulters differ on average? Effect size is Hedges g "
        "(about 0.2 small, 0.5 medium, 0.8 large).",
    ),
    "permutation_test": (
        "Permutation test: defaulters against non-defaulters",
        "The same question without assuming bell-shaped data: how often does shuffling the default labels "
        "give a difference in means as large as the one observed?",
    ),
    "chi_square": (
        "Chi-square test: default rate across categories",
        "Does the default rate differ between the categories of a feature? Effect size is Cramér's V "
        "(about 0.1 small, 0.3 medium, 0.5 large).",
    ),
    "anova": (
        "ANOVA: differences across personas",
        "Does a feature's mean differ between personas? Effect size is eta squared, the share of the "
        "feature's variance the personas explain.",
    ),
    "bootstrap_mean_ci": (
        "Bootstrap confidence intervals of the mean",
        "How precisely the mean of all customers is known, without assuming bell-shaped data.",
    ),
}

INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
NUMERIC_TYPES = (*INTEGER_TYPES, "FLOAT", "DOUBLE")

#: Histograms: equal-width bins over the 1st-99th percentile range of every customer's values.
BINS = 30
#: The groups a distribution can be split by: "persona" only when personas are trained, "default"
#: only when the dataset has an outcome.
GROUPINGS = {"persona": "Persona", "default": "Default status", "none": "All customers together"}
#: Fewest customers with a known outcome for a bin's default rate to be drawn.
MIN_RATE_BASE = 20
OUTCOME_LABELS = {"not_defaulted": "Not defaulted", "defaulted": "Defaulted", "unknown": "Outcome unknown"}
OUTCOME_COLOURS = {"not_defaulted": "#4575b4", "defaulted": "#d73027", "unknown": "#bbbbbb", "all": "#4575b4"}

register(
    statistics_run="SELECT run_id, finished_at, metrics->>'reading' AS reading "
    "FROM ml_latest_runs WHERE model_kind = 'statistics'",
    statistics_family_counts="SELECT test, count(*) AS tests, count_if(is_significant)::BIGINT AS significant "
    f"FROM ml_statistical_tests WHERE run_id = {LATEST_RUN} GROUP BY test",
    statistics_tests="SELECT test, variable, statistic, p_adjusted, effect_size, "
    "effect_size_name, ci_low, ci_high, n, is_significant, alpha, conclusion FROM ml_statistical_tests "
    f"WHERE run_id = {LATEST_RUN} AND (len($tests) = 0 OR list_contains($tests, test)) "
    "AND (NOT $significant_only OR is_significant) "
    "ORDER BY test, is_significant DESC NULLS LAST, abs(effect_size) DESC NULLS LAST, variable",
    statistics_outliers="SELECT variable, count(*) AS flagged, count_if(is_z_outlier)::BIGINT AS z_outliers, "
    f"count_if(is_iqr_outlier)::BIGINT AS iqr_outliers FROM ml_outliers WHERE run_id = {LATEST_RUN} "
    "GROUP BY variable ORDER BY flagged DESC, variable",
    # The whitelist of explorable columns: numeric model features of the customers mart, as the
    # warehouse itself lists them.
    statistics_features="SELECT c.column_name, c.data_type, coalesce(c.comment, '') AS comment "
    "FROM duckdb_columns() c JOIN meta_columns m USING (column_name) "
    "WHERE c.table_name = 'customers' AND m.is_model_feature AND c.data_type IN "
    f"({', '.join(repr(t) for t in NUMERIC_TYPES)}) ORDER BY c.column_index",
    # The features mart's columns: the explorable features it holds (an older warehouse may lack some).
    statistics_features_mart="SELECT column_name FROM duckdb_columns() WHERE table_name = 'mart_customer_features'",
    statistics_aligned="SELECT count(*) FILTER (WHERE c.customer_id IS DISTINCT FROM p.customer_id) = 0 AS aligned "
    "FROM customers c POSITIONAL JOIN mart_customer_profile p",
    statistics_has_personas="SELECT count(*) FILTER (WHERE persona_key <> 'unassigned') > 0 AS personas "
    "FROM mart_customer_profile",
    statistics_has_outcome="SELECT count(*) AS n FROM duckdb_columns() "
    "WHERE table_name = 'customers' AND column_name = 'is_defaulted'",
)


# -- the whitelist and the per-column queries ------------------------------------------------


# NamedTuples, not dataclasses: Dash runs page files without registering them in sys.modules,
# which dataclasses need to read postponed annotations.
class Feature(NamedTuple):
    name: str
    data_type: str
    comment: str

    @property
    def is_integer(self) -> bool:
        return self.data_type in INTEGER_TYPES


class Bins(NamedTuple):
    """Equal-width bins: bin i covers [low + i * width, low + (i + 1) * width). Bins of a
    whole-number feature start half-way between two numbers and hold ``width`` numbers each."""

    low: float
    width: float
    count: int
    whole: bool = False

    def centre(self, index: int) -> float:
        return self.low + (index + 0.5) * self.width

    def label(self, index: int) -> str:
        """What bin ``index`` holds, for people: "3", "20 to 21" or "1,200 to 1,450"."""
        start = self.low + index * self.width
        if self.whole:
            first, last = round(start + 0.5), round(start + self.width - 0.5)
            return number(first) if first == last else f"{number(first)} to {number(last)}"
        return f"{number(start)} to {number(start + self.width)}"


class Catalogue(NamedTuple):
    features: dict[str, Feature]
    has_outcome: bool
    has_personas: bool
    #: Where a feature's values meet the filter dimensions: ``features`` (mart_customer_features, one
    #: table), ``positional`` (customers and the profile in the same row order, paired by position)
    #: or ``joined`` (paired by customer id).
    pairing: str


_CATALOGUES: dict[tuple, Catalogue] = {}
_CATALOGUES_LOCK = threading.Lock()


def catalogue(data: WarehouseReader) -> Catalogue:
    """What the exploration needs to know about the warehouse, read once per warehouse file:
    the catalogue functions take milliseconds each and only a rebuild or a model run changes it."""
    key = (data.path, data.stamp())
    with _CATALOGUES_LOCK:
        if key in _CATALOGUES:
            return _CATALOGUES[key]
    found: dict[str, Feature] = {}
    pairing, personas = "joined", False
    if data.has("customers") and data.has("meta_columns"):
        found = {name: Feature(name, kind, comment) for name, kind, comment in data.query("statistics_features").rows()}
    if found and data.has("mart_customer_profile"):
        personas = bool(data.query("statistics_has_personas").item())
        in_mart = set(data.query("statistics_features_mart").get_column("column_name").to_list())
        if data.has(FEATURES) and set(found) <= in_mart:
            pairing = "features"
        elif data.query("statistics_aligned").item():
            pairing = "positional"
    result = Catalogue(found, bool(data.query("statistics_has_outcome").item()), personas, pairing)
    with _CATALOGUES_LOCK:
        if len(_CATALOGUES) > 50:
            _CATALOGUES.clear()
        _CATALOGUES[key] = result
    return result


def features(data: WarehouseReader) -> dict[str, Feature]:
    """The numeric model features of ``customers``, by name, from the warehouse's own column list."""
    return catalogue(data).features


def has_outcome(data: WarehouseReader) -> bool:
    """True when the dataset has a default outcome (the customers mart has ``is_defaulted``)."""
    return catalogue(data).has_outcome


def feature(data: WarehouseReader, name: str | None) -> Feature:
    """The feature called ``name``; refused, before any SQL is built, unless the warehouse lists it."""
    found = features(data).get(str(name))
    if found is None:
        raise WarehouseError(f"'{name}' is not a numeric feature of this warehouse's customers table.")
    return found


def _values(column: Feature, pairing: str) -> str:
    """The filtered customers with the feature's value, their group and their outcome.

    ``mart_customer_features`` holds every numeric feature beside the filter dimensions, so one
    table answers. Without it (a warehouse built before it existed), customers is paired with the
    profile: both are written sorted by customer, so pairing rows by position replaces a hash join
    of a million keys; the pairing is checked once per warehouse file (``statistics_aligned``),
    with the join as the fallback.
    """
    sources = {
        "features": f"{FEATURES} p",
        "positional": "customers c POSITIONAL JOIN mart_customer_profile p",
        "joined": "customers c JOIN mart_customer_profile p USING (customer_id)",
    }
    table = "p" if pairing == "features" else "c"
    return (
        f"WITH v AS (SELECT {table}.{quote_ident(column.name)}::DOUBLE AS x, "
        "CASE $group_by WHEN 'none' THEN 'all' "
        "WHEN 'default' THEN CASE WHEN p.is_defaulted THEN 'defaulted' WHEN NOT p.is_defaulted THEN 'not_defaulted' "
        "ELSE 'unknown' END "
        "ELSE coalesce(p.persona_key, 'unassigned') END AS grp, p.is_defaulted AS y "
        f"FROM {sources[pairing]} WHERE {filters.FILTERED}) "
    )


def column_queries(column: Feature, pairing: str = "joined") -> dict[str, str]:
    """The named queries of one whitelisted column, registered at its first use."""
    quoted = quote_ident(column.name)
    names = {
        "range": f"statistics_range:{column.name}",
        "histogram": f"statistics_histogram:{pairing}:{column.name}",
        "groups": f"statistics_groups:{pairing}:{column.name}",
    }
    if names["groups"] not in QUERIES:
        values = _values(column, pairing)
        register(
            **{
                names["range"]: f"SELECT quantile_cont({quoted}, [0.01, 0.99]) AS percentiles, "
                f"min({quoted})::DOUBLE AS low, max({quoted})::DOUBLE AS high FROM customers",
                # Values beyond the range land in the end bins, so the bars add up to every customer
                # with a value; customers without one are bin -1.
                names["histogram"]: values + "SELECT grp, CASE WHEN x IS NULL THEN -1 "
                "ELSE least(greatest(floor((x - $low) / $width), 0), $bins - 1)::INTEGER END AS bin, "
                "count(*) AS customers, count(y) AS known, count_if(y)::BIGINT AS defaulted "
                "FROM v GROUP BY ALL ORDER BY ALL",
                names["groups"]: values + "SELECT grp, count(*) AS customers, count(x) AS n, "
                "quantile_cont(x, [0.25, 0.5, 0.75]) AS quartiles, min(x) AS low, max(x) AS high, avg(x) AS mean, "
                "count(y) AS known, count_if(y)::BIGINT AS defaulted FROM v GROUP BY grp ORDER BY grp",
            }
        )
    return names


_BINS: dict[tuple, Bins | None] = {}
_BINS_LOCK = threading.Lock()


def bins(data: WarehouseReader, column: Feature) -> Bins | None:
    """The column's bins over every customer (so bars stay put when filters change); None without values.

    Computed once per warehouse file: a percentile over a million values takes tens of milliseconds.
    """
    key = (data.path, data.stamp(), column.name)
    with _BINS_LOCK:
        if key in _BINS:
            return _BINS[key]
    row = data.query(column_queries(column)["range"]).row(0, named=True)
    found = None
    if row["low"] is not None:
        low, high = row["percentiles"]
        if high <= low:  # mostly one value: the percentiles coincide, so span the whole range instead
            low, high = row["low"], row["high"]
        if column.is_integer:
            # Whole numbers: bins of whole widths, so no bar holds one more number than its neighbour.
            first, last = math.floor(low), math.ceil(high)
            width = max(1, math.ceil((last - first + 1) / BINS))
            found = Bins(first - 0.5, float(width), math.ceil((last - first + 1) / width), whole=True)
        elif high > low:
            found = Bins(low, (high - low) / BINS, BINS)
        else:
            found = Bins(low - 0.5, 1.0, 1)
    with _BINS_LOCK:
        if len(_BINS) > 500:
            _BINS.clear()
        _BINS[key] = found
    return found


def histogram(
    data: WarehouseReader, column: Feature, group_by: str, global_filters: dict | None
) -> tuple[pl.DataFrame, Bins | None]:
    """Customers per (group, bin) under the filters; bin -1 holds those without a value."""
    found = bins(data, column)
    params = {**filters.params(global_filters), "group_by": group_by}
    # Without any value there is nothing to bin: one bin keeps the query valid and counts the missing.
    edges = found or Bins(0.0, 1.0, 1)
    counts = data.query(
        column_queries(column, catalogue(data).pairing)["histogram"],
        **params,
        low=edges.low,
        width=edges.width,
        bins=edges.count,
    )
    return counts, found


def groups(data: WarehouseReader, column: Feature, group_by: str, global_filters: dict | None) -> pl.DataFrame:
    """Per group: customers, values, quartiles, whiskers, mean and default rate; for a viewer, a group
    of too few customers keeps its size and loses its figures (``is_hidden``)."""
    params = {**filters.params(global_filters), "group_by": group_by}
    found = data.query(column_queries(column, catalogue(data).pairing)["groups"], **params)
    quartiles = pl.col("quartiles")
    iqr = quartiles.list.get(2) - quartiles.list.get(0)
    summary = found.with_columns(
        q1=quartiles.list.get(0),
        median=quartiles.list.get(1),
        q3=quartiles.list.get(2),
    ).with_columns(
        # Whiskers reach Tukey's fences, 1.5 interquartile ranges beyond the box, or the extreme
        # value when nearer (the data point nearest inside a fence would need a second pass).
        lowerfence=pl.max_horizontal(pl.col("low"), pl.col("q1") - 1.5 * iqr),
        upperfence=pl.min_horizontal(pl.col("high"), pl.col("q3") + 1.5 * iqr),
        default_rate=pl.when(pl.col("known") > 0).then(pl.col("defaulted") / pl.col("known")),
    )
    summary, _hidden = disclosure.suppress(summary, GROUP_MEASURES, flag="is_hidden")
    return summary


#: What a group of too few customers does not show a viewer.
GROUP_MEASURES = (
    "quartiles",
    "q1",
    "median",
    "q3",
    "low",
    "high",
    "mean",
    "lowerfence",
    "upperfence",
    "known",
    "defaulted",
    "default_rate",
)


# -- labels, colours and numbers ---------------------------------------------------------------


def group_order(key: str) -> tuple:
    order = list(OUTCOME_LABELS)
    if key in order:
        return (0, order.index(key), key)
    if key[1:].isdigit():
        return (1, int(key[1:]), key)
    return (2, 0, key)


def group_label(key: str, names: dict[str, str]) -> str:
    if key in OUTCOME_LABELS:
        return OUTCOME_LABELS[key]
    if key == "all":
        return "All customers"
    if key == "unassigned":
        return "Unassigned"
    return f"{key} · {names[key]}" if key in names else key


def group_colour(key: str) -> str:
    return OUTCOME_COLOURS.get(key) or ui.persona_colour(key)


def number(value: float | None) -> str:
    """A feature value for people: thousands separated, small numbers to three significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.3g}"


def p_text(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


# -- figures ----------------------------------------------------------------------------------


def histogram_figure(
    counts: pl.DataFrame, edges: Bins, column: str, names: dict[str, str], share: bool = False
) -> go.Figure:
    """Customers per bin, stacked by group; ``share`` draws each group's distribution as a step line
    (the share of the group in each bin), so groups of different sizes compare.

    Traces and layout are built as plain data and handed to Plotly once: adding them one by one
    through its checked setters costs several times as much on every filter change."""
    traces = []
    binned = counts.filter(pl.col("bin") >= 0)
    for key in sorted(binned.get_column("grp").unique().to_list(), key=group_order):
        part = binned.filter(pl.col("grp") == key).sort("bin")
        x = [edges.centre(i) for i in part.get_column("bin").to_list()]
        customers = part.get_column("customers").to_list()
        ranges = [[edges.label(i)] for i in part.get_column("bin").to_list()]
        label = group_label(key, names)
        if share:
            total = sum(customers) or 1
            traces.append(
                {
                    "type": "scatter",
                    "x": x,
                    "y": [c / total for c in customers],
                    "name": label,
                    "mode": "lines",
                    "line": {"shape": "hvh", "color": group_colour(key), "width": 2},
                    "customdata": ranges,
                    "hovertemplate": "%{customdata[0]}: %{y:.1%} of " + label + "<extra></extra>",
                }
            )
        else:
            traces.append(
                {
                    "type": "bar",
                    "x": x,
                    "y": customers,
                    "width": edges.width * 0.95,
                    "name": label,
                    "marker": {"color": group_colour(key)},
                    "customdata": ranges,
                    "hovertemplate": "%{customdata[0]}: %{y:,} customers<extra>" + label + "</extra>",
                }
            )
    layout = {
        "title": {"text": f"Distribution of {column}"},
        "barmode": "stack",
        "xaxis": {"title": {"text": column}},
        "yaxis": {
            "title": {"text": "Share of the group" if share else "Customers"},
            "tickformat": ".0%" if share else ",",
        },
        "legend": {"orientation": "h", "y": -0.25, "traceorder": "normal"},
        "margin": {"t": 50},
    }
    return ui.figure(traces, layout)


def box_figure(summary: pl.DataFrame, column: str, names: dict[str, str]) -> go.Figure:
    """One box per group from quartiles and whiskers computed in SQL (no per-customer values)."""
    shown = summary.filter((pl.col("n") > 0) & pl.col("median").is_not_null())
    rows = sorted(shown.iter_rows(named=True), key=lambda r: group_order(r["grp"]))
    boxes = [
        {
            "type": "box",
            "y": [group_label(row["grp"], names)],
            "q1": [row["q1"]],
            "median": [row["median"]],
            "q3": [row["q3"]],
            "lowerfence": [row["lowerfence"]],
            "upperfence": [row["upperfence"]],
            "mean": [row["mean"]],
            "name": group_label(row["grp"], names),
            "orientation": "h",
            "marker": {"color": group_colour(row["grp"])},
            "boxpoints": False,
        }
        for row in rows
    ]
    layout = {
        "title": {"text": f"{column} by group: quartiles, mean (dashed) and whiskers"},
        "xaxis": {"title": {"text": column}},
        "yaxis": {"autorange": "reversed", "automargin": True},
        "showlegend": False,
        "margin": {"t": 50, "l": 10},
    }
    return ui.figure(boxes, layout)


def default_rate_figure(counts: pl.DataFrame, edges: Bins, column: str) -> go.Figure:
    """Default rate in each bin of the feature (every group together), over the bin's customer count."""
    per_bin = (
        counts.filter(pl.col("bin") >= 0)
        .group_by("bin")
        .agg(pl.col("customers").sum(), pl.col("known").sum(), pl.col("defaulted").sum())
        .sort("bin")
    )
    x = [edges.centre(i) for i in per_bin.get_column("bin").to_list()]
    # A rate over a handful of customers is noise that reads like a finding: leave it out (and, for a
    # viewer, never one over fewer customers than SEGRISK_MIN_CELL_SIZE).
    base = max(MIN_RATE_BASE, disclosure.min_cell_size()) if disclosure.restricted() else MIN_RATE_BASE
    rates = [d / k if k >= base else None for d, k in per_bin.select("defaulted", "known").rows()]
    bars = {
        "type": "bar",
        "x": x,
        "y": per_bin.get_column("customers").to_list(),
        "width": edges.width * 0.95,
        "name": "Customers",
        "marker": {"color": "#d9d9d9"},
        "hovertemplate": "%{y:,} customers<extra></extra>",
    }
    line = {
        "type": "scatter",
        "x": x,
        "y": rates,
        "name": "Default rate",
        "mode": "lines+markers",
        "line": {"color": OUTCOME_COLOURS["defaulted"]},
        "yaxis": "y2",  # the overlaying axis is drawn on top: the line stays in front of the bars
        "hovertemplate": "default rate %{y:.1%}<extra></extra>",
    }
    layout = {
        "title": {"text": f"Default rate across {column} (bars with {MIN_RATE_BASE}+ known outcomes)"},
        "xaxis": {"title": {"text": column}},
        "yaxis": {"title": {"text": "Customers"}, "side": "right", "showgrid": False, "tickformat": ",.0f"},
        "yaxis2": {
            "title": {"text": "Default rate"},
            "overlaying": "y",
            "side": "left",
            "tickformat": ".0%",
            "rangemode": "tozero",
            "tickmode": "auto",
        },
        "legend": {"orientation": "h", "y": -0.25},
        "margin": {"t": 50},
    }
    return ui.figure([bars, line], layout)


def balance_figure(summary: pl.DataFrame, group_by: str, names: dict[str, str]) -> go.Figure:
    """The target balance: customers by outcome, or the default rate of each group."""
    rows = sorted(summary.iter_rows(named=True), key=lambda r: group_order(r["grp"]))
    labels = [group_label(r["grp"], names) for r in rows]
    total = sum(r["customers"] for r in rows) or 1
    if group_by == "default":
        values = [r["customers"] for r in rows]
        text = [f"{r['customers']:,} ({r['customers'] / total:.1%})" for r in rows]
        title, axis = "Target balance: customers by outcome", {"title": {"text": "Customers"}, "tickformat": ","}
    else:
        values = [r["default_rate"] for r in rows]
        text = [f"{ui.percent(r['default_rate'])} of {r['customers']:,}" for r in rows]
        clickable = " (click a bar to filter)" if group_by == "persona" else ""
        title, axis = f"Default rate by group{clickable}", {"title": {"text": "Default rate"}, "tickformat": ".0%"}
    bars = {
        "type": "bar",
        "y": labels,
        "x": values,
        "orientation": "h",
        "marker": {"color": [group_colour(r["grp"]) for r in rows]},
        "customdata": [[r["grp"]] for r in rows],
        "text": text,
        "textposition": "outside",
        "cliponaxis": False,
        "hovertemplate": "%{y}: %{text}<extra></extra>",
    }
    # Room on the right for the labels outside the bars.
    top = max((v for v in values if v is not None), default=0) or 1
    layout = {
        "title": {"text": title},
        "xaxis": {**axis, "range": [0, top * 1.35]},
        "yaxis": {"autorange": "reversed", "automargin": True},
        "margin": {"t": 50, "l": 10},
    }
    return ui.figure([bars], layout)


def outliers_figure(outliers: pl.DataFrame) -> go.Figure:
    """Flagged customers per variable under each rule (a customer can trip both)."""
    variables = outliers.get_column("variable").to_list()
    plot_height = 24 * len(variables) + 40
    bars = [
        {
            "type": "bar",
            "y": variables,
            "x": outliers.get_column(column).to_list(),
            "name": name,
            "orientation": "h",
            "marker": {"color": colour},
            "customdata": [[v] for v in variables],
            "hovertemplate": "%{y}: %{x:,} customers<extra>" + name + "</extra>",
        }
        for column, name, colour in (
            ("iqr_outliers", f"More than {OUTLIER_IQR_K:g} IQR beyond the quartiles (Tukey)", "#fc8d59"),
            ("z_outliers", f"|z-score| above {OUTLIER_Z:g}", "#4575b4"),
        )
    ]
    layout = {
        "title": {"text": "Customers flagged as outliers, by variable (click a bar to explore the variable)"},
        "barmode": "group",
        "height": plot_height + 130,
        "xaxis": {"tickformat": ",", "side": "top"},
        "yaxis": {"autorange": "reversed", "automargin": True},
        # Above the axis labels, which sit on top of the plot.
        "legend": {"orientation": "h", "x": 0, "y": 1 + 30 / plot_height, "yanchor": "bottom"},
        "margin": {"t": 120, "l": 10, "b": 10},
    }
    return ui.figure(bars, layout)


# -- the tests as tables ------------------------------------------------------------------------


#: The columns of a family's CSV download: the test's figures as stored, not as formatted.
TEST_COLUMNS = (
    "variable",
    "conclusion",
    "statistic",
    "p_value",
    "p_adjusted",
    "is_significant",
    "effect_size_name",
    "effect_size",
    "ci_low",
    "ci_high",
    "n",
)


def tests_table(family: str, tests: pl.DataFrame) -> html.Div:
    """One family of tests: its heading, how many were significant, and one row per test."""
    heading = FAMILIES.get(family, (family.replace("_", " ").capitalize(),))[0]
    rows = tests.filter(pl.col("test") == family)
    bootstrap = family == "bootstrap_mean_ci"
    significant = int(rows.get_column("is_significant").fill_null(False).sum())
    alpha = rows.get_column("alpha").drop_nulls()
    summary = (
        f"{rows.height:,} variables."
        if bootstrap
        else f"{significant:,} of {rows.height:,} significant after correction for multiple testing"
        + (f" (alpha {alpha[0]:g})." if alpha.len() else ".")
    )
    if bootstrap:
        headings = ["Variable", "Conclusion", "Mean", "95% interval", "n"]
    else:
        headings = ["", "Variable", "Conclusion", "p (adjusted)", "Effect size", "n"]
    body = []
    for row in rows.iter_rows(named=True):
        # Plain cells, one component each: the browser's Dash renderer works per component on every
        # update, and this table has a row per variable.
        cells = [html.Td(row["variable"], className="font-monospace"), html.Td(row["conclusion"], className="w-50")]
        if bootstrap:
            cells += [
                html.Td(number(row["statistic"]), className="text-end"),
                html.Td(f"{number(row['ci_low'])} to {number(row['ci_high'])}", className="text-end text-nowrap"),
            ]
        else:
            mark = "significant" if row["is_significant"] else ""
            effect = "–" if row["effect_size"] is None else f"{row['effect_size_name']} {row['effect_size']:.3g}"
            cells = [html.Td(mark, className="text-primary fw-semibold"), *cells]
            cells += [
                html.Td(p_text(row["p_adjusted"]), className="text-end text-nowrap"),
                html.Td(effect, className="text-end text-nowrap"),
            ]
        cells.append(html.Td(ui.count(row["n"]), className="text-end"))
        body.append(html.Tr(cells, className="table-info" if row["is_significant"] else None))
    return html.Div(
        [
            html.H3(heading, className="h6 mt-3 mb-1"),
            html.P(html.Strong(summary), className="small mb-2"),
            dbc.Table(
                [html.Thead(html.Tr([html.Th(h) for h in headings])), html.Tbody(body)],
                size="sm",
                hover=True,
                className="small",
            ),
            html.Div(
                downloads.link(
                    f"statistical-tests-{family}.csv",
                    rows.to_dicts(),
                    [(c, c) for c in TEST_COLUMNS if c in rows.columns],
                ),
                className="text-end mb-2",
            ),
        ],
        id=f"statistics-family-{family}",
    )


def tests_view(tests: pl.DataFrame) -> list:
    """Every family present, in reading order, each as its own table."""
    return [tests_table(family, tests) for family in family_order(tests.get_column("test").unique().to_list())]


# -- layout ------------------------------------------------------------------------------------


def family_order(families: list[str]) -> list[str]:
    return [f for f in FAMILIES if f in families] + sorted(f for f in families if f not in FAMILIES)


def opening_families(data: WarehouseReader) -> list[str]:
    """The test families the page opens on (the first in reading order): the dashboard warms that view."""
    return family_order(data.query("statistics_family_counts").get_column("test").to_list())[:1]


def family_summary(counts: pl.DataFrame) -> dbc.Table:
    """One line per family: what it asks, how many tests, how many significant."""
    by_family = {row["test"]: row for row in counts.iter_rows(named=True)}
    rows = []
    for family in family_order(list(by_family)):
        row = by_family[family]
        heading, question = FAMILIES.get(family, (family, ""))
        significant = "–" if family == "bootstrap_mean_ci" else ui.count(row["significant"])
        rows.append({"family": heading, "question": question, "tests": ui.count(row["tests"]), "sig": significant})
    return ui.table(
        rows,
        [("family", "Test"), ("question", "What it asks"), ("tests", "Tests"), ("sig", "Significant")],
        numeric=("tests", "sig"),
        download="statistical-tests-summary.csv",
    )


def tests_section(data: WarehouseReader) -> html.Div:
    if not (data.has("ml_statistical_tests") and data.has("ml_model_runs")):
        return ui.unavailable(
            "No statistical tests in this warehouse: `segrisk train statistics` has not run on it "
            "(it needs a default outcome)."
        )
    run = data.query("statistics_run")
    counts = data.query("statistics_family_counts")
    if run.height == 0 or counts.height == 0:
        return ui.unavailable("No statistics run is recorded in this warehouse: run `segrisk train statistics`.")
    run_row = run.row(0, named=True)
    families = family_order(counts.get_column("test").to_list())
    options = [{"value": f, "label": FAMILIES.get(f, (f,))[0]} for f in families]
    return html.Div(
        [
            html.P(
                f"Statistics run {run_row['run_id']}, finished {run_row['finished_at']:%Y-%m-%d %H:%M} UTC, "
                "over every customer at the time: the global filters do not apply to these tests.",
                className="small text-muted mb-1",
            ),
            html.P(run_row["reading"] or "", className="small"),
            family_summary(counts),
            dbc.Row(
                [
                    dbc.Col(
                        dcc.Dropdown(
                            id="statistics-family",
                            options=options,
                            value=families[:1],
                            multi=True,
                            placeholder="Tests: all",
                        ),
                        md=6,
                    ),
                    dbc.Col(
                        dbc.Checklist(
                            id="statistics-significant",
                            options=[{"label": "Significant only", "value": "yes"}],
                            value=[],
                            switch=True,
                        ),
                        md=3,
                        className="align-self-center",
                    ),
                ],
                className="g-2 mb-2",
            ),
            dcc.Loading(
                html.Div(id="statistics-tests", style={"maxHeight": "40rem", "overflowY": "auto"}), delay_show=300
            ),
        ]
    )


def explore_section(data: WarehouseReader, chosen: str | None, group: str | None) -> html.Div:
    found = features(data)
    if not found or not data.has("mart_customer_profile"):
        return ui.unavailable("No numeric features to explore: the warehouse has no customers mart or profile.")
    known = catalogue(data)
    groupings = {
        key: label
        for key, label in GROUPINGS.items()
        if (key != "default" or known.has_outcome) and (key != "persona" or known.has_personas)
    }
    notes = []
    if not known.has_personas:
        notes.append("Personas are not trained on this warehouse, so distributions cannot be split by persona.")
    if not known.has_outcome:
        notes.append(
            "This dataset has no default outcome, so distributions cannot be split by default status "
            "and default rates are not shown."
        )
    return html.Div(
        [
            dbc.Row(
                [
                    dbc.Col(
                        dcc.Dropdown(
                            id="statistics-feature",
                            options=[{"value": f.name, "label": f.name, "title": f.comment} for f in found.values()],
                            value=chosen if chosen in found else next(iter(found)),
                            clearable=False,
                        ),
                        md=4,
                    ),
                    dbc.Col(
                        dbc.RadioItems(
                            id="statistics-group",
                            options=[{"label": label, "value": key} for key, label in groupings.items()],
                            value=group if group in groupings else next(iter(groupings)),
                            inline=True,
                        ),
                        md=5,
                        className="align-self-center",
                    ),
                    dbc.Col(
                        dbc.RadioItems(
                            id="statistics-scale",
                            options=[
                                {"label": "Counts", "value": "count"},
                                {"label": "Share of group", "value": "share"},
                            ],
                            value="count",
                            inline=True,
                        ),
                        md=3,
                        className="align-self-center",
                    ),
                ],
                className="g-2 mb-2",
            ),
            html.P(" ".join(notes), className="small text-muted"),
            html.Div(id="statistics-feature-note", className="small mb-2"),
            dcc.Loading(
                dbc.Row([dbc.Col(id="statistics-histogram", md=7), dbc.Col(id="statistics-box", md=5)]), delay_show=300
            ),
            dcc.Loading(
                dbc.Row([dbc.Col(id="statistics-default-rate", md=7), dbc.Col(id="statistics-balance", md=5)]),
                delay_show=300,
            ),
            html.Div(id="statistics-groups"),
        ]
    )


def outliers_section(data: WarehouseReader) -> object:
    if not (data.has("ml_outliers") and data.has("ml_model_runs")):
        return ui.unavailable("No outlier counts: `segrisk train statistics` has not run on this warehouse.")
    outliers = data.query("statistics_outliers")
    if outliers.height == 0:
        return ui.unavailable("The latest statistics run flagged no outliers.")
    return html.Div(
        [
            html.P(
                "Counted over every customer at the latest statistics run. The z-score rule flags values far "
                "from the mean in standard deviations; Tukey's rule flags values more than 1.5 interquartile "
                "ranges outside the middle half.",
                className="small text-muted",
            ),
            dcc.Graph(id="statistics-outliers", figure=outliers_figure(outliers)),
        ]
    )


#: The feature and grouping explored, kept in the address as they are chosen.
PAGE_STATE = page_state.sync("statistics", {"feature": "statistics-feature", "group": "statistics-group"})


def layout(feature: str | None = None, group: str | None = None, **_query: str) -> html.Div:
    """``/statistics?feature=age&group=default`` opens the exploration on that feature and grouping."""
    try:
        data = reader()
        tests = tests_section(data)
        explore = explore_section(data, feature, group)
        outliers = outliers_section(data)
    except SegriskError as exc:
        return ui.failed(exc)
    return html.Div(
        [
            html.H2("Statistics & exploration", className="h4 mb-3"),
            html.H3("Tests of the risk analysis", className="h5"),
            tests,
            html.H3("Explore a feature", className="h5 mt-4"),
            explore,
            html.H3("Outliers", className="h5 mt-4"),
            outliers,
            page_state.store(PAGE_STATE),
        ]
    )


# -- callbacks ---------------------------------------------------------------------------------


@callback(
    Output("statistics-tests", "children"),
    Input("statistics-family", "value"),
    Input("statistics-significant", "value"),
)
def show_tests(families: list[str] | None, significant: list[str] | None):
    try:
        data = reader()
        if not data.has("ml_statistical_tests"):
            return ui.unavailable("No statistical tests in this warehouse: `segrisk train statistics` has not run.")
        tests = data.query("statistics_tests", tests=list(families or []), significant_only=bool(significant))
    except SegriskError as exc:
        return ui.failed(exc)
    if tests.height == 0:
        return ui.unavailable("No test matches these choices.")
    return tests_view(tests)


EXPLORE_INPUTS = (
    Input("filters", "data"),
    Input("statistics-feature", "value"),
    Input("statistics-group", "value"),
)


@callback(
    Output("statistics-feature-note", "children"),
    Output("statistics-histogram", "children"),
    Output("statistics-default-rate", "children"),
    *EXPLORE_INPUTS,
    Input("statistics-scale", "value"),
)
def show_distribution(global_filters: dict | None, name: str | None, group_by: str | None, scale: str | None):
    try:
        data = reader()
        column = feature(data, name)
        counts, edges = histogram(data, column, group_by or "persona", global_filters)
        names = persona_names(data)
        outcome = has_outcome(data)
    except SegriskError as exc:
        return ui.failed(exc), None, None
    customers = int(counts.get_column("customers").sum() or 0)
    missing = int(counts.filter(pl.col("bin") < 0).get_column("customers").sum() or 0)
    description = f"{column.comment} " if column.comment else ""
    note = html.Span(
        [
            html.Code(column.name),
            f": {description}{customers - missing:,} of {customers:,} customers have a value "
            f"({filters.describe(global_filters)}). ",
            "Values below the 1st or above the 99th percentile of all customers are counted in the end bars.",
        ]
    )
    if customers == 0:
        return note, ui.unavailable("No customers match the current filters."), None
    if edges is None or customers == missing:
        return note, ui.unavailable(f"No customer has a value of {column.name}."), None
    counts, hidden = hide_small_outcome_bins(counts, group_by or "persona")
    chart = dcc.Graph(figure=histogram_figure(counts, edges, column.name, names, share=scale == "share"))
    rate = dcc.Graph(figure=default_rate_figure(counts, edges, column.name)) if outcome else None
    if hidden:
        note = html.Span([note, " ", disclosure.group_note(disclosure.min_cell_size())])
    return note, chart, rate


def hide_small_outcome_bins(counts: pl.DataFrame, group_by: str) -> tuple[pl.DataFrame, int]:
    """Split by default status, a bin where defaulters or non-defaulters number fewer than the minimum
    tells a viewer the outcome of the few customers in it: such bins leave both charts (every group of
    them, so neither the other group nor the bin's total gives the small one away). How many bins went."""
    if group_by != "default" or counts.height == 0 or not disclosure.restricted():
        return counts, 0
    minimum = disclosure.min_cell_size()
    small = (
        counts.filter((pl.col("bin") >= 0) & (pl.col("customers") > 0) & (pl.col("customers") < minimum))
        .get_column("bin")
        .unique()
    )
    if small.len() == 0:
        return counts, 0
    return counts.filter(~pl.col("bin").is_in(small.to_list())), small.len()


@callback(
    Output("statistics-box", "children"),
    Output("statistics-balance", "children"),
    Output("statistics-groups", "children"),
    *EXPLORE_INPUTS,
)
def show_groups(global_filters: dict | None, name: str | None, group_by: str | None):
    try:
        data = reader()
        column = feature(data, name)
        group_by = group_by or "persona"
        summary = groups(data, column, group_by, global_filters)
        names = persona_names(data)
        outcome = has_outcome(data)
    except SegriskError as exc:
        return ui.failed(exc), None, None
    if summary.height == 0 or summary.get_column("n").sum() == 0:
        return None, None, None
    box = dcc.Graph(id="statistics-box-chart", figure=box_figure(summary, column.name, names))
    balance = (
        dcc.Graph(id="statistics-balance-chart", figure=balance_figure(summary, group_by, names)) if outcome else None
    )
    table = group_table(summary, names, outcome and group_by != "default")
    if summary.get_column("is_hidden").any():
        table = html.Div([table, disclosure.note(int(summary.get_column("is_hidden").sum()))])
    return box, balance, table


def group_table(summary: pl.DataFrame, names: dict[str, str], default_rate: bool) -> dbc.Table:
    """Per group: size, values, median, middle half, mean and (when it says something) default rate."""
    total = int(summary.get_column("customers").sum()) or 1
    rows = [
        {
            "group": group_label(r["grp"], names),
            "customers": ui.count(r["customers"]),
            "share": ui.percent(r["customers"] / total),
            "n": ui.count(r["n"]),
            "median": number(r["median"]),
            "iqr": f"{number(r['q1'])} to {number(r['q3'])}",
            "mean": number(r["mean"]),
            "default_rate": ui.percent(r["default_rate"]),
        }
        for r in sorted(summary.iter_rows(named=True), key=lambda r: group_order(r["grp"]))
    ]
    columns = [
        ("group", "Group"),
        ("customers", "Customers"),
        ("share", "Share"),
        ("n", "With a value"),
        ("median", "Median"),
        ("iqr", "Middle half"),
        ("mean", "Mean"),
    ]
    if default_rate:
        columns.append(("default_rate", "Default rate"))
    return ui.table(
        rows,
        columns,
        numeric=("customers", "share", "n", "median", "iqr", "mean", "default_rate"),
        download="feature-by-group.csv",
    )


@callback(
    Output("filter-persona", "value", allow_duplicate=True),
    Input("statistics-balance-chart", "clickData"),
    State("statistics-group", "value"),
    prevent_initial_call=True,
)
def filter_by_persona(click: dict | None, group_by: str | None):
    """A click on a persona's default-rate bar filters every page to that persona."""
    if group_by != "persona" or not click or not click.get("points"):
        return no_update
    key = (click["points"][0].get("customdata") or [None])[0]
    return [key] if key and key != "unassigned" else no_update


@callback(
    Output("statistics-feature", "value"),
    Input("statistics-outliers", "clickData"),
    prevent_initial_call=True,
)
def explore_outlier_variable(click: dict | None):
    """A click on a variable's outlier bar opens it in the exploration above."""
    if not click or not click.get("points"):
        return no_update
    name = (click["points"][0].get("customdata") or [None])[0]
    try:
        return feature(reader(), name).name
    except SegriskError:
        return no_update

"""Data: what the warehouse holds and how it was built — the data dictionary from the warehouse's
own comments, the build, its sources and row counts, the data tests, and the rows it rejected.

The quarantine tables are one per source, named in ``meta_row_counts``. A table name cannot be a
bound parameter, so a source a user picks is only a key: its table is looked up in
``meta_row_counts``, checked against the warehouse's catalogue, quoted, and its queries are
registered under its own names. Every value a user types (the dictionary search) is bound.
"""

from __future__ import annotations

from pathlib import PurePath

import dash
import dash_bootstrap_components as dbc
import polars as pl
from dash import Input, Output, State, callback, dash_table, dcc, html, no_update
from flask import has_request_context

from dashboard import auth, sql_console, ui
from dashboard.data import QUERIES, WarehouseReader, reader, register
from dashboard.paged import Column, PagedTable, pagination
from warehouse.db import quote_ident
from warehouse.errors import SegriskError, WarehouseError

dash.register_page(__name__, path="/data", name="Data", order=9)

#: The warehouse's own tables and views with their comments (DuckDB's catalogue, not a copy).
OBJECTS = (
    "(SELECT table_name AS name, 'table' AS kind, coalesce(comment, '') AS comment, estimated_size AS row_count "
    "FROM duckdb_tables() WHERE NOT internal UNION ALL "
    "SELECT view_name, 'view', coalesce(comment, ''), NULL FROM duckdb_views() WHERE NOT internal)"
)
#: One row per column of every table and view, narrowed by the picked table and the search text.
DICTIONARY = (
    "FROM (SELECT o.name AS table_name, c.column_index, c.column_name, c.data_type, "
    f"coalesce(c.comment, '') AS comment FROM {OBJECTS} o JOIN duckdb_columns() c ON c.table_name = o.name) d "
    "WHERE ($table = '' OR d.table_name = $table) AND (d.column_name ILIKE $pattern ESCAPE '\\' "
    "OR d.comment ILIKE $pattern ESCAPE '\\' OR d.table_name ILIKE $pattern ESCAPE '\\')"
)

register(
    data_build="SELECT build_id, spec_name, as_of_date, started_at, finished_at, duration_seconds, segrisk_version, "
    "schema_version, data_dir FROM meta_builds ORDER BY finished_at DESC LIMIT 1",
    data_steps="SELECT step_order, step, seconds FROM meta_step_durations ORDER BY step_order",
    data_sources="SELECT source, source_file, file_format, size_bytes, sha256, rows_read, loaded_at FROM meta_sources "
    "ORDER BY source, first_row",
    data_row_counts="SELECT source, raw_table, staged_view, quarantine_table, rows_in, rows_out, rows_rejected "
    "FROM meta_row_counts ORDER BY source",
    data_checks="SELECT check_name, table_name, passed, failing_rows, detail FROM meta_check_results "
    "ORDER BY passed, check_name, table_name",
    # A table is listed when its name or comment matches, or any of its columns does.
    data_objects=f"SELECT o.name, o.kind, o.comment, o.row_count FROM {OBJECTS} o "
    "WHERE o.name ILIKE $pattern ESCAPE '\\' OR o.comment ILIKE $pattern ESCAPE '\\' "
    "OR EXISTS (SELECT 1 FROM duckdb_columns() c WHERE c.table_name = o.name "
    "AND (c.column_name ILIKE $pattern ESCAPE '\\' OR coalesce(c.comment, '') ILIKE $pattern ESCAPE '\\')) "
    "ORDER BY o.name",
    data_object_names=f"SELECT name, kind FROM {OBJECTS} ORDER BY name",
    # The quarantine table of each source, only when the catalogue really has a table of that name.
    data_quarantine_tables="SELECT r.source, r.quarantine_table, r.rows_rejected FROM meta_row_counts r "
    "JOIN duckdb_tables() t ON t.table_name = r.quarantine_table AND NOT t.internal "
    "WHERE starts_with(r.quarantine_table, 'quarantine_') ORDER BY r.rows_rejected DESC, r.source",
)

DICTIONARY_TABLE = PagedTable(
    name="data-dictionary",
    customer_level=False,  # tables and columns, no customer: viewers see it too
    select="d.table_name, d.column_name, d.data_type, d.comment",
    from_where=DICTIONARY,
    columns=(
        Column("table_name", "Table"),
        Column("column_name", "Column"),
        Column("data_type", "Type"),
        Column("comment", "Meaning"),
    ),
    sortable=("table_name", "column_name", "data_type"),
    default_sort="table_name",
    default_descending=False,
    tiebreak="d.column_index, d.column_name",
    page_size=50,
)

#: Reasons shown per source: a reason often quotes the bad value, so there can be as many as rows.
REASONS_SHOWN = 50
EXAMPLES_SHOWN = 20


def like_pattern(search: str | None) -> str:
    """``%text%`` for ILIKE with the user's ``%``, ``_`` and ``\\`` taken literally."""
    text = (search or "").strip()
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def dictionary_params(table: str | None, search: str | None) -> dict:
    return {"table": table or "", "pattern": like_pattern(search)}


def objects(data: WarehouseReader, search: str | None = None) -> pl.DataFrame:
    """Tables and views with their comments, those matching ``search`` (all when empty)."""
    return data.query("data_objects", pattern=like_pattern(search))


# -- quarantine ------------------------------------------------------------------------------


def quarantine_tables(data: WarehouseReader) -> pl.DataFrame:
    """(source, quarantine_table, rows_rejected) for the sources whose quarantine table exists."""
    if not data.has("meta_row_counts"):
        return pl.DataFrame(schema={"source": pl.String, "quarantine_table": pl.String, "rows_rejected": pl.Int64})
    return data.query("data_quarantine_tables")


def quarantine_queries(data: WarehouseReader, source: str | None) -> dict[str, str]:
    """The named queries over ``source``'s quarantine table, registered at first use; refused
    (before any SQL is built) unless the warehouse lists that source and has its table."""
    tables = dict(quarantine_tables(data).select("source", "quarantine_table").rows())
    if source not in tables:
        raise WarehouseError(f"'{source}' is not a source of this warehouse.")
    table = tables[source]
    quoted = quote_ident(table)
    names = {kind: f"data_quarantine_{kind}:{table}" for kind in ("rules", "reasons", "examples")}
    if names["examples"] not in QUERIES:
        register(
            **{
                names["rules"]: f"SELECT rule, column_name, count(*) AS rows FROM {quoted} GROUP BY ALL "
                "ORDER BY rows DESC, rule, column_name",
                names["reasons"]: "SELECT rule, column_name, reason, count(*) AS rows, count(*) OVER () AS reasons "
                f"FROM {quoted} GROUP BY ALL ORDER BY rows DESC, rule, column_name, reason LIMIT {REASONS_SHOWN}",
                names["examples"]: f"SELECT source_file, source_row, rule, column_name, reason, raw_record "
                f"FROM {quoted} ORDER BY raw_row, rule, column_name LIMIT {EXAMPLES_SHOWN}",
            }
        )
    return names


def quarantine_counts(data: WarehouseReader, source: str) -> pl.DataFrame:
    """Rejected rows of ``source`` by rule and column."""
    return data.query(quarantine_queries(data, source)["rules"])


def quarantine_reasons(data: WarehouseReader, source: str) -> pl.DataFrame:
    """The most frequent reasons (``REASONS_SHOWN`` at most); ``reasons`` holds how many there are."""
    return data.query(quarantine_queries(data, source)["reasons"])


def quarantine_examples(data: WarehouseReader, source: str) -> pl.DataFrame:
    """The first rejected rows of ``source``, in file order."""
    return data.query(quarantine_queries(data, source)["examples"])


# -- small tables --------------------------------------------------------------------------------


def size_text(size: int | None) -> str:
    if size is None:
        return "–"
    for limit, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if size >= limit:
            return f"{size / limit:,.1f} {unit}"
    return f"{size:,} B"


def build_section(data: WarehouseReader) -> list:
    if not data.has("meta_builds"):
        return [ui.unavailable("This warehouse has no build record (meta_builds): rebuild it with `segrisk build`.")]
    build = data.query("data_build")
    if build.height == 0:
        return [ui.unavailable("This warehouse has no build record: rebuild it with `segrisk build`.")]
    row = build.row(0, named=True)
    cards = [
        # The data folder by its name only: the server's paths are not shown to the page's users.
        ui.headline("Dataset spec", row["spec_name"], f"read from {PurePath(row['data_dir'] or '').name}"),
        ui.headline("Data as of", f"{row['as_of_date']:%Y-%m-%d}", "the reference date of the data"),
        ui.headline("Built", f"{row['finished_at']:%Y-%m-%d %H:%M}", "UTC"),
        ui.headline(
            "Build took",
            f"{row['duration_seconds']:,.1f} s",
            f"Segrisk {row['segrisk_version']}, schema {row['schema_version']}",
        ),
    ]
    parts = [
        dbc.Row([dbc.Col(card, md=3, sm=6, className="mb-3") for card in cards]),
        html.P(["Build ", html.Code(row["build_id"])], className="small text-muted", id="data-build-id"),
    ]
    if data.has("meta_step_durations"):
        steps = data.query("data_steps")
        parts.append(
            html.Details(
                [
                    html.Summary("Build steps", className="small"),
                    ui.table(
                        [
                            {"step": s, "seconds": f"{seconds:,.2f}"}
                            for _, s, seconds in steps.select("step_order", "step", "seconds").rows()
                        ],
                        [("step", "Step"), ("seconds", "Seconds")],
                        numeric=("seconds",),
                    ),
                ],
                className="mb-3",
            )
        )
    return parts


def sources_section(data: WarehouseReader) -> list:
    parts: list = []
    if data.has("meta_row_counts"):
        counts = data.query("data_row_counts")
        parts.append(
            ui.table(
                [
                    {
                        "source": r["source"],
                        "rows_in": ui.count(r["rows_in"]),
                        "rows_out": ui.count(r["rows_out"]),
                        "rows_rejected": ui.count(r["rows_rejected"]),
                        "share": ui.percent(r["rows_rejected"] / r["rows_in"], 2) if r["rows_in"] else "–",
                        "tables": f"{r['raw_table']} → {r['staged_view']} (+ {r['quarantine_table']})",
                    }
                    for r in counts.iter_rows(named=True)
                ],
                [
                    ("source", "Source"),
                    ("rows_in", "Rows in"),
                    ("rows_out", "Kept"),
                    ("rows_rejected", "Rejected"),
                    ("share", "Rejected share"),
                    ("tables", "Tables"),
                ],
                numeric=("rows_in", "rows_out", "rows_rejected", "share"),
            )
        )
    if data.has("meta_sources"):
        files = data.query("data_sources")
        parts.append(
            html.Details(
                [
                    html.Summary(f"Source files ({files.height:,})", className="small"),
                    html.Div(
                        ui.table(
                            [
                                {
                                    "source": r["source"],
                                    "file": r["source_file"],
                                    "format": r["file_format"],
                                    "size": size_text(r["size_bytes"]),
                                    "rows": ui.count(r["rows_read"]),
                                    "sha256": r["sha256"][:12] + "…" if r["sha256"] else "–",
                                    "loaded": f"{r['loaded_at']:%Y-%m-%d %H:%M}" if r["loaded_at"] else "–",
                                }
                                for r in files.iter_rows(named=True)
                            ],
                            [
                                ("source", "Source"),
                                ("file", "File"),
                                ("format", "Format"),
                                ("size", "Size"),
                                ("rows", "Rows"),
                                ("sha256", "SHA-256"),
                                ("loaded", "Loaded (UTC)"),
                            ],
                            numeric=("size", "rows"),
                        ),
                        style={"maxHeight": "24rem", "overflowY": "auto"},
                    ),
                ],
                className="mb-3",
            )
        )
    return parts or [ui.unavailable("This warehouse records no sources (meta_sources, meta_row_counts).")]


def checks_section(data: WarehouseReader) -> list:
    if not data.has("meta_check_results"):
        return [ui.unavailable("No data tests are recorded in this warehouse: run `segrisk check`.")]
    checks = data.query("data_checks")
    passed = int(checks.get_column("passed").sum() or 0)
    rows = [
        html.Tr(
            [
                html.Td(dbc.Badge("passed", color="success") if r["passed"] else dbc.Badge("failed", color="danger")),
                html.Td(r["check_name"].replace("_", " ")),
                html.Td(html.Code(r["table_name"])),
                html.Td(ui.count(r["failing_rows"]), className="text-end"),
                html.Td(r["detail"]),
            ],
            className=None if r["passed"] else "table-danger",
        )
        for r in checks.iter_rows(named=True)
    ]
    return [
        html.P(f"{passed:,} of {checks.height:,} data tests passed at the build.", className="mb-2"),
        html.Div(
            dbc.Table(
                [
                    html.Thead(
                        html.Tr(
                            [html.Th(""), html.Th("Test"), html.Th("Table"), html.Th("Failing rows"), html.Th("Detail")]
                        )
                    ),
                    html.Tbody(rows),
                ],
                size="sm",
                hover=True,
                className="small",
            ),
            style={"maxHeight": "24rem", "overflowY": "auto"},
        ),
    ]


def quarantine_section(data: WarehouseReader) -> list:
    tables = quarantine_tables(data)
    rejected = tables.filter(pl.col("rows_rejected") > 0)
    if tables.height == 0:
        return [ui.unavailable("This warehouse has no quarantine tables.")]
    if rejected.height == 0:
        return [ui.unavailable("No rows were rejected: every source row passed validation.")]
    options = [
        {"value": s, "label": f"{s} ({n:,} rejected rows)"}
        for s, n in rejected.select("source", "rows_rejected").rows()
    ]
    return [
        dbc.Row(
            dbc.Col(
                dcc.Dropdown(id="data-quarantine-source", options=options, value=options[0]["value"], clearable=False),
                md=4,
            ),
            className="mb-2",
        ),
        dcc.Loading(html.Div(id="data-quarantine"), delay_show=300),
    ]


def dictionary_section(data: WarehouseReader, table: str | None) -> list:
    names = data.query("data_object_names")
    known = set(names.get_column("name").to_list())
    return [
        dbc.Row(
            [
                dbc.Col(
                    dcc.Dropdown(
                        id="data-table",
                        options=[{"value": n, "label": f"{n} ({k})"} for n, k in names.rows()],
                        value=table if table in known else None,
                        placeholder="Table: all",
                    ),
                    md=4,
                ),
                dbc.Col(
                    dbc.Input(
                        id="data-search",
                        type="search",
                        placeholder="Search names and meanings, e.g. default or utilization",
                        debounce=True,
                    ),
                    md=5,
                ),
            ],
            className="g-2 mb-2",
        ),
        dcc.Loading(html.Div(id="data-objects"), delay_show=300),
        DICTIONARY_TABLE.layout("Columns"),
    ]


def layout(table: str | None = None, **_query: str) -> html.Div:
    """``/data?table=customers`` opens the dictionary on that table."""
    try:
        data = reader()
        build = build_section(data)
        sources = sources_section(data)
        checks = checks_section(data)
        quarantine = quarantine_section(data)
        dictionary = dictionary_section(data, table)
    except SegriskError as exc:
        return ui.failed(exc)
    return html.Div(
        [
            html.H2("Data", className="h4 mb-3"),
            *build,
            dbc.Row(
                [
                    dbc.Col([html.H3("Sources and row counts", className="h5"), *sources], lg=6),
                    dbc.Col([html.H3("Data tests", className="h5"), *checks], lg=6),
                ]
            ),
            html.H3("Rejected rows (quarantine)", className="h5 mt-3"),
            *quarantine,
            html.H3("Data dictionary", className="h5 mt-4"),
            html.P(
                "Every table, view and column with the meaning written into the warehouse itself; any DuckDB "
                "client shows the same text (duckdb_tables(), duckdb_columns()).",
                className="small text-muted",
            ),
            *dictionary,
            *(sql_console_section() if auth.user_can("sql") else []),
        ]
    )


# -- callbacks ---------------------------------------------------------------------------------


#: The list of tables and views is one DataTable, not a table of Dash components: the browser's Dash
#: renderer does work for every component on the page at every update, and a hundred rows of buttons
#: held the Data page up for 2-3 s after the server had answered.
OBJECT_COLUMNS = (("name", "Table or view"), ("kind", "Kind"), ("rows", "Rows (approx.)"), ("comment", "Meaning"))


def objects_view(found: pl.DataFrame, search: str | None) -> html.Div:
    if found.height == 0:
        return ui.unavailable(f"No table or column matches “{search}”.")
    rows = [
        {
            "name": r["name"],
            "kind": r["kind"],
            "rows": ui.count(r["row_count"]) if r["row_count"] is not None else "–",
            "comment": r["comment"],
        }
        for r in found.iter_rows(named=True)
    ]
    caption = f"{found.height:,} tables and views" + (f" match “{search.strip()}”" if search and search.strip() else "")
    return html.Div(
        [
            html.P(caption + "; click a name to show its columns.", className="small text-muted mb-1"),
            dash_table.DataTable(
                id="data-objects-table",
                data=rows,
                columns=[{"id": key, "name": heading} for key, heading in OBJECT_COLUMNS],
                style_table={"maxHeight": "24rem", "overflowY": "auto"},
                style_cell={
                    "textAlign": "left",
                    "whiteSpace": "normal",
                    "height": "auto",
                    "fontFamily": "var(--bs-body-font-family)",
                    "fontSize": "0.875rem",
                    "border": "none",
                    "borderBottom": "1px solid #dee2e6",
                    "padding": "0.3rem 0.5rem",
                },
                style_header={
                    "fontWeight": "bold",
                    "backgroundColor": "white",
                    "borderBottom": "2px solid #dee2e6",
                    "fontFamily": "var(--bs-body-font-family)",
                },
                style_cell_conditional=[
                    {
                        "if": {"column_id": "name"},
                        "fontFamily": "SFMono-Regular, Menlo, Consolas, monospace",
                        "color": "#0d6efd",
                        "cursor": "pointer",
                    },
                    {"if": {"column_id": "rows"}, "textAlign": "right"},
                ],
                css=[{"selector": ".dash-spreadsheet td.focused", "rule": "background-color: #e7f1ff !important;"}],
            ),
        ],
        className="mb-3",
    )


@callback(
    Output("data-table", "value"),
    Input("data-objects-table", "active_cell"),
    State("data-objects-table", "data"),
    prevent_initial_call=True,
)
def pick_object(cell: dict | None, rows: list[dict] | None):
    """A click on a table's name in the list shows its columns below."""
    if not cell or cell.get("column_id") != "name" or not rows or not 0 <= cell.get("row", -1) < len(rows):
        return no_update
    return rows[cell["row"]]["name"]


@callback(Output("data-objects", "children"), Input("data-search", "value"))
def show_objects(search: str | None):
    try:
        found = objects(reader(), search)
    except SegriskError as exc:
        return ui.failed(exc)
    return objects_view(found, search)


@callback(
    Output(f"{DICTIONARY_TABLE.name}-rows", "children"),
    Output(f"{DICTIONARY_TABLE.name}-page", "max_value"),
    Output(f"{DICTIONARY_TABLE.name}-summary", "children"),
    Input("data-table", "value"),
    Input("data-search", "value"),
    Input(f"{DICTIONARY_TABLE.name}-page", "active_page"),
    Input(f"{DICTIONARY_TABLE.name}-sort", "value"),
    Input(f"{DICTIONARY_TABLE.name}-direction", "value"),
)
def show_dictionary(table: str | None, search: str | None, page: int | None, sort: str | None, direction: str | None):
    try:
        return DICTIONARY_TABLE.render(reader(), dictionary_params(table, search), page, sort, direction)
    except SegriskError as exc:
        return ui.failed(exc), 1, ""


@callback(
    Output(f"{DICTIONARY_TABLE.name}-download", "data"),
    Output(f"{DICTIONARY_TABLE.name}-download-message", "children"),
    Input(f"{DICTIONARY_TABLE.name}-download-button", "n_clicks"),
    State("data-table", "value"),
    State("data-search", "value"),
    State(f"{DICTIONARY_TABLE.name}-sort", "value"),
    State(f"{DICTIONARY_TABLE.name}-direction", "value"),
    prevent_initial_call=True,
)
def download_dictionary(_clicks, table, search, sort, direction):
    try:
        text = DICTIONARY_TABLE.csv(reader(), dictionary_params(table, search), sort, direction != "asc")
    except (SegriskError, ValueError) as exc:
        return no_update, str(exc)
    return dcc.send_string(text, "data_dictionary.csv"), ""


@callback(Output("data-quarantine", "children"), Input("data-quarantine-source", "value"))
def show_quarantine(source: str | None):
    try:
        data = reader()
        counts = quarantine_counts(data, source)
        reasons = quarantine_reasons(data, source)
        examples = quarantine_examples(data, source)
    except SegriskError as exc:
        return ui.failed(exc)
    total = int(counts.get_column("rows").sum() or 0)
    distinct = int(reasons.item(0, "reasons")) if reasons.height else 0
    shown = f"The {reasons.height:,} most frequent of {distinct:,} reasons." if distinct > reasons.height else ""
    by_rule = ui.table(
        [
            {
                "rule": r["rule"].replace("_", " "),
                "column": r["column_name"],
                "rows": ui.count(r["rows"]),
                "share": ui.percent(r["rows"] / total),
            }
            for r in counts.iter_rows(named=True)
        ],
        [("rule", "Rule broken"), ("column", "Column"), ("rows", "Rows"), ("share", "Share")],
        numeric=("rows", "share"),
    )
    by_reason = ui.table(
        [
            {"reason": r["reason"], "rule": r["rule"].replace("_", " "), "rows": ui.count(r["rows"])}
            for r in reasons.iter_rows(named=True)
        ],
        [("reason", "Reason"), ("rule", "Rule"), ("rows", "Rows")],
        numeric=("rows",),
    )
    example_rows = [
        {
            "where": f"{r['source_file']}, row {r['source_row']:,}",
            "rule": r["rule"].replace("_", " "),
            "reason": r["reason"],
            "record": html.Code(r["raw_record"], className="small text-break"),
        }
        for r in examples.iter_rows(named=True)
    ]
    return html.Div(
        [
            html.P(f"{total:,} rejected rows from {source}, kept in the quarantine table with why.", className="mb-2"),
            dbc.Row(
                [
                    dbc.Col([html.H4("By rule and column", className="h6"), by_rule], lg=5),
                    dbc.Col(
                        [
                            html.H4("By reason", className="h6"),
                            html.P(shown, className="small text-muted mb-1") if shown else None,
                            html.Div(by_reason, style={"maxHeight": "24rem", "overflowY": "auto"}),
                        ],
                        lg=7,
                    ),
                ]
            ),
            html.H4(f"The first {len(example_rows):,} rejected rows, as they were in the file", className="h6 mt-2"),
            ui.table(
                example_rows,
                [("where", "File and row"), ("rule", "Rule"), ("reason", "Reason"), ("record", "Row as loaded")],
            )
            # A rejected row is a customer's record: viewers see the counts only.
            if not has_request_context() or auth.user_can("customer_level")
            else ui.unavailable(auth.refusal("customer_level")),
        ]
    )


# -- SQL console (analysts and admins; the engine is dashboard/sql_console.py) --------------------------

SQL_PAGE_SIZE = 25
HIDDEN = {"display": "none"}


def sql_console_section() -> list:
    heading = html.H3("SQL console", className="h5 mt-4")
    try:
        limits = sql_console.console(reader().path).limits
    except SegriskError as exc:
        return [heading, ui.failed(exc)]
    return [
        heading,
        html.P(
            f"Read-only SQL on this warehouse, one statement at a time: at most {limits.time_limit:g} s and the "
            f"first {limits.row_cap:,} rows; no other file, no network, no settings. Every query is audited.",
            className="small text-muted",
        ),
        dbc.Textarea(
            id="data-sql-text",
            rows=5,
            className="font-monospace small",
            placeholder="SELECT persona_name, grade, count(*) AS customers FROM mart_customer_profile GROUP BY ALL",
        ),
        dbc.Row(
            [
                dbc.Col(dbc.Button("Run", id="data-sql-run", color="primary", size="sm"), width="auto"),
                dbc.Col(
                    dbc.Button("Download CSV", id="data-sql-download-button", color="secondary", size="sm"),
                    width="auto",
                ),
            ],
            className="g-2 my-2",
        ),
        dcc.Store(id="data-sql-token"),
        dcc.Loading(html.Div(id="data-sql-message"), delay_show=300),
        html.Div(id="data-sql-result", style={"overflowX": "auto"}),
        html.Div(
            pagination("data-sql-page"),
            id="data-sql-pager",
            style=HIDDEN,
        ),
        dcc.Download(id="data-sql-download"),
        html.Div(id="data-sql-download-message", className="small text-danger"),
    ]


@callback(
    Output("data-sql-token", "data"),
    Output("data-sql-message", "children"),
    Output("data-sql-page", "max_value"),
    Output("data-sql-page", "active_page"),
    Output("data-sql-pager", "style"),
    Input("data-sql-run", "n_clicks"),
    State("data-sql-text", "value"),
    prevent_initial_call=True,
)
def run_sql(_clicks: int | None, sql: str | None):
    """Run the typed SQL in the console's sandbox; audit its text with the row count or the error."""
    if not auth.user_can("sql"):
        auth.audit("sql_query", f"refused for the role | sql: {sql or ''}", "refused")
        return None, dbc.Alert(auth.refusal("sql"), color="danger", className="py-2 my-2"), 1, 1, HIDDEN
    try:
        console = sql_console.console(reader().path)
        result = console.run(sql)
    except SegriskError as exc:
        # The outcome says which: "refused", "failed", "stopped", or "busy" (every worker was taken).
        auth.audit("sql_query", f"error: {exc} | sql: {sql or ''}", getattr(exc, "outcome", "failed"))
        return None, dbc.Alert(str(exc), color="danger", className="py-2 my-2", id="data-sql-error"), 1, 1, HIDDEN
    capped = " (capped)" if result.truncated else ""
    auth.audit("sql_query", f"rows: {result.row_count}{capped} | sql: {sql}")
    pages = max(-(-result.row_count // SQL_PAGE_SIZE), 1)
    summary = html.P(result.summary(), className="small text-muted my-2")
    token = sql_console.remember(auth.current_user()[0], result, console.limits.results_mb << 20)
    return token, summary, pages, 1, HIDDEN if pages == 1 else None


@callback(
    Output("data-sql-result", "children"),
    Input("data-sql-token", "data"),
    Input("data-sql-page", "active_page"),
)
def show_sql_result(token: str | None, page: int | None):
    result = sql_console.recall(auth.current_user()[0], token)
    if result is None:
        return None
    if not result.columns:
        return ui.unavailable("The statement returned no columns.")
    pages = max(-(-result.row_count // SQL_PAGE_SIZE), 1)
    page = min(max(page or 1, 1), pages)
    columns = [(f"c{i}", name) for i, name in enumerate(result.columns)]
    numeric = tuple(key for i, (key, _) in enumerate(columns) if sql_console.is_numeric(result.table, i))
    return html.Div(
        [
            ui.table(sql_console.page_rows(result, page, SQL_PAGE_SIZE), columns, numeric=numeric),
            html.P(
                f"Rows {(page - 1) * SQL_PAGE_SIZE + 1:,}-{min(page * SQL_PAGE_SIZE, result.row_count):,} "
                f"of {result.row_count:,}"
                if result.row_count
                else "No rows.",
                className="small text-muted",
            ),
        ],
        id="data-sql-table",
    )


@callback(
    Output("data-sql-download", "data"),
    Output("data-sql-download-message", "children"),
    Input("data-sql-download-button", "n_clicks"),
    State("data-sql-token", "data"),
    prevent_initial_call=True,
)
def download_sql_result(_clicks: int | None, token: str | None):
    if not auth.user_can("download"):
        return no_update, auth.refusal("download")
    result = sql_console.recall(auth.current_user()[0], token)
    if result is None:
        return no_update, "Run a query first (results are kept for a while on the server; run it again)."
    auth.audit("download", f"SQL console result, {result.row_count} rows")
    return dcc.send_string(sql_console.result_csv(result), "segrisk-sql-result.csv"), ""

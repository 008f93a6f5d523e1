"""Server-side paged tables: only the rows on screen travel to the browser, never the whole table.

A page declares a paged table once: the columns it shows, the ``FROM ... WHERE ...`` text with
bound parameters, and the columns a user may sort by. Each (column, direction) pair becomes its
own named query, so the sort a user picks selects a query and is never formatted into SQL. The
same ``FROM ... WHERE`` serves the row count and the CSV download, so a download is the table's
current filter, in its current order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import dash_bootstrap_components as dbc
import polars as pl
from dash import dcc, html
from flask import has_request_context

from . import auth, downloads, filters, ui
from .data import QUERIES, WarehouseReader, register

PAGE_SIZE = 25
#: A download larger than this is refused with a sentence: a spreadsheet is not a warehouse.
DOWNLOAD_ROW_CAP = 1_000_000


@dataclass(frozen=True)
class Column:
    """A shown column: ``format`` turns the row's ``key`` value into text or a component (a link);
    ``from_row`` instead builds the cell from the whole row (a button that needs two of its values)."""

    key: str
    heading: str
    format: Callable[[object], object] = str
    numeric: bool = False
    from_row: Callable[[dict], object] | None = None

    def cell(self, row: dict) -> object:
        return self.from_row(row) if self.from_row is not None else self.format(row[self.key])


@dataclass(frozen=True)
class PagedTable:
    """A table of ``select`` over ``from_where``; ids and query names start with ``name``."""

    name: str
    select: str
    from_where: str
    columns: tuple[Column, ...]
    sortable: tuple[str, ...]
    default_sort: str
    default_descending: bool = True
    tiebreak: str = "1"
    page_size: int = PAGE_SIZE
    #: SQL to order by for a sortable key when it is not the column itself (e.g. a severity's rank).
    sort_sql: tuple[tuple[str, str], ...] = ()
    #: One row per customer (or per customer's alert, offer...): viewers, who see aggregates only,
    #: get a sentence instead of the rows and cannot download them.
    customer_level: bool = True
    #: A query giving the row count (as ``n``) with the same parameters, from a cube of the table
    #: (warehouse/marts.py) instead of counting its rows; by default ``count(*)`` of ``from_where``.
    count_sql: str | None = None
    #: The (sortable column, "ASC" or "DESC") the table's rows are stored in (warehouse/marts.py,
    #: ``FactMart.order``, with ``tiebreak`` after it). In that order a page is the rows meeting the
    #: filters in storage order, which DuckDB keeps for a query without ORDER BY (its
    #: ``preserve_insertion_order``, on by default): the scan stops once it has the page's rows,
    #: instead of sorting every row the filters keep. A test compares it with the sorted query.
    stored_sort: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        count = self.count_sql or f"SELECT count(*) AS n {self.from_where}"
        queries = {f"{self.name}:count": count}
        # With no global filter set, the count and the page skip the filter conditions and any join to
        # the customer profile they need (see filters.unfiltered).
        bare = filters.unfiltered(self.from_where)
        if bare is not None and filters.PROFILE_JOIN in self.from_where and "p." in self.select:
            bare = None  # the rows shown read the profile: keep its join
        bare_count = filters.unfiltered(count)
        if bare_count is not None:
            queries[f"{self.name}:count:all"] = bare_count
        for column in self.sortable:
            for direction in ("ASC", "DESC"):
                # In the stored order no sort is needed (see stored_sort).
                order = "" if (column, direction) == self.stored_sort else self.order_by(column, direction)
                name = f"{self.name}:page:{column}:{direction}"
                queries[name] = f"SELECT {self.select} {self.from_where} {order} LIMIT $limit OFFSET $offset"
                if bare is not None:
                    queries[f"{name}:all"] = f"SELECT {self.select} {bare} {order} LIMIT $limit OFFSET $offset"
        register(**queries)

    def order_by(self, column: str, direction: str) -> str:
        """The ORDER BY of a sort: the column (or its ``sort_sql``), then the tiebreak."""
        return f"ORDER BY {dict(self.sort_sql).get(column, column)} {direction} NULLS LAST, {self.tiebreak}"

    @staticmethod
    def _is_unfiltered(params: dict) -> bool:
        return all(not params.get(name) for name in filters.FILTER_PARAMS)

    # -- queries -------------------------------------------------------------------------
    def _query_name(self, sort: str | None, descending: bool | None) -> str:
        column = sort if sort in self.sortable else self.default_sort
        direction = "DESC" if (self.default_descending if descending is None else descending) else "ASC"
        return f"{self.name}:page:{column}:{direction}"

    @staticmethod
    def _own(params: dict) -> dict:
        """The table's own parameters, without the global filters' (for the unfiltered twins)."""
        return {k: v for k, v in params.items() if k not in filters.FILTER_PARAMS}

    def count(self, data: WarehouseReader, params: dict) -> int:
        if self._is_unfiltered(params) and f"{self.name}:count:all" in QUERIES:
            return int(data.query(f"{self.name}:count:all", **self._own(params)).item())
        return int(data.query(f"{self.name}:count", **params).item())

    def page(
        self, data: WarehouseReader, params: dict, page: int, sort: str | None = None, descending: bool | None = None
    ) -> pl.DataFrame:
        offset = max(page - 1, 0) * self.page_size
        name = self._query_name(sort, descending)
        if self._is_unfiltered(params) and f"{name}:all" in QUERIES:
            return data.query(f"{name}:all", **self._own(params), limit=self.page_size, offset=offset)
        return data.query(name, **params, limit=self.page_size, offset=offset)

    def csv(self, data: WarehouseReader, params: dict, sort: str | None = None, descending: bool | None = None) -> str:
        """The whole current filter as CSV text, in the current order (refused above the cap, and to
        viewers for customer-level tables); every download and refusal goes to the audit log."""
        what = f"{self.name}; {_described(params)}"
        if self.customer_level and not _allowed("download"):
            auth.audit("download", what, "refused")
            raise ValueError(auth.refusal("download"))
        total = self.count(data, params)
        if total > DOWNLOAD_ROW_CAP:
            raise ValueError(f"{total:,} rows match: downloads stop at {DOWNLOAD_ROW_CAP:,}; narrow the filters first.")
        rows = data.query(self._query_name(sort, descending), **params, limit=max(total, 1), offset=0)
        if has_request_context():
            auth.audit("download", f"{what}; {total:,} rows")
        return downloads.safe_frame(rows).write_csv()

    # -- layout --------------------------------------------------------------------------
    def layout(self, title: str = "") -> html.Div:
        sort_options = [{"label": c.heading, "value": c.key} for c in self.columns if c.key in self.sortable]
        controls = dbc.Row(
            [
                dbc.Col(html.H3(title, className="h6 mb-0"), className="align-self-center"),
                dbc.Col(
                    dcc.Dropdown(
                        id=f"{self.name}-sort",
                        options=sort_options,
                        value=self.default_sort,
                        clearable=False,
                        className="small",
                    ),
                    width=3,
                ),
                dbc.Col(
                    dbc.RadioItems(
                        id=f"{self.name}-direction",
                        options=[{"label": "desc", "value": "desc"}, {"label": "asc", "value": "asc"}],
                        value="desc" if self.default_descending else "asc",
                        inline=True,
                        className="small",
                    ),
                    width="auto",
                    className="align-self-center",
                ),
                dbc.Col(
                    dbc.Button("Download CSV", id=f"{self.name}-download-button", size="sm", color="secondary"),
                    width="auto",
                ),
            ],
            className="g-2 mb-2",
        )
        return html.Div(
            [
                controls,
                dcc.Loading(html.Div(id=f"{self.name}-rows"), delay_show=300),
                pager_row(self.name),
                dcc.Download(id=f"{self.name}-download"),
                html.Div(id=f"{self.name}-download-message", className="small text-danger"),
            ]
        )

    def render(
        self, data: WarehouseReader, params: dict, page: int | None, sort: str | None, direction: str | None
    ) -> tuple[object, int, str]:
        """(table, number of pages, "rows 1-25 of 6,993") for one page of the current filter."""
        if self.customer_level and not _allowed("customer_level"):
            return dbc.Alert(auth.refusal("customer_level"), color="info", className="my-3"), 1, ""
        total = self.count(data, params)
        pages = max(math.ceil(total / self.page_size), 1)
        page = min(max(page or 1, 1), pages)
        if total == 0:
            return ui.unavailable("No rows match the current filters."), 1, "0 rows"
        rows = self.page(data, params, page, sort, direction != "asc")
        shown = [{c.key: c.cell(row) for c in self.columns} for row in rows.iter_rows(named=True)]
        first = (page - 1) * self.page_size + 1
        summary = f"rows {first:,}-{first + rows.height - 1:,} of {total:,}"
        numeric = tuple(c.key for c in self.columns if c.numeric)
        return ui.table(shown, [(c.key, c.heading) for c in self.columns], numeric=numeric), pages, summary


def pagination(component_id: str) -> dbc.Pagination:
    """The pager of a server-paged table: first and last, previous and next, a few page numbers."""
    return dbc.Pagination(
        id=component_id,
        max_value=1,
        active_page=1,
        fully_expanded=False,
        first_last=True,
        previous_next=True,
        size="sm",
    )


def pager_row(name: str) -> dbc.Row:
    """Under a paged table: its summary (``{name}-summary``, "rows 1-25 of 6,993") on the left and
    its pager (``{name}-page``) on the right."""
    return dbc.Row(
        [
            dbc.Col(html.Div(id=f"{name}-summary", className="small text-muted")),
            dbc.Col(pagination(f"{name}-page"), width="auto"),
        ]
    )


def _allowed(capability: str) -> bool:
    """The signed-in user's role decides in a request; code outside one (tests, scripts) is trusted."""
    return not has_request_context() or auth.user_can(capability)


def _described(params: dict) -> str:
    """The filters of a download, for the audit log: the parameters that are set."""
    shown = [f"{name}={value}" for name, value in sorted(params.items()) if value not in (None, "", [], ())]
    return ", ".join(shown) or "no filters"

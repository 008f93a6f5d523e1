"""CSV downloads of the small tables pages show (grades, policy by persona, tests, model runs).

A small table is rendered once, with the page's filters and choices of that moment; its CSV is
kept here under a random token as it was rendered, and its "CSV" link fetches exactly those rows
through a login-guarded route that checks the user may download and writes the export to the
audit log. Large tables page on the server and download through their own query
(``dashboard/paged.py``). Kept per server process; a token unknown to the process that answers
(a restart, or several processes without sticky sessions) gets a sentence asking to reload.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict

import polars as pl
from dash import html
from flask import Flask, Response

#: Rendered tables kept for download; the oldest go first (a few KB each).
KEPT_TABLES = 2_000
_TABLES: OrderedDict[str, tuple[str, str]] = OrderedDict()
_LOCK = threading.Lock()
ROUTE = "/download/table/"


#: OWASP's CSV injection advice: a text cell starting with one of these is read as a formula by
#: spreadsheets (``=HYPERLINK(...)``, ``@SUM(...)``, ``=cmd|' /C calc'!A0``), so it gets a leading ``'``.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: ... unless the whole text is a plain number (``-0.25``, ``-1,200``, ``-3.5%``): no formula, left as is.
_NUMBER = r"[+-]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?%?"
_PLAIN_NUMBER = re.compile(_NUMBER)


def safe_cell(value: object) -> object:
    """A CSV cell that no spreadsheet runs as a formula; numbers and other non-text values unchanged.
    Every CSV the dashboard writes goes through this (or ``safe_frame``, its column form)."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``safe_cell`` applied to every text cell and column name, ready for ``write_csv``."""
    fixed = []
    for name, kind in frame.schema.items():
        if kind == pl.String or isinstance(kind, pl.Categorical | pl.Enum):
            text = pl.col(name).cast(pl.String)
            risky = text.str.contains(r"^[=+\-@\t\r]") & ~text.str.contains(f"^{_NUMBER}$")
            fixed.append(pl.when(risky).then(pl.lit("'") + text).otherwise(text).alias(name))
    if fixed:
        frame = frame.with_columns(fixed)
    return frame.rename({name: str(safe_cell(name)) for name in frame.columns})


def _text(value: object) -> object:
    """A cell as the CSV should hold it: components (a link, a bold figure) become their text."""
    children = getattr(value, "children", None)
    if children is not None or hasattr(value, "to_plotly_json"):
        if isinstance(children, list | tuple):
            return "".join(str(_text(c)) for c in children)
        return _text(children) if children is not None else ""
    return value


def keep(filename: str, rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """Keep a rendered table's CSV (headings as shown); returns the link's address."""
    frame = pl.DataFrame(
        {heading: [None if (v := _text(row.get(key))) is None else str(v) for row in rows] for key, heading in columns},
        schema={heading: pl.String for _, heading in columns},
    )
    token = secrets.token_urlsafe(16)
    with _LOCK:
        _TABLES[token] = (filename, safe_frame(frame).write_csv())
        while len(_TABLES) > KEPT_TABLES:
            _TABLES.popitem(last=False)
    return ROUTE + token


def link(filename: str, rows: list[dict], columns: list[tuple[str, str]]) -> html.A:
    return html.A(
        "Download CSV",
        href=keep(filename, rows, columns),
        className="small",
        title="The table as shown, with the filters and choices of this page",
        download=filename,
    )


def install(server: Flask) -> None:
    """The route that answers the links (behind the login every route has)."""
    from . import auth

    @server.route(ROUTE + "<token>")
    def _table_csv(token: str) -> Response:
        with _LOCK:
            found = _TABLES.get(token)
        if found is None:
            return Response(
                "This download has expired: reload the page and click Download CSV again.", 404, mimetype="text/plain"
            )
        filename, text = found
        if not auth.user_can("download"):
            auth.audit("download", filename, "refused")
            return Response(auth.refusal("download"), 403, mimetype="text/plain")
        auth.audit("download", filename)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", filename)
        return Response(text, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{safe}"'})

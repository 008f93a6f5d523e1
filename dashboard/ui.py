"""The dashboard's look in one place: number formats, headline cards, the empty-state sentence."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

#: One colour per grade, best to worst, on every page.
GRADE_COLOURS = {"A": "#1a9850", "B": "#91cf60", "C": "#fee08b", "D": "#fc8d59", "E": "#d73027"}


def count(value: float | int | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}%}"


def money(value: float | None) -> str:
    if value is None:
        return "–"
    for limit, suffix in ((1e9, "bn"), (1e6, "m"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:,.1f}{suffix}"
    return f"{value:,.0f}"


def headline(title: str, value: str, note: str = "") -> dbc.Card:
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div(title, className="text-muted small"),
                html.Div(value, className="fs-3 fw-semibold"),
                html.Div(note, className="text-muted small"),
            ]
        ),
        className="h-100",
    )


def unavailable(sentence: str) -> dbc.Alert:
    """What a page shows when its data is absent: one sentence, never a broken chart."""
    return dbc.Alert(sentence, color="secondary", className="my-3")


def table(rows: list[dict], columns: list[tuple[str, str]], numeric: tuple[str, ...] = ()) -> dbc.Table:
    """A small table (tens of rows) as plain HTML: ``columns`` are (key, heading) pairs."""
    right = {"textAlign": "right"}
    head = html.Thead(html.Tr([html.Th(name, style=right if key in numeric else None) for key, name in columns]))
    body = html.Tbody(
        [html.Tr([html.Td(row[key], style=right if key in numeric else None) for key, _ in columns]) for row in rows]
    )
    return dbc.Table([head, body], size="sm", hover=True, className="small")

"""The dashboard's look in one place: number formats, headline cards, the empty-state sentence."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import plotly.colors
import plotly.graph_objects as go
from dash import html

#: One colour per grade, best to worst, on every page.
GRADE_COLOURS = {"A": "#1a9850", "B": "#91cf60", "C": "#fee08b", "D": "#fc8d59", "E": "#d73027"}

#: One colour per alert severity, on every page.
SEVERITY_COLOURS = {"low": "#fee08b", "medium": "#fc8d59", "high": "#d73027"}

#: Persona colours (Plotly's colour-blind-safe qualitative palette), by persona key: S1 is always
#: the first colour, so a persona keeps its colour on every page, chart and export.
PERSONA_PALETTE = (
    "#88CCEE", "#CC6677", "#DDCC77", "#117733", "#332288", "#AA4499",
    "#44AA99", "#999933", "#882255", "#661100", "#6699CC", "#888888",
)  # fmt: skip
UNASSIGNED_COLOUR = "#BBBBBB"


def figure(data: list[dict], layout: dict) -> go.Figure:
    """A Plotly figure from plain trace and layout dicts (full names: ``{"title": {"text": ...}}``,
    ``{"marker": {"color": ...}}``), without Plotly's property-by-property validation.

    Validation is most of the time of building a chart (a grid or a treemap: 4-6 ms of Python per
    figure, several per filter change, which concurrent callbacks wait on); the answer is the same
    figure. The page tests put every figure built this way through a validating ``go.Figure``.
    """
    return go.Figure(data=data, layout=layout, _validate=False)


def colorscale(name: str) -> list[list]:
    """A named colour scale as Plotly's Python side defines it (light to dark for "Blues"), written
    out: plotly.js defines some names the other way round, and a figure built with ``figure`` is
    not converted on the way."""
    return plotly.colors.get_colorscale(name)


def persona_colour(persona_key: str | None) -> str:
    """The colour of a persona key such as ``S3`` (grey when unassigned or unknown)."""
    key = str(persona_key or "")
    if key[1:].isdigit():
        return PERSONA_PALETTE[(int(key[1:]) - 1) % len(PERSONA_PALETTE)]
    return UNASSIGNED_COLOUR


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


def failed(exc: BaseException) -> dbc.Alert:
    """What a chart shows when its query fails: the one-sentence reason, never a traceback."""
    return dbc.Alert(str(exc), color="warning", className="my-3")


def unavailable(sentence: str) -> dbc.Alert:
    """What a page shows when its data is absent: one sentence, never a broken chart."""
    return dbc.Alert(sentence, color="secondary", className="my-3")


def outdated(table: str, command: str) -> dbc.Alert:
    """What a page shows when the warehouse predates a mart it reads: how to bring it up to date."""
    return unavailable(
        f"This warehouse was built before the dashboard read `{table}`: run `{command}` or rebuild it to add it."
    )


def table(
    rows: list[dict], columns: list[tuple[str, str]], numeric: tuple[str, ...] = (), download: str | None = None
) -> dbc.Table | html.Div:
    """A small table (tens of rows) as plain HTML: ``columns`` are (key, heading) pairs. With
    ``download`` (a file name), a "Download CSV" link under it gives the rows as shown."""
    right = {"textAlign": "right"}
    head = html.Thead(html.Tr([html.Th(name, style=right if key in numeric else None) for key, name in columns]))
    body = html.Tbody(
        [html.Tr([html.Td(row[key], style=right if key in numeric else None) for key, _ in columns]) for row in rows]
    )
    shown = dbc.Table([head, body], size="sm", hover=True, className="small")
    if download is None:
        return shown
    from . import downloads

    return html.Div([shown, html.Div(downloads.link(download, rows, columns), className="text-end mb-2")])

"""The dashboard's Export menu: the PDF report or the Excel workbook of what the user is looking at,
with the global filters of the filter bar, made by the same code as ``segrisk report``.

The PDF holds aggregates only, so every role may export it. The workbook lists customers (their
alerts, offers, PD, score and decision): a viewer, who sees aggregates only, is refused it. Every
export and refusal goes to the audit log.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from dashboard import auth, filters
from dashboard.data import reader
from warehouse.errors import SegriskError

from . import write_report

#: What each format is called in the menu and in messages, and whether it holds customer-level rows.
EXPORTS = {
    "pdf": ("PDF report", False),
    "xlsx": ("Excel workbook", True),
}
LABEL = "Export"
BUSY_LABEL = "Exporting…"


def menu() -> list:
    """Navbar items: the Export dropdown, and (outside it, so they exist while it is closed) the
    download target and the message that says why an export was refused."""
    return [
        dbc.DropdownMenu(
            [dbc.DropdownMenuItem(label, id=f"export-{key}") for key, (label, _) in EXPORTS.items()],
            id="export-menu",
            label=LABEL,
            nav=True,
            in_navbar=True,
            align_end=True,
        ),
        html.Li(
            [
                dcc.Download(id="export-download"),
                dbc.Toast(
                    id="export-message",
                    header="Export",
                    is_open=False,
                    dismissable=True,
                    duration=10_000,
                    style={"position": "fixed", "top": 64, "right": 16, "width": 380, "zIndex": 1080},
                ),
            ],
            className="nav-item",
        ),
    ]


def file_name(format: str, filtered: bool, as_of: date | None = None) -> str:  # noqa: A002
    stamp = f"{as_of:%Y-%m-%d}" if as_of else f"{date.today():%Y-%m-%d}"
    return f"segrisk-report-{stamp}{'-filtered' if filtered else ''}.{format}"


def export(format: str, global_filters: dict | None, page: str | None) -> tuple[dict | None, str | None]:  # noqa: A002
    """(the download for dcc.Download, None) or (None, the sentence why not), after checking the
    signed-in user's role; the export or the refusal is audited."""
    label, customer_level = EXPORTS[format]
    _, role = auth.current_user()
    detail = f"{label}; {filters.describe(global_filters)}; from page {page or '/'}"
    if customer_level and not auth.can(role, "customer_level"):
        auth.audit("export", detail, "refused")
        return None, auth.refusal("customer_level")
    try:
        data = reader()
        renderer = None
        if format == "pdf":
            from .charts import shared

            renderer = shared()
        with tempfile.TemporaryDirectory(prefix="segrisk-export-") as folder:
            target = Path(folder) / f"report.{format}"
            result = write_report(data, format, target, global_filters, renderer=renderer)
            sent = dcc.send_file(str(target), filename=file_name(format, filters.is_filtered(global_filters)))
    except SegriskError as exc:
        auth.audit("export", f"{detail}: {exc}", "failed")
        return None, str(exc)
    auth.audit("export", f"{detail}; {_size(result)}")
    return sent, None


def _size(result) -> str:  # noqa: ANN001 - a ReportResult
    if result.format == "pdf":
        return f"{result.pages} pages"
    return ", ".join(f"{name} {rows:,} rows" for name, rows in result.sheet_rows.items())


@callback(
    Output("export-download", "data"),
    Output("export-message", "children"),
    Output("export-message", "is_open"),
    *[Input(f"export-{key}", "n_clicks") for key in EXPORTS],
    State("filters", "data"),
    State("url", "pathname"),
    prevent_initial_call=True,
    running=[(Output("export-menu", "label"), BUSY_LABEL, LABEL)],
)
def download(*clicks_and_state):
    *clicks, global_filters, page = clicks_and_state
    chosen = str(ctx.triggered_id or "").removeprefix("export-")
    if chosen not in EXPORTS or not any(clicks):
        return no_update, no_update, no_update
    sent, refusal = export(chosen, global_filters, page)
    if refusal:
        return no_update, refusal, True
    return sent, no_update, False

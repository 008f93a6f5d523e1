"""The Dash application: pages from ``dashboard/pages``, a login in front, the warehouse read-only.

``create_app`` builds it for one warehouse file; ``serve`` runs it under waitress, a production
WSGI server, on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, html
from flask import Response

from warehouse.app_state import AppState, state_path
from warehouse.errors import SegriskError, WarehouseError

from . import api, auth, disclosure, downloads, filters
from .data import configure, reader
from .reports import download as export

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parents[1] / "assets"
PAGES = Path(__file__).resolve().parent / "pages"


def create_app(db_path: Path, users: dict[str, auth.User] | None = None) -> Dash:
    """The dashboard for one warehouse. Users are those of the app-state store beside it, after
    ``SEGRISK_ADMIN_PASSWORD`` / ``SEGRISK_USERS`` are put in it; ``users`` (tests) are put in instead."""
    disclosure.min_cell_size()  # a bad SEGRISK_MIN_CELL_SIZE stops the start with its sentence
    configure(db_path)
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder=str(PAGES),
        assets_folder=str(ASSETS),
        title="Segrisk",
        suppress_callback_exceptions=True,
        on_error=_callback_failed,
    )
    _share_page_callbacks()
    access = AppState(state_path(db_path))
    if users is None:
        auth.bootstrap(access)
    for user in (users or {}).values():
        access.set_user(user.name, user.role, password_hash=user.password_hash)
    auth.install(app.server, access)
    app.server.register_error_handler(SegriskError, _request_failed)
    api.install(app.server)
    downloads.install(app.server)
    pages = sorted(dash.page_registry.values(), key=lambda p: p.get("order", 99))

    def menu() -> list:
        # Pages registered with admin_only=True stay in the menu (the filter callback updates every
        # link) but are hidden from everyone else; the page itself refuses them too.
        admin = auth.user_can("admin")
        return [
            dbc.NavItem(
                dbc.NavLink(page["name"], href=page["relative_path"], active="exact", id=f"nav-{i}"),
                style={"display": "none"} if page.get("admin_only") and not admin else None,
            )
            for i, page in enumerate(pages)
        ]

    paths = [page["relative_path"] for page in pages]

    def frame() -> html.Div:
        # A function, so the filter options are read from the warehouse at each full page load.
        try:
            data = reader()
            data.stamp()
        except WarehouseError:
            data = None
        return html.Div(
            [
                dbc.NavbarSimple(
                    menu() + export.menu() + [dbc.NavItem(dbc.NavLink("Sign out", href="/logout", external_link=True))],
                    brand="Segrisk",
                    color="dark",
                    dark=True,
                    fluid=True,
                ),
                filters.bar(data),
                dbc.Alert(id=PROBLEM, is_open=False, color="warning", dismissable=True, className="m-3 mb-0"),
                dbc.Container(dash.page_container, fluid=True, className="py-3"),
            ]
        )

    app.layout = frame

    @app.callback([Output(f"nav-{i}", "href") for i in range(len(paths))], Input("filters", "data"))
    def carry_filters(chosen: dict | None) -> list[str]:
        """Links keep the filters: moving to another page keeps the view."""
        fragment = filters.to_fragment(chosen or {})
        return [path + fragment for path in paths]

    return app


#: Where a callback that failed says why, above every page.
PROBLEM = "view-problem"


def _callback_failed(exc: Exception) -> None:
    """Dash's handler for an exception a callback let through: the sentence of a ``SegriskError`` (the
    app-state store locked by another program, a warehouse being swapped) or a short note for anything
    else, shown in the page's problem box; the view keeps what it showed, and no traceback reaches the
    browser (an unexpected error is logged with its traceback on the server)."""
    if isinstance(exc, SegriskError):
        sentence = str(exc)
    else:
        log.error("a dashboard callback failed", exc_info=exc)
        sentence = "This view could not be updated because of an unexpected error; it has been logged."
    dash.set_props(PROBLEM, {"children": sentence, "is_open": True})


def _request_failed(exc: SegriskError) -> Response:
    """Any other route (a download, a report) that meets a ``SegriskError``: its sentence, 503."""
    return Response(str(exc), status=503, mimetype="text/plain")


#: The page modules' callbacks (``dash.callback``, ``dash.clientside_callback``: registered once, when
#: Dash first imports them).
_PAGE_CALLBACK_MAP: dict = {}
_PAGE_CALLBACK_LIST: list = []
_PAGE_INLINE_SCRIPTS: list = []


def _share_page_callbacks() -> None:
    """Dash hands the page modules' callbacks to the first app that serves a request and forgets them;
    a server runs one app, but a test process builds many, and each needs them all."""
    from dash import _callback

    _PAGE_CALLBACK_MAP.update(_callback.GLOBAL_CALLBACK_MAP)
    _PAGE_CALLBACK_LIST.extend(c for c in _callback.GLOBAL_CALLBACK_LIST if c not in _PAGE_CALLBACK_LIST)
    _PAGE_INLINE_SCRIPTS.extend(s for s in _callback.GLOBAL_INLINE_SCRIPTS if s not in _PAGE_INLINE_SCRIPTS)
    _callback.GLOBAL_CALLBACK_MAP.update(_PAGE_CALLBACK_MAP)
    _callback.GLOBAL_CALLBACK_LIST[:] = _PAGE_CALLBACK_LIST
    _callback.GLOBAL_INLINE_SCRIPTS[:] = _PAGE_INLINE_SCRIPTS


#: (page, callback, arguments): the unfiltered first view of each page, as a first visitor opens it.
FIRST_VIEWS = (
    ("overview", "show_overview", (None,)),
    ("personas", "show_scatter", (None, 0)),
    ("personas", "show_cards", (None, 0)),
    ("personas", "show_run_charts", (0,)),
    ("risk", "show_scores", (None,)),
    ("warnings", "show_charts", (None, None, None, "open", 0)),
    ("warnings", "show_table", (None, None, None, "open", 0, 1, "severity", "desc")),
    ("cross_sell", "show_heatmap", (None,)),
    ("cross_sell", "show_mix", (None, "first_choice")),
    ("cross_sell", "show_table", (None, None, 1, "customer_id", "asc")),
    ("rfm", "show_segments", (None, None)),
    ("rfm", "show_spread", (None,)),
    ("rfm", "show_table", (None, None, 1, "rfm_monetary", "desc")),
)


def warm() -> None:
    """Read now what first visitors would otherwise wait for: the filter options, the policy
    simulator's population and folded cells, and each page's unfiltered first view, whose answers
    stay in the reader's cache until the warehouse file is swapped."""
    try:
        data = reader()
        filters.options(data)
        risk_page = sys.modules.get("pages.risk")
        if risk_page is not None and data.has("ml_latest_risk_scores"):
            risk_page.cells(data)
    except SegriskError:
        return  # the page that needs it will say why
    # Each page's layout first (the page router runs it on every visit), then its callbacks' first view.
    views = [(page.rsplit(".", 1)[-1], "layout", ()) for page in sorted(sys.modules) if page.startswith("pages.")]
    views += FIRST_VIEWS
    statistics = sys.modules.get("pages.statistics")
    try:
        if statistics is not None and statistics.features(data):
            first = next(iter(statistics.features(data)))  # the feature the page opens on
            views += [
                ("statistics", "show_distribution", (None, first, "persona", "count")),
                ("statistics", "show_groups", (None, first, "persona")),
            ]
        if statistics is not None and data.has("ml_statistical_tests"):
            views.append(("statistics", "show_tests", (statistics.opening_families(data), [])))
    except SegriskError:
        pass
    for page, name, arguments in views:
        module = sys.modules.get(f"pages.{page}")
        try:
            if module is not None:
                getattr(module, name)(*arguments)
        except Exception:  # noqa: BLE001 - warming is best effort: the visitor's own request will say what failed
            continue


def serve(db_path: Path, host: str = "127.0.0.1", port: int = 8050, threads: int = 8) -> None:
    """Run the dashboard under waitress until interrupted."""
    from waitress import serve as waitress_serve

    app = create_app(db_path)
    # Load what the first visitor would otherwise wait for (the policy simulator's population, about
    # 2 s at a million customers; every page's first view) while the server starts.
    threading.Thread(target=warm, daemon=True).start()
    waitress_serve(app.server, host=host, port=port, threads=threads)

"""The Dash application: pages from ``dashboard/pages``, a login in front, the warehouse read-only.

``create_app`` builds it for one warehouse file; ``serve`` runs it under waitress, a production
WSGI server, on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, html

from warehouse.errors import SegriskError, WarehouseError

from . import auth, filters
from .data import configure, reader

ASSETS = Path(__file__).resolve().parents[1] / "assets"
PAGES = Path(__file__).resolve().parent / "pages"


def create_app(db_path: Path, users: dict[str, auth.User] | None = None) -> Dash:
    """The dashboard for one warehouse; ``users`` default to those of the environment."""
    configure(db_path)
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder=str(PAGES),
        assets_folder=str(ASSETS),
        title="Segrisk",
        suppress_callback_exceptions=True,
    )
    auth.install(app.server, auth.users_from_environment() if users is None else users)
    pages = sorted(dash.page_registry.values(), key=lambda p: p.get("order", 99))
    links = [
        dbc.NavItem(dbc.NavLink(page["name"], href=page["relative_path"], active="exact", id=f"nav-{i}"))
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
                    links + [dbc.NavItem(dbc.NavLink("Sign out", href="/logout", external_link=True))],
                    brand="Segrisk",
                    color="dark",
                    dark=True,
                    fluid=True,
                ),
                filters.bar(data),
                dbc.Container(dash.page_container, fluid=True, className="py-3"),
            ]
        )

    app.layout = frame

    @app.callback([Output(f"nav-{i}", "href") for i in range(len(paths))], Input("url", "hash"))
    def carry_filters(fragment: str | None) -> list[str]:
        """Links keep the filters: moving to another page keeps the view."""
        return [path + (fragment or "") for path in paths]

    return app


def warm() -> None:
    """Read the filter options and the simulator's population now rather than on the first request."""
    try:
        filters.options(reader())
        overview = sys.modules.get("pages.overview")
        if overview is not None:
            overview.show_overview(None)  # the landing page: its columns read into DuckDB's buffers
        risk_page = sys.modules.get("pages.risk")
        if risk_page is not None and reader().has("ml_latest_risk_scores"):
            risk_page.population(reader())
    except SegriskError:
        pass  # the page that needs it will say why


def serve(db_path: Path, host: str = "127.0.0.1", port: int = 8050, threads: int = 8) -> None:
    """Run the dashboard under waitress until interrupted."""
    from waitress import serve as waitress_serve

    app = create_app(db_path)
    # Load what the first visitor would otherwise wait for (the policy simulator's population:
    # about 2 s at a million customers) while the server starts.
    threading.Thread(target=warm, daemon=True).start()
    waitress_serve(app.server, host=host, port=port, threads=threads)

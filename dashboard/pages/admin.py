"""Admin: who may sign in, with which role, and the audit log (newest first, filtered by user or action).

Both live in the application-state store beside the warehouse, not in the warehouse. Only admins
see this page (the menu hides it from other roles, and the page refuses them in a sentence); users
are managed with ``segrisk users``.
"""

from __future__ import annotations

import math

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from dashboard import auth, ui
from dashboard.paged import pager_row
from warehouse.app_state import AuditEntry, StoredUser

dash.register_page(__name__, path="/admin", name="Admin", order=20, admin_only=True)

AUDIT_PAGE_SIZE = 50
#: Characters of an entry's detail the page shows (the store keeps up to 2,000): with the entries per
#: page this bounds a page's size (about 50 x 0.5 KB), however long the texts people were refused for.
SHOWN_DETAIL = 400
OUTCOME_COLOURS = {"ok": "text-success", "failed": "text-danger", "locked": "text-danger", "refused": "text-warning"}


def users_table(users: list[StoredUser], locked: dict[str, str]) -> dbc.Table:
    rows = [
        {
            "name": user.name,
            "role": user.role,
            "created": readable_time(user.created_at),
            "changed": readable_time(user.updated_at),
            "locked": locked.get(user.name, ""),
        }
        for user in users
    ]
    return ui.table(
        rows,
        [
            ("name", "User"),
            ("role", "Role"),
            ("created", "Created (UTC)"),
            ("changed", "Changed (UTC)"),
            ("locked", "Locked"),
        ],
    )


def audit_table(entries: list[AuditEntry]) -> dbc.Table:
    rows = [
        {
            "at": f"{entry.at:%Y-%m-%d %H:%M:%S}",
            "user": entry.user or "–",
            "action": entry.action,
            "detail": shown_detail(entry.detail),
            "outcome": html.Span(entry.outcome, className=OUTCOME_COLOURS.get(entry.outcome, "")),
            "client": entry.client_address or "",
        }
        for entry in entries
    ]
    return ui.table(
        rows,
        [
            ("at", "When (UTC)"),
            ("user", "User"),
            ("action", "Action"),
            ("detail", "What"),
            ("outcome", "Outcome"),
            ("client", "From"),
        ],
    )


def shown_detail(detail: str | None) -> str:
    """An entry's detail as the page shows it: at most ``SHOWN_DETAIL`` characters, saying how long
    the stored text is and where to read it whole."""
    if not detail or len(detail) <= SHOWN_DETAIL:
        return detail or ""
    return f"{detail[:SHOWN_DETAIL]} … ({len(detail):,} characters stored; the whole entry is in the store's audit_log)"


def readable_time(iso: str) -> str:
    return iso.replace("T", " ")[:19]


def refused() -> html.Div:
    return html.Div([html.H2("Admin", className="h4 mb-3"), ui.unavailable(auth.refusal("admin"))])


def layout(**_query: str) -> html.Div:
    if not auth.user_can("admin"):
        return refused()
    store = auth.store()
    users = store.users()
    locked = {
        user.name: f"until {until:%H:%M} UTC" for user in users if (until := store.locked_until(user.name)) is not None
    }
    names, actions = store.audit_names()
    return html.Div(
        [
            html.H2("Admin", className="h4 mb-3"),
            html.H3("Users", className="h5"),
            html.P(
                "Viewers see aggregates only; analysts also customer-level pages, downloads and the SQL console; "
                "admins also policy and persona edits, users and this log. Manage them with `segrisk users`.",
                className="text-muted small",
            ),
            html.Div(users_table(users, locked), id="admin-users"),
            html.H3("Audit log", className="h5 mt-4"),
            dbc.Row(
                [
                    dbc.Col(
                        dcc.Dropdown(id="admin-audit-user", options=names, placeholder="Every user", className="small"),
                        md=3,
                    ),
                    dbc.Col(
                        dcc.Dropdown(
                            id="admin-audit-action", options=actions, placeholder="Every action", className="small"
                        ),
                        md=3,
                    ),
                ],
                className="g-2 mb-2",
            ),
            dcc.Loading(html.Div(id="admin-audit"), delay_show=300),
            pager_row("admin-audit"),
        ]
    )


@callback(
    Output("admin-audit", "children"),
    Output("admin-audit-page", "max_value"),
    Output("admin-audit-summary", "children"),
    Input("admin-audit-user", "value"),
    Input("admin-audit-action", "value"),
    Input("admin-audit-page", "active_page"),
)
def show_audit(user: str | None, action: str | None, page: int | None):
    if not auth.user_can("admin"):
        return ui.unavailable(auth.refusal("admin")), 1, ""
    store = auth.store()
    total = store.audit_count(user=user or None, action=action or None)
    pages = max(math.ceil(total / AUDIT_PAGE_SIZE), 1)
    page = min(max(page or 1, 1), pages)
    if total == 0:
        return ui.unavailable("No audit entries match."), 1, "0 entries"
    entries = store.audit_entries(
        user=user or None, action=action or None, limit=AUDIT_PAGE_SIZE, offset=(page - 1) * AUDIT_PAGE_SIZE
    )
    first = (page - 1) * AUDIT_PAGE_SIZE + 1
    return audit_table(entries), pages, f"entries {first:,}-{first + len(entries) - 1:,} of {total:,}, newest first"

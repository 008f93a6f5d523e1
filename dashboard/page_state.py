"""A page's own choices (a feature, a segment, a product) in the address's query string.

Pages read their choices from the query string when they are built (``/statistics?feature=age``),
so a bookmarked or shared address opens the same view. This writes a choice back as the user
makes it, with ``history.replaceState`` in the browser: Dash's page router only hears of address
changes it makes itself, so the page is not rebuilt, and the fragment holding the global filters
(``#grade=E``) stays as it is.
"""

from __future__ import annotations

from dash import Input, Output, clientside_callback, dcc

_SCRIPT = """
function(...values) {
    const names = %s;
    const query = new URLSearchParams(window.location.search);
    names.forEach((name, i) => {
        const value = values[i];
        const empty = value === null || value === undefined || value === '' || (Array.isArray(value) && !value.length);
        if (empty) { query.delete(name); } else { query.set(name, Array.isArray(value) ? value.join(',') : value); }
    });
    const search = query.toString() ? '?' + query.toString().replace(/%%2C/g, ',') : '';
    if (search !== window.location.search) {
        window.history.replaceState(window.history.state, '', window.location.pathname + search + window.location.hash);
    }
    return window.dash_clientside.no_update;
}
"""


def sync(page: str, choices: dict[str, str]) -> str:
    """Keep ``choices`` (query-string name -> component id, its ``value``) in the address.

    Call once, when the page's module loads. Returns the id of the store the browser-side callback
    names as its output (Dash needs one; nothing is written to it): put ``store(id)`` in the layout."""
    store_id = f"{page}-page-state"
    names = "[" + ", ".join(f"'{name}'" for name in choices) + "]"
    clientside_callback(
        _SCRIPT % names,
        Output(store_id, "data"),
        *[Input(component, "value") for component in choices.values()],
        prevent_initial_call=True,
    )
    return store_id


def store(store_id: str) -> dcc.Store:
    return dcc.Store(id=store_id)

"""Signing a Flask test client in through the real form: the form's CSRF token comes with it."""

from __future__ import annotations


def csrf_token(client) -> str:  # noqa: ANN001 - a Flask test client
    """The CSRF token of ``client``'s session, as the sign-in form carries it (GET /login makes it)."""
    client.get("/login")
    with client.session_transaction() as session:
        return session["csrf"]


def login_form(client, name: str, password: str) -> dict[str, str]:  # noqa: ANN001
    """What the sign-in form posts for ``name`` and ``password``."""
    return {"username": name, "password": password, "csrf_token": csrf_token(client)}

"""Login for the dashboard: users and roles from the environment, a session cookie, every route guarded.

Users come from ``SEGRISK_USERS`` (``name:role:password-hash`` entries separated by commas, hashes
from ``werkzeug.security.generate_password_hash``), or simply ``SEGRISK_ADMIN_PASSWORD`` for one
``admin`` user. Roles: ``admin`` (may rename personas, acknowledge alerts) and ``viewer``. The
session cookie is signed with ``SEGRISK_SECRET_KEY`` (set it when several server processes run;
otherwise a random key per process is used and a restart signs everyone out).
"""

from __future__ import annotations

import html
import os
import secrets
from dataclasses import dataclass

from flask import Flask, Response, redirect, request, session
from werkzeug.security import check_password_hash, generate_password_hash

from warehouse.errors import SegriskError

ROLES = ("admin", "viewer")
#: Paths anyone may fetch: the login form and the stylesheet it uses.
PUBLIC_PATHS = ("/login", "/assets/bootstrap.min.css", "/favicon.ico")


class AuthError(SegriskError):
    """The dashboard cannot start because no user could sign in."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str


def users_from_environment(environ: dict[str, str] | None = None) -> dict[str, User]:
    environ = dict(os.environ) if environ is None else environ
    users: dict[str, User] = {}
    for entry in filter(None, (e.strip() for e in environ.get("SEGRISK_USERS", "").split(","))):
        name, _, rest = entry.partition(":")
        role, _, password_hash = rest.partition(":")
        if not name or role not in ROLES or not password_hash:
            raise AuthError(
                f"SEGRISK_USERS entry '{name or entry[:20]}' is not 'name:role:password-hash' with role admin or viewer."
            )
        users[name] = User(name, role, password_hash)
    if environ.get("SEGRISK_ADMIN_PASSWORD"):
        users["admin"] = User("admin", "admin", generate_password_hash(environ["SEGRISK_ADMIN_PASSWORD"]))
    return users


def install(server: Flask, users: dict[str, User]) -> None:
    """Add /login and /logout, and refuse every other request without a signed-in session."""
    if not users:
        raise AuthError(
            "No dashboard users: set SEGRISK_ADMIN_PASSWORD (one admin user) or SEGRISK_USERS "
            "(name:role:password-hash, comma-separated)."
        )
    server.secret_key = os.environ.get("SEGRISK_SECRET_KEY") or secrets.token_hex(32)
    server.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")

    @server.before_request
    def _require_login() -> Response | None:
        if request.path in PUBLIC_PATHS or session.get("user") in users:
            return None
        if request.path.startswith("/_dash-") or request.method != "GET":
            return Response("Sign in first.", status=401)
        return redirect(f"/login?next={request.full_path.rstrip('?')}")

    @server.route("/login", methods=["GET", "POST"])
    def _login() -> Response | str:
        message = ""
        if request.method == "POST":
            user = users.get(request.form.get("username", ""))
            if user and check_password_hash(user.password_hash, request.form.get("password", "")):
                session.clear()
                session["user"], session["role"] = user.name, user.role
                target = request.args.get("next", "/")
                return redirect(target if target.startswith("/") and not target.startswith("//") else "/")
            message = "Wrong user name or password."
        return Response(_login_page(message), status=401 if message else 200, mimetype="text/html")

    @server.route("/logout")
    def _logout() -> Response:
        session.clear()
        return redirect("/login")


def current_user() -> tuple[str | None, str | None]:
    """(name, role) of the signed-in user of this request."""
    return session.get("user"), session.get("role")


def _login_page(message: str) -> str:
    alert = f'<div class="alert alert-danger py-2">{html.escape(message)}</div>' if message else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Segrisk: sign in</title>
<link rel="stylesheet" href="/assets/bootstrap.min.css"></head>
<body class="bg-light"><main class="container" style="max-width:24rem;margin-top:12vh">
<h1 class="h4 mb-3">Segrisk</h1>{alert}
<form method="post"><div class="mb-2"><label class="form-label" for="username">User</label>
<input class="form-control" id="username" name="username" autocomplete="username" required autofocus></div>
<div class="mb-3"><label class="form-label" for="password">Password</label>
<input class="form-control" id="password" name="password" type="password" autocomplete="current-password" required></div>
<button class="btn btn-primary w-100" type="submit">Sign in</button></form></main></body></html>"""

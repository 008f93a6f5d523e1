"""Sign-in, roles and the audit log of the dashboard; every route guarded.

Users live in the application-state store beside the warehouse (``warehouse/app_state.py``: name,
role, salted password hash), managed with ``segrisk users``. ``SEGRISK_ADMIN_PASSWORD`` still
creates (or updates) the ``admin`` user at start, and ``SEGRISK_USERS`` (``name:role:password-hash``
entries separated by commas) adds users with ready-made hashes, so scripts and CI keep working.

What a role may do is decided in one place, ``can(role, capability)``:

- ``viewer``: aggregates only, never a customer-level row;
- ``analyst``: also customer-level pages and tables, CSV downloads, the SQL console, acknowledging alerts;
- ``admin``: also policy and persona edits, users and the audit log.

``audit(action, detail, outcome)`` appends to the store's append-only audit log with the signed-in
user and the client address of the current request. Secure defaults: the session cookie is signed
with ``SEGRISK_SECRET_KEY`` or else a key generated once and kept beside the store (mode 0600) so
every server process and restart shares it; cookies are HttpOnly and SameSite=Lax; a user name is
locked for 15 minutes after 5 failed sign-ins within 15 minutes, and every failure waits a moment.
"""

from __future__ import annotations

import getpass
import hashlib
import html
import os
import secrets
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

from flask import Flask, Response, current_app, g, has_request_context, redirect, request, session
from werkzeug.security import check_password_hash

from warehouse.app_state import LOCKOUT_DURATION, LOCKOUT_FAILURES, LOCKOUT_WINDOW, ROLES, AppState, StoredUser
from warehouse.errors import SegriskError

#: Paths anyone may fetch: the login form and the stylesheet it uses.
PUBLIC_PATHS = ("/login", "/assets/bootstrap.min.css", "/favicon.ico")
#: The scoring API authenticates its own requests (an API key header or a signed-in session, see
#: ``session_user``) and answers 401 itself, so the page guard lets these paths through to it.
API_PREFIX = "/api/v1/"
#: Seconds every failed sign-in waits before answering: slows guessing without locking anyone out.
FAILED_LOGIN_DELAY = 0.5
#: The shortest ``SEGRISK_SECRET_KEY`` accepted (the generated key is 64 hex characters).
MIN_SECRET_KEY_LENGTH = 32
#: Sent with every response. No Content-Security-Policy: Dash's page shell needs inline scripts.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
#: Sent as well when ``SEGRISK_SECURE_COOKIES`` is on (the site is served over HTTPS).
HSTS = ("Strict-Transport-Security", "max-age=31536000")
#: What each role may do. A capability not listed here is a programming error (``can`` raises).
CAPABILITIES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"aggregates"}),
    "analyst": frozenset({"aggregates", "customer_level", "download", "sql", "acknowledge"}),
    "admin": frozenset(
        {"aggregates", "customer_level", "download", "sql", "acknowledge", "edit_personas", "policy", "admin"}
    ),
}
ALL_CAPABILITIES = frozenset().union(*CAPABILITIES.values())
_STORE_KEY = "segrisk_state"


class AuthError(SegriskError):
    """The dashboard cannot start because no user could sign in, or a user setting is wrong."""


@dataclass(frozen=True)
class User:
    """A user to put in the store with a ready-made hash (``SEGRISK_USERS``, tests)."""

    name: str
    role: str
    password_hash: str


# -- roles -------------------------------------------------------------------------------------------
def can(role: str | None, capability: str) -> bool:
    """Whether ``role`` may do ``capability``: aggregates, customer_level, download, sql,
    acknowledge, edit_personas, policy, admin."""
    if capability not in ALL_CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; known: {', '.join(sorted(ALL_CAPABILITIES))}")
    return capability in CAPABILITIES.get(role or "", frozenset())


def user_can(capability: str) -> bool:
    """Whether the signed-in user of this request may do ``capability`` (False outside a request)."""
    return can(current_user()[1], capability)


def refusal(capability: str) -> str:
    """The sentence a user sees when their role may not do ``capability``."""
    role = current_user()[1] or "no"
    if capability in ("customer_level", "download"):
        return f"Your role ({role}) sees aggregates only: customer-level rows and downloads need an analyst or admin."
    if capability == "admin":
        return f"Only admins see this page; your role is {role}."
    return f"Your role ({role}) may not do this; ask an admin."


# -- the signed-in user --------------------------------------------------------------------------------
def store() -> AppState:
    """The application-state store of the app serving this request."""
    return current_app.extensions[_STORE_KEY]


def session_user() -> tuple[str, str] | None:
    """(name, role) of the user signed in to this request's session, checked against the store: a
    removed user, or one whose password changed since signing in, is signed out. None otherwise."""
    if not has_request_context():
        return None
    if "segrisk_user" in g:
        return g.segrisk_user
    found = None
    name = session.get("user")
    if name:
        stored = store().user(name)
        if stored is not None and session.get("stamp") == _stamp(stored):
            found = (stored.name, stored.role)
    g.segrisk_user = found
    return found


def current_user() -> tuple[str | None, str | None]:
    """(name, role) of the signed-in user of this request; (None, None) without one."""
    return session_user() or (None, None)


def audit(
    action: str,
    detail: str | None = None,
    outcome: str = "ok",
    *,
    user: str | None = None,
    db_path: Path | None = None,
) -> None:
    """Append to the audit log: who (the signed-in user, or ``user``), when, ``action`` (e.g.
    "login", "customer_lookup", "download", "sql_query", "report_export"), ``detail`` and
    ``outcome`` ("ok", "failed", "refused", ...), with the client address of this request.
    Outside a request (the command line), give ``db_path`` of the warehouse whose store to use."""
    if has_request_context() and db_path is None:
        target = store()
        who = user or current_user()[0]
        address = request.remote_addr
    elif db_path is not None:
        from warehouse.app_state import state_path

        target = AppState(state_path(db_path))
        who = user or f"{getpass.getuser()} (command line)"
        address = "command line"
    else:
        raise RuntimeError("audit() outside a request needs db_path")
    target.record_audit(action, user=who, detail=detail, client_address=address, outcome=outcome)


# -- users from the environment (bootstrap) --------------------------------------------------------
def users_from_environment(environ: dict[str, str] | None = None) -> dict[str, User]:
    """``SEGRISK_USERS`` entries and ``SEGRISK_ADMIN_PASSWORD``'s admin, hashed."""
    from werkzeug.security import generate_password_hash

    from warehouse.app_state import MIN_PASSWORD_LENGTH

    environ = dict(os.environ) if environ is None else environ
    users: dict[str, User] = {}
    for entry in filter(None, (e.strip() for e in environ.get("SEGRISK_USERS", "").split(","))):
        name, _, rest = entry.partition(":")
        role, _, password_hash = rest.partition(":")
        if not name or role not in ROLES or not password_hash:
            raise AuthError(
                f"SEGRISK_USERS entry '{name or entry[:20]}' is not 'name:role:password-hash' "
                f"with role {', '.join(ROLES)}."
            )
        users[name] = User(name, role, password_hash)
    password = environ.get("SEGRISK_ADMIN_PASSWORD")
    if password:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise AuthError(f"SEGRISK_ADMIN_PASSWORD needs at least {MIN_PASSWORD_LENGTH} characters.")
        users["admin"] = User("admin", "admin", generate_password_hash(password))
    return users


def bootstrap(target: AppState, environ: dict[str, str] | None = None) -> None:
    """Put the environment's users in the store (the admin's password as ``SEGRISK_ADMIN_PASSWORD``
    says, unchanged when it already matches)."""
    environ = dict(os.environ) if environ is None else environ
    for user in users_from_environment(environ).values():
        existing = target.user(user.name)
        password = environ.get("SEGRISK_ADMIN_PASSWORD") if user.name == "admin" else None
        if (
            existing is not None
            and existing.role == user.role
            and (
                existing.password_hash == user.password_hash
                or (password and check_password_hash(existing.password_hash, password))
            )
        ):
            continue
        target.set_user(user.name, user.role, password_hash=user.password_hash)


def secret_key(target: AppState, environ: dict[str, str] | None = None) -> str:
    """``SEGRISK_SECRET_KEY``, else a random key generated once and kept beside the store with mode
    0600, so every server process over this warehouse, and every restart, signs sessions alike."""
    environ = dict(os.environ) if environ is None else environ
    if environ.get("SEGRISK_SECRET_KEY"):
        key = environ["SEGRISK_SECRET_KEY"]
        if len(key) < MIN_SECRET_KEY_LENGTH:
            raise AuthError(
                f"SEGRISK_SECRET_KEY needs at least {MIN_SECRET_KEY_LENGTH} characters (it has {len(key)}); "
                'use a random one, e.g. python -c "import secrets; print(secrets.token_hex(32))".'
            )
        return key
    path = target.path.with_suffix(".secret")
    if not path.exists():
        # Written under a private name, then linked into place: link fails if another process won the
        # race, and nobody ever reads a half-written key.
        private = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, secrets.token_hex(32).encode())
        finally:
            os.close(descriptor)
        try:
            os.link(private, path)
        except FileExistsError:
            pass
        finally:
            private.unlink()
    key = path.read_text().strip()
    if not key:
        raise AuthError(f"The secret key file {path} is empty; delete it and start again.")
    return key


def secure_cookies(environ: dict[str, str] | None = None) -> bool:
    """``SEGRISK_SECURE_COOKIES``: "1"/"true" marks the session cookie Secure and sends HSTS (serve
    over HTTPS); unset, "", "0" or "false" leaves both off; any other value is refused."""
    environ = dict(os.environ) if environ is None else environ
    value = environ.get("SEGRISK_SECURE_COOKIES", "").strip()
    if value.lower() in ("", "0", "false"):
        return False
    if value.lower() in ("1", "true"):
        return True
    raise AuthError(f"SEGRISK_SECURE_COOKIES must be 0, 1, true or false, not {value!r}.")


# -- the Flask side ------------------------------------------------------------------------------------
def install(server: Flask, target: AppState) -> None:
    """Add /login and /logout, and refuse every other request without a signed-in session."""
    if not target.users():
        raise AuthError(
            "No dashboard users: set SEGRISK_ADMIN_PASSWORD (one admin user) or add one with "
            "`segrisk users add NAME --role admin`."
        )
    secure = secure_cookies()
    server.extensions[_STORE_KEY] = target
    server.secret_key = secret_key(target)
    _owner_only(target.path)
    server.config.update(
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=secure, DEBUG=False
    )
    headers = dict(SECURITY_HEADERS) | (dict([HSTS]) if secure else {})

    @server.after_request
    def _security_headers(response: Response) -> Response:
        # Every response: pages, callbacks, downloads, /login, /api/v1/*, refusals and redirects.
        # No Content-Security-Policy: Dash's page shell and renderer need inline scripts.
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    @server.route("/favicon.ico")
    def _favicon() -> Response:
        # Without this the pages' catch-all route answers the Dash page shell (with Dash's version)
        # to anyone. assets/ has no icon: "no content", which browsers take quietly (a 404 is an
        # error in every page's console).
        return Response(status=204)

    @server.before_request
    def _require_login() -> Response | None:
        if request.path in PUBLIC_PATHS or request.path.startswith(API_PREFIX) or session_user() is not None:
            return None
        if request.path.startswith("/_dash-") or request.method != "GET":
            return Response("Sign in first.", status=401)
        return redirect(f"/login?next={quote(request.full_path.rstrip('?'), safe='/?=')}")

    @server.route("/login", methods=["GET", "POST"])
    def _login() -> Response | str:
        if request.method == "GET":
            return Response(_login_page(""), mimetype="text/html")
        name = request.form.get("username", "")[:64]
        message = _sign_in(target, name, request.form.get("password", ""))
        if message is None:
            return redirect(safe_next(request.args.get("next")))
        return Response(_login_page(message), status=401, mimetype="text/html")

    @server.route("/logout")
    def _logout() -> Response:
        if session_user() is not None:
            audit("logout")
        session.clear()
        return redirect("/login")


def safe_next(destination: str | None) -> str:
    """Where to go after signing in: ``destination`` when it is a path of this site, else ``/``.

    Refused first, before any parsing: control characters and whitespace (browsers drop a tab or
    line break, so ``/%09/evil.com`` becomes ``//evil.com``; a CR/LF would split the header) and
    backslashes (read as ``/``). Then only a single leading ``/`` with no scheme and no host."""
    if not destination or len(destination) > 2_000:
        return "/"
    if any(ch.isspace() or ch == "\\" or unicodedata.category(ch).startswith("C") for ch in destination):
        return "/"
    if not destination.startswith("/") or destination.startswith("//"):
        return "/"
    parts = urlsplit(destination)
    if parts.scheme or parts.netloc:
        return "/"
    return destination


def _owner_only(store_path: Path) -> None:
    """The store holds password and key hashes and the audit log: readable by its owner only (mode 600,
    as the secret key), with SQLite's WAL files alike."""
    for path in (store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")):
        try:
            if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
                path.chmod(0o600)
        except FileNotFoundError:
            pass


def _sign_in(target: AppState, name: str, password: str) -> str | None:
    """Sign ``name`` in to this session; None on success, else the sentence to show."""
    locked_until = target.locked_until(name)
    if locked_until is not None:
        audit("login", "refused: the user name is locked", "locked", user=name)
        time.sleep(FAILED_LOGIN_DELAY)
        return _locked_sentence(locked_until)
    user = target.check_password(name, password)
    if user is None:
        locked_until = target.record_login_failure(name)
        audit("login", "wrong user name or password", "failed", user=name)
        time.sleep(FAILED_LOGIN_DELAY)
        return _locked_sentence(locked_until) if locked_until else "Wrong user name or password."
    target.clear_login_failures(name)
    start_session(user)
    audit("login", f"signed in as {user.role}")
    return None


def start_session(user: StoredUser) -> None:
    """Sign ``user`` in to this request's session (after their password was checked)."""
    session.clear()
    session["user"], session["stamp"] = user.name, _stamp(user)
    g.segrisk_user = (user.name, user.role)


def _locked_sentence(until: datetime) -> str:
    return (
        f"This user is locked for {_minutes(LOCKOUT_DURATION)} minutes after {LOCKOUT_FAILURES} failed sign-ins "
        f"within {_minutes(LOCKOUT_WINDOW)} minutes; try again after {until:%H:%M} UTC."
    )


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


def _stamp(user: StoredUser) -> str:
    """A short fingerprint of the password hash kept in the session: changing the password signs out
    every session of that user."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


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

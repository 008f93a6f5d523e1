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
every server process and restart shares it; cookies are HttpOnly and SameSite=Lax.

Sessions are kept on the server: signing in stores a new session (only the SHA-256 of its random id;
the id itself is in the signed cookie) in the store's ``sessions`` table, and every request checks
it. A session ends when its user signs out (so a copied cookie stops working), when it has been idle
for ``SEGRISK_SESSION_IDLE_MINUTES`` (default 30), when it is ``SEGRISK_SESSION_HOURS`` old (default
12; the cookie expires then too), and when its user's password or role changes or the user is
removed (``AppState`` revokes them, so ``segrisk users`` does too).

Failed sign-ins never hold a server thread (no sleeping) and never lock anyone out. Two rules:

- Per client address (``request.remote_addr``; no X-Forwarded-For is trusted, so behind a reverse
  proxy every client shares the proxy's address): after ADDRESS_FAILURES failed sign-ins within
  ADDRESS_WINDOW, that address is answered 429 with Retry-After at once, without checking any
  password, until the oldest of them leaves the window. This count lives in the server process's
  memory (one ``segrisk serve`` is one process; several processes would each count their own), so
  it holds even while the store is busy.
- Per user name (the store's ``login_failures``, shared by processes): from the 3rd failure within
  an hour, the name gets a "not before" time 1 s, 2 s, 4 s ... after each failure, at most 5
  minutes. It applies only to sign-ins from an address that has itself failed recently (the
  failed-addresses rule): an attacker guessing ``admin``'s password slows only themselves, and the
  admin signs in at once from any address that has not failed. Refusals answer at once, "wait N
  seconds".

Every POST (and other state-changing method) except the API's (``/api/v1/``, API keys) whose
``Origin`` (or, lacking it, ``Referer``) names another host than the request's is refused (403), and
the sign-in form carries a CSRF token that must match the one in the session (400 otherwise), so no
other site can sign a browser in or drive its callbacks. A busy store answers 503 with a sentence.
"""

from __future__ import annotations

import getpass
import html
import logging
import math
import os
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, urlsplit

from flask import Flask, Response, current_app, g, has_request_context, redirect, request, session
from werkzeug.security import check_password_hash

from warehouse import settings
from warehouse.app_state import AppState, StoreBusyError, StoredUser
from warehouse.errors import SegriskError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Paths anyone may fetch: the login form and the stylesheet it uses, and /logout (signed out
#: already, it just goes to the form; never back to /logout after the next sign-in).
PUBLIC_PATHS = ("/login", "/logout", "/assets/bootstrap.min.css", "/favicon.ico")
#: The scoring API authenticates its own requests (an API key header or a signed-in session, see
#: ``session_user``) and answers 401 itself, so the page guard lets these paths through to it.
API_PREFIX = "/api/v1/"
#: Failed sign-ins from one client address within ADDRESS_WINDOW seconds after which it gets 429.
ADDRESS_FAILURES = 10
ADDRESS_WINDOW = 600.0
#: Addresses the in-memory count keeps at most (the oldest are forgotten first): bounded memory.
ADDRESS_MEMORY = 10_000
#: Methods that change nothing: not checked for a foreign Origin.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_REFUSED = "This sign-in form has expired or came from another site; reload the page and sign in again."
#: The shortest ``SEGRISK_SECRET_KEY`` accepted (the generated key is 64 hex characters).
MIN_SECRET_KEY_LENGTH = settings.MIN_SECRET_KEY_LENGTH
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
_THROTTLE_KEY = "segrisk_sign_in_throttle"


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
    """(name, role) of the user signed in to this request's session, checked against the store's
    sessions: a revoked, idle or too old session, or a removed user, is signed out. None otherwise.
    Raises StoreBusyError while the store is locked by another program."""
    if not has_request_context():
        return None
    if "segrisk_user" in g:
        return g.segrisk_user
    found = None
    session_id = session.get("sid")
    if isinstance(session_id, str) and session_id:
        idle, lifetime = current_app.config["SEGRISK_SESSION_IDLE"], current_app.config["PERMANENT_SESSION_LIFETIME"]
        stored = store().session_user(session_id, idle=idle, lifetime=lifetime)
        if stored is not None:
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

    users = {name: User(name, role, password_hash) for name, role, password_hash in _read(settings.USERS, environ)}
    password = _read(settings.ADMIN_PASSWORD, environ)
    if password:
        users["admin"] = User("admin", "admin", generate_password_hash(password))
    return users


def bootstrap(target: AppState, environ: dict[str, str] | None = None) -> None:
    """Put the environment's users in the store (the admin's password as ``SEGRISK_ADMIN_PASSWORD``
    says, unchanged when it already matches)."""
    for user in users_from_environment(environ).values():
        existing = target.user(user.name)
        password = _read(settings.ADMIN_PASSWORD, environ) if user.name == "admin" else None
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
    key = _read(settings.SECRET_KEY, environ)
    if key:
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
    return _read(settings.SECURE_COOKIES, environ)


def session_limits(environ: dict[str, str] | None = None) -> tuple[timedelta, timedelta]:
    """(idle timeout, absolute lifetime) of a session: ``SEGRISK_SESSION_IDLE_MINUTES`` (default 30,
    1 to 1440) and ``SEGRISK_SESSION_HOURS`` (default 12, 1 to 720); any other value is refused."""
    minutes = _read(settings.SESSION_IDLE_MINUTES, environ)
    hours = _read(settings.SESSION_HOURS, environ)
    return timedelta(minutes=minutes), timedelta(hours=hours)


def _read(setting: settings.Setting[T], environ: Mapping[str, str] | None) -> T:
    """A user setting now; a bad value is an ``AuthError`` (the dashboard does not start)."""
    return setting.read(environ, error=AuthError)


class SignInThrottle:
    """Failed sign-ins per client address, in this process's memory (thread-safe, bounded): the
    address rule and the failed-addresses rule of the module docstring. ``clock`` is for tests."""

    def __init__(
        self,
        limit: int | None = None,
        window: float | None = None,
        max_addresses: int | None = None,
        clock=time.monotonic,  # noqa: ANN001
    ) -> None:
        self.limit = ADDRESS_FAILURES if limit is None else limit
        self.window = ADDRESS_WINDOW if window is None else window
        self.max_addresses = ADDRESS_MEMORY if max_addresses is None else max_addresses
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, address: str) -> None:
        """Count one failed (or refused) sign-in from ``address``."""
        now = self.clock()
        with self._lock:
            times = self._failures.pop(address, None) or deque(maxlen=self.limit)
            times.append(now)
            self._failures[address] = times  # now the most recent
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it may now."""
        times = self._recent(address)
        if len(times) < self.limit:
            return None
        return max(1, math.ceil(times[0] + self.window - self.clock()))

    def has_failed(self, address: str) -> bool:
        """Whether ``address`` failed a sign-in within the window."""
        return bool(self._recent(address))

    def _recent(self, address: str) -> list[float]:
        since = self.clock() - self.window
        with self._lock:
            return [t for t in self._failures.get(address, ()) if t > since]


# -- the Flask side ------------------------------------------------------------------------------------
def install(server: Flask, target: AppState) -> None:
    """Add /login and /logout, refuse state-changing requests from other sites, and refuse every
    other request without a signed-in session."""
    if not target.users():
        raise AuthError(
            "No dashboard users: set SEGRISK_ADMIN_PASSWORD (one admin user) or add one with "
            "`segrisk users add NAME --role admin`."
        )
    secure = secure_cookies()
    idle, lifetime = session_limits()
    throttle = SignInThrottle()
    server.extensions[_STORE_KEY] = target
    server.extensions[_THROTTLE_KEY] = throttle
    server.secret_key = secret_key(target)
    _owner_only(target.path)
    server.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        DEBUG=False,
        # The cookie (and its signature, which Flask checks against this) ends with the session's
        # absolute lifetime, counted from the sign-in: it is not renewed on every request.
        PERMANENT_SESSION_LIFETIME=lifetime,
        SESSION_REFRESH_EACH_REQUEST=False,
        SEGRISK_SESSION_IDLE=idle,
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
    def _refuse_other_sites() -> Response | None:
        # Runs before the sign-in guard: a foreign form or script is refused whether signed in or not.
        foreign = foreign_origin()
        if foreign is None:
            return None
        return Response(
            f"Refused: this request came from another site ({foreign[:100]}); use the dashboard at its own address.",
            status=403,
            mimetype="text/plain",
        )

    @server.before_request
    def _require_login() -> Response | None:
        if request.path in PUBLIC_PATHS or request.path.startswith(API_PREFIX):
            return None
        try:
            if session_user() is not None:
                return None
        except StoreBusyError as exc:
            return _busy_answer(exc)
        if request.path.startswith("/_dash-") or request.method != "GET":
            return Response("Sign in first.", status=401)
        return redirect(f"/login?next={quote(request.full_path.rstrip('?'), safe='/?=')}")

    @server.route("/login", methods=["GET", "POST"])
    def _login() -> Response:
        if request.method == "GET":
            return _login_response("")
        if not _csrf_matches():
            return _login_response(CSRF_REFUSED, 400)
        name = request.form.get("username", "")[:64]
        try:
            refused = _sign_in(target, throttle, name, request.form.get("password", ""))
        except StoreBusyError as exc:
            session.clear()  # whatever got through before the store stopped answering is not a sign-in
            return _login_response(str(exc), 503, retry_after=5)
        if refused is None:
            return redirect(safe_next(request.args.get("next")))
        message, status, retry_after = refused
        return _login_response(message, status, retry_after=retry_after)

    @server.route("/logout", methods=["GET", "POST"])
    def _logout() -> Response:
        session_id = session.get("sid")
        try:
            if session_user() is not None:
                audit("logout")
            if isinstance(session_id, str) and session_id:
                target.revoke_session(session_id)
        except StoreBusyError as exc:
            session.clear()
            return _busy_answer(exc, "This browser is signed out, but the session could not be ended on the server.")
        session.clear()
        g.segrisk_user = None
        return redirect("/login")


def foreign_origin() -> str | None:
    """The ``Origin`` (or, lacking it, ``Referer``) of this request when it is a state-changing one
    (not GET, HEAD or OPTIONS; the API's keys are exempt) from another host; None when it may go on.
    A request with neither header (a script, curl) goes on: browsers send ``Origin`` with every
    cross-site POST."""
    if request.method in SAFE_METHODS or request.path.startswith(API_PREFIX):
        return None
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return None
    parts = urlsplit(source)
    if parts.scheme in ("http", "https") and _host(parts.netloc) == _host(request.host):
        return None
    return source


def _host(netloc: str) -> str:
    """``host[:port]`` lower-cased, without a default port (browsers leave it out, proxies may not)."""
    netloc = netloc.lower().rpartition("@")[2]
    for default in (":80", ":443"):
        if netloc.endswith(default):
            return netloc[: -len(default)]
    return netloc


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


def _sign_in(target: AppState, throttle: SignInThrottle, name: str, password: str) -> tuple[str, int, int] | None:
    """Sign ``name`` in to this session; None on success, else (sentence, status, Retry-After seconds
    or 0). Never sleeps: a refusal answers at once. Raises StoreBusyError when the store is locked."""
    address = request.remote_addr or "unknown"
    wait = throttle.retry_after(address)
    if wait is not None:  # not audited: the failure that started it was, and a flood must not write
        return (
            f"Too many failed sign-ins from your address; try again in {_span(wait)}.",
            429,
            wait,
        )
    if throttle.has_failed(address):
        not_before = target.locked_until(name)
        if not_before is not None:
            throttle.record(address)
            wait = max(1, math.ceil((not_before - datetime.now(UTC)).total_seconds()))
            audit("login", f"refused: back-off after failed sign-ins, {wait} s left", "locked", user=name)
            return (
                f"Too many failed sign-ins of this user name from your address; wait {_span(wait)} and try again.",
                429,
                wait,
            )
    user = target.check_password(name, password)
    if user is None:
        throttle.record(address)  # first, in memory: counted even when the store cannot be written
        try:
            target.record_login_failure(name)
            audit("login", "wrong user name or password", "failed", user=name)
        except StoreBusyError as exc:
            log.warning("failed sign-in of %r from %s not recorded in the store: %s", name, address, exc)
        return "Wrong user name or password.", 401, 0
    target.clear_login_failures(name)
    start_session(user)
    audit("login", f"signed in as {user.role}")
    return None


def start_session(user: StoredUser) -> None:
    """Sign ``user`` in to this request's session (after their password was checked): a new
    server-side session, its id in the cookie, a new CSRF token."""
    lifetime: timedelta = current_app.config["PERMANENT_SESSION_LIFETIME"]
    earlier = session.get("sid")
    if isinstance(earlier, str) and earlier:
        store().revoke_session(earlier)  # signing in again ends the session this browser had
    session_id = store().create_session(user.name, client_address=request.remote_addr, lifetime=lifetime)
    session.clear()
    session.permanent = True  # the cookie expires with the session's absolute lifetime
    session["sid"], session["csrf"] = session_id, secrets.token_urlsafe(32)
    g.segrisk_user = (user.name, user.role)


def _csrf_matches() -> bool:
    expected, sent = session.get("csrf"), request.form.get(CSRF_FIELD)
    return isinstance(expected, str) and isinstance(sent, str) and secrets.compare_digest(expected, sent)


def _csrf_token() -> str:
    """This session's CSRF token, made on first use."""
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _login_response(message: str, status: int = 200, *, retry_after: int = 0) -> Response:
    response = Response(_login_page(message, _csrf_token()), status=status, mimetype="text/html")
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _busy_answer(exc: StoreBusyError, before: str = "") -> Response:
    """503 with the store's sentence: plain text for callbacks and other requests, a page for pages."""
    sentence = f"{before} {exc}".strip()
    if request.method == "GET" and not request.path.startswith("/_dash-"):
        body = _page(f'<div class="alert alert-warning py-2">{html.escape(sentence)}</div>')
        response = Response(body, status=503, mimetype="text/html")
    else:
        response = Response(sentence, status=503, mimetype="text/plain")
    response.headers["Retry-After"] = "5"
    return response


def _span(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


def _page(content: str) -> str:
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Segrisk: sign in</title>
<link rel="stylesheet" href="/assets/bootstrap.min.css"></head>
<body class="bg-light"><main class="container" style="max-width:24rem;margin-top:12vh">
<h1 class="h4 mb-3">Segrisk</h1>{content}</main></body></html>"""


def _login_page(message: str, csrf_token: str) -> str:
    alert = f'<div class="alert alert-danger py-2">{html.escape(message)}</div>' if message else ""
    return _page(f"""{alert}
<form method="post"><input type="hidden" name="{CSRF_FIELD}" value="{html.escape(csrf_token)}">
<div class="mb-2"><label class="form-label" for="username">User</label>
<input class="form-control" id="username" name="username" autocomplete="username" required autofocus></div>
<div class="mb-3"><label class="form-label" for="password">Password</label>
<input class="form-control" id="password" name="password" type="password" autocomplete="current-password" required></div>
<button class="btn btn-primary w-100" type="submit">Sign in</button></form>""")

"""Every ``SEGRISK_*`` setting in one table: its name, default, parser, help and where it applies.

This is the one module that reads the environment for a setting. Each setting is read when it is
asked for (``SECURE_COOKIES.read()``), never cached, so a test's ``monkeypatch.setenv`` is seen at
once; a value that cannot be used raises ``SettingError`` with one sentence naming the setting, the
value and what it takes. ``validate("dashboard", "console")`` reads every setting of those places,
so a command refuses a bad value before it starts work (``segrisk serve`` before it prints its
address, ``segrisk build`` before it reads a file). The README's "Settings" table documents each
one; ``tests/test_settings.py`` fails when one is missing there.

It lives in ``warehouse`` because warehouse modules read settings too, and the warehouse imports
neither ``models`` nor ``dashboard``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import SegriskError, SettingError

T = TypeVar("T")

#: Where a setting applies: the warehouse's writers (``segrisk build`` and model runs), the served
#: dashboard, its SQL console, and the command line as a whole.
PLACES = ("build", "dashboard", "console", "CLI")

#: The shortest ``SEGRISK_SECRET_KEY`` accepted (the generated key is 64 hex characters).
MIN_SECRET_KEY_LENGTH = 32


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One setting. ``parse(name, text)`` turns a set value into ``T`` or raises ``SettingError``;
    unset (or, when ``strip``, blank) gives ``default``. ``shown_default`` is the default as the
    README and ``segrisk settings`` write it; ``secret`` values are masked when listed."""

    name: str
    default: T
    parse: Callable[[str, str], T]
    help: str
    applies: tuple[str, ...]
    strip: bool = True
    secret: bool = False
    shown_default: str | None = None

    @property
    def env_var(self) -> str:
        """The environment variable (the name; the SQL console's older spelling)."""
        return self.name

    @property
    def default_text(self) -> str:
        """The default as documented: ``10`` for 10.0, ``(none)`` for no value."""
        if self.shown_default is not None:
            return self.shown_default
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return "(none)" if self.default is None else str(self.default)

    def read(self, environ: Mapping[str, str] | None = None, error: type[SegriskError] = SettingError) -> T:
        """The value now (from ``environ``, else the process environment). A bad value raises
        ``error`` (``SettingError`` unless a caller keeps its own error class) with the sentence."""
        text = (os.environ if environ is None else environ).get(self.name, "")
        if self.strip:
            text = text.strip()
        if not text:
            return self.default
        try:
            return self.parse(self.name, text)
        except SettingError as exc:
            if error is SettingError:
                raise
            raise error(str(exc)) from exc


REGISTRY: dict[str, Setting[Any]] = {}


def _register(setting: Setting[T]) -> Setting[T]:
    if setting.name in REGISTRY or not setting.name.startswith("SEGRISK_"):
        raise ValueError(f"Setting {setting.name} is registered twice or not named SEGRISK_*")
    if not set(setting.applies) <= set(PLACES):
        raise ValueError(f"Setting {setting.name} applies to an unknown place: {setting.applies}")
    REGISTRY[setting.name] = setting
    return setting


def get(name: str, environ: Mapping[str, str] | None = None) -> object:
    """The value of the registered setting ``name`` now (``KeyError`` for a name not registered)."""
    return REGISTRY[name].read(environ)


def validate(*places: str, environ: Mapping[str, str] | None = None) -> None:
    """Read every setting that applies to one of ``places``; the first bad one raises its sentence."""
    for setting in REGISTRY.values():
        if set(setting.applies) & set(places):
            setting.read(environ)


def listing(environ: Mapping[str, str] | None = None) -> list[tuple[Setting[Any], str]]:
    """Each setting with its value as text (secrets masked, a bad value shown as its sentence)."""
    env = os.environ if environ is None else environ
    rows = []
    for setting in REGISTRY.values():
        if setting.name not in env:
            shown = f"{setting.default_text} (default)"
        else:
            try:
                setting.read(env)
                shown = "(set, hidden)" if setting.secret else repr(env[setting.name])
            except SettingError as exc:  # no sentence repeats a secret
                shown = f"refused: {exc}"
        rows.append((setting, shown))
    return rows


# -- parsers: each names the setting and the value in its sentence -------------------------------------
def _text(_name: str, text: str) -> str:
    return text


def _path(_name: str, text: str) -> Path:
    return Path(text)


def _on(_name: str, _text: str) -> bool:
    return True


def _whole_mb(name: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise SettingError(f"{name} must be a whole number of megabytes, 1 or more, got {text[:40]!r}.")
    return int(text)


def _seconds_or_more(name: str, text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise SettingError(f"{name} must be a number of seconds, 0 or more, got {text[:40]!r}.")
    return seconds


def _megabytes_or_off(name: str, text: str) -> float:
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = math.nan
    if not math.isfinite(megabytes) or megabytes < 0:
        raise SettingError(f"{name} must be a number of megabytes, 0 or more (0 turns the cache off), not {text!r}.")
    return megabytes


def _cell_size(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingError(f"{name} must be a whole number of at least 1 (default 5), not {text!r}.")
    return value


def _whole_in(low: int, high: int, unit: str) -> Callable[[str, str], int]:
    def parse(name: str, text: str) -> int:
        if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
            raise SettingError(f"{name} must be a whole number of {unit} from {low} to {high}, not {text!r}.")
        return int(text)

    return parse


def _on_or_off(name: str, text: str) -> bool:
    if text.lower() in ("0", "false"):
        return False
    if text.lower() in ("1", "true"):
        return True
    raise SettingError(f"{name} must be 0, 1, true or false, not {text!r}.")


def _secret_key(name: str, text: str) -> str:
    if len(text) < MIN_SECRET_KEY_LENGTH:
        raise SettingError(
            f"{name} needs at least {MIN_SECRET_KEY_LENGTH} characters (it has {len(text)}); "
            'use a random one, e.g. python -c "import secrets; print(secrets.token_hex(32))".'
        )
    return text


def _password(name: str, text: str) -> str:
    from .app_state import MIN_PASSWORD_LENGTH  # lazily: app_state imports the database layer

    if len(text) < MIN_PASSWORD_LENGTH:
        raise SettingError(f"{name} needs at least {MIN_PASSWORD_LENGTH} characters.")
    return text


def _users(name: str, text: str) -> tuple[tuple[str, str, str], ...]:
    from .app_state import ROLES

    users = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        user, _, rest = entry.partition(":")
        role, _, password_hash = rest.partition(":")
        if not user or role not in ROLES or not password_hash:
            raise SettingError(
                f"{name} entry '{user or entry[:20]}' is not 'name:role:password-hash' with role {', '.join(ROLES)}."
            )
        users.append((user, role, password_hash))
    return tuple(users)


def _above_zero(kind: type[int] | type[float]) -> Callable[[str, str], Any]:
    unit = "a number of seconds" if kind is float else "a whole number"

    def parse(name: str, text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise SettingError(f"{name} must be {unit} above 0, not '{text}'.")
        return value

    return parse


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def byte_count(name: str, text: str) -> int:
    """Bytes in a size such as ``3GB`` or ``512 MiB`` (DuckDB's spelling); ``name`` is for the sentence."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = found and _UNITS.get(found.group(2).lower())
    if not found or not unit or float(found.group(1)) <= 0:
        raise SettingError(f"{name} must be a size such as 3GB or 512MB, not '{text}'.")
    return int(float(found.group(1)) * unit)


def _size(name: str, text: str) -> str:
    byte_count(name, text)
    return text


# -- the settings ------------------------------------------------------------------------------------------
DB = _register(
    Setting(
        "SEGRISK_DB",
        Path("segrisk.duckdb"),
        _path,
        "The warehouse file a command uses when `--db` is not given.",
        ("CLI",),
        strip=False,
        shown_default="./segrisk.duckdb",
    )
)
DEBUG = _register(
    Setting(
        "SEGRISK_DEBUG",
        False,
        _on,
        "Any value shows a failure's full traceback (and Rust's backtrace) instead of one line.",
        ("CLI",),
        strip=False,
        shown_default="off",
    )
)
MAX_INPUT_MB = _register(
    Setting(
        "SEGRISK_MAX_INPUT_MB",
        4096,
        _whole_mb,
        "Megabytes (1 MB = 1,000,000 bytes) an input file may be; a larger one stops the build before it is read.",
        ("build",),
    )
)
BUILD_MEMORY_MB: Setting[int | None] = _register(
    Setting(
        "SEGRISK_BUILD_MEMORY_MB",
        None,
        _whole_mb,
        "Megabytes of memory a build may plan to use; a build projected to need more stops before reading.",
        ("build",),
        shown_default="the system's MemAvailable",
    )
)
WRITE_LOCK_WAIT_S = _register(
    Setting(
        "SEGRISK_WRITE_LOCK_WAIT_S",
        600.0,
        _seconds_or_more,
        "Seconds a build or model run waits for another writer of the same warehouse before it gives up.",
        ("build",),
    )
)
SECRET_KEY: Setting[str | None] = _register(
    Setting(
        "SEGRISK_SECRET_KEY",
        None,
        _secret_key,
        f"The key that signs sessions ({MIN_SECRET_KEY_LENGTH} characters at least), "
        "else one generated once beside the app-state store.",
        ("dashboard",),
        strip=False,
        secret=True,
        shown_default="a generated key",
    )
)
SECURE_COOKIES = _register(
    Setting(
        "SEGRISK_SECURE_COOKIES",
        False,
        _on_or_off,
        "Whether the session cookie is marked Secure and HSTS is sent (1/true, for HTTPS) or not (0/false).",
        ("dashboard",),
        shown_default="0",
    )
)
SESSION_IDLE_MINUTES = _register(
    Setting(
        "SEGRISK_SESSION_IDLE_MINUTES",
        30,
        _whole_in(1, 24 * 60, "minutes"),
        "Minutes (1 to 1440) a session may stay idle before it ends.",
        ("dashboard",),
    )
)
SESSION_HOURS = _register(
    Setting(
        "SEGRISK_SESSION_HOURS",
        12,
        _whole_in(1, 24 * 30, "hours"),
        "Hours (1 to 720) after signing in that a session ends at the latest.",
        ("dashboard",),
    )
)
ADMIN_PASSWORD: Setting[str | None] = _register(
    Setting(
        "SEGRISK_ADMIN_PASSWORD",
        None,
        _password,
        "Creates (or updates) the `admin` user with this password (8 characters at least) at start.",
        ("dashboard",),
        strip=False,
        secret=True,
    )
)
USERS: Setting[tuple[tuple[str, str, str], ...]] = _register(
    Setting(
        "SEGRISK_USERS",
        (),
        _users,
        "Users added at start, comma-separated `name:role:password-hash` entries.",
        ("dashboard",),
        secret=True,
        shown_default="(none)",
    )
)
QUERY_CACHE_MB = _register(
    Setting(
        "SEGRISK_QUERY_CACHE_MB",
        256.0,
        _megabytes_or_off,
        "Megabytes of answers the dashboard keeps in memory per warehouse file; 0 turns the cache off.",
        ("dashboard",),
    )
)
MIN_CELL_SIZE = _register(
    Setting(
        "SEGRISK_MIN_CELL_SIZE",
        5,
        _cell_size,
        "Customers a figure shown to a viewer must cover at least; smaller groups are hidden (1 turns this off).",
        ("dashboard",),
    )
)
SQL_TIME_LIMIT = _register(
    Setting(
        "SEGRISK_SQL_TIME_LIMIT",
        10.0,
        _above_zero(float),
        "Seconds a console query may run before it is stopped.",
        ("console",),
    )
)
SQL_ROW_CAP = _register(
    Setting("SEGRISK_SQL_ROW_CAP", 10_000, _above_zero(int), "Rows a console result holds at most.", ("console",))
)
SQL_MEMORY_LIMIT = _register(
    Setting("SEGRISK_SQL_MEMORY_LIMIT", "1GB", _text, "DuckDB memory limit of each console worker.", ("console",))
)
SQL_THREADS = _register(
    Setting("SEGRISK_SQL_THREADS", 1, _above_zero(int), "DuckDB threads of each console worker.", ("console",))
)
SQL_WORKERS = _register(
    Setting(
        "SEGRISK_SQL_WORKERS",
        2,
        _above_zero(int),
        "Console queries that may run at once (one process each); one more is refused at once, never queued.",
        ("console",),
    )
)
SQL_RESULT_MB = _register(
    Setting(
        "SEGRISK_SQL_RESULT_MB",
        64,
        _above_zero(int),
        "Megabytes one result may hold; a query is stopped as soon as it passes them.",
        ("console",),
    )
)
SQL_RESULTS_MB = _register(
    Setting(
        "SEGRISK_SQL_RESULTS_MB",
        256,
        _above_zero(int),
        "Megabytes of results the server keeps in all (the oldest are forgotten first).",
        ("console",),
    )
)
SQL_WORKER_MEMORY = _register(
    Setting(
        "SEGRISK_SQL_WORKER_MEMORY",
        "4GB",
        _size,
        "Address space each console worker may use (its DuckDB memory limit and a result in flight).",
        ("console",),
    )
)

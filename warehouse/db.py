"""The one module that opens DuckDB connections.

Every other module asks here for a connection, so read-only mode, thread and memory
settings, and the translation of DuckDB's errors into our own are decided once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from . import settings
from .errors import WarehouseError
from .runs_view import provide_for_reading

DEFAULT_DB_NAME = str(settings.DB.default)
DB_ENV_VAR = settings.DB.name

#: DuckDB settings used while building; the memory limit keeps a 1M-customer build under 4 GB.
#: A bulk load's commit logs a few hundred KB (block pointers and the rows left over from full
#: row groups); checkpointing once that much has built up compresses the leftovers while the
#: build is still busy elsewhere, instead of in a final checkpoint that delays the swap-in
#: (0.7 s at 1M customers). The default, 16 MB, is never reached by a build.
BUILD_CONFIG = {
    "threads": 2,
    "memory_limit": "2GB",
    "preserve_insertion_order": True,
    "checkpoint_threshold": "256KB",
}


def default_db_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the warehouse path: ``--db``, then ``$SEGRISK_DB``, then ``./segrisk.duckdb``."""
    if explicit:
        return Path(explicit)
    return settings.DB.read()


def connect_for_build(path: Path) -> duckdb.DuckDBPyConnection:
    """Open a new warehouse file for writing (only ever a temporary file beside the target)."""
    con = duckdb.connect(str(path), config=dict(BUILD_CONFIG))
    con.execute("SET enable_progress_bar = false")  # progress is ours to print, as lines
    return con


def connect_memory() -> duckdb.DuckDBPyConnection:
    """An in-memory connection for scratch work that must not touch any file."""
    return duckdb.connect(":memory:", config={"threads": 2})


def connect_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """Open an existing warehouse read-only; many readers may share one file."""
    if not path.exists():
        raise WarehouseError(f"No warehouse at {path}: run `segrisk build` first, or pass --db with the file's path.")
    try:
        con = duckdb.connect(str(path), read_only=True)
        provide_for_reading(con)  # a warehouse saved before ml_latest_runs existed reads the same
        return con
    except duckdb.Error as exc:
        raise WarehouseError(f"Could not open the warehouse {path} read-only: {first_line(exc)}") from exc


def connect_sandboxed(path: Path, *, memory_limit: str = "1GB", threads: int = 1) -> duckdb.DuckDBPyConnection:
    """Open the warehouse read-only for SQL that people type (the dashboard's SQL console).

    DuckDB itself refuses everything but reading this file: no other file (``read_csv``,
    ``COPY ... TO``, ``ATTACH``, ``EXPORT DATABASE``), no network, no extension beyond those built
    in, no spilling to a temporary directory, and a locked configuration, so ``SET`` / ``PRAGMA``
    cannot undo any of it. DuckDB keeps one database instance per file and process, and a second
    connection with another configuration fails: open this in a process that has no other
    connection to ``path`` (the console runs it in a worker process of its own).
    """
    if not path.exists():
        raise WarehouseError(f"No warehouse at {path}: run `segrisk build` first, or pass --db with the file's path.")
    config = {
        "enable_external_access": False,
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        "allow_persistent_secrets": False,
        "temp_directory": "",
        "memory_limit": memory_limit,
        "threads": threads,
        "lock_configuration": True,  # last: every setting above is fixed from here on
    }
    try:
        con = duckdb.connect(str(path), read_only=True, config=config)
        provide_for_reading(con)
        return con
    except duckdb.Error as exc:
        raise WarehouseError(f"Could not open the warehouse {path} for the SQL console: {first_line(exc)}") from exc


def connect_for_source_query(tables: dict[str, object]) -> duckdb.DuckDBPyConnection:
    """An in-memory connection where a spec's source query sees its named tables and nothing else.

    ``tables`` (name -> a Polars or Arrow frame) are registered, then the configuration is locked:
    no file, no network, no extension, no setting can be reached from the query.
    """
    con = duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "allow_community_extensions": False,
            "allow_unsigned_extensions": False,
            "temp_directory": "",
            "threads": 2,
        },
    )
    for name, frame in tables.items():
        con.register(name, frame)
    con.execute("SET lock_configuration = true")
    return con


@contextmanager
def read_only(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context manager form of :func:`connect_read_only` that always closes the connection."""
    con = connect_read_only(path)
    try:
        yield con
    finally:
        con.close()


def first_line(exc: BaseException) -> str:
    """DuckDB messages can span lines (hints, carets); a user needs the first one."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB. Values are always bound; only names need this."""
    return '"' + name.replace('"', '""') + '"'

"""Model runs: every run is recorded, and its outputs are written back into the warehouse atomically.

The warehouse is copied beside itself, the run's tables are written into the copy, and the copy
is renamed over the original only when everything is in: a failed run leaves the warehouse as
it was, and readers holding the old file keep reading it undisturbed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from warehouse import __version__
from warehouse.db import connect_for_build, first_line
from warehouse.dictionary import comment_columns, comment_table
from warehouse.errors import SegriskError
from warehouse.history import RUNS_TABLE, refresh_latest_runs
from warehouse.locks import exclusive_writer
from warehouse.marts import refresh_customer_profile, refresh_fact_marts

from .warehouse_io import has_table

RUNS_DDL = (
    "run_id VARCHAR PRIMARY KEY, model_kind VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, "
    "parameters JSON, metrics JSON, input_fingerprint VARCHAR, input_rows BIGINT, segrisk_version VARCHAR"
)
RUNS_COMMENTS = {
    "run_id": "Identifier of the run; every output row of the run carries it.",
    "model_kind": "Which model ran: rfm, segments, ...",
    "started_at": "When the run started (UTC).",
    "finished_at": "When the run finished (UTC).",
    "parameters": "The run's parameters as JSON (seed, k, features, ...).",
    "metrics": "The run's quality measures as JSON.",
    "input_fingerprint": "Hash of the input rows: two runs with the same fingerprint saw the same data.",
    "input_rows": "Number of input rows (customers).",
    "segrisk_version": "Version of Segrisk that ran the model.",
}


class ModelError(SegriskError):
    """A model run that could not complete; the warehouse is left as it was."""


@dataclass
class ModelRun:
    """A run in progress: fill ``parameters`` and ``metrics``, then record it."""

    model_kind: str
    parameters: dict
    run_id: str = field(default_factory=lambda: f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}")
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))
    metrics: dict = field(default_factory=dict)
    input_fingerprint: str = ""
    input_rows: int = 0

    def record(self, con: duckdb.DuckDBPyConnection) -> None:
        finished = datetime.now(UTC).replace(tzinfo=None)
        con.execute(
            f"INSERT INTO {RUNS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.run_id,
                self.model_kind,
                self.started_at,
                finished,
                json.dumps(self.parameters, sort_keys=True, default=str),
                json.dumps(self.metrics, sort_keys=True, default=float),
                self.input_fingerprint,
                self.input_rows,
                __version__,
            ],
        )


def fingerprint(frame: pl.DataFrame) -> str:
    """A stable hash of a frame's rows (same rows in the same order, same fingerprint)."""
    digest = hashlib.sha256()
    digest.update(frame.write_ipc(None, compression="uncompressed").getvalue())
    return f"{digest.hexdigest()[:16]}-{frame.height}"


def append_table(
    con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, grain: str, comments: dict[str, str]
) -> None:
    """Append a run's rows to an ml_ table, creating and commenting it the first time."""
    missing = set(frame.columns) ^ set(comments)
    if missing:
        raise ValueError(f"{table}: columns and comments differ on {sorted(missing)}")
    if has_table(con, table):
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM frame")
        return
    con.execute(f"CREATE TABLE {table} AS SELECT * FROM frame")
    comment_table(con, table, grain)
    comment_columns(con, table, comments)


def ensure_runs_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {RUNS_TABLE} ({RUNS_DDL})")
    comment_table(con, RUNS_TABLE, "One row per model run: what ran, on which input, with what result.")
    comment_columns(con, RUNS_TABLE, RUNS_COMMENTS)
    refresh_latest_runs(con)


def build_of(con: duckdb.DuckDBPyConnection) -> str | None:
    """The build id of the warehouse ``con`` reads (None for a file without ``meta_builds``)."""
    try:
        rows = con.execute("SELECT build_id FROM meta_builds").fetchall()  # fetchone would leave it unfinished
    except duckdb.CatalogException:
        return None
    return str(rows[0][0]) if rows else None


def write_back(
    db_path: Path, write: Callable[[duckdb.DuckDBPyConnection], None], *, fitted_on_build: str | None = None
) -> None:
    """Apply ``write`` to a copy of the warehouse and swap the copy in only when it succeeded.

    The copy is taken under the warehouse's write lock: a build or another run writing at the
    same time is waited for, and this run starts from its result, so neither is lost. A model
    fits before it takes the lock (fitting takes the time; holding the lock that long would stall
    every other writer), so ``fitted_on_build`` names the build it read: when a rebuild replaced
    that build meanwhile, the run is refused with a sentence rather than writing results about
    customers of another build into it.
    """
    if not db_path.exists():
        raise ModelError(f"No warehouse at {db_path}: run `segrisk build` first, or pass --db with the file's path.")
    temp_path = db_path.with_name(f".{db_path.name}.training-{os.getpid()}")

    def remove_copy() -> None:  # and the .wal DuckDB may have left beside it
        for candidate in (temp_path, temp_path.with_name(temp_path.name + ".wal")):
            candidate.unlink(missing_ok=True)

    with exclusive_writer(db_path):
        if not db_path.exists():  # removed while this run waited
            raise ModelError(
                f"No warehouse at {db_path}: run `segrisk build` first, or pass --db with the file's path."
            )
        try:
            # Inside the try: an interrupt or a full disk during the copy must not leave the copy behind.
            os.close(os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            os.chmod(temp_path, 0o600)  # owner-only while it is being written, even if it was there
            shutil.copyfile(db_path, temp_path)
            con = connect_for_build(temp_path)
            try:
                if fitted_on_build is not None and (now := build_of(con)) != fitted_on_build:
                    raise ModelError(
                        f"The warehouse was rebuilt (build {now}) while this run was fitting on build "
                        f"{fitted_on_build}; nothing was written: run it again."
                    )
                ensure_runs_table(con)
                from .app_state_sync import copy_app_state  # imports the stores, which import this module

                copy_app_state(con, db_path)
                write(con)
                refresh_customer_profile(con)  # the dashboard's filters follow the new personas, grades, alerts
                refresh_fact_marts(con)
                con.execute("CHECKPOINT")
            finally:
                con.close()
            os.chmod(temp_path, stat.S_IMODE(os.stat(db_path).st_mode))  # the warehouse keeps its mode
            os.replace(temp_path, db_path)
            remove_copy()
        except duckdb.Error as exc:
            remove_copy()
            raise ModelError(
                f"Writing the model's results failed in DuckDB: {first_line(exc)}; the warehouse is unchanged."
            ) from exc
        except OSError as exc:  # a full disk while copying or writing, a folder made read-only meanwhile
            remove_copy()
            raise ModelError(
                f"Writing the model's results failed: {exc.strerror or exc} ({exc.filename or db_path.parent}); "
                "the warehouse is unchanged."
            ) from exc
        except BaseException:
            remove_copy()
            raise

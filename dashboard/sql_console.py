"""The governed SQL console: SQL an analyst types, run where it can only read the warehouse.

The guard is DuckDB's own configuration (``warehouse.db.connect_sandboxed``): read-only, no file
but the warehouse, no network, no extension loading, configuration locked. On top of it the
console runs one statement at a time, only of the kinds that read (a ``COPY`` or ``SET`` is
refused with a sentence before DuckDB sees it), for at most ``SEGRISK_SQL_TIME_LIMIT`` seconds
and ``SEGRISK_SQL_ROW_CAP`` rows.

Why a worker process: DuckDB keeps one database instance per file and process, and a second
connection to the same file with another configuration fails, while the dashboard's reader
(``dashboard/data.py``) holds a default read-only connection in this process. So console queries
run in long-lived worker processes (spawned, never forked from a threaded server), each with its
own sandboxed connection, and send their rows back as Arrow IPC bytes. A timer in the worker
interrupts a query at the time limit; should the interrupt not take, the worker is killed and a
new one started. A worker whose warehouse file was swapped by a rebuild or a model run (its inode,
modification time or size changed) is replaced, as ``dashboard/data.py`` reopens.
"""

from __future__ import annotations

import atexit
import csv
import io
import json
import multiprocessing
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as clock_time
from multiprocessing.connection import Connection
from pathlib import Path

import duckdb
import pyarrow as pa

from warehouse.db import connect_sandboxed, first_line
from warehouse.errors import SegriskError, WarehouseError


class SqlConsoleError(SegriskError):
    """A console query refused, failed or stopped; the message is the one line the user sees and
    ``outcome`` ("refused", "failed" or "stopped") what the audit log records."""

    def __init__(self, message: str, outcome: str = "failed") -> None:
        super().__init__(message)
        self.outcome = outcome


# -- settings ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One console setting: its environment variable, default and what it means."""

    env_var: str
    default: float | int | str
    help: str


SETTINGS: dict[str, Setting] = {
    "time_limit": Setting("SEGRISK_SQL_TIME_LIMIT", 10.0, "seconds a console query may run before it is stopped"),
    "row_cap": Setting("SEGRISK_SQL_ROW_CAP", 10_000, "rows a console result holds at most"),
    "memory_limit": Setting("SEGRISK_SQL_MEMORY_LIMIT", "1GB", "DuckDB memory limit of each console worker"),
    "threads": Setting("SEGRISK_SQL_THREADS", 1, "DuckDB threads of each console worker"),
    "workers": Setting("SEGRISK_SQL_WORKERS", 2, "console queries that may run at once (one process each)"),
}

#: Seconds a worker gets beyond the time limit to answer an interrupt before it is killed.
KILL_GRACE = 3.0
#: Seconds a new worker may take to start and open the warehouse.
START_TIMEOUT = 60.0
#: A result larger than this (Arrow bytes) is refused: the cap is on rows, a row can be huge.
MAX_RESULT_BYTES = 64 << 20
#: Longest SQL text accepted.
MAX_SQL_CHARS = 100_000

#: Statement kinds that only read. Writes, ``COPY``, ``EXPORT``, ``ATTACH``, ``INSTALL``/``LOAD``
#: and ``SET`` would fail in the sandbox anyway; refusing them first gives a plainer sentence.
#: (``DESCRIBE``, ``SUMMARIZE``, ``SHOW``, ``FROM ...`` and ``WITH ...`` are SELECTs to DuckDB.)
READING_KINDS = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL"})
#: What a refused kind of statement would do, for the refusal sentence.
REFUSED_KINDS = {
    "SET": "changes a setting",
    "VARIABLE_SET": "changes a setting",
    "COPY": "writes or reads a file",
    "EXPORT": "writes files",
    "ATTACH": "opens another database",
    "DETACH": "closes a database",
    "LOAD": "installs or loads an extension",
    "CREATE": "creates an object",
    "INSERT": "writes rows",
    "UPDATE": "writes rows",
    "DELETE": "deletes rows",
    "DROP": "drops an object",
    "ALTER": "changes an object",
    "TRANSACTION": "controls a transaction",
}


@dataclass(frozen=True)
class ConsoleLimits:
    """The console's limits, from the environment (``SETTINGS``) unless given."""

    time_limit: float = 10.0
    row_cap: int = 10_000
    memory_limit: str = "1GB"
    threads: int = 1
    workers: int = 2

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> ConsoleLimits:
        environ = dict(os.environ) if environ is None else environ
        values: dict[str, object] = {}
        for name, setting in SETTINGS.items():
            text = environ.get(setting.env_var, "").strip()
            if not text:
                values[name] = setting.default
            elif isinstance(setting.default, str):
                values[name] = text
            else:
                kind = type(setting.default)
                try:
                    value = kind(text)
                except ValueError:
                    value = 0
                if value <= 0:
                    unit = "a number of seconds" if kind is float else "a whole number"
                    raise SqlConsoleError(f"{setting.env_var} must be {unit} above 0, not '{text}'.")
                values[name] = value
        return cls(**values)  # type: ignore[arg-type]


# -- results -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConsoleResult:
    """A query's rows (at most the row cap), whether more existed, and how long it ran."""

    table: pa.Table
    truncated: bool
    seconds: float
    row_cap: int

    @property
    def columns(self) -> list[str]:
        return list(self.table.column_names)

    @property
    def row_count(self) -> int:
        return self.table.num_rows

    def rows(self) -> list[tuple]:
        """The rows as Python values, in the query's order."""
        columns = [column.to_pylist() for column in self.table.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def summary(self) -> str:
        if self.truncated:
            return (
                f"Showing the first {self.row_cap:,} rows (the console's cap, SEGRISK_SQL_ROW_CAP); the query has more."
            )
        noun = "row" if self.row_count == 1 else "rows"
        return f"{self.row_count:,} {noun} in {self.seconds:,.2f} s."


# -- the worker process --------------------------------------------------------------------------------
def _refusal(sql: str, con: duckdb.DuckDBPyConnection) -> str | None:
    """Why ``sql`` is refused before it runs (None when it may run)."""
    statements = con.extract_statements(sql)
    if not statements:
        return "Type a query first."
    if len(statements) > 1:
        return f"Refused: the console runs one statement at a time; this text has {len(statements)}."
    kind = statements[0].type.name
    if kind not in READING_KINDS:
        what = REFUSED_KINDS.get(kind, "does more than read")
        # Named as the user wrote it: to DuckDB, INSTALL is a LOAD and PRAGMA x = y a SET.
        keyword = sql.split(None, 1)[0].upper()
        named = keyword if keyword.isalpha() else kind
        return (
            f"Refused: this {named} statement {what}; the console only runs statements that read the warehouse "
            "(SELECT, WITH, FROM, DESCRIBE, SUMMARIZE, SHOW, EXPLAIN, PRAGMA, CALL)."
        )
    return None


def _answer(con: duckdb.DuckDBPyConnection, sql: str, row_cap: int, time_limit: float, memory_limit: str) -> tuple:
    """Run one query on a fresh cursor; ("rows", arrow bytes, truncated, seconds), ("stopped",) or
    ("error", line)."""
    started = time.perf_counter()
    try:
        refused = _refusal(sql, con)
    except duckdb.Error as exc:
        return ("error", f"The query failed: {first_line(exc)}")
    if refused:
        return ("error", refused)
    # A cursor per query: temporary objects and settings of one query never reach the next.
    cursor = con.cursor()
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        cursor.interrupt()

    timer = threading.Timer(time_limit, stop)
    timer.daemon = True
    timer.start()
    try:
        relation = cursor.sql(sql)
        batches: list[pa.RecordBatch] = []
        schema = pa.schema([])
        rows = 0
        if relation is not None:
            reader = relation.to_arrow_reader(min(row_cap + 1, 8192))
            schema = reader.schema
            # Read only one row past the cap: whether there are more is all the console needs to know.
            while rows <= row_cap:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                batches.append(batch)
                rows += batch.num_rows
        table = pa.Table.from_batches(batches, schema=schema)
        truncated = table.num_rows > row_cap
        table = table.slice(0, row_cap)
    except (duckdb.Error, pa.ArrowException) as exc:
        if stopped.is_set():
            return ("stopped",)
        message = first_line(exc)
        if isinstance(exc, duckdb.OutOfMemoryException):
            return (
                "error",
                f"Stopped: the query needs more memory than the console's limit of {memory_limit} "
                f"(SEGRISK_SQL_MEMORY_LIMIT): {message}",
            )
        return ("error", f"The query failed: {message}")
    finally:
        timer.cancel()
        cursor.close()
    if stopped.is_set():
        return ("stopped",)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    payload = sink.getvalue().to_pybytes()
    if len(payload) > MAX_RESULT_BYTES:
        return (
            "error",
            f"Refused: the result is {len(payload) >> 20:,} MB, over the console's {MAX_RESULT_BYTES >> 20} MB; "
            "select fewer or narrower columns.",
        )
    return ("rows", payload, truncated, time.perf_counter() - started)


def _serve(channel: Connection, path: str, memory_limit: str, threads: int) -> None:
    """The worker's loop: open the sandboxed connection once, answer queries until told to stop."""
    try:
        con = connect_sandboxed(Path(path), memory_limit=memory_limit, threads=threads)
    except SegriskError as exc:
        channel.send(("failed", str(exc)))
        return
    channel.send(("ready",))
    try:
        while True:
            try:
                request = channel.recv()
            except (EOFError, OSError):
                return  # the dashboard went away
            if request is None:
                return
            sql, row_cap, time_limit = request
            try:
                answer = _answer(con, sql, row_cap, time_limit, memory_limit)
            except Exception as exc:  # anything else still reaches the user as one line, never a traceback
                answer = ("error", f"The query failed: {type(exc).__name__}: {first_line(exc)}")
            channel.send(answer)
    finally:
        con.close()


def _file_stamp(path: Path) -> tuple[int, int, int]:
    stat = os.stat(path)
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class _Worker:
    """One worker process with its end of the pipe and the file stamp it opened."""

    def __init__(self, path: Path, limits: ConsoleLimits) -> None:
        self.stamp = _file_stamp(path)
        context = multiprocessing.get_context("spawn")
        self.channel, child = context.Pipe()
        self.process = context.Process(
            target=_serve,
            args=(child, str(path), limits.memory_limit, limits.threads),
            name="segrisk-sql-console",
            daemon=True,
        )
        self.process.start()
        child.close()
        if not self.channel.poll(START_TIMEOUT):
            self.kill()
            raise SqlConsoleError(f"The SQL console could not start within {START_TIMEOUT:.0f} s; try again.")
        try:
            hello = self.channel.recv()
        except EOFError:
            self.kill()
            raise SqlConsoleError("The SQL console's worker stopped while starting; try again.") from None
        if hello[0] != "ready":
            self.kill()
            raise WarehouseError(hello[1])

    def ask(self, sql: str, limits: ConsoleLimits) -> tuple:
        """Send one query and wait for its answer; ("lost",) when the worker had to be killed or died."""
        try:
            self.channel.send((sql, limits.row_cap, limits.time_limit))
            if not self.channel.poll(limits.time_limit + KILL_GRACE):
                self.kill()  # the interrupt did not take: the process goes, and the query with it
                return ("stopped",)
            return self.channel.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.kill()
            return ("lost",)

    def stop(self) -> None:
        try:
            self.channel.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.kill()
        self.channel.close()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.channel.close()


class SqlConsole:
    """Runs console queries on one warehouse file in a small pool of sandboxed worker processes."""

    def __init__(self, path: Path, limits: ConsoleLimits | None = None) -> None:
        self.path = path
        self.limits = limits or ConsoleLimits.from_environment()
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._slots = threading.BoundedSemaphore(self.limits.workers)
        self.started = 0  # workers started so far (a kill or a swapped file starts another)
        self.running = 0  # queries in flight now

    def run(self, sql: str | None) -> ConsoleResult:
        """Run one statement; raise :class:`SqlConsoleError` with one line when it is refused,
        fails or is stopped."""
        text = (sql or "").strip().rstrip(";").strip()
        if not text:
            raise SqlConsoleError("Type a query first.", "refused")
        if len(text) > MAX_SQL_CHARS:
            raise SqlConsoleError(f"Refused: the query is longer than {MAX_SQL_CHARS:,} characters.", "refused")
        # Wait at most one query's worth of time for a free worker.
        if not self._slots.acquire(timeout=self.limits.time_limit + KILL_GRACE):
            raise SqlConsoleError("The SQL console is busy with other queries; try again in a moment.")
        with self._lock:
            self.running += 1
        try:
            worker = self._take()
            answer = worker.ask(text, self.limits)
            if answer[0] in ("stopped", "lost"):
                if worker.process.is_alive():
                    self._give_back(worker)
                else:
                    worker.kill()
            else:
                self._give_back(worker)
        finally:
            with self._lock:
                self.running -= 1
            self._slots.release()
        if answer[0] == "rows":
            _, payload, truncated, seconds = answer
            return ConsoleResult(pa.ipc.open_stream(payload).read_all(), truncated, seconds, self.limits.row_cap)
        if answer[0] == "stopped":
            limit = f"{self.limits.time_limit:g}"
            raise SqlConsoleError(
                f"Stopped: the query ran longer than the console's time limit of {limit} s (SEGRISK_SQL_TIME_LIMIT).",
                "stopped",
            )
        if answer[0] == "lost":
            raise SqlConsoleError(
                "Stopped: the query ended the console's worker, which has been restarted; try a smaller query.",
                "stopped",
            )
        message = answer[1]
        outcome = "refused" if message.startswith(("Refused", "Type a query")) else "failed"
        raise SqlConsoleError(message, "stopped" if message.startswith("Stopped") else outcome)

    def _take(self) -> _Worker:
        try:
            stamp = _file_stamp(self.path)
        except FileNotFoundError as exc:
            raise WarehouseError(f"No warehouse at {self.path}: run `segrisk build` first.") from exc
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.stamp == stamp and worker.process.is_alive():
                    return worker
                threading.Thread(target=worker.stop, daemon=True).start()  # an old file's worker
        worker = _Worker(self.path, self.limits)
        with self._lock:
            self.started += 1
        return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()


# -- showing and downloading a result --------------------------------------------------------------------
#: Characters of one value shown in the table (the CSV download has them all).
SHOWN_CHARS = 300
#: Results kept for paging and download, per server process (the oldest go first).
RESULTS_KEPT = 64
#: Integers beyond this lose digits in a browser's JavaScript numbers: they are shown as text.
SAFE_INTEGER = 2**53


def is_numeric(table: pa.Table, index: int) -> bool:
    """Whether column ``index`` holds numbers (shown right-aligned)."""
    kind = table.schema.field(index).type
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def csv_value(value: object) -> object:
    """A value as a CSV cell: empty for NULL, ISO dates, nested values as JSON."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | clock_time):
        return value.isoformat()
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, bytes):
        return value.hex()
    return value


def shown_value(value: object) -> str | int | float:
    """A value as a table cell: NULL spelled out, long text cut, floats to 10 significant digits."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value if abs(value) < SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return format(value, ".10g")
    text = str(csv_value(value))
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def page_rows(result: ConsoleResult, page: int, page_size: int) -> list[dict[str, object]]:
    """Rows ``page`` (from 1) of ``result`` as cells keyed ``c0``, ``c1``, ... (column names may repeat)."""
    part = result.table.slice((page - 1) * page_size, page_size)
    columns = [column.to_pylist() for column in part.columns]
    return [{f"c{i}": shown_value(value) for i, value in enumerate(row)} for row in zip(*columns, strict=True)]


def result_csv(result: ConsoleResult) -> str:
    """The whole (capped) result as CSV text with a header row; text that a spreadsheet would run as
    a formula gets a leading ``'`` (``downloads.safe_cell``)."""
    from .downloads import safe_cell  # here, not at the top: the query worker process never writes CSV

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([safe_cell(name) for name in result.columns])
    writer.writerows([safe_cell(csv_value(value)) for value in row] for row in result.rows())
    return out.getvalue()


_RESULTS: OrderedDict[str, tuple[str | None, ConsoleResult]] = OrderedDict()
_RESULTS_LOCK = threading.Lock()


def remember(user: str | None, result: ConsoleResult) -> str:
    """Keep ``result`` for its pages and download; returns the token the browser holds."""
    token = secrets.token_urlsafe(16)
    with _RESULTS_LOCK:
        _RESULTS[token] = (user, result)
        while len(_RESULTS) > RESULTS_KEPT:
            _RESULTS.popitem(last=False)
    return token


def recall(user: str | None, token: str | None) -> ConsoleResult | None:
    """The result behind ``token`` when ``user`` ran it; None when unknown or forgotten."""
    with _RESULTS_LOCK:
        kept = _RESULTS.get(token or "")
    if kept is None or kept[0] != user:
        return None
    return kept[1]


# -- one console per warehouse file ------------------------------------------------------------------------
_CONSOLES: dict[Path, SqlConsole] = {}
_CONSOLES_LOCK = threading.Lock()


def console(path: Path) -> SqlConsole:
    """The console of a warehouse file (one per file and process, its workers started on demand)."""
    key = Path(os.path.abspath(path))
    with _CONSOLES_LOCK:
        found = _CONSOLES.get(key)
        if found is None:
            if not _CONSOLES:
                atexit.register(close_all)
            found = _CONSOLES[key] = SqlConsole(key)
        return found


def close_all() -> None:
    """Stop every console's workers (at exit, and in tests)."""
    with _CONSOLES_LOCK:
        consoles = list(_CONSOLES.values())
        _CONSOLES.clear()
    for each in consoles:
        each.close()

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

What one analyst can take from the server is bounded (issue 13, items 7 and 8):

- **Server threads.** At most ``SEGRISK_SQL_WORKERS`` queries run at once; a query that finds every
  worker busy is refused at once with a sentence (audited as "busy") rather than queued on a
  server thread, so console work ties up at most that many of waitress's threads, each for at most
  the time limit (plus ``KILL_GRACE``). The workers also run at a lower CPU priority (``nice``), so
  pages and the scoring API come first on a busy machine.
- **Memory.** A worker's DuckDB ``memory_limit`` bounds what DuckDB manages, but not the result
  DuckDB hands over, nor the strings in flight. So the result is read in small record batches and
  stopped with a sentence as soon as it passes ``SEGRISK_SQL_RESULT_MB``; each worker's address
  space is capped (``SEGRISK_SQL_WORKER_MEMORY``, an operating-system limit that no query can
  raise), so a query that allocates past it fails with a sentence instead of growing; and the
  results the server keeps for paging and download are bounded in total
  (``SEGRISK_SQL_RESULTS_MB``), the oldest forgotten first.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import io
import json
import multiprocessing
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as clock_time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from warehouse import settings
from warehouse.db import connect_sandboxed, first_line
from warehouse.errors import SegriskError, SettingError, WarehouseError
from warehouse.runs_view import provide_for_reading


class SqlConsoleError(SegriskError):
    """A console query refused, failed or stopped; the message is the one line the user sees and
    ``outcome`` ("refused", "failed" or "stopped") what the audit log records."""

    def __init__(self, message: str, outcome: str = "failed") -> None:
        super().__init__(message)
        self.outcome = outcome


# -- settings ----------------------------------------------------------------------------------------
#: ``ConsoleLimits`` field -> its setting (name, default, parser and help in ``warehouse.settings``).
SETTINGS: dict[str, settings.Setting[Any]] = {
    "time_limit": settings.SQL_TIME_LIMIT,
    "row_cap": settings.SQL_ROW_CAP,
    "memory_limit": settings.SQL_MEMORY_LIMIT,
    "threads": settings.SQL_THREADS,
    "workers": settings.SQL_WORKERS,
    "result_mb": settings.SQL_RESULT_MB,
    "results_mb": settings.SQL_RESULTS_MB,
    "worker_memory": settings.SQL_WORKER_MEMORY,
}

#: Seconds a worker gets beyond the time limit to answer an interrupt before it is killed.
KILL_GRACE = 3.0
#: Seconds a new worker may take to start and open the warehouse.
START_TIMEOUT = 60.0
#: Rows per record batch read from DuckDB: small, so the result's size is checked as it grows.
BATCH_ROWS = 256
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
    result_mb: int = 64
    results_mb: int = 256
    worker_memory: str = "4GB"

    @property
    def result_bytes(self) -> int:
        """The most one result may hold: its own limit, and never more than all kept results may."""
        return min(self.result_mb, self.results_mb) << 20

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ConsoleLimits:
        values = {name: setting.read(environ, error=SqlConsoleError) for name, setting in SETTINGS.items()}
        return cls(**values)


def byte_count(text: str, env_var: str = "the size") -> int:
    """Bytes in a size such as ``3GB`` or ``512 MiB`` (DuckDB's spelling)."""
    try:
        return settings.byte_count(env_var, text)
    except SettingError as exc:
        raise SqlConsoleError(str(exc)) from exc


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

    @property
    def nbytes(self) -> int:
        """The memory its Arrow buffers hold."""
        return self.table.get_total_buffer_size()

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
#: DuckDB functions and pragmas whose answer names server files: the database's path
#: (``duckdb_databases``, ``PRAGMA database_list``), the settings with their directories
#: (``duckdb_settings``, ``current_setting``, ``allowed_paths``), the extension, secret and
#: temporary-file directories, and ``query``/``query_table``, which would run a statement built from
#: a string and so get past a check on names. A function or pragma can only be named in the SQL text
#: itself (the console cannot create a macro or a view), so refusing these names refuses every way
#: to call them; the masking of ``_PathMask`` is the second layer, for paths stored in the
#: warehouse's own tables (``meta_builds.data_dir``) and quoted in error messages.
PATH_REVEALING = frozenset(
    {
        "duckdb_databases",
        "database_list",
        "pragma_database_list",
        "duckdb_settings",
        "current_setting",
        "duckdb_extensions",
        "duckdb_secrets",
        "which_secret",
        "duckdb_temporary_files",
        "duckdb_external_file_cache",
        "duckdb_logs",
        "duckdb_log_contexts",
    }
)
#: Names refused only as a call: ``query`` and ``query_table`` are also ordinary column names.
PATH_REVEALING_CALLS = frozenset({"query", "query_table"})


def _names(sql: str) -> list[tuple[str, str]]:
    """Each identifier or keyword in ``sql``, lower-cased and unquoted, with the token after it
    (string constants and comments are not names)."""
    tokens = duckdb.tokenize(sql)
    names: list[tuple[str, str]] = []
    for index, (start, kind) in enumerate(tokens):
        if kind not in (duckdb.token_type.identifier, duckdb.token_type.keyword):
            continue
        end = tokens[index + 1][0] if index + 1 < len(tokens) else len(sql)
        after = sql[end : tokens[index + 2][0]].strip() if index + 2 < len(tokens) else sql[end:].strip()
        names.append((sql[start:end].strip().strip('"').lower(), after[:1]))
    return names


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
    for name, after in _names(sql):
        if name in PATH_REVEALING or (name in PATH_REVEALING_CALLS and after == "("):
            return (
                f"Refused: {name} shows the server's files and settings, which the console keeps to itself; "
                "the warehouse's tables and duckdb_tables(), duckdb_columns() describe the data."
            )
    return None


#: What a server path becomes in the console's answers.
PATH_PLACEHOLDER = "<server path>"


class _PathMask:
    """Replaces the server's directories (the warehouse's, the data folder each build read, the home
    directory DuckDB names in its errors) in every text of an answer: values, nested values, column
    names and error lines. A path is only ever shown to the analyst as ``<server path>/name``."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection) -> None:
        found = {str(path.parent), str(path.parent.resolve()), str(Path.home())}
        with contextlib.suppress(duckdb.Error):
            found |= {row[0] for row in con.execute("SELECT DISTINCT data_dir FROM meta_builds").fetchall() if row[0]}
        for each in list(found):
            with contextlib.suppress(OSError, ValueError):
                found.add(str(Path(each).resolve()))
        # Longest first, so a data folder inside the warehouse's folder is replaced whole.
        self.paths = sorted({each.rstrip("/") for each in found if len(each.rstrip("/")) > 1}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for path in self.paths:
            value = value.replace(path, PATH_PLACEHOLDER)
        return value

    def value(self, value: object) -> object:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list | tuple):
            return [self.value(each) for each in value]
        if isinstance(value, dict):
            return {self.value(key): self.value(each) for key, each in value.items()}
        return value

    def array(self, array: pa.ChunkedArray) -> pa.ChunkedArray:
        kind = array.type
        if pa.types.is_dictionary(kind) or pa.types.is_string_view(kind):
            array, kind = array.cast(pa.string()), pa.string()
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            for path in self.paths:
                array = pc.replace_substring(array, path, PATH_PLACEHOLDER)
            return array
        if pa.types.is_nested(kind) and any(
            pa.types.is_string(t) or pa.types.is_large_string(t) for t in _leaves(kind)
        ):
            return pa.chunked_array([pa.array(self.value(array.to_pylist()), type=kind)], type=kind)
        return array

    def table(self, table: pa.Table) -> pa.Table:
        if not self.paths:
            return table
        columns = [self.array(column) for column in table.columns]
        return pa.Table.from_arrays(columns, names=[self.text(name) for name in table.column_names])


def _leaves(kind: pa.DataType) -> list[pa.DataType]:
    """The types inside a nested Arrow type, at every depth."""
    inner = [kind.field(i).type for i in range(kind.num_fields)]
    return inner + [leaf for each in inner if pa.types.is_nested(each) for leaf in _leaves(each)]


#: How an answer stopped at the worker's address-space limit begins (that worker is then replaced).
WORKER_MEMORY_STOP = "Stopped: the query needs more memory than a console worker may use"


def _too_large(limit: int, rows: int) -> tuple:
    return (
        "error",
        f"Refused: the result passed the console's {limit >> 20:,} MB (SEGRISK_SQL_RESULT_MB) after {rows:,} rows; "
        "select fewer or narrower columns.",
    )


def _answer(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    row_cap: int,
    time_limit: float,
    memory_limit: str,
    result_bytes: int,
    mask: _PathMask | None = None,
) -> tuple:
    """Run one query on a fresh cursor; ("rows", arrow bytes, truncated, seconds), ("stopped",) or
    ("error", line). The result is read in batches of ``BATCH_ROWS`` and given up as soon as it
    holds more than ``result_bytes``: it never grows past that in this process."""
    started = time.perf_counter()
    try:
        refused = _refusal(sql, con)
    except duckdb.Error as exc:
        return ("error", f"The query failed: {first_line(exc)}")
    if refused:
        return ("error", refused)
    # A cursor per query: temporary objects and settings of one query never reach the next.
    cursor = con.cursor()
    provide_for_reading(cursor)  # a warehouse from before ml_latest_runs: the view, on this cursor only
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
        rows = size = 0
        if relation is not None:
            reader = relation.to_arrow_reader(min(row_cap + 1, BATCH_ROWS))
            schema = reader.schema
            # Read only one row past the cap: whether there are more is all the console needs to know.
            while rows <= row_cap:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                batches.append(batch)
                rows += batch.num_rows
                size += batch.get_total_buffer_size()
                if size > result_bytes:
                    batches.clear()
                    return _too_large(result_bytes, rows)
        table = pa.Table.from_batches(batches, schema=schema)
        truncated = table.num_rows > row_cap
        table = table.slice(0, row_cap)
        if mask is not None:
            table = mask.table(table)
    except (duckdb.Error, pa.ArrowException, OSError, MemoryError) as exc:  # pyarrow's OSError: out of memory
        if stopped.is_set():
            return ("stopped",)
        message = first_line(exc) if not isinstance(exc, MemoryError) else "out of memory"
        if isinstance(exc, duckdb.OutOfMemoryException):
            return (
                "error",
                f"Stopped: the query needs more memory than the console's limit of {memory_limit} "
                f"(SEGRISK_SQL_MEMORY_LIMIT): {message}",
            )
        if isinstance(exc, MemoryError) or "out of memory" in message.lower():
            return ("error", f"{WORKER_MEMORY_STOP} (SEGRISK_SQL_WORKER_MEMORY, SEGRISK_SQL_MEMORY_LIMIT): {message}")
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
    if len(payload) > result_bytes:
        return _too_large(result_bytes, table.num_rows)
    return ("rows", payload, truncated, time.perf_counter() - started)


def _limit_worker(worker_memory: int) -> None:
    """Lower this worker's CPU priority and cap its address space (where the system allows)."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)  # the pages and the scoring API come first
    try:
        import resource
    except ImportError:  # not on this system: the DuckDB memory limit and the result cap remain
        return
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_AS, (worker_memory, worker_memory))


def _serve(channel: Connection, path: str, memory_limit: str, threads: int, worker_memory: int) -> None:
    """The worker's loop: open the sandboxed connection once, answer queries until told to stop."""
    _limit_worker(worker_memory)
    try:
        con = connect_sandboxed(Path(path), memory_limit=memory_limit, threads=threads)
        mask = _PathMask(Path(path), con)
    except SegriskError as exc:
        channel.send(("failed", str(exc).replace(str(Path(path).parent), PATH_PLACEHOLDER)))
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
            sql, row_cap, time_limit, result_bytes = request
            try:
                answer = _answer(con, sql, row_cap, time_limit, memory_limit, result_bytes, mask)
            except Exception as exc:  # anything else still reaches the user as one line, never a traceback
                answer = ("error", f"The query failed: {type(exc).__name__}: {first_line(exc)}")
            if answer[0] == "error":
                answer = ("error", mask.text(answer[1]))
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
            args=(child, str(path), limits.memory_limit, limits.threads, byte_count(limits.worker_memory)),
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
            self.channel.send((sql, limits.row_cap, limits.time_limit, limits.result_bytes))
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
        # No queue: a query waiting for a worker would hold a server thread, and enough of them would
        # hold all of them. Refused at once, it holds none.
        if not self._slots.acquire(blocking=False):
            raise SqlConsoleError(
                f"The SQL console is busy with {self.limits.workers} queries; try again in a moment.", "busy"
            )
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
            elif answer[0] == "error" and answer[1].startswith(WORKER_MEMORY_STOP):
                # Its address space is fragmented or held: a fresh worker answers the next query.
                threading.Thread(target=worker.stop, daemon=True).start()
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
            raise WarehouseError(f"No warehouse {self.path.name} on the server: run `segrisk build` first.") from exc
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
#: Results kept for paging and download, per server process (the oldest go first), at most; their
#: bytes in all are bounded too (``SEGRISK_SQL_RESULTS_MB``).
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
_RESULTS_BYTES = 0  # the bytes of the results in _RESULTS


def remember(user: str | None, result: ConsoleResult, budget_bytes: int | None = None) -> str:
    """Keep ``result`` for its pages and download; returns the token the browser holds. The oldest
    results are forgotten while more than ``RESULTS_KEPT`` are kept or they hold more than
    ``budget_bytes`` (``SEGRISK_SQL_RESULTS_MB`` when not given) in all; the newest is always kept
    (one result is never larger than the budget: ``ConsoleLimits.result_bytes``)."""
    global _RESULTS_BYTES
    if budget_bytes is None:
        budget_bytes = ConsoleLimits.from_environment().results_mb << 20
    token = secrets.token_urlsafe(16)
    with _RESULTS_LOCK:
        _RESULTS[token] = (user, result)
        _RESULTS_BYTES += result.nbytes
        while len(_RESULTS) > 1 and (len(_RESULTS) > RESULTS_KEPT or _RESULTS_BYTES > budget_bytes):
            _, (_, forgotten) = _RESULTS.popitem(last=False)
            _RESULTS_BYTES -= forgotten.nbytes
    return token


def kept_bytes() -> int:
    """The bytes of the results kept now, in this process."""
    with _RESULTS_LOCK:
        return _RESULTS_BYTES


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

"""How the dashboard reads the warehouse: one read-only connection, kept open, reopened when a
rebuild or retrain swaps the file, and named queries whose values are always bound.

Opening a connection costs 25-40 ms and a query on an open one a few ms, so the connection is
kept. A rebuild or a model run writes a new file and renames it over the old one; the reader
notices the new file (its inode and modification time change) on the next query and reopens,
so the dashboard picks the change up without a restart and without an error page.

DuckDB keeps one database instance per file path in a process: a new connection to the same
path while any connection (cursor) to the old file is open would still read the old file. So a
reopen waits for the queries in flight to finish, closes the old connection, then opens anew.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections import OrderedDict
from pathlib import Path

import duckdb
import polars as pl

from warehouse import settings
from warehouse.db import connect_read_only, first_line
from warehouse.errors import WarehouseError
from warehouse.history import latest_run_of
from warehouse.runs_view import create_temporary_view, lacks_view

#: Every query the dashboard runs, by name. Values are ``$name`` parameters bound by DuckDB;
#: nothing a user types is ever formatted into this text.
QUERIES: dict[str, str] = {
    "object_names": "SELECT table_name AS name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()",
    "capabilities": "SELECT capability, is_supported, reason FROM meta_capabilities ORDER BY capability",
    "build": "SELECT build_id, spec_name, as_of_date FROM meta_builds",
    "customer": "SELECT * FROM customers WHERE customer_id = $customer_id",
    "customer_scores": "SELECT * FROM ml_latest_risk_scores WHERE customer_id = $customer_id",
    # The latest run of a model kind (ml_latest_runs decides which): none, or one row.
    "latest_run": "SELECT run_id, started_at, finished_at, parameters, metrics FROM ml_latest_runs "
    "WHERE model_kind = $kind",
    "customers_count": "SELECT count(*) AS customers FROM customers",
    "default_rate": "SELECT avg(is_defaulted::INT) AS default_rate FROM customers",
    "persona_sizes": "SELECT segment_key, persona_name, customers, share FROM ml_latest_segment_summary "
    "ORDER BY segment_id",
    "policy_overall": "SELECT * FROM ml_policy_evaluations WHERE persona_name = 'All customers' "
    f"AND run_id = {latest_run_of('risk')}",
    "open_alert_ids": "SELECT alert_id FROM ml_latest_alerts WHERE NOT is_acknowledged",
    "champion_metrics": "SELECT metric, value FROM ml_risk_metrics WHERE role = 'champion' "
    f"AND run_id = {latest_run_of('risk')}",
    "champion_curves": "SELECT curve, point, x, y FROM ml_risk_curves WHERE role = 'champion' "
    f"AND run_id = {latest_run_of('risk')} ORDER BY curve, point",
    "score_histogram": "SELECT floor(score / 10) * 10 AS score_band, count(*) AS customers "
    "FROM ml_latest_risk_scores GROUP BY ALL ORDER BY score_band",
    "grades": "SELECT grade, customers, share, observed_default_rate, mean_pd FROM ml_risk_grades "
    f"WHERE run_id = {latest_run_of('risk')} ORDER BY grade",
}


#: Memory the answers cache may hold, in MB (``SEGRISK_QUERY_CACHE_MB``; 0 turns it off).
CACHE_MB_ENV = settings.QUERY_CACHE_MB.name
DEFAULT_CACHE_MB = settings.QUERY_CACHE_MB.default
#: Answers larger than this are not kept (a CSV download is read once).
CACHE_MAX_ROWS = 20_000


class AnswerCache:
    """Answers of named queries, least recently used first out, within a memory budget.

    The warehouse file never changes while it is open (a rebuild or retrain swaps in a new file),
    so a query's answer is a function of the file, the query and its parameters: an answer is
    kept under all three and is right until the file is swapped, when the cache is emptied. Risk
    managers return to the same views all day; the second look costs nothing.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self._answers: OrderedDict[tuple, pl.DataFrame] = OrderedDict()
        self._bytes = 0
        self._stamp: object = None
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(query_name: str, params: dict[str, object]) -> tuple:
        frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items()))
        return query_name, frozen

    def get(self, stamp: object, key: tuple) -> pl.DataFrame | None:
        with self._lock:
            if stamp != self._stamp:
                self._answers.clear()
                self._bytes, self._stamp = 0, stamp
            found = self._answers.get(key)
            if found is None:
                self.misses += 1
                return None
            self._answers.move_to_end(key)
            self.hits += 1
            # A copy shares the data (Polars is copy-on-write): a caller changing it can't change the cache.
            return found.clone()

    def clear(self) -> None:
        """Forget every answer (a benchmark's fresh start; a swapped file empties the cache by itself)."""
        with self._lock:
            self._answers.clear()
            self._bytes = 0

    def put(self, stamp: object, key: tuple, answer: pl.DataFrame) -> None:
        size = answer.estimated_size()
        if answer.height > CACHE_MAX_ROWS or size > self.budget:
            return
        with self._lock:
            if stamp != self._stamp or key in self._answers:
                return
            self._answers[key] = answer.clone()
            self._bytes += size
            while self._bytes > self.budget:
                _, dropped = self._answers.popitem(last=False)
                self._bytes -= dropped.estimated_size()


def register(**named: str) -> None:
    """Add a page's named queries. Names are unique across the dashboard; a clash is a programming error."""
    clashes = sorted(set(named) & set(QUERIES))
    if clashes and any(QUERIES[name] != named[name] for name in clashes):
        raise ValueError(f"Query names already registered with other text: {', '.join(clashes)}")
    QUERIES.update(named)


class WarehouseReader:
    """Named, parameterised, read-only queries on one warehouse file, safe across threads."""

    def __init__(self, path: Path, cache_mb: float | None = None) -> None:
        self.path = path
        if cache_mb is None:
            cache_mb = settings.QUERY_CACHE_MB.read()
        self.cache = AnswerCache(int(cache_mb * 1024 * 1024)) if cache_mb > 0 else None
        self._idle = threading.Condition()
        self._active = 0
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lacks_latest_runs = False
        self._stamp: tuple[int, int, int] | None = None
        self._names: frozenset[str] | None = None  # tables and views of the open file
        self.reopened = 0

    def _file_stamp(self) -> tuple[int, int, int]:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError as exc:
            raise WarehouseError(
                f"No warehouse at {self.path}: run `segrisk build` first, or start with --db pointing at one."
            ) from exc
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _cursor(self) -> tuple[duckdb.DuckDBPyConnection, tuple[int, int, int]]:
        """A cursor on the open file (reopened first if the file was swapped), and that file's stamp."""
        stamp = self._file_stamp()
        with self._idle:
            if self._con is None or stamp != self._stamp:
                # Let queries on the old file finish: until every cursor is closed, DuckDB would
                # hand a new connection the old file's database instance.
                self._idle.wait_for(lambda: self._active == 0, timeout=30)
                if self._con is not None:
                    self._con.close()
                    self.reopened += 1
                self._con = None
                self._con, self._stamp, self._names = connect_read_only(self.path), stamp, None
                self._lacks_latest_runs = lacks_view(self._con)
            self._active += 1
            # A cursor is a connection of its own to the same database: one per query keeps
            # threads from sharing a result set.
            cursor = self._con.cursor()
            if self._lacks_latest_runs:  # a file from before ml_latest_runs: each cursor needs its copy
                create_temporary_view(cursor)
            return cursor, self._stamp

    def _release(self, cursor: duckdb.DuckDBPyConnection) -> None:
        cursor.close()
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    def query(self, query_name: str, /, **params: object) -> pl.DataFrame:
        """Run the named query with ``params`` bound; a DuckDB failure becomes one sentence.

        An answer already given on this file is answered from the cache (see AnswerCache)."""
        sql = QUERIES[query_name]
        cursor, stamp = self._cursor()
        key = AnswerCache.key(query_name, params) if self.cache is not None else None
        try:
            if key is not None and (cached := self.cache.get(stamp, key)) is not None:
                return cached
            answer = cursor.sql(sql, params=params or None).pl()
        except duckdb.Error as exc:
            raise WarehouseError(f"The dashboard's query '{query_name}' failed: {first_line(exc)}") from exc
        finally:
            self._release(cursor)
        if key is not None:
            self.cache.put(stamp, key, answer)
        return answer

    def has(self, name: str) -> bool:
        """True when the warehouse has a table or view of that name (pages without data say so).

        The names are read once per opened file: pages ask several times per request, and the
        catalogue only changes when a rebuild or retrain swaps the file (which reopens)."""
        names = self._names
        if names is None or self._stamp != self._file_stamp():
            names = frozenset(self.query("object_names").get_column("name").to_list())
            self._names = names
        return name in names

    def stamp(self) -> tuple[int, int, int]:
        """Identity of the warehouse file now on disk: it changes when a rebuild or retrain swaps it."""
        return self._file_stamp()

    def close(self) -> None:
        with self._idle:
            if self._con is not None:
                self._con.close()
                self._con = None


_READER: WarehouseReader | None = None


def configure(path: Path) -> WarehouseReader:
    """Point the dashboard at a warehouse file (once, when the app is created)."""
    global _READER
    if _READER is not None:
        _READER.close()
    else:
        atexit.register(lambda: _READER and _READER.close())  # close DuckDB before the interpreter goes
    _READER = WarehouseReader(path)
    return _READER


def reader() -> WarehouseReader:
    if _READER is None:
        raise WarehouseError("The dashboard has no warehouse: start it with `segrisk serve --db PATH`.")
    return _READER

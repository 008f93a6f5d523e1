"""Build the warehouse from a dataset spec, atomically.

Layers, all in one DuckDB file:

* ``raw_<source>``        every row as loaded, with lineage (file, row, sha256, loaded_at);
* ``quarantine_<source>`` rows that broke a rule, with the rule and a one-sentence reason;
* ``stg_<source>``        a view: typed canonical columns of the rows that were kept;
* ``customers``           the mart models read: one row per customer with engineered features;
* ``meta_*``              what was built, from what, how long it took, and what the data supports.

The build writes a new file beside the target and renames it over the target only once the
data tests pass, so a failed or interrupted build leaves the previous warehouse byte-for-byte
untouched, and readers holding the old file open are not disturbed.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from . import SCHEMA_VERSION, __version__
from .checks import CheckResult, run_checks
from .db import connect_for_build, first_line, quote_ident
from .dictionary import (
    CUSTOMERS_GRAIN,
    LINEAGE_DESCRIPTIONS,
    META_TABLES,
    QUARANTINE_COLUMNS,
    SOURCE_TABLE_GRAIN,
    comment_columns,
    comment_table,
)
from .errors import BuildError, SegriskError
from .features import (
    FEATURE_DESCRIPTIONS,
    TARGET,
    age_band,
    log_description,
    log_features,
    ratio_features,
    snapshot_features,
    transaction_features,
)
from .history import carry_over_history
from .locks import exclusive_writer
from .marts import build_customer_months, refresh_customer_profile, refresh_fact_marts
from .sources import (
    QueryScan,
    SourceFile,
    check_build_memory,
    latest_timestamp,
    resolve_files,
    row_count,
    scan_file,
    scan_query,
    sha256_of,
    spill_area,
)
from .spec import CUSTOMER_KEY, SNAPSHOT_MEASURES, DatasetSpec, SourceSpec
from .staging import (
    FILE_ROW,
    PARSE_ERROR,
    REJECTED,
    SOURCE_FILE,
    SOURCE_ROW,
    SUSPECT,
    column_rules,
    describe_rejections,
    explain_rejections,
    flag_rejections,
    malformed_record_rule,
    polars_typed,
    staged_columns,
    staging_view_sql,
    wide_snapshots_frame,
    wide_snapshots_view_sql,
    with_typed,
)

Progress = Callable[[str], None]

_QUARANTINE_DDL = "source_file VARCHAR, source_row BIGINT, raw_row BIGINT, rule VARCHAR, column_name VARCHAR, reason VARCHAR, raw_record VARCHAR"
_META_DDL = {
    "meta_builds": "build_id VARCHAR, spec_name VARCHAR, spec_text VARCHAR, data_dir VARCHAR, "
    "started_at TIMESTAMP, finished_at TIMESTAMP, duration_seconds DOUBLE, schema_version INTEGER, "
    "segrisk_version VARCHAR, as_of_date DATE",
    "meta_sources": "source VARCHAR, source_file VARCHAR, file_format VARCHAR, size_bytes BIGINT, "
    "sha256 VARCHAR, rows_read BIGINT, first_row BIGINT, last_row BIGINT, loaded_at TIMESTAMP",
    "meta_row_counts": "source VARCHAR, raw_table VARCHAR, staged_view VARCHAR, quarantine_table VARCHAR, "
    "rows_in BIGINT, rows_out BIGINT, rows_rejected BIGINT",
    "meta_step_durations": "step_order INTEGER, step VARCHAR, seconds DOUBLE",
    "meta_capabilities": "capability VARCHAR, is_supported BOOLEAN, reason VARCHAR",
    "meta_columns": "column_name VARCHAR, origin VARCHAR, role VARCHAR, measure VARCHAR, "
    "is_model_feature BOOLEAN, is_skewed_amount BOOLEAN, is_product_flag BOOLEAN",
    "meta_check_results": "check_name VARCHAR, table_name VARCHAR, passed BOOLEAN, failing_rows BIGINT, detail VARCHAR",
}


@dataclass
class SourceResult:
    """What loading one source produced."""

    kind: str
    rows_in: int
    rows_rejected: int
    quarantine_by_rule: dict[str, int]
    staged: pl.LazyFrame | None = None
    features: pl.DataFrame | None = None

    @property
    def rows_out(self) -> int:
        return self.rows_in - self.rows_rejected


@dataclass
class _Scanned:
    """A source's files, opened: both the raw write and the validation start from here."""

    files: list[SourceFile]
    frames: list[pl.LazyFrame]
    offsets: list[int]
    rows: int
    query: QueryScan | None = None  # a query source: one frame, the query's result, over these files

    @property
    def raw(self) -> pl.LazyFrame:
        return pl.concat(self.frames, how="diagonal_relaxed") if len(self.frames) > 1 else self.frames[0]

    @property
    def size_bytes(self) -> int:
        return sum(file.path.stat().st_size for file in self.files)


@dataclass
class BuildSummary:
    """What a build did, for the CLI to print and tests to inspect."""

    build_id: str
    db_path: Path
    spec_name: str
    as_of_date: date
    customers: int
    sources: list[SourceResult]
    capabilities: dict[str, bool]
    checks: list[CheckResult]
    steps: list[tuple[str, float]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.steps)


class _Steps:
    """Times each build step and reports it as a progress line."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.done: list[tuple[str, float]] = []

    def run(self, name: str, action: Callable[[], object]) -> object:
        started = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - started
        self.done.append((name, seconds))
        self.progress(f"  {name} ({seconds:.1f} s)")
        return result


class _RawWriter:
    """Stores the raw tables on a worker thread, over its own DuckDB connection, in queued order.

    Storing rows in DuckDB and validating them in Polars are both CPU-bound: with the raw
    tables stored here back to back while the main thread validates every source and builds
    and writes the mart, both cores stay busy until the largest table is in.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con.cursor()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segrisk-raw")
        self.queued: list[Future[None]] = []

    def submit(self, store: Callable[..., None], *args: object) -> None:
        """Queue ``store(connection, *args)``."""
        self.queued.append(self.pool.submit(store, self.con, *args))

    def wait(self) -> None:
        """Block until every queued table is stored; re-raise the first failure."""
        for future in self.queued:
            future.result()

    def __enter__(self) -> _RawWriter:
        return self

    def __exit__(self, failure: type[BaseException] | None, *_: object) -> None:
        if failure is not None:
            # Stop writing to a file that is about to be deleted, rather than finish first.
            for future in self.queued:
                future.cancel()
            self.con.interrupt()
        self.pool.shutdown(wait=True)
        self.con.close()


def build_warehouse(
    spec: DatasetSpec,
    spec_text: str,
    data_dir: Path,
    db_path: Path,
    progress: Progress | None = None,
) -> BuildSummary:
    """Build the warehouse for ``spec`` from ``data_dir`` into ``db_path``, replacing it atomically."""
    say = progress or (lambda _message: None)
    db_path = db_path.resolve()
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # One writer at a time: a model run or build finishing meanwhile would otherwise be lost.
    with exclusive_writer(db_path, say):
        temp_path = db_path.with_name(f".{db_path.name}.building-{os.getpid()}")
        _remove_database(temp_path)
        say(f"Building {db_path.name} from spec '{spec.name}' (data: {data_dir})")
        try:
            con = connect_for_build(temp_path)
            try:
                # Owner-only, as the store beside it: a warehouse holds every customer's data. A mode
                # an admin gave the file on purpose (g+r for an analysts' group) is kept by rebuilds.
                final_mode = stat.S_IMODE(os.stat(db_path).st_mode) if db_path.exists() else 0o600
                os.chmod(temp_path, 0o600)  # owner-only while it is being written
                with spill_area(db_path):  # text files are read into it in batches; removed on every path
                    summary = _Builder(con, spec, spec_text, data_dir, db_path, say).run()
                con.execute("CHECKPOINT")
            finally:
                con.close()
            os.chmod(temp_path, final_mode)
            os.replace(temp_path, db_path)
            _remove_database(temp_path)  # a .wal DuckDB may have left beside it
            return summary
        except SegriskError:
            _remove_database(temp_path)
            raise
        except duckdb.Error as exc:
            _remove_database(temp_path)
            raise BuildError(
                f"The build failed in DuckDB: {first_line(exc)}; the previous warehouse is unchanged."
            ) from exc
        except pl.exceptions.PolarsError as exc:
            _remove_database(temp_path)
            raise BuildError(
                f"The build failed in Polars: {first_line(exc)}; the previous warehouse is unchanged."
            ) from exc
        except OSError as exc:  # a full disk, a folder made read-only meanwhile
            _remove_database(temp_path)
            raise BuildError(
                f"The build failed writing files: {exc.strerror or exc} ({exc.filename or db_path.parent}); "
                "the previous warehouse is unchanged."
            ) from exc
        except BaseException:
            _remove_database(temp_path)
            raise


def _sorted_by_customer_then(raw: pl.LazyFrame, source: SourceSpec, time_column: str | None) -> bool:
    """Whether the source rows come ordered by customer, then time (exports usually do).

    One cheap pass lets the per-customer aggregation skip a sort of the whole table; rows with
    a missing key or time are treated as breaking the order. Without ``time_column`` only the
    customer order is checked: order-free aggregates (sums, counts, extremes) need no more, and
    reading one integer column costs a fifth of reading two.
    """
    schema = raw.collect_schema()
    key = pl.col(CUSTOMER_KEY)
    # Compared with the previous row, not subtracted from it: ids may be text (C10001, LP001002).
    previous_key = key.shift(1)
    columns = [polars_typed(source.column(CUSTOMER_KEY), schema, source.csv)]
    in_order = key > previous_key
    present = key.is_not_null().all()
    if time_column is None:
        in_order = key >= previous_key
    else:
        columns.append(polars_typed(source.column(time_column), schema, source.csv))
        when = pl.col(time_column)
        in_order = in_order | ((key == previous_key) & (when >= when.shift(1)))
        present = present & when.is_not_null().all()
    ordered = raw.select(columns).select(in_order.slice(1).all() & present)
    return bool(ordered.collect(engine="streaming").item())


def _one_line(text: str, limit: int = 80) -> str:
    """A value shown inside a one-line message: line breaks written out, long text cut."""
    shown = text.replace("\r", "\\r").replace("\n", "\\n")
    return shown if len(shown) <= limit else shown[:limit] + "…"


def _remove_database(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".wal")):
        candidate.unlink(missing_ok=True)


class _Builder:
    """One build's state: the connection, the spec and what each source produced."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        spec: DatasetSpec,
        spec_text: str,
        data_dir: Path,
        db_path: Path,
        say: Progress,
    ) -> None:
        self.con = con
        self.spec = spec
        self.spec_text = spec_text
        self.data_dir = data_dir
        self.db_path = db_path
        self.say = say
        self.steps = _Steps(say)
        self.started = datetime.now(UTC).replace(tzinfo=None)
        self.results: dict[str, SourceResult] = {}
        self.file_rows: list[tuple] = []
        self.known_keys: pl.Series | None = None
        self.raw_schemas: dict[str, pl.Schema] = {}
        self.raw_frames: dict[str, pl.LazyFrame] = {}
        self.as_of = self.started.date()

    # -- orchestration -----------------------------------------------------------------
    def run(self) -> BuildSummary:
        check_build_memory(
            {
                kind: resolve_files(kind, source, self.data_dir)
                for kind, source in self.spec.sources()
                if source.query is None
            }
        )
        self._create_meta_tables()
        scanned = {kind: self._scan(kind, source) for kind, source in self.spec.sources()}
        with _RawWriter(self.con) as writer:
            # Smallest first: what DuckDB has left once Polars is done is then the bulk of the
            # largest table, which it spreads over both cores beside the mart's write.
            for kind in sorted(scanned, key=lambda k: scanned[k].size_bytes):
                # Fingerprints are taken here: the writer's queue is the build's longest path.
                fingerprints = [sha256_of(file.path) for file in scanned[kind].files]
                writer.submit(self._write_raw, kind, scanned[kind], fingerprints)
            for kind, source in self.spec.sources():
                self.steps.run(f"{kind}: validate, stage", lambda k=kind, s=source: self._load_source(k, s, scanned[k]))
            if self.spec.customers is not None and self.spec.customers.wide_snapshots is not None:
                self.steps.run("snapshots: unpivot per-period columns", self._wide_snapshots)
            customers = self.steps.run("customers: engineer features", self._customers_mart)
            self.steps.run("raw: store every source row as loaded", writer.wait)
        assert isinstance(customers, pl.DataFrame)
        self._create_views()
        capabilities = self._capabilities(customers)
        self.steps.run("comments: data dictionary", self._comment_all)
        self.steps.run("history: keep model runs and persona labels", self._keep_history)
        self.steps.run("marts: dashboard marts", self._dashboard_marts)
        checks = self.steps.run("checks: data tests", lambda: run_checks(self.con))
        assert isinstance(checks, list)
        failed = [check for check in checks if not check.passed]
        if failed:
            detail = "; ".join(f"{c.check_name} on {c.table_name}: {c.detail}" for c in failed[:3])
            raise BuildError(f"The build's data tests failed ({detail}); the previous warehouse is unchanged.")
        build_id = self._record_build(checks)
        summary = BuildSummary(
            build_id=build_id,
            db_path=self.db_path,
            spec_name=self.spec.name,
            as_of_date=self.as_of,
            customers=customers.height,
            sources=list(self.results.values()),
            capabilities=capabilities,
            checks=checks,
            steps=self.steps.done,
        )
        return summary

    def _create_meta_tables(self) -> None:
        for table, ddl in _META_DDL.items():
            self.con.execute(f"CREATE TABLE {table} ({ddl})")

    # -- sources -----------------------------------------------------------------------
    def _scan(self, kind: str, source: SourceSpec) -> _Scanned:
        """Open the source's files (a missing or unusable one stops the build before any work)."""
        if source.query is not None:
            query = scan_query(kind, source, self.data_dir)
            return _Scanned(query.inputs, [query.frame], [0], row_count(query.frame), query)
        files = resolve_files(kind, source, self.data_dir)
        frames: list[pl.LazyFrame] = []
        offsets: list[int] = []
        offset = 0
        for file in files:
            frame = scan_file(kind, file, source, row_offset=offset)
            frames.append(frame)
            offsets.append(offset)
            offset += row_count(frame)
        return _Scanned(files, frames, offsets, offset)

    def _resolve_target(self, kind: str, source: SourceSpec, raw: pl.LazyFrame) -> SourceSpec:
        """The source with its target's values checked against the data, and its non-default value
        taken from the data when the spec names only the default one.

        A ``positive`` value that never occurs (``yes`` on a 0/1 column) would make every row
        "good"; a third value (``unknown``) would silently count as no default. Both stop the
        build with the values seen, unless ``negative`` declares the others, when rows holding
        any other value are quarantined.
        """
        target = next((c for c in source.columns if c.role == "target"), None)
        if target is None:
            return source
        label = pl.col(target.source_columns[0]).cast(pl.String).str.strip_chars().str.to_lowercase()
        counts = (
            raw.select(label.alias("value"))
            .drop_nulls()
            .group_by("value")
            .len()
            .sort(["len", "value"], descending=[True, False])
        )
        seen = dict(counts.collect().iter_rows())
        where = f"{kind}.{target.name} (file column '{target.source_columns[0]}')"
        listed = ", ".join(f"'{value}' ({count:,})" for value, count in list(seen.items())[:8])
        positive = ", ".join(f"'{value}'" for value in target.positive_values)
        if not seen:
            raise BuildError(
                f"{where}: no row has a value, so no default outcome is known; the previous warehouse is unchanged."
            )
        if not set(target.positive_values) & set(seen):
            raise BuildError(
                f"{where}: no row holds the default value {positive} (positive); the values seen are {listed}: "
                "set positive to the one that means default; the previous warehouse is unchanged."
            )
        if target.negative_values:
            return source
        others = [value for value in seen if value not in target.positive_values]
        if len(others) != 1:
            problem = "every row is a default" if not others else f"the values seen are {listed}"
            raise BuildError(
                f"{where}: {problem}, and the spec names only the default value {positive}: "
                "set negative to the value(s) that mean no default (rows with any other value are then quarantined); "
                "the previous warehouse is unchanged."
            )
        resolved = target.model_copy(update={"negative": others})
        return source.model_copy(update={"columns": [resolved if c is target else c for c in source.columns]})

    def _guard_rejections(self, kind: str, source: SourceSpec, rows_in: int, quarantine: pl.DataFrame) -> None:
        """Stop when a source loses more than its allowed share of rows: the spec, not the data, is wrong."""
        if not rows_in or quarantine.height <= source.max_rejected_share * rows_in:
            return
        rule, column = quarantine.group_by("rule", "column_name").len().sort("len", descending=True).row(0)[:2]
        examples = (
            quarantine.filter((pl.col("rule") == rule) & (pl.col("column_name") == column))
            .get_column("reason")
            .unique(maintain_order=True)
            .head(3)
            .to_list()
        )
        examples = [_one_line(example) for example in examples]
        raise BuildError(
            f"{kind}: {quarantine.height:,} of {rows_in:,} rows ({quarantine.height / rows_in:.0%}) would be quarantined, "
            f"more than the {source.max_rejected_share:.0%} allowed (max_rejected_share); most broke {rule} on {column}, "
            f"e.g. {'; '.join(examples)}. Check that column's type, format and rules in the spec; "
            "the previous warehouse is unchanged."
        )

    def _load_source(self, kind: str, source: SourceSpec, scanned: _Scanned) -> None:
        files = scanned.files
        raw = scanned.raw
        resolved = self._resolve_target(kind, source, raw)
        if resolved is not source:
            source = resolved
            self.spec = self.spec.model_copy(update={kind: source})  # the stg_ view reads the same values
        self.raw_schemas[kind] = raw.drop(SOURCE_FILE, FILE_ROW, SOURCE_ROW, PARSE_ERROR, strict=False).collect_schema()
        self.raw_frames[kind] = raw
        rows_in = scanned.rows
        rules = column_rules(source, self.started, self.raw_schemas[kind])
        if PARSE_ERROR in raw.collect_schema():
            rules.insert(0, malformed_record_rule())
        known = self.known_keys if kind != "customers" else None
        unique_key = kind in ("customers", "applications")
        typed = with_typed(raw, source)
        flagged = flag_rejections(typed, rules, unique_key=unique_key, known_keys=known)
        raw_columns = list(self.raw_schemas[kind])
        quarantine_lf = describe_rejections(flagged.filter(pl.col(REJECTED)), rules, known_keys=known)
        staged = staged_columns(flagged.filter(~pl.col(REJECTED)), source)

        started = time.perf_counter()
        result = SourceResult(kind, rows_in, 0, {})
        if kind in ("transactions", "snapshots"):
            if kind == "transactions":
                # A query's columns are its own: the input files' Parquet statistics do not describe them.
                self.as_of = self._as_of_date(raw, source, [] if scanned.query is not None else files)
            features = self._event_features(kind, source, raw)
            screened = flag_rejections(typed, rules, unique_key=False, known_keys=known, screened=True)
            quarantine, result.features = self._stream(
                screened.select(pl.col(REJECTED).sum(), pl.col(SUSPECT).sum()),
                features(staged_columns(screened.filter(~pl.col(REJECTED)), source)),
                quarantine_lf,
                features(staged),
            )
        else:
            quarantine, staged_df = pl.collect_all([quarantine_lf, staged])
            result.staged = staged_df.lazy()
            if kind == "customers" or (kind == "applications" and self.known_keys is None):
                self.known_keys = staged_df.get_column(CUSTOMER_KEY)
        quarantine = explain_rejections(quarantine, rules, raw_columns, known_keys=known)
        if scanned.query is not None and scanned.query.malformed.height:
            # Records of the query's tables that did not parse never reached the query: kept here.
            quarantine = pl.concat([quarantine, scanned.query.malformed])
            rows_in += scanned.query.malformed.height
            result.rows_in = rows_in
        self._guard_rejections(kind, source, rows_in, quarantine)
        self.say(f"  {kind}: {rows_in:,} rows validated in {time.perf_counter() - started:.1f} s")
        self._write_quarantine(kind, quarantine)
        result.rows_rejected = quarantine.height
        result.quarantine_by_rule = dict(quarantine.group_by("rule").len().sort("rule").iter_rows())
        self.results[kind] = result
        if result.rows_rejected:
            rules_text = ", ".join(f"{rule} {count:,}" for rule, count in result.quarantine_by_rule.items())
            self.say(f"  {kind}: {result.rows_rejected:,} rows quarantined ({rules_text})")

    @staticmethod
    def _stream(
        screened_counts: pl.LazyFrame,
        screened_features: pl.LazyFrame,
        quarantine: pl.LazyFrame,
        features: pl.LazyFrame,
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The quarantine and the features of an event source, reading its rows once when they are clean.

        The first pass counts rejected rows and computes features reading only the columns the
        rules and features use, and judges allowed values on the raw text (trimming 50M strings
        costs more than the rest of the rules together). Where no row is suspect, its flags are
        exact and, with no row rejected, it is the only pass. Otherwise a second pass describes
        the rejected rows (the quarantine keeps every raw column) and, if a row was suspect,
        computes the features again from exactly judged rows.
        """
        counts, features_df = pl.collect_all([screened_counts, screened_features], engine="streaming")
        rejected, suspect = counts.row(0)
        if suspect:
            quarantine_df, features_df = pl.collect_all([quarantine, features], engine="streaming")
            return quarantine_df, features_df
        if rejected:
            return quarantine.collect(engine="streaming"), features_df
        return quarantine.clear().collect(), features_df

    @staticmethod
    def _write_raw(con: duckdb.DuckDBPyConnection, kind: str, scanned: _Scanned, fingerprints: list[str]) -> None:
        """Store every row as loaded; Parquet goes through DuckDB's own reader, the fastest path.

        Rows are appended in source order and never changed, so DuckDB's ``rowid + 1`` is the
        row's ``_source_row``: lineage for free, where a stored column would cost seconds per
        50 million rows. Runs on the raw writer's thread, over its connection.
        """
        table = quote_ident(f"raw_{kind}")
        loaded_at = datetime.now(UTC).replace(tzinfo=None)
        files, offsets = scanned.files, scanned.offsets
        if scanned.query is not None:
            loaded = scanned.frames[0].drop(SOURCE_FILE, FILE_ROW, SOURCE_ROW).collect()  # noqa: F841 - DuckDB scans it by name
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM loaded")
            # Each input file's fingerprint; its rows reach raw_ only through the query, so no row range.
            for file, rows, sha256 in zip(files, scanned.query.input_rows, fingerprints, strict=True):
                con.execute(
                    "INSERT INTO meta_sources VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?)",
                    [kind, file.label, file.file_format, file.path.stat().st_size, sha256, rows, loaded_at],
                )
            return
        for index, (file, frame, offset, sha256) in enumerate(
            zip(files, scanned.frames, offsets, fingerprints, strict=True)
        ):
            verb = f"INSERT INTO {table} BY NAME" if index else f"CREATE TABLE {table} AS"
            if file.is_parquet:
                con.execute(f"{verb} SELECT * FROM read_parquet(?)", [str(file.path)])
            else:
                loaded = frame.drop(SOURCE_FILE, FILE_ROW, SOURCE_ROW, PARSE_ERROR, strict=False).collect()  # noqa: F841 - DuckDB scans it by name
                con.execute(f"{verb} SELECT * FROM loaded")
            if index == len(files) - 1:
                stored = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                rows = stored - offset
            else:
                rows = offsets[index + 1] - offset
            con.execute(
                "INSERT INTO meta_sources VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    kind,
                    file.label,
                    file.file_format,
                    file.path.stat().st_size,
                    sha256,
                    rows,
                    offset + 1,
                    offset + rows,
                    loaded_at,
                ],
            )

    def _write_quarantine(self, kind: str, quarantine: pl.DataFrame) -> None:
        table = quote_ident(f"quarantine_{kind}")
        self.con.execute(f"CREATE TABLE {table} ({_QUARANTINE_DDL})")
        if quarantine.height:
            self.con.execute(f"INSERT INTO {table} SELECT * FROM quarantine")

    def _create_views(self) -> None:
        """The stg_ views and row counts, once the raw and quarantine tables they read are stored."""
        for kind, source in self.spec.sources():
            result = self.results[kind]
            self.con.execute(
                staging_view_sql(f"stg_{kind}", f"raw_{kind}", f"quarantine_{kind}", source, self.raw_schemas[kind])
            )
            self.con.execute(
                "INSERT INTO meta_row_counts VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    kind,
                    f"raw_{kind}",
                    f"stg_{kind}",
                    f"quarantine_{kind}",
                    result.rows_in,
                    result.rows_out,
                    result.rows_rejected,
                ],
            )
        customers = self.spec.customers
        if customers is not None and customers.wide_snapshots is not None:
            self.con.execute(
                wide_snapshots_view_sql("stg_snapshots", "stg_customers", "raw_customers", customers.wide_snapshots)
            )

    def _as_of_date(self, raw: pl.LazyFrame, source: SourceSpec, files: list[SourceFile]) -> date:
        """The day after the last transaction with a valid (not future) timestamp.

        Native timestamps are read as they are, so when the Parquet statistics' latest value is
        not in the future it is the answer; otherwise (text timestamps, future values, files
        without statistics) the one timestamp column is scanned.
        """
        column = source.column("occurred_at")
        schema = raw.collect_schema()
        name = column.source_columns[0]
        if column.product_of is None and column.mapping is None and schema[name] == pl.Datetime("us"):
            latest = latest_timestamp(files, name)
            if latest is not None and latest <= self.started:
                return latest.date() + timedelta(days=1)
        occurred = polars_typed(column, schema, source.csv)
        last = raw.select(occurred).filter(pl.col("occurred_at") <= self.started).select(pl.col("occurred_at").max())
        value = last.collect(engine="streaming").item()
        return value.date() + timedelta(days=1) if value is not None else self.started.date()

    def _event_features(
        self, kind: str, source: SourceSpec, raw: pl.LazyFrame
    ) -> Callable[[pl.LazyFrame], pl.LazyFrame]:
        """The per-customer features of staged rows, with the source's order checked once."""
        if kind == "transactions":
            presorted = _sorted_by_customer_then(raw, source, None)  # the aggregates ignore time order
            has_invoice = source.has_column("invoice_id")
            return lambda staged: transaction_features(staged, self.as_of, has_invoice=has_invoice, presorted=presorted)
        presorted = _sorted_by_customer_then(raw, source, "period")
        measures = [c.name for c in source.columns if c.name in SNAPSHOT_MEASURES]
        return lambda staged: snapshot_features(staged, measures, presorted=presorted)

    def _wide_snapshots(self) -> None:
        customers = self.spec.customers
        assert customers is not None and customers.wide_snapshots is not None
        wide = customers.wide_snapshots
        result = self.results["customers"]
        assert result.staged is not None
        # Raw per-period columns of the kept customers, keyed by their canonical customer_id.
        kept = result.staged.select(CUSTOMER_KEY, SOURCE_ROW)
        raw = self.raw_frames["customers"].drop(SOURCE_FILE, FILE_ROW)
        joined = kept.join(raw, on=SOURCE_ROW, how="inner")
        snapshots = wide_snapshots_frame(joined, wide).collect()
        self.results["snapshots"] = SourceResult(
            "snapshots", snapshots.height, 0, {}, features=snapshot_features(snapshots.lazy(), wide.measures).collect()
        )
        self.say(f"  snapshots: {snapshots.height:,} rows from {len(wide.periods)} periods")

    # -- the customers mart ------------------------------------------------------------
    def _base_customers(self) -> pl.LazyFrame:
        customers = self.results.get("customers")
        applications = self.results.get("applications")
        lineage = [SOURCE_ROW]
        if customers is not None and customers.staged is not None:
            base = customers.staged.drop(lineage)
            if applications is not None and applications.staged is not None:
                base = base.join(applications.staged.drop(lineage), on=CUSTOMER_KEY, how="left")
            return base
        if applications is not None and applications.staged is not None:
            return applications.staged.drop(lineage)
        keys = [result.features.select(CUSTOMER_KEY) for result in self.results.values() if result.features is not None]
        return pl.concat(keys).unique().sort(CUSTOMER_KEY).lazy()

    def _spec_columns(self) -> dict[str, tuple[str, str | None, str]]:
        """Canonical spec columns of the customer-level sources: name -> (role, measure, description)."""
        columns: dict[str, tuple[str, str | None, str]] = {}
        for kind in ("customers", "applications"):
            source = self.spec.source(kind)
            if source is None:
                continue
            for column in source.columns:
                unit = f" Unit: {column.unit}." if column.unit else ""
                columns.setdefault(column.name, (column.role, column.measure, column.description + unit))
        return columns

    def _customers_mart(self) -> pl.DataFrame:
        mart = self._base_customers()
        target = self.spec.target
        if target is not None and target.name in mart.collect_schema():
            mart = mart.rename({target.name: TARGET})
        for kind in ("transactions", "snapshots"):
            result = self.results.get(kind)
            if result is not None and result.features is not None:
                mart = mart.join(result.features.lazy(), on=CUSTOMER_KEY, how="left")
        if "txn_count" in mart.collect_schema():
            mart = mart.with_columns(
                pl.col(c).fill_null(0) for c in ("txn_count", "rfm_frequency", "rfm_monetary", "spend_12m")
            )
        spec_columns = self._spec_columns()
        measures: dict[str, list[str]] = {}
        for name, (_, measure, _) in spec_columns.items():
            if measure is not None:
                measures.setdefault(measure, []).append(name)
        mart = ratio_features(mart, measures)
        schema = mart.collect_schema()
        skewed = [
            name
            for name, (role, measure, _) in spec_columns.items()
            if (measure is not None or role == "amount") and name in schema
        ] + [name for name in ("total_debt", "total_deposits", "rfm_monetary", "spend_12m") if name in schema]
        mart = log_features(mart, skewed)
        if "age" in schema:
            mart = age_band(mart)
        # One chunk: DuckDB splits it across threads, where a sort's many small chunks would be
        # appended one at a time (3 s instead of 6 s for the 1M x 85 mart).
        customers = mart.sort(CUSTOMER_KEY).collect().rechunk()
        self.con.execute("CREATE TABLE customers AS SELECT * FROM customers")
        self._record_columns(customers, spec_columns, set(skewed))
        return customers

    def _product_flags(self) -> list[str]:
        """The customer-level yes/no columns the spec declares product holdings (``product = true``)."""
        return sorted(
            {
                column.name
                for kind in ("customers", "applications")
                if (source := self.spec.source(kind)) is not None
                for column in source.columns
                if column.product
            }
        )

    def _record_columns(
        self, customers: pl.DataFrame, spec_columns: dict[str, tuple[str, str | None, str]], skewed: set[str]
    ) -> None:
        target = self.spec.target
        products = set(self._product_flags())
        rows = []
        for name, dtype in customers.schema.items():
            if name == CUSTOMER_KEY:
                rows.append((name, "key", "id", None, False, False, False))
            elif name == TARGET and target is not None:
                rows.append((name, "spec", "target", None, False, False, False))
            elif name in spec_columns:
                role, measure, _ = spec_columns[name]
                usable = role in ("numeric", "categorical", "amount")
                rows.append((name, "spec", role, measure, usable, name in skewed, name in products))
            else:
                usable = dtype.is_numeric() and not name.startswith("log_") or name == "age_band"
                usable = usable and name not in ("first_txn_at", "last_txn_at")
                rows.append((name, "engineered", "feature", None, usable, name in skewed, False))
        self.con.executemany("INSERT INTO meta_columns VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def _capabilities(self, customers: pl.DataFrame) -> dict[str, bool]:
        """What ``train all`` will run on this warehouse, and why or why not: it reads these rows
        and nothing else to decide, so the table and the run cannot disagree."""
        spec = self.spec
        numeric_features = [
            name for name, dtype in customers.schema.items() if dtype.is_numeric() and name != CUSTOMER_KEY
        ]
        has_target = TARGET in customers.columns
        has_attributes = spec.customers is not None or spec.applications is not None
        defaults = int(customers.get_column(TARGET).sum()) if has_target else 0
        personas = has_attributes and len(numeric_features) >= 2 and customers.height >= 20
        risk_model = has_target and 0 < defaults < customers.height
        products = self._product_flags()
        target_text = (
            f"has {defaults:,} defaults among {customers.height:,} customers"
            if has_target
            else "the spec has no target"
        )
        capabilities = {
            "personas": (
                personas,
                "needs a customer or application file with 2+ numeric features and 20+ customers; "
                + (
                    f"has {len(numeric_features)} features and {customers.height:,} customers"
                    if has_attributes
                    else "the spec has only transactions or snapshots (use RFM)"
                ),
            ),
            "rfm": (
                spec.transactions is not None,
                "needs transactions; " + ("has them" if spec.transactions is not None else "the spec has none"),
            ),
            "risk_model": (risk_model, "needs a target with both outcomes; " + target_text),
            "early_warnings": (
                risk_model,
                "needs a PD model (a target with both outcomes: the grade and stability rules re-score customers); "
                + target_text
                + "; "
                + (
                    "periodic snapshots feed the payment and score rules"
                    if spec.has_snapshots
                    else "no snapshots, so only the rules on customer columns can raise alerts"
                ),
            ),
            "cross_sell": (
                personas and bool(products),
                "needs personas and product flags declared in the spec (product = true); "
                + (f"has {len(products)} ({', '.join(products)})" if products else "the spec declares none")
                + ("" if personas else "; no personas can be built"),
            ),
            "statistics": (
                bool(numeric_features),
                f"needs numeric columns in the customers mart; has {len(numeric_features)}; tests against default "
                + ("run on the target" if has_target else "need a target, which the spec has not"),
            ),
        }
        self.con.executemany(
            "INSERT INTO meta_capabilities VALUES (?, ?, ?)",
            [(name, ok, reason) for name, (ok, reason) in capabilities.items()],
        )
        return {name: ok for name, (ok, _) in capabilities.items()}

    # -- comments and bookkeeping ------------------------------------------------------
    def _comment_all(self) -> None:
        con = self.con
        for kind, schema in self.raw_schemas.items():
            source = self.spec.source(kind)
            assert source is not None
            grain = SOURCE_TABLE_GRAIN[kind]
            comment_table(
                con,
                f"raw_{kind}",
                f"Raw {kind} as loaded from the source files: {grain}, rejected rows included. "
                "Rows are in load order: rowid + 1 is the row's _source_row (see meta_sources for its file).",
            )
            used_by = {src: column.name for column in source.columns for src in column.source_columns}
            raw_comments = {
                name: f"Source column '{name}' as loaded"
                + (f" (staged as {used_by[name]})." if name in used_by else " (not used by the spec).")
                for name in schema
            }
            comment_columns(con, f"raw_{kind}", raw_comments)
            comment_table(
                con,
                f"stg_{kind}",
                f"Staged {kind}: {grain}; typed canonical columns of the raw rows that passed validation.",
                view=True,
            )
            staged_comments = {
                column.name: column.description + (f" Unit: {column.unit}." if column.unit else "")
                for column in source.columns
            }
            staged_comments |= LINEAGE_DESCRIPTIONS
            comment_columns(con, f"stg_{kind}", staged_comments)
            comment_table(
                con, f"quarantine_{kind}", f"Rejected {kind} rows: one row per rejected source row, with why."
            )
            comment_columns(con, f"quarantine_{kind}", QUARANTINE_COLUMNS)
        if self.spec.customers is not None and self.spec.customers.wide_snapshots is not None:
            wide = self.spec.customers.wide_snapshots
            comment_table(
                con,
                "stg_snapshots",
                "Staged snapshots: one row per customer per period, unpivoted from per-period columns of the customer file.",
                view=True,
            )
            comment_columns(
                con,
                "stg_snapshots",
                {
                    CUSTOMER_KEY: "The customer key.",
                    "period": "First day of the period the values describe.",
                    "period_index": "1 for the first period listed in the spec (the latest), counting on.",
                }
                | {name: m.description + (f" Unit: {m.unit}." if m.unit else "") for name, m in wide.measures.items()},
            )
        comment_table(con, "customers", CUSTOMERS_GRAIN)
        spec_columns = self._spec_columns()
        mart_comments: dict[str, str] = {}
        for (name,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'customers' ORDER BY column_index"
        ).fetchall():
            if name == CUSTOMER_KEY:
                mart_comments[name] = "The customer key (unique, never null)."
            elif name in FEATURE_DESCRIPTIONS:
                mart_comments[name] = FEATURE_DESCRIPTIONS[name]
            elif name in spec_columns:
                mart_comments[name] = spec_columns[name][2]
            elif name.startswith("log_"):
                mart_comments[name] = log_description(name.removeprefix("log_"))
        comment_columns(con, "customers", mart_comments)
        for table, (grain, columns) in META_TABLES.items():
            comment_table(con, table, grain)
            comment_columns(con, table, columns)

    def _keep_history(self) -> None:
        copied = carry_over_history(self.con, self.db_path, self.spec.name)
        if copied:
            self.say(f"  kept {len(copied)} model tables and views from the previous warehouse")

    def _dashboard_marts(self) -> None:
        build_customer_months(self.con)
        refresh_customer_profile(self.con)
        refresh_fact_marts(self.con)

    def _record_build(self, checks: list[CheckResult]) -> str:
        digest = hashlib.sha256(self.spec_text.encode())
        for (sha,) in self.con.execute("SELECT sha256 FROM meta_sources ORDER BY source, source_file").fetchall():
            digest.update(sha.encode())
        build_id = f"{self.started:%Y%m%dT%H%M%SZ}-{digest.hexdigest()[:10]}"
        finished = datetime.now(UTC).replace(tzinfo=None)
        self.con.execute(
            "INSERT INTO meta_builds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                build_id,
                self.spec.name,
                self.spec_text,
                str(self.data_dir),
                self.started,
                finished,
                (finished - self.started).total_seconds(),
                SCHEMA_VERSION,
                __version__,
                self.as_of,
            ],
        )
        self.con.executemany(
            "INSERT INTO meta_step_durations VALUES (?, ?, ?)",
            [(i + 1, name, seconds) for i, (name, seconds) in enumerate(self.steps.done)],
        )
        self.con.executemany(
            "INSERT INTO meta_check_results VALUES (?, ?, ?, ?, ?)",
            [(c.check_name, c.table_name, c.passed, c.failing_rows, c.detail) for c in checks],
        )
        return build_id

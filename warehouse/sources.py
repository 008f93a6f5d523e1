"""Read a source's files as they are, with lineage, and stop with one sentence when they can't be used."""

from __future__ import annotations

import codecs
import csv
import glob
import hashlib
import io
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

from . import settings
from .db import connect_for_source_query, first_line
from .errors import SourceError
from .spec import ROW_NUMBER_SOURCE, SourceSpec
from .staging import FILE_ROW, PARSE_ERROR, QUARANTINE_SCHEMA, SOURCE_FILE, SOURCE_ROW

#: The setting that caps an input file's size, in megabytes (1 MB = 1,000,000 bytes), and its default.
MAX_INPUT_ENV_VAR = settings.MAX_INPUT_MB.name
DEFAULT_MAX_INPUT_MB = settings.MAX_INPUT_MB.default

#: A text field longer than this quarantines its record (``malformed_row``, naming line, column and
#: length). A free-text note or a JSON blob of a few hundred thousand characters still loads: the csv
#: module's default cap of 131,072 characters would stop the build at one.
MAX_FIELD_CHARS = 500_000

# Beyond this a line or a quoted field stops the file: a missing closing quote or a file without
# line ends would otherwise be gathered into one string as large as the file.
_MAX_LINE_CHARS = 1 << 27
csv.field_size_limit(_MAX_LINE_CHARS)

_CHUNK_BYTES = 4 << 20  # bytes decoded at a time
_BATCH_RECORDS = 100_000  # records per batch written to the spill file ...
_BATCH_CHARS = 32 << 20  # ... or fewer, once they hold this many characters

#: The folder the current build spills read text files to (None outside a build: kept in memory).
_spill_folder: ContextVar[Path | None] = ContextVar("segrisk_spill_folder", default=None)


def max_input_bytes() -> int:
    """The largest input file a build reads: ``$SEGRISK_MAX_INPUT_MB`` megabytes, 4,096 unless set."""
    return settings.MAX_INPUT_MB.read(error=SourceError) * 1_000_000


#: A build holds the customer-grain sources (customers, applications) in memory, with their staging
#: and the customers mart: peak memory measured at 15.5 times the text file's size (a 343 MB
#: customers CSV built at 5.3 GB, ``bench_memory.py --build``). Transactions and snapshots are
#: aggregated per customer as they are read and are not counted (50 million transactions built at
#: 3.1 GB peak, ``bench_build.py``).
MEMORY_PER_INPUT_BYTE = 16
CUSTOMER_GRAIN_KINDS = ("customers", "applications")
BUILD_MEMORY_ENV_VAR = settings.BUILD_MEMORY_MB.name


def available_memory_bytes() -> int | None:
    """What a build may plan to use: ``$SEGRISK_BUILD_MEMORY_MB`` megabytes, else the operating
    system's MemAvailable (None where it cannot be read: no check then)."""
    megabytes = settings.BUILD_MEMORY_MB.read(error=SourceError)
    if megabytes is not None:
        return megabytes * 1_000_000
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_build_memory(files_by_kind: dict[str, list[SourceFile]]) -> None:
    """Stop before reading when the customer-grain files would need more memory than there is: a
    build killed by the out-of-memory killer says nothing (and on a shared server may take another
    process with it), so this one says why, with the figures, first."""
    grain = [(kind, file) for kind in CUSTOMER_GRAIN_KINDS for file in files_by_kind.get(kind, [])]
    needed = MEMORY_PER_INPUT_BYTE * sum(file.path.stat().st_size for _, file in grain)
    if not grain or needed < 1_000_000_000:  # under 1 GB: no need to ask
        return
    available = available_memory_bytes()
    if available is None or needed <= available:
        return
    largest_kind, largest = max(grain, key=lambda item: item[1].path.stat().st_size)
    raise SourceError(
        f"{largest_kind}: file {largest.label} is {largest.path.stat().st_size / 1e6:,.0f} MB; building the "
        f"customer-level sources needs about {needed / 1e9:,.1f} GB of memory ({MEMORY_PER_INPUT_BYTE} times "
        f"their size) and {available / 1e9:,.1f} GB is available: build on a machine with more memory, or set "
        f"{BUILD_MEMORY_ENV_VAR} to the megabytes this build may use to try anyway."
    )


@contextmanager
def spill_area(db_path: Path) -> Iterator[Path]:
    """A build's owner-only folder for the text files it reads (``.NAME.reading-PID`` beside the warehouse).

    Removed when the block ends, however it ends; folders of processes that no longer run (a
    build killed with ``kill -9``) are removed on entry. Call it holding the warehouse's write
    lock, so that no live build of this warehouse uses them.
    """
    pattern = re.compile(rf"\.{re.escape(db_path.name)}\.reading-(\d+)")
    for candidate in db_path.parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match and (int(match.group(1)) == os.getpid() or not _process_alive(int(match.group(1)))):
            shutil.rmtree(candidate, ignore_errors=True)
    folder = db_path.with_name(f".{db_path.name}.reading-{os.getpid()}")
    folder.mkdir(mode=0o700)
    token = _spill_folder.set(folder)
    try:
        yield folder
    finally:
        _spill_folder.reset(token)
        shutil.rmtree(folder, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid > 0
    return pid > 0


@dataclass(frozen=True)
class SourceFile:
    """One file of a source, resolved on disk."""

    path: Path
    label: str
    file_format: str

    @property
    def is_parquet(self) -> bool:
        return self.file_format == "parquet"


def resolve_files(kind: str, source: SourceSpec, data_dir: Path, names: list[str] | None = None) -> list[SourceFile]:
    """Expand the spec's file names (globs allowed) against the data folder."""
    found: list[SourceFile] = []
    limit = max_input_bytes()
    for name in source.files if names is None else names:
        pattern = str(data_dir / name)
        matches = sorted(glob.glob(pattern)) if any(ch in name for ch in "*?[") else [pattern]
        if not matches or not Path(matches[0]).is_file():
            raise SourceError(
                f"{kind}: file {name} was not found in {data_dir} (pass --data-dir with the folder that holds it)."
            )
        for match in matches:
            path = Path(match)
            size = path.stat().st_size
            if size == 0:
                raise SourceError(f"{kind}: file {path} is empty.")
            label = str(path.relative_to(data_dir)) if path.is_relative_to(data_dir) else str(path)
            if size > limit:
                raise SourceError(
                    f"{kind}: file {label} is {size / 1e6:,.1f} MB, more than the {limit // 1_000_000:,} MB "
                    f"an input file may be; set {MAX_INPUT_ENV_VAR} to a larger number of megabytes to read it."
                )
            found.append(SourceFile(path, label, source.file_format(name)))
    return found


def sha256_of(path: Path) -> str:
    """Fingerprint a source file without holding it in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scan_file(kind: str, file: SourceFile, source: SourceSpec, row_offset: int = 0) -> pl.LazyFrame:
    """The file's rows as loaded (text stays text for CSV), with lineage columns.

    ``_file_row`` is the 1-based data row in this file (the header is not counted, so a CSV's
    line number is ``_file_row + 1``); ``_source_row`` numbers the rows of all of a source's
    files in the order they are listed (``row_offset`` rows came before this file).
    Only ``_source_row`` is stored in the warehouse: one column per row is all that 50 million
    rows can afford, and ``meta_sources`` maps row ranges back to files.
    """
    if file.is_parquet:
        try:
            frame = pl.scan_parquet(file.path)
            frame.collect_schema()
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise SourceError(f"{kind}: file {file.label} is not a readable Parquet file ({exc}).") from exc
    elif file.file_format == "xlsx":
        frame = _read_excel(kind, file, source).lazy()
    else:
        frame = _read_csv(kind, file, source)
    frame = frame.with_row_index(FILE_ROW, offset=1).with_columns(
        pl.col(FILE_ROW).cast(pl.Int64),
        (pl.col(FILE_ROW).cast(pl.Int64) + row_offset).alias(SOURCE_ROW),
        pl.lit(file.label).alias(SOURCE_FILE),
    )
    if any(column.generated == "row_number" for column in source.columns):
        # Stored with the raw rows, so the stg_ view reads the same key the build judged.
        frame = frame.with_columns(pl.col(SOURCE_ROW).alias(ROW_NUMBER_SOURCE))
    _require_columns(kind, file, source, frame.collect_schema())
    return frame


@dataclass
class QueryScan:
    """A query source, run: its rows, the files its tables came from, and their malformed records."""

    frame: pl.LazyFrame
    inputs: list[SourceFile]
    input_rows: list[int]
    malformed: pl.DataFrame  # quarantine rows (QUARANTINE_SCHEMA) of input records that did not parse


def scan_query(kind: str, source: SourceSpec, data_dir: Path) -> QueryScan:
    """Run a source's read-only query over its named tables; its result is the source's rows.

    Each table is read as its file says (text stays text), so the query casts what it needs. A
    table's record that did not fit its header cannot reach the query; it is kept as a
    quarantine row of this source, with its file, row and line, so nothing is lost.
    """
    assert source.tables is not None and source.query is not None
    tables: dict[str, pl.DataFrame] = {}
    inputs: list[SourceFile] = []
    input_rows: list[int] = []
    malformed: list[pl.DataFrame] = []
    for table, name in source.tables.items():
        frames = []
        for file in resolve_files(kind, source, data_dir, [name]):
            frame = _read_whole(kind, file, source)
            inputs.append(file)
            input_rows.append(frame.height)
            if PARSE_ERROR in frame.columns:
                fields = [c for c in frame.columns if c != PARSE_ERROR]
                malformed.append(
                    frame.with_row_index("_record", offset=1)
                    .filter(pl.col(PARSE_ERROR).is_not_null())
                    .select(
                        pl.lit(file.label).alias("source_file"),
                        pl.col("_record").cast(pl.Int64).alias("source_row"),
                        pl.lit(None, dtype=pl.Int64).alias("raw_row"),
                        pl.lit("malformed_row").alias("rule"),
                        pl.lit("(record)").alias("column_name"),
                        (pl.lit(f"table {table}: ") + pl.col(PARSE_ERROR)).alias("reason"),
                        pl.struct([pl.col(c) for c in fields]).struct.json_encode().alias("raw_record"),
                    )
                )
                frame = frame.filter(pl.col(PARSE_ERROR).is_null()).drop(PARSE_ERROR)
            frames.append(frame)
        tables[table] = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    con = connect_for_source_query(tables)
    try:
        result = con.sql(source.query).pl()
    except duckdb.Error as exc:
        raise SourceError(f"{kind}: the spec's query failed: {first_line(exc)}.") from exc
    finally:
        con.close()
    if result.height == 0:
        raise SourceError(f"{kind}: the spec's query returned no rows.")
    label = "query over " + ", ".join(file.label for file in inputs)
    frame = (
        result.lazy()
        .with_row_index(FILE_ROW, offset=1)
        .with_columns(
            pl.col(FILE_ROW).cast(pl.Int64),
            pl.col(FILE_ROW).cast(pl.Int64).alias(SOURCE_ROW),
            pl.lit(label).alias(SOURCE_FILE),
        )
    )
    if any(column.generated == "row_number" for column in source.columns):
        frame = frame.with_columns(pl.col(SOURCE_ROW).alias(ROW_NUMBER_SOURCE))
    _require_columns(kind, SourceFile(Path(label), "the query's result", "query"), source, frame.collect_schema())
    quarantine = pl.concat(malformed) if malformed else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    return QueryScan(frame, inputs, input_rows, quarantine.cast(QUARANTINE_SCHEMA))  # type: ignore[arg-type]


def _read_whole(kind: str, file: SourceFile, source: SourceSpec) -> pl.DataFrame:
    """A table of a query source, read whole, without lineage columns."""
    if file.is_parquet:
        try:
            return pl.read_parquet(file.path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise SourceError(f"{kind}: file {file.label} is not a readable Parquet file ({exc}).") from exc
    if file.file_format == "xlsx":
        return _read_excel(kind, file, source)
    return _read_csv(kind, file, source).collect()


def latest_timestamp(files: list[SourceFile], column: str) -> datetime | None:
    """The column's latest value from the Parquet footers' statistics, or None if they can't say.

    Writers record every row group's minimum and maximum; reading them costs milliseconds where
    a scan of 50 million timestamps costs a second of CPU. None when a file is not Parquet or a
    row group has no statistics, or the values are not plain (time-zone-free) timestamps.
    """
    latest: datetime | None = None
    for file in files:
        if not file.is_parquet:
            return None
        metadata = pq.ParquetFile(file.path).metadata
        for group in range(metadata.num_row_groups):
            chunks = [metadata.row_group(group).column(i) for i in range(metadata.num_columns)]
            stats = next((chunk.statistics for chunk in chunks if chunk.path_in_schema == column), None)
            if stats is None or not stats.has_min_max:
                return None
            value = stats.max
            if not isinstance(value, datetime) or value.tzinfo is not None:
                return None
            latest = value if latest is None else max(latest, value)
    return latest


def row_count(frame: pl.LazyFrame) -> int:
    """Rows in a scanned file (Parquet answers from its metadata)."""
    return int(frame.select(pl.len()).collect().item())


def _require_columns(kind: str, file: SourceFile, source: SourceSpec, schema: pl.Schema) -> None:
    needed: list[tuple[str, str]] = [(src, column.name) for column in source.columns for src in column.source_columns]
    if source.wide_snapshots is not None:
        for name, measure in source.wide_snapshots.measures.items():
            needed.extend((src, f"snapshot measure {name}") for src in measure.sources)
    for src, used_for in needed:
        if src not in schema:
            have = ", ".join(c for c in schema if c not in (SOURCE_FILE, SOURCE_ROW, FILE_ROW, PARSE_ERROR))
            raise SourceError(
                f"{kind}: file {file.label} has no column '{src}' (needed for {used_for}); its columns are: {have}."
            )


def _read_csv(kind: str, file: SourceFile, source: SourceSpec) -> pl.LazyFrame:
    """Every record of a delimited text file as text columns, whatever its line endings, read as a stream.

    Python's csv reader does the splitting: it takes LF, CRLF, old-Mac CR and any mix of them
    as line ends, and keeps quoted delimiters and newlines inside their field. (Polars' reader
    read a CR-only file as a header without rows, stopped the whole build at one record with
    too many fields, and silently padded one with too few.) A record whose field count differs
    from the header's, or with a field longer than ``MAX_FIELD_CHARS``, is kept (cut or padded to
    the header) with a sentence naming its line in ``_parse_error``, so the build quarantines it
    with everything else and nothing is lost.

    The file is decoded chunk by chunk and its records go out in batches: inside a build to a
    Parquet file in the build's spill folder (see ``spill_area``), which the frame scans, so the
    reader holds one batch whatever the file's size; outside one, the batches stay in memory.
    """
    options = source.csv
    where = f"{kind}: file {file.label}"
    try:
        decoder = codecs.getincrementaldecoder(options.encoding)()
    except LookupError as exc:
        raise SourceError(f"{kind}: csv.encoding '{options.encoding}' is not a known text encoding.") from exc
    lines = _TextLines(where, file.path, options.encoding, decoder)
    reader = csv.reader(lines, delimiter=options.delimiter, quotechar='"', strict=False)
    with _RecordSink(_spill_folder.get()) as sink:
        try:
            header = next(reader, [])
            # A blank header (a saved row index, as in German Credit) becomes ``unnamed_<position>``:
            # two blank names would otherwise collapse into one column.
            header = [name if name.strip() else f"unnamed_{position}" for position, name in enumerate(header)]
            check_header(where, header)
            _split_records(reader, header, options.delimiter, lines, sink)
        except csv.Error as exc:
            raise SourceError(
                f"{where} could not be split into records at line {reader.line_num}: {exc}; "
                "check csv.delimiter in the spec and the file's quotes."
            ) from exc
        if not lines.nonblank:
            raise SourceError(f"{where} is empty.")
        if not sink.rows:
            raise SourceError(f"{where} has a header but no data rows.")
        frame = sink.frame()
    if options.na_values:
        frame = frame.with_columns(
            pl.when(pl.col(name).is_in(options.na_values)).then(None).otherwise(pl.col(name)).alias(name)
            for name in header
        )
    return frame


def _split_records(
    reader: Iterator[list[str]], header: list[str], delimiter: str, lines: _TextLines, sink: _RecordSink
) -> None:
    """Send the records, fitted to the header's width, to ``sink``, each with its problem or None."""
    width = len(header)
    records: list[list[str]] = []
    problems: list[str | None] = []
    line = reader.line_num  # type: ignore[attr-defined]
    flushed_at = lines.chars
    for record in reader:
        first_line, line = line + 1, reader.line_num  # type: ignore[attr-defined]
        if not record:
            continue  # a blank line is not a record
        details = []
        if len(record) != width:
            if len(record) > width:
                extra = delimiter.join(record[width:])
                shown = extra if len(extra) <= 60 else extra[:60] + "…"
                details.append(f"{len(record)} fields where the header has {width} (extra: '{shown}')")
                record = record[:width]
            else:
                details.append(f"{len(record)} fields where the header has {width} (a cut or ragged line)")
                record = record + [""] * (width - len(record))
        if width and max(map(len, record)) > MAX_FIELD_CHARS:
            position = next(i for i, value in enumerate(record) if len(value) > MAX_FIELD_CHARS)
            details.append(
                f"a field of {len(record[position]):,} characters in column '{header[position]}' "
                f"(more than the {MAX_FIELD_CHARS:,} a field may hold)"
            )
        records.append(record)
        problems.append(f"line {first_line} has {' and '.join(details)}" if details else None)
        if len(records) >= _BATCH_RECORDS or lines.chars - flushed_at >= _BATCH_CHARS:
            sink.write(header, records, problems)
            records, problems, flushed_at = [], [], lines.chars
    if records:
        sink.write(header, records, problems)


class _TextLines:
    """A text file decoded chunk by chunk, as lines with their line ends (LF, CRLF or CR).

    Stops with a sentence naming the line at the first byte that is not text in the encoding,
    at a NUL byte (no text export has one; a file cut short and padded, or a sparse file, has
    millions), and at a line longer than any record could sensibly be.
    """

    def __init__(self, where: str, path: Path, encoding: str, decoder: codecs.IncrementalDecoder) -> None:
        self.where = where
        self.path = path
        self.encoding = encoding
        self.decoder = decoder
        self.chars = 0  # characters handed to the csv reader so far
        self.nonblank = False  # whether any character but white space was seen

    def __iter__(self) -> Iterator[str]:
        byte_lines = 0  # LF bytes before the current chunk (where a decoding error is)
        text_lines = 0  # LF characters decoded before the current text (where a NUL is)
        carry = ""  # the unfinished last line of the text so far
        first = True
        with self.path.open("rb") as handle:
            while True:
                chunk = handle.read(_CHUNK_BYTES)
                final = not chunk
                try:
                    text = self.decoder.decode(chunk, final)
                except UnicodeDecodeError as exc:
                    raise self._not_text(exc, chunk, byte_lines) from exc
                byte_lines += chunk.count(b"\n")
                if first and text:
                    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the first column's name
                    first = False
                if "\x00" in text:
                    line = text_lines + text.count("\n", 0, text.index("\x00")) + 1
                    raise SourceError(
                        f"{self.where} holds a NUL byte on line {line}, which no text export has: "
                        "check that it is a CSV file and that it was copied whole."
                    )
                if not self.nonblank and text.strip():
                    self.nonblank = True
                text_lines += text.count("\n")
                text = carry + text
                if final:
                    complete, carry = text, ""
                else:
                    # A CR at the very end may be the first half of a CRLF: it waits for the next chunk.
                    end = len(text) - 1 if text.endswith("\r") else len(text)
                    cut = max(text.rfind("\n", 0, end), text.rfind("\r", 0, end)) + 1
                    complete, carry = text[:cut], text[cut:]
                    if len(carry) > _MAX_LINE_CHARS:
                        raise SourceError(
                            f"{self.where} has a line of more than {_MAX_LINE_CHARS:,} characters "
                            f"(line {text_lines + 1}): check that it is a CSV file with line ends."
                        )
                if complete:
                    self.chars += len(complete)
                    yield from io.StringIO(complete, newline="")
                if final:
                    return

    def _not_text(self, exc: UnicodeDecodeError, chunk: bytes, byte_lines: int) -> SourceError:
        """The sentence for bytes that do not decode: the decoder's input is its held-back bytes, then ``chunk``."""
        data = exc.object if isinstance(exc.object, bytes | bytearray) else bytes(exc.object)
        held = data[: max(len(data) - len(chunk), 0)]
        line = max(byte_lines - held.count(b"\n") + data.count(b"\n", 0, exc.start), 0) + 1
        return SourceError(
            f"{self.where} is not valid {self.encoding} text "
            f"(byte 0x{data[exc.start]:02x} on line {line}); set csv.encoding in the spec."
        )


class _RecordSink:
    """Where a text file's records go, batch by batch: a Parquet file in the spill folder, or memory."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.path: Path | None = None
        self.writer: pq.ParquetWriter | None = None
        self.batches: list[pl.DataFrame] = []
        self.rows = 0
        self.has_problems = False

    def write(self, header: list[str], records: list[list[str]], problems: list[str | None]) -> None:
        columns = list(zip(*records, strict=True))
        batch = pl.DataFrame(
            [pl.Series(name, values, dtype=pl.String) for name, values in zip(header, columns, strict=True)]
            + [pl.Series(PARSE_ERROR, problems, dtype=pl.String)]
        )
        self.rows += batch.height
        self.has_problems = self.has_problems or any(problem is not None for problem in problems)
        if self.folder is None:
            self.batches.append(batch)
            return
        table = batch.to_arrow(compat_level=pl.CompatLevel.oldest())
        if self.writer is None:
            self.path = self.folder / f"{uuid.uuid4().hex}.parquet"
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="lz4")
        self.writer.write_table(table.cast(self.writer.schema))

    def frame(self) -> pl.LazyFrame:
        """The records written, as a frame (``_parse_error`` only where a record had a problem)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            frame = pl.scan_parquet(self.path)
        else:
            frame = pl.concat(self.batches).lazy()
            self.batches = []
        return frame if self.has_problems else frame.drop(PARSE_ERROR)

    def __enter__(self) -> _RecordSink:
        return self

    def __exit__(self, failure: type[BaseException] | None, *_: object) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if failure is not None and self.path is not None:
            self.path.unlink(missing_ok=True)


def check_header(where: str, header: list[str]) -> None:
    """Stop at a header that names a column twice: ``where`` begins the sentence ("customers: file x.csv")."""
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name.strip() and name in seen:
            raise SourceError(
                f"{where} has two columns named '{name}' (columns {seen[name]} and {position}); "
                "rename one in the file so the spec can tell them apart."
            )
        seen[name] = position


def _name_blank_headers(frame: pl.DataFrame) -> pl.DataFrame:
    """A blank header (a saved row index, as in German Credit) becomes ``unnamed_<position>``."""
    renames = {name: f"unnamed_{i}" for i, name in enumerate(frame.columns) if not name.strip()}
    return frame.rename(renames) if renames else frame


def _read_excel(kind: str, file: SourceFile, source: SourceSpec) -> pl.DataFrame:
    try:
        frame = pl.read_excel(file.path, sheet_name=source.sheet) if source.sheet else pl.read_excel(file.path)
    except Exception as exc:  # fastexcel raises its own exception types
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SourceError(f"{kind}: file {file.label} could not be read as an Excel workbook: {reason}.") from exc
    if frame.height == 0:
        raise SourceError(f"{kind}: file {file.label} has a header but no data rows.")
    return _name_blank_headers(frame)

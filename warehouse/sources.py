"""Read a source's files as they are, with lineage, and stop with one sentence when they can't be used."""

from __future__ import annotations

import csv
import glob
import hashlib
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

from .db import connect_for_source_query, first_line
from .errors import SourceError
from .spec import ROW_NUMBER_SOURCE, SourceSpec
from .staging import FILE_ROW, PARSE_ERROR, QUARANTINE_SCHEMA, SOURCE_FILE, SOURCE_ROW

# A field as long as a whole file is still one field (a free-text note, a JSON blob): the csv
# module's default cap of 131,072 characters would stop the build at it.
csv.field_size_limit(2**31 - 1)


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
    for name in source.files if names is None else names:
        pattern = str(data_dir / name)
        matches = sorted(glob.glob(pattern)) if any(ch in name for ch in "*?[") else [pattern]
        if not matches or not Path(matches[0]).is_file():
            raise SourceError(
                f"{kind}: file {name} was not found in {data_dir} (pass --data-dir with the folder that holds it)."
            )
        for match in matches:
            path = Path(match)
            if path.stat().st_size == 0:
                raise SourceError(f"{kind}: file {path} is empty.")
            label = str(path.relative_to(data_dir)) if path.is_relative_to(data_dir) else str(path)
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
        frame = _read_csv(kind, file, source).lazy()
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
    return _read_csv(kind, file, source)


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


def _read_csv(kind: str, file: SourceFile, source: SourceSpec) -> pl.DataFrame:
    """Every record of a delimited text file as text columns, whatever its line endings.

    Python's csv reader does the splitting: it takes LF, CRLF, old-Mac CR and any mix of them
    as line ends, and keeps quoted delimiters and newlines inside their field. (Polars' reader
    read a CR-only file as a header without rows, stopped the whole build at one record with
    too many fields, and silently padded one with too few.) A record whose field count differs
    from the header's is kept, cut or padded to the header, with a sentence naming its line in
    ``_parse_error``, so the build quarantines it with everything else and nothing is lost.
    """
    options = source.csv
    raw = file.path.read_bytes()
    try:
        text = raw.decode(options.encoding)
    except LookupError as exc:
        raise SourceError(f"{kind}: csv.encoding '{options.encoding}' is not a known text encoding.") from exc
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SourceError(
            f"{kind}: file {file.label} is not valid {options.encoding} text "
            f"(byte 0x{raw[exc.start]:02x} on line {line}); set csv.encoding in the spec."
        ) from exc
    del raw
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the first column's name
    if not text.strip():
        raise SourceError(f"{kind}: file {file.label} is empty.")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SourceError(
            f"{kind}: file {file.label} holds a NUL byte on line {line}, which no text export has: "
            "check that it is a CSV file and that it was copied whole."
        )
    header, records, problems = _split_records(text, options.delimiter)
    del text
    # A blank header (a saved row index, as in German Credit) becomes ``unnamed_<position>``, before
    # the frame is made: two blank names would otherwise collapse into one column.
    header = [name if name.strip() else f"unnamed_{position}" for position, name in enumerate(header)]
    check_header(f"{kind}: file {file.label}", header)
    if not records:
        raise SourceError(f"{kind}: file {file.label} has a header but no data rows.")
    frame = pl.DataFrame(records, schema=[(name, pl.String) for name in header], orient="row")
    del records
    if options.na_values:
        frame = frame.with_columns(
            pl.when(pl.col(name).is_in(options.na_values)).then(None).otherwise(pl.col(name)).alias(name)
            for name in header
        )
    if problems:
        messages = [None] * frame.height
        for index, message in problems:
            messages[index] = message
        frame = frame.with_columns(pl.Series(PARSE_ERROR, messages, dtype=pl.String))
    return frame


def _split_records(text: str, delimiter: str) -> tuple[list[str], list[list[str]], list[tuple[int, str]]]:
    """The header, the records fitted to its width, and (record index, sentence) for each that did not fit."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=False)
    header = next(reader, [])
    width = len(header)
    records: list[list[str]] = []
    problems: list[tuple[int, str]] = []
    line = reader.line_num
    for record in reader:
        first_line, line = line + 1, reader.line_num
        if not record:
            continue  # a blank line is not a record
        if len(record) != width:
            if len(record) > width:
                extra = delimiter.join(record[width:])
                shown = extra if len(extra) <= 60 else extra[:60] + "…"
                detail = f"{len(record)} fields where the header has {width} (extra: '{shown}')"
                record = record[:width]
            else:
                detail = f"{len(record)} fields where the header has {width} (a cut or ragged line)"
                record = record + [""] * (width - len(record))
            problems.append((len(records), f"line {first_line} has {detail}"))
        records.append(record)
    return header, records, problems


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

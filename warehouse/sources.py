"""Read a source's files as they are, with lineage, and stop with one sentence when they can't be used."""

from __future__ import annotations

import glob
import hashlib
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from .errors import SourceError
from .spec import SourceSpec
from .staging import FILE_ROW, SOURCE_FILE, SOURCE_ROW


@dataclass(frozen=True)
class SourceFile:
    """One file of a source, resolved on disk."""

    path: Path
    label: str
    file_format: str

    @property
    def is_parquet(self) -> bool:
        return self.file_format == "parquet"


def resolve_files(kind: str, source: SourceSpec, data_dir: Path) -> list[SourceFile]:
    """Expand the spec's file names (globs allowed) against the data folder."""
    found: list[SourceFile] = []
    for name in source.files:
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
    _require_columns(kind, file, source, frame.collect_schema())
    return frame


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
            have = ", ".join(c for c in schema if c not in (SOURCE_FILE, SOURCE_ROW, FILE_ROW))
            raise SourceError(
                f"{kind}: file {file.label} has no column '{src}' (needed for {used_for}); its columns are: {have}."
            )


def _read_csv(kind: str, file: SourceFile, source: SourceSpec) -> pl.DataFrame:
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
    if not text.strip():
        raise SourceError(f"{kind}: file {file.label} is empty.")
    try:
        frame = pl.read_csv(
            io.StringIO(text),
            separator=options.delimiter,
            infer_schema=False,
            null_values=options.na_values,
        )
    except pl.exceptions.PolarsError as exc:
        reason = str(exc).splitlines()[0]
        raise SourceError(f"{kind}: file {file.label} could not be read as CSV: {reason}.") from exc
    if frame.height == 0:
        raise SourceError(f"{kind}: file {file.label} has a header but no data rows.")
    return _name_blank_headers(frame)


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

"""Issue 13, item 2 and a low finding: very large input files and very long fields.

A 2 GB file (German credit extended with ``truncate``) took 22.5 GB and was killed by the
out-of-memory killer: the CSV reader held several whole copies of the file. The reader now
streams (bounded memory whatever the size), a file over ``SEGRISK_MAX_INPUT_MB`` stops before a
byte is read, and a field of a million characters is quarantined with a note instead of being
loaded silently.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import FIXTURES, Builder

from warehouse import sources
from warehouse.build import build_warehouse
from warehouse.errors import SourceError
from warehouse.sources import MAX_FIELD_CHARS, resolve_files, scan_file, spill_area
from warehouse.spec import load_spec, parse_spec

GERMAN = FIXTURES / "german_credit" / "german_credit_data_with_risk.csv"

SPEC = """
name = "notes"
[customers]
files = ["customers.csv"]
max_rejected_share = 1.0
[[customers.columns]]
name = "customer_id"
source = "id"
type = "int"
role = "id"
description = "Customer number."
[[customers.columns]]
name = "age"
type = "int"
role = "numeric"
description = "Age in years."
[[customers.columns]]
name = "note"
type = "string"
role = "attribute"
description = "A free-text note."
"""


def _folder(tmp_path: Path, content: bytes) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "customers.csv").write_bytes(content)
    return folder


def _german_frame(folder: Path, db: Path | None) -> pl.DataFrame:
    spec, _ = load_spec("german-credit")
    source = spec.customers
    assert source is not None
    (file,) = resolve_files("customers", source, folder)
    if db is None:
        return scan_file("customers", file, source).collect()
    with spill_area(db):
        return scan_file("customers", file, source).collect()


def _german_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    (folder / "german_credit").mkdir(parents=True)
    shutil.copyfile(GERMAN, folder / "german_credit" / GERMAN.name)
    return folder


# -- the size limit ------------------------------------------------------------------------------------------
def test_a_file_over_the_size_limit_stops_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _german_folder(tmp_path)
    path = folder / "german_credit" / GERMAN.name
    os.truncate(path, 3_000_000)  # sparse: NUL bytes after the rows, which a read would stop at instead
    monkeypatch.setenv("SEGRISK_MAX_INPUT_MB", "2")
    spec, text = load_spec("german-credit")
    db = tmp_path / "w.duckdb"
    with pytest.raises(SourceError) as caught:
        build_warehouse(spec, text, folder, db)
    message = str(caught.value)
    assert message == (
        f"customers: file german_credit/{GERMAN.name} is 3.0 MB, more than the 2 MB an input file may be; "
        "set SEGRISK_MAX_INPUT_MB to a larger number of megabytes to read it."
    )
    assert not db.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no temporary file or folder left


@pytest.mark.parametrize("value", ["0", "-5", "abc", "1.5", "4 GB"])
def test_a_size_limit_that_is_not_a_whole_number_of_megabytes_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SEGRISK_MAX_INPUT_MB", value)
    with pytest.raises(SourceError, match=r"^SEGRISK_MAX_INPUT_MB must be a whole number of megabytes, 1 or more, got"):
        _german_frame(_german_folder(tmp_path), None)


def test_the_default_limit_reads_an_ordinary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGRISK_MAX_INPUT_MB", raising=False)
    assert sources.max_input_bytes() == 4096 * 1_000_000
    assert _german_frame(_german_folder(tmp_path), None).height == 200


# -- the streaming reader reads what the whole-file reader read ----------------------------------------------
def test_the_streaming_reader_gives_the_file_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spilled to Parquet or kept in memory, in one batch or in many, the frame is the file's text."""
    folder = _german_folder(tmp_path)
    expected = pl.read_csv(GERMAN, infer_schema=False, null_values=["NA", ""]).rename({"": "unnamed_0"})
    whole = _german_frame(folder, None)
    monkeypatch.setattr(sources, "_CHUNK_BYTES", 97)  # chunks end inside lines, CRLFs and fields
    monkeypatch.setattr(sources, "_BATCH_RECORDS", 7)
    spilled = _german_frame(folder, tmp_path / "w.duckdb")
    for frame in (whole, spilled):
        assert frame.drop("_file_row", "_source_row", "_source_file").equals(expected)
        assert frame.get_column("_file_row").to_list() == list(range(1, 201))
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # the spill folder went with its block


def test_records_that_do_not_fit_name_their_line_across_chunks_and_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, build: Builder
) -> None:
    rows = [f"{n},{20 + n},note {n}" for n in range(1, 41)]
    rows[9] += ",surplus"  # line 11
    rows[24] = "25,45"  # line 26
    rows[30] = '31,51,"two\r\nlines"'  # lines 32-33: a quoted line end inside a field
    rows[35] = "36,56,Zürich"
    text = "\ufeffid,age,note\r\n" + "\r\n".join(rows[:20]) + "\r" + "\n".join(rows[20:]) + "\n"
    monkeypatch.setattr(sources, "_CHUNK_BYTES", 5)  # the ü and some CRLFs are split between chunks
    monkeypatch.setattr(sources, "_BATCH_RECORDS", 3)
    summary = build("notes", _folder(tmp_path, text.encode()), tmp_path / "w.duckdb", spec_text=SPEC)
    (customers,) = summary.sources
    assert (customers.rows_in, customers.rows_rejected) == (40, 2)
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        reasons = con.execute("SELECT reason FROM quarantine_customers ORDER BY source_row").fetchall()
        kept = dict(con.execute("SELECT customer_id, note FROM stg_customers").fetchall())
    assert reasons == [
        ("line 11 has 4 fields where the header has 3 (extra: 'surplus')",),
        ("line 26 has 2 fields where the header has 3 (a cut or ragged line)",),
    ]
    assert kept[31] == "two\r\nlines" and kept[36] == "Zürich" and kept[40] == "note 40"


def test_a_byte_that_is_not_text_names_its_line_in_a_later_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, build: Builder
) -> None:
    lines = [b"id,age,note"] + [f"{n},30,ok".encode() for n in range(1, 30)] + [b"30,30,Z\xfcrich"]
    monkeypatch.setattr(sources, "_CHUNK_BYTES", 16)
    with pytest.raises(SourceError) as caught:
        build("notes", _folder(tmp_path, b"\n".join(lines) + b"\n"), tmp_path / "w.duckdb", spec_text=SPEC)
    assert str(caught.value) == (
        "customers: file customers.csv is not valid utf-8 text (byte 0xfc on line 31); set csv.encoding in the spec."
    )


# -- a sparse file: the real rows, then a hole of NUL bytes ----------------------------------------------------
def test_a_sparse_file_stops_at_its_first_nul_without_reading_it_whole(tmp_path: Path) -> None:
    folder = _german_folder(tmp_path)
    path = folder / "german_credit" / GERMAN.name
    os.truncate(path, 64 << 20)  # 64 MB that cost no disk, as `truncate -s 2G` made of the real file
    spec, text = load_spec("german-credit")
    db = tmp_path / "w.duckdb"
    tracemalloc.start()
    try:
        with pytest.raises(SourceError) as caught:
            build_warehouse(spec, text, folder, db)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(caught.value) == (
        f"customers: file german_credit/{GERMAN.name} holds a NUL byte on line 202, which no text export has: "
        "check that it is a CSV file and that it was copied whole."
    )
    # The whole-file reader held the 64 MB of bytes and their 64 MB of text at once.
    assert peak < 32 << 20, f"{peak / 2**20:.0f} MB traced"
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_a_file_without_line_ends_stops_with_a_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_MAX_LINE_CHARS", 1000)
    folder = _folder(tmp_path, b"id,age,note\n1,30," + b"x" * 5000)
    with pytest.raises(SourceError, match=r"^customers: file customers.csv has a line of more than 1,000 characters"):
        build_warehouse(parse_spec(SPEC, "notes.toml"), SPEC, folder, tmp_path / "w.duckdb")


# -- a field of a million characters -----------------------------------------------------------------------------
def test_a_field_longer_than_the_limit_is_quarantined_with_its_line_column_and_length(
    tmp_path: Path, build: Builder
) -> None:
    huge = "x" * 1_000_000
    content = f"id,age,note\n1,30,short\n2,40,{huge}\n3,50,{'y' * MAX_FIELD_CHARS}\n".encode()
    summary = build("notes", _folder(tmp_path, content), tmp_path / "w.duckdb", spec_text=SPEC)
    (customers,) = summary.sources
    assert (customers.rows_in, customers.rows_rejected) == (3, 1)
    assert customers.quarantine_by_rule == {"malformed_row": 1}
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        (row,) = con.execute("SELECT source_row, rule, reason, length(raw_record) FROM quarantine_customers").fetchall()
        raw = con.execute("SELECT length(note) FROM raw_customers ORDER BY id").fetchall()
        kept = con.execute("SELECT customer_id FROM stg_customers ORDER BY 1").fetchall()
    assert row[:3] == (
        2,
        "malformed_row",
        "line 3 has a field of 1,000,000 characters in column 'note' (more than the 500,000 a field may hold)",
    )
    assert row[3] > 1_000_000  # the record is kept whole in the quarantine: nothing is lost
    assert raw == [(5,), (1_000_000,), (MAX_FIELD_CHARS,)]
    assert kept == [(1,), (3,)]


def test_the_benchmark_runs_and_reports_peak_memory(tmp_path: Path) -> None:
    """The memory benchmark itself (tiny sizes): the sparse file stops with the NUL sentence, the limit
    with its sentence, and a real file is read."""
    if not Path("/usr/bin/time").exists():
        pytest.skip("/usr/bin/time (Debian package time) is not installed")
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_memory.py"
    result = subprocess.run(
        [sys.executable, str(bench), "--sparse-mb", "2", "--real-mb", "1", "--work", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    out = result.stdout
    assert "holds a NUL byte on line 1002" in out or "holds a NUL byte on line 202" in out, out
    assert "more than the 1 MB an input file may be" in out, out
    assert re.search(r"read +\d+ MB +exit +0 .* read [\d,]+ rows", out), out
    assert "peak" in out and "left beside the warehouse: nothing" in out, out
    assert not (tmp_path / "b").exists()


def test_the_readme_documents_the_limit_and_the_benchmark() -> None:
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    assert (
        f"`{sources.MAX_INPUT_ENV_VAR}` megabytes" in readme and f"{sources.DEFAULT_MAX_INPUT_MB} unless set" in readme
    )
    assert "tests/benchmarks/bench_memory.py" in readme and f"{MAX_FIELD_CHARS:,} characters" in readme

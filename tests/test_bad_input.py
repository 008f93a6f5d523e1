"""Bad input: one clear sentence for unusable sources, quarantine with reasons for bad rows,
and the previous warehouse left byte-for-byte untouched whenever a build fails."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from conftest import Builder, file_digest

from warehouse.errors import SegriskError, SourceError, SpecError

SPEC = """
name = "tiny"
[customers]
files = ["customers.csv"]
# Most of these tiny files' rows are bad on purpose: no share of rejects stops the build here.
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
min = 18
max = 110
description = "Age in years."
[[customers.columns]]
name = "income"
type = "float"
role = "amount"
measure = "income"
description = "Annual income."
[[customers.columns]]
name = "joined_at"
type = "date"
role = "timestamp"
format = "%Y-%m-%d"
description = "Date the customer joined."
[[customers.columns]]
name = "segment"
type = "string"
role = "categorical"
allowed = ["retail", "private"]
description = "Business segment."

[transactions]
files = ["transactions.csv"]
max_rejected_share = 1.0
[[transactions.columns]]
name = "customer_id"
type = "int"
role = "id"
description = "Customer number."
[[transactions.columns]]
name = "occurred_at"
type = "timestamp"
role = "timestamp"
format = "%Y-%m-%d %H:%M:%S"
description = "When."
[[transactions.columns]]
name = "amount"
type = "float"
role = "amount"
greater_than = 0
description = "Amount."
"""

GOOD_CUSTOMERS = [
    "1,34,52000,2020-01-15,retail",
    "2,51,81000.5,2019-06-01,private",
    "3,29,,2021-03-09,retail",
]
BAD_CUSTOMERS = [
    (",40,1000,2020-01-01,retail", "missing_key", "customer_id is empty; every row needs the customer key"),
    ("4,-3,1000,2020-01-01,retail", "out_of_range", "age: -3 is below the minimum 18"),
    ("5,144,1000,2020-01-01,retail", "out_of_range", "age: 144 is above the maximum 110"),
    ("6,abc,1000,2020-01-01,retail", "wrong_type", "age: expected a whole number, got 'abc'"),
    ("7,40,1000,2999-01-01,retail", "future_timestamp", "joined_at: 2999-01-01 is in the future"),
    ("8,40,1000,2020-01-01,wholesale", "not_allowed", "segment: 'wholesale' is not one of retail, private"),
    ("2,45,1000,2020-01-01,retail", "duplicate_key", "duplicate customer_id 2: an earlier row has the same key"),
]
GOOD_TRANSACTIONS = ["1,2024-01-02 10:00:00,12.5", "1,2024-02-02 10:00:00,30", "2,2024-01-05 09:00:00,99.9"]
BAD_TRANSACTIONS = [
    ("99,2024-01-02 10:00:00,10", "unknown_customer", "customer_id 99 is not in the customer file"),
    ("3,2024-01-02 10:00:00,-5", "out_of_range", "amount: -5.0 is not above 0"),
    ("3,yesterday,5", "wrong_type", "occurred_at: expected a date and time, got 'yesterday'"),
    ("4,2024-01-02 10:00:00,5", "unknown_customer", "customer_id 4 is not in the customer file"),
]


def write_dataset(folder: Path, customers: list[str], transactions: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customers.csv").write_text("id,age,income,joined_at,segment\n" + "\n".join(customers) + "\n")
    (folder / "transactions.csv").write_text("customer_id,occurred_at,amount\n" + "\n".join(transactions) + "\n")
    return folder


@pytest.fixture
def previous(build: Builder, tmp_path: Path) -> Path:
    """A good warehouse already in place, which failed builds must leave untouched."""
    data = write_dataset(tmp_path / "good", GOOD_CUSTOMERS, GOOD_TRANSACTIONS)
    db = tmp_path / "warehouse.duckdb"
    build("tiny", data, db, spec_text=SPEC)
    return db


def test_bad_rows_are_quarantined_with_reasons(build: Builder, tmp_path: Path) -> None:
    customers = GOOD_CUSTOMERS + [line for line, _, _ in BAD_CUSTOMERS]
    transactions = GOOD_TRANSACTIONS + [line for line, _, _ in BAD_TRANSACTIONS]
    data = write_dataset(tmp_path / "mixed", customers, transactions)
    summary = build("tiny", data, tmp_path / "mixed.duckdb", spec_text=SPEC)
    by_kind = {s.kind: s for s in summary.sources}
    assert (by_kind["customers"].rows_in, by_kind["customers"].rows_out) == (len(customers), len(GOOD_CUSTOMERS))
    assert by_kind["transactions"].rows_out == len(GOOD_TRANSACTIONS)
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        for kind, bad in (("customers", BAD_CUSTOMERS), ("transactions", BAD_TRANSACTIONS)):
            rows = con.execute(
                f"SELECT source_row, rule, reason, raw_record FROM quarantine_{kind} ORDER BY source_row"
            ).fetchall()
            good_count = len(GOOD_CUSTOMERS) if kind == "customers" else len(GOOD_TRANSACTIONS)
            expected = [(good_count + i + 1, rule, reason) for i, (_, rule, reason) in enumerate(bad)]
            assert [(r[0], r[1], r[2]) for r in rows] == expected
            # Nothing is lost: the raw record holds the row as it was in the file.
            first_raw = json.loads(rows[0][3])
            assert ",".join("" if v is None else v for v in first_raw.values()) == bad[0][0]
        counts = con.execute(
            "SELECT source, rows_in, rows_out, rows_rejected FROM meta_row_counts ORDER BY source"
        ).fetchall()
        assert counts == [
            ("customers", len(customers), len(GOOD_CUSTOMERS), len(BAD_CUSTOMERS)),
            ("transactions", len(transactions), len(GOOD_TRANSACTIONS), len(BAD_TRANSACTIONS)),
        ]
        ids = [r[0] for r in con.execute("SELECT customer_id FROM stg_customers ORDER BY 1").fetchall()]
        assert ids == [1, 2, 3]
        # The kept duplicate is the first one seen (age 51), not the later one (age 45).
        assert con.execute("SELECT age FROM customers WHERE customer_id = 2").fetchall() == [(51,)]


def _assert_unchanged_after(
    build: Builder, previous: Path, data: Path, error: type[SegriskError], message: str, spec_text: str = SPEC
) -> None:
    before = file_digest(previous)
    with pytest.raises(error) as caught:
        build("tiny", data, previous, spec_text=spec_text)
    text = str(caught.value)
    assert message in text, text
    assert "\n" not in text
    assert file_digest(previous) == before
    assert not list(previous.parent.glob(".*building*")), "the temporary build file was left behind"


def test_missing_file(build: Builder, previous: Path, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "d", GOOD_CUSTOMERS, GOOD_TRANSACTIONS)
    (data / "transactions.csv").unlink()
    _assert_unchanged_after(
        build, previous, data, SourceError, f"transactions: file transactions.csv was not found in {data}"
    )


def test_missing_column(build: Builder, previous: Path, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "d", GOOD_CUSTOMERS, GOOD_TRANSACTIONS)
    (data / "customers.csv").write_text("id,years,income,joined_at,segment\n1,3,4,2020-01-01,retail\n")
    _assert_unchanged_after(
        build, previous, data, SourceError, "customers: file customers.csv has no column 'age' (needed for age)"
    )


def test_empty_file(build: Builder, previous: Path, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "d", GOOD_CUSTOMERS, GOOD_TRANSACTIONS)
    (data / "customers.csv").write_bytes(b"")
    _assert_unchanged_after(build, previous, data, SourceError, "customers: file")
    _assert_unchanged_after(build, previous, data, SourceError, "customers.csv is empty")


def test_header_without_rows(build: Builder, previous: Path, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "d", [], GOOD_TRANSACTIONS)
    (data / "customers.csv").write_text("id,age,income,joined_at,segment\n")
    _assert_unchanged_after(
        build, previous, data, SourceError, "customers: file customers.csv has a header but no data rows"
    )


def test_undecodable_text(build: Builder, previous: Path, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "d", GOOD_CUSTOMERS, GOOD_TRANSACTIONS)
    (data / "customers.csv").write_bytes(
        "id,age,income,joined_at,segment\n1,34,5,2020-01-01,Zürich\n".encode("latin-1")
    )
    _assert_unchanged_after(
        build,
        previous,
        data,
        SourceError,
        "customers: file customers.csv is not valid utf-8 text (byte 0xfc on line 2)",
    )


def test_spec_that_does_not_parse(build: Builder, previous: Path, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "d", GOOD_CUSTOMERS, GOOD_TRANSACTIONS)
    _assert_unchanged_after(build, previous, data, SpecError, "does not parse", spec_text=SPEC + "\n[customers\n")


def test_interrupted_build_leaves_previous_untouched(build: Builder, previous: Path, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "d", GOOD_CUSTOMERS * 1, GOOD_TRANSACTIONS)
    before = file_digest(previous)

    def interrupt(message: str) -> None:
        if "transactions" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build("tiny", data, previous, spec_text=SPEC, progress=interrupt)
    assert file_digest(previous) == before
    assert not list(previous.parent.glob(".*building*"))


def test_reader_of_old_file_is_not_disturbed_by_rebuild(build: Builder, previous: Path, tmp_path: Path) -> None:
    reader = duckdb.connect(str(previous), read_only=True)
    try:
        old_build = reader.execute("SELECT build_id FROM meta_builds").fetchall()
        data = write_dataset(tmp_path / "bigger", GOOD_CUSTOMERS + ["9,60,1,2020-01-01,retail"], GOOD_TRANSACTIONS)
        build("tiny", data, previous, spec_text=SPEC)
        # The open reader still sees the old, complete warehouse.
        assert reader.execute("SELECT count(*) FROM customers").fetchall() == [(3,)]
        assert reader.execute("SELECT build_id FROM meta_builds").fetchall() == old_build
    finally:
        reader.close()
    with duckdb.connect(str(previous), read_only=True) as fresh:
        assert fresh.execute("SELECT count(*) FROM customers").fetchall() == [(4,)]


def test_lineage_across_several_files(build: Builder, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "multi", GOOD_CUSTOMERS, GOOD_TRANSACTIONS)
    (data / "customers.csv").rename(data / "customers_1.csv")
    (data / "customers_2.csv").write_text(
        "id,age,income,joined_at,segment\n10,40,1,2020-01-01,retail\n11,500,1,2020-01-01,retail\n"
    )
    spec = SPEC.replace('files = ["customers.csv"]', 'files = ["customers_*.csv"]')
    summary = build("tiny", data, tmp_path / "multi.duckdb", spec_text=spec)
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        (file, row, raw_row, rule) = con.execute(
            "SELECT source_file, source_row, raw_row, rule FROM quarantine_customers"
        ).fetchone()
        assert (file, row, raw_row, rule) == ("customers_2.csv", 2, len(GOOD_CUSTOMERS) + 2, "out_of_range")
        raw_age = con.execute("SELECT age FROM raw_customers WHERE rowid + 1 = ?", [raw_row]).fetchall()
        assert raw_age == [("500",)]
        ranges = con.execute(
            "SELECT source_file, first_row, last_row FROM meta_sources WHERE source = 'customers' ORDER BY 2"
        ).fetchall()
        assert ranges == [("customers_1.csv", 1, 3), ("customers_2.csv", 4, 5)]
        kept = con.execute("SELECT customer_id, _source_row FROM stg_customers ORDER BY 2").fetchall()
        assert kept == [(1, 1), (2, 2), (3, 3), (10, 4)]

"""Real banks' files as they come (issue 12): each fault a new user met, reproduced, and what
the build must do instead: build with the right quarantine, or stop with one sentence and leave
the previous warehouse untouched."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import duckdb
import pytest
from conftest import FIXTURES, SHARED_DATA, Builder, file_digest, needs_shared_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bad_input import SPEC

from warehouse.build import build_warehouse
from warehouse.errors import BuildError, SegriskError
from warehouse.spec import parse_spec

TAIWAN = FIXTURES / "taiwan_default" / "UCI_Credit_Card.csv"
#: A target column for the tiny spec of tests/test_bad_input.py, read from the customer file's ``flag``.
TARGET = """
[[customers.columns]]
name = "defaulted"
source = "flag"
type = "bool"
role = "target"
positive = {positive}
{negative}
description = "Defaulted."
"""


def test_a_build_that_quarantines_a_handful_of_rows_in_a_large_file_does_not_panic(
    build: Builder, tmp_path: Path
) -> None:
    """polars 2.1 panicked (``assertion failed: i < self.len()``) in the long when/then chain of
    string reasons over the filtered frame, once the file had some 30,000 rows and a few rejects."""
    header, *rows = TAIWAN.read_text().splitlines()
    lines, bad = [header], {6: (1, "-5"), 1001: (1, "-5"), 20001: (1, "-5"), 8: (2, "9"), 301: (2, "9"), 901: (5, "x")}
    number = 0
    for _ in range(100):
        for row in rows:
            number += 1
            fields = row.split(",")
            fields[0] = str(number)
            if number in bad:
                position, value = bad[number]
                fields[position] = value
            lines.append(",".join(fields))
    folder = tmp_path / "data" / "taiwan_default"
    folder.mkdir(parents=True)
    (folder / "UCI_Credit_Card.csv").write_text("\n".join(lines) + "\n")
    summary = build("taiwan-default", tmp_path / "data", tmp_path / "taiwan.duckdb")
    customers = next(s for s in summary.sources if s.kind == "customers")
    assert (customers.rows_in, customers.rows_rejected) == (number, len(bad))
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        found = con.execute(
            "SELECT source_row, rule, column_name, reason FROM quarantine_customers ORDER BY 1"
        ).fetchall()
    assert [row[0] for row in found] == sorted(bad)
    by_row = {row[0]: row[1:] for row in found}
    assert by_row[6] == ("out_of_range", "credit_limit", "credit_limit: -5.0 is not above 0")
    assert by_row[8] == ("not_allowed", "sex", "sex: '9' is not one of male, female")
    assert by_row[901][:2] == ("wrong_type", "age")


def test_string_customer_ids_go_through_the_build_and_every_model(string_id_db: Path) -> None:
    """``sub operation not supported for dtypes str and str``: the build's order check took a
    ``.diff()`` of the key as soon as transactions or snapshots existed."""
    with duckdb.connect(str(string_id_db), read_only=True) as con:
        key_types = con.execute(
            "SELECT DISTINCT data_type FROM duckdb_columns() WHERE column_name = 'customer_id' "
            "AND table_name IN ('customers', 'mart_customer_profile', 'ml_risk_scores', 'ml_segments', "
            "'ml_rfm', 'ml_alerts', 'ml_recommendations', 'mart_customer_months')"
        ).fetchall()
        assert key_types == [("VARCHAR",)]
        customers = con.execute("SELECT count(*), min(customer_id) FROM customers").fetchall()[0]
        assert customers == (2_000, "C-00001")
        kinds = {row[0] for row in con.execute("SELECT model_kind FROM ml_model_runs").fetchall()}
        assert kinds >= {"segments", "rfm", "risk", "warnings", "cross_sell", "statistics"}
        scored = con.execute("SELECT count(*) FROM ml_latest_risk_scores WHERE customer_id LIKE 'C-%'").fetchall()
        assert scored == [(2_000,)]
        months = con.execute("SELECT count(DISTINCT customer_id) FROM mart_customer_months").fetchall()
        assert months == [(2_000,)]


# -- the tiny bank of tests/test_bad_input.py, varied -------------------------------------------------------
def _tiny(tmp_path: Path, customers: str, transactions: str | None = None, name: str = "d") -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customers.csv").write_text(customers)
    (folder / "transactions.csv").write_text(
        transactions or "customer_id,occurred_at,amount\n1,2024-01-02 10:00:00,12.5\n2,2024-01-05 09:00:00,99.9\n"
    )
    return folder


CUSTOMERS = "id,age,income,joined_at,segment\n1,34,52000,2020-01-15,retail\n2,51,81000.5,2019-06-01,private\n"


def test_inf_nan_and_overlong_numbers_fail_their_type(build: Builder, tmp_path: Path) -> None:
    """``inf``, ``nan`` and a 401-digit number passed ``greater_than = 0`` and ``required``."""
    transactions = (
        "customer_id,occurred_at,amount\n1,2024-01-02 10:00:00,12.5\n1,2024-01-03 10:00:00,inf\n"
        f"2,2024-01-04 10:00:00,nan\n2,2024-01-05 10:00:00,{'9' * 401}\n2,2024-01-06 10:00:00,-inf\n"
    )
    data = _tiny(tmp_path, CUSTOMERS, transactions)
    summary = build(
        "tiny",
        data,
        tmp_path / "w.duckdb",
        spec_text=SPEC.replace("greater_than = 0", "greater_than = 0\nrequired = true"),
    )
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        rules = con.execute("SELECT source_row, rule, column_name FROM quarantine_transactions ORDER BY 1").fetchall()
        kept = con.execute("SELECT amount FROM stg_transactions").fetchall()
    assert rules == [(n, "wrong_type", "amount") for n in (2, 3, 4, 5)]
    assert kept == [(12.5,)]


def test_a_target_whose_default_value_never_occurs_stops_the_build(build: Builder, tmp_path: Path) -> None:
    """``positive = "yes"`` on a 0/1 column made every row 'good'."""
    data = _tiny(
        tmp_path,
        CUSTOMERS.replace("segment\n", "segment,flag\n")
        .replace("retail\n", "retail,0\n")
        .replace("private\n", "private,1\n"),
    )
    spec = SPEC + TARGET.format(positive='"yes"', negative="")
    with pytest.raises(BuildError) as caught:
        build("tiny", data, tmp_path / "w.duckdb", spec_text=spec)
    assert "no row holds the default value 'yes' (positive); the values seen are '0' (1), '1' (1)" in str(caught.value)


def test_target_labels_are_compared_without_case_and_unknown_ones_are_not_good(build: Builder, tmp_path: Path) -> None:
    """``BAD``, ``Bad`` and ``unknown`` were stored as not defaulted when ``positive = "bad"``."""
    rows = [
        "1,34,1,2020-01-15,retail,bad",
        "2,51,1,2019-06-01,retail,BAD",
        "3,40,1,2019-06-01,retail, Bad ",
        "4,40,1,2019-06-01,retail,good",
        "5,40,1,2019-06-01,retail,Good",
        "6,40,1,2019-06-01,retail,unknown",
    ]
    data = _tiny(tmp_path, "id,age,income,joined_at,segment,flag\n" + "\n".join(rows) + "\n")
    with pytest.raises(BuildError) as caught:
        build("tiny", data, tmp_path / "w.duckdb", spec_text=SPEC + TARGET.format(positive='"bad"', negative=""))
    assert "the values seen are 'bad' (3), 'good' (2), 'unknown' (1)" in str(caught.value)
    assert "set negative" in str(caught.value)
    spec = SPEC + TARGET.format(positive='"bad"', negative='negative = ["good"]')
    summary = build("tiny", data, tmp_path / "w.duckdb", spec_text=spec)
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        outcomes = con.execute("SELECT customer_id, is_defaulted FROM customers ORDER BY 1").fetchall()
        staged = con.execute("SELECT customer_id, defaulted FROM stg_customers ORDER BY 1").fetchall()
        quarantined = con.execute("SELECT source_row, rule, reason FROM quarantine_customers").fetchall()
    assert outcomes == staged == [(1, True), (2, True), (3, True), (4, False), (5, False)]
    assert quarantined == [
        (6, "not_allowed", "defaulted: 'unknown' is neither a default value (bad) nor a non-default one (good)")
    ]


def test_a_wrong_declared_type_stops_the_build_and_keeps_the_previous_warehouse(build: Builder, tmp_path: Path) -> None:
    """9,578 in, 0 kept, exit 0, and the previous warehouse replaced by an empty one."""
    db = tmp_path / "w.duckdb"
    build("tiny", _tiny(tmp_path, CUSTOMERS, name="good"), db, spec_text=SPEC)
    before = file_digest(db)
    rows = "\n".join(f"{n},{30 + n % 40},1,2020-01-{1 + n % 28:02d},retail" for n in range(1, 501))
    # The tiny spec allows any share of rejects; the default (half) is what this test is about.
    spec = SPEC.replace("max_rejected_share = 1.0\n", "").replace(
        'name = "age"\ntype = "int"', 'name = "age"\ntype = "date"'
    )
    with pytest.raises(BuildError) as caught:
        build(
            "tiny", _tiny(tmp_path, "id,age,income,joined_at,segment\n" + rows + "\n", name="bad"), db, spec_text=spec
        )
    message = str(caught.value)
    assert message.startswith("customers: 500 of 500 rows (100%) would be quarantined, more than the 50% allowed")
    assert "most broke wrong_type on age, e.g. age: expected a date, got '31'" in message
    assert "\n" not in message
    assert file_digest(db) == before
    assert not list(tmp_path.glob(".*building*"))


def test_transaction_times_declared_as_dates(build: Builder, tmp_path: Path) -> None:
    """``type = "date"`` on ``occurred_at`` crashed: ``'datetime.date' object has no attribute 'date'``."""
    spec = SPEC.replace('name = "occurred_at"\ntype = "timestamp"', 'name = "occurred_at"\ntype = "date"').replace(
        'format = "%Y-%m-%d %H:%M:%S"\ndescription = "When."', 'format = "%Y-%m-%d"\ndescription = "When."'
    )
    transactions = "customer_id,occurred_at,amount\n1,2024-01-02,12.5\n1,2024-03-02,10\n2,2024-01-05,99.9\n"
    summary = build("tiny", _tiny(tmp_path, CUSTOMERS, transactions), tmp_path / "w.duckdb", spec_text=spec)
    assert str(summary.as_of_date) == "2024-03-03"
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        features = con.execute("SELECT customer_id, txn_count, rfm_recency_days FROM customers ORDER BY 1").fetchall()
    assert features == [(1, 2, 1), (2, 1, 58)]


# -- a corpus of odd and broken text files -----------------------------------------------------------------
@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good warehouse, built once: each case copies it, and a stopped build must leave it untouched."""
    folder = tmp_path_factory.mktemp("previous")
    db = folder / "w.duckdb"
    build_warehouse(parse_spec(SPEC, "tiny.toml"), SPEC, _tiny(folder, CUSTOMERS), db)
    return db


HEADER = "id,age,income,joined_at,segment"
ROWS = ["1,34,52000,2020-01-15,retail", "2,51,81000.5,2019-06-01,private", "3,29,,2021-03-09,retail"]
LF = (HEADER + "\n" + "\n".join(ROWS) + "\n").encode()


def _lines(*rows: str, ending: str = "\n", header: str = HEADER) -> bytes:
    return (ending.join([header, *rows]) + ending).encode()


#: (name, customers.csv bytes, spec edit (old, new) or None, expected): expected is
#: ("built", rows kept, {rule: rows quarantined}) or ("stops", a fragment of the one sentence).
CORPUS = [
    ("lf", LF, None, ("built", 3, {})),
    ("crlf", _lines(*ROWS, ending="\r\n"), None, ("built", 3, {})),
    ("cr only (old Mac)", _lines(*ROWS, ending="\r"), None, ("built", 3, {})),
    (
        "mixed line endings",
        (HEADER + "\r\n" + ROWS[0] + "\r" + ROWS[1] + "\n" + ROWS[2] + "\r\n").encode(),
        None,
        ("built", 3, {}),
    ),
    ("utf-8 byte-order mark", b"\xef\xbb\xbf" + LF, None, ("built", 3, {})),
    ("no final line end", LF.rstrip(b"\n"), None, ("built", 3, {})),
    ("blank lines between rows", _lines(ROWS[0], "", ROWS[1], "", "", ROWS[2]), None, ("built", 3, {})),
    (
        "quoted delimiters and newlines",
        _lines(
            '1,34,52000,2020-01-15,retail,"a, b"', '2,51,1,2019-06-01,private,"two\nlines"', header=HEADER + ",note"
        ),
        None,
        ("built", 2, {}),
    ),
    ("quoted header names", _lines(*ROWS, header='"id","age","income","joined_at","segment"'), None, ("built", 3, {})),
    ("spaces around values", _lines(" 1 , 34 , 52000 ,2020-01-15, retail "), None, ("built", 1, {})),
    (
        "a record with too many fields",
        _lines(ROWS[0], ROWS[1] + ",surplus", ROWS[2]),
        None,
        ("built", 2, {"malformed_row": 1}),
    ),
    (
        "a record with too few fields",
        _lines(ROWS[0], "2,51,81000.5", ROWS[2]),
        None,
        ("built", 2, {"malformed_row": 1}),
    ),
    ("a truncated last line", LF + b"4,40,10", None, ("built", 3, {"malformed_row": 1})),
    ("an unclosed quote at the end", LF + b'4,40,"10', None, ("built", 3, {"malformed_row": 1})),
    ("an empty column", _lines("1,34,,2020-01-15,retail", "2,51,,2019-06-01,private"), None, ("built", 2, {})),
    (
        "a trailing delimiter on every line",
        _lines(*(r + "," for r in ROWS), header=HEADER + ","),
        None,
        ("built", 3, {}),
    ),
    ("two blank header names", _lines("1,34,1,2020-01-15,retail,x,y", header=HEADER + ",,"), None, ("built", 1, {})),
    (
        "a huge field",
        _lines("1,34,1,2020-01-15,retail," + "x" * 300_000, header=HEADER + ",note"),
        None,
        ("built", 1, {}),
    ),
    (
        "thousands separators",
        _lines(ROWS[0], '2,51,"81,000",2019-06-01,private'),
        None,
        ("built", 1, {"wrong_type": 1}),
    ),
    (
        "placeholders declared missing",
        _lines("1,34,n/a,2020-01-15,retail"),
        ('files = ["customers.csv"]', 'files = ["customers.csv"]\ncsv = { na_values = ["", "n/a"] }'),
        ("built", 1, {}),
    ),
    (
        "tab-delimited",
        LF.replace(b",", b"\t"),
        ('files = ["customers.csv"]', 'files = ["customers.csv"]\ncsv = { delimiter = "\\t" }'),
        ("built", 3, {}),
    ),
    (
        "semicolons and decimal commas",
        _lines("1;34;52000,5;2020-01-15;retail", header=HEADER.replace(",", ";")),
        ('files = ["customers.csv"]', 'files = ["customers.csv"]\ncsv = { delimiter = ";", decimal = "," }'),
        ("built", 1, {}),
    ),
    (
        "cp1252 declared",
        _lines("1,34,1,2020-01-15,retail,Zürich €", header=HEADER + ",city").decode().encode("cp1252"),
        ('files = ["customers.csv"]', 'files = ["customers.csv"]\ncsv = { encoding = "cp1252" }'),
        ("built", 1, {}),
    ),
    ("zero-padded ids", _lines("0001,34,1,2020-01-15,retail", "0002,40,1,2020-01-15,retail"), None, ("built", 2, {})),
    ("duplicate keys", _lines(ROWS[0], ROWS[0]), None, ("built", 1, {"duplicate_key": 1})),
    (
        "inf and nan",
        _lines(ROWS[0], "2,51,inf,2019-06-01,private", "3,29,NaN,2021-03-09,retail"),
        None,
        ("built", 1, {"wrong_type": 2}),
    ),
    (
        "latin-1 bytes declared utf-8",
        _lines("1,34,1,2020-01-15,retail,Zürich", header=HEADER + ",city").decode().encode("latin-1"),
        None,
        ("stops", "is not valid utf-8 text (byte 0xfc on line 2)"),
    ),
    ("utf-16", LF.decode().encode("utf-16"), None, ("stops", "is not valid utf-8 text")),
    ("a NUL byte", _lines(ROWS[0], "2,51,1\x00,2019-06-01,private"), None, ("stops", "holds a NUL byte on line 3")),
    (
        "duplicate header names",
        _lines("1,34,1,2020-01-15,retail,x", header=HEADER + ",age"),
        None,
        ("stops", "has two columns named 'age' (columns 2 and 6)"),
    ),
    ("the wrong delimiter", LF.replace(b",", b";"), None, ("stops", "has no column 'id'")),
    ("a header only", (HEADER + "\n").encode(), None, ("stops", "has a header but no data rows")),
    ("blank lines only", b"\n\n\r\n", None, ("stops", "is empty")),
    ("an empty file", b"", None, ("stops", "is empty")),
    (
        "every row of the wrong type",
        _lines(*[f"{n},old,1,2020-01-15,retail" for n in range(1, 5)]),
        ("max_rejected_share = 1.0\n", ""),
        ("stops", "4 of 4 rows (100%) would be quarantined"),
    ),
]


@pytest.mark.parametrize(
    ("content", "edit", "expected"), [case[1:] for case in CORPUS], ids=[case[0] for case in CORPUS]
)
def test_odd_and_broken_text_files(
    build: Builder, previous: Path, tmp_path: Path, content: bytes, edit: tuple[str, str] | None, expected: tuple
) -> None:
    db = tmp_path / "w.duckdb"
    shutil.copyfile(previous, db)
    before = file_digest(db)
    data = _tiny(tmp_path, "", name="case")
    (data / "customers.csv").write_bytes(content)
    spec = SPEC.replace(*edit, 1) if edit else SPEC
    if expected[0] == "stops":
        with pytest.raises(SegriskError) as caught:
            build("tiny", data, db, spec_text=spec)
        message = str(caught.value)
        assert expected[1] in message and "\n" not in message, message
        assert file_digest(db) == before
    else:
        summary = build("tiny", data, db, spec_text=spec)
        customers = next(s for s in summary.sources if s.kind == "customers")
        assert customers.rows_out == expected[1]
        assert customers.quarantine_by_rule == expected[2]
        with duckdb.connect(str(db), read_only=True) as con:
            raw, kept, rejected = con.execute(
                "SELECT (SELECT count(*) FROM raw_customers), (SELECT count(*) FROM stg_customers), "
                "(SELECT count(*) FROM quarantine_customers)"
            ).fetchall()[0]
            lines = con.execute("SELECT reason FROM quarantine_customers WHERE rule = 'malformed_row'").fetchall()
        assert raw == customers.rows_in == kept + rejected  # nothing is lost
        assert all(reason.startswith("line ") for (reason,) in lines)
    assert not list(tmp_path.glob(".*building*"))


# -- random files against random specs ---------------------------------------------------------------------
_FIELD = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.dates().map(str),
    st.sampled_from(["", "NA", "n/a", "retail", "private", "yes", "no", " 7 ", "1,5", "2020-13-45", "'", '"']),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12),
)
_TYPES = {"int": "numeric", "float": "amount", "string": "categorical", "date": "timestamp", "bool": "numeric"}


@st.composite
def random_source(draw: st.DrawFn) -> tuple[str, bytes]:
    """A customer spec of 1-4 typed columns with random rules, and a CSV for it: random values,
    quotes, ragged records, line endings and blank lines."""
    names = [f"c{i}" for i in range(draw(st.integers(1, 4)))]
    spec = [
        'name = "random"',
        "[customers]",
        'files = ["customers.csv"]',
        f"max_rejected_share = {draw(st.sampled_from([0.0, 0.5, 1.0]))}",
    ]
    spec += [
        "[[customers.columns]]",
        'name = "customer_id"',
        'source = "id"',
        f'type = "{draw(st.sampled_from(["int", "string"]))}"',
        'role = "id"',
        'description = "Key."',
    ]
    for name in names:
        kind = draw(st.sampled_from(sorted(_TYPES)))
        spec += [
            "[[customers.columns]]",
            f'name = "{name}"',
            f'type = "{kind}"',
            f'role = "{_TYPES[kind]}"',
            'description = "A column."',
        ]
        if kind in ("int", "float") and draw(st.booleans()):
            spec.append(f"min = {draw(st.integers(-5, 5))}")
        if draw(st.booleans()):
            spec.append("required = true")
    rows = []
    for number in range(draw(st.integers(1, 12))):
        fields = [draw(st.sampled_from([str(number), f"C-{number:03d}", "", str(number % 3)]))] + [
            draw(_FIELD) for _ in names
        ]
        fields = fields[: draw(st.integers(len(fields) - 1, len(fields)))] if draw(st.integers(0, 9)) == 0 else fields
        if draw(st.integers(0, 9)) == 0:
            fields.append("surplus")
        rows.append(",".join(f'"{f.replace(chr(34), chr(34) * 2)}"' if draw(st.booleans()) else f for f in fields))
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = ending.join([",".join(["id", *names]), *rows]) + draw(st.sampled_from([ending, ""]))
    return "\n".join(spec) + "\n", text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig"])))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=random_source())
def test_random_files_build_or_stop_with_one_sentence(case: tuple[str, bytes], tmp_path: Path) -> None:
    spec_text, content = case
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # one folder per example: hypothesis reuses tmp_path
    (folder / "customers.csv").write_bytes(content)
    db = folder / "w.duckdb"
    try:
        spec = parse_spec(spec_text, "random.toml")
        summary = build_warehouse(spec, spec_text, folder, db)
    except SegriskError as exc:
        assert "\n" not in str(exc) and str(exc).endswith("."), str(exc)
        assert not db.exists()
    else:
        customers = summary.sources[0]
        with duckdb.connect(str(db), read_only=True) as con:
            raw, kept, rejected = con.execute(
                "SELECT (SELECT count(*) FROM raw_customers), (SELECT count(*) FROM stg_customers), "
                "(SELECT count(*) FROM quarantine_customers)"
            ).fetchall()[0]
        assert raw == customers.rows_in == kept + rejected
        assert rejected <= spec.customers.max_rejected_share * raw
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


# -- declared cleaning and generated keys -------------------------------------------------------------------
CLEANING_SPEC = """
name = "cleaning"
[customers]
files = ["c.csv"]
[[customers.columns]]
name = "customer_id"
generated = "row_number"
type = "int"
role = "id"
[[customers.columns]]
name = "annual_income"
source = "Monthly Income"
type = "float"
role = "amount"
measure = "income"
remove = [",", "$", "_"]
scale = 12
min = 0
description = "Gross income, monthly in the file, times 12."
[[customers.columns]]
name = "card_use"
source = "Util %"
type = "float"
role = "numeric"
remove = ["%", "_"]
scale = 0.01
max = 1.5
[[customers.columns]]
name = "has_records"
source = "Records"
type = "bool"
role = "categorical"
description = "A derogatory record on file: a risk flag, not a product."
"""


def test_a_file_without_an_id_gets_row_numbers_and_declared_cleaning(build: Builder, tmp_path: Path) -> None:
    """A ``_source_row`` source gave ``unexpected KeyError``; ``23_`` and ``1,234`` could only be
    quarantined; monthly income and percentages could not be declared."""
    (tmp_path / "c.csv").write_text(
        'Monthly Income,Util %,Records\n"$1,234",23_%,no\n2_500,150%,yes\n"3,000.50",40%,no\n100,200%,no\n'
    )
    summary = build(
        "cleaning",
        tmp_path,
        tmp_path / "c.duckdb",
        spec_text=CLEANING_SPEC.replace("\n[customers]", "\n[customers]\nmax_rejected_share = 1.0", 1),
    )
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        staged = con.execute("SELECT customer_id, annual_income, card_use FROM stg_customers ORDER BY 1").fetchall()
        mart = con.execute("SELECT customer_id, annual_income, card_use FROM customers ORDER BY 1").fetchall()
        rejected = con.execute("SELECT source_row, rule, column_name FROM quarantine_customers").fetchall()
        comment = con.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'customers' AND column_name = 'card_use'"
        ).fetchall()
        supports = dict(con.execute("SELECT capability, is_supported FROM meta_capabilities").fetchall())
    assert staged == mart
    assert staged == [(1, 1234 * 12, pytest.approx(0.23)), (2, 2500 * 12, 1.5), (3, 3000.5 * 12, pytest.approx(0.4))]
    assert rejected == [(4, "out_of_range", "card_use")]
    assert comment == [("card_use, from file column 'Util %' (the spec has no description).",)]
    assert supports["cross_sell"] is False  # has_records is no product: it was not declared one


# -- capabilities say what train all does ------------------------------------------------------------------
NO_TARGET_WITH_SNAPSHOTS = """
name = "no-target"
[customers]
files = ["c.csv"]
[[customers.columns]]
name = "customer_id"
type = "string"
role = "id"
[[customers.columns]]
name = "age"
type = "int"
role = "numeric"
[[customers.columns]]
name = "annual_income"
type = "float"
role = "amount"
measure = "income"
[[customers.columns]]
name = "has_records"
type = "bool"
role = "categorical"
[snapshots]
files = ["s.csv"]
[[snapshots.columns]]
name = "customer_id"
type = "string"
role = "id"
[[snapshots.columns]]
name = "period"
type = "date"
role = "timestamp"
[[snapshots.columns]]
name = "days_past_due"
type = "int"
role = "numeric"
"""


def test_train_all_runs_exactly_what_meta_capabilities_says(
    build: Builder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Warnings were 'not supported' yet ran; 'supported' yet skipped, since without a target no PD
    model can exist; a has_records flag switched cross-sell on."""
    import random

    from dashboard.cli import main

    rng = random.Random(3)
    customers = [
        f"C{n:04d},{rng.randint(20, 70)},{rng.randint(10, 90) * 1000},{rng.choice(['yes', 'no'])}" for n in range(60)
    ]
    (tmp_path / "c.csv").write_text("customer_id,age,annual_income,has_records\n" + "\n".join(customers) + "\n")
    snapshots = [f"C{n:04d},2026-0{m}-01,{rng.choice([0, 0, 30])}" for n in range(60) for m in (1, 2, 3)]
    (tmp_path / "s.csv").write_text("customer_id,period,days_past_due\n" + "\n".join(snapshots) + "\n")
    db = build("no-target", tmp_path, tmp_path / "n.duckdb", spec_text=NO_TARGET_WITH_SNAPSHOTS).db_path
    with duckdb.connect(str(db), read_only=True) as con:
        capabilities = {name: (ok, why) for name, ok, why in con.execute("SELECT * FROM meta_capabilities").fetchall()}
    assert {name: ok for name, (ok, _) in capabilities.items()} == {
        "personas": True,
        "rfm": False,
        "risk_model": False,
        "early_warnings": False,
        "cross_sell": False,
        "statistics": True,
    }
    assert "needs a PD model" in capabilities["early_warnings"][1]
    assert "the spec declares none" in capabilities["cross_sell"][1]
    capsys.readouterr()
    assert main(["train", "all", "--db", str(db)]) == 0
    said = capsys.readouterr().out
    with duckdb.connect(str(db), read_only=True) as con:
        ran = {row[0] for row in con.execute("SELECT model_kind FROM ml_model_runs").fetchall()}
    assert ran == {"segments", "statistics"}
    for model, capability in (
        ("rfm", "rfm"),
        ("risk", "risk_model"),
        ("warnings", "early_warnings"),
        ("cross-sell", "cross_sell"),
    ):
        assert f"Skipped {model}: {capability} {capabilities[capability][1]}." in said


# -- related tables and the built-in specs of real datasets --------------------------------------------------
def _berka_withdrawals_by_hand(folder: Path) -> int:
    """Withdrawals of loan owners' accounts, joined in plain Python: what the berka spec's query must give."""
    import csv as csv_module

    def rows(name: str) -> list[dict]:
        with (folder / name).open(newline="") as handle:
            return list(csv_module.DictReader(handle, delimiter=";"))

    owners = {d["account_id"] for d in rows("disp.asc") if d["type"] == "OWNER"}
    loans = {loan["account_id"] for loan in rows("loan.asc")}
    return sum(
        1
        for t in rows("trans.asc")
        if t.get("bank") is not None and t["account_id"] in owners & loans and t["type"] in ("VYDAJ", "VYBER")
    )


def test_berka_related_tables_reach_clients_through_dispositions(build: Builder, tmp_path: Path) -> None:
    """Transactions belong to accounts and reach clients only through disp.asc: each source is a
    read-only query over the files it names; the cut file's truncated last record is quarantined."""
    summary = build("berka", FIXTURES, tmp_path / "berka.duckdb")
    by_kind = {s.kind: s for s in summary.sources}
    assert by_kind["transactions"].rows_out == _berka_withdrawals_by_hand(FIXTURES / "berka")
    assert by_kind["transactions"].quarantine_by_rule == {"malformed_row": 1}
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        (file, row, reason), *_ = con.execute(
            "SELECT source_file, source_row, reason FROM quarantine_transactions"
        ).fetchall()
        loans = con.execute("SELECT count(*), sum(is_defaulted::INT) FROM customers").fetchall()[0]
        inputs = con.execute("SELECT source_file, rows_read FROM meta_sources WHERE source = 'transactions'").fetchall()
        unknown = con.execute(
            "SELECT count(*) FROM stg_transactions WHERE customer_id NOT IN (SELECT customer_id FROM customers)"
        ).fetchall()
    assert (
        file == "berka/trans.asc"
        and reason.startswith("table trans: line ")
        and "fields where the header has 10" in reason
    )
    assert row == sum(1 for _ in (FIXTURES / "berka" / "trans.asc").open(newline="")) - 1  # the file's last record
    assert loans[0] == 126 and 0 < loans[1] < 126
    assert dict(inputs)["berka/disp.asc"] > 0 and "berka/trans.asc" in dict(inputs)
    assert unknown == [(0,)]


def test_a_source_query_reaches_no_other_file(build: Builder, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,x\n1,2\n")
    spec = (
        'name = "q"\n[customers]\ntables = { a = "a.csv" }\n'
        "query = \"SELECT a.id AS customer_id, s.* FROM a, read_csv('/etc/passwd') AS s\"\n"
        '[[customers.columns]]\nname = "customer_id"\ntype = "int"\nrole = "id"\n'
    )
    with pytest.raises(SegriskError, match="customers: the spec's query failed: Permission Error"):
        build("q", tmp_path, tmp_path / "q.duckdb", spec_text=spec)


def test_loan_prediction_text_ids_monthly_incomes_and_a_decision_outcome(build: Builder, tmp_path: Path) -> None:
    summary = build("loan-prediction", FIXTURES, tmp_path / "lp.duckdb")
    with duckdb.connect(str(summary.db_path), read_only=True) as con:
        first = con.execute(
            "SELECT customer_id, annual_income, loan_amount, dependents, is_defaulted FROM customers ORDER BY customer_id LIMIT 2"
        ).fetchall()
    # LP001002: monthly 5849, no loan amount, 0 dependants, approved; LP001003: 4583, 128 thousand, 1, refused.
    assert first == [("LP001002", 5849 * 12, None, 0, False), ("LP001003", 4583 * 12, 128_000, 1, True)]


@needs_shared_data
@pytest.mark.parametrize("spec", ["german-credit", "taiwan-default", "online-retail", "berka", "loan-prediction"])
def test_every_public_dataset_builds_and_trains_from_its_builtin_spec(
    build: Builder, spec: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dashboard.cli import main

    db = build(spec, SHARED_DATA, tmp_path / f"{spec}.duckdb").db_path
    capsys.readouterr()
    assert main(["train", "all", "--db", str(db)]) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        supported = {
            c for (c,) in con.execute("SELECT capability FROM meta_capabilities WHERE is_supported").fetchall()
        }
        ran = {k for (k,) in con.execute("SELECT model_kind FROM ml_model_runs").fetchall()}
    names = {
        "personas": "segments",
        "rfm": "rfm",
        "risk_model": "risk",
        "early_warnings": "warnings",
        "cross_sell": "cross_sell",
        "statistics": "statistics",
    }
    assert ran == {names[c] for c in supported}


def test_scale_on_long_snapshots_turns_a_percentage_into_the_share_rules_read(build: Builder, tmp_path: Path) -> None:
    """``scale`` was refused on long-format snapshots, so a utilization in percent could not drive
    the high-utilization rule (which reads a share: 0.9)."""
    spec = NO_TARGET_WITH_SNAPSHOTS.replace(
        'name = "days_past_due"\ntype = "int"\nrole = "numeric"',
        'name = "utilization"\nsource = "util_pct"\ntype = "float"\nrole = "numeric"\nremove = ["%"]\nscale = 0.01',
    )
    (tmp_path / "c.csv").write_text("customer_id,age,annual_income,has_records\nC1,40,50000,no\nC2,50,60000,no\n")
    (tmp_path / "s.csv").write_text(
        "customer_id,period,util_pct\nC1,2026-01-01,20%\nC1,2026-02-01,95%\nC2,2026-01-01,50%\nC2,2026-02-01,50%\n"
    )
    db = build("no-target", tmp_path, tmp_path / "s.duckdb", spec_text=spec).db_path
    with duckdb.connect(str(db), read_only=True) as con:
        latest = con.execute("SELECT customer_id, latest_utilization FROM customers ORDER BY 1").fetchall()
    assert latest == [("C1", pytest.approx(0.95)), ("C2", pytest.approx(0.5))]

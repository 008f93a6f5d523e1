"""Draft a dataset spec from a bank's files (``segrisk spec draft FILE...``).

The draft is a starting point a person edits, never a finished spec: every guess is written as
a plain key the person can check, with the evidence beside it as a comment (the values seen,
their counts, the ranges), and every description is a ``TODO``. What it guesses, per file:

* how to read it: format, encoding (UTF-8, with or without a byte-order mark, else cp1252 or
  latin-1), delimiter, line endings, decimal comma, missing-value placeholders;
* per column: a canonical snake_case name, a type (with a strptime ``format`` for text dates),
  thousands separators and stray characters, and a role: the customer key, the target (with its
  default and non-default values from the data), money columns with their ``measure``, codes,
  categories, free text;
* which source the file is: ``customers`` unless its shape says ``transactions`` (several rows per
  key with a date and an amount) or ``snapshots`` (several rows per key with a period).

The text is checked with :func:`warehouse.spec.parse_spec` before it is returned. Keys that an
older or newer spec format may lack (``generated``, ``scale``, ``remove``, ``product``) are written
as live keys only where :class:`~warehouse.spec.ColumnSpec` has them, else as comments.

This module reads files with Polars and the standard library only: it must not import the models
or the dashboard.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import re
import shlex
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .errors import SourceError, SpecError
from .sources import check_header
from .spec import CUSTOMER_KEY, SNAPSHOT_MEASURES, ColumnSpec, SourceSpec, parse_spec

#: Rows read from each file to guess from; the comments say when a file has more.
SAMPLE_ROWS = 50_000
#: Bytes read from a text file at most (its first SAMPLE_ROWS rows usually fit many times over).
SAMPLE_BYTES = 32 << 20
_LOADER_SUFFIXES = (".csv", ".txt", ".tsv", ".parquet", ".xlsx")
_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_WORDS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

# Placeholders for a missing value. The first set means missing wherever it occurs; the second
# only in a column whose other values are numbers or dates (in a text column "-" may be a value).
_NA_ALWAYS = {"na", "n/a", "#n/a", "nan", "null", "nil"}
_NA_IN_NUMBERS = {"?", "-", "--", ".", "none", "missing", "#value!", "#div/0!"}
_BOOL_PAIRS = ({"true", "false"}, {"yes", "no"}, {"y", "n"}, {"t", "f"}, {"0", "1"})
_BOOL_WORDS = set().union(*_BOOL_PAIRS)

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT_DOT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_FLOAT_COMMA = re.compile(r"^[+-]?(\d+[.,]?\d*|[.,]\d+)([eE][+-]?\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_DECIMAL_DOT = re.compile(r"^[+-]?\d+\.\d+$")
_GROUPED = {",": re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$"), ".": re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$")}
_STRAY = re.compile(r"[^\d.,+\-]+")
#: What may stand around or inside the digits of a number and be removed before reading it.
_REMOVABLE = {
    "$", "€", "£", "¥", "₹", "%", "'", "eur", "usd", "gbp", "chf", "czk", "kč", "pln", "sek", "nok", "dkk",
    "cad", "aud", "jpy", "inr", "dm", "nt$",
}  # fmt: skip
_CURRENCY_PATTERN = r"(?i)[\s$€£¥₹%']|eur|usd|gbp|chf|czk|kč"

_DATE_FORMATS = (
    "%Y-%m-%d",
    "%d.%m.%Y",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%Y/%m/%d",
    "%d-%m-%Y",
    "%d.%m.%y",
    "%d/%m/%y",
    "%m/%d/%y",
    "%d-%b-%Y",
    "%d %b %Y",
    "%Y-%m",
)
_TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%y%m%d %H:%M:%S",
    "%Y%m%d %H:%M:%S",
)
#: Digits-only dates (930705, 20230105) are read as dates only where the name says date.
_DIGIT_DATE_FORMATS = {6: "%y%m%d", 8: "%Y%m%d"}
_DATE_WORDS = {
    "date", "dt", "day", "dob", "birth", "birthday", "birthdate", "time", "timestamp", "at", "on", "since",
    "opened", "issued", "period", "month", "when", "start", "end", "expiry", "expires", "maturity", "created",
    "updated", "booked", "posted", "valid",
}  # fmt: skip
_PERIOD_WORDS = {"period", "month", "snapshot", "as", "asof", "reporting", "statement", "yyyymm"}

_ID_WORDS = {"id", "no", "nr", "num", "number", "key", "code"}
_CUSTOMER_WORDS = {"customer", "client", "cust", "member", "borrower", "party", "person", "applicant"}
_ACCOUNT_WORDS = {"account", "acct", "contract", "loan", "application", "app"}

_TARGET_NAMES = {
    "default", "defaulted", "is_default", "default_flag", "bad", "is_bad", "bad_flag", "good_bad", "risk",
    "credit_risk", "status", "loan_status", "target", "y", "label", "outcome", "class", "delinquent",
    "delinquency", "defaulter", "approved", "approval",
}  # fmt: skip
_TARGET_WORDS = {"default", "defaulted", "delinquent", "delinquency", "defaulter", "bad"}
_OUTCOME_SUBJECTS = {"loan", "credit", "account", "payment", "repayment", "default", "risk", "contract", "application"}
_APPROVAL_WORDS = {"approved", "approval", "approve", "accepted", "granted"}
#: Values that mean default, best first (compared in lower case, as the build does).
_POSITIVE_VALUES = (
    "bad", "default", "defaulted", "charged off", "charged_off", "written off", "delinquent", "late",
    "yes", "y", "true", "t", "1", "1.0", "j", "ja", "b",
)  # fmt: skip
_REFUSAL_VALUES = ("n", "no", "0", "0.0", "false", "f", "refused", "rejected", "declined", "denied")

_MONEY_WORDS = {
    "income", "salary", "salaries", "wage", "wages", "earnings", "amount", "amt", "balance", "bal", "limit",
    "loan", "bill", "payment", "payments", "price", "deposit", "deposits", "savings", "debt", "debts",
    "instalment", "instalments", "installment", "installments", "emi", "rent", "mortgage", "fee", "fees",
    "spend", "spending", "turnover", "revenue", "cost", "money", "cash", "withdrawal", "outstanding",
    "principal", "overdraft", "arrears", "eur", "usd", "gbp", "chf",
}  # fmt: skip
_NOT_MONEY_WORDS = {
    "term", "duration", "months", "month", "days", "day", "years", "year", "count", "cnt", "number", "num",
    "nr", "no", "rate", "ratio", "pct", "percent", "share", "score", "history", "age", "dependents", "id",
    "flag", "times", "freq", "frequency", "utilization", "util", "status", "type", "code",
}  # fmt: skip
_COUNT_WORDS = _NOT_MONEY_WORDS | {"children", "kids", "dpd", "delay", "pay", "level", "grade", "rank"}
#: Words of other languages' exports, read as the English word the guesses look for.
_SYNONYMS = {
    "saldo": "balance", "einkommen": "income", "gehalt": "salary", "betrag": "amount", "kredit": "loan",
    "ingresos": "income", "importe": "amount", "limite": "limit", "reddito": "income", "importo": "amount",
}  # fmt: skip
_TALLY_WORDS = {"count", "cnt", "number", "num", "children", "kids", "dependents", "times", "days", "months", "years"}
_NUMBER_LIKE_WORDS = {"account", "acct", "iban", "phone", "zip", "postcode", "postal", "card", "bank", "telephone"}
_MONTHLY_WORDS = {"monthly", "mthly", "per_month", "pm"}


# --- reading ---------------------------------------------------------------------------


@dataclass
class _Sample:
    """A file's first rows as the loader would name its columns, with what reading it showed."""

    label: str
    file_format: str
    frame: pl.DataFrame
    complete: bool
    total_rows: int | None
    is_text: bool = False
    encoding: str = "utf-8"
    delimiter: str = ","
    notes: list[str] = field(default_factory=list)


def _read_text(path: Path, label: str) -> _Sample:
    size = path.stat().st_size
    with path.open("rb") as handle:
        raw = handle.read(SAMPLE_BYTES)
    truncated = size > len(raw)
    if not raw.strip():
        raise SourceError(f"File {label} is empty.")
    notes: list[str] = []
    encoding, bom = _detect_encoding(raw, truncated)
    if encoding == "utf-16":
        text = raw[: len(raw) // 2 * 2].decode("utf-16", errors="replace")
    else:
        if b"\x00" in raw:
            line = raw[: raw.index(b"\x00")].count(b"\n") + 1
            raise SourceError(
                f"File {label} holds a NUL byte on line {line}, which no text export has: "
                "check that it is a delimited text file and that it was copied whole."
            )
        if truncated:
            raw = raw[: max(raw.rfind(b"\n"), raw.rfind(b"\r")) + 1] or raw
        text = raw.decode(encoding, errors="replace")
    del raw
    text = text.removeprefix("\ufeff")
    notes.append(_encoding_note(encoding, bom, text))
    endings = _line_endings(text)
    delimiter = _detect_delimiter(text, path.suffix.lower())
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=False)
    header = next(reader, [])
    if not any(name.strip() for name in header):
        raise SourceError(f"File {label} has no header line: its first line should name the columns.")
    check_header(f"File {label}", header)
    width = len(header)
    records: list[list[str]] = []
    ragged = 0
    for record in reader:
        if not record:
            continue
        if len(record) != width:
            ragged += 1
            record = record[:width] if len(record) > width else record + [""] * (width - len(record))
        records.append(record)
        if len(records) >= SAMPLE_ROWS:
            break
    more = next(reader, None) is not None
    complete = not truncated and not more
    if truncated and records and not more:
        records.pop()  # the sample's last line may have been cut
    del text
    if not records:
        raise SourceError(f"File {label} has a header but no data rows.")
    names = [name if name.strip() else f"unnamed_{i}" for i, name in enumerate(header)]
    frame = pl.DataFrame(records, schema=[(name, pl.String) for name in names], orient="row")
    notes.append(
        f"{_DELIMITER_WORDS[delimiter]}-delimited, {endings} (the loader reads LF, CRLF, CR and mixed line endings alike)."
    )
    if ragged:
        notes.append(
            f"{ragged:,} record(s) in the sample have another number of fields than the header: the build "
            "quarantines them as malformed_row, with their line."
        )
    sample = _Sample(label, "csv", frame, complete, len(records) if complete else None, True, encoding, delimiter)
    sample.notes = notes
    return sample


def _detect_encoding(raw: bytes, truncated: bool) -> tuple[str, bool]:
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8", True
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16", True
    body = raw[: raw.rfind(b"\n") + 1] if truncated and b"\n" in raw else raw
    for encoding in ("utf-8", "cp1252"):
        try:
            body.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding, False
    return "latin-1", False


def _encoding_note(encoding: str, bom: bool, text: str) -> str:
    if encoding == "utf-8":
        plain = "plain ASCII, read as UTF-8" if text.isascii() else "UTF-8"
        return f"Encoding: {plain}" + (" with a byte-order mark (the loader drops it)." if bom else ".")
    if encoding == "utf-16":
        return "Encoding: UTF-16 (it has a byte-order mark)."
    accented = sorted({ch for ch in text[:200_000] if not ch.isascii()})[:12]
    shown = "".join(accented)
    return (
        f"Encoding: not UTF-8; read as {encoding} ({'Windows Western European' if encoding == 'cp1252' else 'ISO 8859-1'}),"
        f" which gives the letters {shown!r}: if they look wrong, try another encoding (e.g. cp1250 for Czech)."
    )


def _line_endings(text: str) -> str:
    crlf = text.count("\r\n")
    cr = text.count("\r") - crlf
    lf = text.count("\n") - crlf
    kinds = [name for name, count in (("CRLF", crlf), ("CR (old Mac)", cr), ("LF", lf)) if count]
    if not kinds:
        return "one line"
    if len(kinds) == 1:
        return f"{kinds[0]} line endings"
    return f"mixed line endings ({', '.join(kinds)})"


def _detect_delimiter(text: str, suffix: str) -> str:
    """The delimiter that splits the first lines into as many fields as the header, most often."""
    head = text[:200_000]
    best: tuple[float, int, int] | None = None
    chosen = "\t" if suffix in (".tsv", ".tab") else ","
    for rank, delimiter in enumerate(_DELIMITERS):
        reader = csv.reader(io.StringIO(head, newline=""), delimiter=delimiter, quotechar='"', strict=False)
        rows = [row for _, row in zip(range(60), reader, strict=False) if row]
        if len(text) > len(head) and len(rows) > 2:
            rows = rows[:-1]
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        same = sum(len(row) == width for row in rows[1:]) / max(1, len(rows) - 1)
        preferred = 1 if (delimiter == "\t") == (suffix in (".tsv", ".tab")) else 0
        score = (same, preferred, width if same == 1 else -rank)
        if best is None or score > best:
            best, chosen = score, delimiter
    return chosen


def _read_parquet(path: Path, label: str) -> _Sample:
    try:
        scan = pl.scan_parquet(path)
        total = int(scan.select(pl.len()).collect().item())
        frame = scan.head(SAMPLE_ROWS).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SourceError(f"File {label} is not a readable Parquet file ({_first_line(exc)}).") from exc
    if frame.height == 0:
        raise SourceError(f"File {label} has no rows.")
    return _Sample(label, "parquet", frame, total <= SAMPLE_ROWS, total, notes=["Parquet: the file's own types."])


def _read_excel(path: Path, label: str) -> _Sample:
    try:
        frame = pl.read_excel(path)
    except Exception as exc:  # fastexcel raises its own exception types
        raise SourceError(f"File {label} could not be read as an Excel workbook: {_first_line(exc)}.") from exc
    if frame.height == 0:
        raise SourceError(f"File {label} has a header but no data rows.")
    renames = {name: f"unnamed_{i}" for i, name in enumerate(frame.columns) if not name.strip()}
    frame = frame.rename(renames) if renames else frame
    total = frame.height
    note = 'Excel: the first sheet is read; set sheet = "NAME" for another.'
    return _Sample(label, "xlsx", frame.head(SAMPLE_ROWS), total <= SAMPLE_ROWS, total, notes=[note])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# --- columns ---------------------------------------------------------------------------


def canonical_name(header: str) -> str:
    """A file's column name as a warehouse name: ``Credit amount`` -> ``credit_amount``,
    ``ApplicantIncome`` -> ``applicant_income``, ``default.payment.next.month`` ->
    ``default_payment_next_month``; a leading digit gets ``col_`` before it."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", header)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = unicodedata.normalize("NFKD", text.replace("ß", "ss")).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    if not text:
        return "column"
    return f"col_{text}" if text[0].isdigit() else text


@dataclass
class _Column:
    """One column of a file and what the draft guessed about it."""

    source: str
    name: str
    tokens: set[str]
    values: pl.Series  # trimmed text, null where missing
    native: pl.DataType | None
    rows: int
    type: str = "string"
    role: str = "attribute"
    format: str | None = None
    remove: list[str] = field(default_factory=list)
    measure: str | None = None
    measure_hint: str | None = None
    unit: str | None = None
    positive: list[str] = field(default_factory=list)
    negative: list[str] = field(default_factory=list)
    generated: bool = False
    product_of: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    na_tokens: set[str] = field(default_factory=set)
    family: str | None = None
    is_codes: bool = False
    decimal: str = "."
    kind: str = "customers"
    fixed: bool = False  # role decided by the file's shape

    @property
    def present(self) -> pl.Series:
        return self.values.drop_nulls()

    @property
    def is_number(self) -> bool:
        return self.type in ("int", "float")

    @property
    def distinct(self) -> int:
        return self.present.n_unique()

    def counts(self, lower: bool = False) -> list[tuple[str, int]]:
        values = self.present.str.to_lowercase() if lower else self.present
        counted = values.value_counts(sort=True, name="n")
        return [(str(value), int(n)) for value, n in counted.iter_rows()]

    @property
    def unique(self) -> bool:
        present = self.present
        return present.len() > 0 and present.n_unique() == present.len()


def _tokens(header: str, name: str) -> set[str]:
    words = set(name.split("_"))
    words |= {word.rstrip("0123456789") for word in words if word.rstrip("0123456789")}
    compact = name.replace("_", "")
    for word in ("customer", "client", "cust", "account", "loan", "income", "amount", "balance", "limit"):
        if compact.startswith(word) or compact.endswith(word):
            words.add(word)
    if compact.startswith(("kunde", "klient", "cliente")):
        words.add("customer")  # German, Czech, Spanish and Italian exports
    words |= {english for word, english in _SYNONYMS.items() if word in compact}
    for suffix, word in (("id", "id"), ("nummer", "number"), ("number", "number"), ("nr", "nr")):
        if compact.endswith(suffix) and len(compact) > len(suffix):
            words.add(word)
    if compact.endswith("no") and compact[:-2] in _CUSTOMER_WORDS | _ACCOUNT_WORDS:
        words.add("no")
    return words


def _text_values(series: pl.Series) -> pl.Series:
    text = series if series.dtype == pl.String else series.cast(pl.String, strict=False)
    return text.str.strip_chars()


def _parse_numbers(values: pl.Series, decimal: str, remove: list[str]) -> pl.Series:
    """The numbers the loader would read: removals, then the first ',' as the decimal point."""
    text = values
    for piece in remove:
        text = text.str.replace_all(piece, "", literal=True)
    if decimal == ",":
        text = text.str.replace(",", ".", literal=True)
    parsed = text.cast(pl.Float64, strict=False)
    return pl.select(pl.when(parsed.is_finite()).then(parsed)).to_series()


def _date_candidates(col: _Column, sample: pl.Series, day_first: bool) -> list[str | None]:
    first = sample[0]
    if _INT.match(first):
        digits = _DIGIT_DATE_FORMATS.get(len(first))
        if digits and col.tokens & _DATE_WORDS and sample.str.len_chars().n_unique() == 1:
            return [digits]
        return []
    if not re.search(r"\d", first) or not re.search(r"[-./: ]", first):
        if not re.match(r"^\d{1,2} ?[A-Za-z]{3}", first):
            return []
    formats: list[str | None] = list(_TIMESTAMP_FORMATS if ":" in first else _DATE_FORMATS)
    if ":" in first and re.match(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}", first):
        formats.append(None)  # ISO with fractions or a zone: read without a format
    if not day_first:
        # An export without a decimal comma is more likely American: month first when ambiguous.
        formats.sort(key=lambda f: 0 if f and f.startswith("%m/") else 1)
    return formats


def _guess_date(col: _Column, present: pl.Series, day_first: bool) -> bool:
    sample = present.head(5_000)
    candidates = _date_candidates(col, sample, day_first)
    results: list[tuple[float, str | None]] = []
    for fmt in candidates:
        kind = "timestamp" if fmt is None or "%H" in fmt else "date"
        try:
            if kind == "date":
                parsed = sample.str.to_date(fmt, strict=False)
            else:
                parsed = sample.str.to_datetime(fmt, strict=False, time_unit="us")
        except (pl.exceptions.PolarsError, ValueError):
            continue
        share = 1 - parsed.null_count() / sample.len()
        if share >= 0.98:
            years = parsed.dt.year().drop_nulls()
            if years.len() and (years.min() < 1850 or years.max() > 2200):
                continue
            results.append((share, fmt))
    if not results:
        return False
    best = max(share for share, _ in results)
    chosen = next(fmt for share, fmt in results if share == best)
    col.type = "timestamp" if chosen is None or "%H" in chosen else "date"
    col.format = chosen
    col.role = "timestamp"
    others = [fmt for share, fmt in results if share == best and fmt != chosen and fmt is not None]
    if others and chosen and {chosen[:3], others[0][:3]} == {"%d/", "%m/"}:
        col.notes.append(
            f"Ambiguous dates: no day above 12 in the sample, so both {chosen} and {others[0]} fit; check which."
        )
    if chosen == "%y%m%d" or (chosen and "%y" in chosen):
        col.notes.append("Two-digit years: check the century (a date in the future is quarantined).")
    if best < 1:
        parsed = (
            sample.str.to_date(chosen, strict=False)
            if col.type == "date"
            else sample.str.to_datetime(chosen, strict=False, time_unit="us")
        )
        col.notes.append(_junk_note(sample.filter(parsed.is_null()), sample.len()))
    return True


def _junk_note(failed: pl.Series, n: int) -> str:
    examples = ", ".join(_quoted(value) for value in failed.unique(maintain_order=True).head(3).to_list())
    return (
        f"{failed.len():,} of {n:,} values in the sample do not read as this type (e.g. {examples}): "
        "the build quarantines those rows."
    )


def _guess_number(col: _Column, present: pl.Series, decimal: str, allow_remove: bool) -> bool:
    """Int or float, with thousands separators and stray characters (currency, %) noticed.

    A column is a number when at most 2% of its values fail to read as one (those rows are then
    quarantined), after removing what the odd values share: the thousands separator of the
    file's decimal mark and pieces such as ``$``, ``EUR`` or ``%`` around the digits.
    """
    n = present.len()
    numbers = _parse_numbers(present, decimal, [])
    remove: list[str] = []
    odd = present.filter(numbers.is_null())
    odd = odd.filter(odd.str.contains(r"\d"))
    if odd.len():
        thousands = "." if decimal == "," else ","
        # A '.' written as a decimal point in a decimal-comma file means it separates no thousands.
        dotted = decimal == "," and present.str.contains(r"^[+-]?\d+\.\d{1,2}$").any()
        if odd.str.contains(re.escape(thousands)).any() and not dotted:
            remove.append(thousands)
        stray: Counter[str] = Counter()
        for value in odd.head(2_000).to_list():
            for piece in _STRAY.findall(value):
                if piece.strip():
                    stray[piece.strip()] += 1
                for space in {ch for ch in piece if ch.isspace()}:  # 1 234 or 1\u00a0234
                    stray[space] += 1
        if any(piece.lower() not in _REMOVABLE and not piece.isspace() for piece in stray):
            return False  # letters that are no currency: a code such as LP001002, not a number
        remove.extend(piece for piece, _ in stray.most_common(6) if piece not in remove)
        if remove:
            cleaned = _parse_numbers(present, decimal, remove)
            if cleaned.null_count() < numbers.null_count():
                numbers = cleaned
            else:
                remove = []
    bad = numbers.null_count()
    if bad > n * 0.02 or bad == n:
        return False
    text = present
    for piece in remove:
        text = text.str.replace_all(piece, "", literal=True)
    readable = text.filter(numbers.is_not_null())
    is_int = bool(readable.str.contains(_INT.pattern).all())
    if is_int and readable.str.contains(r"^[+-]?0\d").any():
        examples = ", ".join(_quoted(v) for v in readable.filter(readable.str.contains(r"^[+-]?0\d")).head(3).to_list())
        col.notes.append(f"Numbers with leading zeros (e.g. {examples}): kept as text, since a number drops the zeros.")
        return False
    if is_int and readable.str.len_chars().max() > 15:
        col.notes.append("Whole numbers of more than 15 digits: kept as text (an account or card number?).")
        return False
    col.type = "int" if is_int else "float"
    if remove:
        shown = ", ".join(_quoted(piece) for piece in remove)
        examples = ", ".join(_quoted(v) for v in odd.head(3).to_list())
        if not allow_remove:
            col.type, col.role = "string", "attribute"
            col.notes.append(
                f"Numbers written with {shown} (e.g. {examples}): kept as text, since this Segrisk's spec format "
                f"has no 'remove' key; with it, type = \"{'int' if is_int else 'float'}\" and "
                f"remove = {_list(remove)} read them as numbers."
            )
            return True
        col.remove = remove
        col.notes.append(f"Numbers written with {shown} (e.g. {examples}): remove drops them before reading.")
        if "%" in remove:
            col.notes.append("Percent signs: 12% is read as 12 (divide by 100 for a share).")
    if bad:
        col.notes.append(_junk_note(present.filter(numbers.is_null()), n))
    return True


def _guess_type(col: _Column, decimal: str, day_first: bool, is_text: bool, allow_remove: bool) -> None:
    native = col.native
    if native is not None and native != pl.String and native != pl.Categorical:
        _native_type(col, native)
        return
    present = col.present
    lower = present.str.to_lowercase()
    # A text file's placeholders become na_values; a Parquet or Excel file has no such option.
    na_always = lower.is_in(list(_NA_ALWAYS)) & is_text
    maybe_na = lower.is_in(list(_NA_IN_NUMBERS)) & is_text
    if na_always.any():
        tokens = set(present.filter(na_always).unique().to_list())
        col.na_tokens |= tokens
        col.values = col.values.set(col.values.is_in(list(tokens)).fill_null(False), None)
    candidates = present.filter(~na_always & ~maybe_na)
    if candidates.len() == 0:
        if col.present.len():
            col.notes.append("Only placeholder values in the sample: " + _value_list(col.counts()) + ".")
        else:
            col.notes.append("Empty in every row of the sample.")
        return
    numeric_or_date = _classify_text(col, candidates, decimal, day_first, allow_remove)
    if numeric_or_date and maybe_na.any():
        tokens = set(present.filter(maybe_na).unique().to_list())
        col.na_tokens |= tokens
        col.values = col.values.set(col.values.is_in(list(tokens)).fill_null(False), None)
        col.notes.append(f"Placeholders {', '.join(_quoted(t) for t in sorted(tokens))} read as missing (na_values).")


def _classify_text(col: _Column, present: pl.Series, decimal: str, day_first: bool, allow_remove: bool) -> bool:
    """Set the column's type from trimmed text values; True when it is a number, bool or date."""
    lower_set = set(present.str.to_lowercase().unique().head(10).to_list())
    if len(lower_set) <= 2 and lower_set <= _BOOL_WORDS:
        pair = next((p for p in _BOOL_PAIRS if lower_set <= p), None)
        counts = lower_set <= {"0", "1"} and col.tokens & _TALLY_WORDS  # 0 or 1 children is a number
        if pair is not None and (len(lower_set) == 2 or not lower_set <= {"0", "1"}) and not counts:
            col.type = "bool"
            return True
    if _guess_date(col, present, day_first):
        return True
    if _guess_number(col, present, decimal, allow_remove):
        return col.type != "string"
    col.type = "string"
    return False


def _native_type(col: _Column, native: pl.DataType) -> None:
    if native == pl.Boolean:
        col.type = "bool"
    elif native.is_integer():
        col.type = "int"
    elif native.is_float() or isinstance(native, pl.Decimal):
        numbers = col.values.cast(pl.Float64, strict=False).drop_nulls()
        integral = numbers.len() > 0 and bool((numbers == numbers.floor()).all())
        # A key stored as a float (12346.0) is read as a whole number; other floats stay floats.
        col.type = "int" if integral and col.tokens & _ID_WORDS else "float"
    elif native == pl.Date:
        col.type, col.role = "date", "timestamp"
    elif isinstance(native, pl.Datetime):
        col.type, col.role = "timestamp", "timestamp"
        if native.time_zone:
            col.notes.append(f"Time zone {native.time_zone}: check how the warehouse should read it.")
    else:
        col.type = "string"
        col.notes.append(f"Stored as {native}: kept as text.")


# --- roles -----------------------------------------------------------------------------


def _id_score(col: _Column, position: int) -> int:
    if col.type not in ("int", "string") or col.present.len() == 0:
        return 0
    words = col.tokens
    id_word = bool(words & _ID_WORDS)
    score = 0
    if words & _CUSTOMER_WORDS and (id_word or col.name in _CUSTOMER_WORDS):
        score = 100
    elif col.name == "id":
        score = 90
    elif words & {"account", "acct"} and id_word:
        score = 85
    elif words & _ACCOUNT_WORDS and id_word:
        score = 70
    elif id_word and col.name.split("_")[-1] in _ID_WORDS - {"code", "number", "num"}:
        score = 60
    elif col.name.startswith("unnamed_") or col.name in ("index", "row", "row_id", "idx"):
        score = 50
    elif position == 0 and col.type == "string" and col.present.str.contains(r"^[A-Za-z\-]*\d+$").all():
        score = 40
    elif position == 0 and col.type == "int":
        score = 30
    if score and col.type == "string" and col.present.str.len_chars().max() > 64:
        return 0
    return score + (5 if position == 0 and score else 0)


def _target_score(col: _Column) -> int:
    values = {value for value, _ in col.counts(lower=True)}
    if not 2 <= len(values) <= 4:
        return 0
    if col.type in ("int", "float") and not values <= {"0", "1", "-1", "2", "0.0", "1.0"}:
        return 0
    if col.type not in ("int", "float", "string", "bool"):
        return 0
    words = col.tokens
    if words & _TARGET_WORDS or col.name.startswith(("default", "is_default", "bad")):
        return 100
    if col.name in _TARGET_NAMES and (col.name != "status" or col.type != "int" or values <= {"0", "1"}):
        return {"risk": 90, "credit_risk": 90, "target": 85, "y": 80, "label": 70}.get(col.name, 60)
    # loan_status or repayment_status may be the outcome; marital_status or employment_status never is.
    if col.name.endswith("_status") and col.name.split("_")[0] in _OUTCOME_SUBJECTS:
        return 50
    if col.name.endswith("_risk"):
        return 50
    return 0


def _guess_target_values(col: _Column) -> None:
    counted = col.counts(lower=True)
    lower = [value for value, _ in counted]
    spelled = _spellings(col)
    approval = bool(col.tokens & _APPROVAL_WORDS) or (
        col.name.endswith("status") and set(lower) <= {"y", "n", "yes", "no"}
    )
    listed = ", ".join(f"{_quoted(spelled[value])} ({n:,})" for value, n in counted)
    col.notes.append(f"Values seen: {listed}.")
    if set(lower) == {"a", "b", "c", "d"}:
        positive = ["b", "d"]
        col.notes.append(
            "Four status letters: guessed as a loan status where B (finished, not paid) and D (running, in debt) "
            "are the bad outcomes, as in the Berka bank; check what each letter means."
        )
    elif approval and any(value in lower for value in _REFUSAL_VALUES):
        positive = [next(value for value in _REFUSAL_VALUES if value in lower)]
        col.notes.append(
            f"{col.source} reads like an approval (yes = approved): the refusal {_quoted(spelled[positive[0]])} "
            "stands in for the bad outcome here. Check; if the file says which loans defaulted, use that column."
        )
    else:
        found = next((value for value in _POSITIVE_VALUES if value in lower), None)
        if found is None:
            found = min(counted, key=lambda item: item[1])[0]
            col.notes.append(f"No value reads like 'default': guessed the rarer one, {_quoted(spelled[found])}.")
        positive = [found]
    col.positive = [spelled[value] for value in positive]
    col.negative = [spelled[value] for value in lower if value not in positive]
    col.notes.append(
        "positive = the value(s) meaning default; negative = those meaning no default "
        "(rows with any other value are quarantined). Check both."
    )


def _spellings(col: _Column) -> dict[str, str]:
    """Each lower-case value's most common spelling in the file."""
    spelled: dict[str, str] = {}
    for value, _ in col.counts():
        spelled.setdefault(value.lower(), value)
    return spelled


def _money_measure(col: _Column) -> tuple[str | None, str | None]:
    """(measure, hint): the measure to write, or a hint for the user when the name is not enough."""
    words = col.tokens
    if words & {"income", "salary", "salaries", "wage", "wages", "earnings"}:
        return "income", None
    if "limit" in words:
        return "credit_limit", None
    if words & {"card"} and words & {"balance", "bal"}:
        return "card_balance", None
    if words & {"debt", "debts", "outstanding", "owed", "arrears", "overdraft"}:
        return "debt", None
    if words & {"deposit", "deposits"}:
        return "deposit", None
    if words & {"savings", "saving"}:
        return "savings", None
    if words & {"instalment", "instalments", "installment", "installments", "emi"} or col.name in (
        "payments",
        "monthly_payment",
        "monthly_payments",
    ):
        return "instalment", None
    if words & {"balance", "bal"}:
        return None, "deposit, savings, card_balance or debt: which balance is it?"
    if "bill" in words:
        return None, "card_balance, if this is a card statement's balance"
    return None, None


def _is_money(col: _Column) -> bool:
    words = col.tokens
    if not col.is_number or words & _NOT_MONEY_WORDS - {"no"} or (words & {"no"} and len(words) > 1):
        return False
    if "pay" in words and not words & {"amt", "amount"}:
        return False
    return bool(words & _MONEY_WORDS)


def _is_codes(col: _Column) -> bool:
    if col.type != "int" or col.family is not None or col.tokens & _COUNT_WORDS:
        return False
    numbers = _numbers_of(col)
    distinct = numbers.n_unique()
    return numbers.len() >= 20 and 2 <= distinct <= 10 and numbers.min() >= 0 and numbers.max() <= 20


def _families(columns: list[_Column]) -> dict[str, list[_Column]]:
    """Numbered columns of one measure (BILL_AMT1..BILL_AMT6): per-period history stored as columns."""
    groups: dict[str, list[_Column]] = {}
    for col in columns:
        match = re.match(r"^(.*?[a-z])_?(\d{1,2})$", col.name)
        if match:
            groups.setdefault(match.group(1), []).append(col)
    families = {prefix: cols for prefix, cols in groups.items() if len(cols) >= 3 and len(prefix.strip("_")) >= 3}
    for prefix, cols in families.items():
        for col in cols:
            col.family = prefix
    return families


def _assign_roles(columns: list[_Column]) -> None:
    """Roles of the columns that are neither the key nor the target."""
    for col in columns:
        missing = col.values.null_count()
        if missing and col.role != "id" and not col.product_of and col.present.len():
            col.notes.append(f"Missing in {missing:,} of {col.rows:,} rows of the sample.")
        if col.role in ("id", "target") or col.generated or col.product_of or col.fixed:
            continue
        if _id_score(col, -1) >= 60 and col.type in ("int", "string"):
            col.role = "attribute"
            col.notes.append("Named like an id but not the customer key: kept as an attribute (not a model input).")
            continue
        if col.type == "int" and col.tokens & _NUMBER_LIKE_WORDS and col.distinct > 0.5 * col.present.len():
            col.role = "attribute"
            col.notes.append("Reads like an account, card or phone number: kept as an attribute (not a model input).")
            continue
        if col.type in ("date", "timestamp"):
            col.role = "timestamp"
        elif col.type == "bool":
            col.role = "categorical"
            col.notes.append("Values seen: " + _value_list(col.counts()) + " (read as true/false).")
            if col.name.startswith("has_"):
                col.notes.append(
                    f"{col.source} looks like a product the customer holds: it is a product flag (for cross-sell) "
                    "only if declared product = true."
                )
        elif col.is_number and _is_money(col):
            col.role, col.type = "amount", "float"
            col.measure, col.measure_hint = _money_measure(col)
            if col.family:
                col.measure = col.measure_hint = None  # six periods of one measure would add up to six times it
            _money_notes(col)
        elif _is_codes(col):
            col.type, col.role, col.is_codes = "string", "categorical", True
            codes = sorted(col.counts(), key=lambda item: int(item[0]))
            col.notes.append(
                "Small whole numbers, likely codes: "
                + ", ".join(f"{code} ({n:,})" for code, n in codes)
                + ". Add a mapping to their meanings (or, for an ordered scale, make it type int, role numeric)."
            )
            col.extra.append("# mapping = { " + ", ".join(f'{json.dumps(code)} = "TODO"' for code, _ in codes) + " }")
        elif col.is_number:
            col.role = "numeric"
            _range_note(col)
            _unit_guess(col)
        elif col.type == "string":
            present = col.present
            distinct = col.distinct
            if present.len() and distinct <= 30 and (distinct <= max(2, present.len() // 2)):
                col.role = "categorical"
                col.notes.append("Values seen: " + _value_list(col.counts()) + ".")
            else:
                col.role = "attribute"
                if present.len():
                    col.notes.append(
                        f"Text with {distinct:,} distinct values in {present.len():,} rows: kept as an attribute "
                        "(not a model input)."
                    )


def _money_notes(col: _Column) -> None:
    numbers = _numbers_of(col)
    if numbers.len():
        col.notes.append(
            f"Amounts in the sample: {_num(numbers.min())} to {_num(numbers.max())}, median {_num(numbers.median())}."
        )
        if numbers.min() < 0:
            col.notes.append("Some amounts are negative (a credit balance, a refund?).")
    monthly = bool(col.tokens & _MONTHLY_WORDS) or col.name in ("applicant_income", "coapplicant_income")
    if col.measure == "income" and monthly:
        col.notes.append(
            f"{col.source} looks like a monthly income; the warehouse keeps annual income (debt-to-income and the "
            "other ratios read it as annual)."
        )
        col.extra.append(_maybe_key("scale", "12", "if this is monthly: the warehouse keeps annual income", False))
    elif col.measure == "income":
        col.notes.append("The warehouse keeps annual income: if these amounts are monthly, add scale = 12.")
    if "loan" in col.tokens and numbers.len() and numbers.max() < 1_000 and col.measure is None:
        col.notes.append(
            "Loan amounts below 1,000: if they are in thousands, add scale = 1000"
            + ("" if "scale" in ColumnSpec.model_fields else " (once the spec format has 'scale')")
            + "."
        )


def _range_note(col: _Column) -> None:
    numbers = _numbers_of(col)
    if numbers.len():
        col.notes.append(f"Values in the sample: {_num(numbers.min())} to {_num(numbers.max())}.")


def _numbers_of(col: _Column) -> pl.Series:
    if col.native is not None:
        return col.present.cast(pl.Float64, strict=False).drop_nulls()
    return _parse_numbers(col.present, col.decimal, col.remove).drop_nulls()


def _unit_guess(col: _Column) -> None:
    words = col.tokens
    if "age" in words and not words & {"account", "loan"}:
        col.unit = "years"
    elif words & {"months", "month", "duration", "term", "tenure"}:
        col.unit = "months"
    elif words & {"days", "dpd"}:
        col.unit = "days"
    elif "years" in words:
        col.unit = "years"


# --- sources ---------------------------------------------------------------------------


@dataclass
class _FileDraft:
    sample: _Sample
    columns: list[_Column]
    decimal: str
    kind: str = "customers"
    key: _Column | None = None
    notes: list[str] = field(default_factory=list)
    families: dict[str, list[_Column]] = field(default_factory=dict)


def _analyse(sample: _Sample) -> _FileDraft:
    frame = sample.frame
    decimal = _file_decimal(frame, sample.delimiter) if sample.is_text else "."
    day_first = decimal == "," or sample.delimiter == ";" or sample.encoding != "utf-8"
    allow_remove = "remove" in ColumnSpec.model_fields
    columns: list[_Column] = []
    used: set[str] = set()
    for source in frame.columns:
        series = frame.get_column(source)
        name = _unique_name(canonical_name(source), used)
        native = None if sample.is_text else series.dtype
        values = _text_values(series)
        if sample.is_text:
            values = values.set(values == "", None)
        col = _Column(source, name, _tokens(source, name), values, native, frame.height, decimal=decimal)
        _guess_type(col, decimal, day_first, sample.is_text, allow_remove)
        columns.append(col)
    draft = _FileDraft(sample, columns, decimal)
    draft.families = _families(columns)
    return draft


def _file_decimal(frame: pl.DataFrame, delimiter: str) -> str:
    if delimiter == ",":
        return "."
    # 1,5 and 1.234,56 say decimal comma; 1.5 says decimal point; 63,523 or 1.234 could be either
    # (a thousands separator or three decimals), so they count for neither.
    ambiguous = r"^[+-]?\d{1,3}[.,]\d{3}$"
    comma = dot = 0
    for name in frame.columns:
        values = frame.get_column(name).head(5_000).str.strip_chars().drop_nulls()
        values = values.str.replace_all(_CURRENCY_PATTERN, "")  # 1 234,50 € is a decimal comma too
        clear = ~values.str.contains(ambiguous)
        comma += int((values.str.contains(_DECIMAL_COMMA.pattern) & clear).sum())
        comma += int(values.str.contains(r"^[+-]?\d{1,3}(\.\d{3})+,\d+$").sum())
        dot += int((values.str.contains(_DECIMAL_DOT.pattern) & clear).sum())
        dot += int(values.str.contains(r"^[+-]?\d{1,3}(,\d{3})+\.\d+$").sum())
    return "," if comma > dot else "."


def _unique_name(name: str, used: set[str]) -> str:
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}_{n}", n + 1
    used.add(candidate)
    return candidate


def _shape(draft: _FileDraft) -> None:
    """Which source the file is, and its customer key.

    A file is ``customers`` when a column named like an id holds a distinct value per row. It is
    ``transactions`` when an id-like column better named than any unique one repeats and the file
    has a date and an amount; ``snapshots`` when such a column repeats beside a period column.
    """
    columns = draft.columns
    scored = sorted(
        ((score, -i, col) for i, col in enumerate(columns) if (score := _id_score(col, i))),
        key=lambda item: item[:2],
        reverse=True,
    )
    unique = [(score, col) for score, _, col in scored if col.unique and col.values.null_count() <= 0.01 * col.rows]
    repeated = [
        (score, col)
        for score, _, col in scored
        if col.present.len() >= 1.5 * max(1, col.distinct) and col.distinct >= 2 and col.type in ("int", "string")
    ]
    best_unique = unique[0][0] if unique else 0
    keyed = [col for score, col in repeated if score > best_unique]
    dates = [col for col in columns if col.type in ("date", "timestamp")]
    period = next((col for col in dates if col.tokens & _PERIOD_WORDS), None)
    has_amount = any(col.is_number and _is_money(col) for col in columns) or _quantity_price(columns) is not None
    if keyed and period is not None:
        draft.kind, draft.key = "snapshots", _prefer_customer(keyed)
        draft.notes.append(
            f"Several rows per {draft.key.source} with a period column ({period.source}): read as snapshots, "
            "one row per customer per period."
        )
    elif keyed and dates and has_amount:
        draft.kind, draft.key = "transactions", _prefer_customer(keyed)
        draft.notes.append(
            f"Several rows per {draft.key.source} with a date and an amount: read as transactions. "
            "Check that the key is the customer's (a transaction file may be keyed by account)."
        )
    elif unique:
        draft.kind, draft.key = "customers", unique[0][1]
        if best_unique < 60:
            draft.notes.append(
                f"{draft.key.source} holds a distinct value in every row of the sample, so it is the key guessed: "
                "check it."
            )
    else:
        draft.kind, draft.key = "customers", None
        if scored and scored[0][0] >= 60:
            best = scored[0][2]
            draft.notes.append(
                f"{best.source} is named like an id but repeats ({best.distinct:,} distinct values in "
                f"{best.present.len():,} rows), so it is not a customer key here."
            )


def _prefer_customer(columns: list[_Column]) -> _Column:
    for words in (_CUSTOMER_WORDS, {"account", "acct"}):
        found = next((col for col in columns if col.tokens & words), None)
        if found is not None:
            return found
    return columns[0]


def _quantity_price(columns: list[_Column]) -> tuple[_Column, _Column] | None:
    quantity = next((c for c in columns if c.is_number and c.tokens & {"quantity", "qty", "units"}), None)
    price = next((c for c in columns if c.is_number and c.tokens & {"price", "unitprice"}), None)
    return (quantity, price) if quantity and price else None


def _set_key(draft: _FileDraft) -> _Column:
    key = draft.key
    if key is None:
        generated = _Column(
            CUSTOMER_KEY, CUSTOMER_KEY, {"id"}, pl.Series([], dtype=pl.String), None, draft.sample.frame.height
        )
        generated.type, generated.role, generated.generated = "int", "id", True
        generated.notes.append(
            "The file has no customer id column (no column is named like one and holds a distinct value per row): "
            "the row number becomes the key, so a rebuild from a re-ordered file gives customers other keys."
        )
        if "generated" not in ColumnSpec.model_fields:
            generated.notes.append(
                "This Segrisk's spec format has no 'generated' key yet, so the build looks for a column named "
                "customer_id: add one to the file (a row number will do) or name the column that identifies a customer."
            )
        draft.columns.insert(0, generated)
        return generated
    key.role, key.kind = "id", draft.kind
    key.type = "int" if key.type == "int" else "string"
    missing = key.values.null_count()
    if missing:
        key.notes.append(
            f"Empty in {missing:,} of {key.rows:,} rows of the sample: the build quarantines those rows (missing_key)."
        )
    if key.name != CUSTOMER_KEY:
        _rename(draft, key, CUSTOMER_KEY)
    if key.type == "string":
        examples = ", ".join(_quoted(v) for v in key.present.head(3).to_list())
        key.notes.append(f"Text keys (e.g. {examples}): kept as text.")
    if draft.kind == "customers" and draft.sample.complete:
        key.notes.append("Key: one row per customer (every value in the file is distinct).")
    elif draft.kind == "customers":
        key.notes.append(
            f"Key: one row per customer, as far as the first {key.rows:,} rows show (their values are distinct); "
            "the build quarantines a later duplicate (duplicate_key)."
        )
    return key


def _rename(draft: _FileDraft, col: _Column, name: str) -> None:
    """Give ``col`` the name, renaming a column that had it (``amount`` -> ``amount_2``)."""
    other = next((c for c in draft.columns if c.name == name and c is not col), None)
    if other is not None:
        used = {c.name for c in draft.columns} | {name}
        n = 2
        while f"{name}_{n}" in used:
            n += 1
        other.name = f"{name}_{n}"
    col.name = name


def _shape_columns(draft: _FileDraft) -> None:
    """A transactions file's occurred_at and amount; a snapshots file's period and measures."""
    if draft.kind == "transactions":
        dates = [c for c in draft.columns if c.type in ("date", "timestamp")]
        when = max(dates, key=lambda c: (c.type == "timestamp", bool(c.tokens & _DATE_WORDS)))
        _rename(draft, when, "occurred_at")
        amount = next((c for c in draft.columns if c.name == "amount" and c.is_number), None)
        if amount is None:
            amount = next((c for c in draft.columns if c.is_number and c.tokens & {"amount", "amt"}), None)
        if amount is None and (pair := _quantity_price(draft.columns)) is not None:
            pair[1].role, pair[1].fixed = "numeric", True  # a price is a rate; the line's amount is the product
            _range_note(pair[1])
            product = _Column("", "amount", {"amount"}, pl.Series([], dtype=pl.String), None, 0)
            product.type, product.role = "float", "amount"
            product.product_of = [pair[0].source, pair[1].source]
            product.notes.append(f"The file has no amount column: the amount is {pair[0].source} x {pair[1].source}.")
            _rename(draft, product, "amount")
            draft.columns.append(product)
            return
        if amount is None:
            amount = next(c for c in draft.columns if c.is_number and _is_money(c))
        amount.type, amount.role = "float", "amount"
        _rename(draft, amount, "amount")
    elif draft.kind == "snapshots":
        period = next(c for c in draft.columns if c.type in ("date", "timestamp") and c.tokens & _PERIOD_WORDS)
        _rename(draft, period, "period")
        if period.type != "date":
            period.notes.append("The period must be a date (the period's first day): check the format.")
            period.type = "date"
        synonyms = {"dpd": "days_past_due", "util": "utilization", "dti": "debt_to_income", "score": "credit_score"}
        for col in draft.columns:
            target = synonyms.get(col.name)
            if col.is_number and target and not any(c.name == target for c in draft.columns):
                col.notes.append(f"Named {target}, a snapshot measure the early-warning layer reads.")
                col.name = target
        measures = [c.name for c in draft.columns if c.name in SNAPSHOT_MEASURES]
        draft.notes.append(
            "Snapshot measures the early warnings read by name: "
            + ", ".join(SNAPSHOT_MEASURES)
            + (f" (found: {', '.join(measures)})." if measures else " (none found: rename columns that are one).")
        )


# --- writing ---------------------------------------------------------------------------


def _toml(value: str) -> str:
    """A TOML basic string."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _quoted(value: object) -> str:
    text = str(value)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    if len(text) > 40:
        text = text[:40] + "…"
    return f"'{text}'"


def _num(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "?"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}" if abs(value) < 1_000_000 else f"{value:,.0f}"


def _value_list(counts: list[tuple[str, int]], limit: int = 12) -> str:
    shown = ", ".join(f"{_quoted(value)} ({n:,})" for value, n in counts[:limit])
    return shown + (f", and {len(counts) - limit:,} more" if len(counts) > limit else "")


def _comment(text: str, width: int = 100) -> list[str]:
    """A comment wrapped to ``width`` characters."""
    words = text.split(" ")
    lines, line = [], "#"
    for word in words:
        if len(line) + 1 + len(word) > width and line != "#":
            lines.append(line)
            line = "#  "
        line += " " + word
    lines.append(line)
    return [_clean(entry) for entry in lines]


def _clean(text: str) -> str:
    """Text fit for a TOML comment: no control characters (a header may hold a line break)."""
    return "".join(ch if ch.isprintable() or ch == "\t" else " " for ch in text)


def _maybe_key(key: str, value: str, note: str, live: bool | None = None) -> str:
    """``key = value``, or a comment of it: live only where the spec format has the key and ``live``."""
    has = key in ColumnSpec.model_fields or key in SourceSpec.model_fields
    if live is None:
        live = has
    line = f"{key} = {value}"
    if not has:
        note = f"{note} (needs a spec format with '{key}')"
    return (line if live and has else f"# {line}") + f"  # {note}"


def _description(col: _Column) -> str:
    header = col.source if not col.source.startswith("unnamed_") else "the file's unnamed column"
    if col.generated:
        return "Row number in the file (the file has no customer id). TODO: check that no id column exists."
    if col.role == "id" and col.kind == "customers":
        return f"TODO: what {header} identifies (one row per customer?)."
    if col.role == "id":
        return f"TODO: the customer a row belongs to ({header}; the customers file's key)."
    if col.role == "target":
        return f"TODO: what {header} means; true when the file says {' or '.join(_quoted(v) for v in col.positive)}."
    hint = ""
    if col.product_of:
        return f"TODO: the amount of the line, {col.product_of[0]} x {col.product_of[1]} (which currency?)."
    if col.measure == "income":
        hint = " (currency? per month or per year?)"
    elif col.role == "amount":
        hint = " (which currency?)"
    elif col.unit:
        hint = f" ({col.unit}?)"
    elif col.type in ("date", "timestamp"):
        hint = " (the date of which event?)"
    elif col.is_codes:
        hint = " (what each code stands for?)"
    elif col.type == "bool":
        hint = " (true when?)"
    return f"TODO: what {header} means{hint}."


def _column_lines(kind: str, col: _Column) -> list[str]:
    lines: list[str] = []
    for note in col.notes:
        lines.extend(_comment(note))
    lines.append(f"[[{kind}.columns]]")
    lines.append(f"name = {_toml(col.name)}")
    if col.generated:
        lines.append(_maybe_key("generated", '"row_number"', "the row number is the key"))
    elif col.product_of:
        lines.append(f"product_of = [{', '.join(_toml(s) for s in col.product_of)}]")
    elif col.source != col.name:
        lines.append(f"source = {_toml(col.source)}")
    lines.append(f"type = {_toml(col.type)}")
    if col.format is not None:
        lines.append(f"format = {_toml(col.format)}")
    lines.append(f"role = {_toml(col.role)}")
    if col.measure is not None:
        lines.append(f"measure = {_toml(col.measure)}")
    elif col.measure_hint is not None:
        lines.append(f'# measure = "TODO"  # {col.measure_hint}')
    if col.unit is not None:
        lines.append(f"unit = {_toml(col.unit)}")
    elif col.role == "amount":
        lines.append('# unit = "EUR"  # the currency of these amounts')
    if col.remove:
        lines.append(
            _maybe_key("remove", "[" + ", ".join(_toml(p) for p in col.remove) + "]", "removed before reading")
        )
    if col.role == "target":
        lines.append(f"positive = {_toml(col.positive[0]) if len(col.positive) == 1 else _list(col.positive)}")
        lines.append(_maybe_key("negative", _list(col.negative), "the values meaning no default"))
    if col.type == "bool" and col.name.startswith("has_") and col.role != "target":
        lines.append(_maybe_key("product", "true", "a product the customer holds; remove the line if not"))
    lines.extend(col.extra)
    lines.append(f"description = {_toml(_description(col))}")
    return lines


def _list(values: list[str]) -> str:
    return "[" + ", ".join(_toml(v) for v in values) + "]"


def _source_lines(draft: _FileDraft, files_entry: str) -> list[str]:
    sample = draft.sample
    kind = draft.kind
    rows = f"{sample.total_rows:,} rows" if sample.total_rows is not None else "a large file"
    guessed_from = "all of them" if sample.complete else f"the first {sample.frame.height:,} rows"
    lines = [
        _clean(f"# --- {kind}: {sample.label} ({rows}, {sample.frame.width} columns; guessed from {guessed_from}) ---")
    ]
    for note in sample.notes + draft.notes:
        lines.extend(_comment(note))
    if draft.families:
        shown = "; ".join(f"{cols[0].source}..{cols[-1].source}" for cols in draft.families.values())
        lines.extend(
            _comment(
                f"Numbered columns ({shown}) look like one measure per period: if they are monthly history, declare "
                "them as customers.wide_snapshots (periods and measures; see the README and the built-in "
                "taiwan-default spec) instead of, or beside, the columns below."
            )
        )
    lines.append(f"[{kind}]")
    # The loader reads a name with *, ? or [ as a pattern: such a file name is escaped to match itself.
    entry = glob.escape(files_entry) if any(ch in files_entry for ch in "*?[") else files_entry
    lines.append(f"files = [{_toml(entry)}]")
    suffix = Path(sample.label).suffix.lower()
    if suffix not in _LOADER_SUFFIXES:
        lines.append(f"format = {_toml(sample.file_format)}")
    if sample.is_text:
        na_values = [""] + sorted(
            {token for col in draft.columns for token in col.na_tokens} | _raw_blanks(draft), key=str.lower
        )
        parts = [
            f"delimiter = {_toml(sample.delimiter)}",
            f"encoding = {_toml(sample.encoding)}",
            f"na_values = {_list(list(dict.fromkeys(na_values)))}",
        ]
        if draft.decimal == ",":
            parts.append('decimal = ","')
        lines.append("csv = { " + ", ".join(parts) + " }")
    lines.append(
        "# max_rejected_share = 0.5  # the build stops when a larger share of this source's rows is quarantined"
    )
    for col in draft.columns:
        lines.append("")
        lines.extend(_column_lines(kind, col))
    return lines


def _raw_blanks(draft: _FileDraft) -> set[str]:
    """Whitespace-only cells, which the loader must read as missing (it compares na_values as they are)."""
    blanks: set[str] = set()
    frame = draft.sample.frame
    for name in frame.columns:
        series = frame.get_column(name)
        raw_na = series.filter(
            series.is_not_null()
            & (series.str.strip_chars() != series)
            & series.str.strip_chars().str.to_lowercase().is_in(["", *_NA_ALWAYS])
        )
        blanks |= set(raw_na.unique().head(5).to_list())
    tokens = {token.lower() for col in draft.columns for token in col.na_tokens}
    return {b for b in blanks if b.strip() == "" or b.strip().lower() in tokens}


def _header(drafts: list[_FileDraft], left_out: list[str], data_dir: Path, out_name: str) -> list[str]:
    files = ", ".join(d.sample.label for d in drafts) or "no usable file"
    lines = [
        _clean(f"# Draft dataset spec written by `segrisk spec draft` from {files}."),
        "# Every key below is a guess from the files; the comments show the evidence. Before building:",
        "#   1. fill in every description that starts with TODO (it becomes the warehouse's column comment);",
        "#   2. check the id (customer_id) and the target: positive = the value(s) meaning default,",
        "#      negative = those meaning no default;",
        "#   3. check types and date formats: a wrong one quarantines the column's rows;",
        '#   4. add a mapping where a column holds codes (mapping = { "1" = "male", "2" = "female" });',
        "#   5. set units and measures of money columns; scale monthly amounts to annual (scale = 12).",
        "# Then build, and read the build's summary and the quarantine_* tables for rows the spec rejects:",
        _clean(f"#   segrisk build --spec {shlex.quote(out_name)} --data-dir {shlex.quote(str(data_dir))}"),
    ]
    for note in left_out:
        lines.extend(_comment(note))
    return lines


def _resolve(files: list[Path], data_dir: Path | None) -> tuple[list[tuple[Path, str]], Path]:
    if not files:
        raise SpecError("Name at least one data file to draft a spec from.")
    for path in files:
        if path.is_dir():
            raise SourceError(f"{path} is a folder: name the data files in it.")
        if not path.is_file():
            raise SourceError(f"File {path} was not found.")
        if path.stat().st_size == 0:
            raise SourceError(f"File {path} is empty.")
    resolved = [path.resolve() for path in files]
    if data_dir is None:
        base = Path(*Path(resolved[0]).parts[:1])
        common = resolved[0].parent
        for path in resolved[1:]:
            while not path.is_relative_to(common) and common != base:
                common = common.parent
        root = common
        shown_dir = _shown_dir(root)
    else:
        if not data_dir.is_dir():
            raise SourceError(f"--data-dir {data_dir} is not a folder.")
        root = data_dir.resolve()
        shown_dir = str(data_dir)
        for original, path in zip(files, resolved, strict=True):
            if not path.is_relative_to(root):
                raise SpecError(
                    f"File {original} is not inside --data-dir {data_dir}: a spec names its files relative to that folder."
                )
    entries = [(path, path.relative_to(root).as_posix()) for path in resolved]
    return entries, Path(shown_dir)


def _shown_dir(folder: Path) -> str:
    try:
        relative = folder.relative_to(Path.cwd())
    except ValueError:
        return str(folder)
    return str(relative) if str(relative) != "." else "."


def _read(path: Path, label: str) -> _Sample:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path, label)
    if suffix == ".xlsx":
        return _read_excel(path, label)
    if suffix in (".xls", ".xlsm", ".ods", ".json", ".zip", ".gz"):
        raise SourceError(f"File {label}: {suffix} files are not read by Segrisk; export it as CSV, Parquet or .xlsx.")
    return _read_text(path, label)


def draft_spec(files: list[Path], data_dir: Path | None = None, *, out_name: str = "SPEC.toml") -> str:
    """A commented starting spec (TOML text) for the files, which a person then edits.

    ``files`` are paths as given on the command line; in the spec they are relative to
    ``data_dir``, or to the folder the files share when it is None. ``out_name`` is the spec's
    file name in the build command of the header. The text parses with ``parse_spec``.
    """
    entries, shown_dir = _resolve([Path(f) for f in files], Path(data_dir) if data_dir is not None else None)
    drafts: list[_FileDraft] = []
    left_out: list[str] = []
    for path, label in entries:
        draft = _analyse(_read(path, label))
        _shape(draft)
        taken = {d.kind: d.sample.label for d in drafts}
        if draft.kind == "customers" and "customers" in taken:
            draft.kind = "applications"
        if draft.kind in taken:
            left_out.append(
                f"Left out {label}: it reads as {draft.kind}, which {taken[draft.kind]} already is (a spec holds "
                "one source of each kind; several files of one layout go in one source's files)."
            )
            continue
        if draft.kind != "customers" and draft.key is None:
            left_out.append(f"Left out {label}: no column in it can be the customer key.")
            continue
        _set_key(draft)
        _shape_columns(draft)
        drafts.append(draft)
    _choose_target(drafts)
    for draft in drafts:
        _assign_roles(draft.columns)
    _check_key_types(drafts)
    _check_key_overlap(drafts)
    name = re.sub(r"[^a-z0-9]+", "-", Path(entries[0][1]).stem.lower()).strip("-") or "my-bank"
    lines = _header(drafts, left_out, shown_dir, out_name)
    lines += ["", f"name = {_toml(name)}", 'description = "TODO: what this dataset holds, in a sentence."']
    order = {"customers": 0, "applications": 1, "transactions": 2, "snapshots": 3}
    for draft in sorted(drafts, key=lambda d: order[d.kind]):
        lines.append("")
        lines.extend(_source_lines(draft, draft.sample.label))
    text = "\n".join(lines) + "\n"
    try:
        parse_spec(text, "draft.toml")
    except SpecError as exc:  # a bug here, never the user's: say so in one line
        raise SpecError(
            f"The drafted spec does not validate ({exc}); please report this with the file's header."
        ) from exc
    return text


def _choose_target(drafts: list[_FileDraft]) -> None:
    """One target for the whole spec: the best-named column with two to four values."""
    best: tuple[int, _Column] | None = None
    for draft in drafts:
        for col in draft.columns:
            if col.role == "id" or col.generated or col.product_of:
                continue
            score = _target_score(col)
            if score and (best is None or score > best[0]):
                best = (score, col)
    if best is None:
        return
    col = best[1]
    col.role, col.type = "target", "bool"
    _guess_target_values(col)


def _check_key_types(drafts: list[_FileDraft]) -> None:
    keys = [(d, next(c for c in d.columns if c.name == CUSTOMER_KEY)) for d in drafts]
    types = {col.type for _, col in keys}
    if len(types) > 1:
        for _, col in keys:
            col.notes.append(
                "The customer keys of the sources have different types ("
                + ", ".join(f"{d.kind} {c.type}" for d, c in keys)
                + "): give them one type, or the sources will not join."
            )
    if any(d.kind == "customers" for d in drafts):
        for draft, col in keys:
            if draft.kind != "customers":
                col.notes.append(f"Each {col.source} must be a customer_id of the customers file.")


def _check_key_overlap(drafts: list[_FileDraft]) -> None:
    """Say so when a source's keys are mostly not customers': the build would quarantine those rows."""
    customers = next((d for d in drafts if d.kind == "customers"), None)
    if customers is None or not customers.sample.complete:
        return
    known = set(next(c for c in customers.columns if c.name == CUSTOMER_KEY).present.to_list())
    if not known:
        return
    for draft in drafts:
        if draft is customers:
            continue
        key = next(c for c in draft.columns if c.name == CUSTOMER_KEY)
        keys = set(key.present.to_list())
        if not keys:
            continue
        found = len(keys & known) / len(keys)
        if found < 0.9:
            joined = (
                " A source can also be a query over several files (tables and query; see the README), which can "
                "join a file keyed by account to its customer."
                if "query" in SourceSpec.model_fields
                else ""
            )
            key.notes.append(
                f"Only {found:.0%} of the {key.source} values in the sample are {customers.sample.label} keys: the "
                "build quarantines rows of unknown customers (unknown_customer) and stops when more than "
                f"max_rejected_share of the rows are.{joined}"
            )

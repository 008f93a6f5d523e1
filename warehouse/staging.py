"""Staging: turn a source's raw columns into typed, canonical columns, and find rejected rows.

Each column spec compiles twice from the same rules:

* to a Polars expression, used by the build to validate rows and engineer features;
* to a DuckDB SQL expression, used by the ``stg_*`` views over the ``raw_*`` tables.

The views let the warehouse keep one stored copy of each source (50 million transactions are
written once, as loaded), while analysts still query typed, canonical ``stg_*`` names.
``tests/test_staging.py`` checks that the two compilations agree row for row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from .db import quote_ident
from .spec import CUSTOMER_KEY, ColumnSpec, CsvOptions, SourceSpec, WideSnapshots

SOURCE_ROW = "_source_row"
#: Lineage the build keeps in Polars only (for quarantine reasons), never stored per raw row.
SOURCE_FILE = "_source_file"
FILE_ROW = "_file_row"
#: Set on a text file's record whose field count did not match the header: why, with its line.
PARSE_ERROR = "_parse_error"
LINEAGE_COLUMNS = (SOURCE_ROW,)
REJECTED = "_rejected"
SUSPECT = "_suspect"

_POLARS_TYPES: dict[str, pl.DataType] = {
    "int": pl.Int64(),
    "float": pl.Float64(),
    "string": pl.String(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "timestamp": pl.Datetime("us"),
}
_SQL_TYPES = {
    "int": "BIGINT",
    "float": "DOUBLE",
    "string": "VARCHAR",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}
_TRUE_WORDS = ("true", "t", "1", "yes", "y")
_FALSE_WORDS = ("false", "f", "0", "no", "n")
_TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "string": "text",
    "bool": "true or false",
    "date": "a date",
    "timestamp": "a date and time",
}


def polars_type(column: ColumnSpec) -> pl.DataType:
    return _POLARS_TYPES[column.type]


def sql_literal(value: str) -> str:
    """A SQL string literal for a value taken from the spec (view DDL cannot bind parameters)."""
    return "'" + value.replace("'", "''") + "'"


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or dtype == pl.Categorical or isinstance(dtype, pl.Enum)


# --- Polars -------------------------------------------------------------------------------


def _polars_cast_text(text: pl.Expr, column: ColumnSpec, decimal: str) -> pl.Expr:
    """Cast a trimmed text expression to the column's type; unparseable values become null."""
    if column.type in ("int", "float"):
        number = text.str.replace(",", ".", literal=True) if decimal == "," else text
        # inf, nan and a 401-digit number parse as floats but are no amount: they fail the type.
        parsed = number.cast(pl.Float64, strict=False)
        as_float = pl.when(parsed.is_finite()).then(parsed)
        if column.type == "float":
            return as_float
        return pl.when(as_float == as_float.floor()).then(as_float.cast(pl.Int64, strict=False))
    if column.type == "bool":
        lower = text.str.to_lowercase()
        return (
            pl.when(lower.is_in(_TRUE_WORDS))
            .then(pl.lit(True))
            .when(lower.is_in(_FALSE_WORDS))
            .then(pl.lit(False))
            .otherwise(pl.lit(None, dtype=pl.Boolean))
        )
    if column.type == "date":
        return text.str.to_date(column.format, strict=False)
    if column.type == "timestamp":
        return text.str.to_datetime(column.format, strict=False, time_unit="us")
    return text


def _polars_cast_native(value: pl.Expr, column: ColumnSpec, dtype: pl.DataType | None = None) -> pl.Expr:
    if column.type == "float" and (dtype is None or dtype.is_float()):
        as_float = value.cast(pl.Float64)
        return pl.when(as_float.is_finite()).then(as_float)  # NaN and infinities are no amount
    if dtype is not None and (dtype == polars_type(column) or (column.type == "int" and dtype.is_integer())):
        return value.cast(polars_type(column))
    if column.type == "int":
        as_float = value.cast(pl.Float64, strict=False)
        return pl.when(as_float == as_float.floor()).then(as_float.cast(pl.Int64, strict=False))
    return value.cast(polars_type(column), strict=False)


def _polars_cleaned(raw: pl.Expr, column: ColumnSpec) -> pl.Expr:
    """The raw value as trimmed text, with the spec's ``remove`` texts taken out."""
    text = raw.cast(pl.String)
    for unwanted in column.remove or []:
        text = text.str.replace_all(unwanted, "", literal=True)
    return text.str.strip_chars()


def _polars_single(source: str, column: ColumnSpec, schema: pl.Schema, csv: CsvOptions) -> pl.Expr:
    raw = pl.col(source)
    dtype = schema[source]
    if column.role == "target":
        label = raw.cast(pl.String).str.strip_chars().str.to_lowercase()
        defaulted = label.is_in(column.positive_values)
        if not column.negative_values:
            return defaulted
        # A value that is neither a default nor a non-default one is null, and quarantined.
        return pl.when(defaulted).then(True).when(label.is_in(column.negative_values)).then(False)
    if column.mapping is not None:
        text = _polars_cleaned(raw, column)
        mapped = text.replace(column.mapping)
        if column.mapping_default is not None:
            mapped = (
                pl.when(text.is_in(list(column.mapping)))
                .then(mapped)
                .otherwise(pl.when(text.is_not_null()).then(pl.lit(column.mapping_default)))
            )
        return _polars_cast_text(mapped, column, csv.decimal)
    if _is_text(dtype) or column.remove:
        return _polars_cast_text(_polars_cleaned(raw, column), column, csv.decimal)
    return _polars_cast_native(raw, column, dtype)


def polars_typed(column: ColumnSpec, schema: pl.Schema, csv: CsvOptions) -> pl.Expr:
    """The column's typed value computed from the raw frame, named with its canonical name."""
    if column.product_of is not None:
        as_float = column.model_copy(update={"type": "float", "product_of": None})
        factors = [_polars_single(source, as_float, schema, csv) for source in column.product_of]
        product = factors[0]
        for factor in factors[1:]:
            product = product * factor
        expr = product if column.type == "float" else _polars_cast_native(product, column)
    else:
        expr = _polars_single(column.source_columns[0], column, schema, csv)
    if column.scale is not None:
        expr = expr * column.scale
    return expr.cast(polars_type(column)).alias(column.name)


def raw_present(column: ColumnSpec) -> pl.Expr:
    """True where every source value of the column is present in the raw row."""
    present = [pl.col(source).is_not_null() for source in column.source_columns]
    return pl.all_horizontal(present)


# --- SQL ----------------------------------------------------------------------------------


def _sql_cast_text(text: str, column: ColumnSpec, decimal: str) -> str:
    if column.type in ("int", "float"):
        number = f"replace({text}, ',', '.')" if decimal == "," else text
        parsed = f"TRY_CAST({number} AS DOUBLE)"
        as_float = f"(CASE WHEN isfinite({parsed}) THEN {parsed} END)"
        if column.type == "float":
            return as_float
        return f"CASE WHEN {as_float} = floor({as_float}) THEN TRY_CAST({as_float} AS BIGINT) END"
    if column.type == "bool":
        true_words = ", ".join(sql_literal(word) for word in _TRUE_WORDS)
        false_words = ", ".join(sql_literal(word) for word in _FALSE_WORDS)
        return (
            f"CASE WHEN lower({text}) IN ({true_words}) THEN true WHEN lower({text}) IN ({false_words}) THEN false END"
        )
    if column.type in ("date", "timestamp"):
        if column.format is not None:
            parsed = f"TRY_STRPTIME({text}, {sql_literal(column.format)})"
        else:
            parsed = f"TRY_CAST({text} AS TIMESTAMP)"
        return f"CAST({parsed} AS {_SQL_TYPES[column.type]})"
    return text


def _sql_cast_native(value: str, column: ColumnSpec, dtype: pl.DataType | None = None) -> str:
    if column.type == "float" and (dtype is None or dtype.is_float()):
        return f"(CASE WHEN isfinite(CAST({value} AS DOUBLE)) THEN CAST({value} AS DOUBLE) END)"
    if dtype is not None and (dtype == polars_type(column) or (column.type == "int" and dtype.is_integer())):
        return f"CAST({value} AS {_SQL_TYPES[column.type]})"
    if column.type == "int":
        as_float = f"TRY_CAST({value} AS DOUBLE)"
        return f"CASE WHEN {as_float} = floor({as_float}) THEN TRY_CAST({as_float} AS BIGINT) END"
    return f"TRY_CAST({value} AS {_SQL_TYPES[column.type]})"


def _sql_single(source: str, column: ColumnSpec, schema: pl.Schema, csv: CsvOptions) -> str:
    raw = quote_ident(source)
    text = f"CAST({raw} AS VARCHAR)"
    for unwanted in column.remove or []:
        text = f"replace({text}, {sql_literal(unwanted)}, '')"
    text = f"trim({text})"
    if column.role == "target":
        label = f"lower({text})"
        positive = ", ".join(sql_literal(value) for value in column.positive_values)
        if not column.negative_values:
            return f"({label} IN ({positive}))"
        negative = ", ".join(sql_literal(value) for value in column.negative_values)
        return f"(CASE WHEN {label} IN ({positive}) THEN true WHEN {label} IN ({negative}) THEN false END)"
    if column.mapping is not None:
        whens = " ".join(f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in column.mapping.items())
        fallback = sql_literal(column.mapping_default) if column.mapping_default is not None else text
        mapped = f"(CASE {text} {whens} WHEN NULL THEN NULL ELSE {fallback} END)"
        mapped = f"(CASE WHEN {raw} IS NULL THEN NULL ELSE {mapped} END)"
        return _sql_cast_text(mapped, column, csv.decimal)
    if _is_text(schema[source]) or column.remove:
        return _sql_cast_text(text, column, csv.decimal)
    return _sql_cast_native(raw, column, schema[source])


def sql_typed(column: ColumnSpec, schema: pl.Schema, csv: CsvOptions) -> str:
    """The SQL expression for the column's typed value over the raw table."""
    if column.product_of is not None:
        as_float = column.model_copy(update={"type": "float", "product_of": None})
        product = " * ".join(f"({_sql_single(s, as_float, schema, csv)})" for s in column.product_of)
        expr = product if column.type == "float" else _sql_cast_native(f"({product})", column)
    else:
        expr = _sql_single(column.source_columns[0], column, schema, csv)
    if column.scale is not None:
        expr = f"({expr}) * {column.scale!r}"
    return f"CAST({expr} AS {_SQL_TYPES[column.type]}) AS {quote_ident(column.name)}"


def staging_view_sql(view: str, raw_table: str, quarantine_table: str, source: SourceSpec, schema: pl.Schema) -> str:
    """``CREATE VIEW stg_x``: typed canonical columns of raw rows that were not quarantined."""
    columns = ",\n  ".join(sql_typed(column, schema, source.csv) for column in source.columns)
    return (
        f"CREATE VIEW {quote_ident(view)} AS\nSELECT\n  {columns},\n"
        f"  r.rowid + 1 AS {SOURCE_ROW}\n"
        f"FROM {quote_ident(raw_table)} AS r\n"
        f"ANTI JOIN {quote_ident(quarantine_table)} AS q\n"
        f"  ON q.raw_row = r.rowid + 1"
    )


def wide_snapshots_view_sql(view: str, customers_view: str, raw_table: str, wide: WideSnapshots) -> str:
    """``CREATE VIEW stg_snapshots`` from per-period columns of the customer file, one row per period."""
    selects = []
    for index, period in enumerate(wide.periods):
        measures = []
        for name, measure in wide.measures.items():
            value = f"TRY_CAST(r.{quote_ident(measure.sources[index])} AS DOUBLE) * {measure.scale!r}"
            if measure.clip_min is not None:
                value = f"greatest({value}, {measure.clip_min!r})"
            measures.append(f"{value} AS {quote_ident(name)}")
        selects.append(
            f"SELECT c.{CUSTOMER_KEY}, DATE '{period.isoformat()}' AS period, {', '.join(measures)}, "
            f"{index + 1} AS period_index\n"
            f"FROM {quote_ident(customers_view)} AS c JOIN {quote_ident(raw_table)} AS r "
            f"ON r.rowid + 1 = c.{SOURCE_ROW}"
        )
    return f"CREATE VIEW {quote_ident(view)} AS\n" + "\nUNION ALL\n".join(selects)


def wide_snapshots_frame(raw_and_key: pl.LazyFrame, wide: WideSnapshots) -> pl.LazyFrame:
    """The Polars twin of :func:`wide_snapshots_view_sql`: LazyFrame of raw columns + customer_id."""
    frames = []
    for index, period in enumerate(wide.periods):
        measures = []
        for name, measure in wide.measures.items():
            value = pl.col(measure.sources[index]).cast(pl.Float64, strict=False) * measure.scale
            if measure.clip_min is not None:
                value = value.clip(lower_bound=measure.clip_min)
            measures.append(value.alias(name))
        frames.append(
            raw_and_key.select(
                pl.col(CUSTOMER_KEY),
                pl.lit(period).alias("period"),
                *measures,
                pl.lit(index + 1, dtype=pl.Int32).alias("period_index"),
            )
        )
    return pl.concat(frames).sort(CUSTOMER_KEY, "period")


# --- Validation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A validation rule: rows where ``failed`` holds are quarantined with ``reason``."""

    name: str
    column: str
    failed: pl.Expr
    reason: pl.Expr
    #: Holds wherever ``failed`` does, from raw values alone, where ``failed`` needs a typed
    #: value that is costly at 50M rows (trimmed text): a pass can judge by the screen and
    #: needs the exact test only for rows the screen catches.
    screen: pl.Expr | None = None


def _number(value: float) -> str:
    """A limit from the spec as a person writes it: 18, not 18.0."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _shown(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.String).fill_null("(empty)")


def can_fail_to_parse(column: ColumnSpec, schema: pl.Schema) -> bool:
    """False when the raw values already have the column's type, so no value can be unparseable."""
    if column.product_of is not None or column.mapping is not None:
        return True
    if column.role == "target":
        return False  # a present value always compares to true or false
    dtype = schema[column.source_columns[0]]
    if _is_text(dtype) or column.remove:
        return column.type != "string"
    if column.type == "float" and dtype.is_float():
        return True  # a stored NaN or infinity is no number
    return not (dtype == polars_type(column) or (column.type == "int" and dtype.is_integer()))


def _allowed_screen(column: ColumnSpec, schema: pl.Schema) -> pl.Expr | None:
    """Where the typed value is the trimmed raw text, a raw value in the allowed list is its own
    trimmed value: only raw values outside the list can fail. None for any other typed value.
    """
    source = column.source_columns[0]
    trimmed_text = (
        column.type == "string"
        and column.role != "target"
        and column.mapping is None
        and column.remove is None
        and column.product_of is None
        and schema[source] == pl.String
    )
    if not trimmed_text or any(value != value.strip() for value in column.allowed or []):
        return None
    raw = pl.col(source)
    return raw.is_not_null() & ~raw.is_in(column.allowed)


def column_rules(source: SourceSpec, now: datetime, schema: pl.Schema) -> list[Rule]:
    """Row-level rules from the spec, in the order a row is judged (first failure wins).

    Expects a frame holding the raw columns (``schema``) and the typed canonical columns
    prefixed ``__``. Checks that cannot fail for this schema are left out: they would cost a
    pass over every row of a 50-million-row table for nothing.
    """
    rules: list[Rule] = []
    key_column = source.column(CUSTOMER_KEY)
    rules.append(
        Rule(
            "missing_key",
            CUSTOMER_KEY,
            ~raw_present(key_column),
            pl.lit(f"{CUSTOMER_KEY} is empty; every row needs the customer key"),
        )
    )
    for column in source.columns:
        typed = pl.col(f"__{column.name}")
        raw_value = pl.concat_str([_shown(pl.col(s)) for s in column.source_columns], separator=" x ")
        if can_fail_to_parse(column, schema):
            rules.append(
                Rule(
                    "wrong_type",
                    column.name,
                    raw_present(column) & typed.is_null(),
                    pl.format(
                        "{}: expected {}, got '{}'",
                        pl.lit(column.name),
                        pl.lit(_TYPE_WORDS[column.type]),
                        raw_value,
                    ),
                )
            )
        if column.role == "target" and column.negative_values:
            rules.append(
                Rule(
                    "not_allowed",
                    column.name,
                    raw_present(column) & typed.is_null(),
                    pl.format(
                        "{}: '{}' is neither a default value ({}) nor a non-default one ({})",
                        pl.lit(column.name),
                        raw_value,
                        pl.lit(", ".join(column.positive_values)),
                        pl.lit(", ".join(column.negative_values)),
                    ),
                )
            )
        if column.required and column.name != CUSTOMER_KEY:
            rules.append(
                Rule(
                    "missing_value",
                    column.name,
                    typed.is_null(),
                    pl.lit(f"{column.name} is required but empty"),
                )
            )
        if column.greater_than is not None:
            rules.append(
                Rule(
                    "out_of_range",
                    column.name,
                    typed <= column.greater_than,
                    pl.format(
                        "{}: {} is not above {}",
                        pl.lit(column.name),
                        _shown(typed),
                        pl.lit(_number(column.greater_than)),
                    ),
                )
            )
        if column.min is not None:
            rules.append(
                Rule(
                    "out_of_range",
                    column.name,
                    typed < column.min,
                    pl.format(
                        "{}: {} is below the minimum {}",
                        pl.lit(column.name),
                        _shown(typed),
                        pl.lit(_number(column.min)),
                    ),
                )
            )
        if column.max is not None:
            rules.append(
                Rule(
                    "out_of_range",
                    column.name,
                    typed > column.max,
                    pl.format(
                        "{}: {} is above the maximum {}",
                        pl.lit(column.name),
                        _shown(typed),
                        pl.lit(_number(column.max)),
                    ),
                )
            )
        if column.allowed is not None:
            rules.append(
                Rule(
                    "not_allowed",
                    column.name,
                    typed.is_not_null() & ~typed.cast(pl.String).is_in(column.allowed),
                    pl.format(
                        "{}: '{}' is not one of {}",
                        pl.lit(column.name),
                        _shown(typed),
                        pl.lit(", ".join(column.allowed)),
                    ),
                    _allowed_screen(column, schema),
                )
            )
        if column.type in ("date", "timestamp"):
            limit = now.date() if column.type == "date" else now
            rules.append(
                Rule(
                    "future_timestamp",
                    column.name,
                    typed > pl.lit(limit),
                    pl.format("{}: {} is in the future", pl.lit(column.name), _shown(typed)),
                )
            )
    return rules


def malformed_record_rule() -> Rule:
    """A text file's record whose fields did not line up with the header (see ``sources``)."""
    return Rule("malformed_row", "(record)", pl.col(PARSE_ERROR).is_not_null(), pl.col(PARSE_ERROR))


def with_typed(lf: pl.LazyFrame, source: SourceSpec) -> pl.LazyFrame:
    """Add each column's typed value as ``__name`` beside the raw columns."""
    schema = lf.collect_schema()
    return lf.with_columns(
        polars_typed(column, schema, source.csv).alias(f"__{column.name}") for column in source.columns
    )


def flag_rejections(
    typed: pl.LazyFrame,
    rules: list[Rule],
    *,
    unique_key: bool,
    known_keys: pl.Series | None,
    screened: bool = False,
) -> pl.LazyFrame:
    """Add ``_rejected``: whether any rule fails, a later duplicate, or an unknown customer.

    ``screened`` judges rules that have a screen by it, and adds ``_suspect``: whether a screen
    holds. A screen holds wherever its rule fails, so where no row is suspect the flags are exact.
    """
    key = pl.col(f"__{CUSTOMER_KEY}")
    screens = [rule.screen for rule in rules if screened and rule.screen is not None]
    judged = [rule.failed for rule in rules if not (screened and rule.screen is not None)]
    failed = pl.any_horizontal([test.fill_null(False) for test in judged + screens])
    if known_keys is not None:
        failed = failed | (key.is_not_null() & ~key.is_in(known_keys.implode()))
    flagged = typed.with_columns(failed.alias(REJECTED))
    if screened:
        flagged = flagged.with_columns(pl.any_horizontal([pl.lit(False), *screens]).alias(SUSPECT))
    if unique_key:
        # A duplicate is judged among otherwise-valid rows: the first valid one is kept. Masking
        # rejected rows' keys to null lets one is_first_distinct pass do it, where a window over
        # (key, rejected) costs a second of a 1M-row build.
        valid_key = pl.when(~pl.col(REJECTED)).then(key)
        duplicate = valid_key.is_not_null() & ~valid_key.is_first_distinct()
        flagged = flagged.with_columns((pl.col(REJECTED) | duplicate).alias(REJECTED))
    return flagged


RULE_INDEX = "_rule_index"


def _rejection_checks(rules: list[Rule], known_keys: pl.Series | None) -> list[tuple[pl.Expr, str, str, pl.Expr]]:
    """Every check a rejected row is judged by, in order: (failed, rule, column, reason)."""
    key = pl.col(f"__{CUSTOMER_KEY}")
    checks = [(r.failed.fill_null(False), r.name, r.column, r.reason) for r in rules]
    if known_keys is not None:
        checks.append(
            (
                ~key.is_in(known_keys.implode()),
                "unknown_customer",
                CUSTOMER_KEY,
                pl.format("{} {} is not in the customer file", pl.lit(CUSTOMER_KEY), _shown(key)),
            )
        )
    checks.append(
        (
            pl.lit(True),
            "duplicate_key",
            CUSTOMER_KEY,
            pl.format("duplicate {} {}: an earlier row has the same key", pl.lit(CUSTOMER_KEY), _shown(key)),
        )
    )
    return checks


def describe_rejections(
    rejected: pl.LazyFrame,
    rules: list[Rule],
    *,
    known_keys: pl.Series | None,
) -> pl.LazyFrame:
    """Rejected rows with ``_rule_index``: the position of the first check they fail.

    Only the index is computed here, as a coalesce of one-branch integer ``when``s; the reason
    text is written by :func:`explain_rejections` once the (few) rejected rows are in memory.
    A single ``when/then`` chain choosing among string reasons panicked inside polars 2.1
    (``assertion failed: i < self.len()``) on filtered frames of some 30,000 rows, and failed
    another way on 1.33 (``zip node received non-equal length inputs``).
    """
    checks = _rejection_checks(rules, known_keys)
    first = pl.coalesce([pl.when(failed).then(pl.lit(i, dtype=pl.Int32)) for i, (failed, *_) in enumerate(checks)])
    return rejected.with_columns(first.alias(RULE_INDEX))


def explain_rejections(
    rejected: pl.DataFrame,
    rules: list[Rule],
    raw_columns: list[str],
    *,
    known_keys: pl.Series | None,
) -> pl.DataFrame:
    """The quarantine rows: where each rejected row came from, its rule, column, reason and raw record.

    Each rule's reason is computed over the rows that rule rejected only, so no expression has
    to choose among rules per row.
    """
    checks = _rejection_checks(rules, known_keys)
    raw_record = pl.struct([pl.col(c).cast(pl.String) for c in raw_columns]).struct.json_encode()
    parts = []
    for index in rejected.get_column(RULE_INDEX).unique().sort().to_list():
        _, name, column, reason = checks[index]
        parts.append(
            rejected.filter(pl.col(RULE_INDEX) == index).select(
                pl.col(SOURCE_FILE).alias("source_file"),
                pl.col(FILE_ROW).alias("source_row"),
                pl.col(SOURCE_ROW).alias("raw_row"),
                pl.lit(name, dtype=pl.String).alias("rule"),
                pl.lit(column, dtype=pl.String).alias("column_name"),
                reason.cast(pl.String).alias("reason"),
                raw_record.alias("raw_record"),
            )
        )
    if not parts:
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    return pl.concat(parts).sort("raw_row")


QUARANTINE_SCHEMA = {
    "source_file": pl.String,
    "source_row": pl.Int64,
    "raw_row": pl.Int64,
    "rule": pl.String,
    "column_name": pl.String,
    "reason": pl.String,
    "raw_record": pl.String,
}


def staged_columns(typed: pl.LazyFrame, source: SourceSpec) -> pl.LazyFrame:
    """Keep the typed canonical columns under their canonical names, with lineage."""
    return typed.select(
        *(pl.col(f"__{column.name}").alias(column.name) for column in source.columns),
        *(pl.col(c) for c in LINEAGE_COLUMNS),
    )

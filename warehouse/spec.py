"""Dataset specs: a declarative description of a bank's files, so new data needs no code change.

A spec is a TOML or YAML file validated by the pydantic models below. It names up to four
sources, each with fixed warehouse names so that every later layer can rely on them:

* ``customers``     -> ``raw_customers`` / ``stg_customers``: one row per customer.
* ``applications``  -> ``raw_applications`` / ``stg_applications``: one loan application per customer.
* ``transactions``  -> ``raw_transactions`` / ``stg_transactions``: one row per transaction.
* ``snapshots``     -> ``raw_snapshots`` / ``stg_snapshots``: one row per customer per period;
  or ``customers.wide_snapshots`` when the periods are columns of the customer file.

Every column is declared with its canonical name, type, role and a description that becomes
the warehouse's column comment.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import SpecError

ColumnType = Literal["int", "float", "string", "bool", "date", "timestamp"]
Role = Literal["id", "numeric", "categorical", "target", "timestamp", "amount", "attribute"]
#: What a money column means, so engineered ratios know their inputs without naming conventions.
Measure = Literal["income", "instalment", "credit_limit", "card_balance", "debt", "deposit", "savings"]
SourceKind = Literal["customers", "applications", "transactions", "snapshots"]

SOURCE_KINDS: tuple[SourceKind, ...] = ("customers", "applications", "transactions", "snapshots")
CUSTOMER_KEY = "customer_id"
#: Canonical snapshot measures the feature and early-warning layers understand.
SNAPSHOT_MEASURES = (
    "balance",
    "utilization",
    "debt_to_income",
    "credit_score",
    "days_past_due",
    "bill_amount",
    "payment_amount",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED_PREFIX = "_"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvOptions(_Strict):
    """How to read a delimited text file."""

    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    na_values: list[str] = Field(default_factory=lambda: ["", "NA"])
    decimal: Literal[".", ","] = "."


#: The raw column a generated row number is read from (``generated = "row_number"``).
ROW_NUMBER_SOURCE = "_row_number"


class ColumnSpec(_Strict):
    """One warehouse column: where it comes from, its type, its role and its rules."""

    name: str
    #: Becomes the warehouse column comment; left out, the comment says where the column came from.
    description: str = ""
    type: ColumnType
    role: Role
    source: str | None = None
    product_of: list[str] | None = Field(None, min_length=2)
    #: ``row_number``: the row's number in the source (1, 2, ... over its files), for a file without a key.
    generated: Literal["row_number"] | None = None
    #: Text removed before a value is parsed: thousands separators (``","``), currency signs, stray ``_``.
    remove: list[str] | None = Field(None, min_length=1)
    #: A number multiplied into the value once parsed: 12 turns a monthly income into an annual one,
    #: 0.01 a percentage into a share. Rules (min, max, greater_than) judge the scaled value.
    scale: float | None = None
    #: A yes/no column that says whether the customer holds a product (cross-sell reads these only).
    product: bool = False
    unit: str | None = None
    measure: Measure | None = None
    required: bool = False
    min: float | None = None
    max: float | None = None
    greater_than: float | None = None
    allowed: list[str] | None = None
    mapping: dict[str, str] | None = None
    mapping_default: str | None = None
    format: str | None = None
    positive: str | list[str] | None = None
    negative: str | list[str] | None = None

    @field_validator("name")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"'{value}' must be snake_case (a-z, 0-9, _), starting with a letter")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.source is not None and self.product_of is not None:
            raise ValueError("give either 'source' or 'product_of', not both")
        if self.generated is not None and (self.source is not None or self.product_of is not None):
            raise ValueError("a generated column has no 'source' or 'product_of'")
        if self.generated is not None and self.type != "int":
            raise ValueError("a generated row number has type 'int'")
        if self.scale is not None and self.type != "float":
            raise ValueError("a scaled value is a number with decimals: type must be 'float'")
        if any(not text for text in self.remove or []):
            raise ValueError("'remove' lists text to remove: an empty string removes nothing")
        if self.product and (self.type != "bool" or not self.name.startswith("has_")):
            raise ValueError("a product flag is a yes/no column named has_<product>: type 'bool' and a has_ name")
        if self.role == "target":
            if self.positive is None:
                raise ValueError("a target column needs 'positive': the source value that means default")
            if self.type != "bool":
                raise ValueError("a target column has type 'bool' (defaulted or not)")
            overlap = set(self.positive_values) & set(self.negative_values)
            if overlap:
                raise ValueError(f"'{sorted(overlap)[0]}' is both a positive and a negative value")
        elif self.positive is not None or self.negative is not None:
            raise ValueError("'positive' and 'negative' are for the target column (role 'target') only")
        if self.product_of is not None and self.type not in ("int", "float"):
            raise ValueError("'product_of' makes a number: type must be 'int' or 'float'")
        if self.measure is not None and self.type not in ("int", "float"):
            raise ValueError("a column with a 'measure' is an amount: type must be 'int' or 'float'")
        if self.mapping_default is not None and self.mapping is None:
            raise ValueError("'mapping_default' needs a 'mapping'")
        if not self.description.strip():
            origin = (
                "the row's number in its source"
                if self.generated
                else " x ".join(f"file column '{source}'" for source in self.source_columns)
            )
            return self.model_copy(update={"description": f"{self.name}, from {origin} (the spec has no description)."})
        return self

    @property
    def positive_values(self) -> list[str]:
        """The target's values that mean default, as compared: trimmed, lower case (BAD = Bad = bad)."""
        return _label_values(self.positive)

    @property
    def negative_values(self) -> list[str]:
        """The target's values that mean no default; empty when the spec leaves them to the data."""
        return _label_values(self.negative)

    @property
    def source_columns(self) -> list[str]:
        """The source file's columns this column is read from."""
        if self.product_of is not None:
            return list(self.product_of)
        if self.generated is not None:
            return [ROW_NUMBER_SOURCE]
        return [self.source if self.source is not None else self.name]

    @property
    def is_number(self) -> bool:
        return self.type in ("int", "float")


def _label_values(values: str | list[str] | None) -> list[str]:
    if values is None:
        return []
    return [value.strip().lower() for value in ([values] if isinstance(values, str) else values)]


class WideMeasure(_Strict):
    """One snapshot measure spread over per-period columns of the customer file."""

    sources: list[str] = Field(min_length=1)
    description: str = Field(min_length=3)
    unit: str | None = None
    scale: float = 1.0
    clip_min: float | None = None


class WideSnapshots(_Strict):
    """Periods stored as columns (Taiwan's PAY_0..PAY_6): the build turns them into snapshot rows."""

    periods: list[date] = Field(min_length=1)
    measures: dict[str, WideMeasure] = Field(min_length=1)

    @model_validator(mode="after")
    def _aligned(self) -> WideSnapshots:
        for name, measure in self.measures.items():
            if name not in SNAPSHOT_MEASURES:
                raise ValueError(f"measure '{name}' is not one of {', '.join(SNAPSHOT_MEASURES)}")
            if len(measure.sources) != len(self.periods):
                raise ValueError(
                    f"measure '{name}' has {len(measure.sources)} source columns "
                    f"but there are {len(self.periods)} periods"
                )
        return self


_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class SourceSpec(_Strict):
    """One source: its files, how to read them, and its columns.

    A source is either ``files`` read as they are, or a ``query``: read-only DuckDB SQL over the
    named ``tables`` (each a file, read with this source's ``csv`` options), for exports of
    several related tables (transactions per account, accounts per client). The query sees those
    tables and nothing else: no other file, no network.
    """

    files: list[str] = Field(default_factory=list)
    tables: dict[str, str] | None = None
    query: str | None = None
    format: Literal["csv", "parquet", "xlsx"] | None = None
    csv: CsvOptions = Field(default_factory=CsvOptions)
    sheet: str | None = None
    columns: list[ColumnSpec] = Field(min_length=1)
    wide_snapshots: WideSnapshots | None = None
    #: A build whose source loses a larger share of its rows to quarantine stops instead: a
    #: wrong declared type or delimiter rejects nearly every row, and such a warehouse is no use.
    max_rejected_share: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _unique_names(self) -> SourceSpec:
        if self.query is None and not self.files:
            raise ValueError("a source needs 'files', or 'tables' and a 'query' over them")
        if self.query is not None and (self.files or not self.tables):
            raise ValueError("a query source names its files in 'tables' (name = file), not in 'files'")
        if self.tables is not None and self.query is None:
            raise ValueError("'tables' are read by a 'query': give one")
        for table in self.tables or {}:
            if not _TABLE_NAME.match(table):
                raise ValueError(f"table name '{table}' must be snake_case, so the query can name it unquoted")
        seen: set[str] = set()
        for column in self.columns:
            if column.name in seen:
                raise ValueError(f"column name '{column.name}' is declared twice")
            seen.add(column.name)
        if CUSTOMER_KEY not in seen:
            raise ValueError(f"every source needs a column named '{CUSTOMER_KEY}' (the customer key)")
        if self.column(CUSTOMER_KEY).type not in ("int", "string"):
            raise ValueError(f"'{CUSTOMER_KEY}' must have type 'int' or 'string'")
        return self

    def column(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def has_column(self, name: str) -> bool:
        return any(column.name == name for column in self.columns)

    def file_format(self, file_name: str) -> str:
        if self.format is not None:
            return self.format
        suffix = Path(file_name).suffix.lower()
        return {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".parquet": "parquet", ".xlsx": "xlsx"}.get(suffix, "csv")


class DatasetSpec(_Strict):
    """A whole dataset: which sources it has and what they hold."""

    name: str
    description: str = ""
    customers: SourceSpec | None = None
    applications: SourceSpec | None = None
    transactions: SourceSpec | None = None
    snapshots: SourceSpec | None = None

    @model_validator(mode="after")
    def _roles(self) -> DatasetSpec:
        if not any(self.source(kind) for kind in SOURCE_KINDS):
            raise ValueError("a spec needs at least one of customers, applications, transactions, snapshots")
        if self.transactions is not None:
            for needed, role in (("occurred_at", "timestamp"), ("amount", "amount")):
                if not self.transactions.has_column(needed):
                    raise ValueError(f"transactions need a column '{needed}' (role {role})")
        if self.snapshots is not None and not self.snapshots.has_column("period"):
            raise ValueError("snapshots need a column 'period' (type date): the period's first day")
        if self.snapshots is not None and self.customers is not None and self.customers.wide_snapshots:
            raise ValueError("give snapshots either as a 'snapshots' source or as customers.wide_snapshots")
        targets = [
            f"{kind}.{column.name}"
            for kind in SOURCE_KINDS
            if (source := self.source(kind)) is not None
            for column in source.columns
            if column.role == "target"
        ]
        if len(targets) > 1:
            raise ValueError(f"only one target column is allowed, found {', '.join(targets)}")
        if self.transactions is not None and self.transactions.column("occurred_at").type == "date":
            # Exports often hold a transaction's day only; every later layer reads a timestamp,
            # so a day is read as its midnight.
            occurred = self.transactions.column("occurred_at").model_copy(update={"type": "timestamp"})
            columns = [occurred if c.name == "occurred_at" else c for c in self.transactions.columns]
            return self.model_copy(update={"transactions": self.transactions.model_copy(update={"columns": columns})})
        return self

    def source(self, kind: str) -> SourceSpec | None:
        return getattr(self, kind)

    def sources(self) -> list[tuple[SourceKind, SourceSpec]]:
        return [(kind, source) for kind in SOURCE_KINDS if (source := self.source(kind)) is not None]

    @property
    def target(self) -> ColumnSpec | None:
        for _, source in self.sources():
            for column in source.columns:
                if column.role == "target":
                    return column
        return None

    @property
    def has_snapshots(self) -> bool:
        return self.snapshots is not None or (self.customers is not None and self.customers.wide_snapshots is not None)


def builtin_spec_names() -> list[str]:
    """Names of the specs shipped with Segrisk (``demo``, ``german-credit``, ...)."""
    folder = resources.files("warehouse") / "specs"
    return sorted(entry.name.removesuffix(".toml") for entry in folder.iterdir() if entry.name.endswith(".toml"))


def load_spec(name_or_path: str | Path) -> tuple[DatasetSpec, str]:
    """Load a built-in spec by name, or a spec file by path; return it with its source text."""
    candidate = Path(name_or_path)
    if str(name_or_path) in builtin_spec_names():
        resource = resources.files("warehouse") / "specs" / f"{name_or_path}.toml"
        return parse_spec(resource.read_text(encoding="utf-8"), f"{name_or_path}.toml"), resource.read_text(
            encoding="utf-8"
        )
    if not candidate.exists():
        known = ", ".join(builtin_spec_names())
        raise SpecError(f"Spec '{name_or_path}' is neither a built-in spec ({known}) nor an existing file.")
    try:
        text = candidate.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"Spec file {candidate} could not be read as UTF-8 text: {exc}.") from exc
    return parse_spec(text, str(candidate)), text


def parse_spec(text: str, label: str) -> DatasetSpec:
    """Parse TOML (``.toml``) or YAML (anything else) text into a validated spec.

    Every problem is reported at once, each at a place a person can find: a column by its
    ``name`` (``customers.columns['age'].type``), a syntax error by its line.
    """
    try:
        if label.endswith(".toml"):
            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text)
    except tomllib.TOMLDecodeError as exc:
        reason = str(exc).splitlines()[0]
        raise SpecError(f"Spec {label} does not parse: {reason}.") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"Spec {label} does not parse{where}: {problem}.") from exc
    if not isinstance(data, dict):
        raise SpecError(f"Spec {label} must be a mapping of keys to values at the top level.")
    try:
        return DatasetSpec.model_validate(data)
    except ValidationError as exc:
        by_place: dict[str, str] = {}
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (check its spelling against the spec format in the README)"
            elif error["type"] == "missing":
                message = "this key is required"
            place = _where(error["loc"], data)
            if place in by_place:  # a value of a union type fails each branch: one problem, its branches joined
                by_place[place] += " or " + message.removeprefix("Input should be ")
            else:
                by_place[place] = message
        problems = [f"{place}: {message}" for place, message in by_place.items()]
        if len(problems) == 1:
            raise SpecError(f"Spec {label}: {problems[0]}.") from exc
        raise SpecError(f"Spec {label} has {len(problems)} problems: {'; '.join(problems)}.") from exc


def _where(location: tuple, data: object) -> str:
    """A validation error's place, with list items named by their ``name``: ``customers.columns['age'].type``."""
    where = ""
    node: object = data
    for index, part in enumerate(location):
        if index and not isinstance(node, dict | list):
            break  # past the value itself: pydantic names the union's branches (str, list[str])
        if isinstance(part, int) and isinstance(node, list):
            item = node[part] if part < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            where += f"[{name!r}]" if isinstance(name, str) else f"[{part}]"
            node = item
        else:
            where += ("." if where else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return where or "(top level)"

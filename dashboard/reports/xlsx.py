"""The report as an Excel workbook (xlsxwriter): summary, personas, grades, policy, alerts,
recommendations and the customer list.

Numbers are stored as numbers with number formats (percent, currency, thousands), every sheet has
its header row frozen, an autofilter and set column widths. The workbook is written in
xlsxwriter's constant-memory mode and the customer-level sheets are fed from DuckDB in batches, so
a million customers take a few tens of MB of memory, not the whole table. A sheet holds at most
1,048,575 data rows under its header (Excel's limit); a table with more continues on
``customers (2)``, ``customers (3)``, ...
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from dashboard.data import WarehouseReader
from dashboard.state import persona_names

from .content import ROW_TABLES, ReportContent, stream

#: Excel's rows per sheet (1,048,576) less the header row.
EXCEL_MAX_DATA_ROWS = 1_048_575
#: Rows fetched from DuckDB and written per batch.
BATCH_ROWS = 50_000

#: Number formats by kind of column.
FORMATS = {
    "text": None,
    "int": "0",
    "count": "#,##0",
    "percent": "0.0%",
    "percent2": "0.00%",
    "decimal": "#,##0.00",
    "ratio": "0.000",
    "score": "0",
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm",
    "bool": None,
    "money": "#,##0",  # the unit is added from the data (EUR, ...)
}


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    kind: str = "text"
    width: float = 12


PERSONA_COLUMNS = (
    Column("key", "Persona key", width=11),
    Column("name", "Persona", width=28),
    Column("archetype", "Archetype", width=24),
    Column("manual_underwriting", "Manual underwriting", "bool", 12),
    Column("book_customers", "Customers (whole book)", "count", 14),
    Column("book_share", "Share of book", "percent", 11),
    Column("customers", "Customers in view", "count", 13),
    Column("mean_pd", "Mean PD (in view)", "percent2", 12),
    Column("default_rate", "Default rate (in view)", "percent2", 13),
    Column("open_alerts", "Open alerts (in view)", "count", 12),
    Column("description", "Description", width=40),
    Column("strategy", "Strategy", width=60),
    Column("top_features", "Sets them apart", width=50),
)
GRADE_COLUMNS = (
    Column("grade", "Grade", width=8),
    Column("score_lower", "Score from", "score", 10),
    Column("score_upper", "Score to", "score", 10),
    Column("pd_lower", "PD from", "percent", 9),
    Column("pd_upper", "PD to", "percent", 9),
    Column("customers", "Customers in view", "count", 13),
    Column("share", "Share in view", "percent", 11),
    Column("mean_pd", "Mean PD", "percent2", 10),
    Column("observed_default_rate", "Observed default rate", "percent2", 14),
    Column("book_customers", "Customers (whole book)", "count", 14),
    Column("book_default_rate", "Observed default rate (whole book)", "percent2", 18),
)
POLICY_COLUMNS = (
    Column("persona_name", "Persona (whole book)", width=30),
    Column("customers", "Customers", "count", 12),
    Column("automation_rate", "Automation rate", "percent", 12),
    Column("approval_rate", "Approval rate", "percent", 12),
    Column("review_rate", "Review rate", "percent", 12),
    Column("decline_rate", "Decline rate", "percent", 12),
    Column("expected_default_rate_approved", "Expected default rate (approved)", "percent2", 16),
    Column("expected_loss_approved", "Expected loss (approved)", "money", 18),
    Column("policy_version", "Policy version", "int", 10),
)
ALERT_COLUMNS = (
    Column("alert_id", "Alert", width=34),
    Column("customer_id", "Customer", "int", 11),
    Column("persona_key", "Persona key", width=10),
    Column("grade", "Grade", width=8),
    Column("rule_label", "Rule", width=30),
    Column("value", "Value", "decimal", 11),
    Column("threshold", "Threshold", "decimal", 11),
    Column("severity", "Severity", width=10),
    Column("period", "Period", "date", 12),
)
OFFER_COLUMNS = (
    Column("customer_id", "Customer", "int", 11),
    Column("persona_key", "Persona key", width=10),
    Column("persona_name", "Persona", width=26),
    Column("grade", "Grade", width=8),
    Column("priority", "Priority", "int", 9),
    Column("product_name", "Offer", width=24),
    Column("is_credit_offer", "Credit offer", "bool", 11),
    Column("reason", "Reason", width=60),
)
CUSTOMER_COLUMNS = (
    Column("customer_id", "Customer", "int", 11),
    Column("persona_key", "Persona key", width=10),
    Column("persona_name", "Persona", width=26),
    Column("age_band", "Age band", width=10),
    Column("region", "Region", width=12),
    Column("grade", "Grade", width=8),
    Column("pd", "PD", "percent2", 9),
    Column("score", "Score", "score", 8),
    Column("decision", "Decision", width=10),
    Column("is_defaulted", "Defaulted (12 months)", "bool", 12),
    Column("product_count", "Products held", "int", 10),
    Column("open_alerts", "Open alerts", "int", 10),
    Column("offers", "Offers", "int", 8),
)


class Book:
    """A workbook being written: its formats, and tables that continue on a new sheet when full."""

    def __init__(self, path: Path, money_unit: str, max_rows: int) -> None:
        self.workbook = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "tmpdir": str(path.parent),
                "nan_inf_to_errors": True,
                "default_date_format": FORMATS["date"],
                # Text from the data stays text: no formulas ("=..."), no hyperlinks.
                "strings_to_formulas": False,
                "strings_to_urls": False,
            },
        )
        self.max_rows = max_rows
        self.sheet_rows: dict[str, int] = {}
        money = f'#,##0 "{money_unit}"' if money_unit else FORMATS["money"]
        self.formats = {
            kind: self.workbook.add_format({"num_format": money if kind == "money" else pattern})
            for kind, pattern in FORMATS.items()
            if pattern
        }
        self.header = self.workbook.add_format(
            {"bold": True, "bg_color": "#E9ECEF", "bottom": 1, "text_wrap": True, "valign": "top"}
        )
        self.wrap = self.workbook.add_format({"text_wrap": True, "valign": "top"})

    def _sheet(self, name: str, columns: tuple[Column, ...]) -> Worksheet:
        sheet = self.workbook.add_worksheet(name)
        for i, column in enumerate(columns):
            sheet.set_column(i, i, column.width, self.formats.get(column.kind))
        sheet.set_row(0, 30)
        sheet.write_row(0, 0, [c.header for c in columns], self.header)
        sheet.freeze_panes(1, 0)
        return sheet

    def table(self, name: str, columns: tuple[Column, ...], batches: Iterable[pl.DataFrame]) -> int:
        """Write rows under a header, on ``name`` then ``name (2)``, ... when a sheet is full; returns the rows."""
        part, sheet_name = 1, name
        sheet, written, total = self._sheet(sheet_name, columns), 0, 0
        keys = [c.key for c in columns]
        for batch in batches:
            for row in batch.select(keys).iter_rows():
                if written == self.max_rows:
                    self._close_sheet(sheet, sheet_name, written, len(columns))
                    part += 1
                    sheet_name = f"{name} ({part})"
                    sheet, written = self._sheet(sheet_name, columns), 0
                written += 1
                sheet.write_row(written, 0, row)
            total += batch.height
        self._close_sheet(sheet, sheet_name, written, len(columns))
        return total

    def _close_sheet(self, sheet: Worksheet, name: str, rows: int, columns: int) -> None:
        sheet.autofilter(0, 0, rows, columns - 1)
        self.sheet_rows[name] = rows

    def summary(self, items: list[tuple[str, object, str, str]]) -> None:
        """The summary sheet: one figure a row (label, value, kind of number, note)."""
        sheet = self._sheet(
            "summary", (Column("", "Item", width=34), Column("", "Value", width=30), Column("", "Note", width=70))
        )
        for row, (label, value, kind, note) in enumerate(items, start=1):
            sheet.write_string(row, 0, label)
            if value is None:
                sheet.write_blank(row, 1, None)
            else:
                sheet.write(row, 1, value, self.formats.get(kind))
            sheet.write_string(row, 2, note)
        sheet.autofilter(0, 0, len(items), 2)
        self.sheet_rows["summary"] = len(items)

    def close(self) -> None:
        self.workbook.close()


def summary_items(content: ReportContent) -> list[tuple[str, object, str, str]]:
    figures, build = content.headline, content.build or {}
    items: list[tuple[str, object, str, str]] = [
        ("Report", "Segrisk executive risk report", "text", ""),
        ("Filters", content.scope, "text", "every sheet follows them unless it says whole book"),
        ("As-of date", build.get("as_of_date"), "date", "the data's reference date"),
        ("Build", build.get("build_id"), "text", f"dataset spec {build.get('spec_name') or '–'}"),
        ("Generated", content.generated_at.replace(tzinfo=None), "datetime", "UTC"),
        ("Customers", figures.get("customers"), "count", "in view"),
        ("Personas", figures.get("personas"), "count", "with customers in view"),
        ("Default rate", figures.get("default_rate"), "percent", "observed within 12 months"),
        ("Automation rate", figures.get("automation_rate"), "percent", "decided without a person, current policy"),
        ("Approval rate", figures.get("approval_rate"), "percent", "current policy"),
        ("Open alerts", figures.get("open_alerts"), "count", "early warnings not acknowledged"),
        (
            "Expected loss",
            figures.get("expected_loss"),
            "money",
            "approved book under the current policy; whole book only (blank when a filter is set)",
        ),
    ]
    if content.policy is not None:
        policy = content.policy
        rules = [
            r.get("label") or f"{r['column']} {r['op']} {r['value']:g}"
            for r in policy.get("rules", [])
            if r.get("enabled", True)
        ]
        if policy.get("review_flagged_personas"):
            rules.insert(0, "personas flagged for manual underwriting")
        items += [
            ("Policy version", policy.get("version"), "int", str(policy.get("name") or "")),
            ("Auto-approve at or above score", policy.get("approve_min_score"), "score", ""),
            ("Decline below score", policy.get("decline_below_score"), "score", ""),
            ("Loss given default", policy.get("lgd"), "percent", ""),
            ("Review rules", "; ".join(rules) or "none", "text", "sent to review whatever the score"),
        ]
    if content.model is not None:
        metrics = content.model["metrics"]
        items += [
            ("Risk model run", content.model["run_id"], "text", "champion measured on the held-out test part"),
            ("Test ROC AUC", metrics.get("roc_auc"), "ratio", "whole book"),
            ("Gini", metrics.get("gini"), "ratio", "whole book"),
            ("KS", metrics.get("ks"), "ratio", "whole book"),
            ("Brier score", metrics.get("brier"), "ratio", f"base rate gives {metrics.get('brier_base_rate', 0):.4f}"),
        ]
    if content.warnings is not None:
        items.append(("High-severity open alerts", content.warnings["high"], "count", "in view"))
    if content.cross_sell is not None:
        totals = content.cross_sell["totals"]
        items += [
            ("Customers with an offer", totals["customers_with_offer"], "count", "in view"),
            ("Cross-sell offers", totals["offers"], "count", "in view"),
            ("Credit offers", totals["credit_offers"], "count", "in view"),
        ]
    if content.quarantine is not None:
        items.append(
            ("Quarantined rows", int(content.quarantine.get_column("rows").sum() or 0), "count", "all sources")
        )
    return items


def persona_rows(content: ReportContent) -> pl.DataFrame:
    rows = [
        {**persona.__dict__, "top_features": ", ".join(f.replace("_", " ") for f in persona.top_features)}
        for persona in content.personas
    ]
    return (
        pl.DataFrame(
            rows, schema_overrides={"mean_pd": pl.Float64, "default_rate": pl.Float64, "open_alerts": pl.Int64}
        )
        if rows
        else pl.DataFrame({c.key: [] for c in PERSONA_COLUMNS})
    )


def grade_rows(content: ReportContent) -> pl.DataFrame:
    if content.grades is None:
        return pl.DataFrame({c.key: [] for c in GRADE_COLUMNS})
    total = content.grades.get_column("customers").sum() or 1
    return content.grades.with_columns((pl.col("customers") / total).alias("share"))


def _renamed(names: dict[str, str]):  # noqa: ANN202 - a function over polars frames
    """Persona names as people see them now (a rename in the dashboard shows at once)."""

    def apply(batch: pl.DataFrame) -> pl.DataFrame:
        if not names or "persona_name" not in batch.columns:
            return batch
        return batch.with_columns(
            pl.when(pl.col("persona_key").is_in(list(names)))
            .then(pl.col("persona_key").replace(names))
            .otherwise(pl.col("persona_name"))
            .alias("persona_name")
        )

    return apply


def write_xlsx(
    content: ReportContent,
    data: WarehouseReader,
    path: Path,
    max_rows: int = EXCEL_MAX_DATA_ROWS,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, int]:
    """Write the workbook to ``path``; returns the data rows of each sheet."""
    book = Book(path, content.money_unit, max_rows)
    try:
        book.summary(summary_items(content))
        book.table("personas", PERSONA_COLUMNS, [persona_rows(content)])
        book.table("grades", GRADE_COLUMNS, [grade_rows(content)])
        evaluations = content.policy_evaluations
        book.table("policy", POLICY_COLUMNS, [evaluations] if evaluations is not None else [])
        rename = _renamed(persona_names(data))
        for name, columns in (
            ("alerts", ALERT_COLUMNS),
            ("recommendations", OFFER_COLUMNS),
            ("customers", CUSTOMER_COLUMNS),
        ):
            batches = stream(data, name, content.filters, batch_rows) if data.has(ROW_TABLES[name]) else []
            book.table(name, columns, (rename(b) for b in batches))
    finally:
        book.close()
    return dict(book.sheet_rows)

"""What a report holds for one set of global filters, read from the warehouse.

The figures come from the dashboard's own named queries and page functions, so a report says what
the dashboard shows for the same filters: the headline figures of the Overview, the persona cards,
the grade table, the policy, the alert counts of Early warnings, the campaign mix of Cross-sell,
the model measures of Risk & policy and the build of Data. Charts are the pages' Plotly figures.

Each section is ``None`` when the warehouse lacks its data (no target, a model not trained), and
the report says so in a sentence instead.

Customer-level tables (customers, alerts, offers) are not held here: the workbook streams them
from DuckDB in batches (:func:`stream`), so a million customers never sit in memory at once.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType

import duckdb
import plotly.graph_objects as go
import polars as pl

from dashboard import disclosure, filters
from dashboard.data import QUERIES, WarehouseReader, register
from dashboard.state import persona_labels
from warehouse.db import first_line, read_only
from warehouse.history import latest_run_of

from . import ReportError

PAGES_FOLDER = Path(__file__).resolve().parents[1] / "pages"
#: The dashboard pages whose queries and figures a report uses.
REPORT_PAGES = ("overview", "personas", "risk", "warnings", "cross_sell", "data_catalog")
LATEST_RISK_RUN = latest_run_of("risk")
LATEST_WARNINGS_RUN = latest_run_of("warnings")


register(
    report_grades="SELECT p.grade, count(*) AS customers, avg(p.pd) AS mean_pd, "
    "avg(p.is_defaulted::INT) AS observed_default_rate FROM mart_customer_profile p "
    f"WHERE {filters.FILTERED} AND p.grade <> 'unscored' GROUP BY ALL ORDER BY ALL",
    report_grade_bands="SELECT grade, pd_lower, pd_upper, score_lower, score_upper, customers AS book_customers, "
    f"observed_default_rate AS book_default_rate FROM ml_risk_grades WHERE run_id = {LATEST_RISK_RUN} ORDER BY grade",
    report_decisions="SELECT p.decision, count(*) AS customers, avg(p.pd) AS mean_pd FROM mart_customer_profile p "
    f"WHERE {filters.FILTERED} AND p.decision IS NOT NULL GROUP BY ALL ORDER BY ALL",
    report_policy="SELECT policy_version, name, created_at, policy FROM ml_policies "
    "ORDER BY policy_version DESC LIMIT 1",
    # The policy the latest risk run evaluated, overall first, then by persona.
    report_policy_evaluations="SELECT persona_name, customers, automation_rate, approval_rate, review_rate, "
    "decline_rate, expected_default_rate_approved, expected_loss_approved, policy_version "
    f"FROM ml_policy_evaluations WHERE run_id = {LATEST_RISK_RUN} AND policy_version = "
    f"(SELECT max(policy_version) FROM ml_policy_evaluations WHERE run_id = {LATEST_RISK_RUN}) "
    "ORDER BY persona_name <> 'All customers', persona_name",
    report_champion="SELECT family, imbalance, calibration, cv_auc FROM ml_risk_models "
    f"WHERE run_id = {LATEST_RISK_RUN} AND role = 'champion'",
    report_stability="SELECT variable, psi, status FROM ml_stability "
    f"WHERE run_id = {LATEST_WARNINGS_RUN} ORDER BY psi DESC",
    report_money_unit="SELECT regexp_extract(comment, 'Unit: ([A-Z][A-Z][A-Z])\\.', 1) AS unit, count(*) AS columns "
    "FROM duckdb_columns() WHERE table_name = 'customers' AND comment LIKE '%Unit: %' "
    "GROUP BY ALL HAVING unit <> '' ORDER BY columns DESC, unit LIMIT 1",
    report_model_runs="SELECT model_kind, run_id, finished_at FROM ml_latest_runs ORDER BY finished_at",
    # Customer-level tables of the workbook, under the global filters.
    report_customer_rows="SELECT p.customer_id, p.persona_key, p.persona_name, p.age_band, p.region, p.grade, p.pd, "
    "p.score, p.decision, p.is_defaulted, p.product_count, p.open_alerts, p.offers "
    f"FROM mart_customer_profile p WHERE {filters.FILTERED} ORDER BY p.customer_id",
    report_alert_rows="SELECT a.alert_id, a.customer_id, a.persona_key, a.grade, a.rule_label, a.value, a.threshold, "
    "a.severity, a.period FROM mart_alerts a "
    f"WHERE a.in_latest_run AND {filters.condition('a')} "
    "AND NOT (a.is_acknowledged OR list_contains($acknowledged, a.alert_id)) "
    "ORDER BY list_position(['high', 'medium', 'low'], a.severity), a.customer_id, a.alert_id",
    report_offer_rows="SELECT r.customer_id, r.persona_key, r.persona_name, r.grade, r.priority, r.product_name, "
    f"r.is_credit_offer, r.reason FROM mart_offers r WHERE {filters.condition('r')} ORDER BY r.customer_id, r.priority",
    report_row_count=f"SELECT count(*) AS n FROM mart_customer_profile p WHERE {filters.FILTERED}",
    report_alert_count="SELECT count(*) AS n FROM mart_alerts a "
    f"WHERE a.in_latest_run AND {filters.condition('a')} "
    "AND NOT (a.is_acknowledged OR list_contains($acknowledged, a.alert_id))",
    report_offer_count=f"SELECT count(*) AS n FROM mart_offers r WHERE {filters.condition('r')}",
)


# -- the dashboard's pages ---------------------------------------------------------------------------


def page(name: str) -> ModuleType:
    """The dashboard page module ``name`` (``overview``, ``risk``, ...), whose figure builders a report
    calls. Inside the dashboard it is the module Dash imported (as ``pages.<name>``). Elsewhere (the
    command line) it is imported here the way Dash does it, and only the pages a report needs: the
    others would add seconds of imports (SciPy, the training stack) to every report."""
    module_name = f"pages.{name}"
    module = sys.modules.get(module_name)
    if module is None:
        with _PAGES_LOCK:
            module = sys.modules.get(module_name)
            if module is None:
                module = _import_page(module_name, PAGES_FOLDER / f"{name}.py")
    return module


_PAGES_LOCK = threading.Lock()


def _import_page(module_name: str, path: Path) -> ModuleType:
    import dash
    from dash.exceptions import AppNotFoundError

    try:
        dash.get_app()
    except AppNotFoundError:  # a page's register_page needs an app to exist
        # Never served: it only lets the page modules register themselves as they do in the dashboard.
        dash.Dash("dashboard.app", suppress_callback_exceptions=True)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ReportError(f"The dashboard page {path} is missing.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module


def for_print(figure: go.Figure) -> dict:
    """A dashboard figure made fit for paper, as the plain dict kaleido draws: no "click to filter"
    hints in its title, a white background. (A dict, not a ``go.Figure``: re-validating a figure to
    change its template costs a tenth of a second per chart.)"""
    printed = figure.to_plotly_json()
    layout = printed.setdefault("layout", {})
    title = layout.get("title") or {}
    title = {"text": title} if isinstance(title, str) else dict(title)
    title["text"] = re.sub(r"\s*\((click|hover)[^)]*\)", "", title.get("text") or "")
    title["font"] = {**(title.get("font") or {}), "size": 15}
    layout["title"] = title
    layout["template"] = _print_template()
    layout.pop("uirevision", None)
    return printed


@functools.cache
def _print_template() -> dict:
    import plotly.io as pio

    return pio.templates["plotly_white"].to_plotly_json()


# -- what a report holds -----------------------------------------------------------------------------


@dataclass
class Persona:
    key: str
    name: str
    description: str
    strategy: str
    archetype: str | None
    manual_underwriting: bool
    book_customers: int
    book_share: float
    top_features: list[str]
    customers: int  # under the filters
    mean_pd: float | None
    default_rate: float | None
    open_alerts: int | None


@dataclass
class ReportContent:
    """Everything a PDF or a workbook shows for one set of filters (sections absent: None)."""

    db_path: Path
    filters: dict[str, list[str]]
    scope: str  # the filters in words ("all customers")
    generated_at: datetime
    build: dict | None
    money_unit: str  # EUR, or "" when the data does not say
    headline: dict[str, float | int | None]
    personas: list[Persona]
    grades: pl.DataFrame | None  # grade, customers, mean_pd, observed_default_rate (+ band columns)
    decisions: pl.DataFrame | None  # decision, customers, mean_pd (under the filters)
    policy: dict | None  # version, name, created_at, approve_min_score, decline_below_score, lgd, rules
    policy_evaluations: pl.DataFrame | None  # whole book, by persona
    warnings: dict | None  # total, high, by_rule, by_period, rules_not_run, psi_score, stability
    cross_sell: dict | None  # run, totals, customers, mix
    model: dict | None  # run_id, finished_at, metrics, champion
    row_counts: pl.DataFrame | None
    quarantine: pl.DataFrame | None  # source, rule, column_name, rows
    model_runs: pl.DataFrame | None
    figures: dict[str, dict] = field(default_factory=dict)  # Plotly figures as dicts, by report place

    @property
    def as_of(self) -> date | None:
        return self.build.get("as_of_date") if self.build else None

    @property
    def is_filtered(self) -> bool:
        return filters.is_filtered(self.filters)


def normalise_filters(data: WarehouseReader, chosen: dict[str, list[str]] | None) -> dict[str, list[str]]:
    """The filters as the store holds them, each value checked against the warehouse's own values;
    an unknown value is refused in one sentence that lists the known ones."""
    known = filters.options(data)
    result = {f.key: [] for f in filters.FILTERS}
    for f in filters.FILTERS:
        values = [str(v).strip() for v in (chosen or {}).get(f.key) or [] if str(v).strip()]
        allowed = [str(o["value"]) for o in known.get(f.key, [])]
        by_case = {a.casefold(): a for a in allowed}  # `--grade d` means grade D
        for value in values:
            if value.casefold() not in by_case:
                listed = ", ".join(allowed) if allowed else "none"
                raise ReportError(f"Unknown {f.label.lower()} '{value}': this warehouse has {listed}.")
        result[f.key] = list(dict.fromkeys(by_case[v.casefold()] for v in values))
    return result


def gather(data: WarehouseReader, chosen: dict[str, list[str]] | None = None, charts: bool = True) -> ReportContent:
    """Read every section of the report for these filters; ``charts`` also builds the Plotly figures."""
    if not data.has("mart_customer_profile"):
        raise ReportError(
            f"The warehouse {data.path} has no customer profile mart: rebuild it with `segrisk build` first."
        )
    for name in REPORT_PAGES:
        page(name)  # each registers the named queries the report runs
    global_filters = normalise_filters(data, chosen)
    params = filters.params(global_filters)
    overview = page("overview")
    names, strategies = persona_labels(data)
    persona_counts, _ = disclosure.suppress(data.query("overview_personas", **params), ["mean_pd"])
    content = ReportContent(
        db_path=data.path,
        filters=global_filters,
        scope=filters.describe(global_filters),
        generated_at=datetime.now(UTC).replace(microsecond=0),
        build=_build(data),
        money_unit=_money_unit(data),
        headline=overview.headline_figures(data, global_filters, persona_counts),
        personas=_personas(data, global_filters, names, strategies),
        grades=None,
        decisions=None,
        policy=None,
        policy_evaluations=None,
        warnings=_warnings(data, global_filters),
        cross_sell=_cross_sell(data, global_filters),
        model=None,
        row_counts=data.query("data_row_counts") if data.has("meta_row_counts") else None,
        quarantine=_quarantine(data),
        model_runs=data.query("report_model_runs") if data.has("ml_model_runs") else None,
    )
    if data.has("ml_risk_grades") and data.has("ml_latest_risk_scores"):
        # A viewer's report hides the figures of a grade or decision of too few customers, as the pages do.
        grades, _ = disclosure.suppress(data.query("report_grades", **params), ["mean_pd", "observed_default_rate"])
        bands = data.query("report_grade_bands")
        content.grades = grades.join(bands, on="grade", how="left")
        content.decisions, _ = disclosure.suppress(data.query("report_decisions", **params), ["mean_pd"])
        content.model = _model(data)
    if data.has("ml_policies"):
        row = data.query("report_policy")
        if row.height:
            version, name, created_at, text = row.row(0)
            policy = json.loads(text)
            content.policy = {**policy, "version": version, "name": name, "created_at": created_at}
    if data.has("ml_policy_evaluations"):
        content.policy_evaluations = data.query("report_policy_evaluations")
    if charts:
        content.figures = _figures(data, content, global_filters, names, persona_counts)
    return content


def _build(data: WarehouseReader) -> dict | None:
    if not data.has("meta_builds"):
        return None
    rows = data.query("data_build")
    return rows.row(0, named=True) if rows.height else None


def _money_unit(data: WarehouseReader) -> str:
    rows = data.query("report_money_unit")
    return str(rows.item(0, "unit")) if rows.height else ""


def _personas(
    data: WarehouseReader, global_filters: dict, names: dict[str, str], strategies: dict[str, str]
) -> list[Persona]:
    if not data.has("ml_latest_segment_summary"):
        return []
    summary = data.query("personas_summary")
    in_view = {row["persona_key"]: row for row in page("personas").persona_figures(data, global_filters).to_dicts()}
    found = []
    for row in summary.iter_rows(named=True):
        key = row["segment_key"]
        figures = in_view.get(key) or {}
        found.append(
            Persona(
                key=key,
                name=names.get(key, row["persona_name"]),
                description=row["description"] or "",
                strategy=strategies.get(key, row["strategy"]) or "",
                archetype=row["archetype"],
                manual_underwriting=bool(row["manual_underwriting"]),
                book_customers=int(row["customers"]),
                book_share=float(row["share"]),
                top_features=list(row["top_features"] or []),
                customers=int(figures.get("customers") or 0),
                mean_pd=figures.get("mean_pd"),
                default_rate=figures.get("default_rate"),
                open_alerts=figures.get("open_alerts"),
            )
        )
    return found


def _warnings(data: WarehouseReader, global_filters: dict) -> dict | None:
    if not data.has("ml_latest_alerts") or not data.has("mart_alerts"):
        return None
    warnings_page = page("warnings")
    params = warnings_page.alert_params(data, global_filters, [], [], "open")
    own = {k: v for k, v in params.items() if k not in filters.FILTER_PARAMS}
    by_rule = filters.scoped_query(data, "warnings_by_rule", global_filters, **own)
    by_period = filters.scoped_query(data, "warnings_by_period", global_filters, rules=[], severities=[])
    total = int(by_rule.get_column("alerts").sum() or 0)
    high = int(by_rule.filter(pl.col("severity") == "high").get_column("alerts").sum() or 0)
    # A viewer's report leaves out the groups of too few customers, as the page does.
    by_rule, by_period, _hidden = warnings_page.hide_small_groups(by_rule, by_period)
    statuses = data.query("warnings_rule_status")
    run = data.query("latest_run", kind="warnings")
    metrics = json.loads(run.item(0, "metrics") or "{}") if run.height else {}
    return {
        "total": total,
        "high": high,
        "by_rule": by_rule,
        "by_period": by_period,
        "rules_not_run": [f"{rule} ({status})" for rule, _, status in statuses.rows() if status != "run"],
        "psi_score": metrics.get("psi_score"),
        "stability": data.query("report_stability") if data.has("ml_stability") else None,
        "run_id": run.item(0, "run_id") if run.height else None,
    }


def _cross_sell(data: WarehouseReader, global_filters: dict) -> dict | None:
    cross_sell = page("cross_sell")
    run = cross_sell.latest_run(data)
    if run is None or not data.has("mart_offers"):
        return None
    mix = cross_sell.campaign_mix(data, global_filters)
    customers = int(data.query("filtered_count", **filters.params(global_filters)).item())
    totals = cross_sell.mix_totals(mix)
    mix, _hidden = cross_sell.hide_small_cells(mix)
    return {
        "run": run,
        "mix": mix,
        "totals": totals,
        "customers": customers,
        "penetration": data.query("cross_sell_penetration"),
    }


def _model(data: WarehouseReader) -> dict | None:
    metrics = dict(data.query("champion_metrics").rows())
    if not metrics:
        return None
    run = data.query("latest_run", kind="risk").row(0, named=True)
    champion = data.query("report_champion")
    return {
        "run_id": run["run_id"],
        "finished_at": run["finished_at"],
        "metrics": metrics,
        "run_metrics": json.loads(run["metrics"] or "{}"),
        "champion": champion.row(0, named=True) if champion.height else None,
    }


def _quarantine(data: WarehouseReader) -> pl.DataFrame | None:
    catalog = page("data_catalog")
    tables = catalog.quarantine_tables(data)
    if tables.height == 0:
        return None
    parts = [
        catalog.quarantine_counts(data, source).with_columns(pl.lit(source).alias("source"))
        for source in tables.get_column("source").to_list()
    ]
    parts = [p for p in parts if p.height]
    if not parts:
        return pl.DataFrame(schema={"source": pl.String, "rule": pl.String, "column_name": pl.String, "rows": pl.Int64})
    return pl.concat(parts, how="vertical_relaxed").select("source", "rule", "column_name", "rows")


def _figures(
    data: WarehouseReader, content: ReportContent, global_filters: dict, names: dict, persona_counts: pl.DataFrame
) -> dict[str, dict]:
    """The dashboard's figures for these filters, keyed by where the report puts them."""
    overview, personas, risk = page("overview"), page("personas"), page("risk")
    figures: dict[str, dict] = {}
    if persona_counts.height:
        figures["personas"] = for_print(overview.persona_figure(persona_counts, names))
        profiles = personas.profile_matrix(data)
        if profiles.height:
            figures["profiles"] = for_print(personas.profile_figure(profiles, names))
    if content.grades is not None and content.grades.height:
        figures["grades"] = for_print(overview.grade_figure(content.grades))
        bands = data.query("risk_score_bands", **filters.params(global_filters))
        if bands.height:
            figures["scores"] = for_print(risk.score_figure(bands, content.scope))
    if content.model is not None:
        figures["curves"] = for_print(risk.curves_figure(data))
    if content.warnings is not None and content.warnings["total"]:
        warnings_page = page("warnings")
        figures["alerts_by_rule"] = for_print(warnings_page.rule_figure(content.warnings["by_rule"]))
        if content.warnings["by_period"].height:
            figures["alerts_by_period"] = for_print(warnings_page.period_figure(content.warnings["by_period"]))
    if content.cross_sell is not None:
        cross_sell = page("cross_sell")
        if content.cross_sell["mix"].height:
            figures["campaign_mix"] = for_print(cross_sell.mix_figure(content.cross_sell["mix"], names))
        if content.cross_sell["penetration"].height:
            selected = global_filters.get("persona") or []
            figures["penetration"] = for_print(
                cross_sell.penetration_figure(content.cross_sell["penetration"], names, selected)
            )
    return figures


# -- customer-level rows, streamed -------------------------------------------------------------------

#: The customer-level tables of the workbook: query, count query.
ROW_QUERIES = {
    "customers": ("report_customer_rows", "report_row_count"),
    "alerts": ("report_alert_rows", "report_alert_count"),
    "recommendations": ("report_offer_rows", "report_offer_count"),
}
#: The table each customer-level query needs.
ROW_TABLES = {"customers": "mart_customer_profile", "alerts": "mart_alerts", "recommendations": "mart_offers"}


def row_params(data: WarehouseReader, table: str, global_filters: dict) -> dict:
    params: dict[str, object] = dict(filters.params(global_filters))
    if table == "alerts":
        from dashboard.state import acknowledged_ids

        params["acknowledged"] = acknowledged_ids(data)
    return params


def row_count(data: WarehouseReader, table: str, global_filters: dict) -> int | None:
    """Rows the workbook's ``table`` sheet will hold; None when the warehouse lacks the table."""
    if not data.has(ROW_TABLES[table]):
        return None
    return int(data.query(ROW_QUERIES[table][1], **row_params(data, table, global_filters)).item())


def stream(data: WarehouseReader, table: str, global_filters: dict, batch_rows: int = 50_000) -> Iterator[pl.DataFrame]:
    """The rows of a customer-level table in batches of ``batch_rows``, in a stable order.

    A connection of its own (read-only, through ``warehouse/db.py``) so a large result is fetched a
    batch at a time rather than materialised whole, as the reader's ``query`` would."""
    sql = QUERIES[ROW_QUERIES[table][0]]
    params = row_params(data, table, global_filters)
    try:
        with read_only(data.path) as con:
            batches = con.sql(sql, params=params).to_arrow_reader(batch_rows)
            for batch in batches:
                yield pl.from_arrow(batch)  # type: ignore[misc]
    except duckdb.Error as exc:
        raise ReportError(f"Reading the {table} of {data.path} failed: {first_line(exc)}") from exc

"""The early-warning tables: alerts, which rules ran, population stability, and acknowledgements.

An alert's id is ``rule:customer:period``, so the same finding on the same period keeps its id
across runs and an acknowledgement (``ml_alert_acknowledgements``) stays attached to it.
"""

from __future__ import annotations

import duckdb
import polars as pl

from warehouse.dictionary import comment_columns, comment_table
from warehouse.history import latest_run_of

from .risk_store import with_run
from .runs import append_table

RUN_ID = "Identifier of the warnings run that wrote the row (see ml_model_runs)."
ALERTS_COMMENTS = {
    "alert_id": "Stable id 'rule:customer_id:period': the same finding on the same period keeps its id across runs.",
    "customer_id": "The customer key.",
    "rule": "Rule key: high_debt_to_income, credit_score_drop, high_utilization, days_past_due or grade_worsening.",
    "rule_label": "The rule in words, e.g. 'Debt-to-income above 60%'.",
    "measured_column": "Mart column the rule read (e.g. latest_debt_to_income), or grade_steps_worse.",
    "value": "The customer's value that tripped the rule.",
    "threshold": "The rule's threshold in this run.",
    "severity": "low, medium or high; a value far past the threshold raises the rule's severity one step.",
    "period": "Period the alert refers to: the customer's latest snapshot month, else the build's as-of date.",
    "run_id": RUN_ID,
}
RULES_COMMENTS = {
    "run_id": RUN_ID,
    "rule": "Rule key.",
    "column": "Mart column the rule read; null when the data has none of the columns it needs.",
    "alerts": "Alerts the rule raised.",
    "status": "run, or why the rule could not run on this data.",
}
STABILITY_COMMENTS = {
    "run_id": RUN_ID,
    "variable": "Model input, or score: the variable compared.",
    "psi": "Population stability index of today's customers against the PD model's training population.",
    "status": "Traffic light: green (PSI < 0.1, stable), amber (0.1 to 0.25, watch), red (>= 0.25, shifted).",
    "customers": "Customers in today's population.",
}
GRADES_COMMENTS = {
    "customer_id": "The customer key.",
    "run_id": RUN_ID,
    "grade": "Risk grade the stored PD model gave the customer in this warnings run (the next run compares with it).",
}
ACK_DDL = "alert_id VARCHAR, acknowledged_by VARCHAR, acknowledged_at TIMESTAMP, note VARCHAR"
ACK_COMMENTS = {
    "alert_id": "The acknowledged alert (ml_alerts.alert_id).",
    "acknowledged_by": "Who acknowledged it.",
    "acknowledged_at": "When (UTC).",
    "note": "What they wrote.",
}


def write_warnings(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    alerts: pl.DataFrame,
    coverage: pl.DataFrame,
    stability_rows: pl.DataFrame,
    grades: pl.DataFrame,
) -> None:
    if alerts.height:
        append_table(
            con,
            "ml_alerts",
            with_run(alerts, run_id, ALERTS_COMMENTS),
            "One row per alert per warnings run: a customer tripping an early-warning rule.",
            ALERTS_COMMENTS,
        )
    append_table(
        con,
        "ml_alert_rules",
        with_run(coverage, run_id, RULES_COMMENTS),
        "One row per early-warning rule per warnings run: whether it ran and how often it fired.",
        RULES_COMMENTS,
    )
    append_table(
        con,
        "ml_stability",
        with_run(stability_rows, run_id, STABILITY_COMMENTS),
        "One row per variable per warnings run: PSI against the PD model's training population.",
        STABILITY_COMMENTS,
    )
    append_table(
        con,
        "ml_alert_grades",
        with_run(grades, run_id, GRADES_COMMENTS),
        "One row per customer per warnings run: the grade the grade-worsening rule compares against next time.",
        GRADES_COMMENTS,
    )


def write_latest_views(con: duckdb.DuckDBPyConnection) -> None:
    """Acknowledgements table (empty until the dashboard writes) and ``ml_latest_alerts``."""
    con.execute(f"CREATE TABLE IF NOT EXISTS ml_alert_acknowledgements ({ACK_DDL})")
    comment_table(con, "ml_alert_acknowledgements", "One row per acknowledgement of an alert.")
    comment_columns(con, "ml_alert_acknowledgements", ACK_COMMENTS)
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'ml_alerts'").fetchall()[0][0]:
        columns = ", ".join(
            f"{name} {kind}"
            for name, kind in (
                ("alert_id", "VARCHAR"),
                ("customer_id", "BIGINT"),
                ("rule", "VARCHAR"),
                ("rule_label", "VARCHAR"),
                ("measured_column", "VARCHAR"),
                ("value", "DOUBLE"),
                ("threshold", "DOUBLE"),
                ("severity", "VARCHAR"),
                ("period", "DATE"),
                ("run_id", "VARCHAR"),
            )
        )
        con.execute(f"CREATE TABLE ml_alerts ({columns})")
        comment_table(
            con, "ml_alerts", "One row per alert per warnings run: a customer tripping an early-warning rule."
        )
        comment_columns(con, "ml_alerts", ALERTS_COMMENTS)
    con.execute(
        f"""
        CREATE OR REPLACE VIEW ml_latest_alerts AS
        SELECT a.*, k.alert_id IS NOT NULL AS is_acknowledged
        FROM ml_alerts a
        LEFT JOIN (SELECT DISTINCT alert_id FROM ml_alert_acknowledgements) k USING (alert_id)
        WHERE a.run_id = {latest_run_of("warnings")}
        """
    )
    comment_table(
        con,
        "ml_latest_alerts",
        "View: one row per alert of the latest warnings run, with its acknowledgement.",
        view=True,
    )
    comment_columns(
        con,
        "ml_latest_alerts",
        ALERTS_COMMENTS | {"is_acknowledged": "True when someone acknowledged the alert (ml_alert_acknowledgements)."},
    )

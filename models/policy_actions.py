"""Policy work on a trained warehouse: load the scored population, evaluate, version a change, explain.

The population is loaded once (:func:`load_population`) and can then be evaluated many times;
the dashboard's simulator keeps it in memory, the CLI loads it per command.
"""

from __future__ import annotations

import re
from pathlib import Path

import pydantic

from warehouse.db import read_only

from .policy import Policy, PolicyOutcome, PolicyPopulation, ReviewRule
from .risk_store import read_policy, save_policy
from .runs import ModelError, write_back
from .train import policy_population
from .warehouse_io import latest_personas, latest_run_id, read_customers

_RULE = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(>=|<=|==|>|<)\s*(-?[0-9]*\.?[0-9]+)\s*(%?)\s*$")


def load_population(db_path: Path) -> tuple[Policy, PolicyPopulation]:
    """The current policy and the latest risk run's scores joined to the customers and personas."""
    with read_only(db_path) as con:
        risk_run = latest_run_id(con, "risk")
        if risk_run is None:
            raise ModelError(f"No PD scores in {db_path} yet: run `segrisk train risk` first.")
        scored = con.sql("SELECT customer_id, pd, score FROM ml_risk_scores WHERE run_id = ?", params=[risk_run]).pl()
        customers = read_customers(con)
        personas = latest_personas(con)
        policy = read_policy(con)
    return policy, policy_population(customers, scored, personas)


def evaluate_current(db_path: Path) -> tuple[Policy, PolicyOutcome]:
    policy, population = load_population(db_path)
    return policy, population.evaluate(policy)


def parse_rule(text: str, columns: set[str]) -> ReviewRule:
    """'debt_to_income > 60%' -> a review rule; the column must exist in the customers mart."""
    match = _RULE.match(text)
    if not match:
        raise ModelError(
            f"Review rule '{text}' is not 'COLUMN OP NUMBER' (OP one of > >= < <= ==), e.g. 'utilization > 0.95'."
        )
    column, op, number, percent = match.groups()
    if column not in columns:
        raise ModelError(f"Review rule '{text}': the customers mart has no column '{column}'.")
    value = float(number) / (100 if percent else 1)
    return ReviewRule(column=column, op=op, value=value, label=text.strip())


def change(
    db_path: Path,
    *,
    approve_min: float | None = None,
    decline_below: float | None = None,
    lgd: float | None = None,
    review_rules: list[str] | None = None,
    persona_review: bool | None = None,
) -> Policy:
    """Save a new policy version from the current one with the given changes."""
    with read_only(db_path) as con:
        current = read_policy(con)
        columns = {
            row[0]
            for row in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'customers'").fetchall()
        }
    update: dict = {}
    if approve_min is not None:
        update["approve_min_score"] = approve_min
    if decline_below is not None:
        update["decline_below_score"] = decline_below
    if lgd is not None:
        update["lgd"] = lgd
    if persona_review is not None:
        update["review_flagged_personas"] = persona_review
    if review_rules is not None:
        update["rules"] = [parse_rule(text, columns) for text in review_rules]
    try:
        policy = Policy.model_validate(current.model_dump() | update)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise ModelError(f"The policy is not valid: {first['msg'].removeprefix('Value error, ')}.") from exc
    saved: list[Policy] = []
    write_back(db_path, lambda con: saved.append(save_policy(con, policy)))
    return saved[0]


def explain(db_path: Path, customer_ids: list[str]) -> list[dict]:
    """Score, grade, decision and reasons of the given customers, from the latest risk run.

    Keys are given as text and matched as text, so numeric keys (``1204``) and text keys
    (``C-00017``, whose zeros matter) are both found as typed.
    """
    wanted = [str(customer_id).strip() for customer_id in customer_ids]
    with read_only(db_path) as con:
        risk_run = latest_run_id(con, "risk")
        if risk_run is None:
            raise ModelError(f"No PD scores in {db_path} yet: run `segrisk train risk` first.")
        rows = con.sql(
            "SELECT * FROM ml_risk_scores WHERE run_id = ? AND list_contains(?::VARCHAR[], customer_id::VARCHAR) "
            "ORDER BY customer_id",
            params=[risk_run, wanted],
        ).pl()
    found = {str(value) for value in rows.get_column("customer_id").to_list()}
    missing = [customer_id for customer_id in wanted if customer_id not in found]
    if missing:
        raise ModelError(f"No customer {missing[0]} in the latest risk run of {db_path}.")
    return rows.to_dicts()

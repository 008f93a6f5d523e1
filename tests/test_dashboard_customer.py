"""The Customer 360 page: one customer's values exactly as the warehouse holds them, the history
chart, alerts with their acknowledgements, offers, and one sentence for unknown or malformed ids."""

from __future__ import annotations

import shutil
from pathlib import Path

import dash_bootstrap_components as dbc
import pytest
from conftest import Builder, dashboard_page
from dash import dcc
from dash_helpers import find, sql, text_of

from dashboard import ui
from dashboard.data import reader
from dashboard.state import store


@pytest.fixture(scope="module")
def db(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the fully trained demo warehouse (reading it creates the app-state store beside it)."""
    path = tmp_path_factory.mktemp("customer") / "demo.duckdb"
    shutil.copyfile(full_db, path)
    return path


def busy_customer(db_path: Path) -> int:
    """A customer with everything to show: reasons, open alerts and offers."""
    return sql(
        db_path,
        "SELECT p.customer_id FROM mart_customer_profile p JOIN ml_latest_risk_scores r USING (customer_id) "
        "WHERE p.open_alerts > 0 AND p.offers > 0 AND r.reason_3 IS NOT NULL ORDER BY p.customer_id LIMIT 1",
    ).item()


def test_lookup_shows_exactly_the_warehouse_values(db: Path) -> None:
    page = dashboard_page(db, "customer")
    customer_id = busy_customer(db)
    view = page.look_up(reader(), customer_id)

    profile = sql(db, "SELECT * FROM mart_customer_profile WHERE customer_id = ?", [customer_id]).row(0, named=True)
    scores = sql(db, "SELECT * FROM ml_latest_risk_scores WHERE customer_id = ?", [customer_id]).row(0, named=True)
    customer = sql(db, "SELECT * FROM customers WHERE customer_id = ?", [customer_id]).row(0, named=True)
    persona = sql(
        db, "SELECT persona_name FROM ml_latest_segment_summary WHERE segment_key = ?", [profile["persona_key"]]
    ).item()
    assert view.profile == profile and view.scores == scores and view.persona_name == persona
    expected_balances = {
        k: v
        for k, v in customer.items()
        if (k.endswith("_balance") or k.endswith("_limit"))
        and not k.startswith("log_")
        and k not in ("latest_balance", "avg_balance")
    }
    assert view.balances == expected_balances and "savings_balance" in expected_balances

    shown = text_of(page.customer_content(reader(), str(customer_id)))
    assert f"Customer {customer_id}" in shown
    assert ui.percent(scores["pd"], 2) in shown and f"{scores['score']:,.1f}" in shown
    for value in (persona, scores["grade"], scores["decision"], scores["decision_reason"]):
        assert value in shown
    for reason in (scores["reason_1"], scores["reason_2"], scores["reason_3"]):
        assert reason in shown
    for product in profile["products"]:
        assert product.replace("_", " ") in shown
    for value in expected_balances.values():
        assert f"{value:,.2f}" in shown

    alerts = sql(db, "SELECT rule_label FROM ml_latest_alerts WHERE customer_id = ?", [customer_id])
    offers = sql(
        db,
        "SELECT product_name, reason FROM ml_recommendations WHERE customer_id = ? AND run_id = "
        "(SELECT run_id FROM ml_model_runs WHERE model_kind = 'cross_sell' ORDER BY finished_at DESC LIMIT 1)",
        [customer_id],
    )
    assert alerts.height == view.alerts.height > 0 and offers.height == view.offers.height > 0
    for label in alerts.get_column("rule_label"):
        assert label in shown
    for name, reason in offers.rows():
        assert name in shown and reason in shown


def test_persona_shows_its_new_name_and_its_colour(db: Path, tmp_path: Path) -> None:
    own = tmp_path / "demo.duckdb"
    shutil.copyfile(db, own)
    page = dashboard_page(own, "customer")
    customer_id = busy_customer(own)
    key = sql(own, "SELECT persona_key FROM mart_customer_profile WHERE customer_id = ?", [customer_id]).item()
    store(reader()).set_persona_label(key, name="Stretched Borrowers", user="test")

    view = page.look_up(reader(), customer_id)
    card = page.persona_card(view)
    assert view.persona_name == "Stretched Borrowers" and "Stretched Borrowers" in text_of(card)
    assert card.style["borderLeft"].endswith(ui.persona_colour(key))


def test_history_figure_points_are_the_customers_months(db: Path) -> None:
    page = dashboard_page(db, "customer")
    customer_id = busy_customer(db)
    months = sql(db, "SELECT * FROM mart_customer_months WHERE customer_id = ? ORDER BY month", [customer_id])
    assert months.height > 1

    graph = find(page.customer_content(reader(), str(customer_id)), "customer-history")
    assert isinstance(graph, dcc.Graph)
    by_label = {trace.name: trace for trace in graph.figure.data}
    expected = {
        m.label: m.column
        for m in page.MEASURES
        if months.get_column(m.column).drop_nulls().len() and (months.get_column(m.column) != 0).any()
    }
    assert set(by_label) == set(expected) and {"Balance", "Credit score", "Transactions"} <= set(by_label)
    for label, column in expected.items():
        assert list(by_label[label].x) == [m.isoformat() for m in months.get_column("month")]
        assert list(by_label[label].y) == months.get_column(column).to_list()


def test_measures_at_zero_every_month_are_said_in_words(db: Path) -> None:
    page = dashboard_page(db, "customer")
    customer_id = sql(
        db,
        "SELECT customer_id FROM mart_customer_months GROUP BY customer_id "
        "HAVING max(abs(days_past_due)) = 0 AND max(abs(balance)) > 0 ORDER BY customer_id LIMIT 1",
    ).item()
    content = page.customer_content(reader(), str(customer_id))
    traces = {trace.name for trace in find(content, "customer-history").figure.data}
    assert "Days past due" not in traces and "Balance" in traces
    assert "days past due" in text_of(find(content, "customer-history-zero"))


def test_an_acknowledged_alert_shows_as_acknowledged(db: Path, tmp_path: Path) -> None:
    own = tmp_path / "demo.duckdb"
    shutil.copyfile(db, own)
    page = dashboard_page(own, "customer")
    customer_id = busy_customer(own)
    alert_ids = sql(own, "SELECT alert_id FROM ml_latest_alerts WHERE customer_id = ? ORDER BY alert_id", [customer_id])
    before = text_of(page.alerts_section(page.look_up(reader(), customer_id)))
    assert "acknowledged" not in before and before.count("open") == alert_ids.height

    store(reader()).acknowledge(alert_ids.item(0, "alert_id"), user="test")
    after = text_of(page.alerts_section(page.look_up(reader(), customer_id)))
    assert after.count("acknowledged") == 1 and after.count("open") == alert_ids.height - 1


@pytest.mark.parametrize("typed", ["999999999", "0"])
def test_an_unknown_customer_is_one_sentence(db: Path, typed: str) -> None:
    page = dashboard_page(db, "customer")
    assert sql(db, "SELECT count(*) FROM customers WHERE customer_id = ?", [int(typed)]).item() == 0
    shown = page.customer_content(reader(), typed)
    assert isinstance(shown, dbc.Alert) and shown.children == f"No customer {typed} in this warehouse."


@pytest.mark.parametrize("typed", ["abc", "12abc", "1; DROP TABLE customers", "-5", "1.5", "9" * 25])
def test_a_malformed_id_is_one_sentence(db: Path, typed: str) -> None:
    page = dashboard_page(db, "customer")
    shown = page.customer_content(reader(), typed)
    assert isinstance(shown, dbc.Alert)
    assert shown.children == f"“{typed}” is not a customer number: enter digits only, such as 1204."
    assert sql(db, "SELECT count(*) FROM customers").item() > 0  # nothing ran as SQL


def test_ids_are_read_as_people_type_them(db: Path) -> None:
    page = dashboard_page(db, "customer")
    assert page.parse_customer_id(" 1,204 ") == 1204 and page.parse_customer_id("42") == 42
    assert page.parse_customer_id("") is None and page.parse_customer_id("4 2x") is None
    assert "Enter a customer number" in text_of(page.layout())


def test_lookup_puts_the_id_in_the_url_and_keeps_the_filters(db: Path) -> None:
    page = dashboard_page(db, "customer")
    assert page.look_up_customer(1, None, " 1204 ", {"grade": ["E"]}) == "/customer?customer_id=1204#grade=E"
    assert page.look_up_customer(None, 1, "a b", None) == "/customer?customer_id=a+b"
    assert page.look_up_customer(1, None, "", {"grade": ["D"], "persona": []}) == "/customer#grade=D"

    # The router hands the query string to the layout, which shows that customer and fills the box.
    customer_id = busy_customer(db)
    rendered = page.layout(customer_id=str(customer_id))
    assert find(rendered, "customer-id").value == str(customer_id)
    assert f"Customer {customer_id}" in text_of(rendered)


def test_a_warehouse_without_models_says_what_is_missing(build: Builder) -> None:
    summary = build("online-retail")
    page = dashboard_page(summary.db_path, "customer")
    customer_id = sql(
        summary.db_path, "SELECT customer_id FROM mart_customer_months GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ).item()
    content = page.customer_content(reader(), str(customer_id))
    shown = text_of(content)
    for sentence in (
        "No PD model in this warehouse",
        "This dataset does not record which products customers hold.",
        "This dataset records no balances.",
        "No early warnings in this warehouse.",
        "No cross-sell recommendations in this warehouse.",
    ):
        assert sentence in shown
    traces = {trace.name for trace in find(content, "customer-history").figure.data}
    assert traces == {"Transactions", "Amount spent"}


def test_a_dataset_without_history_says_so(build: Builder) -> None:
    summary = build("german-credit")
    page = dashboard_page(summary.db_path, "customer")
    customer_id = sql(summary.db_path, "SELECT min(customer_id) FROM customers").item()
    shown = text_of(page.customer_content(reader(), str(customer_id)))
    assert "No monthly history for this customer" in shown and f"Customer {customer_id}" in shown

"""The dashboard served for real: waitress on 127.0.0.1, the login in front, the overview's figures."""

from __future__ import annotations

import re
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import dash_bootstrap_components as dbc
import pytest
import requests
from conftest import FIXTURES, Builder
from dash_helpers import texts
from waitress.server import create_server
from werkzeug.security import generate_password_hash

from dashboard import auth
from dashboard.app import create_app
from dashboard.cli import main
from dashboard.data import configure
from models.train import train_risk
from warehouse.app_state import AppState, state_path

USERS = {
    "alice": auth.User("alice", "admin", generate_password_hash("correct horse")),
    "bob": auth.User("bob", "viewer", generate_password_hash("battery staple")),
}


@pytest.fixture(scope="module")
def trained(risk_db: Path) -> Path:
    return risk_db


@pytest.fixture(scope="module")
def overview(trained: Path):  # noqa: ANN201 - the page module Dash imported
    """The Overview page module; Dash imports page modules itself, as ``pages.<name>``, once an app exists."""
    create_app(trained, users=USERS)
    return sys.modules["pages.overview"]


@pytest.fixture
def server(trained: Path) -> Iterator[str]:
    app = create_app(trained, users=USERS)
    wsgi = create_server(app.server, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=wsgi.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{wsgi.effective_port}"
    finally:
        wsgi.close()


def _form(browser: requests.Session, base: str, user: str, password: str) -> dict[str, str]:
    """The sign-in form's fields, with the CSRF token the form carries (a GET of /login first)."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(f"{base}/login").text)
    return {"username": user, "password": password, "csrf_token": token.group(1) if token else ""}


def _signed_in(base: str, user: str = "alice", password: str = "correct horse") -> requests.Session:
    browser = requests.Session()
    answer = browser.post(f"{base}/login", data=_form(browser, base, user, password), allow_redirects=False)
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    return browser


def test_everything_needs_a_login(server: str) -> None:
    anonymous = requests.Session()
    page = anonymous.get(f"{server}/", allow_redirects=False)
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    assert anonymous.get(f"{server}/_dash-layout").status_code == 401
    assert anonymous.post(f"{server}/_dash-update-component", json={}).status_code == 401
    wrong = anonymous.post(f"{server}/login", data=_form(anonymous, server, "alice", "guess"))
    assert wrong.status_code == 401 and "Wrong user name or password." in wrong.text
    assert anonymous.get(f"{server}/assets/bootstrap.min.css").status_code == 200  # the login form's style


def test_signed_in_user_gets_the_app(server: str) -> None:
    browser = _signed_in(server)
    page = browser.get(f"{server}/")
    assert page.status_code == 200 and "Segrisk" in page.text
    layout = browser.get(f"{server}/_dash-layout")
    assert layout.status_code == 200 and "Overview" in layout.text
    assert browser.get(f"{server}/logout", allow_redirects=False).headers["Location"] == "/login"
    assert browser.get(f"{server}/_dash-layout").status_code == 401


def test_login_redirects_only_within_the_site(server: str) -> None:
    browser = requests.Session()
    answer = browser.post(
        f"{server}/login?next=//evil.example/",
        data=_form(browser, server, "bob", "battery staple"),
        allow_redirects=False,
    )
    assert answer.headers["Location"] == "/"


def test_no_users_no_dashboard(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEGRISK_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("SEGRISK_USERS", raising=False)
    # A copy without the app-state store (and so without users) the other tests put beside ``trained``.
    lonely = shutil.copyfile(trained, tmp_path / "lonely.duckdb")
    assert main(["serve", "--db", str(lonely), "--port", "0"]) == 2
    assert "No dashboard users: set SEGRISK_ADMIN_PASSWORD" in capsys.readouterr().err
    monkeypatch.setenv("SEGRISK_USERS", "carol:superuser:xyz")
    with pytest.raises(auth.AuthError, match="carol"):
        auth.users_from_environment()


def test_overview_figures_match_the_warehouse(trained: Path, overview, tmp_path: Path) -> None:  # noqa: ANN001
    import duckdb

    trained = shutil.copyfile(trained, tmp_path / "overview.duckdb")  # the test writes an acknowledgement beside it
    data = configure(trained)
    figures = overview.headline_figures(data)
    with duckdb.connect(str(trained), read_only=True) as con:
        customers, rate = con.execute("SELECT count(*), avg(is_defaulted::INT) FROM customers").fetchone()
        automation = con.execute(
            "SELECT automation_rate FROM ml_policy_evaluations WHERE persona_name = 'All customers'"
        ).fetchone()[0]
        open_alerts = con.execute("SELECT count(*) FROM ml_latest_alerts").fetchone()[0]
        first_alert = con.execute("SELECT alert_id FROM ml_latest_alerts LIMIT 1").fetchone()[0]
    assert figures["customers"] == customers and figures["default_rate"] == pytest.approx(rate)
    assert figures["automation_rate"] == pytest.approx(automation)
    assert figures["open_alerts"] == open_alerts > 0
    # An acknowledgement made in the dashboard counts at once, before any retrain.
    AppState(state_path(trained)).acknowledge(first_alert, user="alice")
    assert overview.headline_figures(data)["open_alerts"] == open_alerts - 1
    shown = texts(overview.show_overview(None)[0])
    assert f"{customers:,}" in shown and "Open alerts" in shown


def test_overview_follows_the_global_filters_and_clicks_set_them(trained: Path, overview) -> None:  # noqa: ANN001
    import duckdb

    data = configure(trained)
    with duckdb.connect(str(trained), read_only=True) as con:
        expected = con.execute(
            "SELECT count(*), avg(c.is_defaulted::INT), count(*) FILTER (r.decision <> 'review') / count(*) "
            "FROM customers c JOIN ml_latest_risk_scores r USING (customer_id) "
            "JOIN ml_latest_segments s USING (customer_id) WHERE r.grade IN ('D', 'E') AND s.segment_key = 'S2'"
        ).fetchone()
    figures = overview.headline_figures(data, {"grade": ["D", "E"], "persona": ["S2"]})
    assert (figures["customers"], figures["default_rate"], figures["automation_rate"]) == pytest.approx(expected)
    assert figures["customers"] < overview.headline_figures(data)["customers"]
    _cards, grades, *_ = overview.show_overview({"grade": ["D", "E"]})
    assert grades.data[0].x == ("D", "E")
    # Clicking a bar filters every page: the callbacks write the global filter's value.
    assert overview.filter_by_grade({"points": [{"x": "C"}]}) == ["C"]
    assert overview.filter_by_persona({"points": [{"customdata": ["S3"], "y": "x"}]}) == ["S3"]


def test_overview_without_a_risk_model_says_so(build: Builder, overview) -> None:  # noqa: ANN001
    db = build("online-retail", FIXTURES).db_path
    configure(db)
    page = overview.show_overview(None)
    shown = texts(list(page))
    assert any(t.startswith("No PD model yet") for t in shown)
    assert not any(isinstance(c, dbc.Alert) and "failed" in str(c.children) for c in page)


@pytest.fixture(scope="module")
def risk_page(overview):  # noqa: ANN001, ANN201 - the page module Dash imported
    return sys.modules["pages.risk"]


def test_policy_simulator_moves_with_the_sliders(trained: Path, risk_page) -> None:  # noqa: ANN001
    from models.policy_actions import evaluate_current

    data = configure(trained)
    policy, outcome = evaluate_current(trained)
    on = ["personas"] + [f"rule:{i}" for i in range(len(policy.rules))]
    current = risk_page.simulate(data, policy.decline_below_score, policy.approve_min_score, on)
    # The simulator at the saved cut-offs is the saved policy.
    assert current["overall"] == pytest.approx(outcome.overall, rel=1e-9)
    stricter = risk_page.simulate(data, policy.decline_below_score, policy.approve_min_score + 30, on)
    assert stricter["overall"]["approval_rate"] < current["overall"]["approval_rate"]
    no_rules = risk_page.simulate(data, policy.decline_below_score, policy.approve_min_score, [])
    assert no_rules["overall"]["review_rate"] < current["overall"]["review_rate"]
    shown = texts(risk_page.show_outcome(policy.decline_below_score, policy.approve_min_score + 30, on))
    assert ui_percent(stricter["overall"]["approval_rate"]) in shown


def ui_percent(value: float) -> str:
    from dashboard import ui

    return ui.percent(value)


def test_risk_page_picks_up_a_retrain(trained: Path, tmp_path: Path, risk_page) -> None:  # noqa: ANN001
    db = tmp_path / "retrain.duckdb"
    shutil.copyfile(trained, db)
    data = configure(db)
    policy, loaded = risk_page.population(data)
    before = loaded.score.copy()
    train_risk(db, seed=3)
    _, reloaded = risk_page.population(data)
    assert reloaded is not loaded and not (reloaded.score == before).all()
    assert "Policy simulator" in texts(risk_page.layout())


def test_risk_page_without_a_model_says_so(build: Builder, risk_page) -> None:  # noqa: ANN001
    configure(build("online-retail", FIXTURES).db_path)
    assert any(t.startswith("No PD model in this warehouse") for t in texts(risk_page.layout()))


def _links(component: object) -> list[tuple[str, str]]:
    """(file name, address) of every download link in a component tree."""
    if isinstance(component, list | tuple):
        return [link for child in component for link in _links(child)]
    found = []
    if getattr(component, "download", None) and str(getattr(component, "href", "")).startswith("/download/table/"):
        found.append((component.download, component.href))
    return found + _links(getattr(component, "children", None) or [])


def test_small_tables_download_as_shown_to_those_who_may(trained: Path, server: str, risk_page) -> None:  # noqa: ANN001
    from dash_helpers import sql

    links = dict(_links(risk_page.layout()))
    assert "risk-grades.csv" in links
    answer = _signed_in(server).get(server + links["risk-grades.csv"])
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/csv")
    assert 'filename="risk-grades.csv"' in answer.headers["Content-Disposition"]
    lines = answer.text.strip().splitlines()
    assert lines[0] == "Grade,Customers,Share,Mean PD,Observed default rate"
    grades = sql(
        trained,
        "SELECT grade, customers FROM ml_risk_grades WHERE run_id = (SELECT max(run_id) FROM ml_risk_grades) "
        "ORDER BY grade",
    )
    assert [line.split(",")[0] for line in lines[1:]] == grades.get_column("grade").to_list()
    assert [
        int(line.split('"')[1].replace(",", "")) if '"' in line else int(line.split(",")[1]) for line in lines[1:]
    ] == (grades.get_column("customers").to_list())
    viewer = _signed_in(server, "bob", "battery staple").get(server + links["risk-grades.csv"])
    assert viewer.status_code == 403
    assert requests.get(server + links["risk-grades.csv"], allow_redirects=False).status_code in (302, 401)
    assert _signed_in(server).get(server + "/download/table/not-a-token").status_code == 404


def test_warming_answers_every_pages_first_view_from_the_cache(full_db: Path) -> None:
    """After ``warm`` (what `segrisk serve` runs at start), opening a page (its layout) and its
    unfiltered first view runs no query: every answer comes from the cache."""
    from dashboard.app import FIRST_VIEWS, warm

    create_app(full_db, users=USERS)
    data = configure(full_db)
    warm()
    assert data.cache is not None and data.cache.misses > 0
    misses = data.cache.misses
    for page, name, arguments in FIRST_VIEWS:
        getattr(sys.modules[f"pages.{page}"], name)(*arguments)
    pages = [module for name, module in sys.modules.items() if name.startswith("pages.")]
    assert len(pages) >= 10
    for module in pages:  # the page router runs a page's layout on every visit
        module.layout()
    statistics = sys.modules["pages.statistics"]
    statistics.show_tests(statistics.opening_families(data), [])
    assert data.cache.misses == misses and data.cache.hits > 0

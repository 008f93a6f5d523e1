"""Web-facing security fixes: acknowledgements only of alerts that exist, the sign-in redirect stays on
the site, CSV downloads cannot carry spreadsheet formulas, and persona labels are capped and cleaned
on the server."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from urllib.parse import quote, urlsplit

import duckdb
import polars as pl
import pytest
from conftest import dashboard_page
from signin import login_form

from dashboard import downloads, sql_console
from dashboard.app import create_app
from dashboard.sql_console import ConsoleLimits, SqlConsole
from warehouse.app_state import AppState, state_path

PASSWORD = "a long enough password"
FORMULA = '=HYPERLINK("http://x")'


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEGRISK_ADMIN_PASSWORD", "SEGRISK_USERS", "SEGRISK_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)


def _server(db: Path, **users: str):  # noqa: ANN202 - the Flask server
    access = AppState(state_path(db))
    for name, role in users.items():
        access.set_user(name, role, password=PASSWORD)
    return create_app(db).server


def _sign_in(client, next_value: str | None = None, name: str = "alice"):  # noqa: ANN001, ANN202
    url = "/login" if next_value is None else f"/login?next={next_value}"
    return client.post(url, data=login_form(client, name, PASSWORD))


# -- 3: acknowledgements --------------------------------------------------------------------------------
@pytest.fixture
def warnings_page(full_db_copy: Path):  # noqa: ANN201 - the page module
    return dashboard_page(full_db_copy, "warnings")


def _latest_alert_ids(db: Path) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return [row[0] for row in con.execute("SELECT alert_id FROM ml_latest_alerts ORDER BY alert_id").fetchall()]


def test_an_alert_that_does_not_exist_yet_cannot_be_acknowledged(warnings_page, full_db_copy: Path) -> None:  # noqa: ANN001
    from dashboard.data import reader
    from dashboard.state import AcknowledgementRefused, acknowledged_ids

    data = reader()
    existing = set(_latest_alert_ids(full_db_copy))
    future = next(f"high_debt_to_income:{c}:2099-10-01" for c in range(1, 10_000))
    assert future not in existing
    with pytest.raises(AcknowledgementRefused, match="not an alert of the latest warnings run"):
        warnings_page.acknowledge_alert(data, future, "mallory")
    with pytest.raises(AcknowledgementRefused, match="1 to 200 characters"):
        warnings_page.acknowledge_alert(data, "x" * 2_000_000, "mallory")
    assert acknowledged_ids(data) == []  # nothing stored
    # An alert of the latest run is still acknowledged as before.
    real = sorted(existing)[0]
    assert real in warnings_page.acknowledge_alert(data, real, "alice")
    assert acknowledged_ids(data) == [real]


def test_the_store_caps_the_id_and_the_note(tmp_path: Path) -> None:
    store = AppState(state_path(tmp_path / "bank.duckdb"))
    with pytest.raises(ValueError, match="1 to 200 characters"):
        store.acknowledge("x" * 2_000_000, user="mallory")
    with pytest.raises(ValueError, match="at most 1,000 characters"):
        store.acknowledge("rule:1:2026-10-01", user="mallory", note="n" * 1_001)
    assert store.acknowledgements() == []
    store.acknowledge("rule:1:2026-10-01", user="alice", note="n" * 1_000)
    assert store.acknowledged_ids() == {"rule:1:2026-10-01"}


def test_a_note_over_the_cap_is_refused_before_the_store(warnings_page, full_db_copy: Path) -> None:  # noqa: ANN001
    from dashboard.data import reader
    from dashboard.state import AcknowledgementRefused, acknowledge, acknowledged_ids

    real = _latest_alert_ids(full_db_copy)[0]
    with pytest.raises(AcknowledgementRefused, match="at most 1,000 characters"):
        acknowledge(reader(), real, user="alice", note="n" * 1_001)
    assert acknowledged_ids(reader()) == []


# -- 4: the redirect after sign-in ----------------------------------------------------------------------
EVIL_NEXT = [
    "/%09/evil.com",
    "//evil.com",
    "/\\evil.com",
    "/%5Cevil.com",
    "https://evil.com",
    "https:evil.com",
    "/%0D%0ASet-Cookie:x",
    "/%0ASet-Cookie:x",
    "javascript:alert(1)",
    "///evil.com",
    "/%20/evil.com",
    "%2F%2Fevil.com",
    "/%E2%80%8B/evil.com",
]


@pytest.mark.parametrize("next_value", EVIL_NEXT)
def test_the_redirect_after_sign_in_never_leaves_the_site(tmp_path: Path, next_value: str) -> None:
    client = _server(tmp_path / "bank.duckdb", alice="analyst").test_client()
    answer = _sign_in(client, next_value)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location == "/"
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc


@pytest.mark.parametrize(
    ("next_value", "expected"),
    [
        (quote("/risk?x=1#grade=E", safe=""), "/risk?x=1#grade=E"),
        ("/customer?customer_id=1", "/customer?customer_id=1"),
        (None, "/"),
    ],
)
def test_a_path_of_the_site_survives_sign_in(tmp_path: Path, next_value: str | None, expected: str) -> None:
    client = _server(tmp_path / "bank.duckdb", alice="analyst").test_client()
    answer = _sign_in(client, next_value)
    assert answer.status_code == 302 and answer.headers["Location"] == expected


def test_a_query_with_several_parameters_comes_back_whole(tmp_path: Path) -> None:
    client = _server(tmp_path / "bank.duckdb", alice="analyst").test_client()
    to_login = client.get("/risk?x=1&y=2")
    assert to_login.status_code == 302
    login = urlsplit(to_login.headers["Location"])
    answer = client.post(f"{login.path}?{login.query}", data=login_form(client, "alice", PASSWORD))
    assert answer.headers["Location"] == "/risk?x=1&y=2"


# -- 9: CSV formula injection ---------------------------------------------------------------------------
def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def _assert_no_formula(text: str) -> None:
    bad = [c for c in _cells(text) if c.startswith(downloads.FORMULA_TRIGGERS) and not _is_number(c)]
    assert bad == []


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").rstrip("%"))
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (FORMULA, "'" + FORMULA),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+1+cmd", "'+1+cmd"),
        ("-2+3", "'-2+3"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-0.25", "-0.25"),
        ("-1,200", "-1,200"),
        ("-3.5%", "-3.5%"),
        ("Car buyers", "Car buyers"),
        (-5, -5),
        (-0.5, -0.5),
        (None, None),
    ],
)
def test_a_cell_is_neutralised_as_owasp_says(value: object, expected: object) -> None:
    assert downloads.safe_cell(value) == expected


def test_small_table_downloads_are_neutralised(tmp_path: Path) -> None:
    server = _server(tmp_path / "bank.duckdb", alice="analyst")
    client = server.test_client()
    _sign_in(client)
    href = downloads.keep(
        "policy-by-persona.csv",
        [{"persona": FORMULA, "customers": -3, "rate": "-1.5%"}],
        [("persona", "Persona"), ("customers", "Customers"), ("rate", "Rate")],
    )
    text = client.get(href).get_data(as_text=True)
    assert _cells(text) == ["Persona", "Customers", "Rate", "'" + FORMULA, "-3", "-1.5%"]


def test_the_persona_name_in_the_offers_csv_is_neutralised(full_db_copy: Path) -> None:
    with duckdb.connect(str(full_db_copy)) as con:
        con.execute("UPDATE mart_offers SET persona_name = ?, reason = ?", [FORMULA, "@SUM(A1)"])
    page = dashboard_page(full_db_copy, "cross_sell")
    sent, message = page.download(1, None, [], "priority", "desc")
    assert message == ""
    frame = pl.read_csv(io.StringIO(sent["content"]))
    assert set(frame.get_column("persona_name")) == {"'" + FORMULA}
    assert set(frame.get_column("reason")) == {"'@SUM(A1)"}
    assert frame.get_column("priority").dtype.is_numeric()  # numbers stay numbers
    _assert_no_formula(sent["content"])


def test_the_alerts_csv_is_neutralised(full_db_copy: Path) -> None:
    with duckdb.connect(str(full_db_copy)) as con:
        con.execute("UPDATE mart_alerts SET rule_label = ?", ["=cmd|' /C calc'!A0"])
    page = dashboard_page(full_db_copy, "warnings")
    sent, message = page.download(1, None, [], [], "all", "value", "desc")
    assert message == ""
    frame = pl.read_csv(io.StringIO(sent["content"]))
    assert set(frame.get_column("rule_label")) == {"'=cmd|' /C calc'!A0"}
    assert frame.get_column("value").dtype.is_numeric()
    _assert_no_formula(sent["content"])


def test_sql_console_results_are_neutralised(full_db: Path) -> None:
    console = SqlConsole(full_db, ConsoleLimits(time_limit=5.0, row_cap=10, workers=1))
    try:
        result = console.run("SELECT '=1+1' AS x, -1 AS n, '-0.5' AS s, '@x' AS \"=head\", 'plain' AS p")
    finally:
        console.close()
    rows = list(csv.reader(io.StringIO(sql_console.result_csv(result))))
    assert rows == [["x", "n", "s", "'=head", "p"], ["'=1+1", "-1", "-0.5", "'@x", "plain"]]


# -- 10: persona labels on the server -------------------------------------------------------------------
def test_persona_labels_are_capped_and_cleaned_in_the_store(tmp_path: Path) -> None:
    store = AppState(state_path(tmp_path / "bank.duckdb"))
    with pytest.raises(ValueError, match="at most 80"):
        store.set_persona_label("S1", user="alice", name="n" * 1_000_000)
    with pytest.raises(ValueError, match="at most 500"):
        store.set_persona_label("S1", user="alice", strategy="s" * 501)
    with pytest.raises(ValueError, match="cannot be empty"):
        store.set_persona_label("S1", user="alice", name="\x00\x07 <>")
    assert store.persona_labels() == []
    store.set_persona_label("S1", user="alice", name="Car\x00 Buyers\x1b", strategy="Call\nthem <b>now</b>")
    store.set_persona_label("S2", user="alice", name='<a href="http://x">Click</a>')
    labels = {label.segment_key: label for label in store.persona_labels()}
    assert labels["S1"].persona_name == "Car Buyers" and labels["S1"].strategy == "Call them bnow/b"
    assert "<" not in labels["S2"].persona_name and ">" not in labels["S2"].persona_name
    store.set_persona_label("S3", user="alice", name="n" * 80, strategy="s" * 500)  # at the caps: kept


def test_the_personas_page_refuses_a_long_name_with_a_sentence(full_db_copy: Path) -> None:
    page = dashboard_page(full_db_copy, "personas")
    from dashboard.data import reader
    from dashboard.state import persona_names

    data = reader()
    key, old = next(iter(persona_names(data).items()))
    saved, message = page.save_label(data, key, "n" * 1_000_000, None, "admin", "admin")
    assert not saved and message == "Not saved: the persona's name has 1,000,000 characters; at most 80 are allowed."
    assert persona_names(data)[key] == old

"""Issue 13, small cells: a viewer (aggregates only) never reads a figure about fewer customers than
SEGRISK_MIN_CELL_SIZE (default 5), neither by filtering down to them nor as one group of a chart or
table; analysts and admins, who see customer rows anyway, see every figure."""

from __future__ import annotations

from pathlib import Path

import dash
import pytest
from conftest import dashboard_page
from dash_helpers import sql, text_of
from werkzeug.security import generate_password_hash

from dashboard import auth, disclosure, ui
from dashboard.app import create_app
from dashboard.data import reader
from warehouse.app_state import AppState

PASSWORD = "a long enough password"
SENTENCE = "These filters match fewer than 5 customers; viewers see groups of at least 5 customers"


def _as(role: str):  # noqa: ANN202 - a request context with a user of this role signed in
    server = dash.get_app().server
    access: AppState = server.extensions["segrisk_state"]
    context = server.test_request_context()
    context.push()
    auth.start_session(access.set_user(f"{role}1", role, password=PASSWORD))
    return context


def _run_as(role: str, call):  # noqa: ANN001, ANN202
    context = _as(role)
    try:
        return call()
    finally:
        context.pop()


@pytest.fixture(autouse=True)
def default_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(disclosure.SETTING, raising=False)


def _small_set(db: Path) -> dict[str, list[str]]:
    """Global filters matching 1 to 4 customers, at least one of whom defaulted."""
    row = sql(
        db,
        "SELECT persona_key, age_band, grade, region FROM mart_customer_profile GROUP BY ALL "
        "HAVING count(*) BETWEEN 1 AND 4 AND bool_or(is_defaulted) ORDER BY count(*) DESC, 1, 2, 3, 4 LIMIT 1",
    ).row(0)
    return {"persona": [row[0]], "age": [row[1]], "grade": [row[2]], "region": [row[3]]}


def _set_with_a_small_grade(db: Path) -> tuple[dict[str, list[str]], str, float]:
    """Filters (persona and region) matching many customers, one grade of whom has 1 to 4 customers
    with a default rate above 0: the filters, the grade and its default rate."""
    row = sql(
        db,
        "WITH g AS (SELECT persona_key, region, grade, count(*) AS n, avg(is_defaulted::INT) AS rate "
        "FROM mart_customer_profile WHERE grade <> 'unscored' GROUP BY ALL), "
        "t AS (SELECT persona_key, region, count(*) AS total FROM mart_customer_profile GROUP BY ALL) "
        "SELECT g.persona_key, g.region, g.grade, g.rate FROM g JOIN t USING (persona_key, region) "
        "WHERE g.n BETWEEN 1 AND 4 AND g.rate > 0 AND t.total >= 20 ORDER BY g.rate DESC, 1, 2, 3 LIMIT 1",
    ).row(0)
    return {"persona": [row[0]], "region": [row[1]]}, row[2], row[3]


# -- the setting --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [("", 5), (" 7 ", 7), ("1", 1), ("25", 25)])
def test_the_minimum_cell_size_setting_reads_whole_numbers_of_at_least_one(text: str, expected: int) -> None:
    assert disclosure.min_cell_size({"SEGRISK_MIN_CELL_SIZE": text}) == expected
    assert disclosure.min_cell_size({}) == disclosure.DEFAULT_MIN_CELL_SIZE == 5


@pytest.mark.parametrize("text", ["0", "-3", "five", "2.5", "1e3"])
def test_a_bad_minimum_cell_size_is_refused_with_a_sentence_naming_the_setting(text: str) -> None:
    with pytest.raises(disclosure.DisclosureError, match=r"SEGRISK_MIN_CELL_SIZE must be a whole number of at least 1"):
        disclosure.min_cell_size({"SEGRISK_MIN_CELL_SIZE": text})


def test_a_bad_minimum_cell_size_stops_the_dashboard_from_starting(
    full_db_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGRISK_MIN_CELL_SIZE", "zero")
    users = {"admin": auth.User("admin", "admin", generate_password_hash("pw"))}
    with pytest.raises(disclosure.DisclosureError, match="SEGRISK_MIN_CELL_SIZE"):
        create_app(full_db_copy, users=users)


# -- the filtered population ----------------------------------------------------------------------------------
def test_a_viewer_filtering_to_fewer_than_five_customers_sees_a_sentence_not_their_default_rate(
    full_db_copy: Path,
) -> None:
    page = dashboard_page(full_db_copy, "overview")
    chosen = _small_set(full_db_copy)
    expected = sql(
        full_db_copy,
        "SELECT avg(is_defaulted::INT) AS rate, avg(pd) AS pd FROM mart_customer_profile "
        "WHERE persona_key = ? AND age_band = ? AND grade = ? AND region = ?",
        [chosen["persona"][0], chosen["age"][0], chosen["grade"][0], chosen["region"][0]],
    ).row(0)
    analyst = _run_as("analyst", lambda: page.show_overview(chosen))
    viewer = _run_as("viewer", lambda: page.show_overview(chosen))
    assert ui.percent(expected[0]) in text_of(analyst[0])  # the analyst reads the default rate
    shown = text_of(viewer[0])
    assert SENTENCE in shown and "Widen the filters." in shown
    assert "%" not in shown and ui.percent(expected[0]) not in shown  # no rate at all, the customer's least
    assert viewer[2] == viewer[4] == {"display": "none"}  # both charts hidden


@pytest.mark.parametrize(
    ("module", "call"),
    [
        ("personas", lambda page, f: page.show_cards(f, 0)),
        ("personas", lambda page, f: page.show_scatter(f, 0)),
        ("risk", lambda page, f: page.show_scores(f)),
        ("warnings", lambda page, f: page.show_charts(f, [], [], "all", 0)),
        ("cross_sell", lambda page, f: page.show_mix(f, "first_choice")),
        ("rfm", lambda page, f: page.show_segments(f)),
        ("rfm", lambda page, f: page.show_spread(f)),
        ("statistics", lambda page, f: page.show_groups(f, "loan_amount", "persona")),
        ("statistics", lambda page, f: page.show_distribution(f, "loan_amount", "persona", "count")),
    ],
)
def test_every_page_gives_a_viewer_the_sentence_under_too_narrow_filters(full_db_copy: Path, module: str, call) -> None:  # noqa: ANN001
    page = dashboard_page(full_db_copy, module)
    chosen = _small_set(full_db_copy)
    viewer = _run_as("viewer", lambda: call(page, chosen))
    analyst = _run_as("analyst", lambda: call(page, chosen))
    assert SENTENCE in text_of(viewer if isinstance(viewer, tuple) else [viewer])
    assert SENTENCE not in text_of(analyst if isinstance(analyst, tuple) else [analyst])


def test_the_report_of_a_viewer_stops_with_the_sentence_under_too_narrow_filters(full_db_copy: Path) -> None:
    from dashboard.reports.content import gather

    dashboard_page(full_db_copy, "overview")
    chosen = _small_set(full_db_copy)
    with pytest.raises(disclosure.SmallPopulation, match="fewer than 5 customers"):
        _run_as("viewer", lambda: gather(reader(), chosen, charts=False))
    content = _run_as("analyst", lambda: gather(reader(), chosen, charts=False))
    assert content.headline["default_rate"] is not None


def test_the_minimum_is_settable(full_db_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = dashboard_page(full_db_copy, "overview")
    chosen = _small_set(full_db_copy)
    monkeypatch.setenv("SEGRISK_MIN_CELL_SIZE", "1")
    assert "These filters match" not in text_of(_run_as("viewer", lambda: page.show_overview(chosen))[0])
    # A region of some hundreds of customers, under a minimum above it.
    region = sql(full_db_copy, "SELECT region, count(*) AS n FROM mart_customer_profile GROUP BY ALL ORDER BY n").row(0)
    monkeypatch.setenv("SEGRISK_MIN_CELL_SIZE", str(region[1] + 1))
    hidden = text_of(_run_as("viewer", lambda: page.show_overview({"region": [region[0]]}))[0])
    assert f"fewer than {region[1] + 1} customers" in hidden


# -- groups inside a view ---------------------------------------------------------------------------------------
def test_a_grade_of_too_few_customers_loses_its_default_rate_for_a_viewer_only(full_db_copy: Path) -> None:
    page = dashboard_page(full_db_copy, "overview")
    chosen, grade, rate = _set_with_a_small_grade(full_db_copy)

    def grade_rates(answer: tuple) -> dict[str, str]:
        bars = answer[1].data[0]
        return {g: data[0] for g, data in zip(bars.x, bars.customdata, strict=True)}

    analyst = _run_as("analyst", lambda: page.show_overview(chosen))
    viewer = _run_as("viewer", lambda: page.show_overview(chosen))
    assert grade_rates(analyst)[grade] == ui.percent(rate) != "–"
    shown = grade_rates(viewer)
    assert shown[grade] == "–" and ui.percent(rate) not in text_of(viewer[0])
    # Secondary suppression: never exactly one hidden group, else total less the rest gives it away.
    assert sum(value == "–" for value in shown.values()) >= 2
    assert sum(value == "–" for value in grade_rates(analyst).values()) == 0
    assert "Groups under 5 customers are hidden" in text_of(viewer[5])
    assert "Groups under 5 customers are hidden" not in text_of(analyst[5])
    # The customers per grade stay: a count is the size of the cell, not the outcome.
    assert list(analyst[1].data[0].y) == list(viewer[1].data[0].y)


def test_a_statistics_group_table_hides_the_figures_of_a_small_group_from_a_viewer(full_db_copy: Path) -> None:
    page = dashboard_page(full_db_copy, "statistics")
    # Grouped by persona under a filter where one persona has 1 to 4 customers.
    row = sql(
        full_db_copy,
        "WITH g AS (SELECT region, age_band, persona_key, count(*) AS n, median(loan_amount) AS m "
        "FROM mart_customer_features GROUP BY ALL) SELECT region, age_band, persona_key, m FROM g "
        "WHERE n BETWEEN 1 AND 4 AND (SELECT count(*) FROM g h WHERE h.region = g.region AND h.age_band = g.age_band) >= 3 "
        "ORDER BY 1, 2, 3 LIMIT 1",
    ).row(0)
    chosen = {"region": [row[0]], "age": [row[1]]}
    summary_viewer = _run_as(
        "viewer", lambda: page.groups(reader(), page.feature(reader(), "loan_amount"), "persona", chosen)
    )
    summary_analyst = _run_as(
        "analyst", lambda: page.groups(reader(), page.feature(reader(), "loan_amount"), "persona", chosen)
    )
    small_viewer = summary_viewer.filter(summary_viewer["grp"] == row[2]).row(0, named=True)
    small_analyst = summary_analyst.filter(summary_analyst["grp"] == row[2]).row(0, named=True)
    assert small_analyst["median"] == pytest.approx(row[3]) and small_analyst["default_rate"] is not None
    assert small_viewer["median"] is None and small_viewer["default_rate"] is None and small_viewer["is_hidden"]
    assert small_viewer["customers"] == small_analyst["customers"]
    _box, _balance, table = _run_as("viewer", lambda: page.show_groups(chosen, "loan_amount", "persona"))
    assert "Groups under 5 customers are hidden" in text_of(table)


def test_persona_cards_hide_a_small_personas_figures_from_a_viewer(full_db_copy: Path) -> None:
    page = dashboard_page(full_db_copy, "personas")
    chosen, _grade, _rate = _set_with_a_small_grade(full_db_copy)
    chosen = {
        "grade": sorted(
            sql(full_db_copy, "SELECT DISTINCT grade FROM mart_customer_profile WHERE grade <> 'unscored'")
            .get_column("grade")
            .to_list()
        )[-1:],
        "region": chosen["region"],
    }
    analyst = _run_as("analyst", lambda: page.persona_figures(reader(), chosen))
    viewer = _run_as("viewer", lambda: page.persona_figures(reader(), chosen))
    small = analyst.filter(analyst["customers"] < 5)
    if small.height == 0:
        pytest.fail(f"the demo warehouse has no persona of under 5 customers under {chosen}")
    hidden = viewer.filter(viewer["is_hidden"])
    assert set(small.get_column("persona_key")) <= set(hidden.get_column("persona_key"))
    assert hidden.get_column("default_rate").null_count() == hidden.height
    assert analyst.get_column("is_hidden").sum() == 0


# -- through the server, as a browser asks ------------------------------------------------------------------
OVERVIEW_OUTPUTS = [
    ("overview-cards", "children"),
    ("overview-grades", "figure"),
    ("overview-grades", "style"),
    ("overview-personas", "figure"),
    ("overview-personas", "style"),
    ("overview-notes", "children"),
]


def _overview_request(chosen: dict) -> dict:
    return {
        "output": ".." + "...".join(f"{i}.{p}" for i, p in OVERVIEW_OUTPUTS) + "..",
        "outputs": [{"id": i, "property": p} for i, p in OVERVIEW_OUTPUTS],
        "inputs": [{"id": "filters", "property": "data", "value": chosen}],
        "changedPropIds": ["filters.data"],
        "state": [],
    }


def test_the_served_callback_sends_a_viewer_the_sentence_and_an_analyst_the_figures(full_db_copy: Path) -> None:
    from signin import login_form

    users = {
        name: auth.User(name, role, generate_password_hash(PASSWORD))
        for name, role in (("ana", "analyst"), ("vic", "viewer"))
    }
    server = create_app(full_db_copy, users=users).server
    chosen = _small_set(full_db_copy)
    rate = sql(
        full_db_copy,
        "SELECT avg(is_defaulted::INT) FROM mart_customer_profile "
        "WHERE persona_key = ? AND age_band = ? AND grade = ? AND region = ?",
        [chosen["persona"][0], chosen["age"][0], chosen["grade"][0], chosen["region"][0]],
    ).item()
    answers = {}
    for name in ("ana", "vic"):
        client = server.test_client()
        assert client.post("/login", data=login_form(client, name, PASSWORD)).status_code == 302
        answer = client.post("/_dash-update-component", json=_overview_request(chosen))
        assert answer.status_code == 200, answer.data[:300]
        answers[name] = answer.get_data(as_text=True)
    assert ui.percent(rate) in answers["ana"] and "These filters match" not in answers["ana"]
    assert SENTENCE in answers["vic"] and ui.percent(rate) not in answers["vic"]


def test_the_whole_book_grade_table_hides_grades_under_the_minimum_from_a_viewer(
    full_db_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = dashboard_page(full_db_copy, "risk")
    grades = reader().query("grades").sort("customers")
    smallest = grades.row(0, named=True)
    # A minimum just above the smallest grade of the book: that grade (and the next smallest) go.
    monkeypatch.setenv("SEGRISK_MIN_CELL_SIZE", str(smallest["customers"] + 1))
    analyst = _run_as("analyst", page.layout)
    viewer = _run_as("viewer", page.layout)
    observed = ui.percent(smallest["observed_default_rate"], 2)
    assert _table_row(analyst, smallest["grade"])[-1] == observed != "–"
    assert _table_row(viewer, smallest["grade"])[-2:] == ["–", "–"]  # mean PD and observed default rate
    assert _table_row(viewer, smallest["grade"])[:3] == _table_row(analyst, smallest["grade"])[:3]  # grade, size
    hidden = [row for row in grades.get_column("grade") if _table_row(viewer, row)[-1] == "–"]
    assert len(hidden) == 2  # the small grade and, so that it cannot be worked out, the next smallest
    assert f"Groups under {smallest['customers'] + 1} customers are hidden" in text_of(viewer)
    assert "are hidden" not in text_of(analyst)


def _table_row(component: object, first: str) -> list[str]:
    """The cells of the first table row whose first cell reads ``first``."""
    from dash import html

    stack = [component]
    while stack:
        item = stack.pop(0)
        if isinstance(item, list | tuple):
            stack[:0] = list(item)
            continue
        if isinstance(item, html.Tr):
            cells = [text_of(cell) for cell in item.children]
            if cells and cells[0] == first and isinstance(item.children[0], html.Td):
                return cells
        children = getattr(item, "children", None)
        if children is not None:
            stack.insert(0, children)
    raise AssertionError(f"no table row starting with {first!r}")


# -- differencing two views ---------------------------------------------------------------------------------
def _a_region_of_few(db: Path) -> tuple[str, str, str, str]:
    """(persona, age band, small region, big region): under that persona and age band the small region
    has 1 to 4 customers and the big one 10 or more."""
    return sql(
        db,
        "WITH g AS (SELECT persona_key, age_band, region, count(*) AS n FROM mart_customer_profile GROUP BY ALL) "
        "SELECT s.persona_key, s.age_band, s.region, b.region FROM g s JOIN g b USING (persona_key, age_band) "
        "WHERE s.n BETWEEN 1 AND 4 AND b.n >= 10 ORDER BY 1, 2, 3, 4 LIMIT 1",
    ).row(0)


def test_a_viewer_cannot_read_a_small_group_as_the_difference_of_two_wide_views(full_db_copy: Path) -> None:
    page = dashboard_page(full_db_copy, "overview")
    persona, age, small, big = _a_region_of_few(full_db_copy)
    regions = sql(full_db_copy, "SELECT DISTINCT region FROM mart_customer_profile ORDER BY 1").get_column("region")
    # Adding the small region to the big one, or choosing every region but the small one: either view,
    # set beside the view without it, gives the small region's customers away.
    for chosen_regions in ([big, small], [r for r in regions if r != small]):
        chosen = {"persona": [persona], "age": [age], "region": chosen_regions}
        viewer = text_of(_run_as("viewer", lambda chosen=chosen: page.show_overview(chosen))[0])
        analyst = text_of(_run_as("analyst", lambda chosen=chosen: page.show_overview(chosen))[0])
        assert "differ from a wider choice of Region by fewer than 5 customers" in viewer and "%" not in viewer
        assert "differ from a wider choice" not in analyst and "%" in analyst
    # Whole groups are fine: the big region alone, under the same persona and age band.
    wide = text_of(
        _run_as("viewer", lambda: page.show_overview({"persona": [persona], "age": [age], "region": [big]}))[0]
    )
    assert "These filters" not in wide and "%" in wide


def test_a_distribution_split_by_default_status_hides_bins_of_few_defaulters_from_a_viewer(full_db_copy: Path) -> None:
    page = dashboard_page(full_db_copy, "statistics")
    data = reader()
    column = page.feature(data, "loan_amount")
    counts, edges = page.histogram(data, column, "default", {})
    small = counts.filter((counts["bin"] >= 0) & (counts["customers"] > 0) & (counts["customers"] < 5))
    assert small.height, "the demo warehouse has a bin of loan_amount with under 5 defaulters or non-defaulters"
    bin_centre = edges.centre(small.item(0, "bin"))
    _, analyst_chart, analyst_rate = _run_as(
        "analyst", lambda: page.show_distribution({}, "loan_amount", "default", "count")
    )
    note, viewer_chart, viewer_rate = _run_as(
        "viewer", lambda: page.show_distribution({}, "loan_amount", "default", "count")
    )
    assert any(bin_centre in trace.x for trace in analyst_chart.figure.data)
    assert not any(bin_centre in trace.x for trace in viewer_chart.figure.data)
    assert bin_centre in analyst_rate.figure.data[0].x and bin_centre not in viewer_rate.figure.data[0].x
    assert "Groups under 5 customers are hidden" in text_of(note)

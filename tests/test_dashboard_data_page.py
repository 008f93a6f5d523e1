"""The Data page: the dictionary from the warehouse's own comments, the build and its row counts,
the data tests, and quarantine counts checked against the quarantine tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import dash
import duckdb
import pytest
from conftest import Builder, dashboard_page
from dash_helpers import texts
from test_bad_input import BAD_CUSTOMERS, BAD_TRANSACTIONS, GOOD_CUSTOMERS, GOOD_TRANSACTIONS, SPEC, write_dataset

from dashboard.data import QUERIES


def body_rows(component: object) -> list[list[str]]:
    """The text of each cell of each body row of every table in a component tree."""
    if isinstance(component, list | tuple):
        return [row for item in component for row in body_rows(item)]
    if isinstance(component, dash.html.Tbody):
        return [[" ".join(texts(cell)) for cell in tr.children] for tr in component.children]
    if isinstance(component, dash.dash_table.DataTable):
        return [[str(row[column["id"]]) for column in component.columns] for row in component.data]
    children = getattr(component, "children", None)
    return body_rows(children if isinstance(children, list) else [children]) if children is not None else []


def catalogue(db: Path) -> dict[str, str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return dict(
            con.execute(
                "SELECT table_name, comment FROM duckdb_tables() WHERE NOT internal "
                "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        )


def literally(db: Path, text: str) -> set[str]:
    """Tables and views whose name, comment or a column's name or comment contains ``text`` as is."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT o.name, o.comment, c.column_name, c.comment FROM (SELECT table_name AS name, comment "
            "FROM duckdb_tables() WHERE NOT internal UNION ALL SELECT view_name, comment FROM duckdb_views() "
            "WHERE NOT internal) o JOIN duckdb_columns() c ON c.table_name = o.name"
        ).fetchall()
    return {row[0] for row in rows if any(text.lower() in (value or "").lower() for value in row)}


@pytest.fixture(scope="module")
def warehouse(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data-page") / "demo.duckdb"
    shutil.copyfile(full_db, path)
    return path


@pytest.fixture(scope="module")
def page(warehouse: Path):  # noqa: ANN201 - the page module Dash imported
    return dashboard_page(warehouse, "data_catalog")


def test_the_dictionary_lists_every_table_with_its_comment(page, warehouse: Path) -> None:  # noqa: ANN001
    expected = catalogue(warehouse)
    assert len(expected) > 40 and all(expected.values())
    rows = body_rows(page.show_objects(None))
    assert {row[0]: row[3] for row in rows} == expected
    # The search narrows the list to tables whose name, comment or a column matches.
    narrowed = {row[0] for row in body_rows(page.show_objects("quarantine"))}
    assert {"quarantine_customers", "meta_row_counts"} <= narrowed < set(expected)
    by_column = {row[0] for row in body_rows(page.show_objects("days_past_due"))}
    assert "customers" in by_column and "meta_builds" not in by_column
    # The user's text is a value, never a pattern: % and _ are taken literally.
    for search in ("%", "_id", "x_y"):
        assert {row[0] for row in body_rows(page.show_objects(search))} == literally(warehouse, search)
    assert "No table or column matches “x_y”." in texts(page.show_objects("x_y"))


def test_the_columns_of_a_table_and_the_search(page, warehouse: Path) -> None:  # noqa: ANN001
    with duckdb.connect(str(warehouse), read_only=True) as con:
        columns = con.execute(
            "SELECT column_name, data_type, comment FROM duckdb_columns() WHERE table_name = 'customers' "
            "ORDER BY column_index"
        ).fetchall()
        income = con.execute(
            "SELECT count(*) FROM duckdb_columns() c JOIN duckdb_tables() t USING (table_name) WHERE NOT t.internal "
            "AND (c.column_name ILIKE '%income%' OR c.comment ILIKE '%income%' OR c.table_name ILIKE '%income%')"
        ).fetchall()[0][0]
        views_income = con.execute(
            "SELECT count(*) FROM duckdb_columns() c JOIN duckdb_views() v ON v.view_name = c.table_name "
            "WHERE NOT v.internal AND (c.column_name ILIKE '%income%' OR c.comment ILIKE '%income%')"
        ).fetchall()[0][0]
    table, pages, summary = page.show_dictionary("customers", "", 1, "table_name", "asc")
    assert summary == f"rows 1-50 of {len(columns)}" and pages == -(-len(columns) // 50)
    shown = body_rows(table)
    assert [tuple(row[1:]) for row in shown] == [(n, t, c) for n, t, c in columns[:50]]  # in the table's order
    table, _, summary = page.show_dictionary(None, "income", 1, "column_name", "asc")
    rows = body_rows(table)
    assert summary.endswith(f"of {income + views_income}") and rows
    assert all("income" in " ".join(row).lower() for row in rows)
    download, message = page.download_dictionary(1, "customers", "", "table_name", "asc")
    assert message == "" and download["content"].count("\n") == len(columns) + 1


def test_build_sources_and_data_tests(page, warehouse: Path) -> None:  # noqa: ANN001
    with duckdb.connect(str(warehouse), read_only=True) as con:
        build_id, spec = con.execute("SELECT build_id, spec_name FROM meta_builds").fetchall()[0]
        counts = con.execute("SELECT source, rows_in, rows_out, rows_rejected FROM meta_row_counts").fetchall()
        passed, checks = con.execute("SELECT count_if(passed), count(*) FROM meta_check_results").fetchall()[0]
    layout = page.layout()
    words = texts(layout)
    assert build_id in words and spec in words
    assert f"{passed:,} of {checks:,} data tests passed at the build." in words
    rows = {row[0]: row[1:4] for row in body_rows(layout) if "→" in row[-1]}  # the row-count table
    assert rows == {s: [f"{a:,}", f"{b:,}", f"{c:,}"] for s, a, b, c in counts}
    assert "No rows were rejected: every source row passed validation." in words


@pytest.fixture(scope="module")
def rejected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse whose customers and transactions both have rejected rows (test_bad_input's dataset)."""
    from warehouse.build import build_warehouse
    from warehouse.spec import parse_spec

    folder = tmp_path_factory.mktemp("rejected")
    data = write_dataset(
        folder / "data",
        GOOD_CUSTOMERS + [line for line, _, _ in BAD_CUSTOMERS],
        GOOD_TRANSACTIONS + [line for line, _, _ in BAD_TRANSACTIONS],
    )
    return build_warehouse(parse_spec(SPEC, "tiny.toml"), SPEC, data, folder / "tiny.duckdb").db_path


def test_quarantine_counts_equal_the_quarantine_tables(rejected: Path) -> None:
    page = dashboard_page(rejected, "data_catalog")
    data = page.reader()
    assert dict(page.quarantine_tables(data).select("source", "rows_rejected").rows()) == {
        "customers": len(BAD_CUSTOMERS),
        "transactions": len(BAD_TRANSACTIONS),
    }
    options = {o["value"] for o in _find(page.layout(), "data-quarantine-source").options}
    assert options == {"customers", "transactions"}
    with duckdb.connect(str(rejected), read_only=True) as con:
        for source in ("customers", "transactions"):
            expected = con.execute(
                f"SELECT rule, column_name, count(*) FROM quarantine_{source} GROUP BY ALL"
            ).fetchall()
            reasons = con.execute(f"SELECT reason, count(*) FROM quarantine_{source} GROUP BY ALL").fetchall()
            first = con.execute(f"SELECT reason FROM quarantine_{source} ORDER BY raw_row LIMIT 20").fetchall()
            assert sorted(page.quarantine_counts(data, source).rows()) == sorted(expected)
            shown = page.show_quarantine(source)
            words = texts(shown)
            total = sum(n for *_, n in expected)
            assert f"{total:,} rejected rows from {source}, kept in the quarantine table with why." in words
            tables = body_rows(shown)
            by_rule = {(r[0], r[1]): r[2] for r in tables if len(r) == 4 and r[3].endswith("%")}
            assert by_rule == {(rule.replace("_", " "), col): f"{n:,}" for rule, col, n in expected}
            assert {(r[0], r[2]) for r in tables if len(r) == 3} == {(reason, f"{n:,}") for reason, n in reasons}
            examples = [r for r in tables if len(r) == 4 and not r[3].endswith("%")]
            assert [r[2] for r in examples] == [reason for (reason,) in first]
            assert all(r[0].startswith(f"{source}.csv, row ") for r in examples)


def test_online_retail_fixture_quarantine(build: Builder) -> None:
    db = build("online-retail").db_path
    page = dashboard_page(db, "data_catalog")
    with duckdb.connect(str(db), read_only=True) as con:
        expected = con.execute(
            "SELECT rule, column_name, count(*) FROM quarantine_transactions GROUP BY ALL"
        ).fetchall()
        distinct = con.execute(
            "SELECT count(DISTINCT (rule, column_name, reason)) FROM quarantine_transactions"
        ).fetchall()
    assert sorted(page.quarantine_counts(page.reader(), "transactions").rows()) == sorted(expected)
    reasons = page.quarantine_reasons(page.reader(), "transactions")
    assert reasons.height == min(distinct[0][0], page.REASONS_SHOWN) and reasons.item(0, "reasons") == distinct[0][0]
    assert page.quarantine_examples(page.reader(), "transactions").height == page.EXAMPLES_SHOWN


def test_an_unknown_source_is_refused_before_any_sql(page) -> None:  # noqa: ANN001
    for source in ("quarantine_customers", 'customers"; DROP TABLE customers; --', None):
        assert "is not a source of this warehouse." in texts(page.show_quarantine(source))[0]
    assert not [name for name in QUERIES if "DROP" in name or name.endswith(":None")]
    assert page.reader().query("customers_count").item() > 0


def test_objects_link_to_their_columns(page) -> None:  # noqa: ANN001
    listed = page.show_objects("meta")
    table = _find(listed, "data-objects-table")
    rows = table.data
    names = [row["name"] for row in rows]
    assert "meta_builds" in names
    clicked = names.index("meta_builds")
    assert page.pick_object({"row": clicked, "column": 0, "column_id": "name"}, rows) == "meta_builds"
    # A click on another column, or on nothing, changes nothing.
    assert page.pick_object({"row": clicked, "column": 3, "column_id": "comment"}, rows) is dash.no_update
    assert page.pick_object(None, rows) is dash.no_update
    assert page.pick_object({"row": len(rows), "column": 0, "column_id": "name"}, rows) is dash.no_update
    assert _find(page.layout(table="meta_builds"), "data-table").value == "meta_builds"
    assert _find(page.layout(table="no_such_table"), "data-table").value is None


def _find(component: object, component_id: str) -> object:
    if getattr(component, "id", None) == component_id:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children] if children is not None else []:
        found = _find(child, component_id)
        if found is not None:
            return found
    return None

"""The governed SQL console on the trained demo warehouse: what it answers, and every attack on it.

Each attack must be refused or stopped with one line, and afterwards the console still answers and
the dashboard's own reader still works. The sandbox is tested at both of its layers: the console
(one reading statement at a time, time limit, row cap, worker process) and the DuckDB connection
under it (``warehouse.db.connect_sandboxed``), which must refuse the same attacks by itself.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from waitress.server import create_server
from werkzeug.security import generate_password_hash

from dashboard import sql_console
from dashboard.sql_console import ConsoleLimits, SqlConsole, SqlConsoleError
from warehouse.db import connect_for_build, connect_sandboxed, read_only

#: A cross join of a million rows by a million: CPU-bound, it would run for hours.
RUNAWAY = "SELECT count(*) FROM range(1000000) a, range(1000000) b"
#: The same at 10^12 by 10^12 rows, which also meets the memory limit.
RUNAWAY_HUGE = "SELECT count(*) FROM range(1e12::BIGINT) a, range(1e12::BIGINT) b"
TIME_LIMIT = 3.0
#: The served dashboard's limit: long enough for other pages to be asked while the query runs.
SERVED_TIME_LIMIT = 8.0
ROW_CAP = 500


@pytest.fixture(scope="module")
def console(full_db: Path) -> Iterator[SqlConsole]:
    opened = SqlConsole(full_db, ConsoleLimits(time_limit=TIME_LIMIT, row_cap=ROW_CAP, workers=2))
    try:
        yield opened
    finally:
        opened.close()


def warehouse_rows(db: Path, sql: str) -> list[tuple]:
    with read_only(db) as con:
        return con.execute(sql).fetchall()


# -- what it answers ----------------------------------------------------------------------------------
def test_a_select_answers_with_the_warehouse_figures(console: SqlConsole, full_db: Path) -> None:
    query = (
        "SELECT grade, count(*) AS customers, avg(pd) AS mean_pd FROM mart_customer_profile "
        "GROUP BY grade ORDER BY grade"
    )
    result = console.run(query)
    assert result.columns == ["grade", "customers", "mean_pd"]
    assert result.rows() == warehouse_rows(full_db, query)
    assert not result.truncated
    total = console.run("SELECT count(*) AS n FROM customers").rows()
    assert total == warehouse_rows(full_db, "SELECT count(*) FROM customers")
    assert total[0][0] == sum(customers for _, customers, _ in result.rows())


def test_an_analyst_reads_the_catalogue_and_describes_tables(console: SqlConsole, full_db: Path) -> None:
    described = console.run("DESCRIBE customers")
    assert [row[0] for row in described.rows()] == [
        row[0]
        for row in warehouse_rows(
            full_db, "SELECT column_name FROM duckdb_columns() WHERE table_name = 'customers' ORDER BY column_index"
        )
    ]
    comments = console.run("SELECT table_name, comment FROM duckdb_tables() WHERE table_name = 'customers'")
    assert comments.rows()[0][1]


def test_the_row_cap_keeps_the_first_rows_and_says_so(console: SqlConsole, full_db: Path) -> None:
    query = "SELECT customer_id, annual_income FROM customers ORDER BY customer_id"
    everyone = warehouse_rows(full_db, query)
    assert len(everyone) > ROW_CAP
    result = console.run(query)
    assert result.truncated and result.row_count == ROW_CAP
    assert result.rows() == everyone[:ROW_CAP]
    assert result.summary().startswith(f"Showing the first {ROW_CAP:,} rows")
    exactly = console.run(f"SELECT customer_id FROM customers ORDER BY customer_id LIMIT {ROW_CAP}")
    assert not exactly.truncated and exactly.row_count == ROW_CAP


def test_the_download_is_the_result_as_csv(console: SqlConsole, full_db: Path) -> None:
    query = (
        "SELECT customer_id, age_band, as_of_date FROM customers, "
        "(SELECT max(as_of_date)::DATE AS as_of_date FROM meta_builds) ORDER BY customer_id LIMIT 3"
    )
    text = sql_console.result_csv(console.run(query)).splitlines()
    assert text[0] == "customer_id,age_band,as_of_date"
    expected = warehouse_rows(full_db, query)
    assert text[1:] == [f"{customer},{band},{day.isoformat()}" for customer, band, day in expected]


def test_pages_show_the_result_in_order_with_values_as_text(console: SqlConsole, full_db: Path) -> None:
    query = (
        "SELECT customer_id, annual_income, NULL AS nothing, [1, 2] AS pair FROM customers "
        "ORDER BY customer_id LIMIT 60"
    )
    result = console.run(query)
    third = sql_console.page_rows(result, 3, 25)
    expected = warehouse_rows(full_db, query)[50:]
    assert [row["c0"] for row in third] == [customer for customer, *_ in expected]
    assert third[0]["c2"] == "NULL" and third[0]["c3"] == "[1, 2]"
    assert [sql_console.is_numeric(result.table, i) for i in range(4)] == [True, True, False, False]


# -- the attacks ----------------------------------------------------------------------------------------
ATTACKS = {
    "read_csv /etc/passwd": ("SELECT * FROM read_csv('/etc/passwd')", "file system operations are disabled"),
    "read_text /etc/passwd": ("SELECT * FROM read_text('/etc/passwd')", "file system operations are disabled"),
    "read_blob /etc/passwd": ("SELECT * FROM read_blob('/etc/passwd')", "file system operations are disabled"),
    "a file path as a table": ("SELECT * FROM '/etc/passwd'", "does not exist"),
    "glob /etc": ("SELECT * FROM glob('/etc/*')", "file system operations are disabled"),
    "CALL read_csv": ("CALL read_csv('/etc/passwd')", "file system operations are disabled"),
    "read_csv over http": ("SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')", "The query failed"),
    "COPY TO a file": ("COPY customers TO '/tmp/segrisk-console-x.csv'", "COPY statement"),
    "COPY a query to parquet": (
        "COPY (SELECT 1) TO '/tmp/segrisk-console-x.parquet' (FORMAT parquet)",
        "COPY statement",
    ),
    "COPY FROM a file": ("COPY customers FROM '/etc/passwd'", "COPY statement"),
    "EXPORT DATABASE": ("EXPORT DATABASE '/tmp/segrisk-console-export'", "EXPORT statement"),
    "ATTACH another file": ("ATTACH '/tmp/segrisk-console-other.duckdb' AS other", "ATTACH statement"),
    "INSTALL an extension": ("INSTALL httpfs", "INSTALL statement"),
    "LOAD an extension": ("LOAD httpfs", "LOAD statement"),
    "SET external access back on": ("SET enable_external_access = true", "SET statement"),
    "PRAGMA external access back on": ("PRAGMA enable_external_access = true", "PRAGMA statement"),
    "SET the memory limit": ("SET memory_limit = '20GB'", "SET statement"),
    "unlock the configuration": ("SET lock_configuration = false", "SET statement"),
    "RESET a setting": ("RESET threads", "RESET statement"),
    "CREATE TABLE": ("CREATE TABLE stolen AS SELECT * FROM customers", "CREATE statement"),
    "a temporary view shadowing a table": ("CREATE TEMP VIEW customers AS SELECT 1 AS customer_id", "CREATE statement"),
    "INSERT": ("INSERT INTO meta_builds SELECT * FROM meta_builds", "INSERT statement"),
    "UPDATE": ("UPDATE customers SET annual_income = 0", "UPDATE statement"),
    "DELETE": ("DELETE FROM customers", "DELETE statement"),
    "DROP": ("DROP TABLE customers", "DROP statement"),
    "two statements": ("SELECT 1; SELECT 2", "one statement at a time"),
    "a read then a write": ("SELECT 1; DROP TABLE customers", "one statement at a time"),
    "not SQL": ("SELEC * FROM customers", "Parser Error"),
    # These pass the statement check (to DuckDB they are PRAGMA and CALL): the sandbox stops them.
    "IMPORT DATABASE": ("IMPORT DATABASE '/tmp'", "file system operations are disabled"),
    "PRAGMA turning profiling on": ("PRAGMA enable_profiling", "the configuration has been locked"),
    "CALL turning logging on": ("CALL enable_logging()", "the configuration has been locked"),
}


@pytest.mark.parametrize("name", ATTACKS)
def test_each_attack_is_refused_with_one_line(console: SqlConsole, full_db: Path, name: str) -> None:
    sql, says = ATTACKS[name]
    with pytest.raises(SqlConsoleError) as refused:
        console.run(sql)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(("Refused: ", "The query failed: ")), message
    assert says in message
    assert not any(Path("/tmp").glob("segrisk-console-*"))
    assert warehouse_rows(full_db, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'stolen'") == [(0,)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "COPY customers TO '/tmp/segrisk-console-x.csv'",
        "EXPORT DATABASE '/tmp/segrisk-console-export'",
        "ATTACH '/tmp/segrisk-console-other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "PRAGMA enable_external_access = true",
        "SET lock_configuration = false",
        "CREATE TABLE stolen AS SELECT 1",
        "INSERT INTO meta_builds SELECT * FROM meta_builds",
        "DELETE FROM customers",
        "DROP TABLE customers",
    ],
)
def test_the_sandboxed_connection_refuses_them_by_itself(full_db: Path, tmp_path: Path, sql: str) -> None:
    """Below the console's statement check, DuckDB's configuration alone refuses each attack."""
    import duckdb

    copy = tmp_path / "sandbox.duckdb"  # a file of its own: this process may hold full_db otherwise configured
    shutil.copyfile(full_db, copy)
    con = connect_sandboxed(copy)
    try:
        with pytest.raises(duckdb.Error, match="disabled|locked|read-only"):
            con.execute(sql).fetchall()
        assert con.execute("SELECT current_setting('enable_external_access')").fetchone() == (False,)
        assert con.execute("SELECT count(*) FROM customers").fetchone()[0] > 0
    finally:
        con.close()
    assert not any(Path("/tmp").glob("segrisk-console-*"))


def test_a_runaway_query_is_stopped_and_the_console_answers_after(console: SqlConsole, full_db: Path) -> None:
    started = console.started
    with pytest.raises(SqlConsoleError) as stopped:
        console.run(RUNAWAY)
    assert str(stopped.value) == (
        f"Stopped: the query ran longer than the console's time limit of {TIME_LIMIT:g} s (SEGRISK_SQL_TIME_LIMIT)."
    )
    assert stopped.value.outcome == "stopped"
    # The interrupt took: the same worker answers the next query.
    assert console.run("SELECT count(*) FROM customers").rows() == warehouse_rows(
        full_db, "SELECT count(*) FROM customers"
    )
    assert console.started == started


def test_a_runaway_over_huge_ranges_is_stopped_too(console: SqlConsole) -> None:
    with pytest.raises(SqlConsoleError) as stopped:
        console.run(RUNAWAY_HUGE)
    message = str(stopped.value)
    assert "\n" not in message
    # Whichever comes first at this size: the time limit or the memory limit.
    assert message.startswith(("Stopped: the query ran longer", "Stopped: the query needs more memory")), message
    assert stopped.value.outcome == "stopped"
    assert console.run("SELECT 42 AS answer").rows() == [(42,)]


def test_a_worker_that_ignores_the_interrupt_is_killed_and_replaced(
    console: SqlConsole, full_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A negative grace makes the dashboard give up before the worker's own timer interrupts: the
    # path taken when an interrupt does not stop a query.
    monkeypatch.setattr(sql_console, "KILL_GRACE", 1.0 - TIME_LIMIT)
    started = console.started
    with pytest.raises(SqlConsoleError, match=r"^Stopped: the query ran longer"):
        console.run(RUNAWAY)
    monkeypatch.undo()
    assert console.run("SELECT count(*) FROM customers").rows() == warehouse_rows(
        full_db, "SELECT count(*) FROM customers"
    )
    assert console.started == started + 1


def test_a_swapped_warehouse_file_is_picked_up(full_db_copy: Path) -> None:
    swapped = SqlConsole(full_db_copy, ConsoleLimits(time_limit=TIME_LIMIT, row_cap=ROW_CAP, workers=1))
    try:
        before = swapped.run("SELECT count(*) FROM customers").rows()[0][0]
        assert before == warehouse_rows(full_db_copy, "SELECT count(*) FROM customers")[0][0]
        # A rebuild writes a new file beside the old one and renames it over it.
        new = full_db_copy.with_name(".demo.duckdb.building")
        con = connect_for_build(new)
        con.execute("CREATE TABLE customers AS SELECT range AS customer_id FROM range(3)")
        con.close()
        new.replace(full_db_copy)
        assert swapped.run("SELECT count(*) FROM customers").rows() == [(3,)]
        assert swapped.started == 2
    finally:
        swapped.close()


def test_limits_come_from_the_environment_and_bad_values_are_one_sentence() -> None:
    limits = ConsoleLimits.from_environment({"SEGRISK_SQL_TIME_LIMIT": "2.5", "SEGRISK_SQL_ROW_CAP": "100"})
    assert (limits.time_limit, limits.row_cap, limits.memory_limit) == (2.5, 100, "1GB")
    assert ConsoleLimits.from_environment({}) == ConsoleLimits()
    with pytest.raises(SqlConsoleError, match=r"^SEGRISK_SQL_ROW_CAP must be a whole number above 0, not 'many'\.$"):
        ConsoleLimits.from_environment({"SEGRISK_SQL_ROW_CAP": "many"})


def test_every_setting_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for setting in sql_console.SETTINGS.values():
        assert setting.env_var in readme, setting.env_var


# -- the served dashboard ---------------------------------------------------------------------------------
PASSWORD = "console test password"
RUN_SQL = {
    "output": "..data-sql-token.data...data-sql-message.children...data-sql-page.max_value"
    "...data-sql-page.active_page...data-sql-pager.style..",
    "outputs": [
        {"id": "data-sql-token", "property": "data"},
        {"id": "data-sql-message", "property": "children"},
        {"id": "data-sql-page", "property": "max_value"},
        {"id": "data-sql-page", "property": "active_page"},
        {"id": "data-sql-pager", "property": "style"},
    ],
    "changedPropIds": ["data-sql-run.n_clicks"],
}
SHOW_OBJECTS = {
    "output": "data-objects.children",
    "outputs": {"id": "data-objects", "property": "children"},
    "inputs": [{"id": "data-search", "property": "value", "value": "customer"}],
    "changedPropIds": ["data-search.value"],
}


def run_sql_request(sql: str) -> dict:
    return {
        **RUN_SQL,
        "inputs": [{"id": "data-sql-run", "property": "n_clicks", "value": 1}],
        "state": [{"id": "data-sql-text", "property": "value", "value": sql}],
    }


@pytest.fixture(scope="module")
def served_console(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from dashboard import auth
    from dashboard.app import create_app

    db = tmp_path_factory.mktemp("console-served") / "demo.duckdb"
    shutil.copyfile(full_db, db)
    sql_console.close_all()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEGRISK_SQL_TIME_LIMIT", str(SERVED_TIME_LIMIT))
        users = {
            name: auth.User(name, role, generate_password_hash(PASSWORD))
            for name, role in (("ana", "analyst"), ("vic", "viewer"))
        }
        app = create_app(db, users=users)
        sql_console.console(db)  # reads the limits now, while the setting is patched
    server = create_server(app.server, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}", db
    finally:
        server.close()
        sql_console.close_all()


def signed_in(base: str, user: str) -> requests.Session:
    session = requests.Session()
    # The form's CSRF field, when the sign-in form has one (dashboard/auth.py).
    found = re.search(r'name="csrf_token" value="([^"]+)"', session.get(f"{base}/login").text)
    fields = {"username": user, "password": PASSWORD, **({"csrf_token": found.group(1)} if found else {})}
    answer = session.post(f"{base}/login", data=fields, allow_redirects=False)
    assert answer.status_code == 302
    return session


def test_the_dashboard_answers_while_a_runaway_query_runs(served_console: tuple[str, Path]) -> None:
    base, db = served_console
    analyst = signed_in(base, "ana")
    runaway: dict[str, requests.Response] = {}
    running = threading.Thread(
        target=lambda: runaway.update(
            answer=analyst.post(f"{base}/_dash-update-component", json=run_sql_request(RUNAWAY))
        )
    )
    viewer = signed_in(base, "vic")
    console = sql_console.console(db)
    running.start()
    try:
        for _ in range(200):  # until the runaway query is in the console (at most 10 s)
            if console.running:
                break
            time.sleep(0.05)
        assert console.running == 1
        page = viewer.get(f"{base}/data")
        found = viewer.post(f"{base}/_dash-update-component", json=SHOW_OBJECTS)
        # Both answered while the runaway query was still running.
        assert console.running == 1 and running.is_alive()
        assert page.status_code == 200
        assert found.status_code == 200 and "mart_customer_profile" in found.text
    finally:
        running.join()
    answer = runaway["answer"]
    assert answer.status_code == 200
    assert f"Stopped: the query ran longer than the console's time limit of {SERVED_TIME_LIMIT:g} s" in answer.text
    # Afterwards the console answers a normal query, and the reader still serves pages.
    normal = analyst.post(f"{base}/_dash-update-component", json=run_sql_request("SELECT count(*) FROM customers"))
    assert normal.status_code == 200 and "1 row in" in normal.text
    assert analyst.post(f"{base}/_dash-update-component", json=SHOW_OBJECTS).status_code == 200


def test_every_console_query_is_audited(served_console: tuple[str, Path]) -> None:
    from warehouse.app_state import AppState, state_path

    base, db = served_console
    analyst = signed_in(base, "ana")
    store = AppState(state_path(db))
    before = store.audit_count(user="ana", action="sql_query")
    analyst.post(f"{base}/_dash-update-component", json=run_sql_request("SELECT grade FROM mart_customer_profile"))
    analyst.post(f"{base}/_dash-update-component", json=run_sql_request("SELECT * FROM read_csv('/etc/passwd')"))
    entries = store.audit_entries(user="ana", action="sql_query", limit=2)
    assert store.audit_count(user="ana", action="sql_query") == before + 2
    failed, succeeded = entries  # newest first
    rows = warehouse_rows(db, "SELECT count(*) FROM mart_customer_profile")[0][0]
    assert rows <= sql_console.console(db).limits.row_cap
    assert succeeded.outcome == "ok"
    assert succeeded.detail == f"rows: {rows} | sql: SELECT grade FROM mart_customer_profile"
    assert failed.outcome == "failed"
    assert 'Cannot access file "/etc/passwd"' in failed.detail and "read_csv('/etc/passwd')" in failed.detail


def test_a_viewer_cannot_run_sql(served_console: tuple[str, Path]) -> None:
    from warehouse.app_state import AppState, state_path

    base, db = served_console
    viewer = signed_in(base, "vic")
    answer = viewer.post(f"{base}/_dash-update-component", json=run_sql_request("SELECT count(*) FROM customers"))
    assert answer.status_code == 200
    assert "Your role (viewer) may not do this" in answer.text
    assert "row in" not in answer.text
    assert AppState(state_path(db)).audit_entries(user="vic", action="sql_query", limit=1)[0].outcome == "refused"

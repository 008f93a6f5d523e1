"""Issue 13, items 7 and 8: one analyst's console queries cannot hold the server's threads or memory.

Item 7: console work has its own bounded pool; a query finding every worker busy is refused at once
(outcome "busy", audited) instead of waiting on a server thread, so the pages and the API answer.
Item 8: a result is bounded while it is produced (the worker stops reading past the per-result
limit), each worker's address space is capped, and the results the server keeps are bounded in total.
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import requests
from waitress.server import create_server
from werkzeug.security import generate_password_hash

from dashboard import sql_console
from dashboard.sql_console import ConsoleLimits, ConsoleResult, SqlConsole, SqlConsoleError

#: Console worker processes and runaway queries: not in the fast subset.
pytestmark = pytest.mark.slow

#: CPU-bound for hours: it runs until the time limit stops it.
RUNAWAY = "SELECT count(*) FROM range(1000000) a, range(1000000) b"
#: 10,000 rows of 250,000 characters: 2.5 GB if it were all produced.
HUGE_RESULT = "SELECT repeat('x', 250000) AS x FROM range(10000)"
BUSY = "The SQL console is busy with {} queries; try again in a moment."
PASSWORD = "console limits test password"


def wait_until(condition, seconds: float = 30.0) -> bool:
    """Poll ``condition`` (no timing is asserted: this only waits for a state to be reached)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# -- item 7: a bounded pool, refused at once when full -------------------------------------------------
def test_at_most_the_workers_run_and_the_others_are_refused_as_busy(demo_db: Path) -> None:
    console = SqlConsole(demo_db, ConsoleLimits(time_limit=3.0, workers=2))
    outcomes: list[tuple[str, str]] = []
    most_running = 0
    gate = threading.Barrier(4)

    def run() -> None:
        gate.wait()
        try:
            console.run(RUNAWAY)
            outcomes.append(("ok", ""))
        except SqlConsoleError as exc:
            outcomes.append((exc.outcome, str(exc)))

    threads = [threading.Thread(target=run) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            most_running = max(most_running, console.running)
            time.sleep(0.01)
    finally:
        for thread in threads:
            thread.join()
        console.close()
    assert most_running <= 2
    busy = [message for outcome, message in outcomes if outcome == "busy"]
    stopped = [message for outcome, message in outcomes if outcome == "stopped"]
    assert busy == [BUSY.format(2)] * 2
    assert len(stopped) == 2 and all(message.startswith("Stopped: the query ran longer") for message in stopped)
    assert console.started == 2  # no worker beyond the setting was ever started


def test_the_worker_count_is_a_setting() -> None:
    assert ConsoleLimits.from_environment({}).workers == 2
    assert ConsoleLimits.from_environment({"SEGRISK_SQL_WORKERS": "3"}).workers == 3


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


def run_sql_request(sql: str) -> dict:
    return {
        **RUN_SQL,
        "inputs": [{"id": "data-sql-run", "property": "n_clicks", "value": 1}],
        "state": [{"id": "data-sql-text", "property": "value", "value": sql}],
    }


@pytest.fixture
def served_one_worker(demo_db: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The dashboard on 4 server threads with one console worker and a 6 s time limit."""
    from dashboard import auth
    from dashboard.app import create_app

    db = tmp_path / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    sql_console.close_all()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEGRISK_SQL_TIME_LIMIT", "6")
        patch.setenv("SEGRISK_SQL_WORKERS", "1")
        app = create_app(db, users={"ana": auth.User("ana", "analyst", generate_password_hash(PASSWORD))})
        sql_console.console(db)  # reads the limits now, while the settings are patched
    server = create_server(app.server, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}", db
    finally:
        server.close()
        sql_console.close_all()


def signed_in(base: str, user: str) -> requests.Session:
    """A session signed in through the form (with its CSRF field, when the form has one)."""
    session = requests.Session()
    form = session.get(f"{base}/login").text
    found = re.search(r'name="csrf_token" value="([^"]+)"', form)
    fields = {"username": user, "password": PASSWORD, **({"csrf_token": found.group(1)} if found else {})}
    assert session.post(f"{base}/login", data=fields, allow_redirects=False).status_code == 302
    return session


def test_queries_beyond_the_pool_hold_no_server_thread_and_are_audited_busy(
    served_one_worker: tuple[str, Path],
) -> None:
    from warehouse.app_state import AppState, state_path

    base, db = served_one_worker
    analyst = signed_in(base, "ana")
    console = sql_console.console(db)
    runaway: dict[str, requests.Response] = {}
    running = threading.Thread(
        target=lambda: runaway.update(
            answer=analyst.post(f"{base}/_dash-update-component", json=run_sql_request(RUNAWAY))
        )
    )
    running.start()
    try:
        assert wait_until(lambda: console.running == 1)
        # More console queries than the server has threads: before the fix each waited on a server
        # thread for a free worker, and these would not have been answered while the runaway ran.
        answers: list[requests.Response] = []
        callers = [
            threading.Thread(
                target=lambda: answers.append(
                    analyst.post(f"{base}/_dash-update-component", json=run_sql_request("SELECT 1"))
                )
            )
            for _ in range(6)
        ]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        health = requests.get(f"{base}/api/v1/health")
        assert running.is_alive() and console.running == 1  # all answered while the runaway still ran
    finally:
        running.join()
    assert health.status_code == 200
    assert len(answers) == 6
    assert all(answer.status_code == 200 and BUSY.format(1) in answer.text for answer in answers)
    assert "Stopped: the query ran longer" in runaway["answer"].text
    busy = AppState(state_path(db)).audit_entries(user="ana", action="sql_query", limit=10)
    assert sum(entry.outcome == "busy" for entry in busy) == 6
    assert all(BUSY.format(1) in entry.detail for entry in busy if entry.outcome == "busy")


# -- item 8: results bounded while produced, and in total ------------------------------------------------
@pytest.fixture(scope="module")
def console(demo_db: Path) -> Iterator[SqlConsole]:
    opened = SqlConsole(demo_db, ConsoleLimits(time_limit=20.0, workers=1))
    try:
        yield opened
    finally:
        opened.close()


def test_a_huge_result_is_stopped_while_it_is_produced(console: SqlConsole) -> None:
    with pytest.raises(SqlConsoleError) as refused:
        console.run(HUGE_RESULT)
    message = str(refused.value)
    assert message.startswith("Refused: the result passed the console's 64 MB (SEGRISK_SQL_RESULT_MB) after ")
    assert message.endswith("rows; select fewer or narrower columns.")
    # Stopped after a few hundred of the 10,000 rows (before the fix it read 8,192 rows at once).
    rows = int(message.split(" after ")[1].split(" rows")[0].replace(",", ""))
    assert rows < 1_000
    assert refused.value.outcome == "refused"
    assert console.run("SELECT 42 AS answer").rows() == [(42,)]


def test_the_per_result_limit_is_a_setting(demo_db: Path) -> None:
    assert ConsoleLimits.from_environment({"SEGRISK_SQL_RESULT_MB": "2"}).result_bytes == 2 << 20
    small = SqlConsole(demo_db, ConsoleLimits(time_limit=20.0, workers=1, result_mb=1))
    try:
        with pytest.raises(SqlConsoleError, match=r"^Refused: the result passed the console's 1 MB"):
            small.run("SELECT repeat('x', 1000) AS x FROM range(5000)")
        assert small.run("SELECT repeat('x', 100) AS x FROM range(500)").row_count == 500
    finally:
        small.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, which only Linux has")
def test_each_worker_runs_with_its_address_space_capped(demo_db: Path) -> None:
    capped = SqlConsole(demo_db, ConsoleLimits(time_limit=20.0, workers=1, worker_memory="3GB"))
    try:
        capped.run("SELECT 1")
        (worker,) = capped._idle
        limits = Path(f"/proc/{worker.process.pid}/limits").read_text().splitlines()
        (address_space,) = [line for line in limits if line.startswith("Max address space")]
        assert address_space.split()[3:5] == [str(3 * 10**9)] * 2
    finally:
        capped.close()
    with pytest.raises(SqlConsoleError, match=r"^SEGRISK_SQL_WORKER_MEMORY must be a size such as 3GB"):
        ConsoleLimits.from_environment({"SEGRISK_SQL_WORKER_MEMORY": "lots"})


def result_of(megabytes: int) -> ConsoleResult:
    table = pa.table({"x": pa.array([b"x" * (1 << 20)] * megabytes, type=pa.binary())})
    return ConsoleResult(table, truncated=False, seconds=0.0, row_cap=10_000)


def test_the_kept_results_are_bounded_in_total_the_oldest_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql_console, "_RESULTS", type(sql_console._RESULTS)())
    monkeypatch.setattr(sql_console, "_RESULTS_BYTES", 0)
    budget = 5 << 20
    tokens = [sql_console.remember("ana", result_of(2), budget) for _ in range(12)]
    assert sql_console.kept_bytes() <= budget
    assert sql_console.recall("ana", tokens[-1]) is not None
    assert sql_console.recall("ana", tokens[-2]) is not None
    assert all(sql_console.recall("ana", token) is None for token in tokens[:-2])
    assert ConsoleLimits.from_environment({}).results_mb == 256
    # The per-result limit never exceeds the total: the newest result always fits.
    assert ConsoleLimits(result_mb=64, results_mb=16).result_bytes == 16 << 20

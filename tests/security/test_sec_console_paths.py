"""Issue 13 (low): the SQL console never shows the server's file paths.

Two layers (``dashboard/sql_console.py``): the functions and pragmas that name server files
(``duckdb_databases``, ``PRAGMA database_list``, ``duckdb_settings``, ``current_setting``, ...) are
refused by name, and the server's directories (the warehouse's, the data folder of each build, the
home directory) are replaced by ``<server path>`` in every value, column name and error line, which
covers the paths the warehouse itself stores (``meta_builds.data_dir``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard import sql_console
from dashboard.sql_console import ConsoleLimits, SqlConsole, SqlConsoleError
from warehouse.db import read_only

#: Each query below showed a server path before the fix.
REFUSED = {
    "duckdb_databases": "SELECT * FROM duckdb_databases()",
    "qualified and quoted": 'SELECT path FROM main."DuckDB_Databases"()',
    "PRAGMA database_list": "PRAGMA database_list",
    "pragma_database_list as a table": "SELECT * FROM pragma_database_list",
    "CALL pragma_database_list": "CALL pragma_database_list()",
    "duckdb_settings": "SELECT name, value FROM duckdb_settings()",
    "current_setting of a directory": "SELECT current_setting('secret_directory')",
    "current_setting of the allowed paths": "SELECT current_setting('allowed_paths')",
    "query() builds a statement from text": "SELECT * FROM query('SELECT path FROM duckdb_' || 'databases()')",
    "duckdb_extensions": "SELECT * FROM duckdb_extensions()",
    "SUMMARIZE the databases": "SUMMARIZE SELECT * FROM duckdb_databases()",
}
#: These run, and their paths come back masked.
MASKED = {
    "the build's data folder": "SELECT data_dir FROM meta_builds",
    "the whole build record": "SELECT * FROM meta_builds",
    "nested in a list and a struct": "SELECT [data_dir] AS l, {'d': data_dir} AS s, map([data_dir], [1]) AS m "
    "FROM meta_builds",
    "inside a longer text": "SELECT 'read from ' || data_dir || '/customers.parquet' AS note FROM meta_builds",
    "an error quoting the home directory": f"SELECT * FROM read_csv('{Path.home()}/segrisk-x.csv')",
}


@pytest.fixture(scope="module")
def console(demo_db: Path) -> Iterator[SqlConsole]:
    opened = SqlConsole(demo_db, ConsoleLimits(time_limit=20.0, workers=1))
    try:
        yield opened
    finally:
        opened.close()


def server_paths(db: Path) -> list[str]:
    with read_only(db) as con:
        data_dirs = [row[0] for row in con.execute("SELECT DISTINCT data_dir FROM meta_builds").fetchall()]
    assert data_dirs and all(Path(each).is_absolute() for each in data_dirs)
    return [str(db.parent), str(db.resolve().parent), str(Path.home()), *data_dirs]


def answer_text(console: SqlConsole, sql: str) -> tuple[str, SqlConsoleError | None]:
    """Everything the analyst would see: the rows, column names and CSV, or the error line."""
    try:
        result = console.run(sql)
    except SqlConsoleError as exc:
        return str(exc), exc
    return f"{result.columns} {result.rows()} {sql_console.result_csv(result)}", None


@pytest.mark.parametrize("name", REFUSED)
def test_functions_that_name_server_files_are_refused(console: SqlConsole, demo_db: Path, name: str) -> None:
    text, error = answer_text(console, REFUSED[name])
    assert error is not None and error.outcome == "refused", text
    assert text.startswith("Refused: ") and "shows the server's files and settings" in text
    assert not any(path in text for path in server_paths(demo_db))


@pytest.mark.parametrize("name", MASKED)
def test_paths_in_results_and_errors_are_masked(console: SqlConsole, demo_db: Path, name: str) -> None:
    text, _ = answer_text(console, MASKED[name])
    assert sql_console.PATH_PLACEHOLDER in text, text
    assert not any(path in text for path in server_paths(demo_db)), text


def test_ordinary_names_and_text_still_run(console: SqlConsole) -> None:
    # A column called query, and a refused name inside a string, are not calls.
    assert console.run("SELECT 1 AS query, 'duckdb_databases' AS name").rows() == [(1, "duckdb_databases")]
    assert console.run("SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'customers'").rows() == [(1,)]


def test_the_data_page_names_the_data_folder_without_its_path(demo_db: Path, tmp_path: Path) -> None:
    from conftest import dashboard_page

    from dashboard.data import reader

    db = tmp_path / "demo.duckdb"  # the app keeps its store beside the warehouse: a copy of its own
    shutil.copyfile(demo_db, db)
    data_catalog = dashboard_page(db, "data_catalog")
    shown = str(data_catalog.build_section(reader()))
    data_dir = server_paths(demo_db)[-1]
    assert f"read from {Path(data_dir).name}" in shown
    assert data_dir not in shown

"""ml_latest_runs: one row per model kind, the run every "latest run" question answers with."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from dashboard.data import WarehouseReader
from models.warehouse_io import latest_run_id
from warehouse.build import build_warehouse
from warehouse.dictionary import missing_comments
from warehouse.spec import load_spec

#: The query the dashboard, the API and the models each wrote before the view (22 copies).
OLD_LATEST = "SELECT run_id FROM ml_model_runs WHERE model_kind = ? ORDER BY finished_at DESC LIMIT 1"
KINDS = {"segments", "rfm", "risk", "warnings", "cross_sell", "statistics"}


def _latest(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT model_kind, run_id FROM ml_latest_runs").fetchall())


def _old(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    kinds = [k for (k,) in con.execute("SELECT DISTINCT model_kind FROM ml_model_runs").fetchall()]
    return {kind: con.execute(OLD_LATEST, [kind]).fetchall()[0][0] for kind in kinds}


def _view_comments(con: duckdb.DuckDBPyConnection) -> tuple[str, dict[str, str]]:
    grain = con.execute("SELECT comment FROM duckdb_views() WHERE view_name = 'ml_latest_runs'").fetchall()[0][0]
    columns = con.execute("SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'ml_latest_runs'")
    return grain, dict(columns.fetchall())


def test_one_row_per_kind_with_the_old_querys_run(full_db: Path) -> None:
    with duckdb.connect(str(full_db), read_only=True) as con:
        latest = _latest(con)
        assert set(latest) == KINDS
        assert con.execute("SELECT count(*) FROM ml_latest_runs").fetchall()[0][0] == len(KINDS)
        assert latest == _old(con)
        record = con.execute("SELECT * FROM ml_model_runs WHERE run_id = ?", [latest["risk"]])
        expected = dict(zip([d[0] for d in record.description], record.fetchall()[0], strict=True))
        view_row = con.execute("SELECT * FROM ml_latest_runs WHERE model_kind = 'risk'")
        assert dict(zip([d[0] for d in view_row.description], view_row.fetchall()[0], strict=True)) == expected
        for kind, run_id in latest.items():
            assert latest_run_id(con, kind) == run_id
    reader = WarehouseReader(full_db)
    try:
        for kind, run_id in latest.items():
            assert reader.query("latest_run", kind=kind).get_column("run_id").to_list() == [run_id]
        assert reader.query("latest_run", kind="no_such_kind").height == 0
    finally:
        reader.close()


def test_the_view_and_every_column_are_commented(full_db: Path) -> None:
    with duckdb.connect(str(full_db), read_only=True) as con:
        grain, columns = _view_comments(con)
        assert grain.startswith("View: one row per model kind")
        assert set(columns) >= {"model_kind", "run_id", "started_at", "finished_at", "parameters", "metrics"}
        assert all(columns.values()), columns
        assert missing_comments(con) == []


def test_ties_go_to_the_greatest_run_id_as_the_models_page_lists_them(full_db_copy: Path) -> None:
    with duckdb.connect(str(full_db_copy)) as con:
        finished = datetime(2099, 1, 1)
        for run_id in ("zz-tie-a", "zz-tie-b"):
            con.execute(
                "INSERT INTO ml_model_runs (run_id, model_kind, started_at, finished_at) VALUES (?, 'risk', ?, ?)",
                [run_id, finished, finished],
            )
        con.execute(
            "INSERT INTO ml_model_runs (run_id, model_kind, started_at, finished_at) VALUES ('zz-unfinished', 'risk', ?, NULL)",
            [finished],
        )
        assert _latest(con)["risk"] == "zz-tie-b"
        models_page = con.execute(
            "SELECT run_id FROM ml_model_runs WHERE model_kind = 'risk' ORDER BY finished_at DESC, run_id DESC LIMIT 1"
        ).fetchall()
        assert models_page == [("zz-tie-b",)]
        assert con.execute(OLD_LATEST, ["risk"]).fetchall()[0][0] in {"zz-tie-a", "zz-tie-b"}  # the old one: either


@pytest.mark.parametrize("had_view", [True, False], ids=["carried", "warehouse-from-before-the-view"])
def test_a_rebuild_that_keeps_the_runs_has_the_view(full_db_copy: Path, demo_data: Path, had_view: bool) -> None:
    with duckdb.connect(str(full_db_copy)) as con:
        before = _latest(con)
        if not had_view:
            con.execute("DROP VIEW ml_latest_runs")
    spec, text = load_spec("demo")
    build_warehouse(spec, text, demo_data, full_db_copy)
    with duckdb.connect(str(full_db_copy), read_only=True) as con:
        assert _latest(con) == before == _old(con)
        grain, columns = _view_comments(con)
        assert grain and all(columns.values())
        assert missing_comments(con) == []
        scored = con.execute("SELECT DISTINCT run_id FROM ml_latest_risk_scores").fetchall()
        assert scored == [(before["risk"],)]


def test_a_warehouse_saved_before_the_view_reads_unchanged(full_db: Path, tmp_path: Path) -> None:
    """A warehouse written before ml_latest_runs existed (no view, only ml_model_runs) is read by the
    dashboard, the models and the console through a temporary view, until its next build or run."""
    import shutil

    from dashboard.sql_console import SqlConsole
    from warehouse.db import read_only

    db = tmp_path / "old.duckdb"
    shutil.copyfile(full_db, db)
    with duckdb.connect(str(db)) as con:
        expected = _latest(con)
        con.execute("DROP VIEW ml_latest_runs")
    with read_only(db) as con:
        assert _latest(con) == expected
        assert latest_run_id(con, "risk") == expected["risk"]
    data = WarehouseReader(db)
    assert data.query("latest_run", kind="segments").item(0, "run_id") == expected["segments"]
    console = SqlConsole(db)
    try:
        result = console.run("SELECT count(*) AS kinds FROM ml_latest_runs")
        assert result.rows()[0][0] == len(expected)
    finally:
        console.close()
    with duckdb.connect(str(db), read_only=True) as con:  # the file itself was not changed
        assert not con.execute("SELECT * FROM duckdb_views() WHERE view_name = 'ml_latest_runs'").fetchall()

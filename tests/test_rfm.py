"""RFM: scores, named segments, clusters, the run record and the atomic write-back."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import SHARED_DATA, Builder, file_digest, needs_shared_data

from dashboard.cli import main
from models import rfm
from models.runs import ModelError, write_back
from models.train import train_rfm
from warehouse.dictionary import missing_comments


@pytest.mark.parametrize(
    ("r", "f", "segment"),
    [
        (5, 5, "Champions"),
        (4, 4, "Loyal"),
        (5, 2, "Potential Loyalist"),
        (5, 1, "New"),
        (4, 1, "Promising"),
        (3, 3, "Need Attention"),
        (3, 1, "About to Sleep"),
        (1, 5, "Can't Lose Them"),
        (2, 3, "At Risk"),
        (1, 1, "Lost"),
        (2, 1, "Hibernating"),
        (1, 2, "Hibernating"),
    ],
)
def test_segment_map(r: int, f: int, segment: str) -> None:
    assert rfm.segment_of(r, f) == segment


def test_every_score_cell_has_a_segment() -> None:
    cells = {rfm.segment_of(r, f) for r in range(1, 6) for f in range(1, 6)}
    assert cells == set(rfm.SEGMENTS)


def test_quintiles_split_evenly_and_recency_is_reversed() -> None:
    frame = pl.DataFrame(
        {
            "customer_id": range(1, 101),
            "rfm_recency_days": range(100, 0, -1),
            "rfm_frequency": range(1, 101),
            "rfm_monetary": [float(i) for i in range(1, 101)],
        }
    )
    scored = rfm.score_rfm(frame.lazy()).collect()
    assert scored.group_by("f_score").len().get_column("len").to_list() == [20] * 5
    newest = scored.filter(pl.col("rfm_recency_days") == 1).row(0, named=True)
    assert (newest["r_score"], newest["f_score"], newest["m_score"], newest["segment"]) == (5, 5, 5, "Champions")
    oldest = scored.filter(pl.col("rfm_recency_days") == 100).row(0, named=True)
    assert (oldest["rfm_cell"], oldest["segment"]) == ("111", "Lost")


@pytest.fixture
def retail_db(build: Builder) -> Path:
    return build("online-retail").db_path


def test_train_rfm_writes_run_and_rows(retail_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "rfm", "--db", str(retail_db), "--seed", "3"]) == 0
    assert "Trained rfm" in capsys.readouterr().out
    with duckdb.connect(str(retail_db), read_only=True) as con:
        (runs,) = con.execute("SELECT count(*) FROM ml_model_runs WHERE model_kind = 'rfm'").fetchone()
        (customers,) = con.execute("SELECT count(*) FROM customers WHERE rfm_frequency > 0").fetchone()
        rows = con.execute(
            "SELECT count(*), count(DISTINCT run_id), count(DISTINCT cluster_name) FROM ml_rfm"
        ).fetchone()
        assert missing_comments(con) == []
        names = {n for (n,) in con.execute("SELECT cluster_name FROM ml_rfm_clusters").fetchall()}
    assert runs == 1
    assert rows == (customers, 1, 4)
    assert names == {rfm.HIGH_VALUE, rfm.POTENTIAL, rfm.OCCASIONAL, rfm.CHURN_RISK}


def test_same_seed_same_assignments_and_runs_are_kept(retail_db: Path) -> None:
    first = train_rfm(retail_db, seed=5)
    second = train_rfm(retail_db, seed=5)
    with duckdb.connect(str(retail_db), read_only=True) as con:
        a = con.execute(
            "SELECT customer_id, segment, cluster_name FROM ml_rfm WHERE run_id = ? ORDER BY 1", [first.run_id]
        ).fetchall()
        b = con.execute(
            "SELECT customer_id, segment, cluster_name FROM ml_rfm WHERE run_id = ? ORDER BY 1", [second.run_id]
        ).fetchall()
        (runs,) = con.execute("SELECT count(*) FROM ml_model_runs").fetchone()
    assert a == b and len(a) > 0
    assert runs == 2
    assert first.input_fingerprint == second.input_fingerprint


def test_failed_write_back_leaves_the_warehouse_unchanged(retail_db: Path) -> None:
    before = file_digest(retail_db)

    def broken(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE half_written AS SELECT 1 AS x")
        con.execute("SELECT * FROM no_such_table")

    with pytest.raises(ModelError, match="the warehouse is unchanged"):
        write_back(retail_db, broken)
    assert file_digest(retail_db) == before
    assert not list(retail_db.parent.glob(".*training*"))


def test_an_interrupt_while_copying_leaves_no_copy_behind(retail_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy was taken before the guarded block: Ctrl-C or a full disk during it left
    ``.NAME.training-PID`` beside the warehouse."""
    import shutil

    from models import runs

    real_copy = shutil.copyfile

    def copy_then_interrupt(source: Path, target: Path) -> None:
        real_copy(source, target)
        raise KeyboardInterrupt

    monkeypatch.setattr(runs.shutil, "copyfile", copy_then_interrupt)
    before = file_digest(retail_db)
    with pytest.raises(KeyboardInterrupt):
        write_back(retail_db, lambda con: None)
    assert file_digest(retail_db) == before
    assert not list(retail_db.parent.glob(".*training*"))


def test_rfm_refuses_data_without_transactions(build: Builder) -> None:
    db = build("german-credit").db_path
    with pytest.raises(ModelError, match="RFM cannot run on .*needs transactions; the spec has none"):
        train_rfm(db)


def test_assign_rejects_nonsense() -> None:
    clusters = rfm.RfmClusters(
        log_mean=pl.Series([1.0, 1.0, 1.0]).to_numpy(),
        log_scale=pl.Series([1.0, 1.0, 1.0]).to_numpy(),
        scaled_centroids=pl.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [0.0] * 4, "c": [0.0] * 4}).to_numpy(),
        names=(rfm.CHURN_RISK, rfm.HIGH_VALUE, rfm.POTENTIAL, rfm.OCCASIONAL),
    )
    with pytest.raises(ValueError, match="non-negative"):
        clusters.assign(-1, 2, 3)
    with pytest.raises(ValueError, match="non-negative"):
        clusters.assign(float("nan"), 2, 3)


@needs_shared_data
def test_online_retail_triples_land_where_a_marketer_expects(build: Builder) -> None:
    db = build("online-retail", SHARED_DATA).db_path
    run = train_rfm(db, seed=42)
    with duckdb.connect(str(db), read_only=True) as con:
        clusters = rfm.load_clusters(con)
        (customers,) = con.execute("SELECT count(*) FROM ml_rfm WHERE run_id = ?", [run.run_id]).fetchone()
    assert customers == 4_338
    assert clusters.assign(5, 15, 25_000)[1] == rfm.HIGH_VALUE
    assert clusters.assign(15, 2, 800)[1] == rfm.POTENTIAL
    assert clusters.assign(60, 3, 3_000)[1] == rfm.OCCASIONAL
    assert clusters.assign(250, 1, 400)[1] == rfm.CHURN_RISK


def test_rebuild_keeps_model_history_only_for_the_same_spec(retail_db: Path, build: Builder) -> None:
    from conftest import FIXTURES

    train_rfm(retail_db, seed=1)
    build("online-retail", FIXTURES, retail_db)
    with duckdb.connect(str(retail_db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ml_model_runs").fetchone() == (1,)
        assert missing_comments(con) == []
    build("german-credit", FIXTURES, retail_db)  # another dataset: its history would mean nothing
    with duckdb.connect(str(retail_db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'ml_%'").fetchone() == (0,)


def test_as_of_date_moves_recency(retail_db: Path) -> None:
    from datetime import date, timedelta

    with duckdb.connect(str(retail_db), read_only=True) as con:
        (last,) = con.execute("SELECT max(last_txn_at)::DATE FROM customers").fetchone()
    default = train_rfm(retail_db, seed=1)
    later = train_rfm(retail_db, seed=1, as_of=last + timedelta(days=31))
    with duckdb.connect(str(retail_db), read_only=True) as con:
        shift = con.execute(
            "SELECT DISTINCT b.rfm_recency_days - a.rfm_recency_days FROM ml_rfm a JOIN ml_rfm b USING (customer_id) "
            "WHERE a.run_id = ? AND b.run_id = ?",
            [default.run_id, later.run_id],
        ).fetchall()
    assert shift == [(30,)]
    with pytest.raises(ModelError, match="--as-of must be after the last transaction"):
        train_rfm(retail_db, as_of=date(2000, 1, 1))

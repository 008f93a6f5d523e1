"""K-Means personas: recover the synthetic bank's latent personas, stay stable, keep people's labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import SHARED_DATA, Builder, needs_shared_data
from scipy.stats import f_oneway
from sklearn.metrics import adjusted_rand_score

from dashboard.cli import main
from models import personas
from models.runs import ModelError
from models.train import set_persona_label, train_segments
from warehouse.dictionary import missing_comments

LATENT_PERSONAS = 7


@pytest.fixture(scope="module")
def trained(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo warehouse with one segments run (seed 42)."""
    path = tmp_path_factory.mktemp("segments") / "demo.duckdb"
    shutil.copyfile(demo_db, path)
    train_segments(path, seed=42)
    return path


def _assignments(db: Path, run_id: str | None = None) -> pl.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        if run_id is None:
            return con.sql(
                "SELECT customer_id, segment_key, persona_name FROM ml_latest_segments ORDER BY customer_id"
            ).pl()
        return con.sql(
            "SELECT customer_id, segment_key, persona_name FROM ml_segments WHERE run_id = ? ORDER BY customer_id",
            params=[run_id],
        ).pl()


def test_recovers_the_latent_personas(trained: Path, demo_data: Path) -> None:
    latent = pl.read_parquet(demo_data / "latent_personas.parquet").sort("customer_id")
    found = _assignments(trained)
    with duckdb.connect(str(trained), read_only=True) as con:
        (k,) = con.execute("SELECT k FROM ml_k_selection WHERE is_chosen").fetchone()
        ks = con.execute("SELECT count(*), count(*) FILTER (is_elbow) FROM ml_k_selection").fetchone()
    assert abs(k - LATENT_PERSONAS) <= 1
    assert ks == (7, 1)
    ari = adjusted_rand_score(latent.get_column("persona"), found.get_column("segment_key"))
    assert ari >= 0.8, ari


def _named_archetypes_qualify(db: Path) -> None:
    """Every segment given an archetype shows all of that archetype's defining features."""
    by_name = {a.name: a for a in personas.ARCHETYPES}
    with duckdb.connect(str(db), read_only=True) as con:
        named = con.execute(
            "SELECT run_id, segment_id, archetype FROM ml_latest_segment_summary WHERE archetype IS NOT NULL"
        ).fetchall()
        for run_id, segment_id, archetype in named:
            z = dict(
                con.execute(
                    "SELECT feature, z_score FROM ml_segment_profiles WHERE run_id = ? AND segment_id = ? AND feature <> 'is_defaulted'",
                    [run_id, segment_id],
                ).fetchall()
            )
            assert personas.qualifies(by_name[archetype], z), (archetype, z)


def test_archetypes_are_recognised(trained: Path) -> None:
    with duckdb.connect(str(trained), read_only=True) as con:
        archetypes = {a for (a,) in con.execute("SELECT archetype FROM ml_latest_segment_summary").fetchall()}
        flagged = con.execute("SELECT archetype FROM ml_latest_segment_summary WHERE manual_underwriting").fetchall()
    # The synthetic bank's seven latent personas each meet their archetype's defining features.
    assert {
        "Conservative Seniors",
        "Mainstream Borrowers",
        "PayLater Users",
        "High-Stakes Borrowers",
        "Affluent & Investment Ready",
        "Credit Active Middle",
        "Mass Retail",
    } <= archetypes
    assert flagged == [("High-Stakes Borrowers",)]
    _named_archetypes_qualify(trained)


def test_tables_are_filled_and_documented(trained: Path) -> None:
    with duckdb.connect(str(trained), read_only=True) as con:
        counts = dict(
            (table, con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in (
                "ml_segments",
                "ml_segment_summary",
                "ml_segment_profiles",
                "ml_k_selection",
                "ml_segment_tsne",
            )
        )
        (customers,) = con.execute("SELECT count(*) FROM customers").fetchone()
        (run_kind, metrics) = con.execute("SELECT model_kind, metrics FROM ml_model_runs").fetchone()
        assert missing_comments(con) == []
    assert counts["ml_segments"] == customers
    assert counts["ml_segment_tsne"] > 0 and counts["ml_segment_profiles"] > counts["ml_segment_summary"]
    assert run_kind == "segments"
    assert '"stability_ari_seeds"' in metrics and '"dbscan_noise_share"' in metrics


def test_same_seed_same_assignments_and_a_rename_survives(trained: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(trained, db)
    before = _assignments(db)
    set_persona_label(db, "S2", name="Our Car Buyers")
    set_persona_label(db, "S2", strategy="Call them about green car loans.")
    second = train_segments(db, seed=42)
    again = _assignments(db, second.run_id)
    assert again.select("customer_id", "segment_key").equals(before.select("customer_id", "segment_key"))
    latest = _assignments(db)
    renamed = latest.filter(pl.col("segment_key") == "S2").get_column("persona_name").unique().to_list()
    assert renamed == ["Our Car Buyers"]
    with duckdb.connect(str(db), read_only=True) as con:
        strategy = con.execute("SELECT strategy FROM ml_latest_segment_summary WHERE segment_key = 'S2'").fetchone()
        moved = con.execute(
            "SELECT coalesce(sum(customers) FILTER (from_segment_key <> to_segment_key), 0), sum(customers) FROM ml_segment_migration"
        ).fetchone()
    assert strategy == ("Call them about green car loans.",)
    assert moved == (0, before.height)


def test_changed_data_keeps_keys_where_segments_persist(
    trained: Path, tmp_path: Path, build: Builder, demo_data: Path
) -> None:
    db = tmp_path / "changed.duckdb"
    shutil.copyfile(trained, db)
    first = _assignments(db)
    # Rebuild from 90% of the customers, then retrain on top of the previous run.
    changed = tmp_path / "data"
    shutil.copytree(demo_data, changed)
    kept = pl.read_parquet(changed / "customers.parquet").filter(pl.col("customer_id") % 10 != 0)
    kept.write_parquet(changed / "customers.parquet")
    for name, key in (
        ("loan_applications", "customer_id"),
        ("transactions", "customer_id"),
        ("monthly_snapshots", "customer_id"),
    ):
        frame = pl.read_parquet(changed / f"{name}.parquet").filter(pl.col(key) % 10 != 0)
        frame.write_parquet(changed / f"{name}.parquet")
    set_persona_label(db, "S3", name="Homeowners")
    build("demo", changed, db)  # the rebuild keeps the model history and the labels
    train_segments(db, seed=42)
    second = _assignments(db)
    joined = first.join(second, on="customer_id", suffix="_new")
    same_key = (joined.get_column("segment_key") == joined.get_column("segment_key_new")).mean()
    assert same_key is not None and same_key > 0.9
    with duckdb.connect(str(db), read_only=True) as con:
        (moved_total,) = con.execute(
            "SELECT sum(customers) FROM ml_segment_migration WHERE run_id = (SELECT max(run_id) FROM ml_segment_migration)"
        ).fetchone()
    assert moved_total == joined.height
    renamed = second.filter(pl.col("segment_key") == "S3").get_column("persona_name").unique().to_list()
    assert renamed == ["Homeowners"]


def test_german_credit_four_personas_differ(build: Builder) -> None:
    db = build("german-credit").db_path
    train_segments(db, seed=1, k=4)
    with duckdb.connect(str(db), read_only=True) as con:
        frame = con.sql(
            "SELECT c.age, c.loan_amount, c.duration_months, s.segment_key FROM customers c JOIN ml_latest_segments s USING (customer_id)"
        ).pl()
        names = [n for (n,) in con.execute("SELECT persona_name FROM ml_latest_segment_summary").fetchall()]
    assert frame.get_column("segment_key").n_unique() == 4
    assert len(set(names)) == 4
    # Only the clearly older applicants with small loans are Conservative Seniors; the rest, whom no
    # archetype fits on German Credit's few columns, are named from their distinctive features.
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT s.archetype, p.z_score FROM ml_latest_segment_summary s JOIN ml_segment_profiles p "
            "USING (run_id, segment_id) WHERE p.feature = 'age'"
        ).fetchall()
    assert [archetype for archetype, _ in rows if archetype is not None] == ["Conservative Seniors"]
    assert all(z > 0.75 for archetype, z in rows if archetype == "Conservative Seniors")
    _named_archetypes_qualify(db)
    for feature in ("age", "loan_amount", "duration_months"):
        groups = [g.get_column(feature).to_numpy() for _, g in frame.group_by("segment_key")]
        assert f_oneway(*groups).pvalue < 0.001, feature


def test_personas_cli(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cli.duckdb"
    shutil.copyfile(trained, db)
    assert main(["personas", "rename", "S1", "Everyday Bankers", "--db", str(db)]) == 0
    assert "S1   Everyday Bankers" in capsys.readouterr().out
    assert main(["personas", "rename", "S99", "Nobody", "--db", str(db)]) == 2
    assert "error: no segment 'S99' in this warehouse" in capsys.readouterr().err
    # The command line keeps the dashboard store's limits: a huge or marked-up name is not saved.
    assert main(["personas", "rename", "S1", "x" * 100_000, "--db", str(db)]) == 2
    assert "Not saved: the persona's name has 100,000 characters; at most 80 are allowed" in capsys.readouterr().err
    assert main(["personas", "rename", "S1", "<a href='x'>Bankers</a>\x07", "--db", str(db)]) == 0
    assert "S1   a href='x'Bankers/a" in capsys.readouterr().out


def test_refuses_bad_k(demo_db: Path) -> None:
    with pytest.raises(ModelError, match="--k must be between 2 and 12"):
        train_segments(demo_db, k=40)


def test_description_and_archetype_rules() -> None:
    z = {
        "age": 1.8,
        "savings_balance": 1.2,
        "monthly_emi": -1.1,
        "app_logins_per_month": -0.9,
        "term_deposit_balance": 1.5,
    }
    assert personas.describe(z) == "Older, holds term deposits, high savings"
    matched = personas.match_archetypes({0: z, 1: {"has_bnpl": 2.0, "age": -1.2, "app_logins_per_month": 1.5}})
    assert matched[0].name == "Conservative Seniors" and matched[1].name == "PayLater Users"
    assert personas.match_archetypes({0: {"age": 0.1, "annual_income": -0.1}}) == {}


@needs_shared_data
@pytest.mark.parametrize(
    ("spec", "expects_segments", "expects_rfm"),
    [("german-credit", True, False), ("taiwan-default", True, False), ("online-retail", False, True)],
)
def test_train_all_on_the_public_datasets(
    build: Builder, spec: str, expects_segments: bool, expects_rfm: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    db = build(spec, SHARED_DATA).db_path
    assert main(["train", "all", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    with duckdb.connect(str(db), read_only=True) as con:
        kinds = {kind for (kind,) in con.execute("SELECT model_kind FROM ml_model_runs").fetchall()}
        (customers,) = con.execute("SELECT count(*) FROM customers").fetchone()
        if expects_segments:
            (assigned,) = con.execute("SELECT count(*) FROM ml_latest_segments").fetchone()
            assert assigned == customers
        assert missing_comments(con) == []
    assert kinds & {"segments", "rfm"} == ({"segments"} if expects_segments else set()) | (
        {"rfm"} if expects_rfm else set()
    )
    # Risk, warnings and statistics run wherever there is a default outcome (not in Online Retail).
    assert ({"risk", "warnings"} <= kinds) == (spec != "online-retail")
    assert "statistics" in kinds
    assert ("Skipped segments" in out) != expects_segments

"""The dashboard's data layer: read-only reader that follows a swapped file, and the app-state store."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import duckdb
import polars as pl
import pytest

from dashboard.data import QUERIES, WarehouseReader
from models.train import train_risk, train_warnings
from warehouse.app_state import AppState, state_path
from warehouse.errors import WarehouseError


@pytest.fixture(scope="module")
def trained(risk_db: Path) -> Path:
    return risk_db


def _copy(trained: Path, tmp_path: Path) -> Path:
    db = tmp_path / "demo.duckdb"
    shutil.copyfile(trained, db)
    return db


def test_values_are_bound_never_formatted(trained: Path) -> None:
    reader = WarehouseReader(trained)
    first = reader.query("customer", customer_id=1)
    assert first.height == 1 and first.item(0, "customer_id") == 1
    # A value is a value: text that looks like SQL is not a customer number, and never runs.
    customers = reader.query("customers_count").item()
    for attack in ("1; DROP TABLE customers", "1 OR 1=1"):
        with pytest.raises(WarehouseError, match="Could not convert string"):
            reader.query("customer", customer_id=attack)
    assert reader.query("customers_count").item() == customers > 0
    assert reader.has("ml_latest_risk_scores") and not reader.has("x' OR '1'='1")
    assert all("{" not in sql for sql in QUERIES.values())  # no str.format placeholders anywhere


def test_reader_is_read_only(trained: Path) -> None:
    reader = WarehouseReader(trained)
    cursor, _stamp = reader._cursor()
    try:
        with pytest.raises(duckdb.Error):
            cursor.execute("CREATE TABLE hacked AS SELECT 1")
    finally:
        reader._release(cursor)


def test_a_retrain_is_picked_up_without_restart(trained: Path, tmp_path: Path) -> None:
    db = _copy(trained, tmp_path)
    reader = WarehouseReader(db)
    before = reader.query("latest_run", kind="risk").item(0, "run_id")
    errors: list[BaseException] = []
    stop = threading.Event()

    def keep_reading() -> None:
        while not stop.is_set():
            try:
                reader.query("customers_count")
            except BaseException as exc:  # noqa: BLE001 - the test collects whatever a reader would see
                errors.append(exc)

    worker = threading.Thread(target=keep_reading)
    worker.start()
    try:
        run = train_risk(db, seed=1)
    finally:
        stop.set()
        worker.join()
    assert errors == []
    assert reader.query("latest_run", kind="risk").item(0, "run_id") == run.run_id != before
    assert reader.reopened >= 1


def test_answers_are_cached_per_file_and_forgotten_when_it_is_swapped(trained: Path, tmp_path: Path) -> None:
    db = _copy(trained, tmp_path)
    reader = WarehouseReader(db, cache_mb=16)
    first = reader.query("customer", customer_id=2)
    again = reader.query("customer", customer_id=2)
    other = reader.query("customer", customer_id=3)
    assert again.equals(first) and not other.equals(first)
    assert (reader.cache.hits, reader.cache.misses) == (1, 2)
    again.drop_in_place("customer_id")  # a caller changing its answer does not change the cache
    assert reader.query("customer", customer_id=2).equals(first)
    before = reader.query("latest_run", kind="risk").item(0, "run_id")
    run = train_risk(db, seed=1)  # swaps in a new file
    assert reader.query("latest_run", kind="risk").item(0, "run_id") == run.run_id != before
    uncached = WarehouseReader(db, cache_mb=0)
    assert uncached.cache is None and uncached.query("customer", customer_id=2).height == 1


def test_missing_warehouse_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match=r"^No warehouse at .*segrisk build"):
        WarehouseReader(tmp_path / "absent.duckdb").query("customers_count")


def test_app_state_edits_reach_the_warehouse_at_the_next_run(trained: Path, tmp_path: Path) -> None:
    db = _copy(trained, tmp_path)
    store = AppState(state_path(db))
    assert state_path(db).name == "demo.state.sqlite"
    store.set_persona_label("S2", user="alice", name="Car Buyers")
    store.set_persona_label("S2", user="bob", strategy="Green car loans in the app.")
    with duckdb.connect(str(db), read_only=True) as con:
        alert_id = con.execute("SELECT alert_id FROM ml_latest_alerts ORDER BY alert_id LIMIT 1").fetchone()[0]
    store.acknowledge(alert_id, user="alice", note="Called the customer.")
    labels = store.persona_labels()
    assert [(x.segment_key, x.persona_name, x.strategy, x.updated_by) for x in labels] == [
        ("S2", "Car Buyers", "Green car loans in the app.", "bob")
    ]
    assert store.acknowledged_ids() == {alert_id}
    with pytest.raises(ValueError, match="cannot be empty"):
        store.set_persona_label("S2", user="alice", name="  ")
    train_warnings(db)  # any run copies the store in
    with duckdb.connect(str(db), read_only=True) as con:
        summary = con.sql("SELECT persona_name, strategy FROM ml_latest_segment_summary WHERE segment_key = 'S2'").pl()
        acknowledged = con.sql("SELECT alert_id FROM ml_latest_alerts WHERE is_acknowledged").pl()
        notes = con.sql("SELECT acknowledged_by, note FROM ml_alert_acknowledgements").pl()
    assert summary.rows() == [("Car Buyers", "Green car loans in the app.")]
    assert acknowledged.get_column("alert_id").to_list() == [alert_id]
    assert notes.rows() == [("alice", "Called the customer.")]
    train_warnings(db)  # copying again adds nothing twice
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ml_alert_acknowledgements").fetchone()[0] == 1


def test_store_is_safe_for_several_writers(tmp_path: Path) -> None:
    store = AppState(tmp_path / "s.state.sqlite")

    def acknowledge_many(user: str) -> None:
        for i in range(50):
            AppState(store.path).acknowledge(f"rule:{i}:2026-10-01", user=user)

    threads = [threading.Thread(target=acknowledge_many, args=(u,)) for u in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    acks = pl.DataFrame([a.__dict__ for a in store.acknowledgements()])
    assert acks.height == 150
    assert acks.group_by("acknowledged_by").len().get_column("len").to_list() == [50, 50, 50]


@pytest.mark.parametrize(
    ("mart", "source"),
    [
        ("mart_alerts", "ml_latest_alerts"),
        ("mart_offers", "ml_recommendations WHERE run_id = (SELECT max(run_id) FROM ml_recommendations)"),
        ("mart_rfm", "ml_rfm WHERE run_id = (SELECT max(run_id) FROM ml_rfm)"),
    ],
)
def test_fact_marts_hold_the_latest_rows_with_the_profiles_dimensions(full_db: Path, mart: str, source: str) -> None:
    """Each fact mart has the latest run's rows of its model table, each with its customer's filter
    dimensions exactly as the profile has them, and every column commented."""
    from warehouse.marts import FILTER_DIMENSIONS

    latest = f"(SELECT * FROM {mart} WHERE in_latest_run)" if mart == "mart_alerts" else mart
    with duckdb.connect(str(full_db), read_only=True) as con:
        mart_rows = con.execute(f"SELECT count(*) FROM {latest}").fetchone()[0]
        source_rows = con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
        differing = con.execute(
            f"SELECT count(*) FROM {mart} f JOIN mart_customer_profile p USING (customer_id) WHERE "
            + " OR ".join(f"f.{c} IS DISTINCT FROM p.{c}" for c in FILTER_DIMENSIONS)
        ).fetchone()[0]
        uncommented = con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND coalesce(comment, '') = ''", [mart]
        ).fetchone()[0]
    assert mart_rows == source_rows > 0
    assert differing == 0
    assert uncommented == 0


def test_the_customer_cube_adds_up_to_the_profile_under_any_filter(full_db: Path) -> None:
    """Counts and rates read from the cube equal those counted over the profile's million-row grain."""
    from dashboard import filters

    with duckdb.connect(str(full_db), read_only=True) as con:
        grade, persona, product = con.execute(
            "SELECT grade, persona_key, products[1] FROM mart_customer_profile WHERE len(products) > 0 "
            "ORDER BY customer_id LIMIT 1"
        ).fetchone()
        for chosen in ({}, {"grade": [grade]}, {"persona": [persona], "product": [product]}):
            params = filters.params(chosen)
            from_cube = con.execute(
                "SELECT sum(customers), sum(defaulted) / sum(known_outcomes), sum(automated) / sum(decided), "
                f"sum(pd_sum) / sum(scored), sum(open_alerts) FROM {filters.CUBE} p WHERE {filters.FILTERED}",
                params,
            ).fetchone()
            from_profile = con.execute(
                "SELECT count(*), avg(is_defaulted::INT), avg((decision <> 'review')::INT), avg(pd), "
                f"sum(open_alerts) FROM mart_customer_profile p WHERE {filters.FILTERED}",
                params,
            ).fetchone()
            assert from_cube[0] == from_profile[0] > 0
            assert from_cube[1:4] == pytest.approx(from_profile[1:4])
            assert from_cube[4] == from_profile[4]


@pytest.mark.parametrize(
    ("cube", "mart", "groups", "measures"),
    [
        ("mart_rfm_cube", "mart_rfm", "segment, cluster_id", "count(*), sum(rfm_monetary)"),
        ("mart_offer_cube", "mart_offers", "product", "count(*), count(*) FILTER (priority = 1)"),
    ],
)
def test_the_fact_cubes_add_up_to_their_marts_under_any_filter(
    full_db: Path, cube: str, mart: str, groups: str, measures: str
) -> None:
    """Counts summed from a fact cube equal those counted over the fact mart's rows, group by group."""
    from dashboard import filters
    from warehouse.marts import FACT_CUBES

    summed = ", ".join(f"sum({column})" for column, _, _ in next(c for c in FACT_CUBES if c.name == cube).measures)
    with duckdb.connect(str(full_db), read_only=True) as con:
        grade, persona, product = con.execute(
            f"SELECT grade, persona_key, products[1] FROM {mart} WHERE len(products) > 0 ORDER BY customer_id LIMIT 1"
        ).fetchone()
        uncommented = con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND coalesce(comment, '') = ''", [cube]
        ).fetchone()[0]
        for chosen in ({}, {"grade": [grade]}, {"persona": [persona], "product": [product]}):
            params = filters.params(chosen)
            from_cube = con.execute(
                f"SELECT {groups}, {summed} FROM {cube} r WHERE {filters.condition('r')} GROUP BY ALL ORDER BY ALL",
                params,
            ).fetchall()
            from_mart = con.execute(
                f"SELECT {groups}, {measures} FROM {mart} r WHERE {filters.condition('r')} GROUP BY ALL ORDER BY ALL",
                params,
            ).fetchall()
            assert len(from_cube) > 0
            assert [row[:-1] for row in from_cube] == [row[:-1] for row in from_mart]
            assert [row[-1] for row in from_cube] == pytest.approx([row[-1] for row in from_mart])
    assert uncommented == 0


def test_the_rfm_sample_is_a_fixed_tenth_of_the_scores(full_db: Path) -> None:
    from warehouse.marts import RFM_SAMPLE_EVERY

    with duckdb.connect(str(full_db), read_only=True) as con:
        sample = con.execute("SELECT customer_id, rfm_monetary FROM mart_rfm_sample ORDER BY ALL").fetchall()
        chosen = con.execute(
            f"SELECT customer_id, rfm_monetary FROM mart_rfm WHERE hash(customer_id) % {RFM_SAMPLE_EVERY} = 0 "
            "ORDER BY ALL"
        ).fetchall()
        scored = con.execute("SELECT count(*) FROM mart_rfm").fetchone()[0]
    assert sample == chosen
    assert scored / (2 * RFM_SAMPLE_EVERY) < len(sample) < 2 * scored / RFM_SAMPLE_EVERY


def test_the_persona_map_sample_is_the_first_customers_by_hash(full_db: Path) -> None:
    """The map's stored order makes "the first N meeting the filter" the hash-ordered sample."""
    from dashboard import filters

    with duckdb.connect(str(full_db), read_only=True) as con:
        grade = con.execute("SELECT grade FROM mart_customer_profile GROUP BY ALL ORDER BY count(*) DESC").fetchone()
        params = filters.params({"grade": [grade[0]]})
        sampled = con.execute(
            f"SELECT customer_id FROM mart_persona_map p WHERE {filters.FILTERED} LIMIT 300", params
        ).fetchall()
        by_hash = con.execute(
            f"SELECT customer_id FROM mart_customer_profile p WHERE {filters.FILTERED} AND pca_x IS NOT NULL "
            "ORDER BY hash(customer_id), customer_id LIMIT 300",
            params,
        ).fetchall()
    assert len(sampled) == 300
    assert sampled == by_hash


@pytest.mark.parametrize(
    ("module", "own"),
    [
        ("rfm", {"segments": []}),
        ("cross_sell", {"offered": []}),
        ("warnings", {"rules": [], "severities": [], "status": "all", "acknowledged": []}),
    ],
)
def test_a_table_in_its_stored_order_pages_as_the_sorted_query(full_db_copy: Path, module: str, own: dict) -> None:
    """The default order of the alerts, offers and RFM tables is the order their marts are stored in,
    so a page is read without a sort: it must be the page the ORDER BY would give, under filters and
    deep into the table."""
    from conftest import dashboard_page

    from dashboard import filters
    from dashboard.data import QUERIES, reader

    page = dashboard_page(full_db_copy, module)
    table = page.TABLE
    column, direction = table.stored_sort
    assert (column, direction == "DESC") == (table.default_sort, table.default_descending)
    data = reader()
    if module == "rfm":
        own = {**own, "run_id": page.latest_run(data)["run_id"]}
    sorted_page = (
        f"SELECT {table.select} {table.from_where} {table.order_by(column, direction)} LIMIT $limit OFFSET $offset"
    )
    assert "ORDER BY" not in QUERIES[f"{table.name}:page:{column}:{direction}"]
    with duckdb.connect(str(full_db_copy), read_only=True) as con:
        grade = con.execute("SELECT grade FROM mart_customer_profile GROUP BY ALL ORDER BY count(*) DESC").fetchall()[
            0
        ][0]
        for chosen in ({}, {"grade": [grade]}):
            params = {**filters.params(chosen), **own}
            total = table.count(data, params)
            assert total > table.page_size
            for number in sorted({1, 2, -(-total // table.page_size)}):
                offset = (number - 1) * table.page_size
                expected = con.sql(sorted_page, params={**params, "limit": table.page_size, "offset": offset}).pl()
                shown = table.page(data, params, number, column, direction == "DESC")
                assert shown.equals(expected), (chosen, number)


def test_the_features_mart_holds_every_customer_with_the_profile_dimensions(full_db: Path) -> None:
    from warehouse.marts import FEATURE_DIMENSIONS

    with duckdb.connect(str(full_db), read_only=True) as con:
        columns = [
            name
            for (name,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = 'mart_customer_features' ORDER BY column_index"
            ).fetchall()
        ]
        numeric = [c for c in columns if c not in FEATURE_DIMENSIONS]
        assert "customer_id" in numeric and "utilization" in numeric and len(numeric) > 10
        differing = con.execute(
            "SELECT count(*) FROM mart_customer_features f JOIN customers c USING (customer_id) "
            "JOIN mart_customer_profile p USING (customer_id) WHERE "
            + " OR ".join(f'f."{c}" IS DISTINCT FROM c."{c}"' for c in numeric if c != "customer_id")
            + " OR "
            + " OR ".join(f"f.{c} IS DISTINCT FROM p.{c}" for c in FEATURE_DIMENSIONS)
        ).fetchall()[0][0]
        rows = con.execute(
            "SELECT (SELECT count(*) FROM mart_customer_features), (SELECT count(*) FROM customers)"
        ).fetchall()[0]
        uncommented = con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'mart_customer_features' "
            "AND coalesce(comment, '') = ''"
        ).fetchall()[0][0]
    assert differing == 0
    assert rows[0] == rows[1] > 0
    assert uncommented == 0


def test_a_table_showing_profile_columns_keeps_the_profile_join_unfiltered() -> None:
    """Without filters a table's queries drop the profile join, unless the rows shown read the profile."""
    from dashboard import filters
    from dashboard.data import QUERIES
    from dashboard.paged import Column, PagedTable

    from_where = f"FROM ml_alerts a {filters.PROFILE_JOIN} WHERE {filters.FILTERED}"
    for name, select in (("test-reads-profile", "a.alert_id, p.grade"), ("test-reads-alerts", "a.alert_id")):
        PagedTable(name, select, from_where, (Column("alert_id", "Alert"),), ("alert_id",), "alert_id")
        assert filters.PROFILE_JOIN not in QUERIES[f"{name}:count:all"]
    assert "test-reads-profile:page:alert_id:DESC:all" not in QUERIES
    assert filters.PROFILE_JOIN not in QUERIES["test-reads-alerts:page:alert_id:DESC:all"]

"""Training entry points: read the customers mart, fit, and write the run back atomically."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl

from warehouse.db import read_only

from .rfm import fit_rfm, write_rfm
from .runs import ModelError, ModelRun, fingerprint, write_back
from .segments import K_RANGE, fit_segments
from .segments_store import previous_segments, set_label, write_segments

Progress = Callable[[str], None]


def _supported(db_path: Path, capability: str) -> tuple[bool, str]:
    with read_only(db_path) as con:
        row = con.execute(
            "SELECT is_supported, reason FROM meta_capabilities WHERE capability = ?", [capability]
        ).fetchall()
    return (bool(row[0][0]), row[0][1]) if row else (False, "the warehouse records no capabilities")


def train_rfm(db_path: Path, seed: int = 42, progress: Progress | None = None, as_of: date | None = None) -> ModelRun:
    """RFM scores, named segments and K-Means clusters for every customer with transactions.

    Recency is counted to ``as_of``; by default the build's as-of date, the day after the last
    transaction in the data.
    """
    say = progress or (lambda _message: None)
    supported, reason = _supported(db_path, "rfm")
    if not supported:
        raise ModelError(f"RFM cannot run on {db_path}: it {reason}.")
    with read_only(db_path) as con:
        customers = con.sql(
            "SELECT customer_id, rfm_recency_days, rfm_frequency, rfm_monetary, last_txn_at FROM customers ORDER BY customer_id"
        ).pl()
        (build_as_of,) = con.execute("SELECT as_of_date FROM meta_builds").fetchone() or (None,)
    if as_of is not None:
        last = customers.get_column("last_txn_at").max()
        if last is not None and as_of <= last.date():
            raise ModelError(f"--as-of must be after the last transaction ({last.date()}), got {as_of}.")
        customers = customers.with_columns(
            (pl.lit(as_of) - pl.col("last_txn_at").dt.date()).dt.total_days().alias("rfm_recency_days")
        )
    customers = customers.drop("last_txn_at")
    run = ModelRun(
        "rfm",
        {"seed": seed, "clusters": 4, "transform": "log1p + StandardScaler", "as_of": str(as_of or build_as_of)},
    )
    run.input_fingerprint, run.input_rows = fingerprint(customers), customers.height
    say(f"rfm: scoring and clustering {customers.height:,} customers")
    scored, clusters, metrics = fit_rfm(customers, seed)
    run.metrics = metrics

    def write(con) -> None:  # noqa: ANN001 - a DuckDB connection
        write_rfm(con, run.run_id, scored, clusters)
        run.record(con)

    write_back(db_path, write)
    say(
        f"rfm: run {run.run_id} written ({metrics['customers']:,} customers, silhouette {metrics['silhouette_sample']:.3f})"
    )
    return run


def train_segments(db_path: Path, seed: int = 42, k: int | None = None, progress: Progress | None = None) -> ModelRun:
    """K-Means personas over the customers mart, named, profiled and written back with the run id."""
    say = progress or (lambda _message: None)
    supported, reason = _supported(db_path, "personas")
    if not supported:
        raise ModelError(f"Personas cannot run on {db_path}: it {reason}.")
    if k is not None and not 2 <= k <= 12:
        raise ModelError(f"--k must be between 2 and 12, got {k}.")
    with read_only(db_path) as con:
        customers = con.sql("SELECT * FROM customers").pl()  # stored in customer_id order by the build
        if not customers.get_column("customer_id").is_sorted():
            customers = customers.sort("customer_id")
        meta = con.sql("SELECT * FROM meta_columns").pl()
        previous = previous_segments(con)
    run = ModelRun("segments", {"seed": seed, "k": k, "k_range": [min(K_RANGE), max(K_RANGE)]})
    run.input_fingerprint, run.input_rows = fingerprint(customers), customers.height
    say(f"segments: choosing k over {min(K_RANGE)}..{max(K_RANGE)} for {customers.height:,} customers")
    try:
        result = fit_segments(customers, meta, seed=seed, k=k, previous=previous)
    except ValueError as exc:
        raise ModelError(f"Personas cannot run on {db_path}: {exc}.") from exc
    run.metrics = result.metrics | {"silhouette": next(r["silhouette"] for r in result.k_table if r["is_chosen"])}
    say(f"segments: k = {result.k}; writing {customers.height:,} assignments")

    def write(con) -> None:  # noqa: ANN001 - a DuckDB connection
        write_segments(con, run.run_id, customers.get_column("customer_id"), result)
        run.record(con)

    write_back(db_path, write)
    names = ", ".join(result.summary.get_column("persona_name").to_list())
    say(f"segments: run {run.run_id} written: {names}")
    return run


def set_persona_label(db_path: Path, segment_key: str, *, name: str | None = None, strategy: str | None = None) -> None:
    """Rename a persona or set its strategy, atomically, kept across re-runs."""

    def write(con) -> None:  # noqa: ANN001 - a DuckDB connection
        try:
            set_label(con, segment_key, name=name, strategy=strategy)
        except LookupError as exc:
            raise ModelError(f"{exc}.") from exc

    write_back(db_path, write)


def list_personas(db_path: Path) -> list[tuple]:
    """(segment_key, persona_name, customers, share, strategy) of the latest segments run."""
    with read_only(db_path) as con:
        exists = con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = 'ml_latest_segment_summary'"
        ).fetchall()
        if not exists[0][0]:
            raise ModelError(f"No personas in {db_path} yet: run `segrisk train segments` first.")
        return con.execute(
            "SELECT segment_key, persona_name, customers, share, description, strategy "
            "FROM ml_latest_segment_summary ORDER BY segment_id"
        ).fetchall()

"""Training entry points: read the customers mart, fit, and write the run back atomically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from warehouse.db import read_only

from .rfm import fit_rfm, write_rfm
from .runs import ModelError, ModelRun, fingerprint, write_back

Progress = Callable[[str], None]


def _supported(db_path: Path, capability: str) -> tuple[bool, str]:
    with read_only(db_path) as con:
        row = con.execute(
            "SELECT is_supported, reason FROM meta_capabilities WHERE capability = ?", [capability]
        ).fetchall()
    return (bool(row[0][0]), row[0][1]) if row else (False, "the warehouse records no capabilities")


def train_rfm(db_path: Path, seed: int = 42, progress: Progress | None = None) -> ModelRun:
    """RFM scores, named segments and K-Means clusters for every customer with transactions."""
    say = progress or (lambda _message: None)
    supported, reason = _supported(db_path, "rfm")
    if not supported:
        raise ModelError(f"RFM cannot run on {db_path}: it {reason}.")
    with read_only(db_path) as con:
        customers = con.sql(
            "SELECT customer_id, rfm_recency_days, rfm_frequency, rfm_monetary FROM customers ORDER BY customer_id"
        ).pl()
    run = ModelRun("rfm", {"seed": seed, "clusters": 4, "transform": "log1p + StandardScaler"})
    run.input_fingerprint, run.input_rows = fingerprint(customers), customers.height
    say(f"rfm: scoring and clustering {customers.height:,} customers")
    scored, clusters, metrics = fit_rfm(customers, seed)
    run.metrics = metrics

    def write(con) -> None:  # noqa: ANN001 - a DuckDB connection
        write_rfm(con, run.run_id, scored, clusters)
        run.record(con)

    write_back(db_path, write)
    say(f"rfm: run {run.run_id} written ({metrics['customers']:,} customers, silhouette {metrics['silhouette_sample']:.3f})")
    return run

"""RFM: recency, frequency and monetary value per customer, the standard named RFM segments,
and K-Means clusters on log RFM with names a marketer recognises.

Recency, frequency and monetary value come from the ``customers`` mart (the build computes
them at the as-of date: the day after the last transaction). Scores are quintiles 1-5 with
recency reversed (5 = bought most recently). The clusters are a plain scikit-learn pipeline
(log1p -> StandardScaler -> KMeans); its centroids are stored in ``ml_rfm_clusters`` so a new
(recency, frequency, monetary) triple can be assigned from the warehouse alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from warehouse.history import latest_run_of

from .runs import append_table

RFM_COLUMNS = ("rfm_recency_days", "rfm_frequency", "rfm_monetary")
CLUSTER_COUNT = 4
SILHOUETTE_SAMPLE = 10_000
FIT_SAMPLE = 50_000

#: The standard RFM segment map on (recency score, frequency score), first match wins.
SEGMENT_RULES: tuple[tuple[str, str], ...] = (
    ("Champions", r"5[4-5]"),
    ("Loyal", r"[3-4][4-5]"),
    ("Potential Loyalist", r"[4-5][2-3]"),
    ("New", r"51"),
    ("Promising", r"41"),
    ("Need Attention", r"33"),
    ("About to Sleep", r"3[1-2]"),
    ("Can't Lose Them", r"[1-2]5"),
    ("At Risk", r"[1-2][3-4]"),
    ("Lost", r"11"),
    ("Hibernating", r"[1-2][1-2]"),
)
SEGMENTS = tuple(name for name, _ in SEGMENT_RULES)

HIGH_VALUE, POTENTIAL, OCCASIONAL, CHURN_RISK = (
    "Loyal High-Value",
    "Potential Loyalists",
    "Occasional Buyers",
    "Churn Risk",
)


def segment_of(r_score: int, f_score: int) -> str:
    """The named RFM segment for a recency and a frequency score (1-5 each)."""
    cell = f"{r_score}{f_score}"
    for name, pattern in SEGMENT_RULES:
        if re.fullmatch(pattern, cell):
            return name
    raise ValueError(f"scores must be 1-5, got recency {r_score} and frequency {f_score}")


def _quintile(column: str, *, reverse: bool) -> pl.Expr:
    """Quintile 1-5 by rank; ties broken by customer_id so equal inputs give equal scores run to run."""
    value = -pl.col(column) if reverse else pl.col(column)
    rank = pl.struct(value.alias("v"), pl.col("customer_id")).rank("ordinal")
    return ((rank - 1) * 5 // pl.len() + 1).cast(pl.Int8)


def score_rfm(rfm: pl.LazyFrame) -> pl.LazyFrame:
    """Add r/f/m quintile scores, the three-digit RFM cell and the named segment."""
    segment = pl.concat_str(pl.col("r_score"), pl.col("f_score"))
    named = pl.lit(None, dtype=pl.String)
    for name, pattern in reversed(SEGMENT_RULES):
        named = pl.when(segment.str.contains(f"^{pattern}$")).then(pl.lit(name)).otherwise(named)
    return rfm.with_columns(
        _quintile("rfm_recency_days", reverse=True).alias("r_score"),
        _quintile("rfm_frequency", reverse=False).alias("f_score"),
        _quintile("rfm_monetary", reverse=False).alias("m_score"),
    ).with_columns(
        pl.concat_str(pl.col("r_score"), pl.col("f_score"), pl.col("m_score")).alias("rfm_cell"),
        named.alias("segment"),
    )


def rfm_pipeline(seed: int, init: np.ndarray | None = None) -> Pipeline:
    """log1p -> StandardScaler -> KMeans: RFM values are heavily right-skewed.

    With ``init`` (centroids found on a sample) the full fit starts there and runs once.
    """
    kmeans = (
        KMeans(n_clusters=CLUSTER_COUNT, n_init=10, random_state=seed)
        if init is None
        else KMeans(n_clusters=CLUSTER_COUNT, init=init, n_init=1, random_state=seed)
    )
    return Pipeline(
        [
            ("log", FunctionTransformer(np.log1p, inverse_func=np.expm1)),
            ("scale", StandardScaler()),
            ("kmeans", kmeans),
        ]
    )


def name_clusters(centroids: np.ndarray) -> list[str]:
    """Names from centroids in original units (recency days, frequency, monetary).

    Churn Risk is the cluster that bought longest ago; Loyal High-Value spends most among the
    rest; of the last two, the more recent is Potential Loyalists, the other Occasional Buyers.
    """
    names = [""] * len(centroids)
    remaining = list(range(len(centroids)))
    churn = max(remaining, key=lambda i: centroids[i][0])
    remaining.remove(churn)
    high = max(remaining, key=lambda i: centroids[i][2])
    remaining.remove(high)
    potential, occasional = sorted(remaining, key=lambda i: centroids[i][0])
    names[churn], names[high], names[potential], names[occasional] = CHURN_RISK, HIGH_VALUE, POTENTIAL, OCCASIONAL
    return names


@dataclass(frozen=True)
class RfmClusters:
    """A fitted RFM clustering, reduced to what assignment needs: scaler and centroids."""

    log_mean: np.ndarray
    log_scale: np.ndarray
    scaled_centroids: np.ndarray
    names: tuple[str, ...]

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline) -> RfmClusters:
        scaler: StandardScaler = pipeline.named_steps["scale"]
        kmeans: KMeans = pipeline.named_steps["kmeans"]
        centroids = np.expm1(scaler.inverse_transform(kmeans.cluster_centers_))
        return cls(scaler.mean_, scaler.scale_, kmeans.cluster_centers_, tuple(name_clusters(centroids)))

    @property
    def centroids(self) -> np.ndarray:
        """Centroids in original units: recency days, frequency, monetary."""
        return np.expm1(self.scaled_centroids * self.log_scale + self.log_mean)

    def assign(self, recency_days: float, frequency: float, monetary: float) -> tuple[int, str]:
        """The cluster (id, name) of one customer's RFM triple: the nearest centroid, as KMeans predicts."""
        values = np.array([recency_days, frequency, monetary], dtype=float)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("recency, frequency and monetary must be non-negative numbers")
        scaled = (np.log1p(values) - self.log_mean) / self.log_scale
        cluster = int(np.argmin(((self.scaled_centroids - scaled) ** 2).sum(axis=1)))
        return cluster, self.names[cluster]


def fit_rfm(customers: pl.DataFrame, seed: int) -> tuple[pl.DataFrame, RfmClusters, dict]:
    """Scores, segments and clusters for every customer with transactions; plus run metrics."""
    rfm = customers.select("customer_id", *RFM_COLUMNS).drop_nulls().filter(pl.col("rfm_frequency") > 0)
    if rfm.height < CLUSTER_COUNT * 5:
        raise ValueError(f"RFM needs at least {CLUSTER_COUNT * 5} customers with transactions, found {rfm.height}")
    scored = score_rfm(rfm.lazy()).collect()
    values = rfm.select(*RFM_COLUMNS).to_numpy().astype(float)
    values[:, 0] = np.clip(values[:, 0], 0, None)
    values[:, 2] = np.clip(values[:, 2], 0, None)
    # Ten restarts on a fixed-seed sample find the centroids; one pass over everyone refines them.
    sample_rows = np.sort(
        np.random.default_rng(seed).choice(len(values), size=min(FIT_SAMPLE, len(values)), replace=False)
    )
    on_sample = rfm_pipeline(seed).fit(values[sample_rows])
    pipeline = rfm_pipeline(seed, init=on_sample.named_steps["kmeans"].cluster_centers_).fit(values)
    clusters = RfmClusters.from_pipeline(pipeline)
    labels = pipeline.named_steps["kmeans"].labels_
    scored = scored.with_columns(
        pl.Series("cluster_id", labels, dtype=pl.Int32),
        pl.Series("cluster_name", [clusters.names[i] for i in labels], dtype=pl.String),
    )
    scaled = pipeline[:-1].transform(values)
    sample = np.random.default_rng(seed).choice(len(scaled), size=min(SILHOUETTE_SAMPLE, len(scaled)), replace=False)
    metrics = {
        "customers": rfm.height,
        "silhouette_sample": float(silhouette_score(scaled[sample], labels[sample])),
        "inertia": float(pipeline.named_steps["kmeans"].inertia_),
        "segment_counts": dict(scored.group_by("segment").len().sort("segment").iter_rows()),
        "cluster_counts": dict(scored.group_by("cluster_name").len().sort("cluster_name").iter_rows()),
    }
    return scored, clusters, metrics


RFM_TABLE_COMMENT = "RFM per customer per run: one row per customer with transactions per rfm run."
RFM_COLUMN_COMMENTS = {
    "run_id": "The rfm run that produced the row (see ml_model_runs).",
    "customer_id": "The customer.",
    "rfm_recency_days": "Days from the last transaction to the as-of date.",
    "rfm_frequency": "Distinct purchases (invoices, else transactions).",
    "rfm_monetary": "Total spend, currency units.",
    "r_score": "Recency quintile, 5 = bought most recently, 1 = longest ago.",
    "f_score": "Frequency quintile, 5 = buys most often.",
    "m_score": "Monetary quintile, 5 = spends most.",
    "rfm_cell": "The three scores as text, e.g. '545'.",
    "segment": "Named RFM segment from the recency and frequency scores: " + ", ".join(SEGMENTS) + ".",
    "cluster_id": "K-Means cluster on log RFM (0-3).",
    "cluster_name": f"Cluster name: {HIGH_VALUE}, {POTENTIAL}, {OCCASIONAL} or {CHURN_RISK}.",
}
CLUSTERS_TABLE_COMMENT = "RFM clusters per run: one row per cluster, with what assigning a new customer needs."
CLUSTERS_COLUMN_COMMENTS = {
    "run_id": "The rfm run (see ml_model_runs).",
    "cluster_id": "Cluster number.",
    "cluster_name": "Cluster name.",
    "customers": "Customers in the cluster.",
    "centroid_recency_days": "Centroid recency, days (back-transformed from log space).",
    "centroid_frequency": "Centroid frequency (back-transformed).",
    "centroid_monetary": "Centroid spend, currency units (back-transformed).",
    "scaled_centroid": "Centroid in standardised log1p space [recency, frequency, monetary].",
    "log_mean": "StandardScaler mean of log1p [recency, frequency, monetary] (same on every row of a run).",
    "log_scale": "StandardScaler scale of log1p [recency, frequency, monetary] (same on every row of a run).",
}


def write_rfm(con: duckdb.DuckDBPyConnection, run_id: str, scored: pl.DataFrame, clusters: RfmClusters) -> None:
    """Append the run's rows to ml_rfm and ml_rfm_clusters."""
    rows = scored.select(pl.lit(run_id).alias("run_id"), *RFM_COLUMN_COMMENTS.keys() - {"run_id"}).select(
        list(RFM_COLUMN_COMMENTS)
    )
    counts = dict(scored.group_by("cluster_id").len().iter_rows())
    centroids = clusters.centroids
    cluster_rows = pl.DataFrame(
        {
            "run_id": [run_id] * len(clusters.names),
            "cluster_id": list(range(len(clusters.names))),
            "cluster_name": list(clusters.names),
            "customers": [counts.get(i, 0) for i in range(len(clusters.names))],
            "centroid_recency_days": centroids[:, 0],
            "centroid_frequency": centroids[:, 1],
            "centroid_monetary": centroids[:, 2],
            "scaled_centroid": [list(map(float, c)) for c in clusters.scaled_centroids],
            "log_mean": [list(map(float, clusters.log_mean))] * len(clusters.names),
            "log_scale": [list(map(float, clusters.log_scale))] * len(clusters.names),
        },
        schema_overrides={"cluster_id": pl.Int32, "customers": pl.Int64},
    )
    append_table(con, "ml_rfm", rows, RFM_TABLE_COMMENT, RFM_COLUMN_COMMENTS)
    append_table(con, "ml_rfm_clusters", cluster_rows, CLUSTERS_TABLE_COMMENT, CLUSTERS_COLUMN_COMMENTS)


def load_clusters(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> RfmClusters:
    """The RFM clusters of a run (default: the latest rfm run) read back from the warehouse."""
    params: list = []
    where = ""
    if run_id is not None:
        where, params = "WHERE c.run_id = ?", [run_id]
    rows = con.execute(
        f"""
        SELECT cluster_id, cluster_name, scaled_centroid, log_mean, log_scale
        FROM ml_rfm_clusters c
        {where or "WHERE c.run_id = " + latest_run_of("rfm")}
        ORDER BY cluster_id
        """,
        params,
    ).fetchall()
    if not rows:
        raise LookupError("no rfm run in this warehouse: run `segrisk train rfm` first")
    return clusters_from_rows([row[1:] for row in rows])


def clusters_from_rows(rows: Sequence[Sequence]) -> RfmClusters:
    """The clusters from rows of (cluster_name, scaled_centroid, log_mean, log_scale) of one run of
    ``ml_rfm_clusters`` in cluster_id order (at least one row)."""
    return RfmClusters(
        log_mean=np.array(rows[0][2], dtype=float),
        log_scale=np.array(rows[0][3], dtype=float),
        scaled_centroids=np.array([r[1] for r in rows], dtype=float),
        names=tuple(r[0] for r in rows),
    )

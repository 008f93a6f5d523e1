"""K-Means personas: a plain scikit-learn pipeline, k chosen by silhouette, names a person can read.

Pipeline: median imputation -> log1p on skewed non-negative amounts -> StandardScaler -> KMeans.

* Features: the spec's customer-level numeric, amount and yes/no columns (what a customer is
  and holds). When fewer than :data:`MIN_SPEC_FEATURES` exist, the build's engineered behaviour
  features (ratios, transactions, snapshots) are added. Text categoricals are left out: one-hot
  columns distort K-Means distances and the profiles show them anyway. Near-duplicates
  (|correlation| above :data:`MAX_CORRELATION`) are dropped, keeping the first.
* log1p is applied to a non-negative column whose skewness is above :data:`SKEW_THRESHOLD`.
* k is chosen over 2..8 by the silhouette on a fixed-seed sample (a full silhouette is quadratic);
  inertia (elbow), Calinski-Harabasz and Davies-Bouldin are recorded for every k. The final model
  is fitted on all customers, started from the sample's centroids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment
from scipy.stats import skew
from sklearn.cluster import DBSCAN, KMeans
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.manifold import TSNE
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from warehouse.features import TARGET

from .personas import ARCHETYPES, GENERIC_STRATEGY, describe, match_archetypes

K_RANGE = range(2, 9)
SEARCH_SAMPLE = 20_000
SEARCH_N_INIT = 4
SILHOUETTE_SAMPLE = 10_000
#: Feature decisions (skewness, correlation) are read off a sample: stable to 2 decimals at this size.
DECISION_SAMPLE = 100_000
TSNE_SAMPLE = 600
DBSCAN_SAMPLE = 5_000
MIN_SPEC_FEATURES = 4
MAX_CORRELATION = 0.95
SKEW_THRESHOLD = 1.0
#: Centroids closer than this (standardised units) to a previous run's are the same segment.
MATCH_DISTANCE = 2.0


@dataclass(frozen=True)
class FeatureChoice:
    """Which columns the personas use, which get log1p, and why others were left out."""

    columns: list[str]
    log_columns: list[str]
    left_out: dict[str, str]


def choose_features(customers: pl.DataFrame, meta_columns: pl.DataFrame) -> FeatureChoice:
    """Apply the documented feature rule to the customers mart and its meta_columns table."""
    usable = meta_columns.filter(pl.col("is_model_feature"))
    left_out: dict[str, str] = {}
    spec_numeric, engineered = [], []
    for name, origin, role in usable.select("column_name", "origin", "role").iter_rows():
        dtype = customers.schema[name]
        if not (dtype.is_numeric() or dtype == pl.Boolean):
            left_out[name] = "text categorical: profiled, not clustered"
        elif origin == "spec" and role in ("numeric", "amount", "categorical"):
            spec_numeric.append(name)
        else:
            engineered.append(name)
    candidates = spec_numeric if len(spec_numeric) >= MIN_SPEC_FEATURES else spec_numeric + engineered
    for name in engineered:
        if name not in candidates:
            left_out[name] = "engineered behaviour feature: profiled, not clustered (enough spec attributes)"
    rows = _sample(customers.height, DECISION_SAMPLE, 0)
    values = customers.select(pl.col(c).cast(pl.Float64) for c in candidates)[rows]
    columns: list[str] = []
    log_columns: list[str] = []
    transformed: dict[str, np.ndarray] = {}
    for name in candidates:
        column = values.get_column(name)
        if column.drop_nulls().n_unique() < 2:
            left_out[name] = "constant"
            continue
        filled = column.fill_null(column.median()).to_numpy()
        is_flag = customers.schema[name] == pl.Boolean
        if not is_flag and filled.min() >= 0 and abs(float(skew(filled))) > SKEW_THRESHOLD:
            filled = np.log1p(filled)
            log_columns.append(name)
        duplicate = next(
            (kept for kept in columns if abs(np.corrcoef(filled, transformed[kept])[0, 1]) > MAX_CORRELATION), None
        )
        if duplicate is not None:
            left_out[name] = f"near-duplicate of {duplicate}"
            if name in log_columns:
                log_columns.remove(name)
            continue
        columns.append(name)
        transformed[name] = filled
    if len(columns) < 2:
        raise ValueError(f"personas need at least 2 usable numeric features, found {len(columns)}")
    return FeatureChoice(columns, log_columns, left_out)


def preprocessing(choice: FeatureChoice) -> Pipeline:
    """Impute, log1p the skewed amounts, standardise: the part of the pipeline before K-Means.

    It takes a float matrix whose columns are ``choice.columns`` in order (see :func:`feature_matrix`).
    """
    logged = [i for i, c in enumerate(choice.columns) if c in choice.log_columns]
    plain = [i for i, c in enumerate(choice.columns) if c not in choice.log_columns]
    return Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        (
                            "log",
                            Pipeline(
                                [("impute", SimpleImputer(strategy="median")), ("log1p", FunctionTransformer(np.log1p))]
                            ),
                            logged,
                        ),
                        ("plain", SimpleImputer(strategy="median"), plain),
                    ],
                ),
            ),
            ("scale", StandardScaler()),
        ]
    )


def feature_matrix(frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
    """The chosen columns as a float matrix (nulls as NaN for the imputer)."""
    return frame.select(pl.col(c).cast(pl.Float64) for c in columns).to_numpy()


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, size=min(size, n), replace=False))


def search_k(scaled: np.ndarray, seed: int, ks: range = K_RANGE) -> tuple[list[dict], dict[int, np.ndarray]]:
    """Fit KMeans for each k on a fixed-seed sample; score each; keep the centroids."""
    search = scaled[_sample(len(scaled), SEARCH_SAMPLE, seed)]
    scoring = _sample(len(search), SILHOUETTE_SAMPLE, seed + 1)
    rows, centers = [], {}
    for k in ks:
        if k >= len(search):
            break
        model = KMeans(n_clusters=k, n_init=SEARCH_N_INIT, random_state=seed).fit(search)
        labels = model.labels_
        rows.append(
            {
                "k": k,
                "inertia": float(model.inertia_),
                "silhouette": float(silhouette_score(search[scoring], labels[scoring])),
                "calinski_harabasz": float(calinski_harabasz_score(search, labels)),
                "davies_bouldin": float(davies_bouldin_score(search, labels)),
            }
        )
        centers[k] = model.cluster_centers_
    elbow = _elbow([r["k"] for r in rows], [r["inertia"] for r in rows])
    for row in rows:
        row["is_elbow"] = row["k"] == elbow
    return rows, centers


def _elbow(ks: list[int], inertias: list[float]) -> int:
    """The k farthest below the straight line from the first to the last inertia (the knee)."""
    if len(ks) < 3:
        return ks[0]
    x = np.array(ks, dtype=float)
    y = np.array(inertias, dtype=float)
    line = y[0] + (y[-1] - y[0]) * (x - x[0]) / (x[-1] - x[0])
    return ks[int(np.argmax(line - y))]


@dataclass(frozen=True)
class PreviousSegment:
    """A segment of the previous run: its stable key, its name and its centroid in feature units."""

    segment_key: str
    persona_name: str
    centroid: dict[str, float]


@dataclass(frozen=True)
class PersonaModel:
    """A fitted personas pipeline reduced to arrays, so one new customer can be assigned from the
    warehouse alone (the scoring API): the columns in the pipeline's output order (log1p columns
    first), their medians, the scaler's mean and scale, and each segment's K-Means centroid in
    that standardised space (row ``s`` = segment_id ``s``)."""

    columns: tuple[str, ...]
    logged: tuple[bool, ...]
    medians: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    centroids: np.ndarray

    @classmethod
    def from_pipeline(cls, choice: FeatureChoice, prep: Pipeline, centroids: np.ndarray) -> PersonaModel:
        prepare, scaler = prep.named_steps["prepare"], prep.named_steps["scale"]
        log_part, plain_part = prepare.named_transformers_["log"], prepare.named_transformers_["plain"]
        logged = [c for c in choice.columns if c in choice.log_columns]
        plain = [c for c in choice.columns if c not in choice.log_columns]
        medians = np.r_[
            log_part.named_steps["impute"].statistics_ if logged else [], plain_part.statistics_ if plain else []
        ]
        return cls(
            tuple(logged + plain),
            (True,) * len(logged) + (False,) * len(plain),
            medians.astype(float),
            np.asarray(scaler.mean_, dtype=float),
            np.asarray(scaler.scale_, dtype=float),
            np.asarray(centroids, dtype=float),
        )

    def standardise(self, values: np.ndarray) -> np.ndarray:
        """Rows of raw values in ``columns`` order (NaN = unknown) into the standardised space."""
        filled = np.where(np.isnan(values), self.medians, values)
        filled = np.where(self.logged, np.log1p(np.clip(filled, 0, None)), filled)
        return (filled - self.mean) / self.scale

    def assign(self, values: np.ndarray) -> np.ndarray:
        """The segment_id of each row: the nearest centroid, as K-Means predicts."""
        scaled = self.standardise(np.atleast_2d(np.asarray(values, dtype=float)))
        return np.argmin(((scaled[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2), axis=1)


@dataclass
class SegmentationResult:
    """Everything a segments run produces, before it is written to the warehouse."""

    choice: FeatureChoice
    k: int
    k_table: list[dict]
    labels: np.ndarray
    distances: np.ndarray
    coordinates: np.ndarray
    centroids_scaled: np.ndarray
    profiles: pl.DataFrame
    summary: pl.DataFrame
    tsne: pl.DataFrame
    metrics: dict = field(default_factory=dict)
    model: PersonaModel | None = None


def fit_segments(
    customers: pl.DataFrame,
    meta_columns: pl.DataFrame,
    seed: int,
    k: int | None = None,
    previous: list[PreviousSegment] | None = None,
) -> SegmentationResult:
    """Choose features and k, fit K-Means on all customers, profile and name the segments.

    Segments that match one of ``previous`` (the last run's) by centroid keep its key and name.
    """
    choice = choose_features(customers, meta_columns)
    prep = preprocessing(choice)
    scaled = prep.fit_transform(feature_matrix(customers, choice.columns))
    k_table, centers = search_k(scaled, seed)
    chosen = k if k is not None else max(k_table, key=lambda r: (r["silhouette"], -r["k"]))["k"]
    initial = centers.get(chosen)
    if initial is None:
        search = scaled[_sample(len(scaled), SEARCH_SAMPLE, seed)]
        initial = KMeans(n_clusters=chosen, n_init=SEARCH_N_INIT, random_state=seed).fit(search).cluster_centers_
    model = KMeans(n_clusters=chosen, init=initial, n_init=1, random_state=seed).fit(scaled)
    labels, distances, ordered_centers = _canonical_order(model, scaled)
    centroids = np.stack([scaled[labels == s].mean(axis=0) for s in range(chosen)])
    for row in k_table:
        row["is_chosen"] = row["k"] == chosen

    coordinates = (
        PCA(n_components=2, random_state=seed).fit(scaled[_sample(len(scaled), SEARCH_SAMPLE, seed)]).transform(scaled)
    )
    profiles = _profiles(customers, labels, choice)
    summary = _summary(profiles, labels, chosen, choice, centroids, prep, previous)
    metrics = {
        "k": chosen,
        "k_chosen_by": "--k" if k is not None else "silhouette",
        "features": choice.columns,
        "log_features": choice.log_columns,
        "left_out": choice.left_out,
        "inertia_full": float(model.inertia_),
        **_stability(scaled, labels, chosen, seed),
        **_dbscan_noise(scaled, seed),
    }
    tsne = _tsne(customers, scaled, labels, seed)
    return SegmentationResult(
        choice,
        chosen,
        k_table,
        labels,
        distances,
        coordinates,
        centroids,
        profiles,
        summary,
        tsne,
        metrics,
        PersonaModel.from_pipeline(choice, prep, ordered_centers),
    )


def _canonical_order(model: KMeans, scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relabel segments largest first (ties by centroid), so ids do not depend on KMeans internals.
    Returns the labels, each customer's distance to its centroid, and the centroids in the new order."""
    raw = model.labels_
    sizes = np.bincount(raw, minlength=model.n_clusters)
    order = sorted(range(model.n_clusters), key=lambda s: (-sizes[s], tuple(np.round(model.cluster_centers_[s], 6))))
    mapping = np.empty(model.n_clusters, dtype=np.int32)
    mapping[order] = np.arange(model.n_clusters, dtype=np.int32)
    labels = mapping[raw]
    distances = np.linalg.norm(scaled - model.cluster_centers_[raw], axis=1)
    return labels, distances, model.cluster_centers_[order]


def _profiles(customers: pl.DataFrame, labels: np.ndarray, choice: FeatureChoice) -> pl.DataFrame:
    """Long table: per segment and numeric feature, mean, median and z-score against everyone."""
    numeric = [
        c
        for c in customers.columns
        if c != "customer_id"
        and (customers.schema[c].is_numeric() or customers.schema[c] == pl.Boolean)
        and not c.startswith("log_")
    ]
    frame = customers.select(pl.col(c).cast(pl.Float64) for c in numeric).with_columns(pl.Series("segment_id", labels))
    population = frame.select(
        *(pl.col(c).mean().alias(f"{c}__mean") for c in numeric), *(pl.col(c).std().alias(f"{c}__std") for c in numeric)
    ).row(0, named=True)
    per_segment = frame.group_by("segment_id").agg(
        *(pl.col(c).mean().alias(f"{c}__mean") for c in numeric),
        *(pl.col(c).median().alias(f"{c}__median") for c in numeric),
    )
    rows = []
    for record in per_segment.sort("segment_id").iter_rows(named=True):
        for c in numeric:
            std = population[f"{c}__std"]
            mean = record[f"{c}__mean"]
            z = (mean - population[f"{c}__mean"]) / std if std and mean is not None else 0.0
            rows.append(
                {
                    "segment_id": record["segment_id"],
                    "feature": c,
                    "segment_mean": mean,
                    "segment_median": record[f"{c}__median"],
                    "population_mean": population[f"{c}__mean"],
                    "z_score": z,
                    "is_clustering_feature": c in choice.columns,
                }
            )
    profiles = pl.DataFrame(rows, schema_overrides={"segment_id": pl.Int32})
    return profiles.with_columns(
        pl.col("z_score")
        .abs()
        .rank("ordinal", descending=True)
        .over("segment_id")
        .cast(pl.Int32)
        .alias("distinctiveness_rank")
    )


def _summary(
    profiles: pl.DataFrame,
    labels: np.ndarray,
    k: int,
    choice: FeatureChoice,
    centroids: np.ndarray,
    prep: Pipeline,
    previous: list[PreviousSegment] | None,
) -> pl.DataFrame:
    # The target describes outcomes, not who the customers are: profiled, never used to name.
    z_by_segment = {
        s: dict(
            profiles.filter((pl.col("segment_id") == s) & (pl.col("feature") != TARGET))
            .select("feature", "z_score")
            .iter_rows()
        )
        for s in range(k)
    }
    archetypes = match_archetypes(z_by_segment)
    sizes = np.bincount(labels, minlength=k)
    rows = []
    for s in range(k):
        description = describe(z_by_segment[s])
        archetype = archetypes.get(s)
        top = (
            profiles.filter((pl.col("segment_id") == s) & (pl.col("feature") != TARGET))
            .sort("distinctiveness_rank")
            .head(3)
            .get_column("feature")
            .to_list()
        )
        rows.append(
            {
                "segment_id": s,
                "segment_key": f"S{s + 1}",
                "persona_name": archetype.name if archetype else describe(z_by_segment[s], top=2),
                "description": description,
                "archetype": archetype.name if archetype else None,
                "strategy": archetype.strategy if archetype else GENERIC_STRATEGY,
                "manual_underwriting": bool(archetype and archetype.manual_underwriting),
                "customers": int(sizes[s]),
                "share": float(sizes[s] / len(labels)),
                "top_features": top,
                "matched_previous": False,
            }
        )
    summary = pl.DataFrame(rows, schema_overrides={"segment_id": pl.Int32, "archetype": pl.String})
    if previous:
        summary = _carry_over(summary, centroids, choice, prep, previous)
    return summary


def _carry_over(
    summary: pl.DataFrame, centroids: np.ndarray, choice: FeatureChoice, prep: Pipeline, previous: list[PreviousSegment]
) -> pl.DataFrame:
    """Match segments to the previous run's by centroid (Hungarian); matched ones keep their key, and
    their name while it still holds: an archetype's name only while the segment still shows that
    archetype's defining features (a name given by an older, laxer rule must not outlive it)."""
    old_means = np.array(
        [[segment.centroid.get(c, np.nan) for c in choice.columns] for segment in previous], dtype=float
    )
    old_scaled = prep.transform(old_means)
    cost = np.linalg.norm(centroids[:, None, :] - old_scaled[None, :, :], axis=2)
    keys = summary.get_column("segment_key").to_list()
    names = summary.get_column("persona_name").to_list()
    archetypes = summary.get_column("archetype").to_list()
    archetype_names = {archetype.name for archetype in ARCHETYPES}
    matched = [False] * len(keys)
    for new, old in zip(*linear_sum_assignment(cost), strict=True):
        if cost[new, old] <= MATCH_DISTANCE:
            keys[new], matched[new] = previous[old].segment_key, True
            earlier = previous[old].persona_name
            if earlier == archetypes[new] or (earlier not in archetype_names and archetypes[new] is None):
                names[new] = earlier
    numbers = [int(s.segment_key[1:]) for s in previous if s.segment_key[1:].isdigit()]
    next_number = 1 + max(numbers, default=0)
    for i, is_matched in enumerate(matched):
        if not is_matched:
            keys[i] = f"S{next_number}"
            next_number += 1
    return summary.with_columns(
        pl.Series("segment_key", keys), pl.Series("persona_name", names), pl.Series("matched_previous", matched)
    )


def _stability(scaled: np.ndarray, labels: np.ndarray, k: int, seed: int) -> dict:
    """Adjusted Rand index of the labels against refits with other seeds and on bootstrap samples."""
    sample = _sample(len(scaled), SEARCH_SAMPLE, seed + 2)
    points, reference = scaled[sample], labels[sample]
    rng = np.random.default_rng(seed + 3)
    seeds, boots = [], []
    for offset in (1, 2, 3):
        other = KMeans(n_clusters=k, n_init=SEARCH_N_INIT, random_state=seed + offset).fit(points)
        seeds.append(adjusted_rand_score(reference, other.labels_))
        resample = rng.choice(len(points), size=len(points), replace=True)
        boot = KMeans(n_clusters=k, n_init=SEARCH_N_INIT, random_state=seed + offset).fit(points[resample])
        boots.append(adjusted_rand_score(reference, boot.predict(points)))
    return {"stability_ari_seeds": float(np.mean(seeds)), "stability_ari_bootstrap": float(np.mean(boots))}


def _dbscan_noise(scaled: np.ndarray, seed: int) -> dict:
    """DBSCAN on a sample as a second opinion; eps from the 90th percentile of 10-NN distances."""
    points = scaled[_sample(len(scaled), DBSCAN_SAMPLE, seed + 4)]
    neighbours = NearestNeighbors(n_neighbors=10).fit(points)
    eps = float(np.quantile(neighbours.kneighbors(points)[0][:, -1], 0.9))
    labels = DBSCAN(eps=eps, min_samples=10).fit(points).labels_
    return {
        "dbscan_eps": eps,
        "dbscan_clusters": int(len(set(labels)) - (1 if -1 in labels else 0)),
        "dbscan_noise_share": float(np.mean(labels == -1)),
    }


def _tsne(customers: pl.DataFrame, scaled: np.ndarray, labels: np.ndarray, seed: int) -> pl.DataFrame:
    """t-SNE coordinates for a fixed-seed sample: a visual check that segments separate."""
    sample = _sample(len(scaled), TSNE_SAMPLE, seed + 5)
    perplexity = float(min(30, max(5, (len(sample) - 1) // 3)))
    embedded = TSNE(n_components=2, random_state=seed, perplexity=perplexity, init="pca").fit_transform(scaled[sample])
    return pl.DataFrame(
        {
            "customer_id": customers.get_column("customer_id").gather(sample),
            "segment_id": pl.Series(labels[sample], dtype=pl.Int32),
            "tsne_x": embedded[:, 0],
            "tsne_y": embedded[:, 1],
        }
    )

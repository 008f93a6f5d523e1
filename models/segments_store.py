"""Where a segments run lives in the warehouse: its tables, the latest-run views, and persona labels.

Persona labels (a name and a strategy set by people) are kept apart from model output, in
``ml_persona_labels`` keyed by the stable ``segment_key``, and applied in the latest views, so a
rename survives every re-run that keeps the segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb
import numpy as np
import polars as pl

from warehouse.dictionary import comment_columns, comment_table
from warehouse.history import latest_run_of

from .runs import append_table
from .segments import PersonaModel, PreviousSegment, SegmentationResult
from .warehouse_io import latest_run_id

SEGMENTS_COMMENTS = {
    "run_id": "The segments run (see ml_model_runs).",
    "customer_id": "The customer.",
    "segment_id": "Segment number within the run (0 = largest).",
    "segment_key": "Stable identity of the segment across runs (S1, S2, ...); persona labels are keyed by it.",
    "persona_name": "Persona name the model gave (labels set by people are applied in ml_latest_segments).",
    "distance_to_centroid": "Euclidean distance to the segment's centroid in standardised feature space.",
    "pca_x": "First principal component of the standardised features (for the persona scatter).",
    "pca_y": "Second principal component of the standardised features.",
}
SUMMARY_COMMENTS = {
    "run_id": "The segments run.",
    "segment_id": "Segment number within the run (0 = largest).",
    "segment_key": "Stable identity of the segment across runs.",
    "persona_name": "Persona name from the model: the matched archetype, else the description.",
    "description": "What sets the segment apart, in words, from its most distinctive features.",
    "archetype": "Business archetype the profile matches (Conservative Seniors, PayLater Users, ...), if any.",
    "strategy": "Recommended strategy of the archetype.",
    "manual_underwriting": "True when the archetype sends its cases to manual underwriting.",
    "customers": "Customers in the segment.",
    "share": "Share of all customers in the segment (0 to 1).",
    "top_features": "The three features whose segment mean is farthest from the population's, in z-scores.",
    "matched_previous": "True when the segment matched one of the previous run's by centroid and kept its key and name.",
}
PROFILE_COMMENTS = {
    "run_id": "The segments run.",
    "segment_id": "Segment number within the run.",
    "segment_key": "Stable identity of the segment.",
    "feature": "Column of the customers mart.",
    "segment_mean": "Mean of the feature in the segment.",
    "segment_median": "Median of the feature in the segment.",
    "population_mean": "Mean of the feature over all customers.",
    "z_score": "(segment mean - population mean) / population standard deviation.",
    "is_clustering_feature": "True when K-Means used the feature; others are profiled only.",
    "distinctiveness_rank": "1 = the feature that sets the segment apart most (largest |z|).",
}
K_COMMENTS = {
    "run_id": "The segments run.",
    "k": "Number of segments tried.",
    "inertia": "Within-cluster sum of squares on the search sample (the elbow curve).",
    "silhouette": "Mean silhouette on a fixed-seed sample (higher is better; chooses k).",
    "calinski_harabasz": "Calinski-Harabasz index (higher is better).",
    "davies_bouldin": "Davies-Bouldin index (lower is better).",
    "is_elbow": "True for the k at the elbow of the inertia curve.",
    "is_chosen": "True for the k the run used.",
}
TSNE_COMMENTS = {
    "run_id": "The segments run.",
    "customer_id": "A customer of the fixed-seed sample.",
    "segment_id": "The customer's segment in the run.",
    "tsne_x": "t-SNE coordinate 1.",
    "tsne_y": "t-SNE coordinate 2.",
}
MIGRATION_COMMENTS = {
    "run_id": "The segments run.",
    "previous_run_id": "The segments run before it.",
    "from_segment_key": "Segment of the customer in the previous run.",
    "to_segment_key": "Segment of the customer in this run.",
    "customers": "Customers who moved from the one to the other (the diagonal stayed).",
}
MODEL_COMMENTS = {
    "run_id": "The segments run.",
    "position": "Place of the feature in the standardised space (log1p features first, then the others).",
    "feature": "Column of the customers mart that K-Means used.",
    "is_logged": "True when the feature is taken as ln(1 + x) (after imputation, before scaling).",
    "impute_median": "Median of the feature over the fitted customers: what an unknown value counts as.",
    "scale_mean": "StandardScaler mean of the (logged) feature.",
    "scale_scale": "StandardScaler scale of the (logged) feature.",
    "centroids": "K-Means centroid coordinate of each segment on this feature, in segment_id order (standardised).",
}
LABELS_DDL = "segment_key VARCHAR PRIMARY KEY, persona_name VARCHAR, strategy VARCHAR, updated_at TIMESTAMP"
LABELS_COMMENTS = {
    "segment_key": "Stable segment identity the label applies to.",
    "persona_name": "Name people gave the persona; null keeps the model's name.",
    "strategy": "Strategy people set for the persona; null keeps the archetype's.",
    "updated_at": "When the label was last changed (UTC).",
}

LATEST_RUN = latest_run_of("segments")


def write_segments(
    con: duckdb.DuckDBPyConnection, run_id: str, customer_ids: pl.Series, result: SegmentationResult
) -> None:
    """Append a segments run's rows and (re)create the latest views."""
    summary = result.summary
    key_of = dict(summary.select("segment_id", "segment_key").iter_rows())
    name_of = dict(summary.select("segment_id", "persona_name").iter_rows())
    segments = pl.DataFrame(
        {
            "run_id": run_id,
            "customer_id": customer_ids,
            "segment_id": pl.Series(result.labels, dtype=pl.Int32),
            "distance_to_centroid": result.distances,
            "pca_x": result.coordinates[:, 0],
            "pca_y": result.coordinates[:, 1],
        }
    ).with_columns(
        pl.col("segment_id").replace_strict(key_of, return_dtype=pl.String).alias("segment_key"),
        pl.col("segment_id").replace_strict(name_of, return_dtype=pl.String).alias("persona_name"),
    )
    append_table(
        con,
        "ml_segments",
        segments.select(list(SEGMENTS_COMMENTS)),
        "One row per customer per segments run.",
        SEGMENTS_COMMENTS,
    )
    append_table(
        con,
        "ml_segment_summary",
        summary.with_columns(pl.lit(run_id).alias("run_id")).select(list(SUMMARY_COMMENTS)),
        "One row per segment per segments run: its persona, description, archetype, strategy and size.",
        SUMMARY_COMMENTS,
    )
    profiles = result.profiles.with_columns(
        pl.lit(run_id).alias("run_id"),
        pl.col("segment_id").replace_strict(key_of, return_dtype=pl.String).alias("segment_key"),
    )
    append_table(
        con,
        "ml_segment_profiles",
        profiles.select(list(PROFILE_COMMENTS)),
        "One row per segment per feature per segments run: mean, median and z-score against everyone.",
        PROFILE_COMMENTS,
    )
    k_rows = pl.DataFrame(result.k_table).with_columns(pl.lit(run_id).alias("run_id"))
    append_table(
        con, "ml_k_selection", k_rows.select(list(K_COMMENTS)), "One row per candidate k per segments run.", K_COMMENTS
    )
    append_table(
        con,
        "ml_segment_tsne",
        result.tsne.with_columns(pl.lit(run_id).alias("run_id")).select(list(TSNE_COMMENTS)),
        "One row per sampled customer per segments run: t-SNE coordinates for a visual check.",
        TSNE_COMMENTS,
    )
    if result.model is not None:
        model = result.model
        append_table(
            con,
            "ml_segment_model",
            pl.DataFrame(
                {
                    "run_id": run_id,
                    "position": pl.Series(range(len(model.columns)), dtype=pl.Int32),
                    "feature": list(model.columns),
                    "is_logged": list(model.logged),
                    "impute_median": model.medians,
                    "scale_mean": model.mean,
                    "scale_scale": model.scale,
                    "centroids": [list(map(float, model.centroids[:, j])) for j in range(len(model.columns))],
                }
            ),
            "One row per clustering feature per segments run: what assigning a new customer to a persona needs.",
            MODEL_COMMENTS,
        )
    _write_migration(con, run_id)
    ensure_labels_and_views(con)


#: The stored persona model of the latest segments run, one row per feature, as
#: :func:`persona_model_from_rows` reads it (the scoring API runs it through its reader).
PERSONA_MODEL_SQL = (
    "SELECT run_id, feature, is_logged, impute_median, scale_mean, scale_scale, centroids "
    f"FROM ml_segment_model WHERE run_id = {LATEST_RUN} ORDER BY position"
)


def load_persona_model(con: duckdb.DuckDBPyConnection) -> tuple[str, PersonaModel]:
    """(run_id, model) of the latest segments run, read back from ``ml_segment_model``; LookupError
    when the warehouse has no segments run or one trained before the model was stored."""
    has_table = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'ml_segment_model'").fetchall()
    rows = con.execute(PERSONA_MODEL_SQL).fetchall() if has_table[0][0] else []
    if not rows:
        raise LookupError("the latest segments run has no stored persona model: run `segrisk train segments` again")
    return rows[0][0], persona_model_from_rows(rows)


def persona_model_from_rows(rows: Sequence[Sequence]) -> PersonaModel:
    """The persona model from the rows of :data:`PERSONA_MODEL_SQL` (at least one)."""
    return PersonaModel(
        columns=tuple(r[1] for r in rows),
        logged=tuple(bool(r[2]) for r in rows),
        medians=np.array([r[3] for r in rows], dtype=float),
        mean=np.array([r[4] for r in rows], dtype=float),
        scale=np.array([r[5] for r in rows], dtype=float),
        centroids=np.array([r[6] for r in rows], dtype=float).T,
    )


def _write_migration(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    previous = latest_run_id(con, "segments")
    if previous is None:
        return
    moves = con.sql(
        """
        SELECT ? AS run_id, ? AS previous_run_id, old.segment_key AS from_segment_key,
               new.segment_key AS to_segment_key, count(*) AS customers
        FROM ml_segments new JOIN ml_segments old USING (customer_id)
        WHERE new.run_id = ? AND old.run_id = ?
        GROUP BY ALL ORDER BY from_segment_key, to_segment_key
        """,
        params=[run_id, previous, run_id, previous],
    ).pl()
    append_table(
        con,
        "ml_segment_migration",
        moves,
        "One row per (previous segment, new segment) pair per segments run: how many customers moved.",
        MIGRATION_COMMENTS,
    )


def ensure_labels_and_views(con: duckdb.DuckDBPyConnection) -> None:
    """The labels table and the views that apply it to the latest segments run."""
    con.execute(f"CREATE TABLE IF NOT EXISTS ml_persona_labels ({LABELS_DDL})")
    comment_table(
        con, "ml_persona_labels", "One row per labelled segment key: persona names and strategies set by people."
    )
    comment_columns(con, "ml_persona_labels", LABELS_COMMENTS)
    con.execute(
        f"""
        CREATE OR REPLACE VIEW ml_latest_segment_summary AS
        SELECT s.run_id, s.segment_id, s.segment_key,
               coalesce(l.persona_name, s.persona_name) AS persona_name,
               s.description, s.archetype,
               coalesce(l.strategy, s.strategy) AS strategy,
               s.manual_underwriting, s.customers, s.share, s.top_features
        FROM ml_segment_summary s LEFT JOIN ml_persona_labels l USING (segment_key)
        WHERE s.run_id = {LATEST_RUN}
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE VIEW ml_latest_segments AS
        SELECT g.customer_id, g.run_id, g.segment_id, g.segment_key, p.persona_name, p.strategy,
               p.manual_underwriting, g.distance_to_centroid, g.pca_x, g.pca_y
        FROM ml_segments g JOIN ml_latest_segment_summary p USING (run_id, segment_key)
        WHERE g.run_id = {LATEST_RUN}
        """
    )
    comment_table(
        con,
        "ml_latest_segment_summary",
        "View: one row per segment of the latest segments run, with persona labels applied.",
        view=True,
    )
    comment_columns(
        con,
        "ml_latest_segment_summary",
        {k: v for k, v in SUMMARY_COMMENTS.items() if k != "matched_previous"}
        | {
            "persona_name": "Persona name: the label people set, else the model's.",
            "strategy": "Strategy: the label people set, else the archetype's.",
        },
    )
    comment_table(
        con,
        "ml_latest_segments",
        "View: one row per customer with their persona in the latest segments run.",
        view=True,
    )
    comment_columns(
        con,
        "ml_latest_segments",
        {
            k: SEGMENTS_COMMENTS[k]
            for k in ("customer_id", "run_id", "segment_id", "segment_key", "distance_to_centroid", "pca_x", "pca_y")
        }
        | {
            "persona_name": "Persona name: the label people set, else the model's.",
            "strategy": "Strategy: the label people set, else the archetype's.",
            "manual_underwriting": SUMMARY_COMMENTS["manual_underwriting"],
        },
    )


def previous_segments(con: duckdb.DuckDBPyConnection) -> list[PreviousSegment]:
    """The latest run's segments with their centroids (feature means), for carrying keys and names over."""
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'ml_segment_summary'").fetchall()[0][
        0
    ]
    if not exists:
        return []
    rows = con.execute(
        f"""
        SELECT s.segment_key, s.persona_name, p.feature, p.segment_mean
        FROM ml_segment_summary s JOIN ml_segment_profiles p USING (run_id, segment_id)
        WHERE s.run_id = {LATEST_RUN} AND p.is_clustering_feature
        ORDER BY s.segment_key, p.feature
        """
    ).fetchall()
    segments: dict[str, PreviousSegment] = {}
    for key, name, feature, mean in rows:
        segments.setdefault(key, PreviousSegment(key, name, {})).centroid[feature] = mean
    return list(segments.values())


def set_label(
    con: duckdb.DuckDBPyConnection, segment_key: str, *, name: str | None = None, strategy: str | None = None
) -> None:
    """Rename a persona or set its strategy; the other field keeps its value."""
    ensure_labels_and_views(con)
    known = con.execute("SELECT count(*) FROM ml_segment_summary WHERE segment_key = ?", [segment_key]).fetchall()[0][0]
    if not known:
        raise LookupError(f"no segment '{segment_key}' in this warehouse (see `segrisk personas list`)")
    upsert_labels(con, [(segment_key, name, strategy, datetime.now(UTC).replace(tzinfo=None))])


def upsert_labels(con: duckdb.DuckDBPyConnection, labels: list[tuple]) -> None:
    """(segment_key, name, strategy, updated_at) rows into ml_persona_labels: a null keeps the
    field's value, and an older change never overwrites a newer one."""
    con.executemany(
        """
        INSERT INTO ml_persona_labels VALUES (?, ?, ?, ?)
        ON CONFLICT (segment_key) DO UPDATE SET
            persona_name = coalesce(excluded.persona_name, ml_persona_labels.persona_name),
            strategy = coalesce(excluded.strategy, ml_persona_labels.strategy),
            updated_at = excluded.updated_at
        WHERE excluded.updated_at >= ml_persona_labels.updated_at
        """,
        [list(label) for label in labels],
    )

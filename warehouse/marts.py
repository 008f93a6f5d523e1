"""Marts the dashboard reads: pre-joined and pre-aggregated so every page query is a few ms.

* ``mart_customer_profile``: one row per customer with what the global filters and the
  customer-level pages need (persona, age band, region, grade, products held, open alerts),
  joined once instead of on every request. It is rebuilt after a build and after every model
  run, since personas, grades and alerts come from the model tables.
* ``mart_customer_months``: one row per customer and month with transactions and the monthly
  snapshot, sorted by customer so one customer's history is read through DuckDB's zone maps
  instead of a scan of the transaction table. It depends only on the build's data.

This module knows the model tables only by name (it is SQL over the warehouse); it imports
nothing from ``models``.
"""

from __future__ import annotations

from typing import NamedTuple

import duckdb

from .dictionary import comment_columns, comment_table
from .history import latest_run_of

PROFILE = "mart_customer_profile"
MONTHS = "mart_customer_months"

PROFILE_GRAIN = (
    "One row per customer: the dimensions the dashboard filters by (persona, age band, region, risk grade, "
    "products held) and the latest model outputs, rebuilt after every build and model run."
)
PROFILE_COMMENTS = {
    "customer_id": "Customer key, as in customers.",
    "persona_key": "Stable key of the customer's persona in the latest segmentation run (ml_latest_segments); "
    "'unassigned' when no segmentation has run.",
    "persona_name": "Name of that persona at the time of the last model run ('Unassigned' when none).",
    "pca_x": "First principal component of the customer's scaled clustering features (the persona map's x); "
    "NULL when no segmentation has run.",
    "pca_y": "Second principal component (the persona map's y); NULL when no segmentation has run.",
    "age_band": "Age group (customers.age_band); 'unknown' when the dataset has no age.",
    "region": "Region (customers.region); 'unknown' when the dataset has none.",
    "grade": "Risk grade A (best) to E from the latest risk run; 'unscored' when there is no PD model.",
    "pd": "Calibrated probability of default from the latest risk run (NULL when unscored).",
    "score": "Scorecard points from the latest risk run (NULL when unscored).",
    "decision": "Approval decision under the current policy: approve, review or decline (NULL when unscored).",
    "is_defaulted": "Observed default outcome (NULL when the dataset has no target).",
    "products": "Products the customer holds, by name (from the has_* flags the spec declares products); empty when unknown.",
    "product_count": "Number of products held.",
    "open_alerts": "Early-warning alerts of the latest run not acknowledged when the model last ran.",
    "offers": "Cross-sell recommendations of the latest run.",
    "credit_offers_withheld": "Credit products of the customer's persona list that the latest cross-sell run "
    "withheld (ml_credit_withheld: blocked grade or open alert).",
}

MONTHS_GRAIN = (
    "One row per customer and calendar month with activity: transaction count and amounts, and the month's "
    "snapshot (balance, utilization, days past due, credit score) where the dataset has them. Sorted by "
    "customer so one customer's history is read without a scan."
)
MONTHS_COMMENTS = {
    "customer_id": "Customer key, as in customers.",
    "month": "First day of the calendar month.",
    "transactions": "Number of transactions in the month (0 when there were none or the dataset has none).",
    "amount_spent": "Sum of transaction amounts in the month, in the dataset's currency.",
    "balance": "Snapshot balance at the month (NULL without snapshots).",
    "utilization": "Snapshot credit utilization, 0-1 (NULL without snapshots).",
    "days_past_due": "Snapshot days past due (NULL without snapshots).",
    "credit_score": "Snapshot credit score (NULL without snapshots).",
}


def _columns(con: duckdb.DuckDBPyConnection, name: str) -> set[str]:
    rows = con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [name]).fetchall()
    return {row[0] for row in rows}


def product_flag_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The customers mart's product-holding flags: the columns the spec declared ``product = true``.

    A warehouse built before flags were declared has no ``is_product_flag`` in ``meta_columns``;
    there the ``has_*`` columns are taken, as they were then.
    """
    if "is_product_flag" in _columns(con, "meta_columns"):
        rows = con.execute("SELECT column_name FROM meta_columns WHERE is_product_flag ORDER BY column_name").fetchall()
        return [row[0] for row in rows]
    return sorted(c for c in _columns(con, "customers") if c.startswith("has_"))


def _exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(_columns(con, name))


def _column_comments(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """The comments of a table's columns (those that have one), to carry over to a table made from it."""
    return dict(
        con.execute(
            "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = ? AND comment IS NOT NULL", [table]
        ).fetchall()
    )


def refresh_customer_profile(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create ``mart_customer_profile`` from customers and whatever model outputs exist."""
    customer_columns = _columns(con, "customers")
    products = [c for c in product_flag_columns(con) if c in customer_columns]
    # The flag columns are named by the spec (code, not user input), so they may appear in the text.
    product_list = (
        "list_filter(["
        + ", ".join(f"CASE WHEN c.{p}::BOOLEAN THEN '{p[4:]}' END" for p in products)
        + "], lambda x: x IS NOT NULL)"
        if products
        else "[]::VARCHAR[]"
    )
    age_band = "c.age_band" if "age_band" in customer_columns else "NULL"
    region = "c.region::VARCHAR" if "region" in customer_columns else "NULL"
    target = "c.is_defaulted" if "is_defaulted" in customer_columns else "NULL::BOOLEAN"
    joins, persona_key, persona_name, pca_x, pca_y = [], "NULL", "NULL", "NULL", "NULL"
    if _exists(con, "ml_latest_segments"):
        joins.append("LEFT JOIN ml_latest_segments s USING (customer_id)")
        persona_key, persona_name, pca_x, pca_y = "s.segment_key", "s.persona_name", "s.pca_x", "s.pca_y"
    grade, pd, score, decision = "NULL", "NULL::DOUBLE", "NULL::DOUBLE", "NULL"
    if _exists(con, "ml_latest_risk_scores"):
        joins.append("LEFT JOIN ml_latest_risk_scores r USING (customer_id)")
        grade, pd, score, decision = "r.grade", "r.pd", "r.score", "r.decision"
    open_alerts = "0"
    if _exists(con, "ml_latest_alerts"):
        joins.append(
            "LEFT JOIN (SELECT customer_id, count(*) AS n FROM ml_latest_alerts WHERE NOT is_acknowledged "
            "GROUP BY customer_id) a USING (customer_id)"
        )
        open_alerts = "coalesce(a.n, 0)"
    offers = "0"
    if _exists(con, "ml_recommendations"):
        joins.append(
            "LEFT JOIN (SELECT customer_id, count(*) AS n FROM ml_recommendations "
            "WHERE run_id = (SELECT max(run_id) FROM ml_recommendations) GROUP BY customer_id) o USING (customer_id)"
        )
        offers = "coalesce(o.n, 0)"
    withheld = "0"
    if _exists(con, "ml_credit_withheld"):
        joins.append(
            "LEFT JOIN (SELECT customer_id, count(*) AS n FROM ml_credit_withheld "
            "WHERE run_id = (SELECT max(run_id) FROM ml_credit_withheld) GROUP BY customer_id) w USING (customer_id)"
        )
        withheld = "coalesce(w.n, 0)"
    con.execute(f"DROP TABLE IF EXISTS {PROFILE}")
    con.execute(
        f"""
        CREATE TABLE {PROFILE} AS
        SELECT
            c.customer_id,
            coalesce({persona_key}, 'unassigned')::VARCHAR AS persona_key,
            coalesce({persona_name}, 'Unassigned')::VARCHAR AS persona_name,
            {pca_x}::DOUBLE AS pca_x,
            {pca_y}::DOUBLE AS pca_y,
            coalesce({age_band}, 'unknown')::VARCHAR AS age_band,
            coalesce({region}, 'unknown')::VARCHAR AS region,
            coalesce({grade}, 'unscored')::VARCHAR AS grade,
            {pd}::DOUBLE AS pd,
            {score}::DOUBLE AS score,
            {decision}::VARCHAR AS decision,
            {target}::BOOLEAN AS is_defaulted,
            {product_list}::VARCHAR[] AS products,
            len({product_list})::INTEGER AS product_count,
            {open_alerts}::INTEGER AS open_alerts,
            {offers}::INTEGER AS offers,
            {withheld}::INTEGER AS credit_offers_withheld
        FROM customers c
        {" ".join(joins)}
        ORDER BY c.customer_id
        """
    )
    comment_table(con, PROFILE, PROFILE_GRAIN)
    comment_columns(con, PROFILE, PROFILE_COMMENTS)


#: The customer dimensions the global filters read, copied onto each fact mart row.
FILTER_DIMENSIONS = ("persona_key", "persona_name", "age_band", "region", "grade", "products")


class FactMart(NamedTuple):
    """A model table with the customer's filter dimensions beside each row, so a filtered page query
    reads one table instead of joining a million customer profiles (3-10x faster at bank scale)."""

    name: str
    source: str  # the model table it copies
    grain: str
    rows: str  # SQL selecting the source rows to keep (alias ``f``), with any extra columns
    #: The order the rows are stored in: the dashboard table's default order, so its first page
    #: is the first rows meeting the filters, which a scan stops reading once it has them, instead
    #: of sorting every row the filters keep (dashboard/paged.py, ``stored_sort``).
    order: str


FACT_MARTS = (
    FactMart(
        "mart_alerts",
        "ml_alerts",
        "One row per early-warning alert of every warnings run (as ml_alerts), with whether it is of the latest "
        "run, whether it was acknowledged when the model last ran, and the customer's filter dimensions now. Stored "
        "high severity first, then by customer and alert id.",
        "SELECT f.*, f.run_id = " + latest_run_of("warnings") + " AS in_latest_run, "
        "row_number() OVER (PARTITION BY f.alert_id ORDER BY r.finished_at DESC) = 1 AS is_newest_of_alert, "
        "f.alert_id IN (SELECT alert_id FROM ml_alert_acknowledgements) AS is_acknowledged "
        "FROM ml_alerts f JOIN ml_model_runs r USING (run_id)",
        "list_position(['low', 'medium', 'high'], f.severity) DESC NULLS LAST, f.customer_id, f.alert_id",
    ),
    FactMart(
        "mart_offers",
        "ml_recommendations",
        "One row per customer and recommended product of the latest cross-sell run (as ml_recommendations), "
        "with the customer's filter dimensions. Stored by customer and priority.",
        "SELECT f.* FROM ml_recommendations f WHERE f.run_id = " + latest_run_of("cross_sell"),
        "f.customer_id, f.priority",
    ),
    FactMart(
        "mart_rfm",
        "ml_rfm",
        "One row per customer scored by the latest RFM run (as ml_rfm), with the customer's filter dimensions. "
        "Stored by spend, highest first, then by customer.",
        "SELECT f.* FROM ml_rfm f WHERE f.run_id = " + latest_run_of("rfm"),
        "f.rfm_monetary DESC NULLS LAST, f.customer_id",
    ),
)
FACT_MART_COMMENTS = {
    "in_latest_run": "True for the alerts of the latest warnings run (those ml_latest_alerts shows).",
    "is_newest_of_alert": "True on one row per alert_id, that of the newest run that raised it: counting these "
    "counts each alert once across runs.",
    "is_acknowledged": "True when the alert was acknowledged (ml_alert_acknowledgements) at the last model run; "
    "acknowledgements made in the dashboard since then are in the application-state store.",
} | {name: PROFILE_COMMENTS[name] for name in FILTER_DIMENSIONS}


def refresh_fact_marts(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the customer cube, the persona map, each fact mart whose model table exists and the
    fact cubes over them, from ``mart_customer_profile`` (call after :func:`refresh_customer_profile`)."""
    refresh_customer_cube(con)
    refresh_persona_map(con)
    refresh_customer_features(con)
    dimensions = ", ".join(f"p.{name}" for name in FILTER_DIMENSIONS)
    for mart in FACT_MARTS:
        con.execute(f"DROP TABLE IF EXISTS {mart.name}")
        if not _exists(con, mart.source) or (
            mart.source == "ml_alerts" and not _exists(con, "ml_alert_acknowledgements")
        ):
            continue
        con.execute(
            f"CREATE TABLE {mart.name} AS SELECT f.*, {dimensions} FROM ({mart.rows}) f "
            f"JOIN {PROFILE} p USING (customer_id) ORDER BY {mart.order}"
        )
        source_comments = _column_comments(con, mart.source)
        present = _columns(con, mart.name)
        comments = source_comments | FACT_MART_COMMENTS
        comment_table(con, mart.name, mart.grain)
        comment_columns(con, mart.name, {column: comments[column] for column in present if column in comments})
    for cube in FACT_CUBES:
        refresh_fact_cube(con, cube)
    refresh_rfm_sample(con)


class FactCube(NamedTuple):
    """Counts of a fact mart per combination of some of its columns and the filter dimensions: the
    counts and sums a filtered page shows, from tens of thousands of rows instead of millions."""

    name: str
    source: str  # a fact mart
    grain: str
    groups: tuple[str, ...]  # the mart's columns grouped by, besides the filter dimensions
    measures: tuple[tuple[str, str, str], ...]  # (column, SQL over the mart's rows, comment)


FACT_CUBES = (
    FactCube(
        "mart_rfm_cube",
        "mart_rfm",
        "One row per RFM grid cell (recency and frequency scores), segment and cluster of the latest RFM run, "
        "and combination of the customer filter dimensions: segment sizes, the grid, cluster counts and the "
        "customer list's row count under any global filter.",
        ("run_id", "r_score", "f_score", "segment", "cluster_id"),
        (
            ("customers", "count(*)", "Customers scored in the combination."),
            ("monetary", "sum(rfm_monetary)", "Their total spend (rfm_monetary summed)."),
        ),
    ),
    FactCube(
        "mart_offer_cube",
        "mart_offers",
        "One row per product offered by the latest cross-sell run and combination of the customer filter "
        "dimensions: the campaign mix and the offers table's row count under any global filter.",
        ("product", "product_name"),
        (
            ("offers", "count(*)", "Offers of the product (one per customer offered it)."),
            (
                "first_choice",
                "count(*) FILTER (priority = 1)",
                "Offers of the product as the customer's first choice (priority 1); every customer with "
                "offers has exactly one, so summed over products it counts customers.",
            ),
        ),
    ),
)


def refresh_fact_cube(con: duckdb.DuckDBPyConnection, cube: FactCube) -> None:
    """(Re)create one fact cube from its fact mart; none when the mart is absent."""
    con.execute(f"DROP TABLE IF EXISTS {cube.name}")
    if not _exists(con, cube.source):
        return
    groups = ", ".join((*cube.groups, *FILTER_DIMENSIONS))
    measures = ", ".join(
        f"{sql}::BIGINT AS {column}" if sql.startswith("count") else f"{sql} AS {column}"
        for column, sql, _ in cube.measures
    )
    con.execute(f"CREATE TABLE {cube.name} AS SELECT {groups}, {measures} FROM {cube.source} GROUP BY ALL ORDER BY ALL")
    source_comments = _column_comments(con, cube.source)
    comment_table(con, cube.name, cube.grain)
    comment_columns(
        con,
        cube.name,
        {column: source_comments[column] for column in (*cube.groups, *FILTER_DIMENSIONS) if column in source_comments}
        | {column: comment for column, _, comment in cube.measures},
    )


CUBE = "mart_customer_cube"
CUBE_GRAIN = (
    "One row per combination of persona, age band, region, risk grade and set of products held, with the "
    "number of customers and the sums the dashboard's headline figures need: every count and rate of "
    "mart_customer_profile under any global filter, from some 30,000 rows instead of a million."
)
CUBE_COMMENTS = {name: PROFILE_COMMENTS[name] for name in FILTER_DIMENSIONS} | {
    "customers": "Customers in the combination.",
    "known_outcomes": "Customers with a known default outcome (is_defaulted not NULL).",
    "defaulted": "Customers who defaulted.",
    "scored": "Customers with a PD (scored by the latest risk run).",
    "pd_sum": "Sum of their PDs (pd_sum / scored is the mean PD).",
    "decided": "Customers with an approval decision.",
    "automated": "Customers decided without manual review (approve or decline).",
    "approved": "Customers the policy approves.",
    "open_alerts": "Sum of the customers' open early-warning alerts (as in mart_customer_profile.open_alerts).",
    "credit_offers_withheld": "Sum of the credit offers the latest cross-sell run withheld from the customers.",
    "customers_with_credit_withheld": "Customers with at least one credit offer withheld.",
}


def refresh_customer_cube(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create ``mart_customer_cube`` from ``mart_customer_profile``."""
    con.execute(f"DROP TABLE IF EXISTS {CUBE}")
    con.execute(
        f"""
        CREATE TABLE {CUBE} AS
        SELECT persona_key, persona_name, age_band, region, grade, products,
            count(*) AS customers,
            count(is_defaulted) AS known_outcomes,
            count_if(is_defaulted) AS defaulted,
            count(pd) AS scored,
            sum(pd) AS pd_sum,
            count(decision) AS decided,
            count_if(decision <> 'review') AS automated,
            count_if(decision = 'approve') AS approved,
            sum(open_alerts)::BIGINT AS open_alerts,
            sum(credit_offers_withheld)::BIGINT AS credit_offers_withheld,
            count_if(credit_offers_withheld > 0) AS customers_with_credit_withheld
        FROM {PROFILE}
        GROUP BY ALL
        ORDER BY ALL
        """
    )
    comment_table(con, CUBE, CUBE_GRAIN)
    comment_columns(con, CUBE, CUBE_COMMENTS)


MAP = "mart_persona_map"
MAP_GRAIN = (
    "One row per customer placed on the persona map (with 2-D coordinates), in the order of a hash of the "
    "customer id: the first rows meeting a filter are a fixed random sample of the customers it keeps, which "
    "a scan stops reading as soon as it has enough."
)
MAP_COMMENTS = {
    name: PROFILE_COMMENTS[name]
    for name in ("customer_id", "persona_key", "pca_x", "pca_y", "age_band", "region", "grade", "products")
}


def refresh_persona_map(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create ``mart_persona_map`` from ``mart_customer_profile``."""
    con.execute(f"DROP TABLE IF EXISTS {MAP}")
    con.execute(
        f"CREATE TABLE {MAP} AS SELECT {', '.join(MAP_COMMENTS)} FROM {PROFILE} "
        "WHERE pca_x IS NOT NULL ORDER BY hash(customer_id), customer_id"
    )
    comment_table(con, MAP, MAP_GRAIN)
    comment_columns(con, MAP, MAP_COMMENTS)


def build_customer_months(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``mart_customer_months`` from the staged transactions and snapshots, where present."""
    parts: list[str] = []
    transactions = _columns(con, "stg_transactions")
    snapshots = _columns(con, "stg_snapshots")
    has_txn = {"customer_id", "occurred_at", "amount"} <= transactions
    has_snap = {"customer_id", "period"} <= snapshots
    snap = {
        c: (f"s.{c}" if c in snapshots else "NULL") for c in ("balance", "utilization", "days_past_due", "credit_score")
    }
    if has_txn:
        parts.append(
            "t AS (SELECT customer_id, date_trunc('month', occurred_at)::DATE AS month, count(*) AS transactions, "
            "sum(amount) AS amount_spent FROM stg_transactions GROUP BY ALL)"
        )
    if has_snap:
        parts.append(
            f"s AS (SELECT customer_id, date_trunc('month', period)::DATE AS month, "
            f"{', '.join(f'{v}::DOUBLE AS {k}' for k, v in snap.items())} FROM stg_snapshots s)"
        )
    measures = ", ".join(f"{k}::DOUBLE AS {k}" for k in snap)
    if has_txn and has_snap:
        body = (
            "SELECT customer_id, month, coalesce(t.transactions, 0) AS transactions, "
            "coalesce(t.amount_spent, 0) AS amount_spent, "
            + ", ".join(f"s.{k}" for k in snap)
            + " FROM t FULL OUTER JOIN s USING (customer_id, month)"
        )
    elif has_txn:
        nulls = ", ".join(f"NULL::DOUBLE AS {k}" for k in snap)
        body = f"SELECT customer_id, month, transactions, amount_spent, {nulls} FROM t"
    elif has_snap:
        body = f"SELECT customer_id, month, 0 AS transactions, 0.0 AS amount_spent, {', '.join(snap)} FROM s"
    else:
        nulls = ", ".join(f"NULL::DOUBLE AS {k}" for k in snap)
        body = f"SELECT NULL::BIGINT AS customer_id, NULL::DATE AS month, 0 AS transactions, 0.0 AS amount_spent, {nulls} WHERE false"
    with_clause = ("WITH " + ", ".join(parts) + " ") if parts else ""
    con.execute(f"DROP TABLE IF EXISTS {MONTHS}")
    con.execute(
        f"CREATE TABLE {MONTHS} AS SELECT customer_id, month, transactions::BIGINT AS transactions, "
        f"amount_spent::DOUBLE AS amount_spent, {measures} FROM ({with_clause}{body}) ORDER BY customer_id, month"
    )
    comment_table(con, MONTHS, MONTHS_GRAIN)
    comment_columns(con, MONTHS, MONTHS_COMMENTS)


RFM_SAMPLE = "mart_rfm_sample"
#: mart_rfm_sample keeps one customer in this many.
RFM_SAMPLE_EVERY = 10
RFM_SAMPLE_GRAIN = (
    f"One row per customer of mart_rfm whose hash(customer_id) is a multiple of {RFM_SAMPLE_EVERY}: a fixed "
    f"random sample of about 1 in {RFM_SAMPLE_EVERY} scored customers, with the same columns, from which the "
    "dashboard reads quartiles of large populations (sorting every value of a million customers costs ten "
    "times as much, for quartiles that move by a hair)."
)


def refresh_rfm_sample(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create ``mart_rfm_sample`` from ``mart_rfm``; none when the mart is absent."""
    con.execute(f"DROP TABLE IF EXISTS {RFM_SAMPLE}")
    if not _exists(con, "mart_rfm"):
        return
    con.execute(
        f"CREATE TABLE {RFM_SAMPLE} AS SELECT * FROM mart_rfm "
        f"WHERE hash(customer_id) % {RFM_SAMPLE_EVERY} = 0 ORDER BY customer_id"
    )
    comment_table(con, RFM_SAMPLE, RFM_SAMPLE_GRAIN)
    comment_columns(con, RFM_SAMPLE, _column_comments(con, "mart_rfm"))


FEATURES = "mart_customer_features"
#: The filter dimensions and the outcome each row of the features mart carries.
FEATURE_DIMENSIONS = ("persona_key", "age_band", "region", "grade", "products", "is_defaulted")
FEATURES_GRAIN = (
    "One row per customer: every numeric column of customers beside the customer's persona, filter "
    "dimensions and default outcome from mart_customer_profile, sorted by customer. The statistics page's "
    "distributions and box plots of any feature under any filter read this one table (about half the time "
    "of pairing customers with the profile on every request)."
)


def refresh_customer_features(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create ``mart_customer_features`` from customers and ``mart_customer_profile``."""
    con.execute(f"DROP TABLE IF EXISTS {FEATURES}")
    numeric = [
        name
        for (name,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'customers' AND (data_type IN "
            "('TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'HUGEINT', 'UTINYINT', 'USMALLINT', 'UINTEGER', "
            "'UBIGINT', 'FLOAT', 'DOUBLE') OR data_type LIKE 'DECIMAL%') ORDER BY column_index"
        ).fetchall()
        if name not in FEATURE_DIMENSIONS
    ]
    if "customer_id" not in numeric:
        return
    # Column names come from the warehouse's own catalogue, quoted: never user input.
    columns = ", ".join(f'c."{name}"' for name in numeric)
    dimensions = ", ".join(f"p.{name}" for name in FEATURE_DIMENSIONS)
    con.execute(
        f"CREATE TABLE {FEATURES} AS SELECT {columns}, {dimensions} FROM customers c "
        f"JOIN {PROFILE} p USING (customer_id) ORDER BY c.customer_id"
    )
    comment_table(con, FEATURES, FEATURES_GRAIN)
    customer_comments = _column_comments(con, "customers")
    comment_columns(
        con,
        FEATURES,
        {name: customer_comments.get(name) or f"customers.{name}." for name in numeric}
        | {name: PROFILE_COMMENTS[name] for name in FEATURE_DIMENSIONS},
    )

"""Cross-sell: which product to offer each customer next, following their persona's strategy.

Each persona archetype of the seed analyses has a strategy in words (``personas.ARCHETYPES``);
here it becomes an ordered list of products. A customer is offered the first products of their
persona's list that they can take up: ones they do not hold, or, for upgrades and top-ups, ones
whose prerequisite they hold. Risk overrides the persona: customers in a blocked grade or with
an open early-warning alert get no new credit, and non-credit alternatives fill the gap instead,
so the campaign still has something to say to them.

Everything is polars over (customer, candidate product) pairs: one filter per catalogue product,
a sort and a few joins, and no Python per customer, so a million customers take a few seconds. The catalogue and the preferences are plain
data so a product manager can read (and a test can check) exactly what is offered to whom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import polars as pl

from .personas import ARCHETYPES
from .runs import ModelError, append_table


@dataclass(frozen=True)
class Product:
    """An offer of the catalogue: who may receive it and how the reason describes it."""

    key: str
    name: str
    #: True when taking the offer up creates new credit exposure: risk can block it.
    is_credit: bool
    #: Words for why it fits, used in the reason ("wealth products fit").
    pitch: str
    #: The holding flag that must be false: you do not sell a savings account to a saver.
    requires_absent: str | None = None
    #: Holding flags of which at least one must be true: a top-up needs a loan to top up.
    requires_any: tuple[str, ...] = ()
    #: Offers of one family are alternatives to each other: a list may hold only one (checked at import).
    family: str = ""


#: Loans that can be topped up; a credit card is left out because holding a card is not owing on it.
LOAN_FLAGS = ("has_personal_loan", "has_car_loan", "has_mortgage")
DEBT_FLAGS = (*LOAN_FLAGS, "has_bnpl")

CATALOGUE: tuple[Product, ...] = (
    Product("savings", "Savings account", False, "a savings habit fits", requires_absent="has_savings"),
    Product("checking", "Current account", False, "a current account fits", requires_absent="has_checking"),
    Product("term_deposit", "Term deposit", False, "a fixed-term deposit fits", requires_absent="has_term_deposit"),
    Product(
        "credit_card",
        "Credit card",
        True,
        "a credit card fits",
        requires_absent="has_credit_card",
        family="credit_card",
    ),
    Product("personal_loan", "Personal loan", True, "a personal loan fits", requires_absent="has_personal_loan"),
    Product("car_loan", "Car loan", True, "a pre-approved car loan fits", requires_absent="has_car_loan"),
    Product("mortgage", "Mortgage", True, "a first mortgage fits", requires_absent="has_mortgage"),
    Product("bnpl", "Buy now, pay later", True, "pay-later with a strict limit fits", requires_absent="has_bnpl"),
    Product("investments", "Investment products", False, "wealth products fit", requires_absent="has_investments"),
    Product("loan_top_up", "Loan top-up", True, "top-up offer", requires_any=LOAN_FLAGS),
    # A refinancing is a new loan that pays off the old one: it is underwritten like new credit.
    Product("refinancing", "Refinancing", True, "refinancing offer", requires_any=DEBT_FLAGS),
    Product("premium_card", "Premium card upgrade", True, "card upgrade offer", requires_any=("has_credit_card",)),
    Product(
        "starter_card",
        "Starter credit card",
        True,
        "a starter card with a small limit fits",
        requires_absent="has_credit_card",
        family="credit_card",
    ),
)
PRODUCTS: dict[str, Product] = {product.key: product for product in CATALOGUE}

#: How the reason names a holding: (held, not held).
FLAG_WORDS: dict[str, tuple[str, str]] = {
    "has_savings": ("a savings account", "no savings account"),
    "has_checking": ("a current account", "no current account"),
    "has_term_deposit": ("a term deposit", "no term deposit"),
    "has_credit_card": ("a credit card", "no credit card"),
    "has_personal_loan": ("a personal loan", "no personal loan"),
    "has_car_loan": ("a car loan", "no car loan"),
    "has_mortgage": ("a mortgage", "no mortgage"),
    "has_bnpl": ("buy-now-pay-later", "no buy-now-pay-later"),
    "has_investments": ("investments", "no investments"),
}

#: Archetype -> products in the order its strategy puts them (from the seed analyses).
PREFERENCES: dict[str, tuple[str, ...]] = {
    "Affluent & Investment Ready": ("investments", "premium_card", "term_deposit"),
    "Credit Active Middle": ("loan_top_up", "refinancing", "credit_card"),
    "Mass Retail": ("savings", "term_deposit", "starter_card"),
    "Conservative Seniors": ("term_deposit", "investments", "savings"),
    "Mainstream Borrowers": ("car_loan", "credit_card", "savings"),
    "PayLater Users": ("savings", "starter_card"),
    # Watchlist personas: their strategy says no new credit whatever their grade.
    "High-Stakes Borrowers": ("savings",),
    "Struggling Borrowers": ("savings",),
    "Golden Anchor": ("premium_card", "investments"),
    "Rising Stars": ("mortgage", "savings", "premium_card"),
    "Cautious Newcomers": ("savings", "starter_card"),
}
#: For customers whose persona has no archetype (or none is known here).
DEFAULT_PREFERENCES: tuple[str, ...] = ("savings", "term_deposit", "credit_card")
#: Offered in place of credit to customers risk blocks, after their persona's own non-credit products.
NON_CREDIT_ALTERNATIVES: tuple[str, ...] = ("savings", "term_deposit", "checking")
_DEFAULT_KEY = ""


def check_preferences(
    preferences: dict[str, tuple[str, ...]],
    default: tuple[str, ...] = DEFAULT_PREFERENCES,
    alternatives: tuple[str, ...] = NON_CREDIT_ALTERNATIVES,
) -> None:
    """Raise ValueError unless the lists fit the archetypes and the catalogue.

    Run at import, so a renamed archetype or a mistyped product breaks the test suite rather than
    a campaign. A list may hold one offer per family only: the choice between a credit card and a
    starter card belongs in the list's order, not to whichever the data happens to allow.
    """
    archetype_names = {archetype.name for archetype in ARCHETYPES}
    if set(preferences) != archetype_names:
        raise ValueError(
            "Cross-sell preferences and personas.ARCHETYPES name different archetypes: "
            f"{sorted(set(preferences) ^ archetype_names)}."
        )
    lists = [*preferences.values(), default, alternatives]
    unknown = {key for keys in lists for key in keys} - set(PRODUCTS)
    if unknown:
        raise ValueError(f"Cross-sell preferences name products not in the catalogue: {sorted(unknown)}.")
    if any(PRODUCTS[key].is_credit for key in alternatives):
        raise ValueError("Cross-sell alternatives to blocked credit must be non-credit products only.")
    for name, keys in [*preferences.items(), ("the default list", default)]:
        candidates = list(dict.fromkeys([*keys, *alternatives]))
        families = [PRODUCTS[key].family or key for key in candidates]
        if len(set(families)) < len(families):
            raise ValueError(f"Cross-sell list for {name} (with the alternatives) offers two products of one family.")


check_preferences(PREFERENCES)


def _candidate_table() -> pl.DataFrame:
    """(preference key, product, rank, is_alternative): every persona's list, then the alternatives."""
    rows: list[tuple[str, str, int, bool]] = []
    for key, products in [*PREFERENCES.items(), (_DEFAULT_KEY, DEFAULT_PREFERENCES)]:
        ranked = list(dict.fromkeys(products))
        rows += [(key, product, rank, False) for rank, product in enumerate(ranked, 1)]
        extra = [product for product in NON_CREDIT_ALTERNATIVES if product not in ranked]
        rows += [(key, product, len(ranked) + rank, True) for rank, product in enumerate(extra, 1)]
    return pl.DataFrame(
        rows,
        schema={"preference_key": pl.String, "product": pl.String, "rank": pl.Int32, "is_alternative": pl.Boolean},
        orient="row",
    )


def _catalogue_table() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "product": [p.key for p in CATALOGUE],
            "product_name": [p.name for p in CATALOGUE],
            "is_credit_offer": [p.is_credit for p in CATALOGUE],
            "pitch": [p.pitch for p in CATALOGUE],
            "needs_holding": [bool(p.requires_any) for p in CATALOGUE],
        }
    )


CANDIDATES = _candidate_table()
CATALOGUE_TABLE = _catalogue_table()

PENETRATION_COMMENTS = {
    "run_id": "The cross-sell run (see ml_model_runs).",
    "segment_key": "Stable identity of the persona's segment; null for customers without a persona.",
    "persona_name": "Persona name of the segment; null for customers without a persona.",
    "product": "Product, from the customers mart's has_<product> flag.",
    "customers": "Customers in the persona.",
    "holders": "Customers in the persona who hold the product (an unknown holding counts as not held).",
    "share": "Share of the persona's customers holding the product (0 to 1).",
}
RECOMMENDATIONS_COMMENTS = {
    "customer_id": "The customer the offer is for.",
    "run_id": "The cross-sell run (see ml_model_runs).",
    "product": "Key of the offered product in the cross-sell catalogue (savings, loan_top_up, ...).",
    "product_name": "Name of the offered product for people.",
    "priority": "Order in which to make the customer's offers: 1 = first, then 2, 3 without gaps.",
    "reason": "Why this offer, in words: the persona's strategy, the holding that qualifies, and any risk block.",
    "is_credit_offer": "True when taking the offer up creates new credit exposure (never for blocked customers).",
}
MIX_COMMENTS = {
    "run_id": "The cross-sell run (see ml_model_runs).",
    "persona_name": "Persona name of the segment; null for customers without a persona.",
    "segment_key": "Stable identity of the persona's segment; null for customers without a persona.",
    "product": "Key of the offered product in the cross-sell catalogue.",
    "product_name": "Name of the offered product for people.",
    "customers": "Customers of the persona offered the product at any priority.",
    "first_choice": "Customers of the persona offered the product as their first offer (priority 1).",
}
PENETRATION_GRAIN = "One row per persona per held product per cross-sell run: how many customers hold it."
RECOMMENDATIONS_GRAIN = "One row per recommended product per customer per cross-sell run."
WITHHELD_GRAIN = (
    "One row per credit product of a customer's persona list that risk withheld from them, per cross-sell run "
    "(blocked grade or open early-warning alert): what the campaign does not send."
)
WITHHELD_COMMENTS = {
    "customer_id": "Customer key, as in customers.",
    "run_id": "The cross-sell run (ml_model_runs.run_id).",
    "product": "The credit product withheld (a has_* flag of customers, without the prefix).",
    "blocked_by_grade": "True when the customer's risk grade is one that gets no new credit.",
    "blocked_by_alert": "True when the customer has an open early-warning alert.",
}
MIX_GRAIN = "One row per persona per recommended product per cross-sell run: the campaign's size."


@dataclass
class CrossSellResult:
    """A cross-sell run's outputs, ready for :func:`write_cross_sell`, and its metrics for ml_model_runs."""

    penetration: pl.DataFrame
    recommendations: pl.DataFrame
    mix: pl.DataFrame
    metrics: dict
    #: Credit offers risk withheld, per customer and product (ml_credit_withheld).
    withheld: pl.DataFrame | None = None


# -- inputs ---------------------------------------------------------------------------------


def _require(frame: pl.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ModelError(f"Cross-sell needs the column(s) {', '.join(missing)} in {name}; it has {frame.columns}.")


def _one_per_customer(frame: pl.DataFrame, name: str) -> None:
    keys = frame.get_column("customer_id")
    if keys.n_unique() < keys.len():  # the cheap test first: is_duplicated costs ten times more
        example = frame.filter(keys.is_duplicated()).get_column("customer_id")[0]
        raise ModelError(f"Cross-sell needs one row per customer in {name}; customer {example!r} appears twice.")


def _holding_flags(customers: pl.DataFrame) -> list[str]:
    return [name for name in customers.columns if name.startswith("has_")]


def _personas_frame(personas: pl.DataFrame, key_type: pl.DataType) -> pl.LazyFrame:
    _require(personas, "personas", ("customer_id", "segment_key", "persona_name"))
    _one_per_customer(personas, "personas")
    archetype = pl.col("archetype") if "archetype" in personas.columns else pl.lit(None)
    return personas.lazy().select(
        pl.col("customer_id").cast(key_type),
        pl.col("segment_key").cast(pl.String),
        pl.col("persona_name").cast(pl.String),
        archetype.cast(pl.String).alias("archetype"),
    )


def _context(
    customers: pl.DataFrame,
    personas: pl.DataFrame,
    risk: pl.DataFrame | None,
    open_alerts: pl.DataFrame | None,
    credit_blocked_grades: Sequence[str],
) -> pl.LazyFrame:
    """One row per customer: persona, preference list, grade and why (if at all) credit is blocked."""
    _require(customers, "customers", ("customer_id",))
    _one_per_customer(customers, "customers")
    key_type = customers.schema["customer_id"]
    flags = _holding_flags(customers)
    frame = customers.lazy().select("customer_id", *[pl.col(flag).cast(pl.Boolean) for flag in flags])
    frame = frame.join(_personas_frame(personas, key_type), on="customer_id", how="left")
    if risk is not None:
        _require(risk, "risk", ("customer_id", "grade"))
        _one_per_customer(risk, "risk")
        grades = risk.lazy().select(pl.col("customer_id").cast(key_type), pl.col("grade").cast(pl.String))
        frame = frame.join(grades, on="customer_id", how="left")
    else:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("grade"))
    alerted = pl.Series("customer_id", [], key_type)
    if open_alerts is not None and open_alerts.height:
        _require(open_alerts, "open_alerts", ("customer_id",))
        alerted = open_alerts.get_column("customer_id").cast(key_type).unique()
    # A customer without a grade is not blocked: with no risk model, the persona's strategy stands.
    blocked_grade = pl.col("grade").is_in(list(credit_blocked_grades)).fill_null(False)
    has_alert = pl.col("customer_id").is_in(alerted.implode())
    who = (
        pl.when(pl.col("persona_name").is_not_null() | pl.col("archetype").is_not_null())
        .then(pl.concat_str(pl.coalesce("persona_name", "archetype"), pl.lit(" persona")))
        .otherwise(pl.lit("Customer without a persona"))
    )
    return frame.with_columns(
        pl.when(pl.col("archetype").is_in(list(PREFERENCES)))
        .then(pl.col("archetype"))
        .otherwise(pl.lit(_DEFAULT_KEY))
        .alias("preference_key"),
        (blocked_grade | has_alert).alias("credit_blocked"),
        blocked_grade.alias("blocked_by_grade"),
        has_alert.alias("blocked_by_alert"),
        pl.concat_str(
            pl.when(blocked_grade).then(pl.concat_str(pl.lit("grade "), pl.col("grade"))),
            pl.when(has_alert).then(pl.lit("an open early-warning alert")),
            separator=" and ",
            ignore_nulls=True,
        ).alias("blocked_by"),
        who.alias("who"),
    )


def _candidates(context: pl.DataFrame, flags: set[str]) -> pl.LazyFrame:
    """One row per customer per product of their preference list (or alternatives) they could take up.

    A loop over the catalogue's products, each a filter over all customers. A product whose flags
    the data lacks is never offered: an unknown holding might be a held one, and offering customers
    what they already have is the mistake a campaign cannot afford. An unknown (null) flag likewise
    counts as held when it must be absent, and as not held when it is required.
    """
    parts: list[pl.LazyFrame] = []
    for product in CATALOGUE:
        listed = CANDIDATES.filter(pl.col("product") == product.key)
        rank = pl.col("preference_key").replace_strict(
            dict(listed.select("preference_key", "rank").iter_rows()), default=None, return_dtype=pl.Int32
        )
        is_alternative = pl.col("preference_key").replace_strict(
            dict(listed.select("preference_key", "is_alternative").iter_rows()), default=None, return_dtype=pl.Boolean
        )
        if product.requires_absent:
            if product.requires_absent not in flags:
                continue
            can_take_up = ~pl.col(product.requires_absent).fill_null(True)
            holding = pl.lit(f"holds {FLAG_WORDS[product.requires_absent][1]}")
        else:
            present = [flag for flag in product.requires_any if flag in flags]
            if not present:
                continue
            can_take_up = pl.any_horizontal([pl.col(flag).fill_null(False) for flag in present])
            holding = pl.concat_str(
                pl.lit("holds "),
                pl.concat_str(
                    [pl.when(pl.col(flag).fill_null(False)).then(pl.lit(FLAG_WORDS[flag][0])) for flag in present],
                    separator=" and ",
                    ignore_nulls=True,
                ),
            )
        parts.append(
            context.lazy()
            .with_columns(rank.alias("rank"))
            .filter(pl.col("rank").is_not_null() & can_take_up)
            .select(
                "customer_id",
                pl.lit(product.key).alias("product"),
                "rank",
                is_alternative.alias("is_alternative"),
                pl.lit(product.is_credit).alias("is_credit_offer"),
                holding.alias("holding"),
                "credit_blocked",
            )
        )
    if not parts:
        schema = {
            "customer_id": context.schema["customer_id"],
            "product": pl.String,
            "rank": pl.Int32,
            "is_alternative": pl.Boolean,
            "is_credit_offer": pl.Boolean,
            "holding": pl.String,
            "credit_blocked": pl.Boolean,
        }
        return pl.LazyFrame(schema=schema)
    return pl.concat(parts)


def products_without_holding_data(customers: pl.DataFrame) -> list[str]:
    """Catalogue products never offered because the customers mart lacks the flags to check them."""
    flags = set(_holding_flags(customers))
    return [
        product.key
        for product in CATALOGUE
        if (product.requires_absent and product.requires_absent not in flags)
        or (product.requires_any and not flags.intersection(product.requires_any))
    ]


# -- the model ------------------------------------------------------------------------------


def product_penetration(customers: pl.DataFrame, personas: pl.DataFrame) -> pl.DataFrame:
    """Share of each persona's customers holding each ``has_*`` product.

    The baseline a campaign is measured against: a product most of the persona already holds is
    not worth a campaign, one few hold is the opportunity. Customers without a persona form their
    own group (null segment_key), so the counts add up to the whole bank.
    """
    _require(customers, "customers", ("customer_id",))
    flags = _holding_flags(customers)
    key_type = customers.schema["customer_id"]
    frame = (
        customers.lazy()
        .select("customer_id", *[pl.col(flag).cast(pl.Boolean).fill_null(False) for flag in flags])
        .join(_personas_frame(personas, key_type), on="customer_id", how="left")
    )
    schema = {
        "segment_key": pl.String,
        "persona_name": pl.String,
        "product": pl.String,
        "customers": pl.Int64,
        "holders": pl.Int64,
        "share": pl.Float64,
    }
    if not flags:
        return pl.DataFrame(schema=schema)
    return (
        frame.group_by("segment_key", "persona_name")
        .agg(pl.len().alias("customers"), *[pl.col(flag).sum() for flag in flags])
        .unpivot(
            index=["segment_key", "persona_name", "customers"], on=flags, variable_name="product", value_name="holders"
        )
        .select(
            "segment_key",
            "persona_name",
            pl.col("product").str.strip_prefix("has_"),
            pl.col("customers").cast(pl.Int64),
            pl.col("holders").cast(pl.Int64),
            (pl.col("holders") / pl.col("customers")).alias("share"),
        )
        .sort("segment_key", "product", nulls_last=True)
        .collect()
        .cast(schema)  # type: ignore[arg-type]
    )


def _plan(
    customers: pl.DataFrame,
    personas: pl.DataFrame,
    risk: pl.DataFrame | None,
    open_alerts: pl.DataFrame | None,
    max_per_customer: int,
    credit_blocked_grades: Sequence[str],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The recommendations, and the persona's credit offers that risk withheld (for the metrics)."""
    if max_per_customer < 1:
        raise ModelError(f"Cross-sell needs max_per_customer of 1 or more, not {max_per_customer}.")
    # Materialised once: both the candidates and the reasons read it.
    context = _context(customers, personas, risk, open_alerts, credit_blocked_grades).collect()
    candidates = _candidates(context, set(_holding_flags(customers))).collect()
    is_withheld = pl.col("is_credit_offer") & pl.col("credit_blocked")
    withheld = candidates.filter(is_withheld)
    withheld_customers = withheld.get_column("customer_id").unique()
    row = pl.int_range(pl.len(), dtype=pl.Int32)
    first_row_of_customer = pl.when(pl.col("customer_id") != pl.col("customer_id").shift(1)).then(row)
    chosen = (
        candidates.lazy()
        # Alternatives stand in for withheld credit only; other customers get their persona's list as it is.
        .filter(~is_withheld & (~pl.col("is_alternative") | pl.col("customer_id").is_in(withheld_customers.implode())))
        .sort("customer_id", "rank")
        # Position within the customer's sorted rows, without a window per customer.
        .with_columns((row - first_row_of_customer.forward_fill().fill_null(0) + 1).alias("priority"))
        .filter(pl.col("priority") <= max_per_customer)
        .join(context.lazy().select("customer_id", "who", "grade", "blocked_by"), on="customer_id", how="left")
        .join(
            CATALOGUE_TABLE.lazy().select("product", "product_name", "pitch", "needs_holding"), on="product", how="left"
        )
        .collect()
        .lazy()  # read three times below
    )
    grade_note = pl.when(pl.col("grade").is_not_null()).then(pl.concat_str(pl.lit("; grade "), pl.col("grade")))
    is_alternative, needs_holding = pl.col("is_alternative"), pl.col("needs_holding")
    # Three kinds of reason, each built only on its own rows (a when/then would build all three on every row).
    reasons = [
        (
            is_alternative,
            pl.concat_str(
                "who",
                pl.lit(": credit withheld for "),
                "blocked_by",
                pl.lit(", so "),
                "pitch",
                pl.lit(" instead; "),
                "holding",
            ),
        ),
        (
            ~is_alternative & needs_holding,
            pl.concat_str("who", pl.lit(" "), "holding", pl.lit(": "), "pitch", grade_note, ignore_nulls=True),
        ),
        (
            ~is_alternative & ~needs_holding,
            pl.concat_str("who", pl.lit(": "), "pitch", pl.lit("; "), "holding", grade_note, ignore_nulls=True),
        ),
    ]
    recommendations = (
        pl.concat(
            [
                chosen.filter(rows).select(
                    "customer_id", "product", "product_name", "priority", text.alias("reason"), "is_credit_offer"
                )
                for rows, text in reasons
            ]
        )
        .sort("customer_id", "priority")
        .collect()
    )
    withheld_rows = (
        withheld.join(
            context.select("customer_id", "blocked_by_grade", "blocked_by_alert"), on="customer_id", how="left"
        )
        .select("customer_id", "product", "blocked_by_grade", "blocked_by_alert")
        .sort("customer_id", "product")
    )
    return recommendations, withheld_rows


def recommend(
    customers: pl.DataFrame,
    personas: pl.DataFrame,
    risk: pl.DataFrame | None,
    open_alerts: pl.DataFrame | None,
    *,
    max_per_customer: int = 3,
    credit_blocked_grades: Sequence[str] = ("D", "E"),
) -> pl.DataFrame:
    """The next products to offer each customer, in the order their persona's strategy puts them.

    Parameters
    ----------
    customers
        The customers mart: ``customer_id`` and any ``has_<product>`` flags.
    personas
        ``customer_id``, ``segment_key``, ``persona_name`` and ``archetype`` (null when none matched).
    risk
        ``customer_id`` and ``grade``; None when no risk model ran (then no grade blocks credit).
    open_alerts
        ``customer_id`` of customers with an open early-warning alert; None or empty when there are none.
    max_per_customer
        Most offers per customer.
    credit_blocked_grades
        Grades that get no credit offer.

    Returns
    -------
    pl.DataFrame
        customer_id, product, product_name, priority (1 = first), reason, is_credit_offer; sorted by
        customer and priority. Customers with nothing to offer have no rows.
    """
    recommendations, _ = _plan(customers, personas, risk, open_alerts, max_per_customer, credit_blocked_grades)
    return recommendations


def campaign_mix(recommendations: pl.DataFrame, personas: pl.DataFrame) -> pl.DataFrame:
    """How many customers of each persona each product's campaign reaches, and for how many it leads."""
    key_type = recommendations.schema["customer_id"]
    return (
        recommendations.lazy()
        .join(_personas_frame(personas, key_type), on="customer_id", how="left")
        .group_by("persona_name", "segment_key", "product", "product_name")
        .agg(
            pl.len().cast(pl.Int64).alias("customers"),
            (pl.col("priority") == 1).sum().cast(pl.Int64).alias("first_choice"),
        )
        .sort(
            ["segment_key", "customers", "product"],
            descending=[False, True, False],
            nulls_last=True,
        )
        .collect()
    )


def run_cross_sell(
    customers: pl.DataFrame,
    personas: pl.DataFrame,
    risk: pl.DataFrame | None,
    open_alerts: pl.DataFrame | None,
    *,
    max_per_customer: int = 3,
    credit_blocked_grades: Sequence[str] = ("D", "E"),
) -> CrossSellResult:
    """Penetration, recommendations and campaign mix, with the metrics a run records.

    ``credit_offers_blocked`` counts every credit product of a blocked customer's persona list that
    they could have taken up, beyond ``max_per_customer`` too: it sizes what risk holds back, not
    what one campaign wave would have sent.
    """
    recommendations, withheld = _plan(customers, personas, risk, open_alerts, max_per_customer, credit_blocked_grades)
    by_product = recommendations.group_by("product").len().sort("product")
    withheld_customers = withheld.unique("customer_id")
    metrics = {
        "customers": customers.height,
        "customers_with_offer": recommendations.get_column("customer_id").n_unique(),
        "offers": recommendations.height,
        "offers_by_product": dict(by_product.iter_rows()),
        "credit_offers": int(recommendations.get_column("is_credit_offer").sum()),
        "credit_offers_blocked": withheld.height,
        "customers_with_credit_blocked": withheld_customers.height,
        "customers_blocked_by_grade": int(withheld_customers.get_column("blocked_by_grade").sum()),
        "customers_blocked_by_alert": int(withheld_customers.get_column("blocked_by_alert").sum()),
        "products_without_holding_data": products_without_holding_data(customers),
    }
    return CrossSellResult(
        penetration=product_penetration(customers, personas),
        recommendations=recommendations,
        mix=campaign_mix(recommendations, personas),
        metrics=metrics,
        withheld=withheld,
    )


def write_cross_sell(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    penetration: pl.DataFrame,
    recommendations: pl.DataFrame,
    mix: pl.DataFrame,
    withheld: pl.DataFrame | None = None,
) -> None:
    """Append a cross-sell run's tables (and, when given, the credit it withheld), each row carrying the run id."""
    run = pl.lit(run_id, pl.String).alias("run_id")
    append_table(
        con,
        "ml_product_penetration",
        penetration.with_columns(run).select(list(PENETRATION_COMMENTS)),
        PENETRATION_GRAIN,
        PENETRATION_COMMENTS,
    )
    append_table(
        con,
        "ml_recommendations",
        recommendations.with_columns(run).select(list(RECOMMENDATIONS_COMMENTS)),
        RECOMMENDATIONS_GRAIN,
        RECOMMENDATIONS_COMMENTS,
    )
    append_table(
        con,
        "ml_campaign_mix",
        mix.with_columns(run).select(list(MIX_COMMENTS)),
        MIX_GRAIN,
        MIX_COMMENTS,
    )
    if withheld is not None:
        append_table(
            con,
            "ml_credit_withheld",
            withheld.with_columns(run).select(list(WITHHELD_COMMENTS)),
            WITHHELD_GRAIN,
            WITHHELD_COMMENTS,
        )

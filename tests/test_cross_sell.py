"""Cross-sell: persona strategies become offers, risk blocks new credit, nobody is sold what they hold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from models import cross_sell
from models.cross_sell import (
    MIX_COMMENTS,
    PENETRATION_COMMENTS,
    PREFERENCES,
    PRODUCTS,
    RECOMMENDATIONS_COMMENTS,
    campaign_mix,
    product_penetration,
    recommend,
    run_cross_sell,
    write_cross_sell,
)
from models.personas import ARCHETYPES
from models.runs import ModelError
from warehouse.db import connect_for_build, connect_read_only
from warehouse.dictionary import missing_comments

AFFLUENT = "Affluent & Investment Ready"
CREDIT_ACTIVE = "Credit Active Middle"
MASS_RETAIL = "Mass Retail"
HIGH_STAKES = "High-Stakes Borrowers"

FLAGS = ["has_savings", "has_checking", "has_term_deposit", "has_credit_card", "has_personal_loan"]
FLAGS += ["has_car_loan", "has_mortgage", "has_bnpl", "has_investments"]

# customer_id: (archetype, grade, holdings); customer 7 has no persona.
BANK = {
    1: (AFFLUENT, "A", {"has_savings", "has_checking", "has_credit_card"}),
    2: (CREDIT_ACTIVE, "B", {"has_checking", "has_credit_card", "has_mortgage"}),
    3: (CREDIT_ACTIVE, "A", {"has_checking"}),
    4: (CREDIT_ACTIVE, "E", {"has_checking", "has_personal_loan"}),
    5: (CREDIT_ACTIVE, "A", {"has_checking", "has_car_loan"}),
    6: (MASS_RETAIL, "C", {"has_savings"}),
    7: (None, "B", {"has_checking"}),
    8: (HIGH_STAKES, "A", {"has_checking", "has_personal_loan"}),
    9: (AFFLUENT, "C", {"has_savings", "has_checking", "has_investments", "has_term_deposit"}),
}
ALERTED = [5]
Preferences = dict[str, tuple[str, ...]]
SEGMENT_OF = {AFFLUENT: "S1", CREDIT_ACTIVE: "S2", MASS_RETAIL: "S3", HIGH_STAKES: "S4"}


def _customers() -> pl.DataFrame:
    ids = list(BANK)
    return pl.DataFrame(
        {
            "customer_id": ids,
            **{flag: [flag in BANK[i][2] for i in ids] for flag in FLAGS},
            "annual_income": [50_000.0 + 1_000 * i for i in ids],
        }
    )


def _personas() -> pl.DataFrame:
    rows = [(i, SEGMENT_OF[a], a, a) for i, (a, _, _) in BANK.items() if a is not None]
    return pl.DataFrame(
        rows, schema=["customer_id", "segment_key", "persona_name", "archetype"], orient="row"
    ).with_columns(pl.col("customer_id").cast(pl.Int64))


def _risk() -> pl.DataFrame:
    pd_of = {"A": 0.01, "B": 0.03, "C": 0.08, "D": 0.2, "E": 0.4}
    return pl.DataFrame(
        {
            "customer_id": list(BANK),
            "grade": [g for _, g, _ in BANK.values()],
            "pd": [pd_of[g] for _, g, _ in BANK.values()],
        }
    )


def _alerts() -> pl.DataFrame:
    return pl.DataFrame({"customer_id": ALERTED})


@pytest.fixture
def recommendations() -> pl.DataFrame:
    return recommend(_customers(), _personas(), _risk(), _alerts())


def _offers(recommendations: pl.DataFrame, customer_id: int) -> list[str]:
    return recommendations.filter(pl.col("customer_id") == customer_id).sort("priority").get_column("product").to_list()


def test_preferences_name_every_archetype_and_only_catalogue_products() -> None:
    assert set(PREFERENCES) == {a.name for a in ARCHETYPES}
    named = {p for products in PREFERENCES.values() for p in products}
    assert named <= set(PRODUCTS)
    assert not any(PRODUCTS[p].is_credit for p in cross_sell.NON_CREDIT_ALTERNATIVES)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: {k: v for k, v in p.items() if k != MASS_RETAIL}, "different archetypes"),
        (lambda p: p | {"Mass Retailers": ("savings",)}, "different archetypes"),
        (lambda p: p | {MASS_RETAIL: ("savings", "gold_bars")}, "not in the catalogue"),
        (lambda p: p | {MASS_RETAIL: ("credit_card", "starter_card")}, "two products of one family"),
    ],
    ids=["archetype-missing", "archetype-renamed", "unknown-product", "two-cards"],
)
def test_preference_lists_that_drift_from_archetypes_or_catalogue_are_refused(
    change: Callable[[Preferences], Preferences], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cross_sell.check_preferences(change(dict(PREFERENCES)))


def test_affluent_customer_without_investments_gets_investments_first(recommendations: pl.DataFrame) -> None:
    first = recommendations.filter((pl.col("customer_id") == 1) & (pl.col("priority") == 1)).row(0, named=True)
    assert first["product"] == "investments"
    assert first["is_credit_offer"] is False
    assert first["reason"].startswith(f"{AFFLUENT} persona: wealth products fit; holds no investments")
    # Holds a card, so the premium upgrade comes next; holds no term deposit, so that follows.
    assert _offers(recommendations, 1) == ["investments", "premium_card", "term_deposit"]


def test_credit_active_mortgage_holder_gets_a_top_up_first_with_the_reason(recommendations: pl.DataFrame) -> None:
    first = recommendations.filter((pl.col("customer_id") == 2) & (pl.col("priority") == 1)).row(0, named=True)
    assert first["product"] == "loan_top_up"
    assert first["reason"] == f"{CREDIT_ACTIVE} persona holds a mortgage: top-up offer; grade B"


@pytest.mark.parametrize(
    ("customer_id", "blocked_by"), [(4, "grade E"), (5, "an open early-warning alert")], ids=["grade-E", "open-alert"]
)
def test_blocked_customers_get_no_credit_but_still_a_savings_offer(
    recommendations: pl.DataFrame, customer_id: int, blocked_by: str
) -> None:
    offers = recommendations.filter(pl.col("customer_id") == customer_id)
    assert offers.height > 0
    assert not offers.get_column("is_credit_offer").any()
    assert "savings" in offers.get_column("product").to_list()
    savings = offers.filter(pl.col("product") == "savings").row(0, named=True)
    assert f"credit withheld for {blocked_by}" in savings["reason"]
    # Without the block the same persona gets its credit offers.
    unblocked = recommend(_customers(), _personas(), None, None)
    assert unblocked.filter(pl.col("customer_id") == customer_id).get_column("is_credit_offer").any()


def test_blocked_grades_are_a_parameter(recommendations: pl.DataFrame) -> None:
    # Grade C customer 6 (Mass Retail) gets a starter card by default, not when C is blocked.
    assert "starter_card" in _offers(recommendations, 6)
    strict = recommend(_customers(), _personas(), _risk(), None, credit_blocked_grades=("C", "D", "E"))
    assert not strict.filter(pl.col("customer_id") == 6).get_column("is_credit_offer").any()


def test_watchlist_persona_gets_savings_only_whatever_its_grade(recommendations: pl.DataFrame) -> None:
    assert _offers(recommendations, 8) == ["savings"]


def test_customer_without_persona_gets_the_default_list(recommendations: pl.DataFrame) -> None:
    assert _offers(recommendations, 7) == list(cross_sell.DEFAULT_PREFERENCES)
    reason = recommendations.filter(pl.col("customer_id") == 7).get_column("reason")[0]
    assert reason.startswith("Customer without a persona")


# Written out here rather than read from the catalogue, so a wrong catalogue entry fails the test.
MUST_NOT_HOLD = {product: f"has_{product}" for product in [f[4:] for f in FLAGS]} | {"starter_card": "has_credit_card"}
MUST_HOLD_ONE_OF = {
    "loan_top_up": {"has_personal_loan", "has_car_loan", "has_mortgage"},
    "refinancing": {"has_personal_loan", "has_car_loan", "has_mortgage", "has_bnpl"},
    "premium_card": {"has_credit_card"},
}


@pytest.mark.parametrize("archetype", [None, *PREFERENCES])
def test_nobody_is_offered_a_product_they_hold(archetype: str | None) -> None:
    personas = _personas().with_columns(pl.lit(archetype, pl.String).alias("archetype"))
    offers = recommend(_customers(), personas, None, None, max_per_customer=10)
    assert offers.height > 0
    for customer_id, product in offers.select("customer_id", "product").iter_rows():
        held = BANK[customer_id][2]
        assert MUST_NOT_HOLD.get(product) not in held, (customer_id, product)
        assert held & MUST_HOLD_ONE_OF.get(product, held), (customer_id, product)


def test_top_up_only_goes_to_loan_holders() -> None:
    everyone_credit_active = _personas().with_columns(
        pl.lit(CREDIT_ACTIVE).alias("archetype"), pl.lit(CREDIT_ACTIVE).alias("persona_name")
    )
    offers = recommend(_customers(), everyone_credit_active, None, None)
    topped_up = set(offers.filter(pl.col("product") == "loan_top_up").get_column("customer_id").to_list())
    loan_holders = {
        i for i, (_, _, held) in BANK.items() if held & {"has_personal_loan", "has_car_loan", "has_mortgage"}
    }
    assert topped_up == loan_holders & set(everyone_credit_active.get_column("customer_id").to_list())
    assert topped_up  # the check above is not vacuous


@pytest.mark.parametrize("archetype", [None, *PREFERENCES])
def test_at_most_one_offer_of_a_product_and_one_card_per_customer(archetype: str | None) -> None:
    personas = _personas().with_columns(pl.lit(archetype, pl.String).alias("archetype"))
    offers = recommend(_customers(), personas, _risk(), _alerts(), max_per_customer=10)
    assert not offers.select("customer_id", "product").is_duplicated().any()
    cards = offers.filter(pl.col("product").is_in(["credit_card", "starter_card"]))
    assert cards.get_column("customer_id").is_unique().all()


def test_priorities_run_from_one_without_gaps_and_respect_the_cap() -> None:
    for cap in (1, 2, 3, 5):
        offers = recommend(_customers(), _personas(), _risk(), _alerts(), max_per_customer=cap)
        per_customer = offers.group_by("customer_id").agg(pl.col("priority").sort())
        for priorities in per_customer.get_column("priority").to_list():
            assert priorities == list(range(1, len(priorities) + 1))
            assert len(priorities) <= cap
    with pytest.raises(ModelError, match="max_per_customer"):
        recommend(_customers(), _personas(), _risk(), _alerts(), max_per_customer=0)


def test_same_input_gives_identical_output_whatever_the_row_order(recommendations: pl.DataFrame) -> None:
    again = recommend(_customers(), _personas(), _risk(), _alerts())
    assert again.equals(recommendations)
    shuffled = recommend(
        _customers().sample(fraction=1.0, shuffle=True, seed=3),
        _personas().reverse(),
        _risk().sample(fraction=1.0, shuffle=True, seed=4),
        _alerts(),
    )
    assert shuffled.equals(recommendations)


def test_missing_flags_mean_no_offer_rather_than_a_guess() -> None:
    customers = _customers().drop("has_investments", "has_term_deposit")
    result = run_cross_sell(customers, _personas(), _risk(), _alerts())
    offered = set(result.recommendations.get_column("product").to_list())
    assert not offered & {"investments", "term_deposit"}
    assert {"investments", "term_deposit"} <= set(result.metrics["products_without_holding_data"])
    # With no holding flags at all there is nothing to offer, and nothing breaks.
    bare = run_cross_sell(customers.select("customer_id", "annual_income"), _personas(), None, None)
    assert bare.recommendations.is_empty() and bare.penetration.is_empty() and bare.mix.is_empty()
    assert bare.recommendations.columns == [c for c in RECOMMENDATIONS_COMMENTS if c != "run_id"]


def test_penetration_shares_equal_hand_computed_ones() -> None:
    penetration = product_penetration(_customers(), _personas())

    def share(segment: str | None, product: str) -> float:
        segment_filter = pl.col("segment_key").is_null() if segment is None else pl.col("segment_key") == segment
        row = penetration.filter(segment_filter & (pl.col("product") == product))
        assert row.height == 1
        return row.get_column("share")[0]

    # S2 (Credit Active Middle) = customers 2, 3, 4, 5: checking 4/4, card 1/4, mortgage 1/4, savings 0/4.
    assert share("S2", "checking") == 1.0
    assert share("S2", "credit_card") == 0.25
    assert share("S2", "mortgage") == 0.25
    assert share("S2", "savings") == 0.0
    # S1 (Affluent) = customers 1 and 9: investments 1/2, savings 2/2.
    assert share("S1", "investments") == 0.5
    assert share("S1", "savings") == 1.0
    # Customer 7 has no persona and forms its own group, so the counts add up to the bank.
    assert share(None, "checking") == 1.0
    per_product = penetration.group_by("product").agg(pl.col("customers").sum())
    assert set(per_product.get_column("customers").to_list()) == {len(BANK)}
    s2 = penetration.filter(pl.col("segment_key") == "S2").row(0, named=True)
    assert (s2["customers"], s2["persona_name"]) == (4, CREDIT_ACTIVE)


def test_campaign_mix_counts_recommendations_per_persona(recommendations: pl.DataFrame) -> None:
    mix = campaign_mix(recommendations, _personas())
    assert mix.get_column("customers").sum() == recommendations.height
    assert mix.get_column("first_choice").sum() == recommendations.get_column("customer_id").n_unique()
    savings_s2 = mix.filter((pl.col("segment_key") == "S2") & (pl.col("product") == "savings")).row(0, named=True)
    # Customers 4 (grade E) and 5 (open alert) get savings instead of credit; customer 3 has no debt to top up.
    assert savings_s2["customers"] == 2
    assert savings_s2["persona_name"] == CREDIT_ACTIVE


def test_run_metrics_count_offers_and_credit_blocked_by_risk() -> None:
    result = run_cross_sell(_customers(), _personas(), _risk(), _alerts())
    metrics = result.metrics
    assert metrics["customers"] == len(BANK)
    assert metrics["customers_with_offer"] == result.recommendations.get_column("customer_id").n_unique()
    assert sum(metrics["offers_by_product"].values()) == result.recommendations.height
    # Customer 4 (grade E, personal loan) would have had top-up, refinancing and a card; customer 5
    # (alert, car loan) the same.
    assert metrics["credit_offers_blocked"] == 6
    assert metrics["customers_with_credit_blocked"] == 2
    assert metrics["customers_blocked_by_grade"] == 1
    assert metrics["customers_blocked_by_alert"] == 1


def test_input_errors_are_plain_sentences() -> None:
    twice = pl.concat([_personas(), _personas().head(1)])
    with pytest.raises(ModelError, match="one row per customer in personas"):
        recommend(_customers(), twice, None, None)
    with pytest.raises(ModelError, match="grade"):
        recommend(_customers(), _personas(), _risk().drop("grade"), None)


def test_comment_dicts_match_their_frames_exactly() -> None:
    result = run_cross_sell(_customers(), _personas(), _risk(), _alerts())
    for frame, comments in (
        (result.penetration, PENETRATION_COMMENTS),
        (result.recommendations, RECOMMENDATIONS_COMMENTS),
        (result.mix, MIX_COMMENTS),
    ):
        assert frame.columns == [c for c in comments if c != "run_id"]
        assert all(text.strip().endswith(".") for text in comments.values())


def test_write_cross_sell_round_trips_rows_and_comments(tmp_path: Path) -> None:
    result = run_cross_sell(_customers(), _personas(), _risk(), _alerts())
    db = tmp_path / "cross_sell.duckdb"
    con = connect_for_build(db)
    try:
        write_cross_sell(con, "run-1", result.penetration, result.recommendations, result.mix)
        write_cross_sell(con, "run-2", result.penetration, result.recommendations, result.mix)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    with connect_read_only(db) as con:
        stored = con.sql(
            "SELECT * EXCLUDE (run_id) FROM ml_recommendations WHERE run_id = 'run-2' ORDER BY customer_id, priority"
        ).pl()
        assert stored.equals(result.recommendations.cast({"priority": stored.schema["priority"]}))
        columns = con.sql(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'ml_recommendations' ORDER BY column_index"
        ).fetchall()
        assert [c for (c,) in columns][:2] == ["customer_id", "run_id"]
        counts = dict(con.sql("SELECT run_id, count(*) FROM ml_recommendations GROUP BY run_id").fetchall())
        assert counts == {"run-1": result.recommendations.height, "run-2": result.recommendations.height}
        for table, comments, frame in (
            ("ml_product_penetration", PENETRATION_COMMENTS, result.penetration),
            ("ml_recommendations", RECOMMENDATIONS_COMMENTS, result.recommendations),
            ("ml_campaign_mix", MIX_COMMENTS, result.mix),
        ):
            stored_comments = dict(
                con.execute(
                    "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = ?", [table]
                ).fetchall()
            )
            assert stored_comments == comments
            rows = con.execute(f"SELECT count(*) FROM {table} WHERE run_id = 'run-1'").fetchone()
            assert rows == (frame.height,)
        grain = con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'ml_recommendations'").fetchone()
        assert grain == ("One row per recommended product per customer per cross-sell run.",)
        assert missing_comments(con) == []

"""Persona names: an archetype's name and strategy only where the segment meets its defining features."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from models import personas
from models.personas import ARCHETYPES, GENERIC_STRATEGY, AnyOf, Archetype, Trait, match_archetypes
from models.segments import fit_segments

SENIORS = "Conservative Seniors"
#: Archetypes whose strategy sells wealth or deposit products.
WEALTH = {SENIORS, "Affluent & Investment Ready", "Golden Anchor"}


def _by_name(name: str) -> Archetype:
    return next(a for a in ARCHETYPES if a.name == name)


def test_a_younger_poorer_segment_is_not_named_conservative_seniors() -> None:
    """Issue 12, item 11: with few signature features present, small loans outweighed a younger age,
    so the young, poor segment took 'Conservative Seniors' and the older one was left unnamed."""
    young_poor = {"age": -0.6, "annual_income": -0.7, "savings_balance": -0.5, "loan_amount": -3.0}
    older = {"age": 1.1, "annual_income": 0.4, "savings_balance": 0.4, "loan_amount": -0.3}
    matched = match_archetypes({0: young_poor, 1: older})
    assert 0 not in matched or matched[0].name not in WEALTH
    assert 0 not in matched or "wealth" not in matched[0].strategy.lower()
    assert matched[1].name == SENIORS


def test_the_older_segment_needs_savings_or_low_borrowing_to_be_conservative() -> None:
    older_big_loans = {"age": 1.4, "loan_amount": 0.9, "annual_income": 0.2}
    assert not personas.qualifies(_by_name(SENIORS), older_big_loans)
    assert personas.qualifies(_by_name(SENIORS), older_big_loans | {"loan_amount": -0.4})
    assert personas.qualifies(_by_name(SENIORS), older_big_loans | {"savings_balance": 0.6})
    # Older than average, but not by much: an age a little above the mean is not 'seniors'.
    assert not personas.qualifies(_by_name(SENIORS), {"age": 0.4, "savings_balance": 1.5})


def test_an_archetype_needing_a_missing_feature_is_unavailable() -> None:
    # Savings and light borrowing, but the data has no age: no 'Seniors'.
    no_age = {"savings_balance": 2.0, "monthly_emi": -1.5, "term_deposit_balance": 1.8}
    assert not personas.available(_by_name(SENIORS), no_age)
    assert SENIORS not in {a.name for a in match_archetypes({0: no_age}).values()}


def test_each_archetype_documents_its_defining_features() -> None:
    for archetype in ARCHETYPES:
        assert archetype.defining, archetype.name
        assert archetype.definition and archetype.definition[-1] == ".", archetype.name
        for requirement in archetype.defining:
            assert requirement.words, archetype.name


def _leaves(requirement: Trait | AnyOf) -> tuple[Trait, ...]:
    return requirement.options if isinstance(requirement, AnyOf) else (requirement,)


def _meeting(archetype: Archetype) -> dict[str, float]:
    """A profile that just meets every defining feature through its first listed measure."""
    z: dict[str, float] = {}
    for requirement in archetype.defining:
        trait = _leaves(requirement)[0]
        z[trait.features[0]] = trait.direction * (trait.threshold + 0.05)
    return z


@pytest.mark.parametrize("archetype", ARCHETYPES, ids=lambda a: a.name)
def test_an_archetype_is_given_only_when_every_defining_feature_holds(archetype: Archetype) -> None:
    z = _meeting(archetype)
    assert personas.qualifies(archetype, z)
    assert match_archetypes({0: z})[0] is not None
    for requirement in archetype.defining:
        failing = dict(z)
        trait = _leaves(requirement)[0]
        failing[trait.features[0]] = trait.direction * (trait.threshold - 0.05)
        assert not personas.qualifies(archetype, failing), (archetype.name, requirement.words)
        assert archetype.name not in {a.name for a in match_archetypes({0: failing}).values()}
        missing = {f: v for f, v in z.items() if f not in {f for t in _leaves(requirement) for f in t.features}}
        assert not personas.available(archetype, missing), (archetype.name, requirement.words)


def test_a_measure_stands_in_only_when_the_ones_before_it_are_missing() -> None:
    bnpl = _by_name("PayLater Users")
    # The balance says little BNPL use: a high share of holders does not override it.
    assert not personas.qualifies(bnpl, {"has_bnpl": 0.3, "bnpl_balance": 1.5, "age": -1.0})
    assert personas.qualifies(bnpl, {"has_bnpl": 1.2, "bnpl_balance": 0.1, "age": -1.0})
    assert personas.qualifies(bnpl, {"bnpl_balance": 1.2, "age": -1.0})


def test_manual_underwriting_only_for_borrowers_whose_profile_shows_the_risk() -> None:
    flagged = {a.name for a in ARCHETYPES if a.manual_underwriting}
    assert flagged == {"High-Stakes Borrowers", "Struggling Borrowers"}
    # Large loans alone (a well-off segment with savings and a strong score) are no watchlist case.
    assert not any(
        a.manual_underwriting
        for a in match_archetypes(
            {0: {"loan_amount": 1.5, "savings_balance": 1.0, "credit_score": 1.2, "max_days_past_due": -0.4}}
        ).values()
    )
    risky = match_archetypes({0: {"personal_loan_balance": 2.0, "credit_score": -1.2, "savings_balance": -0.4}})
    assert risky[0].name == "High-Stakes Borrowers" and risky[0].manual_underwriting


def test_each_archetype_goes_to_its_best_qualifying_segment_only() -> None:
    seniors = {"age": 1.8, "savings_balance": 1.2, "monthly_emi": -0.6}
    less_senior = {"age": 0.9, "savings_balance": 0.3, "monthly_emi": -0.3}
    matched = match_archetypes({0: less_senior, 1: seniors})
    assert matched[1].name == SENIORS
    assert 0 not in matched or matched[0].name != SENIORS


def test_non_finite_z_scores_measure_nothing() -> None:
    assert not personas.available(_by_name(SENIORS), {"age": float("nan"), "savings_balance": 1.0})


def _bank(seed: int = 5) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Three clear groups: many young low earners with tiny loans and no savings, older savers with
    average loans, and middle-aged borrowers with large loans."""
    rng = np.random.default_rng(seed)
    groups = [  # (count, age, income, savings, loan)
        (500, 25, 18_000, 300, 600),
        (250, 66, 40_000, 35_000, 9_000),
        (250, 40, 55_000, 4_000, 30_000),
    ]
    columns: dict[str, list[float]] = {"age": [], "annual_income": [], "savings_balance": [], "loan_amount": []}
    for count, age, income, savings, loan in groups:
        columns["age"] += list(rng.normal(age, 3, count))
        columns["annual_income"] += list(income * rng.lognormal(0, 0.1, count))
        columns["savings_balance"] += list(savings * rng.lognormal(0, 0.1, count))
        columns["loan_amount"] += list(loan * rng.lognormal(0, 0.1, count))
    total = sum(g[0] for g in groups)
    customers = pl.DataFrame({"customer_id": np.arange(1, total + 1), **columns})
    meta = pl.DataFrame(
        {
            "column_name": list(columns),
            "origin": ["spec"] * 4,
            "role": ["numeric", "amount", "amount", "amount"],
            "is_model_feature": [True] * 4,
        }
    )
    return customers, meta


def test_end_to_end_names_follow_the_profiles() -> None:
    customers, meta = _bank()
    result = fit_segments(customers, meta, seed=3, k=3)
    summary = result.summary
    z = {
        s: dict(result.profiles.filter(pl.col("segment_id") == s).select("feature", "z_score").iter_rows())
        for s in range(3)
    }
    oldest = max(z, key=lambda s: z[s]["age"])
    youngest = min(z, key=lambda s: z[s]["age"])
    row = {r["segment_id"]: r for r in summary.iter_rows(named=True)}
    assert z[youngest]["age"] < 0 and z[youngest]["annual_income"] < 0
    # Before the fix: the young low earners were 'PayLater Users' in a bank without BNPL data, and
    # the well-paid borrowers with large loans were put on the manual-underwriting watchlist.
    assert row[youngest]["archetype"] is None
    assert row[oldest]["archetype"] == SENIORS
    assert not any(r["manual_underwriting"] for r in row.values())
    for r in row.values():
        if r["archetype"] is None:
            assert r["strategy"] == GENERIC_STRATEGY and not r["manual_underwriting"]
            assert r["persona_name"] == personas.describe(z[r["segment_id"]], top=2)
        else:
            assert personas.qualifies(_by_name(r["archetype"]), z[r["segment_id"]])


def test_a_rerun_drops_an_archetype_name_the_segment_no_longer_earns() -> None:
    """Matched segments kept the previous run's name, so a segment wrongly named Conservative
    Seniors by the older rule kept that name with no archetype behind it."""
    import numpy as np
    import polars as pl
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from models.segments import FeatureChoice, PreviousSegment, _carry_over

    summary = pl.DataFrame(
        {
            "segment_key": ["S1", "S2", "S3"],
            "persona_name": ["Younger, short loans", "Conservative Seniors", "Long loans, large loans"],
            "archetype": [None, "Conservative Seniors", None],
        },
        schema_overrides={"archetype": pl.String},
    )
    centroids = np.array([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]])
    previous = [
        PreviousSegment("S1", "Conservative Seniors", {"age": 0.0, "amount": 0.0}),  # the old rule's mistake
        PreviousSegment("S2", "Conservative Seniors", {"age": 5.0, "amount": 5.0}),
        PreviousSegment("S3", "Big Spenders (renamed long ago)", {"age": 10.0, "amount": 0.0}),
    ]
    choice = FeatureChoice(columns=["age", "amount"], log_columns=[], left_out={})
    prep = Pipeline([("identity", FunctionTransformer())])
    carried = _carry_over(summary, centroids, choice, prep.fit(np.zeros((1, 2))), previous)
    assert carried.get_column("segment_key").to_list() == ["S1", "S2", "S3"]
    assert carried.get_column("persona_name").to_list() == [
        "Younger, short loans",
        "Conservative Seniors",
        "Big Spenders (renamed long ago)",
    ]

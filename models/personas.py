"""Persona names a risk manager can read: descriptions from what sets a segment apart, and the
business archetypes of the seed analyses with their recommended strategies.

Everything here works on a segment profile: the z-score of each feature's segment mean against
the whole population. No model code, so the naming rules can be read and tested on their own.

An archetype's name and strategy go only to a segment whose profile shows every one of the
archetype's defining features (each written next to it below, and in ``Archetype.definition``);
an archetype whose features the data lacks is unavailable. Any other segment is named from its
distinctive features (:func:`describe`) and gets :data:`GENERIC_STRATEGY`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Plain words for a feature being high or low in a segment; unknown features fall back to their name.
FEATURE_WORDS: dict[str, tuple[str, str]] = {
    "age": ("older", "younger"),
    "annual_income": ("high income", "low income"),
    "employment_years": ("long employment", "short employment"),
    "tenure_months": ("long-standing customer", "new to the bank"),
    "app_logins_per_month": ("app-heavy", "rarely uses the app"),
    "online_txn_share": ("shops online", "pays in person"),
    "credit_score": ("excellent credit score", "weak credit score"),
    "savings_balance": ("high savings", "low savings"),
    "checking_balance": ("high current-account balance", "low current-account balance"),
    "term_deposit_balance": ("holds term deposits", "no term deposits"),
    "investment_balance": ("invests", "no investments"),
    "credit_card_limit": ("high card limit", "low card limit"),
    "credit_card_balance": ("carries card debt", "little card debt"),
    "personal_loan_balance": ("personal loans", "no personal loans"),
    "car_loan_balance": ("car loans", "no car loan"),
    "mortgage_balance": ("mortgage", "no mortgage"),
    "bnpl_balance": ("buy-now-pay-later", "no buy-now-pay-later"),
    "monthly_emi": ("high instalments", "rarely borrows"),
    "loan_amount": ("large loans", "small loans"),
    "duration_months": ("long loans", "short loans"),
    "job_skill": ("skilled job", "unskilled job"),
    "credit_limit": ("high credit limit", "low credit limit"),
    "debt_to_income": ("high debt-to-income", "low debt-to-income"),
    "emi_to_income": ("heavy repayments", "light repayments"),
    "utilization": ("high utilization", "low utilization"),
    "savings_ratio": ("saves a lot", "saves little"),
    "max_days_past_due": ("past delinquency", "always paid on time"),
    "periods_past_due": ("often late", "rarely late"),
    "rfm_frequency": ("transacts often", "transacts rarely"),
    "txn_count": ("transacts often", "transacts rarely"),
    "txn_avg_amount": ("large purchases", "small purchases"),
    "spend_12m": ("spends a lot", "spends little"),
    "rfm_monetary": ("spends a lot", "spends little"),
    "rfm_recency_days": ("inactive lately", "active lately"),
    "avg_bill_amount": ("large bills", "small bills"),
    "payment_to_bill_ratio": ("pays bills in full", "pays little of the bill"),
}
FEATURE_WORDS.update(
    {
        "latest_utilization": FEATURE_WORDS["utilization"],
        "avg_utilization": FEATURE_WORDS["utilization"],
        "latest_debt_to_income": FEATURE_WORDS["debt_to_income"],
        "latest_credit_score": FEATURE_WORDS["credit_score"],
        "total_debt": ("heavily indebted", "little debt"),
        "total_deposits": ("large deposits", "small deposits"),
        "latest_balance": ("high balances", "low balances"),
        "avg_balance": ("high balances", "low balances"),
        "latest_days_past_due": FEATURE_WORDS["max_days_past_due"],
        "latest_bill_amount": FEATURE_WORDS["avg_bill_amount"],
        "avg_payment_amount": ("pays large amounts", "pays small amounts"),
    }
)
# Holding a product and its balance say the same thing: the same words let describe() drop the repeat.
for _flag, _balance in (
    ("has_savings", "savings_balance"),
    ("has_term_deposit", "term_deposit_balance"),
    ("has_personal_loan", "personal_loan_balance"),
    ("has_car_loan", "car_loan_balance"),
    ("has_mortgage", "mortgage_balance"),
    ("has_bnpl", "bnpl_balance"),
    ("has_investments", "investment_balance"),
):
    FEATURE_WORDS[_flag] = FEATURE_WORDS[_balance]
FEATURE_WORDS["has_credit_card"] = ("has a credit card", "no credit card")
FEATURE_WORDS["has_checking"] = ("has a current account", "no current account")


#: How far (in population standard deviations) a segment mean must sit from the population mean:
#: "above/below average", "clearly above/below", "well above/below".
AVERAGE = 0.25
CLEARLY = 0.5
WELL = 0.75


@dataclass(frozen=True)
class Trait:
    """One defining feature: a concept high (``direction`` +1) or low (-1) by at least ``threshold``.

    The concept is measured by the first of ``features`` the profile has; the later ones stand in
    only when the earlier are missing (a holding flag, then its balance), so two measures of one
    thing cannot be shopped between. A profile with none of them cannot show the trait.
    A negative threshold reads "not below/above": ``Trait(..., +1, -AVERAGE)`` is "at least about
    average".
    """

    words: str
    features: tuple[str, ...]
    direction: int
    threshold: float

    def margin(self, z_scores: dict[str, float]) -> float | None:
        """How far past its threshold the segment is (negative: short of it); None if unmeasured."""
        for feature in self.features:
            z = z_scores.get(feature)
            if z is not None and math.isfinite(z):
                return self.direction * max(min(z, 3.0), -3.0) - self.threshold
        return None

    @property
    def rule(self) -> str:
        """The condition in symbols: ``z(age) >= 0.75``."""
        measure = ", else ".join(self.features)
        bound = self.threshold if self.direction > 0 else -self.threshold
        return f"z({measure}) {'>=' if self.direction > 0 else '<='} {bound:g}"

    @property
    def definition(self) -> str:
        return f"{self.words} [{self.rule}]"


@dataclass(frozen=True)
class AnyOf:
    """A defining feature that one of several traits shows ("saves, or borrows little")."""

    words: str
    options: tuple[Trait, ...]

    def margin(self, z_scores: dict[str, float]) -> float | None:
        """The best margin among the options the profile can measure; None if it measures none."""
        margins = [m for m in (option.margin(z_scores) for option in self.options) if m is not None]
        return max(margins) if margins else None

    @property
    def definition(self) -> str:
        return f"{self.words}: " + " or ".join(option.definition for option in self.options)


Requirement = Trait | AnyOf


@dataclass(frozen=True)
class Archetype:
    """A business persona from the seed analyses: the features that define it and what to do.

    A segment takes the name only when its profile shows every one of ``defining``; an archetype
    whose features the data does not have is not available at all.
    """

    name: str
    strategy: str
    manual_underwriting: bool
    defining: tuple[Requirement, ...]

    @property
    def definition(self) -> str:
        """Its defining features in words, with the exact rule of each."""
        return "; and ".join(requirement.definition for requirement in self.defining) + "."


# Measures of one concept, best first (see Trait): a mart's total, then the spec's balances and flags.
_AGE = ("age",)
_INCOME = ("annual_income",)
_DEPOSITS = ("total_deposits", "savings_balance", "term_deposit_balance", "has_savings", "has_term_deposit")
_BORROWING = (
    "monthly_emi",
    "total_debt",
    "loan_amount",
    "debt_to_income",
    "utilization",
    "latest_utilization",
    "avg_utilization",
    "avg_bill_amount",
)
_CREDIT_SCORE = ("credit_score", "latest_credit_score")
_ARREARS = ("max_days_past_due", "periods_past_due", "latest_days_past_due")
_DEBT_TO_INCOME = ("debt_to_income", "latest_debt_to_income", "emi_to_income")

_SCORE_AT_LEAST_AVERAGE = Trait("credit score at least about average", _CREDIT_SCORE, 1, -AVERAGE)
_HIGH_INCOME = Trait("income clearly above average", _INCOME, 1, CLEARLY)

ARCHETYPES: tuple[Archetype, ...] = (
    # Age well above the population's, and either saving more or borrowing less than average.
    Archetype(
        "Conservative Seniors",
        "Wealth management and deposit products; no aggressive lending.",
        False,
        (
            Trait("age well above the population's", _AGE, 1, WELL),
            AnyOf(
                "saves or borrows little",
                (
                    Trait("savings or deposits above average", _DEPOSITS, 1, AVERAGE),
                    Trait("borrows less than average", _BORROWING, -1, AVERAGE),
                ),
            ),
        ),
    ),
    # Car loans clearly more common (or larger) than average, with a credit score fit for pre-approval.
    Archetype(
        "Mainstream Borrowers",
        "Digital car loans with pre-approved offers in the app.",
        False,
        (
            Trait("car loans clearly above average", ("has_car_loan", "car_loan_balance"), 1, CLEARLY),
            _SCORE_AT_LEAST_AVERAGE,
        ),
    ),
    # Buy-now-pay-later clearly more common than average, and younger than average.
    Archetype(
        "PayLater Users",
        "Buy-now-pay-later with strict limits; nudge towards a savings habit.",
        False,
        (
            Trait("buy-now-pay-later clearly above average", ("has_bnpl", "bnpl_balance"), 1, CLEARLY),
            Trait("younger than average", _AGE, -1, AVERAGE),
        ),
    ),
    # Borrows heavily (personal loans, large loans or a high debt-to-income) AND has a thin cushion
    # (a clearly weak credit score, clearly low savings or past-due payments): the watchlist.
    Archetype(
        "High-Stakes Borrowers",
        "Manual underwriting watchlist: no automatic approvals, tighter limits.",
        True,
        (
            AnyOf(
                "borrows heavily",
                (
                    Trait(
                        "personal loans clearly above average",
                        ("has_personal_loan", "personal_loan_balance"),
                        1,
                        CLEARLY,
                    ),
                    Trait("loans clearly larger than average", ("loan_amount",), 1, CLEARLY),
                    Trait("debt-to-income clearly above average", _DEBT_TO_INCOME, 1, CLEARLY),
                ),
            ),
            AnyOf(
                "thin cushion",
                (
                    Trait("credit score clearly below average", _CREDIT_SCORE, -1, CLEARLY),
                    Trait("savings clearly below average", _DEPOSITS, -1, CLEARLY),
                    Trait("past-due payments clearly above average", _ARREARS, 1, CLEARLY),
                ),
            ),
        ),
    ),
    # Income clearly above average, and investments or deposits clearly above average.
    Archetype(
        "Affluent & Investment Ready",
        "Wealth advice, investment products and premium cards.",
        False,
        (
            _HIGH_INCOME,
            AnyOf(
                "has wealth to manage",
                (
                    Trait("investments clearly above average", ("has_investments", "investment_balance"), 1, CLEARLY),
                    Trait("deposits clearly above average", _DEPOSITS, 1, CLEARLY),
                ),
            ),
        ),
    ),
    # Mortgages or card debt clearly above average, with a credit score fit for a top-up.
    Archetype(
        "Credit Active Middle",
        "Top-ups and refinancing of existing credit.",
        False,
        (
            AnyOf(
                "uses credit actively",
                (
                    Trait("mortgages clearly above average", ("has_mortgage", "mortgage_balance"), 1, CLEARLY),
                    Trait("card debt clearly above average", ("credit_card_balance",), 1, CLEARLY),
                ),
            ),
            _SCORE_AT_LEAST_AVERAGE,
        ),
    ),
    # Engages clearly less than average (app logins or transactions), and earns below average.
    Archetype(
        "Mass Retail",
        "Savings accounts, deposits and starter cards; raise engagement.",
        False,
        (
            AnyOf(
                "rarely engages",
                (
                    Trait("app logins clearly below average", ("app_logins_per_month",), -1, CLEARLY),
                    Trait("transactions clearly below average", ("rfm_frequency", "txn_count"), -1, CLEARLY),
                ),
            ),
            Trait("income below average", _INCOME, -1, AVERAGE),
        ),
    ),
    # Income and credit score both clearly above average.
    Archetype(
        "Golden Anchor",
        "Retain with relationship pricing and premium service.",
        False,
        (_HIGH_INCOME, Trait("credit score clearly above average", _CREDIT_SCORE, 1, CLEARLY)),
    ),
    # Clearly younger than average, yet earning above average.
    Archetype(
        "Rising Stars",
        "Grow the relationship: first mortgage, savings plans, card upgrades.",
        False,
        (
            Trait("clearly younger than average", _AGE, -1, CLEARLY),
            Trait("income above average", _INCOME, 1, AVERAGE),
        ),
    ),
    # Clearly newer to the bank than average, and borrowing less than average.
    Archetype(
        "Cautious Newcomers",
        "Starter products and small limits while the credit history builds.",
        False,
        (
            Trait("clearly newer to the bank than average", ("tenure_months",), -1, CLEARLY),
            Trait("borrows less than average", _BORROWING, -1, AVERAGE),
        ),
    ),
    # Past-due payments (days or periods past due) clearly above average.
    Archetype(
        "Struggling Borrowers",
        "Collections early contact, restructuring offers; no new credit.",
        True,
        (Trait("past-due payments clearly above average", _ARREARS, 1, CLEARLY),),
    ),
)
GENERIC_STRATEGY = "No archetype matched: review the profile and set a strategy (segrisk personas strategy)."


def describe(z_scores: dict[str, float], top: int = 3) -> str:
    """'Older, high savings, rarely borrows': the features that set the segment apart most."""
    ranked = sorted(((abs(z), f, z) for f, z in z_scores.items() if abs(z) >= 0.25), reverse=True)
    words = []
    for _, feature, z in ranked:
        high, low = FEATURE_WORDS.get(
            feature, (f"high {feature.replace('_', ' ')}", f"low {feature.replace('_', ' ')}")
        )
        phrase = high if z > 0 else low
        if phrase not in words:
            words.append(phrase)
        if len(words) == top:
            break
    if not words:
        return "Close to the population average"
    text = ", ".join(words)
    return text[0].upper() + text[1:]


def available(archetype: Archetype, z_scores: dict[str, float]) -> bool:
    """Whether the profile measures every defining feature of the archetype at all."""
    return all(requirement.margin(z_scores) is not None for requirement in archetype.defining)


def qualifies(archetype: Archetype, z_scores: dict[str, float]) -> bool:
    """Whether the profile shows every defining feature of the archetype."""
    margins = [requirement.margin(z_scores) for requirement in archetype.defining]
    return all(m is not None and m >= 0 for m in margins)


def archetype_score(archetype: Archetype, z_scores: dict[str, float]) -> float | None:
    """How well a qualifying profile fits: the mean margin past each defining threshold (z clipped
    at +-3). None when the profile does not meet every defining feature."""
    if not qualifies(archetype, z_scores):
        return None
    margins = [requirement.margin(z_scores) or 0.0 for requirement in archetype.defining]
    return sum(margins) / len(margins)


def match_archetypes(profiles: dict[int, dict[str, float]]) -> dict[int, Archetype]:
    """Give each segment at most one archetype and each archetype at most one segment.

    Only segments that meet every defining feature of an archetype compete for it; the best fits
    are paired first. A segment left without one keeps a name from its distinctive features.
    """
    candidates = []
    for segment, z_scores in profiles.items():
        for archetype in ARCHETYPES:
            score = archetype_score(archetype, z_scores)
            if score is not None:
                candidates.append((score, segment, archetype.name, archetype))
    matched: dict[int, Archetype] = {}
    used: set[str] = set()
    for _score, segment, name, archetype in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if segment not in matched and name not in used:
            matched[segment] = archetype
            used.add(name)
    return matched

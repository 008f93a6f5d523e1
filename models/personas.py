"""Persona names a risk manager can read: descriptions from what sets a segment apart, and the
business archetypes of the seed analyses with their recommended strategies.

Everything here works on a segment profile: the z-score of each feature's segment mean against
the whole population. No model code, so the naming rules can be read and tested on their own.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Archetype:
    """A business persona from the seed analyses: the profile that identifies it and what to do."""

    name: str
    strategy: str
    manual_underwriting: bool
    #: feature -> +1 when the archetype has it high, -1 when low.
    signature: dict[str, int]


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype(
        "Conservative Seniors",
        "Wealth management and deposit products; no aggressive lending.",
        False,
        {
            "age": 1,
            "term_deposit_balance": 1,
            "savings_balance": 1,
            "monthly_emi": -1,
            "app_logins_per_month": -1,
            "loan_amount": -1,
        },
    ),
    Archetype(
        "Mainstream Borrowers",
        "Digital car loans with pre-approved offers in the app.",
        False,
        {"car_loan_balance": 1, "has_car_loan": 1},
    ),
    Archetype(
        "PayLater Users",
        "Buy-now-pay-later with strict limits; nudge towards a savings habit.",
        False,
        {"has_bnpl": 1, "bnpl_balance": 1, "age": -1, "app_logins_per_month": 1, "savings_balance": -1},
    ),
    Archetype(
        "High-Stakes Borrowers",
        "Manual underwriting watchlist: no automatic approvals, tighter limits.",
        True,
        {
            "personal_loan_balance": 1,
            "loan_amount": 1,
            "debt_to_income": 1,
            "savings_balance": -1,
            "credit_score": -1,
            "max_days_past_due": 1,
        },
    ),
    Archetype(
        "Affluent & Investment Ready",
        "Wealth advice, investment products and premium cards.",
        False,
        {"annual_income": 1, "investment_balance": 1, "has_investments": 1, "credit_card_limit": 1, "credit_score": 1},
    ),
    Archetype(
        "Credit Active Middle",
        "Top-ups and refinancing of existing credit.",
        False,
        {"mortgage_balance": 1, "credit_card_balance": 1, "has_credit_card": 1, "has_mortgage": 1},
    ),
    Archetype(
        "Mass Retail",
        "Savings accounts, deposits and starter cards; raise engagement.",
        False,
        {
            "app_logins_per_month": -1,
            "rfm_frequency": -1,
            "checking_balance": -1,
            "annual_income": -1,
            "credit_card_limit": -1,
        },
    ),
    Archetype(
        "Golden Anchor",
        "Retain with relationship pricing and premium service.",
        False,
        {"annual_income": 1, "credit_score": 1, "max_days_past_due": -1},
    ),
    Archetype(
        "Rising Stars",
        "Grow the relationship: first mortgage, savings plans, card upgrades.",
        False,
        {"age": -1, "savings_ratio": 1, "annual_income": 1},
    ),
    Archetype(
        "Cautious Newcomers",
        "Starter products and small limits while the credit history builds.",
        False,
        {"tenure_months": -1, "monthly_emi": -1, "credit_score": -1},
    ),
    Archetype(
        "Struggling Borrowers",
        "Collections early contact, restructuring offers; no new credit.",
        True,
        {"debt_to_income": 1, "emi_to_income": 1, "max_days_past_due": 1, "periods_past_due": 1},
    ),
)
#: How strongly (mean signed z-score) a profile must match an archetype to take its name.
ARCHETYPE_MIN_SCORE = 0.5
ARCHETYPE_MIN_FEATURES = 2
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


def archetype_score(archetype: Archetype, z_scores: dict[str, float]) -> float | None:
    """Mean of sign x z over the archetype's features present in the data (None if too few)."""
    present = [sign * max(min(z_scores[f], 3.0), -3.0) for f, sign in archetype.signature.items() if f in z_scores]
    if len(present) < min(ARCHETYPE_MIN_FEATURES, len(archetype.signature)):
        return None
    return sum(present) / len(present)


def match_archetypes(profiles: dict[int, dict[str, float]]) -> dict[int, Archetype]:
    """Give each segment at most one archetype and each archetype at most one segment, best matches first."""
    candidates = []
    for segment, z_scores in profiles.items():
        for archetype in ARCHETYPES:
            score = archetype_score(archetype, z_scores)
            if score is not None and score >= ARCHETYPE_MIN_SCORE:
                candidates.append((score, segment, archetype.name, archetype))
    matched: dict[int, Archetype] = {}
    used: set[str] = set()
    for _score, segment, name, archetype in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if segment not in matched and name not in used:
            matched[segment] = archetype
            used.add(name)
    return matched

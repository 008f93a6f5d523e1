"""Deterministic synthetic bank: customers, loan applications, transactions and snapshots.

Every customer belongs to one of seven latent personas that drive demographics,
product holdings, balances, digital engagement, spending and credit risk.  The
personas are only published in ``latent_personas.parquet`` so that tests can
check that segmentation recovers them; they are never a modelling feature.

Credit risk has a known ground truth: each customer carries a latent risk
propensity that shifts utilisation, debt, savings, delinquency and score, and
the 12-month default flag is drawn from a logistic function of *observable*
drivers only (see ``DEFAULT_INTERCEPT`` / ``DEFAULT_COEFFICIENTS``).  The AUC of
that true probability is the best any model built on the warehouse can reach.

Output is a pure function of ``(seed, n_customers)``: customers are generated
in fixed-size chunks, each from its own child of ``SeedSequence(seed)``, and
every file is written by a single Parquet writer appending the chunks in order,
so memory stays bounded and the files are byte-identical across runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score

AS_OF_DATE = date(2026, 10, 31)
MIN_CUSTOMERS = 1_000
MAX_CUSTOMERS = 5_000_000

PERSONAS: tuple[str, ...] = (
    "conservative_seniors",
    "mainstream_borrowers",
    "paylater_users",
    "high_stakes_borrowers",
    "affluent_investors",
    "credit_active_middle",
    "mass_retail",
)

# Share of nulls injected (completely at random) into customers.parquet only.
MISSING_RATES: dict[str, float] = {
    "annual_income": 0.03,
    "employment_years": 0.02,
    "education": 0.015,
    "marital_status": 0.01,
}

# Share of rows turned into outliers.  Income outliers are recording errors:
# the published annual_income is multiplied by 10-30 while the default model
# keeps using the true income.  Transaction outliers are genuine large spends.
OUTLIER_RATES: dict[str, float] = {
    "customers.annual_income": 0.001,
    "transactions.amount": 0.0005,
}
_INCOME_OUTLIER_FACTOR = (10.0, 30.0)
_AMOUNT_OUTLIER_FACTOR = (20.0, 50.0)

# The true 12-month probability of default is
#     true_pd = sigmoid(DEFAULT_INTERCEPT + sum(DEFAULT_COEFFICIENTS[f] * x[f]))
# over these observable drivers, all computable from the published files (the
# income being the true one, i.e. before nulls and outliers were injected):
DEFAULT_FEATURES: dict[str, str] = {
    "utilization": "credit_card_balance / credit_card_limit (0 without a card)",
    "debt_to_income": "min(monthly_emi * 12 / annual_income, 3)",
    "max_dpd_12m": "max(days_past_due over the last 12 snapshots) / 30, so 0..4",
    "savings_ratio": "min(savings_balance / annual_income, 2)",
    "credit_score": "(credit_score - 650) / 100",
    "loan_to_income": "min(loan_amount / annual_income, 3)",
    "age": "(age - 45) / 10",
}
DEFAULT_INTERCEPT = -2.9
DEFAULT_COEFFICIENTS: dict[str, float] = {
    "utilization": 0.8,
    "debt_to_income": 0.9,
    "max_dpd_12m": 0.7,
    "savings_ratio": -0.9,
    "credit_score": -1.0,
    "loan_to_income": 0.35,
    "age": -0.12,
}

CATEGORIES: dict[str, tuple[str, ...]] = {
    "sex": ("female", "male"),
    "marital_status": ("single", "married", "divorced", "widowed"),
    "education": ("primary", "secondary", "bachelor", "postgraduate"),
    "housing": ("own", "rent", "free"),
    "region": ("North", "South", "East", "West", "Central", "Capital", "Coastal", "Mountain"),
    "purpose": (
        "car",
        "electronics",
        "furniture",
        "education",
        "business",
        "repairs",
        "vacation",
        "domestic_appliances",
    ),
    "merchant_category": (
        "groceries",
        "restaurants",
        "travel",
        "electronics",
        "fashion",
        "utilities",
        "health",
        "entertainment",
        "fuel",
        "home",
        "cash_withdrawal",
        "transfers",
    ),
    "channel": ("app", "online", "branch", "atm"),
}

PRODUCTS: tuple[str, ...] = (
    "savings",
    "checking",
    "term_deposit",
    "credit_card",
    "personal_loan",
    "car_loan",
    "mortgage",
    "bnpl",
    "investments",
)

_BALANCE_COLUMNS = (
    "savings_balance",
    "checking_balance",
    "term_deposit_balance",
    "investment_balance",
    "credit_card_limit",
    "credit_card_balance",
    "personal_loan_balance",
    "car_loan_balance",
    "mortgage_balance",
    "bnpl_balance",
    "monthly_emi",
)
# customers.parquet column order (after customer_id).
_CUSTOMER_COLUMNS: tuple[str, ...] = (
    "age",
    "sex",
    "marital_status",
    "education",
    "job_skill",
    "housing",
    "region",
    "annual_income",
    "employment_years",
    "tenure_months",
    "app_logins_per_month",
    "online_txn_share",
    "credit_score",
    *(f"has_{name}" for name in PRODUCTS),
    *_BALANCE_COLUMNS,
)

_CHUNK_SIZE = 100_000
_N_MONTHS = 24
_FIRST_MONTH = date(2024, 11, 1)
_EPOCH = date(1970, 1, 1)
_SECONDS_PER_DAY = 86_400
_TXN_WINDOW_SECONDS = (AS_OF_DATE - _FIRST_MONTH).days * _SECONDS_PER_DAY + _SECONDS_PER_DAY
_TXN_TIME_BITS = 26  # 2**26 s > 24 months, so (customer, second) packs into one int64 sort key
_MIN_TENURE_MONTHS = _N_MONTHS  # the extract holds customers with two full years of history

# Spend-size multiplier per merchant category (same order as CATEGORIES).
_CATEGORY_AMOUNT_FACTOR = np.array([1.0, 0.8, 4.0, 3.0, 1.5, 2.0, 1.2, 0.7, 1.2, 2.5, 1.5, 3.0])
_CATEGORY_MIX = {
    "basic": (0.30, 0.07, 0.02, 0.03, 0.05, 0.12, 0.08, 0.04, 0.08, 0.06, 0.10, 0.05),
    "senior": (0.32, 0.06, 0.04, 0.01, 0.04, 0.14, 0.14, 0.03, 0.05, 0.06, 0.08, 0.03),
    "young": (0.18, 0.15, 0.05, 0.12, 0.14, 0.05, 0.03, 0.13, 0.04, 0.03, 0.04, 0.04),
    "affluent": (0.20, 0.14, 0.12, 0.06, 0.10, 0.08, 0.06, 0.08, 0.06, 0.06, 0.02, 0.02),
}

# Annual interest rate and remaining-term range (months) used for instalments.
_LOAN_TERMS: dict[str, tuple[float, int, int]] = {
    "personal_loan": (0.075, 6, 60),
    "car_loan": (0.055, 6, 60),
    "mortgage": (0.035, 60, 300),
    "bnpl": (0.0, 1, 4),
}

# Monthly delinquency: onset probability sigmoid(a + b * risk) for customers with
# credit; an open arrear rolls one bucket further with the persistence probability.
_DPD_ONSET = (-5.4, 1.1)
_DPD_PERSISTENCE = 0.55
_SCORE_DROP_RATE = 0.01
_SCORE_DROP_POINTS = (20, 60)


@dataclass(frozen=True)
class _Persona:
    """Generative parameters of one latent persona.

    Tuples of probabilities follow the order of the matching CATEGORIES entry
    (or PRODUCTS for ``holding``) and need not sum to one.  Money is in EUR.
    """

    slug: str
    share: float  # expected share of the customer base
    age: tuple[float, float, int, int]  # mean, sd, min, max (normal, clipped)
    female: float
    marital_status: tuple[float, ...]
    education: tuple[float, ...]
    job_skill: tuple[float, ...]
    housing: tuple[float, ...]
    region: tuple[float, ...]
    income_median: float  # lognormal annual income
    income_sigma: float
    employment_years: float  # gamma mean, capped at age - 16
    tenure_median: float  # months with the bank; the excess over 24 is lognormal
    app_logins: float  # gamma mean per month
    online_share: float  # beta mean of the digital share of spend
    risk: float  # mean latent risk; drives delinquency onset and score drops
    holding: tuple[float, ...]  # P(hold) per PRODUCTS entry; checking is 1 (every customer)
    savings_median: float  # scaled by sqrt(income / income_median)
    checking_income_share: float
    term_deposit_median: float
    investment_median: float  # scaled by income / income_median
    card_limit_median: float
    utilization: float  # mean card balance / limit
    personal_loan_income_ratio: float
    car_loan_median: float
    mortgage_income_ratio: float
    bnpl_median: float
    score: float  # typical current credit score
    loan_amount_median: float  # loan application amount
    purpose: tuple[float, ...]
    txn_mean: float  # expected transactions over the 24 months
    txn_amount_median: float
    category_mix: str  # key of _CATEGORY_MIX
    dormancy: float  # probability of no transactions in the last 2-12 months
    app_within_digital: float  # app (vs online) share of digital transactions
    branch_within_physical: float  # branch (vs ATM) share of physical transactions


_EVEN_REGIONS = (1.0,) * 8
# fmt: off
_PROFILES: tuple[_Persona, ...] = (
    _Persona(
        slug="conservative_seniors", share=0.10, age=(71, 7, 60, 95), female=0.55,
        marital_status=(0.06, 0.56, 0.10, 0.28), education=(0.25, 0.50, 0.18, 0.07),
        job_skill=(0.03, 0.27, 0.55, 0.15), housing=(0.82, 0.13, 0.05),
        region=(1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 1.6, 1.5),
        income_median=30_000, income_sigma=0.35, employment_years=24, tenure_median=260,
        app_logins=1.5, online_share=0.15, risk=-0.9,
        holding=(0.97, 1.0, 0.85, 0.25, 0.02, 0.03, 0.03, 0.01, 0.20),
        savings_median=45_000, checking_income_share=0.10, term_deposit_median=40_000,
        investment_median=30_000, card_limit_median=3_000, utilization=0.08,
        personal_loan_income_ratio=0.15, car_loan_median=8_000, mortgage_income_ratio=1.0,
        bnpl_median=300, score=775, loan_amount_median=4_000,
        purpose=(0.10, 0.08, 0.20, 0.02, 0.02, 0.35, 0.15, 0.08),
        txn_mean=30, txn_amount_median=38, category_mix="senior", dormancy=0.15,
        app_within_digital=0.35, branch_within_physical=0.55,
    ),
    _Persona(
        slug="mainstream_borrowers", share=0.18, age=(40, 6, 27, 58), female=0.50,
        marital_status=(0.20, 0.65, 0.13, 0.02), education=(0.08, 0.55, 0.30, 0.07),
        job_skill=(0.02, 0.28, 0.55, 0.15), housing=(0.55, 0.40, 0.05), region=_EVEN_REGIONS,
        income_median=42_000, income_sigma=0.30, employment_years=9, tenure_median=110,
        app_logins=10, online_share=0.55, risk=-0.1,
        holding=(0.85, 1.0, 0.06, 0.30, 0.05, 0.97, 0.08, 0.04, 0.04),
        savings_median=8_000, checking_income_share=0.08, term_deposit_median=10_000,
        investment_median=8_000, card_limit_median=4_000, utilization=0.25,
        personal_loan_income_ratio=0.15, car_loan_median=16_000, mortgage_income_ratio=3.0,
        bnpl_median=400, score=710, loan_amount_median=14_000,
        purpose=(0.55, 0.05, 0.12, 0.04, 0.04, 0.10, 0.06, 0.04),
        txn_mean=55, txn_amount_median=45, category_mix="basic", dormancy=0.04,
        app_within_digital=0.60, branch_within_physical=0.25,
    ),
    _Persona(
        slug="paylater_users", share=0.14, age=(24, 3.5, 18, 34), female=0.52,
        marital_status=(0.85, 0.12, 0.03, 0.0), education=(0.10, 0.50, 0.35, 0.05),
        job_skill=(0.08, 0.50, 0.37, 0.05), housing=(0.12, 0.55, 0.33),
        region=(1.0, 1.0, 1.0, 1.0, 1.2, 1.6, 0.9, 0.6),
        income_median=24_000, income_sigma=0.35, employment_years=2, tenure_median=40,
        app_logins=38, online_share=0.88, risk=0.5,
        holding=(0.15, 1.0, 0.02, 0.30, 0.05, 0.03, 0.02, 0.94, 0.03),
        savings_median=800, checking_income_share=0.05, term_deposit_median=3_000,
        investment_median=1_500, card_limit_median=1_500, utilization=0.70,
        personal_loan_income_ratio=0.12, car_loan_median=8_000, mortgage_income_ratio=3.0,
        bnpl_median=600, score=645, loan_amount_median=2_500,
        purpose=(0.04, 0.50, 0.12, 0.14, 0.02, 0.03, 0.10, 0.05),
        txn_mean=90, txn_amount_median=25, category_mix="young", dormancy=0.03,
        app_within_digital=0.80, branch_within_physical=0.05,
    ),
    _Persona(
        slug="high_stakes_borrowers", share=0.08, age=(35, 8, 21, 65), female=0.42,
        marital_status=(0.30, 0.45, 0.22, 0.03), education=(0.15, 0.55, 0.25, 0.05),
        job_skill=(0.05, 0.40, 0.45, 0.10), housing=(0.50, 0.45, 0.05), region=_EVEN_REGIONS,
        income_median=36_000, income_sigma=0.35, employment_years=4, tenure_median=55,
        app_logins=14, online_share=0.60, risk=1.0,
        holding=(0.10, 1.0, 0.01, 0.95, 0.96, 0.25, 0.12, 0.50, 0.02),
        savings_median=600, checking_income_share=0.03, term_deposit_median=3_000,
        investment_median=2_000, card_limit_median=5_000, utilization=0.80,
        personal_loan_income_ratio=0.45, car_loan_median=18_000, mortgage_income_ratio=4.5,
        bnpl_median=800, score=600, loan_amount_median=22_000,
        purpose=(0.15, 0.05, 0.08, 0.04, 0.35, 0.15, 0.10, 0.08),
        txn_mean=60, txn_amount_median=50, category_mix="basic", dormancy=0.05,
        app_within_digital=0.60, branch_within_physical=0.30,
    ),
    _Persona(
        slug="affluent_investors", share=0.08, age=(50, 9, 30, 82), female=0.42,
        marital_status=(0.15, 0.70, 0.12, 0.03), education=(0.01, 0.14, 0.45, 0.40),
        job_skill=(0.0, 0.03, 0.27, 0.70), housing=(0.85, 0.13, 0.02),
        region=(0.8, 0.8, 0.8, 0.8, 1.0, 3.0, 1.2, 0.6),
        income_median=125_000, income_sigma=0.40, employment_years=14, tenure_median=150,
        app_logins=9, online_share=0.65, risk=-1.4,
        holding=(0.95, 1.0, 0.35, 0.97, 0.03, 0.12, 0.30, 0.02, 0.96),
        savings_median=60_000, checking_income_share=0.12, term_deposit_median=60_000,
        investment_median=180_000, card_limit_median=15_000, utilization=0.10,
        personal_loan_income_ratio=0.10, car_loan_median=35_000, mortgage_income_ratio=2.5,
        bnpl_median=500, score=800, loan_amount_median=30_000,
        purpose=(0.30, 0.05, 0.10, 0.08, 0.25, 0.12, 0.07, 0.03),
        txn_mean=75, txn_amount_median=90, category_mix="affluent", dormancy=0.03,
        app_within_digital=0.55, branch_within_physical=0.30,
    ),
    _Persona(
        slug="credit_active_middle", share=0.17, age=(42, 9, 25, 68), female=0.50,
        marital_status=(0.25, 0.55, 0.17, 0.03), education=(0.05, 0.50, 0.37, 0.08),
        job_skill=(0.02, 0.30, 0.53, 0.15), housing=(0.55, 0.42, 0.03), region=_EVEN_REGIONS,
        income_median=50_000, income_sigma=0.30, employment_years=8, tenure_median=100,
        app_logins=13, online_share=0.62, risk=0.0,
        holding=(0.85, 1.0, 0.04, 0.97, 0.15, 0.10, 0.92, 0.10, 0.10),
        savings_median=5_000, checking_income_share=0.07, term_deposit_median=8_000,
        investment_median=10_000, card_limit_median=6_000, utilization=0.40,
        personal_loan_income_ratio=0.25, car_loan_median=15_000, mortgage_income_ratio=3.2,
        bnpl_median=500, score=690, loan_amount_median=10_000,
        purpose=(0.15, 0.12, 0.15, 0.08, 0.08, 0.20, 0.14, 0.08),
        txn_mean=65, txn_amount_median=50, category_mix="basic", dormancy=0.03,
        app_within_digital=0.60, branch_within_physical=0.25,
    ),
    _Persona(
        slug="mass_retail", share=0.25, age=(45, 14, 18, 85), female=0.50,
        marital_status=(0.35, 0.45, 0.13, 0.07), education=(0.30, 0.55, 0.13, 0.02),
        job_skill=(0.10, 0.55, 0.30, 0.05), housing=(0.35, 0.50, 0.15),
        region=(1.2, 1.2, 1.2, 1.0, 1.0, 0.6, 0.9, 0.9),
        income_median=22_000, income_sigma=0.40, employment_years=6, tenure_median=90,
        app_logins=2.5, online_share=0.25, risk=0.2,
        holding=(0.30, 1.0, 0.03, 0.10, 0.04, 0.025, 0.025, 0.04, 0.01),
        savings_median=1_500, checking_income_share=0.04, term_deposit_median=5_000,
        investment_median=3_000, card_limit_median=1_200, utilization=0.35,
        personal_loan_income_ratio=0.15, car_loan_median=9_000, mortgage_income_ratio=2.5,
        bnpl_median=300, score=660, loan_amount_median=3_500,
        purpose=(0.10, 0.15, 0.15, 0.05, 0.03, 0.25, 0.10, 0.17),
        txn_mean=20, txn_amount_median=30, category_mix="basic", dormancy=0.25,
        app_within_digital=0.30, branch_within_physical=0.40,
    ),
)
# fmt: on
_CATEGORY_MIX_BY_PERSONA = np.array([_CATEGORY_MIX[p.category_mix] for p in _PROFILES])


def _param(name: str) -> np.ndarray:
    """Stack one persona attribute into an array indexed by persona code (2-D for tuples)."""
    return np.array([getattr(p, name) for p in _PROFILES], dtype=np.float64)


@dataclass
class _Population:
    """Per-customer draws of one chunk; the latent fields never reach a feature file."""

    customer_id: np.ndarray
    persona: np.ndarray
    risk: np.ndarray  # latent risk propensity: persona mean + risk_dev
    risk_dev: np.ndarray  # within-persona deviation, shifts amounts inside the persona
    true_income: np.ndarray  # before nulls and recording-error outliers are injected
    columns: dict[str, np.ndarray]


@dataclass
class _Chunk:
    """All tables of one chunk of customers plus what the summary needs."""

    tables: dict[str, pl.DataFrame]
    persona: np.ndarray
    true_pd: np.ndarray
    defaulted: np.ndarray


def generate_bank(
    n_customers: int,
    seed: int,
    out_dir: Path,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write the synthetic bank as Parquet files into out_dir.

    Returns the summary dict also written to out_dir/generation.json.  progress,
    when given, receives one line per file and chunk of customers.
    """
    _validate(n_customers)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda _msg: None)
    bounds = [*range(0, n_customers, _CHUNK_SIZE), n_customers]
    chunk_seeds = np.random.SeedSequence(seed).spawn(len(bounds) - 1)
    row_counts: dict[str, int] = {}
    persona_counts = np.zeros(len(PERSONAS), dtype=np.int64)
    pds: list[np.ndarray] = []
    outcomes: list[np.ndarray] = []
    with ExitStack() as stack:
        writers: dict[str, pq.ParquetWriter] = {}
        for seq, start, stop in zip(chunk_seeds, bounds[:-1], bounds[1:], strict=True):
            chunk = _generate_chunk(seq, start, stop - start, row_counts.get("transactions", 0))
            for name, frame in chunk.tables.items():
                table = frame.to_arrow()
                if name not in writers:
                    path = out_dir / f"{name}.parquet"
                    writer = pq.ParquetWriter(path, table.schema, compression="zstd")
                    writers[name] = stack.enter_context(writer)
                writers[name].write_table(table)
                row_counts[name] = row_counts.get(name, 0) + frame.height
                report(f"{name}: {stop:,}/{n_customers:,} customers")
            persona_counts += np.bincount(chunk.persona, minlength=len(PERSONAS))
            pds.append(chunk.true_pd)
            outcomes.append(chunk.defaulted)
    true_pd, defaulted = np.concatenate(pds), np.concatenate(outcomes)
    summary = _summary(seed, n_customers, row_counts, persona_counts, true_pd, defaulted)
    (out_dir / "generation.json").write_text(json.dumps(summary, indent=2) + "\n")
    rate, auc = summary["default_rate"], summary["best_auc"]
    report(f"generation.json: default rate {rate:.2%}, best AUC {auc:.3f}")
    return summary


def _validate(n_customers: int) -> None:
    """Reject sizes outside the range the generator is designed and tested for."""
    if isinstance(n_customers, bool) or not isinstance(n_customers, int | np.integer):
        raise TypeError(f"n_customers must be an integer, got {n_customers!r}.")
    if not MIN_CUSTOMERS <= n_customers <= MAX_CUSTOMERS:
        raise ValueError(f"n_customers must be between {MIN_CUSTOMERS:,} and {MAX_CUSTOMERS:,}, got {n_customers:,}.")


def _summary(
    seed: int,
    n_customers: int,
    row_counts: dict[str, int],
    persona_counts: np.ndarray,
    true_pd: np.ndarray,
    defaulted: np.ndarray,
) -> dict:
    """Describe the run; holds no timings so that generation.json is deterministic too."""
    shares = [round(float(c) / n_customers, 6) for c in persona_counts]
    return {
        "seed": seed,
        "n_customers": n_customers,
        "as_of_date": AS_OF_DATE.isoformat(),
        "row_counts": {f"{name}.parquet": count for name, count in row_counts.items()},
        "persona_shares": dict(zip(PERSONAS, shares, strict=True)),
        "missing_rates": MISSING_RATES,
        "outlier_rates": OUTLIER_RATES,
        "default_rate": round(float(defaulted.mean()), 6),
        "default_model": {
            "formula": "true_pd = sigmoid(intercept + sum(coefficients[f] * feature[f]))",
            "features": DEFAULT_FEATURES,
            "intercept": DEFAULT_INTERCEPT,
            "coefficients": DEFAULT_COEFFICIENTS,
        },
        "best_auc": round(float(roc_auc_score(defaulted, true_pd)), 6),
    }


def _generate_chunk(seq: np.random.SeedSequence, first_index: int, n: int, first_txn_id: int) -> _Chunk:
    """Generate every table for customers first_index+1 .. first_index+n.

    Each table family draws from its own child stream, so changing how one
    table is generated leaves the other tables' values unchanged.
    """
    rng_people, rng_history, rng_loans, rng_txn, rng_publish = (np.random.default_rng(s) for s in seq.spawn(5))
    pop = _draw_population(rng_people, first_index, n)
    dpd = _delinquency(rng_history, pop)
    scores = _credit_score_paths(rng_history, pop, dpd)
    pop.columns["credit_score"] = scores[:, -1]
    snapshots = _snapshots(rng_history, pop, dpd, scores)
    applications, true_pd, defaulted = _applications(rng_loans, pop, dpd)
    tables = {
        "customers": _customers_frame(rng_publish, pop),
        "loan_applications": applications,
        "transactions": _transactions(rng_txn, pop, first_txn_id),
        "monthly_snapshots": snapshots,
        "latent_personas": pl.DataFrame(
            {"customer_id": pop.customer_id, "persona": pl.Series(PERSONAS).gather(pop.persona)}
        ),
    }
    return _Chunk(tables=tables, persona=pop.persona, true_pd=true_pd, defaulted=defaulted)


# --------------------------------------------------------------------------- draws


def _categorical(rng: np.random.Generator, group: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Draw one category index per row from the probability row of its group.

    Offsetting each group's cumulative probabilities by the group index turns
    the per-group inverse-CDF lookup into one vectorised searchsorted.
    """
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    cum[:, -1] = 1.0
    flat = (cum + np.arange(len(probs))[:, None]).ravel()
    idx = np.searchsorted(flat, group + rng.random(len(group)), side="right")
    # Rounding of group + u can reach group + 1 when u is within 1e-15 of 1.
    return np.minimum(idx - group * probs.shape[1], probs.shape[1] - 1)


def _lognormal(
    rng: np.random.Generator,
    median: np.ndarray,
    sigma: np.ndarray | float,
    shift: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Lognormal amounts around per-row medians, with an optional log-scale shift."""
    return median * np.exp(shift + sigma * rng.standard_normal(len(median)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1.0 - p))


def _beta_around(rng: np.random.Generator, mean: np.ndarray, concentration: float) -> np.ndarray:
    """Beta draws parameterised by their mean, for shares and utilisation."""
    mean = np.clip(mean, 1e-3, 1 - 1e-3)
    return rng.beta(mean * concentration, (1 - mean) * concentration)


def _reverse_cumsum(steps: np.ndarray) -> np.ndarray:
    """Column t holds steps[:, t:].sum(), to walk a path backwards from its final value."""
    return np.cumsum(steps[:, ::-1], axis=1)[:, ::-1]


# --------------------------------------------------------------------------- customers


def _draw_population(rng: np.random.Generator, first_index: int, n: int) -> _Population:
    """Draw personas, latent risk, demographics, engagement and product holdings."""
    persona = _categorical(rng, np.zeros(n, dtype=np.int64), _param("share")[None, :])
    risk_dev = rng.standard_normal(n)
    columns = _demographics(rng, persona)
    true_income = _income(rng, persona, columns["job_skill"])
    columns |= _engagement(rng, persona)
    columns |= _products(rng, persona, risk_dev, true_income)
    own = CATEGORIES["housing"].index("own")
    columns["housing"] = np.where(columns["has_mortgage"], own, columns["housing"])
    return _Population(
        customer_id=np.arange(first_index + 1, first_index + n + 1, dtype=np.int64),
        persona=persona,
        risk=_param("risk")[persona] + risk_dev,
        risk_dev=risk_dev,
        true_income=true_income,
        columns=columns,
    )


def _demographics(rng: np.random.Generator, persona: np.ndarray) -> dict[str, np.ndarray]:
    """Age, categorical attributes, employment and tenure; age bounds the two durations."""
    n = len(persona)
    mean, sd, low, high = _param("age")[persona].T
    age = mean + sd * rng.standard_normal(n)
    age = np.clip(np.rint(np.where(age < low, 2 * low - age, age)), low, high)  # reflect, no spike
    columns = {
        "age": age.astype(np.int32),
        "sex": (rng.random(n) >= _param("female")[persona]).astype(np.int64),
    }
    for name in ("marital_status", "education", "job_skill", "housing", "region"):
        columns[name] = _categorical(rng, persona, _param(name))
    columns["job_skill"] = columns["job_skill"].astype(np.int32)
    employment = rng.gamma(2.5, _param("employment_years")[persona] / 2.5)
    columns["employment_years"] = np.round(np.minimum(employment, age - 16), 1)
    excess = _lognormal(rng, _param("tenure_median")[persona] - _MIN_TENURE_MONTHS, 0.6)
    tenure = np.rint(_MIN_TENURE_MONTHS + excess)
    max_tenure = np.maximum((age - 16) * 12, _MIN_TENURE_MONTHS)
    columns["tenure_months"] = np.clip(tenure, _MIN_TENURE_MONTHS, max_tenure).astype(np.int32)
    return columns


def _income(rng: np.random.Generator, persona: np.ndarray, job_skill: np.ndarray) -> np.ndarray:
    """Lognormal annual income by persona, a little higher for skilled jobs."""
    median = _param("income_median")[persona] * np.exp(0.1 * (job_skill - 1.5))
    income = _lognormal(rng, median, _param("income_sigma")[persona])
    return np.round(np.maximum(income, 6_000.0), 2)


def _engagement(rng: np.random.Generator, persona: np.ndarray) -> dict[str, np.ndarray]:
    """Digital engagement: monthly app logins (gamma) and share of spend made online (beta)."""
    logins = rng.gamma(6.0, _param("app_logins")[persona] / 6.0)
    share = _beta_around(rng, _param("online_share")[persona], 20.0)
    return {
        "app_logins_per_month": np.round(logins, 1),
        "online_txn_share": np.round(share, 4),
    }


def _products(
    rng: np.random.Generator, persona: np.ndarray, risk_dev: np.ndarray, income: np.ndarray
) -> dict[str, np.ndarray]:
    """Holdings (has_*), balances and monthly instalments; riskier customers save less."""
    held = rng.random((len(persona), len(PRODUCTS))) < _param("holding")[persona]
    has = {name: held[:, i] for i, name in enumerate(PRODUCTS)}
    columns = {f"has_{name}": flag for name, flag in has.items()}
    columns |= _deposit_balances(rng, persona, risk_dev, income, has)
    columns |= _credit_balances(rng, persona, risk_dev, income, has)
    emi = sum(_instalment(rng, columns[f"{loan}_balance"], loan) for loan in _LOAN_TERMS)
    columns["monthly_emi"] = np.round(emi, 2)
    return columns


def _held_amount(has: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Amount rounded to cents for holders, exactly 0 for everyone else."""
    return np.where(has, np.round(amount, 2), 0.0)


def _deposit_balances(
    rng: np.random.Generator,
    persona: np.ndarray,
    risk_dev: np.ndarray,
    income: np.ndarray,
    has: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Savings, checking, term deposit and investment balances, all lognormal."""
    relative_income = income / _param("income_median")[persona]
    savings_median = _param("savings_median")[persona] * np.sqrt(relative_income)
    checking_median = income * _param("checking_income_share")[persona]
    investment_median = _param("investment_median")[persona] * relative_income
    return {
        "savings_balance": _held_amount(has["savings"], _lognormal(rng, savings_median, 0.8, -0.35 * risk_dev)),
        "checking_balance": _held_amount(has["checking"], _lognormal(rng, checking_median, 0.6)),
        "term_deposit_balance": _held_amount(
            has["term_deposit"], _lognormal(rng, _param("term_deposit_median")[persona], 0.7)
        ),
        "investment_balance": _held_amount(has["investments"], _lognormal(rng, investment_median, 0.9)),
    }


def _credit_balances(
    rng: np.random.Generator,
    persona: np.ndarray,
    risk_dev: np.ndarray,
    income: np.ndarray,
    has: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Card limit and balance plus loan balances; riskier customers use and borrow more."""
    card = has["credit_card"]
    limit = np.rint(_lognormal(rng, _param("card_limit_median")[persona], 0.4) / 100) * 100
    limit = np.where(card, np.maximum(limit, 500.0), 0.0)
    # Utilisation runs up to 1.2 (over limit); its mean moves with within-persona risk.
    util_mean = _sigmoid(_logit(_param("utilization")[persona] / 1.2) + 0.5 * risk_dev)
    utilization = np.where(card, 1.2 * _beta_around(rng, util_mean, 6.0), 0.0)
    personal_median = income * _param("personal_loan_income_ratio")[persona]
    mortgage_median = income * _param("mortgage_income_ratio")[persona]
    return {
        "credit_card_limit": limit,
        "credit_card_balance": np.round(utilization * limit, 2),
        "personal_loan_balance": _held_amount(
            has["personal_loan"], _lognormal(rng, personal_median, 0.5, 0.25 * risk_dev)
        ),
        "car_loan_balance": _held_amount(has["car_loan"], _lognormal(rng, _param("car_loan_median")[persona], 0.5)),
        "mortgage_balance": _held_amount(has["mortgage"], _lognormal(rng, mortgage_median, 0.4, 0.2 * risk_dev)),
        "bnpl_balance": _held_amount(has["bnpl"], _lognormal(rng, _param("bnpl_median")[persona], 0.7)),
    }


def _instalment(rng: np.random.Generator, balance: np.ndarray, loan: str) -> np.ndarray:
    """Monthly annuity payment of an outstanding balance over a random remaining term."""
    annual_rate, shortest, longest = _LOAN_TERMS[loan]
    months = rng.integers(shortest, longest + 1, len(balance)).astype(np.float64)
    if annual_rate == 0.0:
        return balance / months
    rate = annual_rate / 12
    return balance * rate / (1 - (1 + rate) ** -months)


def _utilization(columns: dict[str, np.ndarray]) -> np.ndarray:
    """Card balance / limit as the warehouse computes it: 0 for customers without a card."""
    limit = columns["credit_card_limit"]
    return np.divide(columns["credit_card_balance"], limit, out=np.zeros_like(limit), where=limit > 0)


# --------------------------------------------------------------------------- history


def _delinquency(rng: np.random.Generator, pop: _Population) -> np.ndarray:
    """Days past due per month (n, 24) from a roll-rate chain driven by latent risk.

    A missed payment opens an arrear (30 DPD); each further month it rolls one
    bucket (up to 120) with a fixed persistence probability or is cured.  Only
    customers with a card or a loan can be in arrears.
    """
    n = len(pop.persona)
    has_credit = pop.columns["has_credit_card"] | (pop.columns["monthly_emi"] > 0)
    onset = np.where(has_credit, _sigmoid(_DPD_ONSET[0] + _DPD_ONSET[1] * pop.risk), 0.0)
    streak = np.zeros(n, dtype=np.int32)
    dpd = np.empty((n, _N_MONTHS), dtype=np.int32)
    for month in range(_N_MONTHS):
        u = rng.random(n)
        missed = np.where(streak > 0, u < _DPD_PERSISTENCE, u < onset)
        streak = np.where(missed, streak + 1, 0)
        dpd[:, month] = 30 * np.minimum(streak, 4)
    return dpd


def _credit_score_paths(rng: np.random.Generator, pop: _Population, dpd: np.ndarray) -> np.ndarray:
    """Monthly credit scores (n, 24), walked backwards from the current score.

    The current score reflects persona, within-persona risk and recent arrears.
    Monthly moves are small (sd 3), so the injected drops of 20-60 points in
    about 1% of customers, more often risky ones, are the only moves beyond 15.
    """
    n = len(pop.persona)
    recent_dpd = dpd[:, -12:].max(axis=1) / 30
    noise = 20 * rng.standard_normal(n)
    current = _param("score")[pop.persona] - 38 * pop.risk_dev - 12 * recent_dpd + noise
    current = np.clip(np.rint(current), 300, 850)
    steps = np.rint(rng.normal(0.4, 3.0, (n, _N_MONTHS - 1)))
    weight = np.exp(0.7 * pop.risk)
    dropped = rng.random(n) < np.minimum(_SCORE_DROP_RATE * weight / weight.mean(), 1.0)
    month = rng.integers(0, _N_MONTHS - 1, n)
    size = rng.integers(_SCORE_DROP_POINTS[0], _SCORE_DROP_POINTS[1] + 1, n)
    steps[dropped, month[dropped]] = -size[dropped]
    paths = np.empty((n, _N_MONTHS))
    paths[:, -1] = current
    paths[:, :-1] = current[:, None] - _reverse_cumsum(steps)
    return np.clip(paths, 300, 850).astype(np.int32)


def _backward_walk(rng: np.random.Generator, final: np.ndarray, drift: float, sd: float) -> np.ndarray:
    """Multiplicative monthly path (n, 24) ending exactly at final (zero stays zero)."""
    steps = rng.normal(drift, sd, (len(final), _N_MONTHS - 1))
    paths = np.empty((len(final), _N_MONTHS))
    paths[:, -1] = final
    paths[:, :-1] = final[:, None] * np.exp(-_reverse_cumsum(steps))
    return paths


def _snapshots(rng: np.random.Generator, pop: _Population, dpd: np.ndarray, scores: np.ndarray) -> pl.DataFrame:
    """24 monthly snapshots per customer; the last one matches customers.parquet."""
    c = pop.columns
    n = len(pop.persona)
    deposits = c["savings_balance"] + c["checking_balance"] + c["term_deposit_balance"]
    utilization = _utilization(c)
    util_steps = rng.normal(0.0, 0.03, (n, _N_MONTHS - 1))
    util_paths = np.column_stack([utilization[:, None] - _reverse_cumsum(util_steps), utilization])
    util_paths = np.where(c["has_credit_card"][:, None], np.clip(util_paths, 0.0, 1.2), 0.0)
    dti = c["monthly_emi"] * 12 / pop.true_income
    months = np.array([(m - _EPOCH).days for m in _month_starts()], dtype=np.int32)
    return pl.DataFrame(
        {
            "customer_id": np.repeat(pop.customer_id, _N_MONTHS),
            "month": pl.Series(np.tile(months, n)).cast(pl.Date),
            "balance": np.round(_backward_walk(rng, deposits, 0.004, 0.05), 2).ravel(),
            "utilization": np.round(util_paths, 4).ravel(),
            "debt_to_income": np.round(_backward_walk(rng, dti, -0.004, 0.02), 4).ravel(),
            "credit_score": scores.ravel(),
            "days_past_due": dpd.ravel(),
        }
    )


def _month_starts() -> list[date]:
    """First day of each of the 24 snapshot months, Nov 2024 .. Oct 2026."""
    first = _FIRST_MONTH.year * 12 + _FIRST_MONTH.month - 1
    return [date((first + i) // 12, (first + i) % 12 + 1, 1) for i in range(_N_MONTHS)]


# --------------------------------------------------------------------------- applications


def _applications(
    rng: np.random.Generator, pop: _Population, dpd: np.ndarray
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Latest loan application per customer, its true PD and 12-month default outcome."""
    n = len(pop.persona)
    persona = pop.persona
    amount = _lognormal(rng, _param("loan_amount_median")[persona], 0.6, 0.3 * pop.risk_dev)
    amount = np.maximum(np.rint(amount / 50) * 50, 250.0)
    duration = np.exp(np.log(8 + amount / 700) + 0.3 * rng.standard_normal(n))
    duration = np.clip(6 * np.rint(duration / 6), 6, 72).astype(np.int32)
    applied = (AS_OF_DATE - _EPOCH).days - rng.integers(365, 731, n)
    purpose = _categorical(rng, persona, _param("purpose"))
    true_pd = default_probability(_default_features(pop, dpd, amount))
    defaulted = rng.random(n) < true_pd
    frame = pl.DataFrame(
        {
            "application_id": pop.customer_id,
            "customer_id": pop.customer_id,
            "applied_at": pl.Series(applied.astype(np.int32)).cast(pl.Date),
            "loan_amount": amount,
            "duration_months": duration,
            "purpose": pl.Series(CATEGORIES["purpose"]).gather(purpose),
            "defaulted_12m": defaulted,
        }
    )
    return frame, true_pd, defaulted


def default_probability(features: dict[str, np.ndarray]) -> np.ndarray:
    """The true 12-month PD: sigmoid(DEFAULT_INTERCEPT + sum(coefficient * feature))."""
    logit = DEFAULT_INTERCEPT + sum(DEFAULT_COEFFICIENTS[k] * features[k] for k in DEFAULT_FEATURES)
    return _sigmoid(logit)


def _default_features(pop: _Population, dpd: np.ndarray, loan_amount: np.ndarray) -> dict[str, np.ndarray]:
    """Observable risk drivers, transformed exactly as DEFAULT_FEATURES documents."""
    c = pop.columns
    income = pop.true_income
    return {
        "utilization": _utilization(c),
        "debt_to_income": np.minimum(c["monthly_emi"] * 12 / income, 3.0),
        "max_dpd_12m": dpd[:, -12:].max(axis=1) / 30,
        "savings_ratio": np.minimum(c["savings_balance"] / income, 2.0),
        "credit_score": (c["credit_score"] - 650) / 100,
        "loan_to_income": np.minimum(loan_amount / income, 3.0),
        "age": (c["age"] - 45) / 10,
    }


# --------------------------------------------------------------------------- transactions


def _transactions(rng: np.random.Generator, pop: _Population, first_txn_id: int) -> pl.DataFrame:
    """Spend over the 24 months ending AS_OF_DATE, sorted by customer then time.

    Counts are Poisson around the persona mean scaled by a lognormal individual
    activity (mean 1); dormant customers stop 2-12 months before AS_OF_DATE.
    """
    n = len(pop.persona)
    activity = np.exp(0.3 * rng.standard_normal(n) - 0.045)
    counts = rng.poisson(_param("txn_mean")[pop.persona] * activity)
    dormant = rng.random(n) < _param("dormancy")[pop.persona]
    gap_days = np.where(dormant, rng.integers(60, 366, n), 0)
    active_seconds = _TXN_WINDOW_SECONDS - gap_days * _SECONDS_PER_DAY
    owner = np.repeat(np.arange(n, dtype=np.int64), counts)
    seconds = (rng.random(len(owner)) * active_seconds[owner]).astype(np.int64)
    key = np.sort((owner << _TXN_TIME_BITS) | seconds)
    owner, seconds = key >> _TXN_TIME_BITS, key & ((1 << _TXN_TIME_BITS) - 1)
    persona = pop.persona[owner]
    category = _categorical(rng, persona, _CATEGORY_MIX_BY_PERSONA)
    median = _param("txn_amount_median")[persona] * _CATEGORY_AMOUNT_FACTOR[category]
    amount = _lognormal(rng, median, 0.8)
    outlier = rng.random(len(owner)) < OUTLIER_RATES["transactions.amount"]
    amount[outlier] *= rng.uniform(*_AMOUNT_OUTLIER_FACTOR, int(outlier.sum()))
    start_us = (_FIRST_MONTH - _EPOCH).days * _SECONDS_PER_DAY * 1_000_000
    channel = _channels(rng, pop, owner, category)
    return pl.DataFrame(
        {
            "transaction_id": np.arange(1, len(owner) + 1, dtype=np.int64) + first_txn_id,
            "customer_id": pop.customer_id[owner],
            "occurred_at": pl.Series(start_us + seconds * 1_000_000).cast(pl.Datetime("us")),
            "amount": np.round(np.maximum(amount, 0.5), 2),
            "merchant_category": pl.Series(CATEGORIES["merchant_category"]).gather(category),
            "channel": pl.Series(CATEGORIES["channel"]).gather(channel),
        }
    )


def _channels(rng: np.random.Generator, pop: _Population, owner: np.ndarray, category: np.ndarray) -> np.ndarray:
    """Channel codes (app, online, branch, atm); cash withdrawals are always physical.

    Non-cash spend goes digital with probability online_txn_share / (1 - cash
    share), so each customer's expected digital share is their online_txn_share.
    """
    m = len(owner)
    persona = pop.persona[owner]
    cash_code = CATEGORIES["merchant_category"].index("cash_withdrawal")
    cash_share = _CATEGORY_MIX_BY_PERSONA[:, cash_code] / _CATEGORY_MIX_BY_PERSONA.sum(axis=1)
    digital_share = pop.columns["online_txn_share"][owner] / (1.0 - cash_share[persona])
    digital = (rng.random(m) < digital_share) & (category != cash_code)
    app = rng.random(m) < _param("app_within_digital")[persona]
    branch = rng.random(m) < _param("branch_within_physical")[persona]
    return np.where(digital, np.where(app, 0, 1), np.where(branch, 2, 3))


# --------------------------------------------------------------------------- publishing


def _customers_frame(rng: np.random.Generator, pop: _Population) -> pl.DataFrame:
    """Publish customers with income outliers and nulls injected at the documented rates."""
    c = pop.columns
    n = len(pop.persona)
    income = pop.true_income.copy()
    outlier = rng.random(n) < OUTLIER_RATES["customers.annual_income"]
    factor = rng.uniform(*_INCOME_OUTLIER_FACTOR, int(outlier.sum()))
    income[outlier] = np.round(income[outlier] * factor, 2)
    values: dict[str, np.ndarray | pl.Series] = {"customer_id": pop.customer_id}
    for name in _CUSTOMER_COLUMNS:
        if name in CATEGORIES:
            values[name] = pl.Series(CATEGORIES[name]).gather(c[name])
        else:
            values[name] = income if name == "annual_income" else c[name]
    frame = pl.DataFrame(values)
    nulls = {name: pl.Series(rng.random(n) < rate) for name, rate in MISSING_RATES.items()}
    return frame.with_columns(
        pl.when(mask).then(None).otherwise(pl.col(name)).alias(name) for name, mask in nulls.items()
    )

"""The approval policy as data, and its evaluation fast enough for a slider.

A policy is score cut-offs (auto-approve at or above one score, decline below another, manual
review between) plus rules that send a case to a person whatever its score: customers of a
persona flagged for manual underwriting, debt-to-income above 60%, any rule the risk team
adds. Policies are versioned in ``ml_policies``; every risk run records which version decided.

Evaluation works on numpy arrays loaded once (:class:`PolicyPopulation`), with each rule's mask
computed once and cached, so moving a cut-off re-runs only comparisons and bincounts: a few
milliseconds at a million customers.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

Decision = Literal["approve", "review", "decline"]
DECISIONS: tuple[str, ...] = ("approve", "review", "decline")
_OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}


class ReviewRule(BaseModel):
    """Send a case to manual review when ``column op value`` holds for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    op: Literal[">", ">=", "<", "<=", "=="]
    value: float
    label: str = ""
    enabled: bool = True

    def describe(self) -> str:
        return self.label or f"{self.column} {self.op} {self.value:g}"


class Policy(BaseModel):
    """Cut-offs on the scorecard points, manual-review rules and the loss assumption."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    name: str = "Default policy"
    approve_min_score: float = Field(550.0, description="Auto-approve at or above this score.")
    decline_below_score: float = Field(527.0, description="Auto-decline below this score.")
    review_flagged_personas: bool = Field(True, description="Personas flagged for manual underwriting go to review.")
    rules: list[ReviewRule] = Field(default_factory=list)
    lgd: float = Field(0.45, ge=0, le=1, description="Loss given default: the share of the exposure lost.")

    @model_validator(mode="after")
    def _cutoffs(self) -> Policy:
        if self.decline_below_score > self.approve_min_score:
            raise ValueError(
                f"the decline cut-off ({self.decline_below_score:g}) must not be above "
                f"the auto-approve cut-off ({self.approve_min_score:g})"
            )
        return self


#: Debt-to-income as lenders mean it (repayments over income) comes first; the stock of debt over
#: income (which counts a whole mortgage) only when nothing better exists.
DEBT_TO_INCOME_COLUMNS = ("latest_debt_to_income", "emi_to_income", "debt_to_income")


def default_policy(columns: set[str]) -> Policy:
    """The default policy for a warehouse: the debt-to-income review rule on the best column it has."""
    dti = next((c for c in DEBT_TO_INCOME_COLUMNS if c in columns), None)
    rules = [ReviewRule(column=dti, op=">", value=0.6, label="Debt-to-income above 60%")] if dti else []
    return Policy(rules=rules)


#: The exposure a loss is taken on: the first of these the warehouse has.
EXPOSURE_COLUMNS = ("loan_amount", "credit_limit", "credit_card_limit", "total_debt")


@dataclass
class PolicyPopulation:
    """The scored customers as arrays, loaded once and evaluated many times."""

    score: np.ndarray
    pd: np.ndarray
    exposure: np.ndarray
    persona_code: np.ndarray  # index into persona_names
    persona_names: list[str]
    flagged_persona: np.ndarray  # bool per customer: persona flagged for manual underwriting
    columns: dict[str, np.ndarray]  # rule inputs (float, NaN when missing)
    groups: dict[str, tuple[np.ndarray, list[str]]]  # fairness attribute -> (codes, labels)
    exposure_column: str | None
    _masks: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> PolicyPopulation:
        """From a frame of score, pd, persona_name, manual_underwriting and the customer columns."""
        exposure_column = next((c for c in EXPOSURE_COLUMNS if c in frame.columns), None)
        exposure = (
            frame.get_column(exposure_column).cast(pl.Float64).fill_null(0).to_numpy()
            if exposure_column
            else np.ones(frame.height)
        )
        persona = frame.get_column("persona_name").fill_null("No persona") if "persona_name" in frame.columns else None
        persona_names = sorted(persona.unique().to_list()) if persona is not None else ["All customers"]
        persona_code = (
            persona.replace_strict(persona_names, list(range(len(persona_names))), return_dtype=pl.Int32).to_numpy()
            if persona is not None
            else np.zeros(frame.height, dtype=np.int32)
        )
        flagged = (
            frame.get_column("manual_underwriting").fill_null(False).to_numpy()
            if "manual_underwriting" in frame.columns
            else np.zeros(frame.height, dtype=bool)
        )
        columns = {
            name: frame.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy()
            for name, dtype in frame.schema.items()
            if (dtype.is_numeric() or dtype == pl.Boolean) and name not in ("score", "pd")
        }
        groups = {}
        for attribute in ("sex", "age_band"):
            if attribute in frame.columns:
                values = frame.get_column(attribute).cast(pl.String).fill_null("unknown")
                labels = sorted(values.unique().to_list())
                codes = values.replace_strict(labels, list(range(len(labels))), return_dtype=pl.Int32).to_numpy()
                groups[attribute] = (codes, labels)
        return cls(
            score=frame.get_column("score").to_numpy(),
            pd=frame.get_column("pd").to_numpy(),
            exposure=exposure,
            persona_code=persona_code,
            persona_names=persona_names,
            flagged_persona=flagged,
            columns=columns,
            groups=groups,
            exposure_column=exposure_column,
        )

    def rule_mask(self, rule: ReviewRule) -> np.ndarray:
        """Customers the rule sends to review (missing values never trigger it); cached per rule."""
        key = (rule.column, rule.op, rule.value)
        if key not in self._masks:
            if rule.column not in self.columns:
                self._masks[key] = np.zeros(len(self.score), dtype=bool)
            else:
                with np.errstate(invalid="ignore"):
                    self._masks[key] = _OPERATORS[rule.op](self.columns[rule.column], rule.value)
        return self._masks[key]

    def decide(self, policy: Policy) -> np.ndarray:
        """0 approve, 1 review, 2 decline for every customer."""
        decision = np.where(
            self.score >= policy.approve_min_score, 0, np.where(self.score < policy.decline_below_score, 2, 1)
        ).astype(np.int8)
        review = self.review_mask(policy)
        decision[review] = 1
        return decision

    def review_mask(self, policy: Policy) -> np.ndarray:
        review = self.flagged_persona.copy() if policy.review_flagged_personas else np.zeros(len(self.score), bool)
        for rule in policy.rules:
            if rule.enabled:
                review |= self.rule_mask(rule)
        return review

    def evaluate(self, policy: Policy) -> PolicyOutcome:
        decision = self.decide(policy)
        return PolicyOutcome.from_decisions(self, policy, decision)


def _summary(counts: np.ndarray, approved_pd: float, approved_loss: float, review_loss: float) -> dict:
    customers = int(counts.sum())
    approve, review, decline = (int(c) for c in counts)
    share = (lambda n: n / customers) if customers else (lambda n: 0.0)
    return {
        "customers": customers,
        "approved": approve,
        "reviewed": review,
        "declined": decline,
        "automation_rate": share(approve + decline),
        "approval_rate": share(approve),
        "review_rate": share(review),
        "decline_rate": share(decline),
        "expected_default_rate_approved": approved_pd / approve if approve else 0.0,
        "expected_loss_approved": approved_loss,
        "expected_loss_review": review_loss,
    }


def _tally(
    persona_code: np.ndarray,
    persona_names: list[str],
    decision: np.ndarray,
    customers: np.ndarray | None,
    pd: np.ndarray,
    loss: np.ndarray,
) -> tuple[dict, list[dict]]:
    """(overall, by persona) figures of decisions over customers, or over cells of ``customers``
    customers each (then ``pd`` and ``loss`` are the cells' sums)."""
    personas = len(persona_names)
    # One bincount over (persona, decision) pairs gives every count at once.
    cell = persona_code.astype(np.int64) * 3 + decision
    counts = np.bincount(cell, weights=customers, minlength=personas * 3).reshape(personas, 3).astype(np.int64)
    approved, reviewed = decision == 0, decision == 1
    approved_pd = np.bincount(persona_code, weights=pd * approved, minlength=personas)
    approved_loss = np.bincount(persona_code, weights=loss * approved, minlength=personas)
    review_loss = np.bincount(persona_code, weights=loss * reviewed, minlength=personas)
    by_persona = [
        {"persona_name": name} | _summary(counts[i], approved_pd[i], approved_loss[i], review_loss[i])
        for i, name in enumerate(persona_names)
    ]
    overall = _summary(counts.sum(axis=0), approved_pd.sum(), approved_loss.sum(), review_loss.sum())
    return overall, by_persona


@dataclass
class PolicyOutcome:
    """What a policy does to the population: overall, by persona, and by fairness group."""

    overall: dict
    by_persona: list[dict]
    fairness: list[dict]
    decision: np.ndarray

    @classmethod
    def from_decisions(cls, population: PolicyPopulation, policy: Policy, decision: np.ndarray) -> PolicyOutcome:
        loss = population.pd * policy.lgd * population.exposure
        overall, by_persona = _tally(
            population.persona_code, population.persona_names, decision, None, population.pd, loss
        )
        return cls(overall, by_persona, fairness_check(population, decision == 0), decision)


#: Adverse impact ratio below this flags a group (the four-fifths rule).
ADVERSE_IMPACT_LIMIT = 0.8


@dataclass
class PolicyCells:
    """The population folded into cells of (whole score point, persona, which review rules fire), with
    each cell's customers, PD sum and PD x exposure sum: a what-if on whole-point cut-offs and rule
    toggles then sums a few thousand cells instead of a million customers (the policy simulator's
    slider moves in whole points). ``summarize`` gives what ``PolicyPopulation.evaluate`` gives for
    the overall and per-persona figures."""

    floor_score: np.ndarray  # per cell
    persona_code: np.ndarray
    review_bits: np.ndarray  # bit 0: persona flagged for manual underwriting; bit i+1: rule i fires
    customers: np.ndarray
    pd_sum: np.ndarray
    pd_exposure_sum: np.ndarray
    persona_names: list[str]
    rules: tuple[tuple, ...]  # (column, op, value) of the rules the bits stand for

    @classmethod
    def fold(cls, population: PolicyPopulation, rules: list[ReviewRule]) -> PolicyCells:
        bits = population.flagged_persona.astype(np.int64)
        for i, rule in enumerate(rules):
            bits |= population.rule_mask(rule).astype(np.int64) << (i + 1)
        frame = (
            pl.DataFrame(
                {
                    "floor_score": np.floor(population.score),
                    "persona_code": population.persona_code,
                    "review_bits": bits,
                    "pd": population.pd,
                    "pd_exposure": population.pd * population.exposure,
                }
            )
            .group_by("floor_score", "persona_code", "review_bits")
            .agg(pl.len().alias("customers"), pl.col("pd").sum(), pl.col("pd_exposure").sum())
        )
        return cls(
            floor_score=frame.get_column("floor_score").to_numpy(),
            persona_code=frame.get_column("persona_code").to_numpy(),
            review_bits=frame.get_column("review_bits").to_numpy(),
            customers=frame.get_column("customers").to_numpy().astype(np.int64),
            pd_sum=frame.get_column("pd").to_numpy(),
            pd_exposure_sum=frame.get_column("pd_exposure").to_numpy(),
            persona_names=population.persona_names,
            rules=tuple((r.column, r.op, r.value) for r in rules),
        )

    def summarize(self, policy: Policy) -> tuple[dict, list[dict]] | None:
        """(overall, by persona) as ``PolicyOutcome`` has them; None when a cut-off is not a whole
        point or the policy's rules are not those folded in (then evaluate the population itself)."""
        cutoffs = (policy.approve_min_score, policy.decline_below_score)
        if not all(float(c).is_integer() for c in cutoffs):
            return None
        if tuple((r.column, r.op, r.value) for r in policy.rules) != self.rules:
            return None
        enabled = int(policy.review_flagged_personas) | sum(
            1 << (i + 1) for i, rule in enumerate(policy.rules) if rule.enabled
        )
        decision = np.where(
            self.floor_score >= policy.approve_min_score,
            0,
            np.where(self.floor_score < policy.decline_below_score, 2, 1),
        )
        decision[(self.review_bits & enabled) != 0] = 1
        return _tally(
            self.persona_code,
            self.persona_names,
            decision,
            self.customers,
            self.pd_sum,
            self.pd_exposure_sum * policy.lgd,
        )


def fairness_check(population: PolicyPopulation, approved: np.ndarray) -> list[dict]:
    """Approval rate by sex and age band, and each group's ratio to the most-approved group."""
    rows = []
    for attribute, (codes, labels) in population.groups.items():
        sizes = np.bincount(codes, minlength=len(labels))
        approvals = np.bincount(codes, weights=approved, minlength=len(labels))
        rates = np.divide(approvals, sizes, out=np.zeros(len(labels)), where=sizes > 0)
        best = rates.max() if len(rates) else 0.0
        for i, label in enumerate(labels):
            ratio = rates[i] / best if best > 0 else None
            rows.append(
                {
                    "attribute": attribute,
                    "group_value": label,
                    "customers": int(sizes[i]),
                    "approved": int(approvals[i]),
                    "approval_rate": float(rates[i]),
                    "adverse_impact_ratio": None if ratio is None else float(ratio),
                    "is_flagged": bool(ratio is not None and ratio < ADVERSE_IMPACT_LIMIT),
                }
            )
    return rows


def decide_one(policy: Policy, score: float, values: dict, flagged_persona: bool = False) -> tuple[str, str]:
    """One applicant's decision and why: the same order of checks as :meth:`PolicyPopulation.decide`
    and :func:`decision_reason` (a test holds them to it)."""
    if policy.review_flagged_personas and flagged_persona:
        return "review", "Manual review: persona flagged for manual underwriting"
    for rule in policy.rules:
        value = values.get(rule.column)
        if rule.enabled and value is not None and not (isinstance(value, float) and np.isnan(value)):
            if _OPERATORS[rule.op](float(value), rule.value):
                return "review", f"Manual review: {rule.describe()}"
    if score >= policy.approve_min_score:
        return "approve", f"Score at or above the auto-approve cut-off {policy.approve_min_score:g}"
    if score < policy.decline_below_score:
        return "decline", f"Score below the decline cut-off {policy.decline_below_score:g}"
    return "review", f"Score in the manual-review band {policy.decline_below_score:g}-{policy.approve_min_score:g}"


def decision_reason(population: PolicyPopulation, policy: Policy) -> list[str | None]:
    """Why each customer got its decision, in words (for the scores table, not the slider)."""
    decision = population.decide(policy)
    reasons = np.where(
        decision == 0,
        f"Score at or above the auto-approve cut-off {policy.approve_min_score:g}",
        np.where(
            decision == 2,
            f"Score below the decline cut-off {policy.decline_below_score:g}",
            f"Score in the manual-review band {policy.decline_below_score:g}-{policy.approve_min_score:g}",
        ),
    ).astype(object)
    for rule in reversed([r for r in policy.rules if r.enabled]):
        reasons[population.rule_mask(rule)] = f"Manual review: {rule.describe()}"
    if policy.review_flagged_personas:
        reasons[population.flagged_persona] = "Manual review: persona flagged for manual underwriting"
    return reasons.tolist()

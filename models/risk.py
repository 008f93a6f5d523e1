"""Probability of default (PD): champion and challenger models, calibrated, measured the way a
credit-risk team reads them.

The customers are split once, stratified on the outcome: a test part that only the final
measures see, a validation part that calibrates the probabilities and picks the decision
threshold, and a training part where cross-validation chooses each model's regularisation and
its way of handling the rare defaults (class weights or SMOTE). Every preprocessing step sits
inside the scikit-learn pipeline, so it is fitted on training rows only.

Two families compete: a logistic regression (L1 or L2, the interpretable baseline, and the
source of reason codes) and a histogram gradient-boosted model. The better one on validation
AUC is the champion; both are measured on the test part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ImbalancedPipeline
from sklearn.calibration import CalibratedClassifierCV, calibration_curve
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from warehouse.features import TARGET

from .credit_metrics import gains_table, gini, ks_statistic

Progress = Callable[[str], None]

#: Never a model input: credit decisions may not turn on them (EU gender directive, US ECOA). The
#: fairness check still reports approval rates by sex and age band.
PROTECTED_ATTRIBUTES = frozenset({"sex", "gender", "marital_status", "race", "ethnicity", "religion", "nationality"})
#: Reporting columns that restate another input (age_band is age in bands): left out of the model.
DERIVED_FOR_REPORTING = frozenset({"age_band"})
#: Categoricals with more levels than this are left out: one-hot columns for ids or free text
#: would only let the model memorise.
MAX_CATEGORY_LEVELS = 50


@dataclass(frozen=True)
class RiskSettings:
    """How a PD run splits, searches and caps its work (the caps keep 1M customers in about a minute)."""

    seed: int = 42
    test_share: float = 0.2
    #: Share of the development (non-test) rows kept aside for calibration and the threshold.
    validation_share: float = 0.2
    cv_folds: int = 3
    #: Rows the final models are fitted on, at most (a stratified sample beyond that).
    max_train_rows: int = 100_000
    #: Rows the cross-validated search runs on, at most.
    max_search_rows: int = 12_000
    #: Rows of the test part used for permutation importances, at most.
    max_importance_rows: int = 5_000
    logistic_c: tuple[float, ...] = (0.01, 0.1, 1.0)
    boosting_learning_rates: tuple[float, ...] = (0.05, 0.1)


@dataclass(frozen=True)
class FeatureSet:
    """The mart columns a PD model reads, by how they are prepared."""

    numeric: list[str]
    #: Taken as ln(1 + x) before scaling: the skewed money amounts, and other counts that skew.
    skewed: list[str]
    categorical: list[str]
    #: Which columns are money (reason codes print them as 12.3k).
    amounts: tuple[str, ...] = ()

    @property
    def numeric_columns(self) -> list[str]:
        return self.numeric + self.skewed

    @property
    def columns(self) -> list[str]:
        return self.numeric + self.skewed + self.categorical


#: A non-negative count or duration this skewed (and with this many distinct values) is logged too.
SKEW_TO_LOG, LEVELS_TO_LOG = 1.0, 10


def choose_features(customers: pl.DataFrame, meta_columns: pl.DataFrame) -> FeatureSet:
    """Model features from the warehouse's column metadata: numeric, skewed, categoricals.

    Call it with the training rows only: whether a column is logged depends on its distribution.
    Skewed amounts go in as raw values (the pipeline takes their logarithm), not as the mart's
    ``log_`` copies, so that reason codes can quote the amount itself.
    """
    numeric, skewed, categorical, amounts = [], [], [], []
    seen: dict[tuple, str] = {}
    for row in meta_columns.filter(pl.col("is_model_feature")).iter_rows(named=True):
        name = row["column_name"]
        if name not in customers.columns or name == TARGET or name in PROTECTED_ATTRIBUTES | DERIVED_FOR_REPORTING:
            continue
        dtype = customers.schema[name]
        if dtype == pl.String:
            levels = customers.get_column(name).n_unique()
            if 2 <= levels <= MAX_CATEGORY_LEVELS:
                categorical.append(name)
        elif dtype.is_numeric() or dtype == pl.Boolean:
            values = customers.get_column(name).cast(pl.Float64)
            if values.drop_nulls().n_unique() < 2:
                continue
            # The same values under two names (credit_score and latest_credit_score when the
            # customer file holds the latest one) would split one reason into two.
            signature = (values.null_count(), values.sum(), tuple(values.head(1000).to_list()))
            if signature in seen:
                continue
            seen[signature] = name
            if row["is_skewed_amount"]:
                skewed.append(name)
                amounts.append(name)
            elif (
                dtype != pl.Boolean
                and (values.min() or 0) >= 0
                and values.n_unique() > LEVELS_TO_LOG
                and (values.skew() or 0) > SKEW_TO_LOG
            ):
                skewed.append(name)
            else:
                numeric.append(name)
    if not numeric + skewed + categorical:
        raise ValueError("the warehouse has no model features for a PD model")
    return FeatureSet(numeric, skewed, categorical, tuple(amounts))


def model_input(customers: pl.DataFrame, features: FeatureSet) -> pl.DataFrame:
    """The frame a fitted pipeline reads: numeric columns as floats, categoricals as strings."""
    return customers.select(
        [pl.col(c).cast(pl.Float64) for c in features.numeric_columns]
        + [pl.col(c).cast(pl.String) for c in features.categorical]
    )


def _log_amount(values: np.ndarray) -> np.ndarray:
    return np.log1p(np.clip(values, 0, None))


def preprocessing(features: FeatureSet) -> ColumnTransformer:
    """Impute (flagging what was missing), log the skewed amounts, scale, one-hot the categoricals."""
    parts = []
    if features.numeric:
        parts.append(
            (
                "numeric",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median", add_indicator=True)), ("scale", StandardScaler())]
                ),
                features.numeric,
            )
        )
    if features.skewed:
        parts.append(
            (
                "amount",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median", add_indicator=True)),
                        ("log", FunctionTransformer(_log_amount, feature_names_out="one-to-one")),
                        ("scale", StandardScaler()),
                    ]
                ),
                features.skewed,
            )
        )
    if features.categorical:
        parts.append(
            (
                "category",
                Pipeline(
                    [
                        ("impute", SimpleImputer(missing_values=None, strategy="constant", fill_value="missing")),
                        (
                            "onehot",
                            OneHotEncoder(
                                handle_unknown="infrequent_if_exist", min_frequency=0.005, sparse_output=False
                            ),
                        ),
                    ]
                ),
                features.categorical,
            )
        )
    return ColumnTransformer(parts, verbose_feature_names_out=True)


@dataclass
class Candidate:
    """One family with one way of handling imbalance, after its cross-validated search."""

    family: str
    imbalance: str
    cv_auc: float
    cv_auc_std: float
    best_params: dict
    search: GridSearchCV = field(repr=False)


def _family_pipeline(family: str, imbalance: str, features: FeatureSet, seed: int) -> tuple[ImbalancedPipeline, dict]:
    weight = "balanced" if imbalance == "class_weight" else None
    if family == "logistic":
        model = LogisticRegression(solver="liblinear", class_weight=weight, max_iter=500, random_state=seed)
        grid = {"model__C": None, "model__l1_ratio": [0.0, 1.0]}
    else:
        model = HistGradientBoostingClassifier(
            class_weight=weight,
            max_iter=200,
            max_leaf_nodes=31,
            l2_regularization=1.0,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=20,
            random_state=seed,
        )
        grid = {"model__learning_rate": None}
    steps = [("prep", preprocessing(features))]
    if imbalance == "smote":
        steps.append(("smote", SMOTE(random_state=seed)))
    steps.append(("model", model))
    return ImbalancedPipeline(steps), grid


def search_candidates(x: pl.DataFrame, y: np.ndarray, features: FeatureSet, settings: RiskSettings) -> list[Candidate]:
    """Cross-validated search of each family x imbalance method on (a sample of) the training rows."""
    folds = StratifiedKFold(settings.cv_folds, shuffle=True, random_state=settings.seed)
    candidates = []
    for family in ("logistic", "boosting"):
        for imbalance in ("class_weight", "smote"):
            pipeline, grid = _family_pipeline(family, imbalance, features, settings.seed)
            if family == "logistic":
                grid["model__C"] = list(settings.logistic_c)
            else:
                grid["model__learning_rate"] = list(settings.boosting_learning_rates)
            # Two worker processes with one thread each: boosting's OpenMP threads slow down
            # severalfold when they share the two cores with anything else.
            search = GridSearchCV(
                pipeline, grid, scoring="roc_auc", cv=folds, refit=False, error_score="raise", n_jobs=2
            )
            search.fit(x, y)
            best = int(search.best_index_)
            candidates.append(
                Candidate(
                    family,
                    imbalance,
                    float(search.cv_results_["mean_test_score"][best]),
                    float(search.cv_results_["std_test_score"][best]),
                    {k.removeprefix("model__"): v for k, v in search.best_params_.items()},
                    search,
                )
            )
    return candidates


def _stratified_cap(x: pl.DataFrame, y: np.ndarray, cap: int, seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    if len(y) <= cap:
        return x, y
    keep, _ = train_test_split(np.arange(len(y)), train_size=cap, stratify=y, random_state=seed)
    keep = np.sort(keep)
    return x[keep], y[keep]


def fit_family(candidate: Candidate, features: FeatureSet, x: pl.DataFrame, y: np.ndarray, seed: int):
    """Refit a candidate's best settings on all (capped) training rows."""
    pipeline, _ = _family_pipeline(candidate.family, candidate.imbalance, features, seed)
    pipeline.set_params(**{f"model__{k}": v for k, v in candidate.best_params.items()})
    return pipeline.fit(x, y)


#: Below this many validation rows only sigmoid (Platt) calibration is tried.
MIN_ROWS_FOR_ISOTONIC = 2_000
#: The lowest PD a customer is given: the Basel / CRR regulatory floor for retail exposures (0.03%).
PD_FLOOR = 0.0003


def floor_pd(pd: np.ndarray) -> np.ndarray:
    return np.maximum(pd, PD_FLOOR)


def calibrate(model, x_validation: pl.DataFrame, y_validation: np.ndarray, seed: int) -> tuple[object, str, dict]:
    """Isotonic or sigmoid calibration of a fitted model, whichever scores the lower Brier on
    held-out halves of the validation part; the chosen one is then fitted on all of it."""
    halves = StratifiedKFold(2, shuffle=True, random_state=seed)
    brier = {}
    # Isotonic regression is a step function fitted to the data: on a small validation part it
    # hands out PDs of exactly 0, which no credit policy should see.
    methods = ("isotonic", "sigmoid") if len(y_validation) >= MIN_ROWS_FOR_ISOTONIC else ("sigmoid",)
    for method in methods:
        losses = []
        for fit_rows, check_rows in halves.split(np.zeros(len(y_validation)), y_validation):
            calibrated = CalibratedClassifierCV(FrozenEstimator(model), method=method)
            calibrated.fit(x_validation[fit_rows], y_validation[fit_rows])
            losses.append(
                brier_score_loss(y_validation[check_rows], calibrated.predict_proba(x_validation[check_rows])[:, 1])
            )
        brier[method] = float(np.mean(losses))
    method = min(brier, key=brier.get)
    final = CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(x_validation, y_validation)
    return final, method, brier


def f1_threshold(y: np.ndarray, pd: np.ndarray) -> float:
    """The PD cut that maximises F1 on the given rows: where a yes/no default call is wanted."""
    candidates = np.unique(np.quantile(pd, np.linspace(0.5, 0.99, 50)))
    scores = [f1_score(y, pd >= t, zero_division=0) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def measure(y: np.ndarray, pd: np.ndarray, threshold: float) -> dict:
    """The measures a credit-risk team reads a PD model by, on held-out rows."""
    auc = roc_auc_score(y, pd)
    predicted = pd >= threshold
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[False, True]).ravel()
    base_rate = float(y.mean())
    clipped = np.clip(pd, 1e-6, 1 - 1e-6)
    return {
        "roc_auc": float(auc),
        "gini": float(gini(auc)),
        "ks": ks_statistic(y, pd),
        "brier": float(brier_score_loss(y, pd)),
        "brier_base_rate": base_rate * (1 - base_rate),
        "log_loss": float(log_loss(y, clipped)),
        "threshold": threshold,
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "true_positives": int(tp),
        "false_positives": int(fp),
        "true_negatives": int(tn),
        "false_negatives": int(fn),
        "base_rate": base_rate,
        "mean_pd": float(pd.mean()),
        "rows": len(y),
    }


def curves(y: np.ndarray, pd: np.ndarray, max_points: int = 200) -> list[dict]:
    """ROC points (thinned to about ``max_points``) and decile calibration points."""
    fpr, tpr, thresholds = roc_curve(y, pd)
    keep = np.unique(np.r_[0, np.linspace(0, len(fpr) - 1, max_points).round().astype(int), len(fpr) - 1])
    rows = [
        {
            "curve": "roc",
            "point": i,
            "x": float(fpr[k]),
            "y": float(tpr[k]),
            "threshold": float(min(thresholds[k], 1.0)),
        }
        for i, k in enumerate(keep)
    ]
    observed, predicted = calibration_curve(y, pd, n_bins=10, strategy="quantile")
    rows += [
        {"curve": "calibration", "point": i, "x": float(p), "y": float(o), "threshold": None}
        for i, (p, o) in enumerate(zip(predicted, observed, strict=True))
    ]
    return rows


def permutation_importances(model, x: pl.DataFrame, y: np.ndarray, seed: int, repeats: int = 2) -> list[dict]:
    """Fall in test AUC when one input column is shuffled: importance of each mart column as a whole
    (a categorical's one-hot columns move together), in the units a risk manager can compare."""
    rng = np.random.default_rng(seed)
    baseline = roc_auc_score(y, model.predict_proba(x)[:, 1])
    rows = []
    for column in x.columns:
        drops = []
        for _ in range(repeats):
            shuffled = x.with_columns(pl.Series(column, x.get_column(column).to_numpy()[rng.permutation(x.height)]))
            drops.append(baseline - roc_auc_score(y, model.predict_proba(shuffled)[:, 1]))
        rows.append({"feature": column, "importance": float(np.mean(drops)), "importance_std": float(np.std(drops))})
    rows.sort(key=lambda r: -r["importance"])
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


@dataclass
class FittedFamily:
    candidate: Candidate
    calibrated: object
    calibration: str
    calibration_brier: dict
    validation_auc: float
    test_pd: np.ndarray
    metrics: dict


@dataclass
class RiskModelResult:
    """Everything a PD run produced, before it is written to the warehouse."""

    features: FeatureSet
    candidates: list[Candidate]
    champion: FittedFamily
    challenger: FittedFamily
    reason_model: Pipeline
    split: pl.DataFrame  # customer_id, split
    curves: dict[str, list[dict]]
    gains: dict[str, list[dict]]
    importances: list[dict]
    train_input: pl.DataFrame  # the (capped) training rows: the reason model's means and typical values


def fit_risk_model(
    customers: pl.DataFrame, meta_columns: pl.DataFrame, settings: RiskSettings, progress: Progress | None = None
) -> RiskModelResult:
    """Split, search, fit, calibrate and measure both families; score every customer with the champion."""
    say = progress or (lambda _message: None)
    if TARGET not in customers.columns:
        raise ValueError("the warehouse has no target column (is_defaulted)")
    labelled = customers.filter(pl.col(TARGET).is_not_null())
    y_all = labelled.get_column(TARGET).cast(pl.Int8).to_numpy()
    if y_all.sum() < 10 or (1 - y_all).sum() < 10:
        raise ValueError("a PD model needs at least 10 defaulters and 10 non-defaulters")
    rows = np.arange(labelled.height)
    development, test = train_test_split(
        rows, test_size=settings.test_share, stratify=y_all, random_state=settings.seed
    )
    train, validation = train_test_split(
        development, test_size=settings.validation_share, stratify=y_all[development], random_state=settings.seed
    )
    train, validation, test = np.sort(train), np.sort(validation), np.sort(test)
    features = choose_features(labelled[train], meta_columns)
    x_all = model_input(labelled, features)
    split = pl.DataFrame(
        {
            "customer_id": labelled.get_column("customer_id"),
            "split": np.select(
                [np.isin(rows, train), np.isin(rows, validation)], ["train", "validation"], default="test"
            ),
        }
    )
    x_train, y_train = _stratified_cap(x_all[train], y_all[train], settings.max_train_rows, settings.seed)
    x_search, y_search = _stratified_cap(x_train, y_train, settings.max_search_rows, settings.seed)
    x_validation, y_validation = x_all[validation], y_all[validation]
    x_test, y_test = x_all[test], y_all[test]
    say(
        f"risk: {len(features.columns)} features; {len(train):,} training, {len(validation):,} validation, "
        f"{len(test):,} test rows; searching 2 families x 2 imbalance methods on {len(y_search):,} rows"
    )
    candidates = search_candidates(x_search, y_search, features, settings)
    fitted: dict[str, FittedFamily] = {}
    for family in ("logistic", "boosting"):
        best = max((c for c in candidates if c.family == family), key=lambda c: c.cv_auc)
        say(f"risk: {family}: {best.imbalance} kept (CV AUC {best.cv_auc:.3f}); fitting on {len(y_train):,} rows")
        model = fit_family(best, features, x_train, y_train, settings.seed)
        calibrated, method, brier = calibrate(model, x_validation, y_validation, settings.seed)
        validation_pd = predict_pd(calibrated, x_validation)
        threshold = f1_threshold(y_validation, validation_pd)
        test_pd = predict_pd(calibrated, x_test)
        metrics = measure(y_test, test_pd, threshold) | {
            "cv_auc": best.cv_auc,
            "cv_auc_std": best.cv_auc_std,
            "validation_auc": float(roc_auc_score(y_validation, validation_pd)),
        }
        fitted[family] = FittedFamily(best, calibrated, method, brier, metrics["validation_auc"], test_pd, metrics)
    champion_family = max(fitted, key=lambda f: fitted[f].validation_auc)
    champion = fitted[champion_family]
    challenger = fitted["boosting" if champion_family == "logistic" else "logistic"]
    say(
        f"risk: champion {champion_family} (test AUC {champion.metrics['roc_auc']:.3f}, KS {champion.metrics['ks']:.3f}, "
        f"Brier {champion.metrics['brier']:.4f}); computing permutation importances"
    )
    sample = np.arange(len(y_test))
    if len(sample) > settings.max_importance_rows:
        sample, _ = train_test_split(
            sample, train_size=settings.max_importance_rows, stratify=y_test, random_state=settings.seed
        )
        sample = np.sort(sample)
    importances = permutation_importances(champion.calibrated, x_test[sample], y_test[sample], settings.seed)
    # The fitted logistic pipeline inside CalibratedClassifierCV(FrozenEstimator(pipeline)).
    reason_model = fitted["logistic"].calibrated.estimator.estimator
    return RiskModelResult(
        features=features,
        candidates=candidates,
        champion=champion,
        challenger=challenger,
        reason_model=reason_model,
        split=split,
        curves={f.candidate.family: curves(y_test, f.test_pd) for f in (champion, challenger)},
        gains={f.candidate.family: gains_table(y_test, f.test_pd) for f in (champion, challenger)},
        importances=importances,
        train_input=x_train,
    )


def predict_pd(model, x: pl.DataFrame, chunk_rows: int = 250_000) -> np.ndarray:
    """Calibrated PDs in chunks, so a million customers never hold every intermediate at once."""
    parts = [model.predict_proba(x.slice(start, chunk_rows))[:, 1] for start in range(0, x.height, chunk_rows)]
    return floor_pd(np.concatenate(parts)) if parts else np.zeros(0)

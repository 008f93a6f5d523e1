"""The scoring API under ``/api/v1``, served by the dashboard's own Flask server.

The loan origination system calls it: ``POST /score`` turns an applicant's features into PD,
points, grade, persona, decision and reasons (the persona alone, with a note, where the data has no
default outcome and so no PD model can exist); ``POST /persona`` places a new customer in a persona;
``POST /segment`` puts an (recency, frequency, monetary) triple in its RFM cluster;
``GET /segments/summary`` lists personas and RFM segments; ``GET /health`` (the only route without
credentials) names the warehouse build and model runs.

Models are read from the warehouse once per file (through the dashboard's read-only reader) and
kept in memory: a call does no DuckDB query. A rebuild or retrain swaps the file; the next call
sees the new file stamp and loads the new models. The applicant's request schema is built from the
loaded model: one optional field per column the PD model, the persona model and the policy's
review rules read, typed from the warehouse, with the spec's validation rules as ranges; a
category is read as the mart stores it in any case, or as the source file codes it (the spec's
``mapping``). Every other column of the customers mart is accepted, not read, and named in the
answer's ``ignored_fields``; an applicant with none of the model's inputs is refused, not scored.

Callers authenticate with an ``X-API-Key`` header (keys from ``segrisk apikeys create``, stored
as SHA-256 digests in the application-state store), and only so: a dashboard session cookie is not
API authentication (a browser sends it along with any cross-site request, and a machine caller has
its own key to revoke). A body is read only when sent as ``Content-Type: application/json`` (415
otherwise: an HTML form cannot send that type cross-site without a CORS preflight, which this
server never grants). Every answer is JSON, errors included: 422 lists one message per bad field;
nothing ever shows a stack trace.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import numpy as np
import polars as pl
from flask import Blueprint, Flask, Response, request
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic.json_schema import models_json_schema
from werkzeug.exceptions import HTTPException

from models.policy import Policy, default_policy
from models.rfm import RfmClusters, clusters_from_rows
from models.risk_store import ARTIFACT_SQL, DamagedArtifactError, unpickle_artifact
from models.scoring import RiskScorer
from models.segments import PersonaModel
from models.segments_store import PERSONA_MODEL_SQL, persona_model_from_rows
from warehouse.app_state import StoreBusyError
from warehouse.errors import SegriskError
from warehouse.history import latest_run_of

from . import auth
from .data import WarehouseReader, reader, register

PREFIX = "/api/v1"
API_KEY_HEADER = "X-API-Key"
#: Larger bodies are refused before parsing: an applicant is a few kilobytes.
MAX_BODY_BYTES = 64 * 1024
#: No feature value of a bank customer is this large; beyond it a number is a mistake.
MAX_MAGNITUDE = 1e12
#: Persona names and strategies people edit live in the app-state store; /score re-reads them this often.
LABELS_TTL_SECONDS = 2.0
#: How long a valid API key is trusted before the store is asked again (revocation takes this long).
KEY_CACHE_SECONDS = 1.0
#: How long after its last look-up a key is still taken while the store is locked by another program.
KEY_BUSY_GRACE_SECONDS = 600.0

log = logging.getLogger(__name__)
blueprint = Blueprint("api", __name__, url_prefix=PREFIX)

register(
    api_model_runs="SELECT model_kind, run_id FROM ml_latest_runs ORDER BY model_kind",
    api_build="SELECT build_id, spec_name, spec_text, as_of_date FROM meta_builds",
    api_capabilities="SELECT capability, is_supported, reason FROM meta_capabilities",
    api_risk_model=ARTIFACT_SQL,
    api_policy="SELECT policy FROM ml_policies ORDER BY policy_version DESC LIMIT 1",
    api_customer_columns="SELECT column_name, data_type, comment FROM duckdb_columns() "
    "WHERE table_name = 'customers' ORDER BY column_index",
    api_column_minimums="SELECT min(COLUMNS(*)) FROM customers",
    api_check_rows="SELECT * FROM customers USING SAMPLE reservoir(300 ROWS) REPEATABLE (42)",
    api_persona_model=PERSONA_MODEL_SQL,
    api_personas="SELECT run_id, segment_id, segment_key, persona_name, description, strategy, manual_underwriting, "
    "customers, share FROM ml_latest_segment_summary ORDER BY segment_id",
    api_rfm_clusters="SELECT run_id, cluster_id, cluster_name, customers, centroid_recency_days, centroid_frequency, "
    "centroid_monetary, scaled_centroid, log_mean, log_scale FROM ml_rfm_clusters "
    f"WHERE run_id = {latest_run_of('rfm')} ORDER BY cluster_id",
    api_rfm_segments="SELECT segment, count(*) AS customers, count(*) / sum(count(*)) OVER () AS share, "
    "avg(rfm_recency_days) AS avg_recency_days, avg(rfm_frequency) AS avg_frequency, "
    "avg(rfm_monetary) AS avg_monetary FROM ml_rfm "
    f"WHERE run_id = {latest_run_of('rfm')} GROUP BY segment ORDER BY customers DESC, segment",
)


BodyModel = TypeVar("BodyModel", bound=BaseModel)


class ApiError(Exception):
    """An answer other than 200, with the one sentence the caller reads."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- request and response bodies ---------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _whole(value: float) -> float:
    """Exactly a whole number: pydantic's ``multiple_of=1`` lets 30.0000000001 and 1e-84 through, which
    the schema's ``multipleOf: 1`` refuses."""
    if not value.is_integer():
        raise ValueError("Input should be a whole number")
    return value


#: A count: the schema says ``multipleOf: 1`` and the check is exact.
_Whole = Annotated[float, AfterValidator(_whole)]


class SegmentRequest(_Body):
    """One customer's recency, frequency and monetary value, as the warehouse computes them."""

    # Strict: true/false or "12" are not numbers here. A count takes any JSON number without a fraction.
    recency_days: float = Field(
        strict=True, ge=0, le=36_500, allow_inf_nan=False, description="Days from the last purchase to today."
    )
    frequency: _Whole = Field(
        strict=True,
        ge=0,
        le=10_000_000,
        multiple_of=1,
        allow_inf_nan=False,
        description="Distinct purchases (invoices, else transactions): a whole number.",
    )
    monetary: float = Field(
        strict=True, ge=0, le=MAX_MAGNITUDE, allow_inf_nan=False, description="Total spend, currency units."
    )


class SegmentResponse(BaseModel):
    cluster_id: int = Field(description="The RFM cluster's number in its run.")
    cluster_name: str = Field(description="Loyal High-Value, Potential Loyalists, Occasional Buyers or Churn Risk.")
    rfm_run_id: str = Field(description="The rfm run whose clusters assigned it (see ml_model_runs).")


class Persona(BaseModel):
    key: str = Field(description="Stable persona key (S1, S2, ...).")
    name: str
    strategy: str | None = None
    manual_underwriting: bool = Field(description="True when the persona's cases go to manual review.")


class Reason(BaseModel):
    code: str = Field(description="The mart column that raises the risk.")
    reason: str = Field(description="The reason in words, e.g. 'Debt-to-income 72%, above 60%'.")


IGNORED_DESCRIPTION = "A column of the customers mart the models do not read: accepted, and named in ignored_fields."


class ScoreResponse(BaseModel):
    applicant_id: str | None = None
    pd: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Calibrated probability of default within the outcome window; null where the "
        "warehouse has no PD model (see risk_note).",
    )
    score: float | None = Field(None, description="Scorecard points; higher is safer. Null without a PD model.")
    grade: str | None = Field(None, description="Risk grade, A (lowest risk) to E. Null without a PD model.")
    decision: Literal["approve", "review", "decline"] | None = Field(None, description="Null without a PD model.")
    decision_reason: str | None = None
    policy_version: int | None = None
    reasons: list[Reason] = Field(
        default_factory=list, description="Up to three factors that raise the risk most, strongest first."
    )
    risk_note: str | None = Field(
        None,
        description="Why there is no PD, score, grade or decision, when there is none: the data has no default "
        "outcome, so the persona alone is given.",
    )
    persona: Persona | None = None
    persona_note: str | None = Field(None, description="Why no persona was assigned, when none was.")
    risk_run_id: str | None = Field(None, description="The risk run whose PD model scored it; null without one.")
    segments_run_id: str | None = None
    ignored_fields: list[str] = Field(
        default_factory=list, description="The fields sent that no model reads (other columns of the customers mart)."
    )


class PersonaResponse(BaseModel):
    applicant_id: str | None = None
    persona: Persona
    segments_run_id: str = Field(description="The segments run whose persona model placed the customer.")
    ignored_fields: list[str] = Field(
        default_factory=list, description="The fields sent that the persona model does not read."
    )


class Health(BaseModel):
    status: Literal["ok"]
    build_id: str
    spec_name: str
    as_of_date: date | None = None
    model_runs: dict[str, str] = Field(description="Latest run id per model kind.")


class PersonaSummary(BaseModel):
    key: str
    name: str
    description: str | None = None
    strategy: str | None = None
    manual_underwriting: bool
    size: int = Field(description="Customers in the persona.")
    share: float = Field(description="Share of all customers (0 to 1).")


class RfmSegmentSummary(BaseModel):
    segment: str
    customers: int
    share: float
    avg_recency_days: float
    avg_frequency: float
    avg_monetary: float


class RfmClusterSummary(BaseModel):
    cluster_id: int
    cluster_name: str
    customers: int
    centroid_recency_days: float
    centroid_frequency: float
    centroid_monetary: float


class SegmentsSummary(BaseModel):
    segments_run_id: str | None = None
    personas: list[PersonaSummary]
    rfm_run_id: str | None = None
    rfm_segments: list[RfmSegmentSummary]
    rfm_clusters: list[RfmClusterSummary]


class Error(BaseModel):
    detail: str = Field(description="What went wrong, in one sentence.")


class FieldError(BaseModel):
    field: str = Field(description="The field (dotted for nested ones), or 'body' for the body as a whole.")
    message: str


class ValidationErrors(BaseModel):
    detail: list[FieldError] = Field(description="One message per bad field.")


# -- what a warehouse file gives the API -----------------------------------------------------------------
@dataclass
class LoadedModels:
    """Everything the API answers from, read once from one warehouse file."""

    stamp: tuple[int, int, int]
    build: dict
    model_runs: dict[str, str]
    applicant: type[_ApplicantBody]
    persona_request: type[_ApplicantBody] | None = None
    #: Whether the data can have a PD model at all (False: it has no default outcome).
    risk_possible: bool = True
    scorer: RiskScorer | None = None
    risk_run_id: str | None = None
    risk_note: str | None = None
    policy: Policy | None = None
    persona_model: PersonaModel | None = None
    persona_columns: tuple[str, ...] = ()
    personas: list[dict] = field(default_factory=list)
    segments_run_id: str | None = None
    persona_note: str | None = None
    rfm: RfmClusters | None = None
    rfm_run_id: str | None = None
    rfm_clusters: list[dict] = field(default_factory=list)
    rfm_segments: list[dict] = field(default_factory=list)
    openapi: dict = field(default_factory=dict)
    labels_read_at: float = 0.0
    labels: tuple[dict[str, str], dict[str, str]] = ({}, {})


class ScoringService:
    """Loads the models of the reader's warehouse file and reloads them when the file is swapped."""

    def __init__(self, data: WarehouseReader) -> None:
        self.data = data
        self._lock = threading.Lock()
        self._loaded: LoadedModels | None = None
        self._keys: dict[str, tuple[str, float]] = {}
        self.loads = 0

    def models(self) -> LoadedModels:
        stamp = self.data.stamp()  # an os.stat: WarehouseError when the file is gone
        loaded = self._loaded
        if loaded is not None and loaded.stamp == stamp:
            return loaded
        with self._lock:
            stamp = self.data.stamp()
            if self._loaded is None or self._loaded.stamp != stamp:
                self._loaded = _load(self.data, stamp)
                self.loads += 1
            return self._loaded

    def key_name(self, key: str) -> str | None:
        """The name of the active API key ``key``. A known key is remembered for KEY_CACHE_SECONDS (the
        store costs half a millisecond a look-up), so a revoked key stops working within that time."""
        now = time.monotonic()
        known = self._keys.get(key)
        if known is not None and known[1] > now:
            return known[0]
        try:
            name = auth.store().api_key_name(key)
        except StoreBusyError:
            # Scoring keeps answering while another program holds the store: a key known a moment
            # ago (nobody can revoke it while the store is locked) is still taken; others get a 503.
            if known is not None and now - known[1] < KEY_BUSY_GRACE_SECONDS:
                return known[0]
            raise
        if name is None:
            self._keys.pop(key, None)
        else:
            if len(self._keys) > 1000:
                self._keys.clear()
            self._keys[key] = (name, now + KEY_CACHE_SECONDS)
        return name

    def persona_labels(self, models: LoadedModels) -> tuple[dict[str, str], dict[str, str]]:
        """(names, strategies) by persona key with people's edits applied, re-read every few seconds."""
        now = time.monotonic()
        if now - models.labels_read_at > LABELS_TTL_SECONDS:
            from .state import persona_labels

            models.labels = persona_labels(self.data)
            models.labels_read_at = now
        return models.labels


def _load(data: WarehouseReader, stamp: tuple[int, int, int]) -> LoadedModels:
    build_rows = data.query("api_build").rows(named=True) if data.has("meta_builds") else []
    if not build_rows:
        raise ApiError(503, f"The warehouse {data.path} has no build record; rebuild it with `segrisk build`.")
    build = build_rows[0]
    runs = dict(data.query("api_model_runs").rows()) if data.has("ml_model_runs") else {}
    loaded = LoadedModels(stamp=stamp, build=build, model_runs=runs, applicant=_ApplicantBody)
    columns = data.query("api_customer_columns")
    _load_scorer(data, loaded)
    _load_personas(data, loaded)
    _load_rfm(data, loaded)
    loaded.applicant, loaded.persona_request = _applicant_models(data, loaded, columns)
    loaded.openapi = openapi_document(loaded.applicant, loaded.persona_request)
    return loaded


def _load_scorer(data: WarehouseReader, loaded: LoadedModels) -> None:
    rows = (
        data.query("api_risk_model", artifact="risk_model", run_id=None).rows()
        if data.has("ml_model_artifacts")
        else []
    )
    if not rows:
        capability = _capability(data, "risk_model")
        if capability is not None and not capability[0]:
            # "needs a target with both outcomes; the spec has no target" (or "has 0 defaults among 200")
            found = capability[1].partition("; ")[2] or capability[1]
            loaded.risk_possible = False
            loaded.risk_note = (
                "This warehouse has no PD model and can have none, because its data has no default outcome "
                f"({found}): there is no PD, score, grade or decision, only the persona."
            )
        else:
            loaded.risk_note = "This warehouse has no PD model: run `segrisk train risk` on it first."
        return
    run_id, content, digest = rows[0]
    try:
        scorer: RiskScorer = unpickle_artifact("risk_model", run_id, content, digest)
    except DamagedArtifactError:
        loaded.risk_note = f"The stored PD model of run {run_id} is damaged (checksum mismatch); retrain it."
        return
    # Rebuild the fast one-applicant path with this code and check it against the pipeline on real rows.
    scorer.prepare_applicants(data.query("api_check_rows"))
    loaded.scorer, loaded.risk_run_id = scorer, run_id
    if data.has("ml_policies"):
        policy_rows = data.query("api_policy").rows()
        if policy_rows:
            loaded.policy = Policy.model_validate_json(policy_rows[0][0])
    if loaded.policy is None:
        names = set(data.query("api_customer_columns").get_column("column_name").to_list())
        loaded.policy = default_policy(names)


def _capability(data: WarehouseReader, name: str) -> tuple[bool, str] | None:
    """(is_supported, reason) of a capability the build recorded; None where it recorded none."""
    if not data.has("meta_capabilities"):
        return None
    for capability, supported, reason in data.query("api_capabilities").rows():
        if capability == name:
            return bool(supported), reason or ""
    return None


def _load_personas(data: WarehouseReader, loaded: LoadedModels) -> None:
    if not data.has("ml_latest_segment_summary"):
        loaded.persona_note = "This warehouse has no personas: run `segrisk train segments` on it first."
        return
    personas = data.query("api_personas")
    loaded.personas = personas.rows(named=True)
    loaded.segments_run_id = personas.get_column("run_id")[0] if personas.height else None
    rows = data.query("api_persona_model").rows() if data.has("ml_segment_model") else []
    if not rows or rows[0][0] != loaded.segments_run_id:
        loaded.persona_note = (
            "The latest personas run did not store its model, so an applicant cannot be placed in a persona: "
            "run `segrisk train segments` again."
        )
        return
    loaded.persona_model = persona_model_from_rows(rows)
    loaded.persona_columns = loaded.persona_model.columns


def _load_rfm(data: WarehouseReader, loaded: LoadedModels) -> None:
    if not data.has("ml_rfm_clusters"):
        return
    clusters = data.query("api_rfm_clusters")
    if not clusters.height:
        return
    first = clusters.row(0, named=True)
    loaded.rfm_run_id = first["run_id"]
    loaded.rfm = clusters_from_rows(clusters.select("cluster_name", "scaled_centroid", "log_mean", "log_scale").rows())
    loaded.rfm_clusters = clusters.drop("run_id", "scaled_centroid", "log_mean", "log_scale").rows(named=True)
    loaded.rfm_segments = data.query("api_rfm_segments").rows(named=True)


# -- the applicant's schema, from the warehouse ------------------------------------------------------------
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER"}
#: Trimmed around a category, as the build trims the source file's text.
_BLANKS = " \t\r\n"
#: A category without an allowed list is passed on as sent, up to this length.
MAX_CATEGORY_LENGTH = 100
_WHOLE = re.compile(r"-?[0-9]+")


class Category:
    """How a categorical field reads what it is sent, the way the build stages the source file: the
    spec's ``mapping`` turns a source code into the stored value (``mapping_default`` turns any other
    code into its value), and a stored value is taken in any case. A column with ``allowed`` values
    refuses anything else; one without passes other text on (the model counts it as unseen)."""

    def __init__(self, stored: list[str], mapping: dict[str, str], default: str | None, closed: bool) -> None:
        self.stored = tuple(dict.fromkeys(stored))
        self.mapping = dict(mapping)
        self.default = default
        self.closed = closed
        # The build maps the source text first: a code wins over a stored value spelled the same.
        self._exact = {value: value for value in self.stored} | self.mapping
        self._folded: dict[str, str] = {}
        for text, value in [*self._exact.items()]:
            self._folded.setdefault(text.lower(), value)
        #: JSON integers are read as codes where every code is a whole number (Taiwan's SEX 1 and 2).
        self.numbers = bool(self.mapping) and all(
            _WHOLE.fullmatch(code) and str(int(code)) == code for code in self.mapping
        )

    @classmethod
    def of(cls, rule: dict, model_values: list[str]) -> Category:
        mapping, default, allowed = rule.get("mapping") or {}, rule.get("mapping_default"), rule.get("allowed")
        stored = list(allowed) if allowed else [*mapping.values(), *([default] if default else []), *model_values]
        return cls(stored, mapping, default, allowed is not None)

    def read(self, value: str) -> str:
        if not self.closed and len(value) > MAX_CATEGORY_LENGTH:
            raise ValueError(f"At most {MAX_CATEGORY_LENGTH} characters")
        text = value.strip(_BLANKS)
        found = self._exact.get(text)
        if found is None and text:
            found = self._folded.get(text.lower())
        if found is not None:
            return found
        if self.default is not None and text:
            return self.default
        if self.closed:
            raise ValueError(self.refusal())
        return text

    def refusal(self) -> str:
        codes = f", or a source code: {_or_list(list(self.mapping))}" if self.mapping else ""
        return f"Input should be {_or_list(list(self.stored))} (in any case){codes}"

    def code_to_text(self, value: object) -> object:
        if self.numbers and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    def json_schema(self) -> dict:
        """The values the field takes: a pattern of every spelling for a closed category (JSON Schema
        has no case-insensitive enum), else any short text; integers too where the codes are numbers."""
        if self.closed:
            text = {"type": "string", "pattern": _any_case_pattern([*self.stored, *self.mapping])}
            integers = {"type": "integer", "enum": [int(code) for code in self.mapping]}
        else:
            text = {"type": "string", "maxLength": MAX_CATEGORY_LENGTH}
            integers = {"type": "integer"}
        schema = {"anyOf": [text, integers]} if self.numbers else text
        return schema | ({"examples": list(self.stored)} if self.stored else {})


def _or_list(values: list[str]) -> str:
    quoted = [f"'{value}'" for value in values] or ["nothing"]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


#: ECMA-262's syntax characters, the only ones a pattern in Unicode mode may escape.
_SYNTAX = frozenset("^$\\.*+?()[]{}|/")


def _any_case_pattern(spellings: list[str]) -> str:
    """An ECMA-262 pattern matching exactly ``spellings`` in any case, with blanks around them."""

    def letter(char: str) -> str:
        cases = dict.fromkeys(c for c in (char, char.lower(), char.upper()) if len(c) == 1)
        if len(cases) > 1:
            return "[" + "".join(cases) + "]"
        return "\\" + char if char in _SYNTAX else char

    options = sorted({"".join(letter(c) for c in spelling) for spelling in spellings if spelling}, key=len)
    blanks = "[ \\t\\r\\n]*"
    return f"^{blanks}(?:{'|'.join(reversed(options))}){blanks}$"


def _mart_value(value: object) -> object:
    if isinstance(value, dict | list):
        raise ValueError("A column of the customers mart holds a string, a number, true, false or null")
    return value


#: A mart column no model reads: any scalar, not looked at.
_MartValue = Annotated[
    Any, AfterValidator(_mart_value), WithJsonSchema({"type": ["string", "number", "boolean", "null"]})
]


def _at_least_one(schema: dict[str, Any], model: type) -> None:
    """JSON Schema of the body rule: at least one of the model's inputs is given, and not null."""
    inputs: tuple[str, ...] = getattr(model, "inputs", ())
    if not inputs:
        return
    properties = schema.get("properties", {})
    branches = []
    for name in inputs:
        options = [o for o in properties.get(name, {}).get("anyOf", []) if o != {"type": "null"}]
        given = options[0] if len(options) == 1 else {"anyOf": options} if options else {"not": {"type": "null"}}
        branches.append({"required": [name], "properties": {name: given}})
    schema["anyOf"] = branches


class _ApplicantBody(BaseModel):
    """The base of the applicant's body: ``inputs`` are what the call's model reads, at least one of
    them given; ``read`` every field some model of the call reads (the rest is named as ignored)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), json_schema_extra=_at_least_one)

    inputs: ClassVar[tuple[str, ...]] = ()
    read: ClassVar[frozenset[str]] = frozenset()
    refusal: ClassVar[str] = ""

    @model_validator(mode="after")
    def _has_an_input(self) -> _ApplicantBody:
        if self.inputs and all(getattr(self, name) is None for name in self.inputs):
            raise ValueError(self.refusal)
        return self

    def ignored_fields(self) -> list[str]:
        """The fields sent that no model of the call reads, in the order of the schema's properties."""
        sent = self.model_fields_set - self.read - {"applicant_id"}
        return [name for name in type(self).model_fields if name in sent]

    def features(self) -> dict:
        """The given values of the fields the call's models read (left-out and null ones are unknown)."""
        return {name: value for name in self.read if (value := getattr(self, name)) is not None}


def _applicant_models(
    data: WarehouseReader, loaded: LoadedModels, columns: pl.DataFrame
) -> tuple[type[_ApplicantBody], type[_ApplicantBody]]:
    """The bodies of /score and /persona: one optional field per column the models read (missing =
    unknown), typed from the warehouse and the spec; every other column of the customers mart too,
    accepted and not read."""
    wanted: list[str] = []
    if loaded.scorer is not None:
        wanted += loaded.scorer.features.columns
    wanted += list(loaded.persona_columns)
    if loaded.policy is not None:
        wanted += [rule.column for rule in loaded.policy.rules]
    wanted = list(dict.fromkeys(wanted))
    described = {name: (dtype, comment) for name, dtype, comment in columns.rows()}
    rules = _spec_rules(loaded.build.get("spec_text"), loaded.build.get("spec_name"))
    minimums = data.query("api_column_minimums").row(0, named=True) if wanted else {}
    categorical = set(loaded.scorer.features.categorical) if loaded.scorer is not None else set()
    known = _model_categories(loaded.scorer)
    fields: dict[str, Any] = {
        "applicant_id": (
            str | None,
            Field(None, max_length=64, description="The caller's reference for the applicant, echoed back."),
        )
    }
    for name in wanted:
        dtype, comment = described.get(name, ("VARCHAR" if name in categorical else "DOUBLE", None))
        rule = rules.get(name, {})
        description = (comment or name.replace("_", " ")) + " Leave out when unknown."
        if dtype == "BOOLEAN":
            fields[name] = (bool | None, Field(None, strict=True, description=description))
        elif dtype == "VARCHAR" or name in categorical:
            category = Category.of(rule, known.get(name, []))
            kind = Annotated[
                str,
                BeforeValidator(category.code_to_text),
                Field(strict=True),
                AfterValidator(category.read),
                WithJsonSchema(category.json_schema()),
            ]
            fields[name] = (kind | None, Field(None, description=description))
        else:
            low, high = rule.get("min"), rule.get("max")
            above = rule.get("greater_than")
            observed = minimums.get(name)
            if low is None and above is None and isinstance(observed, int | float) and observed >= 0:
                low = 0  # the bank has no negative value of it
            # A whole-number column takes any JSON number without a fraction (JSON Schema's integer
            # includes 603.0); strict refuses text such as "603".
            whole = dtype in _INTEGER_TYPES
            number = Annotated[
                float,
                Field(
                    strict=True,
                    ge=-MAX_MAGNITUDE if low is None else low,
                    gt=above,
                    le=MAX_MAGNITUDE if high is None else high,
                    multiple_of=1 if whole else None,
                    allow_inf_nan=False,
                ),
            ]
            if whole:
                number = Annotated[number, AfterValidator(_whole)]
            fields[name] = (number | None, Field(None, description=description))
    for name in described:
        if name not in fields:
            fields[name] = (_MartValue, Field(None, description=IGNORED_DESCRIPTION))
    persona_inputs = tuple(loaded.persona_columns)
    if loaded.scorer is not None:
        score_inputs, score_reader = tuple(loaded.scorer.features.columns), "the PD model"
    else:
        score_inputs, score_reader = persona_inputs, "the persona model"
    score = _body_model(
        "Applicant",
        "An applicant's features, named as the customers mart names them; any may be left out, but at least "
        f"one that {score_reader} reads must be given. Other columns of the mart are accepted and ignored.",
        fields,
        score_inputs,
        frozenset(wanted),
        f"The applicant has none of the fields {score_reader} reads ({', '.join(score_inputs)}), so it was not "
        "scored: send at least one of them.",
    )
    persona = _body_model(
        "PersonaRequest",
        "A new customer's features, named as the customers mart names them; any may be left out, but at least "
        "one that the persona model reads must be given. Other columns of the mart are accepted and ignored.",
        fields,
        persona_inputs,
        frozenset(persona_inputs),
        f"The customer has none of the fields the persona model reads ({', '.join(persona_inputs)}), so no "
        "persona was assigned: send at least one of them.",
    )
    return score, persona


def _body_model(
    name: str, doc: str, fields: dict[str, Any], inputs: tuple[str, ...], read: frozenset[str], refusal: str
) -> type[_ApplicantBody]:
    model = create_model(name, __base__=_ApplicantBody, __doc__=doc, **fields)
    model.inputs, model.read, model.refusal = inputs, read, refusal
    return model


def _model_categories(scorer: RiskScorer | None) -> dict[str, list[str]]:
    """The categories the PD model was fitted on, per categorical input (from its one-applicant path)."""
    found: dict[str, list[str]] = {}
    for path in (scorer.fast, scorer.fast_reasons) if scorer is not None else ():
        for column, positions, _ in path.categorical if path is not None else []:
            found.setdefault(column, [value for value in positions if value != "missing"])
    return found


def _spec_rules(spec_text: str | None, spec_name: str | None) -> dict[str, dict]:
    """min, max, greater_than, allowed values and the code mapping of each spec column (the build's
    validation rules), parsed once per warehouse file from the spec text the build stored."""
    if not spec_text:
        return {}
    from warehouse.spec import parse_spec

    spec = None
    for suffix in (".toml", ".yaml"):  # the build keeps the text, not whether the file was TOML or YAML
        try:
            spec = parse_spec(spec_text, f"{spec_name or 'spec'}{suffix}")
            break
        except SegriskError:
            continue
    if spec is None:
        return {}
    rules: dict[str, dict] = {}
    for source in (spec.customers, spec.applications):
        for column in source.columns if source is not None else []:
            keys = ("min", "max", "greater_than", "allowed", "mapping", "mapping_default")
            rule = {k: getattr(column, k) for k in keys}
            rules[column.name] = {k: v for k, v in rule.items() if v is not None}
    return rules


# -- the OpenAPI document ----------------------------------------------------------------------------------
def openapi_document(applicant: type[BaseModel], persona_request: type[BaseModel] | None = None) -> dict:
    """OpenAPI 3.1 built from the pydantic models' JSON schemas; paths assembled here."""
    persona_request = persona_request or applicant
    requests = (applicant, persona_request, SegmentRequest)
    models = list(
        dict.fromkeys(
            [
                *requests,
                SegmentResponse,
                ScoreResponse,
                PersonaResponse,
                Health,
                SegmentsSummary,
                Error,
                ValidationErrors,
            ]
        )
    )
    _, schemas = models_json_schema(
        [(m, "validation" if m in requests else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )

    def ref(model: type[BaseModel]) -> dict:
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def answer(description: str, model: type[BaseModel]) -> dict:
        return {"description": description, "content": {"application/json": {"schema": ref(model)}}}

    errors = {
        "401": answer("No valid API key.", Error),
        "503": answer("The warehouse or the model this call needs is missing.", Error),
        "500": answer("An unexpected error; it was logged.", Error),
    }

    not_json = {"415": answer("The body was not sent as application/json.", Error)}

    def body(model: type[BaseModel]) -> dict:
        return {"required": True, "content": {"application/json": {"schema": ref(model)}}}

    paths = {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "The warehouse build and the latest model runs; needs no key.",
                "security": [],
                "responses": {"200": answer("The API can answer.", Health), "503": errors["503"]},
            }
        },
        "/segment": {
            "post": {
                "operationId": "segment",
                "summary": "The RFM cluster of a recency, frequency and monetary triple.",
                "requestBody": body(SegmentRequest),
                "responses": {
                    "200": answer("The cluster.", SegmentResponse),
                    "422": answer("A field is missing or out of range.", ValidationErrors),
                    **not_json,
                    **errors,
                },
            }
        },
        "/score": {
            "post": {
                "operationId": "score",
                "summary": "PD, points, grade, persona, decision and reasons of one applicant (the persona alone "
                "where the data has no default outcome).",
                "requestBody": body(applicant),
                "responses": {
                    "200": answer(
                        "The applicant scored and decided, or given a persona (see risk_note).", ScoreResponse
                    ),
                    "422": answer(
                        "A field has the wrong type or is out of range, or none of the model's inputs is given.",
                        ValidationErrors,
                    ),
                    **not_json,
                    **errors,
                },
            }
        },
        "/persona": {
            "post": {
                "operationId": "persona",
                "summary": "The persona of a new customer, from the persona model of the latest segments run.",
                "requestBody": body(persona_request),
                "responses": {
                    "200": answer("The persona.", PersonaResponse),
                    "422": answer(
                        "A field has the wrong type or is out of range, or none of the persona model's inputs is "
                        "given.",
                        ValidationErrors,
                    ),
                    **not_json,
                    **errors,
                },
            }
        },
        "/segments/summary": {
            "get": {
                "operationId": "segmentsSummary",
                "summary": "The personas and RFM segments of the latest runs.",
                "responses": {"200": answer("The summary.", SegmentsSummary), **errors},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "401": errors["401"],
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Segrisk scoring API",
            "version": "1",
            "description": "Scores applicants and places customers in personas and RFM clusters from the models "
            "stored in the warehouse. Send an API key in the X-API-Key header, and bodies as "
            "application/json.",
        },
        "servers": [{"url": PREFIX}],
        "paths": paths,
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
            },
        },
        "security": [{"apiKey": []}],
    }


# -- the routes --------------------------------------------------------------------------------------------
_SERVICE_KEY = "segrisk_scoring"
ROUTES = {
    "/health": ("GET",),
    "/segment": ("POST",),
    "/score": ("POST",),
    "/persona": ("POST",),
    "/segments/summary": ("GET",),
}


def install(server: Flask) -> None:
    """Put the API on the dashboard's server (after ``auth.install``, which lets /api/v1/ through)."""
    server.extensions[_SERVICE_KEY] = ScoringService(reader())
    server.register_blueprint(blueprint)


def service() -> ScoringService:
    from flask import current_app

    return current_app.extensions[_SERVICE_KEY]


def _json(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload, default=_plain), status=status, mimetype="application/json", headers=headers)


def _plain(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


@blueprint.before_request
def _authenticate() -> Response | None:
    if request.path in (f"{PREFIX}/health",) or request.endpoint == "api.not_found":
        return None
    key = request.headers.get(API_KEY_HEADER)
    if key:
        name = service().key_name(key)
        if name is not None:
            request.environ["segrisk.api_key"] = name
            return None
        auth.audit("api_auth", f"{request.method} {request.path}: unknown or revoked API key", "failed")
        raise ApiError(401, "The API key is unknown or revoked.")
    auth.audit("api_auth", f"{request.method} {request.path}: no API key", "refused")
    raise ApiError(
        401, f"This call needs an API key in the {API_KEY_HEADER} header (a dashboard session is not API sign-in)."
    )


def _validated(model: type[BodyModel]) -> BodyModel:
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise ApiError(413, f"The request body is larger than {MAX_BODY_BYTES // 1024} KB.")
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        shown = request.mimetype or "none"
        raise ApiError(415, f"Send the body as JSON with Content-Type: application/json (this one was {shown}).")
    try:
        return model.model_validate_json(request.get_data(cache=False) or b"")
    except ValidationError as exc:
        raise _field_errors(exc) from None


class _FieldErrors(Exception):
    def __init__(self, errors: list[dict]) -> None:
        super().__init__("invalid body")
        self.errors = errors


def _field_errors(exc: ValidationError) -> _FieldErrors:
    """One message per bad field (pydantic may report several for one field)."""
    seen: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in error["loc"]) or "body"
        if error["type"] == "json_invalid":
            message = "The body is not valid JSON."
        elif error["type"] in ("model_type", "model_attributes_type"):
            message = "The body must be a JSON object."
        elif error["type"] == "extra_forbidden":
            message = "Unknown field: this API does not read it."
        elif error["type"] == "missing":
            message = "This field is required."
        elif error["type"] == "value_error":
            message = error["msg"].removeprefix("Value error, ").rstrip(".") + "."
        else:
            message = error["msg"].rstrip(".") + "."
        seen.setdefault(name, message)
    return _FieldErrors([{"field": name, "message": message} for name, message in seen.items()])


@blueprint.get("/health")
def health() -> Response:
    models = service().models()
    body = Health(
        status="ok",
        build_id=models.build["build_id"],
        spec_name=models.build["spec_name"],
        as_of_date=models.build.get("as_of_date"),
        model_runs=models.model_runs,
    )
    return Response(body.model_dump_json(), mimetype="application/json")


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return _json(service().models().openapi)


@blueprint.post("/segment")
def segment() -> Response:
    models = service().models()
    triple = _validated(SegmentRequest)
    if models.rfm is None:
        raise ApiError(503, "This warehouse has no RFM clusters: run `segrisk train rfm` on it first.")
    cluster_id, name = models.rfm.assign(triple.recency_days, triple.frequency, triple.monetary)
    return _json({"cluster_id": cluster_id, "cluster_name": name, "rfm_run_id": models.rfm_run_id})


@blueprint.post("/score")
def score() -> Response:
    scoring = service()
    models = scoring.models()
    body = _validated(models.applicant)
    applicant = body.features()
    if models.scorer is None and models.risk_possible:
        raise ApiError(503, models.risk_note or "This warehouse has no PD model.")
    if models.scorer is None and models.persona_model is None:
        raise ApiError(
            503,
            "This warehouse has no PD model, because its data has no default outcome, and no persona model: "
            "run `segrisk train segments` on it first.",
        )
    persona, note = _persona(scoring, models, applicant)
    result: dict[str, Any] = {}
    if models.scorer is not None:
        result = models.scorer.score_applicant(
            applicant, models.policy, flagged_persona=bool(persona and persona["manual_underwriting"])
        )
    reasons = [
        {"code": result[f"reason_code_{slot}"], "reason": result[f"reason_{slot}"]}
        for slot in (1, 2, 3)
        if result.get(f"reason_code_{slot}") is not None
    ]
    return _json(
        {
            "applicant_id": body.applicant_id,
            "pd": result.get("pd"),
            "score": result.get("score"),
            "grade": result.get("grade"),
            "decision": result.get("decision"),
            "decision_reason": result.get("decision_reason"),
            "policy_version": result.get("policy_version"),
            "reasons": reasons,
            "risk_note": None if models.scorer is not None else models.risk_note,
            "persona": persona,
            "persona_note": note,
            "risk_run_id": models.risk_run_id,
            "segments_run_id": models.segments_run_id,
            "ignored_fields": body.ignored_fields(),
        }
    )


@blueprint.post("/persona")
def persona() -> Response:
    """The persona of a new customer: the nearest centroid of the latest segments run's model."""
    scoring = service()
    models = scoring.models()
    body = _validated(models.persona_request or models.applicant)
    if models.persona_model is None:
        raise ApiError(503, models.persona_note or "This warehouse has no persona model.")
    found, _ = _persona(scoring, models, body.features())
    return _json(
        {
            "applicant_id": body.applicant_id,
            "persona": found,
            "segments_run_id": models.segments_run_id,
            "ignored_fields": body.ignored_fields(),
        }
    )


def _persona(scoring: ScoringService, models: LoadedModels, applicant: dict) -> tuple[dict | None, str | None]:
    if models.persona_model is None:
        return None, models.persona_note
    values = np.array([[_number(applicant.get(c)) for c in models.persona_model.columns]])
    segment_id = int(models.persona_model.assign(values)[0])
    row = models.personas[segment_id]
    names, strategies = scoring.persona_labels(models)
    key = row["segment_key"]
    return {
        "key": key,
        "name": names.get(key, row["persona_name"]),
        "strategy": strategies.get(key, row["strategy"]),
        "manual_underwriting": bool(row["manual_underwriting"]),
    }, None


def _number(value: object) -> float:
    if value is None:
        return math.nan
    return float(value)


@blueprint.get("/segments/summary")
def segments_summary() -> Response:
    scoring = service()
    models = scoring.models()
    names, strategies = scoring.persona_labels(models)
    personas = [
        {
            "key": row["segment_key"],
            "name": names.get(row["segment_key"], row["persona_name"]),
            "description": row["description"],
            "strategy": strategies.get(row["segment_key"], row["strategy"]),
            "manual_underwriting": bool(row["manual_underwriting"]),
            "size": row["customers"],
            "share": row["share"],
        }
        for row in models.personas
    ]
    return _json(
        {
            "segments_run_id": models.segments_run_id,
            "personas": personas,
            "rfm_run_id": models.rfm_run_id,
            "rfm_segments": models.rfm_segments,
            "rfm_clusters": models.rfm_clusters,
        }
    )


@blueprint.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def not_found(rest: str) -> Response:
    """Every other path under /api/v1 (the dashboard's catch-all page route would answer HTML)."""
    allowed = ROUTES.get(f"/{rest}")
    if allowed:
        return _json(
            {"detail": f"{PREFIX}/{rest} answers {', '.join(allowed)} only."}, 405, {"Allow": ", ".join(allowed)}
        )
    return _json({"detail": f"There is no {PREFIX}/{rest}; see {PREFIX}/openapi.json."}, 404)


@blueprint.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    headers = {"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'} if exc.status == 401 else None
    return _json({"detail": exc.message}, exc.status, headers)


@blueprint.errorhandler(_FieldErrors)
def _invalid(exc: _FieldErrors) -> Response:
    return _json({"detail": exc.errors}, 422)


@blueprint.errorhandler(SegriskError)
def _unavailable(exc: SegriskError) -> Response:
    return _json({"detail": str(exc)}, 503)


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _json({"detail": exc.description or exc.name}, exc.code or 500)


@blueprint.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("scoring API: %s %s failed", request.method, request.path)
    return _json({"detail": "The API could not answer because of an unexpected error; it has been logged."}, 500)

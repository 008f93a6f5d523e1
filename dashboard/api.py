"""The scoring API under ``/api/v1``, served by the dashboard's own Flask server.

The loan origination system calls it: ``POST /score`` turns an applicant's features into PD,
points, grade, persona, decision and reasons; ``POST /segment`` puts an (recency, frequency,
monetary) triple in its RFM cluster; ``GET /segments/summary`` lists personas and RFM segments;
``GET /health`` (the only route without credentials) names the warehouse build and model runs.

Models are read from the warehouse once per file (through the dashboard's read-only reader) and
kept in memory: a call does no DuckDB query. A rebuild or retrain swaps the file; the next call
sees the new file stamp and loads the new models. The applicant's request schema is built from the
loaded model: one optional field per column the PD model, the persona model and the policy's
review rules read, typed from the warehouse, with the spec's validation rules as ranges.

Callers authenticate with an ``X-API-Key`` header (keys from ``segrisk apikeys create``, stored
as SHA-256 digests in the application-state store) or a signed-in dashboard session. Every answer
is JSON, errors included: 422 lists one message per bad field; nothing ever shows a stack trace.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, TypeVar

import numpy as np
import polars as pl
from flask import Blueprint, Flask, Response, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.json_schema import models_json_schema
from werkzeug.exceptions import HTTPException

from models.policy import Policy, default_policy
from models.rfm import RfmClusters
from models.scoring import RiskScorer
from models.segments import PersonaModel
from warehouse.errors import SegriskError

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

log = logging.getLogger(__name__)
blueprint = Blueprint("api", __name__, url_prefix=PREFIX)

register(
    api_model_runs="SELECT model_kind, arg_max(run_id, finished_at) AS run_id FROM ml_model_runs GROUP BY model_kind "
    "ORDER BY model_kind",
    api_build="SELECT build_id, spec_name, spec_text, as_of_date FROM meta_builds",
    api_risk_model="SELECT a.run_id, a.content, a.sha256 FROM ml_model_artifacts a JOIN ml_model_runs r USING (run_id) "
    "WHERE a.artifact = 'risk_model' ORDER BY r.finished_at DESC LIMIT 1",
    api_policy="SELECT policy FROM ml_policies ORDER BY policy_version DESC LIMIT 1",
    api_customer_columns="SELECT column_name, data_type, comment FROM duckdb_columns() "
    "WHERE table_name = 'customers' ORDER BY column_index",
    api_column_minimums="SELECT min(COLUMNS(*)) FROM customers",
    api_check_rows="SELECT * FROM customers USING SAMPLE reservoir(300 ROWS) REPEATABLE (42)",
    api_persona_model="SELECT run_id, feature, is_logged, impute_median, scale_mean, scale_scale, centroids "
    "FROM ml_segment_model WHERE run_id = (SELECT run_id FROM ml_model_runs WHERE model_kind = 'segments' "
    "ORDER BY finished_at DESC LIMIT 1) ORDER BY position",
    api_personas="SELECT run_id, segment_id, segment_key, persona_name, description, strategy, manual_underwriting, "
    "customers, share FROM ml_latest_segment_summary ORDER BY segment_id",
    api_rfm_clusters="SELECT run_id, cluster_id, cluster_name, customers, centroid_recency_days, centroid_frequency, "
    "centroid_monetary, scaled_centroid, log_mean, log_scale FROM ml_rfm_clusters "
    "WHERE run_id = (SELECT run_id FROM ml_model_runs WHERE model_kind = 'rfm' ORDER BY finished_at DESC LIMIT 1) "
    "ORDER BY cluster_id",
    api_rfm_segments="SELECT segment, count(*) AS customers, count(*) / sum(count(*)) OVER () AS share, "
    "avg(rfm_recency_days) AS avg_recency_days, avg(rfm_frequency) AS avg_frequency, "
    "avg(rfm_monetary) AS avg_monetary FROM ml_rfm "
    "WHERE run_id = (SELECT run_id FROM ml_model_runs WHERE model_kind = 'rfm' ORDER BY finished_at DESC LIMIT 1) "
    "GROUP BY segment ORDER BY customers DESC, segment",
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


class SegmentRequest(_Body):
    """One customer's recency, frequency and monetary value, as the warehouse computes them."""

    # Strict: true/false or "12" are not numbers here. A count takes any JSON number without a fraction.
    recency_days: float = Field(
        strict=True, ge=0, le=36_500, allow_inf_nan=False, description="Days from the last purchase to today."
    )
    frequency: float = Field(
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


class ScoreResponse(BaseModel):
    applicant_id: str | None = None
    pd: float = Field(ge=0, le=1, description="Calibrated probability of default within the outcome window.")
    score: float = Field(description="Scorecard points; higher is safer.")
    grade: str = Field(description="Risk grade, A (lowest risk) to E.")
    decision: Literal["approve", "review", "decline"]
    decision_reason: str
    policy_version: int | None = None
    reasons: list[Reason] = Field(description="Up to three factors that raise the risk most, strongest first.")
    persona: Persona | None = None
    persona_note: str | None = Field(None, description="Why no persona was assigned, when none was.")
    risk_run_id: str
    segments_run_id: str | None = None


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
    applicant: type[BaseModel]
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
        name = auth.store().api_key_name(key)
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
    loaded = LoadedModels(stamp=stamp, build=build, model_runs=runs, applicant=SegmentRequest)
    columns = data.query("api_customer_columns")
    _load_scorer(data, loaded)
    _load_personas(data, loaded)
    _load_rfm(data, loaded)
    loaded.applicant = _applicant_model(data, loaded, columns)
    loaded.openapi = openapi_document(loaded.applicant)
    return loaded


def _load_scorer(data: WarehouseReader, loaded: LoadedModels) -> None:
    import hashlib
    import pickle

    rows = data.query("api_risk_model").rows() if data.has("ml_model_artifacts") else []
    if not rows:
        loaded.risk_note = "This warehouse has no PD model: run `segrisk train risk` on it first."
        return
    run_id, content, digest = rows[0]
    if hashlib.sha256(content).hexdigest() != digest:
        loaded.risk_note = f"The stored PD model of run {run_id} is damaged (checksum mismatch); retrain it."
        return
    scorer: RiskScorer = pickle.loads(content)  # noqa: S301 - the warehouse's own model, checked above
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
    loaded.persona_model = PersonaModel(
        columns=tuple(r[1] for r in rows),
        logged=tuple(bool(r[2]) for r in rows),
        medians=np.array([r[3] for r in rows], dtype=float),
        mean=np.array([r[4] for r in rows], dtype=float),
        scale=np.array([r[5] for r in rows], dtype=float),
        centroids=np.array([r[6] for r in rows], dtype=float).T,
    )
    loaded.persona_columns = loaded.persona_model.columns


def _load_rfm(data: WarehouseReader, loaded: LoadedModels) -> None:
    if not data.has("ml_rfm_clusters"):
        return
    clusters = data.query("api_rfm_clusters")
    if not clusters.height:
        return
    first = clusters.row(0, named=True)
    loaded.rfm_run_id = first["run_id"]
    loaded.rfm = RfmClusters(
        log_mean=np.array(first["log_mean"], dtype=float),
        log_scale=np.array(first["log_scale"], dtype=float),
        scaled_centroids=np.array(clusters.get_column("scaled_centroid").to_list(), dtype=float),
        names=tuple(clusters.get_column("cluster_name").to_list()),
    )
    loaded.rfm_clusters = clusters.drop("run_id", "scaled_centroid", "log_mean", "log_scale").rows(named=True)
    loaded.rfm_segments = data.query("api_rfm_segments").rows(named=True)


# -- the applicant's schema, from the warehouse ------------------------------------------------------------
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER"}


def _applicant_model(data: WarehouseReader, loaded: LoadedModels, columns: pl.DataFrame) -> type[BaseModel]:
    """A pydantic model with one optional field per column the models read (missing = unknown)."""
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
            allowed = rule.get("allowed")
            kind = Literal[tuple(allowed)] if allowed else str  # type: ignore[valid-type]
            fields[name] = (kind | None, Field(None, max_length=None if allowed else 100, description=description))
        else:
            low, high = rule.get("min"), rule.get("max")
            above = rule.get("greater_than")
            observed = minimums.get(name)
            if low is None and above is None and isinstance(observed, int | float) and observed >= 0:
                low = 0  # the bank has no negative value of it
            # A whole-number column takes any JSON number without a fraction (JSON Schema's integer
            # includes 603.0); strict refuses text such as "603".
            fields[name] = (
                float | None,
                Field(
                    None,
                    strict=True,
                    ge=-MAX_MAGNITUDE if low is None else low,
                    gt=above,
                    le=MAX_MAGNITUDE if high is None else high,
                    multiple_of=1 if dtype in _INTEGER_TYPES else None,
                    allow_inf_nan=False,
                    description=description,
                ),
            )
    return create_model(
        "Applicant",
        __config__=ConfigDict(extra="forbid"),
        __doc__="An applicant's features, named as the customers mart names them; any may be left out.",
        **fields,
    )


def _spec_rules(spec_text: str | None, spec_name: str | None) -> dict[str, dict]:
    """min, max, greater_than and allowed values of each spec column (the build's validation rules)."""
    if not spec_text:
        return {}
    from warehouse.spec import parse_spec

    try:
        spec = parse_spec(spec_text, f"{spec_name or 'spec'}.toml")
    except SegriskError:
        return {}
    rules: dict[str, dict] = {}
    for source in (spec.customers, spec.applications):
        for column in source.columns if source is not None else []:
            rule = {k: getattr(column, k) for k in ("min", "max", "greater_than", "allowed")}
            rules[column.name] = {k: v for k, v in rule.items() if v is not None}
    return rules


# -- the OpenAPI document ----------------------------------------------------------------------------------
def openapi_document(applicant: type[BaseModel]) -> dict:
    """OpenAPI 3.1 built from the pydantic models' JSON schemas; paths assembled here."""
    models = [
        applicant,
        SegmentRequest,
        SegmentResponse,
        ScoreResponse,
        Health,
        SegmentsSummary,
        Error,
        ValidationErrors,
    ]
    _, schemas = models_json_schema(
        [(m, "validation" if m in (applicant, SegmentRequest) else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )

    def ref(model: type[BaseModel]) -> dict:
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def answer(description: str, model: type[BaseModel]) -> dict:
        return {"description": description, "content": {"application/json": {"schema": ref(model)}}}

    errors = {
        "401": answer("No valid API key or signed-in session.", Error),
        "503": answer("The warehouse or the model this call needs is missing.", Error),
        "500": answer("An unexpected error; it was logged.", Error),
    }

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
                    **errors,
                },
            }
        },
        "/score": {
            "post": {
                "operationId": "score",
                "summary": "PD, points, grade, persona, decision and reasons of one applicant.",
                "requestBody": body(applicant),
                "responses": {
                    "200": answer("The applicant scored and decided.", ScoreResponse),
                    "422": answer("A field has the wrong type or is out of range.", ValidationErrors),
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
            "stored in the warehouse. Send an API key in the X-API-Key header (or call from a signed-in "
            "dashboard session).",
        },
        "servers": [{"url": PREFIX}],
        "paths": paths,
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
        },
        "security": [{"apiKey": []}, {"session": []}],
    }


# -- the routes --------------------------------------------------------------------------------------------
_SERVICE_KEY = "segrisk_scoring"
ROUTES = {"/health": ("GET",), "/segment": ("POST",), "/score": ("POST",), "/segments/summary": ("GET",)}


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
    if auth.session_user() is not None:
        return None
    auth.audit("api_auth", f"{request.method} {request.path}: no API key and no session", "refused")
    raise ApiError(401, f"This call needs an API key in the {API_KEY_HEADER} header, or a signed-in session.")


def _validated(model: type[BodyModel]) -> BodyModel:
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise ApiError(413, f"The request body is larger than {MAX_BODY_BYTES // 1024} KB.")
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
    applicant = _validated(models.applicant).model_dump(exclude_none=True)
    if models.scorer is None:
        raise ApiError(503, models.risk_note or "This warehouse has no PD model.")
    persona, note = _persona(scoring, models, applicant)
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
            "applicant_id": applicant.get("applicant_id"),
            "pd": result["pd"],
            "score": result["score"],
            "grade": result["grade"],
            "decision": result["decision"],
            "decision_reason": result["decision_reason"],
            "policy_version": result["policy_version"],
            "reasons": reasons,
            "persona": persona,
            "persona_note": note,
            "risk_run_id": models.risk_run_id,
            "segments_run_id": models.segments_run_id,
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

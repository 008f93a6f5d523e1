"""The scoring API (/api/v1) on the trained demo warehouse: answers equal the warehouse's own,
credentials are required, bad input gets 422 per field and nothing gets a 500; and on warehouses
unlike the demo: one without a default outcome (personas only, text customer ids) and Taiwan's,
whose categories the source file holds as codes."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.security import generate_password_hash

from dashboard import api, auth
from dashboard.app import create_app
from dashboard.cli import main
from models.risk_store import read_artifact, read_policy
from models.train import train_risk, train_segments
from warehouse.app_state import AppState, state_path
from warehouse.build import build_warehouse
from warehouse.spec import load_spec, parse_spec

GRADES = "ABCDE"


@pytest.fixture(scope="module")
def served(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The dashboard app over a copy of the trained warehouse, with one API key."""
    db = tmp_path_factory.mktemp("api") / "demo.duckdb"
    shutil.copyfile(full_db, db)
    return _serve(db)


def _serve(db: Path) -> dict:
    app = create_app(db, users={"admin": auth.User("admin", "admin", generate_password_hash("admin-pw"))})
    key = AppState(state_path(db)).create_api_key("tests")
    client = app.server.test_client()
    doc = client.get("/api/v1/openapi.json", headers={"X-API-Key": key}).get_json()
    return {"db": db, "app": app, "client": client, "key": key, "fields": doc["components"]["schemas"]["Applicant"]}


@pytest.fixture(scope="module")
def no_target(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """German Credit without its Risk column (no default outcome, so no PD model can exist) and with
    text customer ids ('C-0', 'C-1', ...): built and given personas only."""
    folder = tmp_path_factory.mktemp("german-no-target")
    (folder / "german_credit").mkdir()
    source = (FIXTURES / "german_credit" / "german_credit_data_with_risk.csv").read_text(encoding="utf-8")
    lines = source.splitlines()
    rows = [lines[0]] + [f"C-{line}" for line in lines[1:] if line.strip()]
    (folder / "german_credit" / "german_credit_data_with_risk.csv").write_text("\n".join(rows) + "\n")
    _, text = load_spec("german-credit")
    blocks = text.split("[[customers.columns]]")
    blocks = [b for b in blocks if 'role = "target"' not in b]
    blocks[1] = blocks[1].replace('type = "int"', 'type = "string"', 1)
    text = "[[customers.columns]]".join(blocks)
    db = folder / "german.duckdb"
    build_warehouse(parse_spec(text, "german-credit.toml"), text, folder, db)
    train_segments(db, seed=42)
    return _serve(db)


@pytest.fixture(scope="module")
def taiwan(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The Taiwan fixture (300 clients; sex, education and marriage are codes the spec maps) with
    personas and a PD model: education is one of its inputs, sex is not."""
    db = tmp_path_factory.mktemp("taiwan") / "taiwan.duckdb"
    spec, text = load_spec("taiwan-default")
    build_warehouse(spec, text, FIXTURES, db)
    train_segments(db, seed=42)
    train_risk(db, seed=42)
    return _serve(db)


def _sql(db: Path, sql: str) -> pl.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.sql(sql).pl()


def _post(served: dict, path: str, body: object, key: str | None = "default"):  # noqa: ANN202
    headers = {"X-API-Key": served["key"] if key == "default" else key} if key else {}
    data = body if isinstance(body, str | bytes) else json.dumps(body, default=str)
    return served["client"].post(path, data=data, headers=headers, content_type="application/json")


def _inputs(fields: dict) -> set[str]:
    """The applicant's fields the models read (the other mart columns are accepted and ignored)."""
    return {k for k, v in fields["properties"].items() if "do not read" not in v.get("description", "")}


def _body(row: dict, fields: dict) -> dict:
    """A customer of the mart as an applicant: the fields the models read, unknown ones left out."""
    inputs = _inputs(fields)
    return {k: v for k, v in row.items() if k in inputs and v is not None}


# -- health and credentials ------------------------------------------------------------------------------
def test_health_needs_no_key_and_names_the_build_and_runs(served: dict) -> None:
    answer = served["client"].get("/api/v1/health")
    assert answer.status_code == 200
    body = answer.get_json()
    build_id = _sql(served["db"], "SELECT build_id FROM meta_builds").item()
    latest = _sql(
        served["db"], "SELECT model_kind, arg_max(run_id, finished_at) AS run_id FROM ml_model_runs GROUP BY ALL"
    )
    assert body["status"] == "ok" and body["build_id"] == build_id
    assert body["model_runs"] == dict(latest.rows())
    assert {"segments", "rfm", "risk"} <= set(body["model_runs"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/score"),
        ("post", "/api/v1/segment"),
        ("post", "/api/v1/persona"),
        ("get", "/api/v1/segments/summary"),
        ("get", "/api/v1/openapi.json"),
    ],
)
def test_every_other_route_answers_401_json_without_a_valid_key(served: dict, method: str, path: str) -> None:
    client = served["client"]
    client.get("/logout")
    for headers in ({}, {"X-API-Key": "sk_not-a-key"}, {"X-API-Key": served["key"] + "x"}):
        answer = getattr(client, method)(path, headers=headers, json={})
        assert answer.status_code == 401
        assert answer.is_json and "API key" in answer.get_json()["detail"]
        assert answer.headers["WWW-Authenticate"].startswith("ApiKey")
    failures = AppState(state_path(served["db"])).audit_entries(action="api_auth", limit=1000)
    assert {e.outcome for e in failures} >= {"failed", "refused"}
    assert any(path in (e.detail or "") for e in failures)


def test_apikeys_commands_create_list_and_revoke(
    served: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "KEY_CACHE_SECONDS", 0.0)  # revocation is seen at once, not within a second
    db = str(served["db"])
    assert main(["apikeys", "create", "origination", "--db", db]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("sk_") and len(key) > 40
    stored = (state_path(served["db"])).read_bytes()
    assert key.encode() not in stored  # only its digest is kept
    assert (
        _post(served, "/api/v1/segment", {"recency_days": 5, "frequency": 3, "monetary": 900}, key).status_code == 200
    )
    assert main(["apikeys", "create", "origination", "--db", db]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["apikeys", "list", "--db", db]) == 0
    listed = capsys.readouterr().out
    assert "origination" in listed and key[:9] in listed and key not in listed and "active" in listed
    assert main(["apikeys", "revoke", "origination", "--db", db]) == 0
    capsys.readouterr()
    assert (
        _post(served, "/api/v1/segment", {"recency_days": 5, "frequency": 3, "monetary": 900}, key).status_code == 401
    )
    actions = [e.action for e in AppState(state_path(served["db"])).audit_entries(limit=1000)]
    assert "api_key_create" in actions and "api_key_revoke" in actions
    assert main(["apikeys", "revoke", "origination", "--db", db]) == 2


# -- answers equal the warehouse's -----------------------------------------------------------------------
def test_real_customers_score_as_the_warehouse_scored_them(served: dict) -> None:
    """200 customers sent as applicants, each as their whole row of the customers mart, get the stored
    PD, score, grade, persona, decision and reasons; the columns no model reads are named as ignored."""
    rows = _sql(
        served["db"],
        "SELECT c.*, s.pd AS stored_pd, s.score AS stored_score, s.grade AS stored_grade, "
        "s.decision AS stored_decision, s.reason_code_1 AS stored_code_1, s.reason_1 AS stored_reason_1, "
        "g.segment_key AS stored_persona FROM customers c JOIN ml_latest_risk_scores s USING (customer_id) "
        "JOIN ml_latest_segments g USING (customer_id) ORDER BY hash(customer_id) LIMIT 200",
    )
    mart = _sql(served["db"], "SELECT * FROM customers LIMIT 0").columns
    inputs = _inputs(served["fields"])
    assert {"sex", "customer_id", "application_id"} <= set(mart) - inputs  # a protected column, an id, an attribute
    for row in rows.iter_rows(named=True):
        whole = {k: v for k, v in row.items() if k in mart}
        answer = _post(served, "/api/v1/score", whole | {"applicant_id": str(row["customer_id"])})
        assert answer.status_code == 200, answer.get_json()
        got = answer.get_json()
        assert got["applicant_id"] == str(row["customer_id"])
        assert got["ignored_fields"] == [c for c in mart if c not in inputs]
        assert got["pd"] == pytest.approx(row["stored_pd"], abs=1e-9)
        assert got["score"] == pytest.approx(row["stored_score"], abs=0.05)
        assert got["grade"] == row["stored_grade"]
        assert got["persona"]["key"] == row["stored_persona"]
        assert got["decision"] == row["stored_decision"]
        first = got["reasons"][0] if got["reasons"] else {"code": None, "reason": None}
        assert (first["code"], first["reason"]) == (row["stored_code_1"], row["stored_reason_1"])


def test_rfm_triples_land_in_the_warehouse_cluster(served: dict) -> None:
    rows = _sql(
        served["db"],
        "SELECT rfm_recency_days, rfm_frequency, rfm_monetary, cluster_id, cluster_name FROM ml_rfm "
        "WHERE run_id = (SELECT arg_max(run_id, finished_at) FROM ml_model_runs WHERE model_kind = 'rfm') "
        "ORDER BY hash(customer_id) LIMIT 200",
    )
    assert rows.height == 200
    for recency, frequency, monetary, cluster_id, cluster_name in rows.iter_rows():
        body = {"recency_days": recency, "frequency": int(frequency), "monetary": max(monetary, 0.0)}
        got = _post(served, "/api/v1/segment", body).get_json()
        assert (got["cluster_id"], got["cluster_name"]) == (cluster_id, cluster_name)


def test_segments_summary_lists_personas_and_rfm_segments(served: dict) -> None:
    body = served["client"].get("/api/v1/segments/summary", headers={"X-API-Key": served["key"]}).get_json()
    stored = _sql(served["db"], "SELECT segment_key, persona_name, customers, share FROM ml_latest_segment_summary")
    assert {(p["key"], p["name"], p["size"]) for p in body["personas"]} == {(k, n, c) for k, n, c, _ in stored.rows()}
    assert sum(p["share"] for p in body["personas"]) == pytest.approx(1.0)
    assert all(p["strategy"] for p in body["personas"])
    rfm_total = _sql(
        served["db"],
        "SELECT count(*) FROM ml_rfm WHERE run_id = (SELECT arg_max(run_id, finished_at) FROM ml_model_runs "
        "WHERE model_kind = 'rfm')",
    ).item()
    assert sum(s["customers"] for s in body["rfm_segments"]) == rfm_total
    assert len(body["rfm_clusters"]) == 4


# -- scenarios: who should be approved and who not ----------------------------------------------------------
def _typical_applicant(served: dict) -> dict:
    """The median customer of the mart (most common category for text), as an applicant."""
    properties = served["fields"]["properties"]
    customers = _sql(served["db"], "SELECT * FROM customers")
    typical = {}
    for name, spec in properties.items():
        if name not in customers.columns or name not in _inputs(served["fields"]):
            continue
        column = customers.get_column(name).drop_nulls()
        if column.dtype == pl.String:
            typical[name] = column.mode().sort()[0]
        elif column.dtype == pl.Boolean:
            typical[name] = bool(column.mean() >= 0.5)
        else:
            value = float(column.median())
            whole = any(option.get("multipleOf") == 1 for option in spec.get("anyOf", [spec]))
            typical[name] = float(round(value)) if whole else value
    return typical


def _profile(served: dict, typical: dict, **changes: float) -> dict:
    inputs = _inputs(served["fields"])
    return typical | {k: v for k, v in changes.items() if k in inputs}


def test_scenarios_low_and_high_risk_applicants(served: dict) -> None:
    """A clean applicant is approved at a low grade; one past due, maxed out and over-indebted is not."""
    typical = _typical_applicant(served)
    clean = _profile(
        served,
        typical,
        credit_score=820,
        max_days_past_due=0,
        latest_days_past_due=0,
        previous_days_past_due=0,
        periods_past_due=0,
        utilization=0.05,
        latest_utilization=0.05,
        avg_utilization=0.05,
        debt_to_income=0.05,
        latest_debt_to_income=0.05,
        emi_to_income=0.02,
        credit_score_change=5,
        latest_credit_score_drop=0,
        max_credit_score_drop=0,
    )
    troubled = _profile(
        served,
        typical,
        credit_score=480,
        max_days_past_due=90,
        latest_days_past_due=90,
        previous_days_past_due=60,
        periods_past_due=6,
        utilization=1.0,
        latest_utilization=1.0,
        avg_utilization=0.98,
        debt_to_income=2.5,
        latest_debt_to_income=2.5,
        emi_to_income=0.9,
        credit_score_change=-80,
        latest_credit_score_drop=60,
        max_credit_score_drop=60,
    )
    good = _post(served, "/api/v1/score", clean).get_json()
    bad = _post(served, "/api/v1/score", troubled).get_json()
    assert good["pd"] < bad["pd"]
    assert good["score"] > bad["score"]
    assert GRADES.index(good["grade"]) < GRADES.index(bad["grade"])
    assert good["decision"] == "approve" and bad["decision"] in ("decline", "review")
    assert bad["reasons"] and all(r["reason"] for r in bad["reasons"])
    # The troubled applicant's latest debt-to-income is far past the policy's 60% review rule.
    if "latest_debt_to_income" in _inputs(served["fields"]):
        assert bad["decision"] == "decline" or "review" in bad["decision_reason"].lower()


def test_pd_falls_as_the_credit_score_rises(served: dict) -> None:
    """Holding the typical applicant fixed, PD falls with the credit score: clearly between the ends,
    and in rank order along the way (the boosted champion need not be monotone step by step)."""
    typical = _typical_applicant(served)
    grid = [450.0 + 50 * i for i in range(9)]
    pds = [_post(served, "/api/v1/score", typical | {"credit_score": v}).get_json()["pd"] for v in grid]
    assert pds[-1] < pds[0] / 2
    assert pl.DataFrame({"x": grid, "pd": pds}).select(pl.corr("x", "pd", method="spearman")).item() < -0.7


def test_pd_rises_step_by_step_from_a_clean_to_a_troubled_profile(served: dict) -> None:
    """Moving every delinquency, utilization and debt measure together from clean to troubled raises
    PD in rank order. (Days past due alone barely move the 2,000-customer test model: its champion
    learned little from the few customers past due.)"""
    typical = _typical_applicant(served)
    clean = {"max_days_past_due": 0, "latest_days_past_due": 0, "utilization": 0.05, "latest_utilization": 0.05}
    clean |= {"debt_to_income": 0.05, "latest_debt_to_income": 0.05, "credit_score": 800}
    troubled = {"max_days_past_due": 120, "latest_days_past_due": 120, "utilization": 1.0, "latest_utilization": 1.0}
    troubled |= {"debt_to_income": 2.5, "latest_debt_to_income": 2.5, "credit_score": 480}
    steps = [i / 8 for i in range(9)]
    pds = []
    for t in steps:
        profile = {k: round(clean[k] + t * (troubled[k] - clean[k]), 2) for k in clean}
        whole = {"max_days_past_due", "latest_days_past_due", "credit_score"}
        profile = {k: float(round(v)) if k in whole else v for k, v in profile.items()}
        pds.append(_post(served, "/api/v1/score", _profile(served, typical, **profile)).get_json()["pd"])
    assert pds[-1] > 2 * pds[0]
    assert pl.DataFrame({"t": steps, "pd": pds}).select(pl.corr("t", "pd", method="spearman")).item() > 0.8


# -- bad input ---------------------------------------------------------------------------------------------
def test_422_gives_one_message_per_bad_field(served: dict) -> None:
    answer = _post(
        served,
        "/api/v1/score",
        {"age": -3, "credit_score": "high", "housing": "castle", "annual_income": -5, "favourite_colour": "blue"},
    )
    assert answer.status_code == 422
    detail = answer.get_json()["detail"]
    assert sorted(d["field"] for d in detail) == ["age", "annual_income", "credit_score", "favourite_colour", "housing"]
    assert all(d["message"].endswith(".") and "\n" not in d["message"] for d in detail)
    messages = {d["field"]: d["message"] for d in detail}
    assert (
        "18" in messages["age"] and "'own'" in messages["housing"] and "Unknown field" in messages["favourite_colour"]
    )


def test_mart_columns_the_models_do_not_read_are_accepted_and_named(served: dict) -> None:
    typical = _typical_applicant(served)
    plain = _post(served, "/api/v1/score", typical).get_json()
    assert plain["ignored_fields"] == []
    extra = {"sex": "female", "application_id": "APP-17", "customer_id": "C-00017"}
    answer = _post(served, "/api/v1/score", typical | extra)
    assert answer.status_code == 200, answer.get_json()
    got = answer.get_json()
    assert sorted(got["ignored_fields"]) == sorted(extra)
    assert {k: v for k, v in got.items() if k != "ignored_fields"} == {
        k: v for k, v in plain.items() if k != "ignored_fields"
    }
    # A name that is no column of the mart is still refused, by name.
    unknown = _post(served, "/api/v1/score", typical | {"favourite_colour": "blue"})
    assert unknown.status_code == 422
    assert unknown.get_json()["detail"] == [
        {"field": "favourite_colour", "message": "Unknown field: this API does not read it."}
    ]


def test_categories_are_read_in_any_case(served: dict) -> None:
    """'OWN' and ' Own' are the mart's 'own'; a value the spec does not allow is still refused."""
    typical = _typical_applicant(served)
    assert "housing" in _inputs(served["fields"])
    expected = _post(served, "/api/v1/score", typical | {"housing": "own"}).get_json()
    for spelling in ("OWN", "Own", " own "):
        answer = _post(served, "/api/v1/score", typical | {"housing": spelling})
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json() == expected
    assert _post(served, "/api/v1/score", typical | {"housing": "owns"}).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"applicant_id": "A-1"},
        {"applicant_id": "A-1", "sex": "male", "customer_id": 17},
        {"credit_score": None, "age": None, "annual_income": None},
    ],
)
def test_an_applicant_without_any_model_input_is_refused(served: dict, body: dict) -> None:
    answer = _post(served, "/api/v1/score", body)
    assert answer.status_code == 422, answer.get_json()
    detail = answer.get_json()["detail"]
    assert len(detail) == 1 and detail[0]["field"] == "body"
    message = detail[0]["message"]
    assert "none of the fields the PD model reads" in message and message.endswith(".")
    assert message.count(". ") == 0 and "credit_score" in message


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("/api/v1/segment", {}, ["frequency", "monetary", "recency_days"]),
        (
            "/api/v1/segment",
            {"recency_days": -1, "frequency": 2.5, "monetary": "much"},
            ["frequency", "monetary", "recency_days"],
        ),
        ("/api/v1/segment", "{not json", ["body"]),
        ("/api/v1/segment", "[1, 2]", ["body"]),
        ("/api/v1/segment", '{"recency_days": NaN, "frequency": 1, "monetary": 1}', ["recency_days"]),
        ("/api/v1/score", '{"credit_score": Infinity}', ["credit_score"]),
        ("/api/v1/score", '{"age": 30.5}', ["age"]),
        # Within pydantic's tolerance for multiple_of=1, but not whole numbers as the schema says.
        ("/api/v1/score", '{"age": 30.0000000001}', ["age"]),
        ("/api/v1/segment", '{"recency_days": 1, "frequency": 4.7e-84, "monetary": 1}', ["frequency"]),
        ("/api/v1/score", "", ["body"]),
        ("/api/v1/score", '{"credit_score": 700, "sex": {"a": 1}}', ["sex"]),
    ],
)
def test_bad_bodies_are_422_with_the_fields_named(served: dict, path: str, body: object, fields: list[str]) -> None:
    answer = _post(served, path, body)
    assert answer.status_code == 422
    assert sorted(d["field"] for d in answer.get_json()["detail"]) == fields


def test_unknown_routes_methods_and_surprises_answer_json(served: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    client, headers = served["client"], {"X-API-Key": served["key"]}
    missing = client.get("/api/v1/no-such-thing", headers=headers)
    assert missing.status_code == 404 and missing.is_json and "openapi.json" in missing.get_json()["detail"]
    wrong_method = client.get("/api/v1/score", headers=headers)
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"
    too_big = _post(served, "/api/v1/score", {"applicant_id": "x" * (api.MAX_BODY_BYTES + 10)})
    assert too_big.status_code == 413 and too_big.is_json

    def broken(self):  # noqa: ANN001, ANN202
        raise RuntimeError("secret internals /etc/segrisk line 42")

    monkeypatch.setattr(api.ScoringService, "models", broken)
    answer = _post(served, "/api/v1/score", {})
    assert answer.status_code == 500 and answer.is_json
    text = answer.get_data(as_text=True)
    assert "secret" not in text and "Traceback" not in text and "<html" not in text.lower()
    assert answer.get_json()["detail"].endswith(".")


def test_a_missing_warehouse_is_a_503_sentence(full_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "gone.duckdb"
    shutil.copyfile(full_db, db)
    app = create_app(db, users={"admin": auth.User("admin", "admin", generate_password_hash("admin-pw"))})
    client = app.server.test_client()
    assert client.get("/api/v1/health").status_code == 200
    db.unlink()
    answer = client.get("/api/v1/health")
    assert answer.status_code == 503 and answer.is_json
    detail = answer.get_json()["detail"]
    assert "No warehouse" in detail and detail.count(". ") == 0


def test_a_swapped_warehouse_is_reloaded(served: dict) -> None:
    scoring = served["app"].server.extensions["segrisk_scoring"]
    served["client"].get("/api/v1/health")
    before = scoring.loads
    swapped = served["db"].with_name("swapped.duckdb")
    shutil.copyfile(served["db"], swapped)
    os.replace(swapped, served["db"])  # what a rebuild or retrain does
    assert served["client"].get("/api/v1/health").status_code == 200
    assert scoring.loads == before + 1
    served["client"].get("/api/v1/health")
    assert scoring.loads == before + 1


# -- any warehouse: no default outcome, text ids, coded categories --------------------------------------------
def test_without_a_default_outcome_score_gives_the_persona_alone(no_target: dict) -> None:
    """German Credit without its Risk column: no PD model can exist, so /score answers the persona with
    a note saying why (not 'run segrisk train risk', which would fail), and /persona gives it too."""
    rows = _sql(
        no_target["db"],
        "SELECT c.*, g.segment_key AS stored_persona FROM customers c JOIN ml_latest_segments g USING (customer_id) "
        "ORDER BY customer_id",
    )
    mart = _sql(no_target["db"], "SELECT * FROM customers LIMIT 0").columns
    assert rows.height == 200 and rows.get_column("customer_id")[0].startswith("C-")
    inputs = _inputs(no_target["fields"])
    assert inputs and {"sex", "housing", "customer_id"} <= set(mart) - inputs
    for row in rows.iter_rows(named=True):
        whole = {k: v for k, v in row.items() if k in mart}
        answer = _post(no_target, "/api/v1/score", whole | {"applicant_id": row["customer_id"]})
        assert answer.status_code == 200, answer.get_json()
        got = answer.get_json()
        assert got["persona"]["key"] == row["stored_persona"] and got["applicant_id"] == row["customer_id"]
        assert got["pd"] is None and got["score"] is None and got["grade"] is None and got["decision"] is None
        assert "no default outcome" in got["risk_note"] and "train risk" not in got["risk_note"]
        assert got["risk_run_id"] is None and got["segments_run_id"]
        assert got["ignored_fields"] == [c for c in mart if c not in inputs]
        persona = _post(no_target, "/api/v1/persona", whole).get_json()
        assert persona["persona"] == got["persona"] and persona["ignored_fields"] == got["ignored_fields"]
        assert persona["segments_run_id"] == got["segments_run_id"]
    refused = _post(no_target, "/api/v1/score", {"applicant_id": "C-1", "sex": "male", "housing": "own"})
    assert refused.status_code == 422
    assert "none of the fields the persona model reads" in refused.get_json()["detail"][0]["message"]
    assert _post(no_target, "/api/v1/persona", {}).status_code == 422
    health = no_target["client"].get("/api/v1/health").get_json()
    assert set(health["model_runs"]) == {"segments"}


def test_without_a_default_outcome_the_api_stays_documented(no_target: dict) -> None:
    doc = no_target["client"].get("/api/v1/openapi.json", headers={"X-API-Key": no_target["key"]}).get_json()
    _check_document(doc)
    seen = _fuzz_all(doc, no_target, frozenset({"POST /segment"}))
    assert seen["POST /segment positive"] == {503}


def test_a_persona_of_a_new_customer_where_there_is_also_a_pd_model(served: dict) -> None:
    typical = _typical_applicant(served)
    scored = _post(served, "/api/v1/score", typical).get_json()
    answer = _post(served, "/api/v1/persona", typical | {"applicant_id": "A-9"})
    assert answer.status_code == 200, answer.get_json()
    got = answer.get_json()
    assert got["persona"] == scored["persona"] and got["applicant_id"] == "A-9"
    with duckdb.connect(str(served["db"]), read_only=True) as con:
        features = con.execute("SELECT feature FROM ml_segment_model WHERE run_id = ?", [got["segments_run_id"]])
        persona_inputs = {feature for (feature,) in features.fetchall()}
    assert set(got["ignored_fields"]) == set(typical) - persona_inputs


def test_where_a_pd_model_could_exist_but_none_was_trained(full_db: Path, tmp_path: Path) -> None:
    """The data has a default outcome, so /score says to train the PD model; /persona answers."""
    db = tmp_path / "demo.duckdb"
    shutil.copyfile(full_db, db)
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM ml_model_artifacts WHERE artifact = 'risk_model'")
        row = con.sql("SELECT * FROM customers ORDER BY customer_id LIMIT 1").pl().row(0, named=True)
    untrained = _serve(db)
    answer = _post(untrained, "/api/v1/score", row)
    assert answer.status_code == 503 and "segrisk train risk" in answer.get_json()["detail"]
    persona = _post(untrained, "/api/v1/persona", row)
    assert persona.status_code == 200 and persona.get_json()["persona"]["key"].startswith("S")


def test_coded_categories_are_read_as_the_source_file_spells_them(taiwan: dict) -> None:
    """Taiwan's EDUCATION is 1..6 in the file; the spec maps 1-4 to names and any other code to
    'other'. The API reads the codes (as text or numbers), the names in any case, and scores each
    client as the warehouse scored them."""
    customers = load_spec("taiwan-default")[0].customers
    assert customers is not None
    codes = {name: code for code, name in (customers.column("education").mapping or {}).items()}
    inputs = _inputs(taiwan["fields"])
    assert "education" in inputs and "sex" not in inputs
    rows = _sql(
        taiwan["db"],
        "SELECT c.*, s.pd AS stored_pd FROM customers c JOIN ml_latest_risk_scores s USING (customer_id) "
        "ORDER BY customer_id LIMIT 60",
    )
    seen = set()
    for row in rows.iter_rows(named=True):
        body = _body(row, taiwan["fields"])
        mapped = _post(taiwan, "/api/v1/score", body).get_json()
        assert mapped["pd"] == pytest.approx(row["stored_pd"], abs=1e-9)
        education = row["education"]
        spellings = [education.upper(), education.title()]
        if education in codes:
            spellings += [codes[education], int(codes[education])]
        else:
            spellings += ["0", 5, "6"]  # the undocumented codes the spec counts as other
        seen.add(education)
        for spelling in spellings:
            answer = _post(taiwan, "/api/v1/score", body | {"education": spelling, "sex": "2"})
            assert answer.status_code == 200, (spelling, answer.get_json())
            got = answer.get_json()
            assert got["pd"] == mapped["pd"] and got["persona"] == mapped["persona"], spelling
            assert got["ignored_fields"] == ["sex"]
    assert len(seen) >= 3
    assert _post(taiwan, "/api/v1/score", {"education": True}).status_code == 422


# -- the OpenAPI document and fuzzing -------------------------------------------------------------------------
def test_openapi_document_is_valid_and_complete(served: dict) -> None:
    doc = served["client"].get("/api/v1/openapi.json", headers={"X-API-Key": served["key"]}).get_json()
    _check_document(doc)
    applicant = doc["components"]["schemas"]["Applicant"]
    with duckdb.connect(str(served["db"]), read_only=True) as con:
        _, scorer = read_artifact(con, "risk_model")
    assert set(scorer.features.columns) <= _inputs(served["fields"])
    assert "minimum" in json.dumps(applicant["properties"]["age"])
    # At least one of the PD model's inputs, not null: the schema says what /score refuses.
    assert {branch["required"][0] for branch in applicant["anyOf"]} == set(scorer.features.columns)


def _check_document(doc: dict) -> None:
    import jsonschema_rs

    assert doc["openapi"].startswith("3.1")
    assert {"/health", "/score", "/persona", "/segment", "/segments/summary", "/openapi.json"} <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    assert {"Applicant", "PersonaRequest", "ScoreResponse", "PersonaResponse", "SegmentRequest"} <= set(schemas)
    assert {"ValidationErrors", "Error"} <= set(schemas)
    for schema in schemas.values():
        jsonschema_rs.meta.validate(schema)
    assert doc["components"]["securitySchemes"]["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert schemas["Applicant"]["additionalProperties"] is False
    assert schemas["PersonaRequest"]["additionalProperties"] is False


def test_schemathesis_finds_no_server_errors(served: dict) -> None:
    """Positive and negative cases generated from the OpenAPI document, every operation, bounded."""
    doc = served["client"].get("/api/v1/openapi.json", headers={"X-API-Key": served["key"]}).get_json()
    seen = _fuzz_all(doc, served)
    assert 422 in seen["POST /score negative"] | seen["POST /segment negative"]


def _fuzz_all(doc: dict, served: dict, unavailable: frozenset[str] = frozenset()) -> dict[str, set[int]]:
    """Every operation of ``doc`` fuzzed; the status codes seen per operation and mode. The operations
    in ``unavailable`` (by label) may answer 503: their model is not in the warehouse."""
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_dict(doc)
    schema.app = served["app"].server
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        # Only a request body can be made invalid: the GET calls take no parameters.
        negative = (GenerationMode.NEGATIVE,) if operation.method.upper() == "POST" else ()
        for mode in (GenerationMode.POSITIVE, *negative):
            _fuzz(operation, mode, served, seen, operation.label in unavailable)()
    # A body the schema allows is answered; /segment has no clusters where there is no RFM run.
    assert seen["POST /score positive"] == {200} and seen["POST /persona positive"] == {200}
    return seen


def _fuzz(operation, mode, served: dict, seen: dict[str, set[int]], unavailable: bool):  # noqa: ANN001, ANN202
    """A bounded hypothesis test of one operation in one generation mode: no 500, answers as documented."""
    import schemathesis

    label = f"{operation.label} {mode.value}"

    @settings(max_examples=25, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case) -> None:  # noqa: ANN001
        response = case.call(headers={"X-API-Key": served["key"]})
        seen.setdefault(label, set()).add(response.status_code)
        assert response.status_code < 500 or (unavailable and response.status_code == 503), response.text
        # The key is sent on every case, so schemathesis' "generated auth was accepted" check does not apply;
        # nor its "no 5xx" one to a call whose model is missing (503 is its documented answer).
        excluded = [schemathesis.checks.ignored_auth] + (
            [schemathesis.checks.not_a_server_error] if unavailable else []
        )
        case.validate_response(response, excluded_checks=excluded)

    return check


_extreme = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -1.0, 1e-300, 1e300, -1e300, 1e12, -1e12]),
    st.integers(min_value=-(10**15), max_value=10**15),
)


@pytest.fixture(scope="module")
def scorer_and_policy(full_db: Path) -> tuple:
    with duckdb.connect(str(full_db), read_only=True) as con:
        _, scorer = read_artifact(con, "risk_model")
        policy = read_policy(con)
    return scorer, policy


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_score_applicant_survives_extreme_and_missing_values(scorer_and_policy: tuple, data: st.DataObject) -> None:
    scorer, policy = scorer_and_policy
    numeric = scorer.features.numeric_columns
    applicant = {c: data.draw(_extreme, label=c) for c in data.draw(st.lists(st.sampled_from(numeric), unique=True))}
    for column in scorer.features.categorical:
        applicant[column] = data.draw(st.one_of(st.none(), st.text(max_size=5), st.sampled_from(["own", "rent"])))
    result = scorer.score_applicant(applicant, policy)
    assert 0.0 <= result["pd"] <= 1.0 and not math.isnan(result["pd"])
    assert result["grade"] in GRADES and result["decision"] in ("approve", "review", "decline")
    assert all(result[f"reason_{i}"] is None or isinstance(result[f"reason_{i}"], str) for i in (1, 2, 3))


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_the_endpoint_answers_extreme_bodies_with_200_or_422(served: dict, data: st.DataObject) -> None:
    properties = sorted(served["fields"]["properties"])
    chosen = data.draw(st.lists(st.sampled_from(properties), unique=True, max_size=12))
    value = st.one_of(_extreme, st.text(max_size=4), st.booleans())
    body = "{" + ", ".join(f"{json.dumps(k)}: {_json_value(data.draw(value, label=k))}" for k in chosen) + "}"
    answer = _post(served, "/api/v1/score", body)
    assert answer.status_code in (200, 422), answer.get_data(as_text=True)
    if answer.status_code == 200:
        assert 0.0 <= answer.get_json()["pd"] <= 1.0
    else:
        assert {d["field"] for d in answer.get_json()["detail"]} <= set(chosen) | {"body"}


def _json_value(value: object) -> str:
    """JSON text of a value; NaN and infinities as Python's json writes them (the API must refuse them)."""
    return json.dumps(value)


def test_the_stored_persona_model_places_every_customer_in_their_segment(full_db: Path) -> None:
    """``ml_segment_model`` read back assigns each customer of the mart to the segment the run gave them."""
    from models.segments_store import load_persona_model

    with duckdb.connect(str(full_db), read_only=True) as con:
        run_id, model = load_persona_model(con)
        rows = con.sql(
            "SELECT c.*, g.segment_id FROM customers c JOIN ml_segments g USING (customer_id) WHERE g.run_id = $run",
            params={"run": run_id},
        ).pl()
    values = rows.select(pl.col(c).cast(pl.Float64) for c in model.columns).to_numpy()
    assert rows.height > 1000
    assert (model.assign(values) == rows.get_column("segment_id").to_numpy()).all()


def test_reason_sentences_for_one_applicant_read_as_the_table_writes_them() -> None:
    """The API's plain-Python reason sentence equals the Polars expression the scores table uses,
    rounding edges included."""
    import numpy as np

    from models.reasons import _sentence, _sentence_text

    rng = np.random.default_rng(3)
    n = 5_000
    edges = [0.5, 1.5, 2.5, 12.25, 12.35, 0.125, 0.005, 0.015, 99.995, 999.95, 999_950.0, 1234.5, -0.001, 0.0]
    values = np.concatenate([rng.lognormal(2, 4, n - len(edges)) * rng.choice([-1, 1], n - len(edges)), edges])
    frame = pl.DataFrame(
        {
            "value": [None if rng.random() < 0.05 else float(v) for v in values],
            "raises": rng.random(n) < 0.9,
            "category": [None if rng.random() < 0.2 else "little" for _ in range(n)],
            "kind": rng.choice(["category", "flag", "percent", "days", "amount", "number"], n),
            "label": ["Debt-to-income"] * n,
            "typical": [None if rng.random() < 0.1 else float(x) for x in rng.lognormal(2, 3, n)],
            "limit": [None if rng.random() < 0.6 else float(x) for x in rng.lognormal(0, 1, n)],
        },
        schema_overrides={"category": pl.String, "typical": pl.Float64, "limit": pl.Float64},
    ).with_columns(pl.when(pl.col("kind") == "category").then(None).otherwise(pl.col("value")).alias("value"))
    expected = frame.select(_sentence()).to_series().to_list()
    assert [_sentence_text(**row) for row in frame.iter_rows(named=True)] == expected


def test_the_real_server_answers_under_waitress(served: dict) -> None:
    """The production path: waitress on 127.0.0.1, an API key over HTTP, JSON errors from the server."""
    import threading

    import requests
    from waitress.server import create_server

    wsgi = create_server(served["app"].server, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=wsgi.run, daemon=True).start()
    base = f"http://127.0.0.1:{wsgi.effective_port}/api/v1"
    try:
        assert requests.get(f"{base}/health", timeout=10).json()["status"] == "ok"
        row = _sql(served["db"], "SELECT * FROM customers ORDER BY customer_id LIMIT 1").row(0, named=True)
        headers = {"X-API-Key": served["key"]}
        scored = requests.post(f"{base}/score", json=_body(row, served["fields"]), headers=headers, timeout=10)
        assert scored.status_code == 200 and 0 < scored.json()["pd"] < 1
        refused = requests.post(f"{base}/score", json={}, timeout=10)
        assert refused.status_code == 401 and refused.headers["Content-Type"] == "application/json"
        bad = requests.post(
            f"{base}/score", data="{", headers=headers | {"Content-Type": "application/json"}, timeout=10
        )
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "body"
    finally:
        wsgi.close()

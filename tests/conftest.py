"""Shared fixtures: small warehouses built in tmp_path from the fixture files or the synthetic bank."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from warehouse.build import BuildSummary, build_warehouse
from warehouse.spec import load_spec, parse_spec

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
#: The real public datasets sit beside the repository in CI; a user's clone may not have them.
SHARED_DATA = REPO.parent / "shared" / "data"

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason="../shared/data is absent (it exists in CI, not in a user's clone)"
)

Builder = Callable[..., BuildSummary]

#: Fixtures that train models on the demo bank (about a minute the first time in a session): a test
#: that needs one is ``slow``. Browser tests are ``browser``. ``-m "not slow and not browser"`` is the
#: fast subset to run while working; CI runs everything.
TRAINED_FIXTURES = frozenset({"risk_db", "full_db", "full_db_copy", "string_id_db"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        name = item.path.name
        if name.startswith("test_browser") or name == "test_sec_browser_signin.py":
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)
        elif TRAINED_FIXTURES & set(getattr(item, "fixturenames", ())) or _reads_shared_data(item):
            item.add_marker(pytest.mark.slow)


def _reads_shared_data(item: pytest.Item) -> bool:
    """Whether ``item`` is marked ``needs_shared_data`` (the full public datasets: slow to build)."""
    return any(mark.kwargs.get("reason") == needs_shared_data.kwargs["reason"] for mark in item.iter_markers("skipif"))


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def build(tmp_path: Path) -> Builder:
    """Build a warehouse from a built-in spec name or spec text; returns the build summary."""

    def _build(
        spec: str,
        data_dir: Path = FIXTURES,
        db_path: Path | None = None,
        *,
        spec_text: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> BuildSummary:
        if spec_text is not None:
            parsed, text = parse_spec(spec_text, f"{spec}.toml"), spec_text
        else:
            parsed, text = load_spec(spec)
        target = db_path or tmp_path / f"{parsed.name}.duckdb"
        return build_warehouse(parsed, text, data_dir, target, progress)

    return _build


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic bank (2,000 customers), generated once per test session."""
    from warehouse.synthetic import generate_bank

    folder = tmp_path_factory.mktemp("demo-data")
    generate_bank(2_000, 7, folder)
    return folder


@pytest.fixture(scope="session")
def demo_db(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo warehouse over the small synthetic bank, built once per test session."""
    spec, text = load_spec("demo")
    path = tmp_path_factory.mktemp("demo-db") / "demo.duckdb"
    build_warehouse(spec, text, demo_data, path)
    return path


@pytest.fixture(scope="session")
def risk_db(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo warehouse after segments, risk and warnings runs (seed 42), trained once per
    session. Copy it before changing it, or anything beside it."""
    import shutil

    from models.train import train_risk, train_segments, train_warnings

    path = tmp_path_factory.mktemp("risk-db") / "demo.duckdb"
    shutil.copyfile(demo_db, path)
    train_segments(path, seed=42)
    train_risk(path, seed=42)
    train_warnings(path)
    return path


@pytest.fixture(scope="session")
def full_db(risk_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo warehouse after every model run (``train all``: segments, RFM, risk, warnings,
    cross-sell, statistics), trained once per session. Copy it before changing it."""
    import shutil

    from models.train import train_cross_sell, train_rfm, train_statistics

    path = tmp_path_factory.mktemp("full-db") / "demo.duckdb"
    shutil.copyfile(risk_db, path)
    train_rfm(path, seed=42)
    train_cross_sell(path)
    train_statistics(path, seed=42)
    return path


@pytest.fixture
def full_db_copy(full_db: Path, tmp_path: Path) -> Path:
    """A copy of ``full_db`` for one test: pages create the app-state store beside the warehouse."""
    import shutil

    copy = tmp_path / "demo.duckdb"
    shutil.copyfile(full_db, copy)
    return copy


def dashboard_page(db: Path, module: str):  # noqa: ANN201 - the page module Dash imported
    """A page module of the dashboard over ``db``: Dash imports page modules itself, as
    ``pages.<name>``, once an app exists, and this points the app's reader at ``db``."""
    import sys

    from werkzeug.security import generate_password_hash

    from dashboard import auth
    from dashboard.app import create_app

    create_app(db, users={"admin": auth.User("admin", "admin", generate_password_hash("pw"))})
    return sys.modules[f"pages.{module}"]


@pytest.fixture(autouse=True)
def figures_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Figures the dashboard builds from plain dicts skip Plotly's validation for speed (ui.figure):
    in the tests every one is also built through a validating go.Figure, which raises on a property
    or value Plotly does not accept, and must give the same JSON."""
    import json

    import plotly.graph_objects as go

    from dashboard import ui

    unvalidated = ui.figure

    def validated(data: list[dict], layout: dict) -> go.Figure:
        figure = unvalidated(data, layout)
        checked = go.Figure(data=data, layout=layout)
        # The same figure once Plotly has checked it: no name it would expand (a named colour scale,
        # which plotly.js reads the other way round) or property it would drop or change.
        assert _plain(json.loads(figure.to_json())) == _plain(json.loads(checked.to_json()))
        return figure

    monkeypatch.setattr(ui, "figure", validated)


def _plain(value: object) -> object:
    """JSON of a figure without empty lists and objects (Plotly's check drops an empty ``shapes``),
    with typed arrays as their numbers (the check turns an integer array into floats)."""
    if isinstance(value, dict) and set(value) == {"dtype", "bdata"}:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).astype(float).tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v not in ([], {})}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


#: Real banks' ids are text: ``C-00017``, zero-padded and prefixed (issue 12).
STRING_ID_FORMAT = "C-{:05d}"


@pytest.fixture(scope="session")
def string_id_data(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small synthetic bank with every customer id written as text like ``C-00017``."""
    import polars as pl

    folder = tmp_path_factory.mktemp("string-id-data")
    for file in demo_data.glob("*.parquet"):
        frame = pl.read_parquet(file)
        if "customer_id" in frame.columns:
            frame = frame.with_columns(
                pl.col("customer_id").map_elements(STRING_ID_FORMAT.format, return_dtype=pl.String)
            )
        frame.write_parquet(folder / file.name)
    return folder


def string_id_spec_text() -> str:
    """The demo spec with ``customer_id`` declared as text in every source."""
    text = load_spec("demo")[1]
    declared = 'name = "customer_id"\ntype = "int"'
    assert text.count(declared) == 4
    return text.replace(declared, 'name = "customer_id"\ntype = "string"').replace(
        'name = "demo"', 'name = "demo-string-ids"'
    )


@pytest.fixture(scope="session")
def string_id_db(string_id_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse whose customer ids are text, after every model run (``train all``)."""
    from models.train import (
        train_cross_sell,
        train_rfm,
        train_risk,
        train_segments,
        train_statistics,
        train_warnings,
    )

    text = string_id_spec_text()
    path = tmp_path_factory.mktemp("string-id-db") / "bank.duckdb"
    build_warehouse(parse_spec(text, "demo-string-ids.toml"), text, string_id_data, path)
    train_segments(path, seed=42)
    train_rfm(path, seed=42)
    train_risk(path, seed=42)
    train_warnings(path)
    train_cross_sell(path)
    train_statistics(path, seed=42)
    return path

"""Every page on warehouses that lack parts of the demo's data: German Credit (no transactions,
no snapshots) and Online Retail (no default outcome, no product flags). Pages without their data
say so in a sentence; none shows a failed query or a browser console error."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import chromium, served, signed_in, visit_every_page
from conftest import FIXTURES

from dashboard.cli import main
from warehouse.build import build_warehouse
from warehouse.spec import load_spec


@pytest.mark.parametrize(
    ("spec_name", "says_absent"),
    [("german-credit", "RFM"), ("online-retail", "Risk & policy")],
)
def test_every_page_degrades_gracefully(
    spec_name: str, says_absent: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, text = load_spec(spec_name)
    db = tmp_path / f"{spec_name}.duckdb"
    build_warehouse(spec, text, FIXTURES, db)
    assert main(["train", "all", "--db", str(db)]) == 0
    capsys.readouterr()
    with served(db) as base_url, chromium() as browser, signed_in(browser, base_url) as page:
        failed, absent = visit_every_page(page, spec_name)
        errors = page.console.errors  # type: ignore[attr-defined]
    assert failed == []
    assert errors == []
    assert says_absent in absent

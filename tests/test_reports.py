"""Reports: the executive PDF and the Excel workbook, from the command line and the dashboard's Export
menu. Each test opens what was written (PDF text with pypdf, pages drawn to PNG with pdftoppm, the
workbook read back with openpyxl) and compares its figures with the warehouse's own."""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
from pathlib import Path

import dash
import openpyxl
import pytest
from conftest import dashboard_page
from dash_helpers import sql, triggered
from PIL import Image
from pypdf import PdfReader

from dashboard import auth, ui
from dashboard.cli import main
from dashboard.data import WarehouseReader
from dashboard.reports import ReportError, write_report
from warehouse.app_state import AppState

PASSWORD = "a long enough password"
#: The PDF's charts are drawn by kaleido in Chromium; without one those tests skip, except in CI.
HAS_CHROMIUM = any(shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome"))
needs_chromium = pytest.mark.skipif(
    not HAS_CHROMIUM and not os.environ.get("SEGRISK_REQUIRE_BROWSER"),
    reason="no Chromium: install Debian's chromium to draw the PDF report's charts",
)
SHEETS = ["summary", "personas", "grades", "policy", "alerts", "recommendations", "customers"]
GRADE_FILTER = ["D", "E"]


# -- fixtures: each report written once, from the command line --------------------------------------------
@pytest.fixture(scope="module")
def written(full_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The PDF and the workbook of the whole book, and the PDF and workbook filtered to grades D and E,
    each written by `segrisk report`."""
    folder = tmp_path_factory.mktemp("reports")
    files = {
        "pdf": folder / "report.pdf",
        "xlsx": folder / "report.xlsx",
        "pdf_filtered": folder / "report-de.pdf",
        "xlsx_filtered": folder / "report-de.xlsx",
    }
    for name, path in files.items():
        if path.suffix == ".pdf" and not HAS_CHROMIUM and not os.environ.get("SEGRISK_REQUIRE_BROWSER"):
            continue
        args = ["report", "--format", path.suffix[1:], "--out", str(path), "--db", str(full_db)]
        if name.endswith("_filtered"):
            args += ["--grade", ",".join(GRADE_FILTER)]
        assert main(args) == 0, name
    return files


def pdf_pages(path: Path) -> list[str]:
    return [page.extract_text() or "" for page in PdfReader(path).pages]


def page_with(pages: list[str], heading: str) -> str:
    found = [text for text in pages if heading in text]
    assert found, f"no page has '{heading}'"
    return found[0]


def row_after(text: str, first_cell: str, cells: int) -> list[str]:
    """The ``cells`` table cells that follow the cell ``first_cell`` (pypdf gives a table one cell a line)."""
    lines = [line.strip() for line in text.splitlines()]
    assert first_cell in lines, f"no cell '{first_cell}'"
    start = lines.index(first_cell) + 1
    return lines[start : start + cells]


def as_of(db: Path) -> str:
    return f"{sql(db, 'SELECT as_of_date FROM meta_builds').item():%d %B %Y}"


def filtered_count(db: Path, grades: list[str]) -> int:
    return int(sql(db, "SELECT count(*) FROM mart_customer_profile WHERE list_contains(?, grade)", [grades]).item())


# -- the PDF ----------------------------------------------------------------------------------------------
@needs_chromium
def test_the_pdf_figures_are_the_warehouses(written: dict[str, Path], full_db: Path) -> None:
    pages = pdf_pages(written["pdf"])
    summary = pages[0]
    customers = sql(full_db, "SELECT count(*) FROM customers").item()
    default_rate = sql(full_db, "SELECT avg(is_defaulted::INT) FROM customers").item()
    open_alerts = sql(full_db, "SELECT count(*) FROM ml_latest_alerts WHERE NOT is_acknowledged").item()
    personas = sql(full_db, "SELECT count(*) FROM ml_latest_segment_summary").item()
    assert f"Customers\n{customers:,}" in summary
    assert f"Default rate\n{ui.percent(default_rate)}" in summary
    assert f"Open alerts\n{open_alerts:,}" in summary
    assert f"Personas\n{personas}" in summary
    grades_page = page_with(pages, "Risk grades\n")
    grades = sql(
        full_db,
        "SELECT grade, count(*) AS n, avg(is_defaulted::INT) AS rate FROM mart_customer_profile "
        "WHERE grade <> 'unscored' GROUP BY ALL ORDER BY ALL",
    )
    for grade, n, rate in grades.rows():
        _scores, _pds, customers_cell, _share, _mean_pd, observed = row_after(grades_page, grade, 6)
        assert (customers_cell, observed) == (f"{n:,}", ui.percent(rate, 2)), grade
    model_page = page_with(pages, "Model quality\n")
    metrics = dict(
        sql(
            full_db,
            "SELECT metric, value FROM ml_risk_metrics WHERE role = 'champion' AND run_id = (SELECT run_id "
            "FROM ml_model_runs WHERE model_kind = 'risk' ORDER BY finished_at DESC LIMIT 1)",
        ).rows()
    )
    for label, metric, digits in (
        ("ROC AUC", "roc_auc", 3),
        ("Gini", "gini", 3),
        ("KS", "ks", 3),
        ("Brier", "brier", 4),
    ):
        assert f"{label}" in model_page and f"{metrics[metric]:.{digits}f}" in model_page, metric
    notes = page_with(pages, "Data notes\n")
    build_id = sql(full_db, "SELECT build_id FROM meta_builds").item()
    assert build_id in notes
    for source, rows_in, rejected in sql(full_db, "SELECT source, rows_in, rows_rejected FROM meta_row_counts").rows():
        row = row_after(notes, source, 3)
        assert (row[0], row[2]) == (f"{rows_in:,}", f"{rejected:,}"), source


@needs_chromium
def test_every_pdf_page_has_the_header_the_as_of_date_the_filters_and_its_number(
    written: dict[str, Path], full_db: Path
) -> None:
    for name, scope in (("pdf", "all customers"), ("pdf_filtered", f"Risk grade: {', '.join(GRADE_FILTER)}")):
        pages = pdf_pages(written[name])
        assert 9 <= len(pages) <= 16
        for number, text in enumerate(pages, start=1):
            assert "Executive risk report" in text
            assert f"Data as of {as_of(full_db)}" in text
            assert f"Filters: {scope}" in text, (name, number)
            assert f"Page {number} of {len(pages)}" in text


@needs_chromium
def test_a_filtered_pdf_counts_only_the_filtered_customers(written: dict[str, Path], full_db: Path) -> None:
    summary = pdf_pages(written["pdf_filtered"])[0]
    assert f"Customers\n{filtered_count(full_db, GRADE_FILTER):,}" in summary
    grades_page = page_with(pdf_pages(written["pdf_filtered"]), "Risk grades\n")
    listed = {line for line in grades_page.splitlines() if line in ("A", "B", "C", "D", "E")}
    assert listed == set(GRADE_FILTER)


@needs_chromium
def test_the_pdf_pages_render_to_png_images_that_are_not_blank(written: dict[str, Path], tmp_path: Path) -> None:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm is absent: install Debian's poppler-utils to draw the PDF's pages")
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(written["pdf"]), str(tmp_path / "page")], check=True)
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) == len(PdfReader(written["pdf"]).pages)
    inked = []
    for path in images:
        with Image.open(path) as image:
            grey = image.convert("L")
            dark = sum(grey.histogram()[:200])  # pixels clearly darker than the white page
            inked.append(dark / (grey.width * grey.height))
    assert all(share > 0.005 for share in inked), inked
    # The pages with charts carry far more ink than text alone would.
    assert max(inked) > 0.05


# -- the workbook -----------------------------------------------------------------------------------------
def test_the_workbook_has_every_sheet_with_frozen_headers_filters_and_widths(written: dict[str, Path]) -> None:
    book = openpyxl.load_workbook(written["xlsx"], read_only=False)
    assert book.sheetnames == SHEETS
    for sheet in book.worksheets:
        assert sheet.freeze_panes == "A2", sheet.title
        assert sheet.auto_filter.ref and sheet.auto_filter.ref.startswith("A1:"), sheet.title
        assert all(sheet.column_dimensions[letter].width > 5 for letter in ("A", "B")), sheet.title
        assert sheet.cell(1, 1).font.bold, sheet.title


def test_the_workbook_figures_are_the_warehouses_and_stored_as_numbers(written: dict[str, Path], full_db: Path) -> None:
    book = openpyxl.load_workbook(written["xlsx"])
    summary = {row[0].value: row[1] for row in book["summary"].iter_rows(min_row=2)}
    customers = sql(full_db, "SELECT count(*) FROM customers").item()
    assert summary["Customers"].value == customers and summary["Customers"].number_format == "#,##0"
    default_rate = summary["Default rate"]
    assert default_rate.value == pytest.approx(sql(full_db, "SELECT avg(is_defaulted::INT) FROM customers").item())
    assert "%" in default_rate.number_format
    loss = summary["Expected loss"]
    expected_loss = sql(
        full_db,
        "SELECT expected_loss_approved FROM ml_policy_evaluations WHERE persona_name = 'All customers' "
        "ORDER BY run_id DESC LIMIT 1",
    ).item()
    assert isinstance(loss.value, float) and loss.value == pytest.approx(expected_loss)
    assert loss.number_format.startswith("#,##0") and "EUR" in loss.number_format
    grades = {row[0].value: row for row in book["grades"].iter_rows(min_row=2)}
    expected = sql(full_db, "SELECT grade, count(*) FROM mart_customer_profile WHERE grade <> 'unscored' GROUP BY ALL")
    for grade, n in expected.rows():
        assert grades[grade][5].value == n
    rows = list(book["customers"].iter_rows(min_row=2))
    assert len(rows) == customers
    ids = [row[0].value for row in rows]
    assert ids == sorted(sql(full_db, "SELECT customer_id FROM customers").to_series().to_list())
    scored = next(row for row in rows if row[6].value is not None)
    assert isinstance(scored[0].value, int) and isinstance(scored[6].value, float) and "%" in scored[6].number_format
    assert isinstance(scored[7].value, (int, float)) and isinstance(scored[9].value, bool)
    alerts = sql(full_db, "SELECT count(*) FROM ml_latest_alerts WHERE NOT is_acknowledged").item()
    assert book["alerts"].max_row - 1 == alerts
    offers = sql(
        full_db,
        "SELECT count(*) FROM ml_recommendations WHERE run_id = (SELECT run_id FROM ml_model_runs "
        "WHERE model_kind = 'cross_sell' ORDER BY finished_at DESC LIMIT 1)",
    ).item()
    assert book["recommendations"].max_row - 1 == offers


def test_a_filtered_workbook_lists_the_filtered_customers_only(written: dict[str, Path], full_db: Path) -> None:
    book = openpyxl.load_workbook(written["xlsx_filtered"], read_only=True)
    customers = [row for row in book["customers"].iter_rows(min_row=2, values_only=True)]
    expected = filtered_count(full_db, GRADE_FILTER)
    assert len(customers) == expected < sql(full_db, "SELECT count(*) FROM customers").item()
    assert {row[5] for row in customers} == set(GRADE_FILTER)
    alerts = sql(
        full_db,
        "SELECT count(*) FROM ml_latest_alerts a JOIN mart_customer_profile p USING (customer_id) "
        "WHERE NOT a.is_acknowledged AND list_contains(?, p.grade)",
        [GRADE_FILTER],
    ).item()
    assert sum(1 for _ in book["alerts"].iter_rows(min_row=2)) == alerts
    summary = {row[0]: row[1] for row in book["summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["Filters"] == f"Risk grade: {', '.join(GRADE_FILTER)}" and summary["Customers"] == expected


def test_a_table_over_the_sheet_limit_continues_on_numbered_sheets(full_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "capped.xlsx"
    data = WarehouseReader(full_db)
    try:
        result = write_report(data, "xlsx", out, {}, max_rows=700)
    finally:
        data.close()
    customers = sql(full_db, "SELECT count(*) FROM customers").item()
    parts = [name for name in result.sheet_rows if name == "customers" or name.startswith("customers (")]
    assert parts == ["customers"] + [f"customers ({i})" for i in range(2, len(parts) + 1)]
    assert len(parts) == -(-customers // 700)
    book = openpyxl.load_workbook(out, read_only=True)
    assert [book[name].max_row - 1 for name in parts] == [result.sheet_rows[name] for name in parts]
    assert all(rows <= 700 for rows in result.sheet_rows.values())
    ids = [row[0] for name in parts for row in book[name].iter_rows(min_row=2, values_only=True)]
    assert len(ids) == customers == len(set(ids))
    assert all(book[name].cell(1, 1).value == "Customer" for name in parts)


# -- the command line -------------------------------------------------------------------------------------
@needs_chromium
def test_the_command_writes_both_formats(written: dict[str, Path], full_db: Path) -> None:
    from warehouse.app_state import AppState, state_path

    assert written["pdf"].read_bytes().startswith(b"%PDF-")
    assert written["xlsx"].read_bytes().startswith(b"PK")  # a zip, as every xlsx is
    assert not list(written["pdf"].parent.glob(".*.writing"))  # no partial file left behind
    # Exports from the command line are in the audit log, as the dashboard's are.
    logged = [
        entry.detail
        for entry in AppState(state_path(full_db)).audit_entries(action="export", limit=100)
        if "from the command line" in (entry.detail or "")
    ]
    assert any(str(written["xlsx"]) in detail and "Risk grade" not in detail for detail in logged)
    assert any(str(written["xlsx_filtered"]) in detail and "Risk grade: D, E" in detail for detail in logged)


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["--grade", "Z"], "Unknown risk grade 'Z': this warehouse has A, B, C, D, E"),
        (["--persona", "S1,S99"], "Unknown persona 'S99': this warehouse has S1"),
        (["--region", "Atlantis"], "Unknown region 'Atlantis'"),
    ],
)
def test_a_bad_filter_value_is_refused_in_one_sentence(
    args: list[str], sentence: str, full_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.xlsx"
    assert main(["report", "--format", "xlsx", "--out", str(out), "--db", str(full_db), *args]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: " + sentence) and "Traceback" not in error
    assert not out.exists()


def test_an_unwritable_path_is_refused_in_one_sentence(
    full_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for out, why in ((tmp_path / "missing" / "r.xlsx", "does not exist"), (tmp_path, "it is a folder")):
        assert main(["report", "--format", "xlsx", "--out", str(out), "--db", str(full_db)]) == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error == f"error: Cannot write the report to {out}: " + (
            f"the folder {out.parent} does not exist."
            if why == "does not exist"
            else "it is a folder; give a file name."
        )


@needs_chromium
def test_a_warehouse_without_models_gives_a_report_that_says_what_is_missing(demo_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "untrained.pdf"
    data = WarehouseReader(demo_db)
    try:
        result = write_report(data, "pdf", out, {})
    finally:
        data.close()
    text = " ".join(pdf_pages(out)).replace("\n", " ")
    assert result.pages == len(pdf_pages(out))
    customers = sql(demo_db, "SELECT count(*) FROM customers").item()
    assert f"Customers {customers:,}" in text
    for sentence in (
        "No personas in this warehouse",
        "No PD model in this warehouse",
        "No approval policy in this warehouse",
        "No early warnings in this warehouse",
        "Cross-sell has not run on this warehouse",
    ):
        assert sentence in text


# -- the dashboard's Export menu --------------------------------------------------------------------------
@needs_chromium
def test_the_dashboard_exports_with_the_filters_refuses_viewers_the_workbook_and_audits(full_db_copy: Path) -> None:
    dashboard_page(full_db_copy, "overview")
    from dashboard.reports import download

    server = dash.get_app().server
    access: AppState = server.extensions["segrisk_state"]
    viewer = access.set_user("vera", "viewer", password=PASSWORD)
    analyst = access.set_user("anna", "analyst", password=PASSWORD)
    chosen = {"grade": GRADE_FILTER}
    with server.test_request_context():
        auth.start_session(viewer)
        with triggered("export-xlsx", "n_clicks", 1):
            sent, message, shown = download.download(None, 1, chosen, "/risk")
        assert sent is dash.no_update and shown is True and "sees aggregates only" in message
        with triggered("export-pdf", "n_clicks", 1):
            sent, _message, shown = download.download(1, None, chosen, "/risk")
        assert shown is False and sent["filename"].endswith("-filtered.pdf")
        pages = [p.extract_text() for p in PdfReader(io.BytesIO(base64.b64decode(sent["content"]))).pages]
        assert all(f"Filters: Risk grade: {', '.join(GRADE_FILTER)}" in text for text in pages)
    with server.test_request_context():
        auth.start_session(analyst)
        with triggered("export-xlsx", "n_clicks", 1):
            sent, _message, shown = download.download(None, 1, chosen, "/")
        book = openpyxl.load_workbook(io.BytesIO(base64.b64decode(sent["content"])), read_only=True)
        assert book["customers"].max_row - 1 == filtered_count(full_db_copy, GRADE_FILTER)
    log = access.audit_entries(action="export")
    assert [(e.user, e.outcome) for e in log] == [("anna", "ok"), ("vera", "ok"), ("vera", "refused")]
    assert "Excel workbook; Risk grade: D, E; from page /" in log[0].detail and "customers" in log[0].detail
    assert "PDF report" in log[1].detail and "pages" in log[1].detail


def test_a_report_error_is_one_sentence(full_db: Path, tmp_path: Path) -> None:
    data = WarehouseReader(full_db)
    try:
        with pytest.raises(ReportError, match=r"^Unknown report format 'docx': choose pdf or xlsx\.$"):
            write_report(data, "docx", tmp_path / "r.docx", {})
    finally:
        data.close()


def test_filter_values_match_the_warehouses_whatever_their_case(full_db: Path) -> None:
    from dashboard.reports.content import normalise_filters

    data = WarehouseReader(full_db)
    try:
        chosen = normalise_filters(data, {"grade": ["d", "E", "e"], "persona": ["s1"]})
    finally:
        data.close()
    assert chosen["grade"] == ["D", "E"] and chosen["persona"] == ["S1"] and chosen["region"] == []

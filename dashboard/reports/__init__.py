"""Reports: the executive PDF and the Excel workbook, for one set of the dashboard's global filters.

``segrisk report`` and the dashboard's Export menu both call :func:`write_report`, so a file
exported from the dashboard and one from the command line hold the same figures. What a report
holds is gathered in ``content.py`` from the dashboard's named queries and page functions; ``pdf.py``
and ``xlsx.py`` lay it out; ``charts.py`` renders the Plotly figures in one warm Chromium.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse.errors import SegriskError

if TYPE_CHECKING:
    from dashboard.data import WarehouseReader

    from .charts import ChartRenderer

FORMATS = ("pdf", "xlsx")


class ReportError(SegriskError):
    """A report that cannot be made: a bad filter value, a warehouse without data, a path not writable."""


__all__ = ["FORMATS", "ReportError", "ReportResult", "write_report"]


@dataclass
class ReportResult:
    path: Path
    format: str
    scope: str  # the filters in words
    seconds: float
    pages: int | None = None  # PDF
    sheet_rows: dict[str, int] = field(default_factory=dict)  # workbook: data rows per sheet

    def describe(self) -> str:
        """One line for the command line: what was written, for whom, how long it took."""
        if self.format == "pdf":
            what = f"{self.pages} pages"
        else:
            customers = sum(rows for name, rows in self.sheet_rows.items() if name.startswith("customers"))
            what = f"{len(self.sheet_rows)} sheets, {customers:,} customer rows"
        return f"Wrote {self.path} ({what}; {self.scope}) in {self.seconds:.1f} s."


def check_writable(out: Path) -> None:
    """Refuse, in one sentence, a path the report cannot be written to, before any work is done."""
    folder = out.parent
    if out.is_dir():
        raise ReportError(f"Cannot write the report to {out}: it is a folder; give a file name.")
    if not folder.is_dir():
        raise ReportError(f"Cannot write the report to {out}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ReportError(f"Cannot write the report to {out}: permission denied.")


def write_report(
    data: WarehouseReader,
    format: str,  # noqa: A002 - the command's own word
    out: Path,
    filters: dict[str, list[str]] | None = None,
    *,
    renderer: ChartRenderer | None = None,
    max_rows: int | None = None,
) -> ReportResult:
    """Write the report of the warehouse ``data`` reads, under ``filters``, to ``out``.

    The file appears whole or not at all: it is written beside ``out`` and renamed over it. A PDF's
    charts are drawn in ``renderer`` (a browser of its own is started, and closed, when None).
    ``max_rows`` caps the data rows per sheet of a workbook (Excel's limit unless given)."""
    if format not in FORMATS:
        raise ReportError(f"Unknown report format '{format}': choose pdf or xlsx.")
    out = Path(out)
    check_writable(out)
    started = time.perf_counter()
    own_renderer = renderer is None and format == "pdf"
    if own_renderer:
        from .charts import ChartRenderer

        renderer = ChartRenderer()  # Chromium boots while the warehouse is read
    try:
        from .content import gather

        content = gather(data, filters, charts=format == "pdf")
        result = ReportResult(path=out, format=format, scope=content.scope, seconds=0.0)
        try:
            handle, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".writing", dir=out.parent)
        except OSError as exc:
            raise ReportError(f"Cannot write the report to {out}: {exc.strerror or exc}.") from exc
        os.close(handle)
        partial = Path(name)
        try:
            if format == "pdf":
                from .pdf import write_pdf

                result.pages = write_pdf(content, str(partial), renderer)
            else:
                from .xlsx import EXCEL_MAX_DATA_ROWS, write_xlsx

                result.sheet_rows = write_xlsx(content, data, partial, max_rows or EXCEL_MAX_DATA_ROWS)
            os.replace(partial, out)
        except OSError as exc:
            raise ReportError(f"Cannot write the report to {out}: {exc.strerror or exc}.") from exc
        finally:
            partial.unlink(missing_ok=True)
    finally:
        if own_renderer:
            renderer.close()
    result.seconds = time.perf_counter() - started
    return result

"""Benchmark: the executive PDF report and the Excel workbook of a trained warehouse.

Run (not part of the test suite) on a warehouse that `segrisk demo` or `train all` produced:

    .venv/bin/python tests/benchmarks/bench_report.py --db segrisk.duckdb [--repeat 3] [--grade D,E]

It times, each in a fresh process as a user runs it, `segrisk report --format pdf` and
`segrisk report --format xlsx` (wall-clock seconds from start to exit, including Python's imports
and Chromium's start, and peak memory); then, in one process with one Chromium kept warm as the
dashboard keeps it, the PDF --repeat times, splitting each into reading the warehouse, drawing
the charts and laying the pages out.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def command_line(db: Path, fmt: str, out: Path, extra: list[str]) -> tuple[float, float]:
    """Seconds and peak memory (GB) of `segrisk report` in a fresh process."""
    args = [sys.executable, "-m", "dashboard.cli", "report", "--format", fmt, "--out", str(out), "--db", str(db)]
    started = time.perf_counter()
    done = subprocess.run(args + extra, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"segrisk report failed: {done.stderr.strip()}")
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6


def warm(db: Path, out: Path, repeat: int, chosen: dict) -> list[dict[str, float]]:
    """The PDF ``repeat`` times in this process, with one Chromium for all of them."""
    from dashboard.data import WarehouseReader
    from dashboard.reports.charts import ChartRenderer
    from dashboard.reports.content import gather
    from dashboard.reports.pdf import Charts, write_pdf

    timings = []
    with ChartRenderer() as renderer:
        renderer.png({"data": [], "layout": {}}, 10, 10)  # wait for the browser: the dashboard's is already up
        data = WarehouseReader(db)
        for _ in range(repeat):
            started = time.perf_counter()
            content = gather(data, chosen)
            read = time.perf_counter()
            charts = Charts(content, renderer)
            drawn = time.perf_counter()
            pages = write_pdf(content, str(out), renderer, charts)
            laid_out = time.perf_counter()
            timings.append(
                {
                    "read": read - started,
                    "charts": drawn - read,
                    "layout": laid_out - drawn,
                    "total": laid_out - started,
                    "pages": pages,
                    "charts_count": len(content.figures),
                }
            )
        data.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, type=Path, help="a trained warehouse")
    parser.add_argument("--repeat", type=int, default=3, help="warm PDF runs (default 3)")
    for key in ("persona", "age", "grade", "product", "region"):
        parser.add_argument(f"--{key}", help="a global filter, as for `segrisk report`")
    args = parser.parse_args()
    chosen = {k: v.split(",") for k in ("persona", "age", "grade", "product", "region") if (v := getattr(args, k))}
    extra = [item for k, v in chosen.items() for item in (f"--{k}", ",".join(v))]
    customers = _customers(args.db)
    print(f"warehouse {args.db}: {customers:,} customers; filters: {chosen or 'none'}")
    with tempfile.TemporaryDirectory() as folder:
        for fmt in ("pdf", "xlsx"):
            seconds, peak = command_line(args.db, fmt, Path(folder) / f"report.{fmt}", extra)
            size = (Path(folder) / f"report.{fmt}").stat().st_size / 1e6
            print(f"segrisk report --format {fmt}: {seconds:.1f} s (fresh process), {size:.1f} MB, peak {peak:.2f} GB")
        timings = warm(args.db, Path(folder) / "warm.pdf", args.repeat, chosen)
    for i, t in enumerate(timings, start=1):
        print(
            f"warm PDF run {i}: {t['total']:.2f} s ({t['pages']} pages, {t['charts_count']} charts): read "
            f"{t['read']:.2f} s, charts {t['charts']:.2f} s, layout {t['layout']:.2f} s"
        )
    print(f"warm PDF median: {statistics.median(t['total'] for t in timings):.2f} s")


def _customers(db: Path) -> int:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM customers").fetchall()[0][0])


if __name__ == "__main__":
    main()

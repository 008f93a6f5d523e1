"""Benchmark: a bank's customer file as CSV text, read plainly, with declared cleaning, and through a source query.

Run (not part of the test suite):

    .venv/bin/python tests/benchmarks/bench_ingest.py --customers 1000000

It writes the synthetic bank's customers (``segrisk generate``, cached under --work) as one CSV
file whose incomes and balances carry thousands separators and a currency sign (``"$52,000.00"``),
as exports often do, then builds a customers-only warehouse from it three ways, each in a fresh
process: ``plain`` (the amounts read as text columns, no cleaning), ``cleaning`` (``remove`` and
``scale`` turn them into numbers, monthly income to annual) and ``query`` (the same file as the
one table of a read-only source query). It prints seconds, rows per second and peak memory of
each build. ``--only plain`` runs one of them (``plain`` also runs on an older checkout, for a
before/after of the text reader).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

COLUMNS = """
[[customers.columns]]
name = "customer_id"
type = "int"
role = "id"
description = "Customer number."

[[customers.columns]]
name = "age"
type = "int"
role = "numeric"
min = 18
max = 110
description = "Age in years."

[[customers.columns]]
name = "region"
type = "string"
role = "categorical"
description = "Region."

[[customers.columns]]
name = "credit_score"
type = "int"
role = "numeric"
description = "Credit score."
"""

AMOUNTS_AS_TEXT = """
[[customers.columns]]
name = "income_text"
source = "monthly_income"
type = "string"
role = "attribute"
description = "Monthly income as written."

[[customers.columns]]
name = "savings_text"
source = "savings_balance"
type = "string"
role = "attribute"
description = "Savings balance as written."
"""

AMOUNTS_CLEANED = """
[[customers.columns]]
name = "annual_income"
source = "monthly_income"
type = "float"
role = "amount"
measure = "income"
remove = ["$", ","]
scale = 12
min = 0
description = "Annual income: the file's monthly income times 12."

[[customers.columns]]
name = "savings_balance"
type = "float"
role = "amount"
measure = "savings"
remove = ["$", ","]
min = 0
description = "Savings balance."
"""

SPECS = {
    "plain": 'name = "plain"\n[customers]\nfiles = ["customers.csv"]\n' + COLUMNS + AMOUNTS_AS_TEXT,
    "cleaning": 'name = "cleaning"\n[customers]\nfiles = ["customers.csv"]\n' + COLUMNS + AMOUNTS_CLEANED,
    "query": 'name = "query"\n[customers]\ntables = { c = "customers.csv" }\n'
    'query = "SELECT * FROM c ORDER BY customer_id::BIGINT"\n' + COLUMNS + AMOUNTS_CLEANED,
}

WRITE_CSV = """
import sys
from pathlib import Path
import polars as pl
from warehouse.synthetic import generate_bank
size, folder = int(sys.argv[1]), Path(sys.argv[2])
bank = folder / "bank"
if not (bank / "customers.parquet").exists():
    generate_bank(size, 42, bank)
money = lambda c: pl.format("${}", pl.col(c).round(2).cast(pl.String)).str.replace(r"(\\d)(\\d{3})\\.", "$1,$2.")
frame = pl.read_parquet(bank / "customers.parquet").select(
    "customer_id", "age", "region", "credit_score",
    money("annual_income").alias("monthly_income"), money("savings_balance").alias("savings_balance"),
)
frame.write_csv(folder / "customers.csv")
print("{}")
"""

BUILD = """
import json, resource, sys, time
from pathlib import Path
from warehouse.build import build_warehouse
from warehouse.spec import parse_spec
text = Path(sys.argv[1]).read_text()
started = time.perf_counter()
summary = build_warehouse(parse_spec(text, "bench.toml"), text, Path(sys.argv[2]), Path(sys.argv[3]))
print(json.dumps({"seconds": time.perf_counter() - started, "rows_in": sum(s.rows_in for s in summary.sources),
                  "rejected": sum(s.rows_rejected for s in summary.sources),
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def _child(code: str, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=Path.cwd(), check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"benchmark phase failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/segrisk-bench-ingest"))
    parser.add_argument("--only", choices=sorted(SPECS), action="append")
    args = parser.parse_args()
    folder = args.work / str(args.customers)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "customers.csv").exists():
        _child(WRITE_CSV, str(args.customers), str(folder))
    size_mb = (folder / "customers.csv").stat().st_size / 1e6
    print(f"customers.csv: {args.customers:,} rows, {size_mb:,.0f} MB")
    for name in args.only or list(SPECS):
        spec = folder / f"{name}.toml"
        spec.write_text(SPECS[name])
        db = folder / f"{name}.duckdb"
        result = _child(BUILD, str(spec), str(folder), str(db))
        print(
            f"  {name:<9} {result['seconds']:6.1f} s  {result['rows_in'] / result['seconds']:>10,.0f} rows/s  "
            f"peak {result['peak_rss_gb']:.2f} GB  rejected {result['rejected']:,}"
        )


if __name__ == "__main__":
    main()

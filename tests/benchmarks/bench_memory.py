"""Benchmark: peak memory of reading very large CSV files, a sparse one and a real one.

Run (not part of the test suite; needs about twice --real-mb of free disk in --work):

    .venv/bin/python tests/benchmarks/bench_memory.py [--sparse-mb 2048] [--real-mb 2048] [--build] [--keep]

Each case runs in a fresh process under ``/usr/bin/time -v`` and prints its exit status, its
one-sentence answer, wall seconds and the maximum resident set size:

* ``sparse``: the German credit CSV (``../shared/data`` or the test fixture) extended with
  ``truncate`` to --sparse-mb (its real rows, then a hole of NUL bytes that costs no disk, as a
  file cut short and padded looks), built with ``segrisk build --spec german-credit``: it must
  stop with the NUL sentence, at a bounded peak.
* ``limit``: the same file with ``SEGRISK_MAX_INPUT_MB`` set below its size: it stops before
  reading a byte.
* ``read``: a real CSV of --real-mb (German credit rows repeated, each with its own id) read
  through the source reader inside a build's spill folder (the text reader alone: the frame it
  gives scans the spill file), then the rows counted.
* ``build`` (with --build): the whole ``segrisk build`` of that real file, which holds the
  customers in memory for the mart (minutes at 2 GB on two cores).

The generated files are deleted afterwards unless --keep is given. Before the streaming reader,
the sparse 2 GB case took 22.5 GB and was killed by the kernel's out-of-memory killer.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[2]
GERMAN = Path("german_credit") / "german_credit_data_with_risk.csv"
SEGRISK = Path(sys.executable).with_name("segrisk")

READ = """
import sys
from pathlib import Path
from warehouse.sources import resolve_files, row_count, scan_file, spill_area
from warehouse.spec import load_spec
spec, _ = load_spec("german-credit")
data = Path(sys.argv[1])
with spill_area(data / "bench.duckdb"):
    file = resolve_files("customers", spec.customers, data)[0]
    frame = scan_file("customers", file, spec.customers)
    print(f"read {row_count(frame):,} rows")
"""


def _german_source() -> Path:
    for folder in (REPO.parent / "shared" / "data", REPO / "tests" / "fixtures"):
        candidate = folder / GERMAN if (folder / GERMAN).exists() else folder / GERMAN.name
        if candidate.exists():
            return candidate
    raise SystemExit("German credit CSV not found in ../shared/data or tests/fixtures.")


def _write_real(path: Path, megabytes: int) -> int:
    """German credit rows repeated, renumbered so every applicant id is unique, up to ``megabytes``."""
    rows = pl.read_csv(_german_source(), infer_schema=False)
    target = megabytes * 1_000_000
    repeats = max(1, min(1000, target // _german_source().stat().st_size))
    block = pl.concat([rows] * repeats)  # up to a million rows per write
    written = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        first = True
        while handle.tell() < target:
            ids = pl.int_range(written, written + block.height, eager=True).cast(pl.String)
            block.with_columns(ids.alias(rows.columns[0])).write_csv(handle, include_header=first)
            written += block.height
            first = False
    return written


def _timed(command: list[str], env: dict[str, str] | None = None) -> dict[str, str]:
    """Run ``command`` under ``/usr/bin/time -v``: exit status, last line of output, seconds, peak RSS."""
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-v", *command],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        check=False,
    )
    seconds = time.perf_counter() - started
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    status = re.search(r"Exit status: (\d+)", result.stderr)
    output = result.stdout + result.stderr.split("\tCommand being timed:")[0]
    said = [line for line in output.splitlines() if line.strip() and not line.startswith("Command exited with")]
    return {
        "status": status.group(1) if status else "?",
        "said": said[-1] if said else "",
        "seconds": f"{seconds:.1f}",
        "peak_mb": f"{int(peak.group(1)) / 1024:,.0f}" if peak else "?",
    }


def _report(name: str, size_mb: float, figures: dict[str, str]) -> None:
    print(
        f"{name:<7} {size_mb:>8,.0f} MB  exit {figures['status']:>3}  {figures['seconds']:>7} s  "
        f"peak {figures['peak_mb']:>7} MB  {figures['said'][:150]}"
    )


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".building-" in p.name or ".reading-" in p.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparse-mb", type=int, default=2048)
    parser.add_argument("--real-mb", type=int, default=2048)
    parser.add_argument("--build", action="store_true", help="also run the whole build of the real file")
    parser.add_argument("--work", type=Path, default=Path("/tmp/segrisk-bench-memory"))
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--skip-read", action="store_true", help="skip reading the real file alone (slow)")
    args = parser.parse_args()
    if not Path("/usr/bin/time").exists():
        raise SystemExit("/usr/bin/time is needed (Debian package time).")
    sparse, real = args.work / "sparse", args.work / "real"
    try:
        sparse_file = sparse / GERMAN
        sparse_file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_german_source(), sparse_file)
        os.truncate(sparse_file, args.sparse_mb * 1_048_576)
        size = sparse_file.stat().st_size / 1e6
        build = [str(SEGRISK), "build", "--spec", "german-credit", "--data-dir"]
        _report("sparse", size, _timed([*build, str(sparse), "--db", str(sparse / "w.duckdb")]))
        # The same file with the memory projection waved through: the streaming reader meets its NUL bytes.
        room = {"SEGRISK_BUILD_MEMORY_MB": "1000000"}
        _report("sparse+", size, _timed([*build, str(sparse), "--db", str(sparse / "w.duckdb")], room))
        limit = {"SEGRISK_MAX_INPUT_MB": str(max(int(size) // 2, 1))}
        _report("limit", size, _timed([*build, str(sparse), "--db", str(sparse / "w.duckdb")], limit))
        print(f"        left beside the warehouse: {_leftovers(sparse) or 'nothing'}")
        if args.real_mb:
            started = time.perf_counter()
            rows = _write_real(real / GERMAN, args.real_mb)
            size = (real / GERMAN).stat().st_size / 1e6
            print(f"real file: {rows:,} rows, {size:,.0f} MB, written in {time.perf_counter() - started:.0f} s")
            if not args.skip_read:
                _report("read", size, _timed([sys.executable, "-c", READ, str(real)]))
            if args.build:
                _report("build", size, _timed([*build, str(real), "--db", str(real / "w.duckdb")]))
            print(f"        left beside the warehouse: {_leftovers(real) or 'nothing'}")
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()

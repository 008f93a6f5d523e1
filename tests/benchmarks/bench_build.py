"""Benchmark: generate + build the warehouse at bank scale, and RFM against pandas.

Run (not part of the test suite):

    .venv/bin/python tests/benchmarks/bench_build.py --customers 100000 1000000

For each size it generates the synthetic bank (once, cached under --work), then builds the
demo warehouse in a fresh process, and prints seconds, rows per second and peak memory of
each phase. Then it times the RFM step (Polars, as the build runs it) beside a plain pandas
groupby with lambdas as the notebooks in this field write it, checks the two agree, and
prints the ratio. Each phase runs in its own process so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _child(code: str, *args: str) -> dict:
    """Run a phase in a fresh interpreter; it reports its own seconds and peak RSS as JSON."""
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, check=False)
    if result.returncode != 0:
        raise SystemExit(f"benchmark phase failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


GENERATE = """
import json, resource, sys, time
from pathlib import Path
from warehouse.synthetic import generate_bank
started = time.perf_counter()
summary = generate_bank(int(sys.argv[1]), 42, Path(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - started, "rows": summary["row_counts"],
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""

BUILD = """
import json, resource, sys, time
from pathlib import Path
from warehouse.build import build_warehouse
from warehouse.spec import load_spec
spec, text = load_spec("demo")
started = time.perf_counter()
summary = build_warehouse(spec, text, Path(sys.argv[1]), Path(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - started, "steps": summary.steps,
                  "rows_in": sum(s.rows_in for s in summary.sources),
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""

RFM_POLARS = """
import json, resource, sys, time
from datetime import timedelta
import polars as pl
from warehouse.features import transaction_features
frame = pl.read_parquet(sys.argv[1], columns=["customer_id", "occurred_at", "amount"])
as_of = frame.get_column("occurred_at").max().date() + timedelta(days=1)
started = time.perf_counter()
rfm = transaction_features(frame.lazy(), as_of, has_invoice=False).collect()
seconds = time.perf_counter() - started
rfm.select("customer_id", "rfm_recency_days", "rfm_frequency", "rfm_monetary").sort("customer_id").write_parquet(sys.argv[2])
print(json.dumps({"seconds": seconds, "customers": rfm.height,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""

# The way the seed notebooks compute RFM: pandas groupby with a lambda per column.
RFM_PANDAS = """
import json, resource, sys, time
import pandas as pd
df = pd.read_parquet(sys.argv[1], columns=["customer_id", "occurred_at", "amount"])
snapshot = df["occurred_at"].max().normalize() + pd.Timedelta(days=1)
started = time.perf_counter()
rfm = df.groupby("customer_id").agg({
    "occurred_at": lambda x: (snapshot - x.max().normalize()).days,
    "customer_id": lambda x: len(x),
    "amount": lambda x: x.sum(),
})
seconds = time.perf_counter() - started
rfm.columns = ["rfm_recency_days", "rfm_frequency", "rfm_monetary"]
rfm.reset_index().to_parquet(sys.argv[2])
print(json.dumps({"seconds": seconds, "customers": len(rfm),
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


TRAIN = """
import json, resource, shutil, sys, time
from pathlib import Path
from models.train import train_rfm, train_segments
db = Path(sys.argv[2])
shutil.copyfile(sys.argv[1], db)
started = time.perf_counter()
run = train_segments(db) if sys.argv[3] == "segments" else train_rfm(db)
print(json.dumps({"seconds": time.perf_counter() - started, "k": run.metrics.get("k"),
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""

# The seed notebooks' way: KMeans(n_init=10) on every customer for each k, silhouette over all points.
NAIVE_SEGMENTS = """
import json, sys, time
import duckdb, numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from models.segments import choose_features, feature_matrix, preprocessing
con = duckdb.connect(sys.argv[1], read_only=True)
customers = con.sql("SELECT * FROM customers").pl()
choice = choose_features(customers, con.sql("SELECT * FROM meta_columns").pl())
scaled = preprocessing(choice).fit_transform(feature_matrix(customers, choice.columns))
started = time.perf_counter()
labels = KMeans(n_clusters=4, n_init=10, random_state=0).fit(scaled).labels_
kmeans_seconds = time.perf_counter() - started
timings = {}
for size in (5_000, 10_000, 20_000):
    rows = np.random.default_rng(0).choice(len(scaled), size=size, replace=False)
    started = time.perf_counter()
    silhouette_score(scaled[rows], labels[rows])
    timings[size] = time.perf_counter() - started
# silhouette is quadratic in the number of points: extrapolate from the largest measured sample
full_silhouette = timings[20_000] * (len(scaled) / 20_000) ** 2
print(json.dumps({"kmeans_per_k": kmeans_seconds, "silhouette_samples": timings,
                  "silhouette_full_extrapolated": full_silhouette,
                  "total_2_to_8": 7 * (kmeans_seconds + full_silhouette)}))
"""


def _agree(polars_path: Path, pandas_path: Path) -> bool:
    import polars as pl

    ours = pl.read_parquet(polars_path).sort("customer_id")
    theirs = pl.read_parquet(pandas_path).sort("customer_id").select(ours.columns)
    same_counts = ours.select("customer_id", "rfm_recency_days", "rfm_frequency").equals(
        theirs.select("customer_id", "rfm_recency_days", "rfm_frequency").cast(
            ours.select("customer_id", "rfm_recency_days", "rfm_frequency").schema
        )
    )
    money = (ours.get_column("rfm_monetary") - theirs.get_column("rfm_monetary")).abs().max()
    return bool(same_counts and money is not None and money < 1e-6)


def bench(customers: int, work: Path, skip_pandas: bool) -> None:
    data = work / f"bank-{customers}"
    print(f"\n== {customers:,} customers ==", flush=True)
    if not (data / "generation.json").exists():
        gen = _child(GENERATE, str(customers), str(data))
        rows = sum(gen["rows"].values())
        print(
            f"generate: {gen['seconds']:.1f} s, {rows / gen['seconds']:,.0f} rows/s, peak {gen['peak_rss_gb']:.2f} GB"
        )
    summary = json.loads((data / "generation.json").read_text())
    transactions = summary["row_counts"]["transactions.parquet"]
    snapshots = summary["row_counts"]["monthly_snapshots.parquet"]
    print(f"data: {transactions:,} transactions, {snapshots:,} snapshots")

    db = work / f"bench-{customers}.duckdb"
    built = _child(BUILD, str(data), str(db))
    rows_in = built["rows_in"]
    print(
        f"build: {built['seconds']:.1f} s, {rows_in / built['seconds']:,.0f} rows/s, "
        f"peak {built['peak_rss_gb']:.2f} GB, file {db.stat().st_size / 1e9:.2f} GB"
    )
    for step, seconds in built["steps"]:
        print(f"    {step:<40} {seconds:6.1f} s")

    for model in ("segments", "rfm"):
        trained = _child(TRAIN, str(db), str(work / f"train-{customers}.duckdb"), model)
        extra = f", k = {trained['k']}" if trained.get("k") else ""
        print(
            f"train {model}: {trained['seconds']:.1f} s (read, fit, write back), peak {trained['peak_rss_gb']:.2f} GB{extra}"
        )
    if not skip_pandas:
        naive = _child(NAIVE_SEGMENTS, str(db))
        print(
            f"naive segments (KMeans n_init=10 on all rows per k, full silhouette): "
            f"{naive['kmeans_per_k']:.1f} s KMeans per k; silhouette "
            + ", ".join(f"{int(n):,} pts {t:.2f} s" for n, t in naive["silhouette_samples"].items())
            + f"; full silhouette extrapolated {naive['silhouette_full_extrapolated']:,.0f} s per k; "
            f"k = 2..8 about {naive['total_2_to_8']:,.0f} s"
        )

    tx = data / "transactions.parquet"
    ours = _child(RFM_POLARS, str(tx), str(work / "rfm-polars.parquet"))
    print(f"rfm polars (as the build runs it): {ours['seconds']:.2f} s for {ours['customers']:,} customers")
    if skip_pandas:
        return
    theirs = _child(RFM_PANDAS, str(tx), str(work / "rfm-pandas.parquet"))
    agree = _agree(work / "rfm-polars.parquet", work / "rfm-pandas.parquet")
    print(
        f"rfm pandas groupby+lambdas: {theirs['seconds']:.2f} s -> Polars is {theirs['seconds'] / ours['seconds']:.0f}x faster; "
        f"results identical: {agree}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/segrisk-bench"))
    parser.add_argument("--skip-pandas", action="store_true", help="skip the slow pandas comparison")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for customers in args.customers:
        bench(customers, args.work, args.skip_pandas)


if __name__ == "__main__":
    main()

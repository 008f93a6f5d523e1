"""Benchmark: credit risk at bank scale — train risk, warnings, cross-sell and statistics; policy
evaluation latency; single-applicant scoring latency.

Run (not part of the test suite):

    .venv/bin/python tests/benchmarks/bench_risk.py --customers 100000 1000000

For each size it generates the synthetic bank (cached under --work, shared with
bench_build.py), builds the demo warehouse, trains the personas, then times each credit-risk
step in a fresh process (seconds and peak memory). Then it loads the scored population once and
evaluates 200 policies with random cut-offs and rule toggles, as the dashboard's simulator
does on every slider move, and scores 200 single applicants from the stored model, as the
scoring API does; it prints the median, 95th percentile and worst latency of each.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_build import BUILD, GENERATE, _child  # noqa: E402

STEP = """
import json, resource, sys, time
from pathlib import Path
from models import train
db = Path(sys.argv[1])
step = sys.argv[2]
started = time.perf_counter()
run = {"segments": train.train_segments, "risk": train.train_risk, "warnings": train.train_warnings,
       "cross-sell": train.train_cross_sell, "statistics": train.train_statistics}[step](db)
print(json.dumps({"seconds": time.perf_counter() - started, "metrics": run.metrics,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}, default=str))
"""

POLICY = """
import json, resource, sys, time
import numpy as np
from pathlib import Path
from models.policy_actions import load_population
started = time.perf_counter()
policy, population = load_population(Path(sys.argv[1]))
load_seconds = time.perf_counter() - started
rng = np.random.default_rng(0)
timings = []
population.evaluate(policy)  # the first call computes each rule's mask once; the simulator keeps them
for _ in range(200):
    decline = float(rng.uniform(480, 560))
    changed = policy.model_copy(update={
        "decline_below_score": decline,
        "approve_min_score": decline + float(rng.uniform(0, 60)),
        "review_flagged_personas": bool(rng.integers(2)),
        "rules": [r.model_copy(update={"enabled": bool(rng.integers(2))}) for r in policy.rules],
    })
    started = time.perf_counter()
    outcome = population.evaluate(changed)
    timings.append((time.perf_counter() - started) * 1000)
print(json.dumps({"load_seconds": load_seconds, "customers": len(population.score),
                  "median_ms": float(np.median(timings)), "p95_ms": float(np.percentile(timings, 95)),
                  "max_ms": float(np.max(timings)),
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""

APPLICANT = """
import json, sys, time
import duckdb, numpy as np
from models.risk_store import read_artifact, read_policy
con = duckdb.connect(sys.argv[1], read_only=True)
started = time.perf_counter()
_, scorer = read_artifact(con, "risk_model")
policy = read_policy(con)
load_seconds = time.perf_counter() - started
applicants = con.sql("SELECT * FROM customers USING SAMPLE 201 ROWS (reservoir, 7)").pl().to_dicts()
scorer.score_applicant(applicants[0], policy)  # warm-up: first call imports and compiles
timings = []
for applicant in applicants[1:]:
    started = time.perf_counter()
    scorer.score_applicant(applicant, policy)
    timings.append((time.perf_counter() - started) * 1000)
print(json.dumps({"load_seconds": load_seconds, "median_ms": float(np.median(timings)),
                  "p95_ms": float(np.percentile(timings, 95)), "max_ms": float(np.max(timings))}))
"""


def bench(customers: int, work: Path) -> None:
    data = work / f"bank-{customers}"
    print(f"\n== {customers:,} customers ==", flush=True)
    if not (data / "generation.json").exists():
        gen = _child(GENERATE, str(customers), str(data))
        print(f"generate: {gen['seconds']:.1f} s", flush=True)
    db = work / f"risk-{customers}.duckdb"
    built = _child(BUILD, str(data), str(db))
    print(f"build: {built['seconds']:.1f} s", flush=True)
    best_auc = json.loads((data / "generation.json").read_text())["best_auc"]
    for step in ("segments", "risk", "warnings", "cross-sell", "statistics"):
        result = _child(STEP, str(db), step)
        m = result["metrics"]
        extra = ""
        if step == "risk":
            extra = (
                f"; champion {m['champion']}, test AUC {m['roc_auc']:.3f} (generator's best {best_auc:.3f}), "
                f"KS {m['ks']:.3f}, Brier {m['brier']:.4f} vs {m['brier_base_rate']:.4f}, "
                f"automation {m['automation_rate']:.1%}"
            )
        elif step == "warnings":
            extra = f"; {m['alerts']:,} alerts"
        elif step == "cross-sell":
            extra = f"; {m['offers']:,} offers"
        elif step == "statistics":
            extra = f"; {m['tests']} tests"
        print(f"train {step}: {result['seconds']:.1f} s, peak {result['peak_rss_gb']:.2f} GB{extra}", flush=True)
    policy = _child(POLICY, str(db))
    print(
        f"policy evaluation over {policy['customers']:,} customers: median {policy['median_ms']:.1f} ms, "
        f"p95 {policy['p95_ms']:.1f} ms, worst {policy['max_ms']:.1f} ms "
        f"(loading the population once: {policy['load_seconds']:.1f} s, peak {policy['peak_rss_gb']:.2f} GB)",
        flush=True,
    )
    applicant = _child(APPLICANT, str(db))
    print(
        f"single applicant (PD, score, grade, decision, reasons): median {applicant['median_ms']:.2f} ms, "
        f"p95 {applicant['p95_ms']:.2f} ms, worst {applicant['max_ms']:.2f} ms "
        f"(loading the model: {applicant['load_seconds']:.2f} s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/segrisk-bench"), help="cache folder for data and files")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for customers in args.customers:
        bench(customers, args.work)


if __name__ == "__main__":
    main()

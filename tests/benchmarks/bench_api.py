"""Scoring API speed: the real server (``segrisk serve``, waitress) answering /api/v1/score.

    python tests/benchmarks/bench_api.py --db demo.duckdb [--requests 3000] [--concurrency 8]

Starts ``segrisk serve`` on 127.0.0.1 over a copy of the warehouse (the copy gets its own app-state
store and API key, so the original is left alone), takes real customers of the warehouse as
applicants, and fires ``--requests`` POST /score calls from ``--concurrency`` client threads, each on
a kept-alive connection. Prints p50 / p95 / p99 / worst latency and requests per second. The client
runs on the same machine, so its CPU counts against the server's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from warehouse.app_state import AppState, state_path  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def applicants(db: Path, fields: set[str], count: int) -> list[bytes]:
    """Real customers as JSON bodies, with only the fields the API's Applicant schema has."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.sql(f"SELECT * FROM customers USING SAMPLE reservoir({count} ROWS) REPEATABLE (7)").pl()
    bodies = []
    for row in rows.iter_rows(named=True):
        body = {k: v for k, v in row.items() if k in fields and v is not None}
        body = {k: (float(v) if isinstance(v, float) else v) for k, v in body.items()}
        bodies.append(json.dumps({"applicant_id": str(row["customer_id"])} | body, default=str).encode())
    return bodies


def request(connection: http.client.HTTPConnection, path: str, body: bytes | None, key: str) -> tuple[int, bytes]:
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    connection.request("POST" if body is not None else "GET", path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def run(port: int, key: str, bodies: list[bytes], requests: int, concurrency: int) -> None:
    """``requests`` POST /score calls from ``concurrency`` threads; prints the latency and throughput."""
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    per_thread = requests // concurrency

    def client(offset: int) -> None:
        mine, failed = [], []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(per_thread):
            body = bodies[(offset * 97 + i) % len(bodies)]
            start = time.perf_counter()
            status, _ = request(conn, "/api/v1/score", body, key)
            mine.append(time.perf_counter() - start)
            if status != 200:
                failed.append(status)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.extend(failed)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    print(
        f"/score: {len(ms):,} requests, concurrency {concurrency}, {len(errors)} errors; "
        f"{len(ms) / elapsed:,.0f} requests/s; latency p50 {np.percentile(ms, 50):.1f} ms, "
        f"p95 {np.percentile(ms, 95):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, worst {ms.max():.1f} ms "
        f"(mean {statistics.fmean(ms):.1f} ms)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a trained warehouse (e.g. from `segrisk demo --no-serve`)")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 2, 4, 8], help="client threads; one run per value"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    db = work / "bench.duckdb"
    shutil.copyfile(args.db, db)
    key = AppState(state_path(db)).create_api_key("bench")
    port = free_port()
    env = os.environ | {
        "SEGRISK_ADMIN_PASSWORD": "bench-password",
        "SEGRISK_SECRET_KEY": "bench-secret-key-of-32-characters",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", "serve", "--db", str(db), "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(work / "server.log").open("w"),  # a pipe nobody reads would fill and stall the server
    )
    try:
        started = time.perf_counter()
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                probe.request("GET", "/api/v1/health")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.perf_counter() - started > 60:
                raise SystemExit(f"the server did not start: {(work / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        status, doc = request(connection, "/api/v1/openapi.json", None, key)
        fields = set(json.loads(doc)["components"]["schemas"]["Applicant"]["properties"])
        bodies = applicants(db, fields, 500)
        print(f"server up in {time.perf_counter() - started:.1f} s; {len(fields)} applicant fields", flush=True)
        for body in bodies[:200]:  # warm-up: first calls load the models and fill caches
            status, answer = request(connection, "/api/v1/score", body, key)
            assert status == 200, answer
        connection.close()

        for concurrency in args.concurrency:
            run(port, key, bodies, args.requests, concurrency)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

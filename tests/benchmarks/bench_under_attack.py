"""The served dashboard under a bounded load while someone attacks it (issue 13, must-show 4).

    python tests/benchmarks/bench_under_attack.py --db demo.duckdb [--seconds 60] [--clients 4]

Starts ``segrisk serve`` (waitress, 8 threads) on 127.0.0.1 over a copy of the warehouse, then for
``--seconds`` runs at once:

- ``--clients`` signed-in analysts, each looping over a page load (``GET /``), a Dash callback (the
  Data page's table search) and a ``POST /api/v1/score`` with a real customer's features;
- a prober sending ``GET /api/v1/health`` every 50 ms;
- attacker threads: two sending wrong passwords for ``admin`` as fast as the server answers, and
  one signed-in analyst sending runaway console queries back to back (4 threads doing that).

Prints p50 / p99 / worst of health and /score (the issue's targets: 100 ms and 50 ms), the clients'
page and callback latencies, and what the attackers got (status counts). Client and server share the
machine's cores, so the attackers' CPU counts against the server's.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_api import applicants, free_port  # noqa: E402

from warehouse.app_state import AppState, state_path  # noqa: E402

PASSWORD = "bench-analyst-password"
RUNAWAY = "SELECT count(*) FROM range(1000000) a, range(1000000) b"
SEARCH = {
    "output": "data-objects.children",
    "outputs": {"id": "data-objects", "property": "children"},
    "inputs": [{"id": "data-search", "property": "value", "value": "customer"}],
    "changedPropIds": ["data-search.value"],
}
RUN_SQL = {
    "output": "..data-sql-token.data...data-sql-message.children...data-sql-page.max_value"
    "...data-sql-page.active_page...data-sql-pager.style..",
    "outputs": [
        {"id": "data-sql-token", "property": "data"},
        {"id": "data-sql-message", "property": "children"},
        {"id": "data-sql-page", "property": "max_value"},
        {"id": "data-sql-page", "property": "active_page"},
        {"id": "data-sql-pager", "property": "style"},
    ],
    "changedPropIds": ["data-sql-run.n_clicks"],
    "inputs": [{"id": "data-sql-run", "property": "n_clicks", "value": 1}],
    "state": [{"id": "data-sql-text", "property": "value", "value": RUNAWAY}],
}


def signed_in(base: str, name: str, password: str) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{base}/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    data = {"username": name, "password": password} | ({"csrf_token": token.group(1)} if token else {})
    answer = session.post(f"{base}/login", data=data, allow_redirects=False, timeout=30)
    if answer.status_code != 302:
        raise SystemExit(f"could not sign in as {name}: {answer.status_code} {answer.text[:200]}")
    return session


def summary(name: str, seconds: list[float], target_ms: float | None = None) -> str:
    if not seconds:
        return f"{name}: no requests"
    ms = np.array(seconds) * 1000
    line = (
        f"{name}: {len(ms):,} requests; p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
        f"worst {ms.max():.1f} ms"
    )
    if target_ms is not None:
        line += f" (target p99 {target_ms:.0f} ms: {'met' if np.percentile(ms, 99) <= target_ms else 'MISSED'})"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a trained warehouse (e.g. from `segrisk demo --no-serve`)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=4, help="signed-in analysts loading pages and scoring")
    parser.add_argument("--no-attack", action="store_true", help="the same load without the attackers (baseline)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-attack-"))
    db = work / "bench.duckdb"
    shutil.copyfile(args.db, db)
    store = AppState(state_path(db))
    key = store.create_api_key("bench")
    for number in range(args.clients + 1):
        store.add_user(f"analyst{number}", "analyst", PASSWORD)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "SEGRISK_ADMIN_PASSWORD": "bench-admin-password",
        "SEGRISK_SECRET_KEY": "bench-secret-key-of-32-characters",
        "SEGRISK_SQL_TIME_LIMIT": "10",
    }
    # The server's log goes to a file: a pipe nobody reads fills up (waitress warns of its task queue
    # under load) and then blocks the server's main loop, which is not what is being measured.
    log_path = work / "server.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", "serve", "--db", str(db), "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        started = time.perf_counter()
        while True:
            try:
                if requests.get(f"{base}/api/v1/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None or time.perf_counter() - started > 90:
                raise SystemExit(f"the server did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        document = requests.get(f"{base}/api/v1/openapi.json", headers={"X-API-Key": key}, timeout=30).json()
        fields = set(document["components"]["schemas"]["Applicant"]["properties"])
        bodies = applicants(db, fields, 200)
        sessions = [signed_in(base, f"analyst{n}", PASSWORD) for n in range(args.clients + 1)]
        for session in sessions:  # warm: the first page load and callback of each worker thread
            session.get(f"{base}/", timeout=60)
            session.post(f"{base}/_dash-update-component", json=SEARCH, timeout=60)

        stop = threading.Event()
        timings: dict[str, list[float]] = collections.defaultdict(list)
        statuses: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        lock = threading.Lock()

        def timed(name: str, call) -> None:  # noqa: ANN001
            began = time.perf_counter()
            try:
                status = call().status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            took = time.perf_counter() - began
            with lock:
                timings[name].append(took)
                statuses[name][status] += 1

        def client(number: int) -> None:
            session = sessions[number]
            scorer = requests.Session()
            turn = 0
            while not stop.is_set():
                body = bodies[(number * 31 + turn) % len(bodies)]
                timed("page", lambda: session.get(f"{base}/", timeout=60))
                timed("callback", lambda: session.post(f"{base}/_dash-update-component", json=SEARCH, timeout=60))
                timed(
                    "score",
                    lambda body=body: scorer.post(
                        f"{base}/api/v1/score",
                        data=body,
                        headers={"X-API-Key": key, "Content-Type": "application/json"},
                        timeout=60,
                    ),
                )
                turn += 1

        def prober() -> None:
            probe = requests.Session()
            while not stop.is_set():
                timed("health", lambda: probe.get(f"{base}/api/v1/health", timeout=60))
                time.sleep(0.05)

        def guesser() -> None:
            while not stop.is_set():
                attacker = requests.Session()
                form = attacker.get(f"{base}/login", timeout=60).text
                token = re.search(r'name="csrf_token" value="([^"]+)"', form)
                data = {"username": "admin", "password": "guess"} | ({"csrf_token": token.group(1)} if token else {})
                timed(
                    "attack: wrong password",
                    lambda attacker=attacker, data=data: attacker.post(f"{base}/login", data=data, timeout=60),
                )

        def runaway() -> None:
            session = sessions[-1]
            while not stop.is_set():
                timed(
                    "attack: runaway console query",
                    lambda: session.post(f"{base}/_dash-update-component", json=RUN_SQL, timeout=60),
                )

        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        threads.append(threading.Thread(target=prober))
        if not args.no_attack:
            threads += [threading.Thread(target=guesser) for _ in range(2)]
            threads += [threading.Thread(target=runaway) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)

        mode = "without attackers" if args.no_attack else "under attack"
        print(f"{args.seconds:.0f} s, {args.clients} clients, {mode}, {os.cpu_count()} cores:")
        print("  " + summary("/api/v1/health", timings["health"], 100))
        print("  " + summary("/api/v1/score", timings["score"], 50))
        print("  " + summary("page GET /", timings["page"]))
        print("  " + summary("callback (Data search)", timings["callback"]))
        for name in ("health", "score", "page", "callback", "attack: wrong password", "attack: runaway console query"):
            if statuses[name]:
                print(f"  {name} statuses: {dict(statuses[name])}")
        queue_warnings = log_path.read_text().count("Task queue depth")
        print(f"  waitress task-queue warnings in the server's log: {queue_warnings}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

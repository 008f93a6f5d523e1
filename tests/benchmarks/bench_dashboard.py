"""Benchmark: the dashboard's callbacks at bank scale, measured on the server while a real browser
uses every page.

Run (not part of the test suite; needs Debian's chromium):

    .venv/bin/python tests/benchmarks/bench_dashboard.py --customers 1000000

It builds the demo warehouse at that size and trains every model (cached under --work, or pass
--db), serves the dashboard under waitress on 127.0.0.1 and drives it with headless Chromium:
each page under several global filters, policy-slider moves, table paging and sorting, and
customer lookups. A hook on the server times every Dash callback request (the callback, the
queries it runs and the JSON of its answer) and reports, per callback, how many calls, the
median, the 95th percentile and the worst. It also reports how long each page takes from
navigation until its last callback has answered (the page is usable).

Chromium shares the server's two cores here, which a bank's server does not (the browser runs on
the risk manager's own machine): so the recorded requests are then replayed with no browser
running, in the bursts the browser sent them, from the same starting state (answer cache emptied
and warmed as at start), and timed again: the second table. ``SEGRISK_QUERY_CACHE_MB=0`` turns the
answer cache off, so every query runs; ``--serial`` times each callback alone.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))


def ensure_warehouse(customers: int, work: Path) -> Path:
    """The demo warehouse at this size after `train all` (built once, then reused)."""
    db = work / f"dash-{customers}.duckdb"
    if db.exists():
        return db
    data = work / f"bank-{customers}"
    cli = [sys.executable, "-m", "dashboard.cli"]
    if not data.exists():
        subprocess.run([*cli, "generate", "--customers", str(customers), "--out", str(data)], check=True, cwd=REPO)
    subprocess.run([*cli, "build", "--spec", "demo", "--data-dir", str(data), "--db", str(db)], check=True, cwd=REPO)
    subprocess.run([*cli, "train", "all", "--db", str(db)], check=True, cwd=REPO)
    return db


class CallbackTimer:
    """Server-side time of every /_dash-update-component request, by the callback's outputs."""

    def __init__(self, server, serial: bool = False) -> None:  # noqa: ANN001 - a Flask app
        """``serial``: callbacks run one at a time, so each is timed on its own; otherwise they run as
        the browser sends them, several at once on a page load, sharing the two cores."""
        from flask import g, request

        self.seconds: dict[str, list[float]] = defaultdict(list)
        #: (seconds since the timer started, request body) of every callback request, for the replay.
        self.requests: list[tuple[float, bytes]] = []
        self.recording = True
        self.lock = threading.Lock()
        one_at_a_time = threading.Lock()
        origin = time.perf_counter()

        @server.before_request
        def _start() -> None:
            if serial and request.path == "/_dash-update-component":
                one_at_a_time.acquire()
                g.bench_holds_lock = True
            g.bench_started = time.perf_counter()
            if self.recording and request.path == "/_dash-update-component":
                with self.lock:
                    self.requests.append((g.bench_started - origin, request.get_data()))

        @server.after_request
        def _stop(response):  # noqa: ANN001, ANN202
            if request.path == "/_dash-update-component" and hasattr(g, "bench_started"):
                elapsed = time.perf_counter() - g.bench_started
                body = request.get_json(silent=True) or {}
                name = _callback_name(body.get("output", "?"))
                with self.lock:
                    self.seconds[name].append(elapsed)
            return response

        @server.teardown_request
        def _release(_error) -> None:  # noqa: ANN001
            if g.pop("bench_holds_lock", False):
                one_at_a_time.release()


def time_queries() -> dict[str, list[float]]:
    """Wrap the dashboard's query runner to time every named query (a filtered query and its unfiltered
    twin count apart)."""
    from dashboard.data import WarehouseReader

    seconds: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    run = WarehouseReader.query

    def timed(self, query_name: str, /, **params: object):  # noqa: ANN001, ANN202
        started = time.perf_counter()
        try:
            return run(self, query_name, **params)
        finally:
            with lock:
                seconds[query_name].append(time.perf_counter() - started)

    WarehouseReader.query = timed
    return seconds


def replay(base_url: str, cookies: list[dict], recorded: list[tuple[float, bytes]], gap: float = 0.25) -> None:
    """Send the recorded callback requests again with no browser on the machine: in bursts as the
    browser sent them (a burst ends at a quiet gap), each request at its original offset within its
    burst, so callbacks of one page load still overlap as they did."""
    import requests

    session = requests.Session()
    for cookie in cookies:
        session.cookies.set(cookie["name"], cookie["value"])
    bursts: list[list[tuple[float, bytes]]] = []
    for started, body in recorded:
        if not bursts or started - bursts[-1][-1][0] > gap:
            bursts.append([])
        bursts[-1].append((started, body))
    headers = {"Content-Type": "application/json"}
    for burst in bursts:
        first = burst[0][0]
        began = time.perf_counter()
        threads = []
        for started, body in burst:
            delay = started - first - (time.perf_counter() - began)
            if delay > 0:
                time.sleep(delay)
            thread = threading.Thread(
                target=session.post,
                args=(f"{base_url}/_dash-update-component",),
                kwargs={"data": body, "headers": headers},
            )
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()


def _callback_name(output: str) -> str:
    """A readable name from Dash's output spec ("..a.b...c.d.." -> "a.b + c.d")."""
    parts = [p for p in output.strip(".").split("...") if p]
    names = [p.split("@")[0] for p in parts]
    if len(names) > 3:
        return f"{names[0]} + {len(names) - 1} more"
    return " + ".join(names)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def drive(base_url: str, db: Path, rounds: int, seed: int) -> tuple[dict[str, list[float]], list[dict]]:
    """Use every page as a risk manager would; returns seconds to usable per page and the session's cookies."""
    import dash
    import duckdb
    from browser import choose, chromium, settle, signed_in

    rng = random.Random(seed)
    with duckdb.connect(str(db), read_only=True) as con:
        personas = [r[0] for r in con.execute("SELECT DISTINCT persona_key FROM mart_customer_profile").fetchall()]
        regions = [r[0] for r in con.execute("SELECT DISTINCT region FROM mart_customer_profile").fetchall()]
        customers = con.execute("SELECT max(customer_id) FROM customers").fetchone()[0]
    fragments = ["", "#grade=E", "#grade=D,E&age=26-35"]
    fragments += [f"#persona={rng.choice(personas)}", f"#region={rng.choice(regions)}&product=mortgage"]
    paths = [p["relative_path"] for p in sorted(dash.page_registry.values(), key=lambda p: p.get("order", 99))]
    usable: dict[str, list[float]] = defaultdict(list)
    cookies: list[dict] = []
    with chromium() as browser, signed_in(browser, base_url) as page:
        for round_number in range(rounds):
            for path in paths:
                for fragment in fragments:
                    target = path
                    if path == "/customer":
                        target = f"/customer?customer_id={rng.randint(1, customers)}"
                    started = time.perf_counter()
                    page.goto(target + fragment)
                    settle(page, quiet=0.4)
                    # settle waits out a quiet spell after the last answer; it is not the user's wait
                    usable[path].append(time.perf_counter() - started - 0.4)
            page.goto("/risk")
            settle(page, quiet=0.4)
            slider = page.locator("#risk-approve [role=slider]").first
            slider.focus()
            for _ in range(10):
                page.keyboard.press("ArrowRight" if rng.random() < 0.5 else "ArrowLeft")
                settle(page, quiet=0.3)
            page.goto("/warnings")
            settle(page, quiet=0.4)
            for page_number in ("2", "3"):
                page.locator("#warnings-alerts-page").get_by_text(page_number, exact=True).first.click()
                settle(page, quiet=0.3)
            choose(page, "warnings-alerts-sort", "Value")
            settle(page, quiet=0.3)
            print(f"  round {round_number + 1} of {rounds} done", file=sys.stderr, flush=True)
        cookies = page.context.cookies()
    return usable, cookies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="a trained warehouse to use instead of building one")
    parser.add_argument("--work", type=Path, default=Path("/tmp/segrisk-bench"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--queries", action="store_true", help="also time each named query (where a callback's time goes)"
    )
    parser.add_argument(
        "--serial", action="store_true", help="run callbacks one at a time (each timed alone, not sharing the cores)"
    )
    parser.add_argument(
        "--no-replay",
        action="store_true",
        help="skip replaying the recorded requests without the browser (the second table)",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    db = args.db or ensure_warehouse(args.customers, args.work)

    from browser import PASSWORD
    from waitress.server import create_server
    from werkzeug.security import generate_password_hash

    from dashboard import auth
    from dashboard.app import create_app, warm

    app = create_app(db, users={"admin": auth.User("admin", "admin", generate_password_hash(PASSWORD))})
    query_seconds = time_queries() if args.queries else None
    timer = CallbackTimer(app.server, serial=args.serial)
    warm()  # as `segrisk serve` does at start
    server = create_server(app.server, host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.effective_port}"
    try:
        usable, cookies = drive(base_url, db, args.rounds, args.seed)
        with_browser = timer.seconds
        replayed = None
        if not args.no_replay:
            # The same requests again without Chromium on the machine, from the same starting state:
            # an empty answer cache warmed as at start.
            from dashboard.data import reader

            timer.recording, timer.seconds = False, defaultdict(list)
            if reader().cache is not None:
                reader().cache.clear()
            warm()
            replay(base_url, cookies, timer.requests)
            replayed = timer.seconds
    finally:
        server.close()
    how = "one at a time" if args.serial else "as the browser sends them, several at once"
    rows = report(f"Dashboard callbacks on {db.name}, {how}, Chromium on the same 2 cores", with_browser)
    replay_rows = (
        report(f"The same {len(timer.requests)} requests replayed without the browser, {how}", replayed)
        if replayed is not None
        else []
    )
    print("\nPage usable after navigation (s): median / p95 / worst")
    for path, seconds in usable.items():
        print(f"  {path:<14} {statistics.median(seconds):.2f} / {percentile(seconds, 0.95):.2f} / {max(seconds):.2f}")
    queries = []
    if query_seconds is not None:
        print(f"\nNamed queries (ms): {'name':<52} {'calls':>6} {'median':>8} {'p95':>8} {'worst':>8}")
        for name, seconds in sorted(query_seconds.items(), key=lambda item: -percentile(item[1], 0.95)):
            ms = [s * 1000 for s in seconds]
            queries.append(
                {"query": name, "calls": len(ms), "median_ms": statistics.median(ms), "p95_ms": percentile(ms, 0.95)}
            )
            print(
                f"  {name[:70]:<70} {len(ms):>6} {statistics.median(ms):>8.1f} {percentile(ms, 0.95):>8.1f} {max(ms):>8.1f}"
            )
    (args.work / f"bench-dashboard{'-serial' if args.serial else ''}.json").write_text(
        json.dumps({"callbacks": rows, "replayed": replay_rows, "usable_s": usable, "queries": queries}, indent=1)
    )


def report(title: str, seconds_by_callback: dict[str, list[float]]) -> list[dict]:
    """Print calls, median, p95 and worst per callback; return them as rows."""
    print(f"\n{title} (server time per request, ms):")
    print(f"{'callback (outputs)':<70} {'calls':>6} {'median':>8} {'p95':>8} {'worst':>8}")
    rows = []
    for name, seconds in sorted(seconds_by_callback.items()):
        ms = [s * 1000 for s in seconds]
        rows.append(
            {
                "callback": name,
                "calls": len(ms),
                "median_ms": statistics.median(ms),
                "p95_ms": percentile(ms, 0.95),
                "worst_ms": max(ms),
            }
        )
        print(f"{name[:70]:<70} {len(ms):>6} {rows[-1]['median_ms']:>8.1f} {rows[-1]['p95_ms']:>8.1f} {max(ms):>8.1f}")
    return rows


if __name__ == "__main__":
    main()

"""The ``segrisk`` command.

It lives in ``dashboard`` because that package sits on top of the import graph: ``serve`` and
``train`` (later) need ``dashboard`` and ``models``, while ``warehouse`` may import neither.
Heavy imports happen inside each command so ``segrisk --help`` stays instant.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from collections.abc import Callable, MutableMapping, Sequence
from datetime import date
from pathlib import Path

DEMO_DEFAULT_CUSTOMERS = 50_000
DEMO_DEFAULT_SEED = 42
DEMO_DATA_ROOT = Path("segrisk-data")
SHARED_DATA_DIR = Path("..") / "shared" / "data"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got '{text}'") from exc


def _db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help="warehouse file (default: $SEGRISK_DB, else ./segrisk.duckdb)",
    )


def _demo_data_dir(customers: int, seed: int) -> Path:
    return DEMO_DATA_ROOT / f"demo-{customers}-seed{seed}"


def _ensure_demo_data(customers: int = DEMO_DEFAULT_CUSTOMERS, seed: int = DEMO_DEFAULT_SEED) -> Path:
    """Generate the demo bank once and reuse it: same size and seed give the same files."""
    from warehouse.synthetic import generate_bank

    folder = _demo_data_dir(customers, seed)
    if (folder / "generation.json").exists():
        _say(f"Using the synthetic bank in {folder} ({customers:,} customers, seed {seed}).")
        return folder
    _say(f"Generating the synthetic bank: {customers:,} customers, seed {seed}, into {folder}")
    generate_bank(customers, seed, folder, progress=lambda m: _say(f"  {m}"))
    return folder


def _resolve_data_dir(spec_name: str, data_dir: str | None) -> Path:
    from warehouse.errors import SourceError

    if data_dir is not None:
        folder = Path(data_dir)
        if not folder.is_dir():
            raise SourceError(f"--data-dir {folder} is not a folder.")
        return folder
    if spec_name == "demo":
        return _ensure_demo_data()
    if SHARED_DATA_DIR.is_dir():
        return SHARED_DATA_DIR
    raise SourceError(f"Spec '{spec_name}' needs its data files: pass --data-dir with the folder that holds them.")


# --- commands -------------------------------------------------------------------------


MIN_CUSTOMERS, MAX_CUSTOMERS = 1_000, 5_000_000


def _check_size(customers: int) -> None:
    from warehouse.errors import SegriskError

    if not MIN_CUSTOMERS <= customers <= MAX_CUSTOMERS:
        raise SegriskError(f"--customers must be between {MIN_CUSTOMERS:,} and {MAX_CUSTOMERS:,}, got {customers:,}.")


def cmd_generate(args: argparse.Namespace) -> int:
    from warehouse.errors import SegriskError
    from warehouse.synthetic import generate_bank

    started = time.perf_counter()
    out = Path(args.out)
    _check_size(args.customers)
    _say(f"Generating {args.customers:,} customers with seed {args.seed} into {out}")
    try:
        summary = generate_bank(args.customers, args.seed, out, progress=lambda m: _say(f"  {m}"))
    except ValueError as exc:  # the generator's own sentence about its arguments
        raise SegriskError(str(exc)) from exc
    counts = summary.get("row_counts", {})
    listing = ", ".join(f"{name} {count:,}" for name, count in counts.items())
    print(f"Wrote {out} in {time.perf_counter() - started:.1f} s: {listing}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from warehouse import settings
    from warehouse.build import build_warehouse
    from warehouse.db import default_db_path
    from warehouse.spec import load_spec

    settings.validate("build")  # a bad setting stops the build before any file is read
    spec, text = load_spec(args.spec)
    data_dir = _resolve_data_dir(spec.name, args.data_dir)
    db_path = default_db_path(args.db)
    summary = build_warehouse(spec, text, data_dir, db_path, progress=_say)
    _print_build(summary)
    return 0


def _print_build(summary) -> None:  # noqa: ANN001 - BuildSummary, imported lazily
    print(f"Built {summary.db_path} (build {summary.build_id}) in {summary.seconds:.1f} s")
    print(f"  customers: {summary.customers:,}; as-of date {summary.as_of_date}")
    for source in summary.sources:
        rules = ", ".join(f"{rule} {count:,}" for rule, count in source.quarantine_by_rule.items())
        print(
            f"  {source.kind}: {source.rows_in:,} in, {source.rows_out:,} kept, {source.rows_rejected:,} quarantined"
            + (f" ({rules})" if rules else "")
        )
    supported = ", ".join(name for name, ok in summary.capabilities.items() if ok) or "none"
    unsupported = ", ".join(name for name, ok in summary.capabilities.items() if not ok) or "none"
    print(f"  supports: {supported}; not supported: {unsupported}")
    print(f"  data tests: {sum(c.passed for c in summary.checks)}/{len(summary.checks)} passed")


def cmd_check(args: argparse.Namespace) -> int:
    from warehouse.checks import audit_chain, full_read, run_checks
    from warehouse.db import default_db_path, read_only

    db_path = default_db_path(args.db)
    with read_only(db_path) as con:
        results = run_checks(con)
        _say("Reading every block of the warehouse file ...")
        results.append(full_read(con))
    chain = audit_chain(db_path)
    if chain is not None:
        results.append(chain)
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        print(f"{mark}  {result.check_name:<24} {result.table_name:<22} {result.detail}")
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from warehouse import settings
    from warehouse.build import build_warehouse
    from warehouse.db import default_db_path
    from warehouse.spec import load_spec

    _check_size(args.customers)
    settings.validate("build", "dashboard", "console")  # before minutes of work, not at the serve after them
    data_dir = _ensure_demo_data(args.customers, args.seed)
    spec, text = load_spec("demo")
    summary = build_warehouse(spec, text, data_dir, default_db_path(args.db), progress=_say)
    _print_build(summary)
    cmd_train(build_parser().parse_args(["train", "all", "--seed", str(args.seed), "--db", str(summary.db_path)]))
    print(f"Open it with any DuckDB client, e.g.: duckdb -readonly {summary.db_path}")
    password = _first_admin(summary.db_path)
    if password is not None:
        print(
            f"Sign in as user 'admin' with password {password} (shown once; change it with "
            f"`segrisk users passwd admin --db {summary.db_path}`)."
        )
    if args.no_serve:
        return 0
    serve_args = ["serve", "--db", str(summary.db_path), "--host", args.host, "--port", str(args.port)]
    return cmd_serve(build_parser().parse_args(serve_args))


def _first_admin(db_path: Path) -> str | None:
    """On a first run (no users in the store, none from the environment) add an ``admin`` with a
    random password and return it; None otherwise."""
    from warehouse import settings
    from warehouse.app_state import AppState, state_path

    access = AppState(state_path(db_path))
    if settings.ADMIN_PASSWORD.read() or settings.USERS.read() or access.users():
        return None
    password = secrets.token_urlsafe(12)
    access.add_user("admin", "admin", password)
    return password


def cmd_train(args: argparse.Namespace) -> int:
    from models import train
    from models.scorecard import Scorecard
    from warehouse import settings
    from warehouse.db import default_db_path

    settings.WRITE_LOCK_WAIT_S.read()  # a run writes its results back at the end: refuse a bad wait first
    db_path = default_db_path(args.db)
    every = args.model == "all"
    if args.model in ("segments", "all"):
        if not (every and _skipped("segments", db_path, "personas")):
            run = train.train_segments(db_path, seed=args.seed, k=args.k, progress=_say)
            print(
                f"Trained segments on {db_path}: run {run.run_id}; k = {run.metrics['k']}, "
                f"silhouette {run.metrics['silhouette']:.3f}"
            )
            _print_personas(db_path)
    if args.model in ("rfm", "all"):
        if not (every and _skipped("rfm", db_path, "rfm")):
            run = train.train_rfm(db_path, seed=args.seed, progress=_say, as_of=args.as_of)
            clusters = ", ".join(f"{name} {count:,}" for name, count in run.metrics["cluster_counts"].items())
            print(
                f"Trained rfm on {db_path}: run {run.run_id}; {run.metrics['customers']:,} customers; clusters: {clusters}"
            )
    if args.model in ("risk", "all"):
        if not (every and _skipped("risk", db_path, "risk_model")):
            scorecard = Scorecard(args.base_score, args.base_odds, args.pdo)
            run = train.train_risk(db_path, seed=args.seed, progress=_say, scorecard=scorecard)
            _print_risk(run.run_id, run.metrics, db_path)
    if args.model in ("warnings", "all"):
        if not (every and _skipped("warnings", db_path, "early_warnings")):
            run = train.train_warnings(db_path, thresholds=dict(args.threshold or []), progress=_say)
            m = run.metrics
            by_rule = ", ".join(
                f"{rule} {count:,}" if rule not in m["rules_not_run"] else f"{rule} not run (no data)"
                for rule, count in m["alerts_by_rule"].items()
            )
            print(f"Trained warnings on {db_path}: run {run.run_id}; {m['alerts']:,} alerts ({by_rule})")
            if m["psi_score"] is not None:
                print(f"  score PSI {m['psi_score']:.3f}; red: {', '.join(m['psi_red']) or 'none'}")
    if args.model in ("cross-sell", "all"):
        if not (every and _skipped("cross-sell", db_path, "cross_sell")):
            run = train.train_cross_sell(db_path, progress=_say)
            m = run.metrics
            print(
                f"Trained cross-sell on {db_path}: run {run.run_id}; {m['offers']:,} offers to "
                f"{m['customers_with_offer']:,} customers; {m['credit_offers_blocked']:,} credit offers held back by risk"
            )
    if args.model in ("statistics", "all") and not (every and _skipped("statistics", db_path, "statistics")):
        run = train.train_statistics(db_path, alpha=args.alpha, seed=args.seed, progress=_say)
        print(
            f"Trained statistics on {db_path}: run {run.run_id}; {run.metrics['tests']} tests, "
            f"{run.metrics['significant']} significant at alpha {args.alpha} after correction"
        )
        print(f"  {run.metrics['reading']}")
    return 0


def _print_risk(run_id: str, m: dict, db_path: Path) -> None:
    print(
        f"Trained risk on {db_path}: run {run_id}; champion {m['champion']} ({m['imbalance']}, {m['calibration']} calibration)"
    )
    print(
        f"  test ROC AUC {m['roc_auc']:.3f} (challenger {m['challenger_roc_auc']:.3f}), Gini {m['gini']:.3f}, "
        f"KS {m['ks']:.3f}, Brier {m['brier']:.4f} (base rate {m['brier_base_rate']:.4f}), CV AUC {m['cv_auc']:.3f}"
    )
    print(
        f"  policy v{m['policy_version']}: automated {m['automation_rate']:.1%}, approved {m['approval_rate']:.1%}, "
        f"review {m['review_rate']:.1%}, declined {m['decline_rate']:.1%}; "
        f"expected default rate of approved {m['expected_default_rate_approved']:.2%}"
    )


def _capability(db_path: Path, capability: str) -> tuple[bool, str]:
    """Whether the build found the data supports a model run, and why: ``train all`` runs exactly
    the ones ``meta_capabilities`` says are supported."""
    from warehouse.db import read_only

    with read_only(db_path) as con:
        rows = con.execute(
            "SELECT is_supported, reason FROM meta_capabilities WHERE capability = ?", [capability]
        ).fetchall()
    if not rows:
        return False, "the warehouse records no such capability (rebuild it)"
    return bool(rows[0][0]), rows[0][1]


def _skipped(model: str, db_path: Path, capability: str) -> bool:
    """In ``train all``: print why a model is skipped, from the same row ``meta_capabilities`` shows."""
    supported, reason = _capability(db_path, capability)
    if not supported:
        print(f"Skipped {model}: {capability} {reason}.")
    return not supported


def _print_personas(db_path: Path) -> None:
    from models.train import list_personas

    for key, name, customers, share, description, strategy in list_personas(db_path):
        print(f"  {key:<4} {name:<30} {customers:>9,} ({share:5.1%})  {description}")
        print(f"       strategy: {strategy}")


def cmd_personas(args: argparse.Namespace) -> int:
    from dashboard.auth import audit
    from models.train import set_persona_label
    from warehouse.db import default_db_path

    db_path = default_db_path(args.db)
    if args.action == "rename":
        set_persona_label(db_path, args.segment_key, name=args.text)
        audit("persona_edit", f"{args.segment_key}: renamed to '{args.text}'", db_path=db_path)
        print(f"Renamed {args.segment_key} to '{args.text}'.")
    elif args.action == "strategy":
        set_persona_label(db_path, args.segment_key, strategy=args.text)
        audit("persona_edit", f"{args.segment_key}: strategy set to '{args.text}'", db_path=db_path)
        print(f"Set the strategy of {args.segment_key}.")
    _print_personas(db_path)
    return 0


def _rule_threshold(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name.strip(), float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected RULE=NUMBER, e.g. high_debt_to_income=0.5, got '{text}'") from exc


def cmd_policy(args: argparse.Namespace) -> int:
    from models import policy_actions
    from warehouse.db import default_db_path

    db_path = default_db_path(args.db)
    if args.action == "explain":
        for row in policy_actions.explain(db_path, args.customer_ids):
            print(
                f"Customer {row['customer_id']}: PD {row['pd']:.1%}, score {row['score']:.0f}, grade {row['grade']}, "
                f"{row['decision']} ({row['decision_reason']})"
            )
            for reason in (row["reason_1"], row["reason_2"], row["reason_3"]):
                if reason:
                    print(f"  - {reason}")
        return 0
    if args.action == "set":
        policy = policy_actions.change(
            db_path,
            approve_min=args.approve_min,
            decline_below=args.decline_below,
            lgd=args.lgd,
            review_rules=args.review_rule,
            persona_review=False if args.no_persona_review else None,
        )
        from dashboard.auth import audit

        audit(
            "policy_edit",
            f"saved policy version {policy.version}: approve at {policy.approve_min_score:g}+, "
            f"decline below {policy.decline_below_score:g}, LGD {policy.lgd:.0%}",
            db_path=db_path,
        )
        print(f"Saved policy version {policy.version}.")
    policy, outcome = policy_actions.evaluate_current(db_path)
    print(
        f"Policy v{policy.version} '{policy.name}': approve at {policy.approve_min_score:g}+, "
        f"decline below {policy.decline_below_score:g}, LGD {policy.lgd:.0%}"
    )
    rules = [r.describe() for r in policy.rules if r.enabled]
    if policy.review_flagged_personas:
        rules.insert(0, "personas flagged for manual underwriting")
    print(f"  manual review whatever the score: {'; '.join(rules) or 'no rules'}")
    print(
        f"  {'persona':<32} {'customers':>10} {'automated':>9} {'approved':>9} {'review':>8} {'exp. DR':>8} {'exp. loss':>14}"
    )
    for row in [{"persona_name": "All customers"} | outcome.overall] + outcome.by_persona:
        print(
            f"  {row['persona_name'][:32]:<32} {row['customers']:>10,} {row['automation_rate']:>9.1%} "
            f"{row['approval_rate']:>9.1%} {row['review_rate']:>8.1%} {row['expected_default_rate_approved']:>8.2%} "
            f"{row['expected_loss_approved']:>14,.0f}"
        )
    flagged = [
        f"{r['attribute']} {r['group_value']} ({r['adverse_impact_ratio']:.2f})"
        for r in outcome.fairness
        if r["is_flagged"]
    ]
    print(f"  adverse impact ratio below 0.8: {', '.join(flagged) or 'none'}")
    return 0


def cmd_apikeys(args: argparse.Namespace) -> int:
    """Keys of the scoring API, in the app-state store beside the warehouse (an admin command: whoever
    can write that file)."""
    from dashboard.auth import audit
    from warehouse.app_state import AppState, state_path
    from warehouse.db import default_db_path

    db_path = default_db_path(args.db)
    keys = AppState(state_path(db_path))
    if args.action == "create":
        key = keys.create_api_key(args.name, created_by=f"{os.environ.get('USER', 'unknown')} (command line)")
        audit("api_key_create", f"created API key '{args.name}'", db_path=db_path)
        _say(f"API key '{args.name}' created; it is shown once, here. Send it in the X-API-Key header:")
        print(key)
    elif args.action == "revoke":
        keys.revoke_api_key(args.name)
        audit("api_key_revoke", f"revoked API key '{args.name}'", db_path=db_path)
        print(f"Revoked API key '{args.name}'.")
    else:
        for stored in keys.api_keys():
            state = f"revoked {stored.revoked_at}" if stored.revoked_at else "active"
            print(f"{stored.name:<24} {stored.key_prefix}...  created {stored.created_at}  {state}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from dashboard.app import serve
    from warehouse import settings
    from warehouse.db import connect_read_only, default_db_path

    settings.validate("dashboard", "console")  # a bad setting stops the start before the address is printed
    db_path = default_db_path(args.db)
    connect_read_only(db_path).close()  # a missing or unreadable warehouse fails here, in one line
    print(f"Segrisk dashboard on http://{args.host}:{args.port}/ (warehouse {db_path}); Ctrl+C stops it.", flush=True)
    serve(db_path, host=args.host, port=args.port)
    return 0


def _new_password(args: argparse.Namespace) -> str:
    """The password from stdin (--password-stdin), else asked twice without echo."""
    import getpass

    from warehouse.app_state import AccessError

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("The same password again: ") != password:
            raise AccessError("The two passwords differ; nothing was changed.")
    if not password:
        raise AccessError("No password given; nothing was changed.")
    return password


def cmd_users(args: argparse.Namespace) -> int:
    """Who may sign in to the dashboard, in the app-state store beside the warehouse."""
    from dashboard.auth import audit
    from warehouse.app_state import AccessError, AppState, state_path
    from warehouse.db import default_db_path

    db_path = default_db_path(args.db)
    if not db_path.parent.is_dir():
        raise AccessError(f"The folder {db_path.parent} of the warehouse does not exist.")
    access = AppState(state_path(db_path))
    if args.action == "list":
        users = access.users()
        if not users:
            print(f"No users yet: add one with `segrisk users add NAME --role admin --db {db_path}`.")
        for user in users:
            locked = access.locked_until(user.name)
            note = f"  locked until {locked:%Y-%m-%d %H:%M} UTC" if locked else ""
            print(f"{user.name:<24} {user.role:<8} created {user.created_at}  changed {user.updated_at}{note}")
        return 0
    if args.action == "add":
        access.add_user(args.name, args.role, _new_password(args))
        done = f"Added user {args.name} with role {args.role}."
    elif args.action == "passwd":
        if access.user(args.name) is None:
            raise AccessError(f"There is no user '{args.name}' (see `segrisk users list`).")
        access.set_password(args.name, _new_password(args))
        access.clear_login_failures(args.name)
        done = f"Changed the password of {args.name}; their open sessions end."
    elif args.action == "role":
        access.set_role(args.name, args.role)
        done = f"{args.name} now has role {args.role}."
    else:
        access.remove_user(args.name)
        done = f"Removed user {args.name}; their audit entries stay."
    audit(f"user_{args.action}", done, db_path=db_path)
    print(done)
    return 0


def _filter_values(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def cmd_report(args: argparse.Namespace) -> int:
    """The executive PDF or the Excel workbook of a warehouse, under the dashboard's global filters."""
    from dashboard.reports import check_writable
    from dashboard.reports.charts import ChartRenderer

    check_writable(Path(args.out))  # before starting a browser for nothing
    # Chromium boots (about 2.5 s) while the rest is imported and the warehouse read.
    renderer = ChartRenderer() if args.format == "pdf" else None
    try:
        from dashboard.auth import audit
        from dashboard.data import WarehouseReader
        from dashboard.filters import FILTERS, describe
        from dashboard.reports import write_report
        from warehouse.db import default_db_path
        from warehouse.errors import SegriskError

        chosen = {f.key: [v for text in getattr(args, f.key) or [] for v in _filter_values(text)] for f in FILTERS}
        db_path = default_db_path(args.db)
        data = WarehouseReader(db_path)
        detail = f"{args.format} report to {args.out}; {describe(chosen)}; from the command line"
        try:
            _say(f"report: {args.format} of {data.path}")
            result = write_report(data, args.format, Path(args.out), chosen, renderer=renderer)
        except SegriskError as exc:
            if db_path.exists():
                audit("export", f"{detail}: {exc}", "failed", db_path=db_path)
            raise
        finally:
            data.close()
    finally:
        if renderer is not None:
            renderer.close()
    # Exports leave the bank's systems: the command line's are in the audit log like the dashboard's.
    audit("export", f"{detail}; {result.describe()}", db_path=db_path)
    print(result.describe())
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from warehouse import settings

    for setting, shown in settings.listing():
        print(f"{setting.name:<30} {shown}")
        print(f"{'':<30} {setting.help} ({', '.join(setting.applies)})")
    return 0


def cmd_specs(args: argparse.Namespace) -> int:
    from warehouse.spec import builtin_spec_names, load_spec

    for name in builtin_spec_names():
        spec, _ = load_spec(name)
        print(f"{name:<16} {spec.description}")
    return 0


def cmd_spec(args: argparse.Namespace) -> int:
    """``spec draft``: a commented starting spec guessed from the files, to stdout or ``--out``."""
    from warehouse.draft import draft_spec
    from warehouse.errors import SpecError

    data_dir = Path(args.data_dir) if args.data_dir is not None else None
    out = Path(args.out) if args.out is not None else None
    if out is not None:
        if out.suffix.lower() != ".toml":
            raise SpecError(f"--out {out}: the draft is TOML, so its file name must end in .toml.")
        if out.exists() and not args.force:
            raise SpecError(f"--out {out} exists; pass --force to replace it, or name another file.")
    text = draft_spec([Path(name) for name in args.files], data_dir, out_name=str(out or "SPEC.toml"))
    if out is None:
        sys.stdout.write(text)
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.draft-{os.getpid()}")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    todos = text.count("TODO")
    _say(
        f"Wrote {out}: edit its {todos} TODOs and check its guesses, then build it with the command in its first lines."
    )
    return 0


# --- parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segrisk",
        description="Customer personas, credit risk and early warnings over one DuckDB warehouse.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    generate = commands.add_parser("generate", help="write the synthetic bank as Parquet files")
    generate.add_argument(
        "--customers", type=int, default=DEMO_DEFAULT_CUSTOMERS, help="number of customers (1,000 to 5,000,000)"
    )
    generate.add_argument("--seed", type=int, default=DEMO_DEFAULT_SEED, help="random seed: same seed, same files")
    generate.add_argument("--out", required=True, help="folder to write the Parquet files into")
    generate.set_defaults(handler=cmd_generate)

    build = commands.add_parser("build", help="build the warehouse from a dataset spec")
    build.add_argument(
        "--spec", required=True, help="built-in spec name (see `segrisk specs`) or a spec file (.toml/.yaml)"
    )
    build.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the spec's files (demo: a `segrisk generate` folder, generated if omitted; "
        "others: defaults to ../shared/data when it exists)",
    )
    _db_argument(build)
    build.set_defaults(handler=cmd_build)

    check = commands.add_parser("check", help="run the data tests on a warehouse; exit 1 if one fails")
    _db_argument(check)
    check.set_defaults(handler=cmd_check)

    demo = commands.add_parser("demo", help="generate (if needed) and build the demo warehouse")
    demo.add_argument("--customers", type=int, default=DEMO_DEFAULT_CUSTOMERS, help="size of the synthetic bank")
    demo.add_argument("--seed", type=int, default=DEMO_DEFAULT_SEED, help="random seed of the synthetic bank")
    demo.add_argument("--no-serve", action="store_true", help="stop after training instead of serving the dashboard")
    demo.add_argument("--host", default="127.0.0.1", help="address the dashboard listens on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8050, help="port of the dashboard (default 8050)")
    _db_argument(demo)
    demo.set_defaults(handler=cmd_demo)

    train = commands.add_parser("train", help="fit models on the warehouse and write their results back into it")
    train.add_argument(
        "model",
        choices=["segments", "rfm", "risk", "warnings", "cross-sell", "statistics", "all"],
        help="segments: K-Means personas; rfm: RFM scores and clusters; risk: PD models, scorecard, grades, "
        "reasons and policy decisions; warnings: early-warning alerts and PSI; cross-sell: product "
        "recommendations; statistics: tests of the risk analysis; all: every one the data supports",
    )
    train.add_argument(
        "--seed", type=int, default=DEMO_DEFAULT_SEED, help="random seed: same data and seed, same result"
    )
    train.add_argument(
        "--k", type=int, default=None, help="number of personas (default: chosen over 2..8 by silhouette)"
    )
    train.add_argument(
        "--as-of",
        type=_iso_date,
        default=None,
        help="RFM: count recency to this date, YYYY-MM-DD (default: the day after the last transaction)",
    )
    train.add_argument("--base-score", type=float, default=600.0, help="risk: points at the base odds (default 600)")
    train.add_argument(
        "--base-odds", type=float, default=50.0, help="risk: good:bad odds of the base score (default 50)"
    )
    train.add_argument("--pdo", type=float, default=20.0, help="risk: points to double the odds (default 20)")
    train.add_argument(
        "--threshold",
        type=_rule_threshold,
        action="append",
        metavar="RULE=VALUE",
        help="warnings: change a rule's threshold, e.g. high_debt_to_income=0.5 (repeatable)",
    )
    train.add_argument("--alpha", type=float, default=0.05, help="statistics: significance level (default 0.05)")
    _db_argument(train)
    train.set_defaults(handler=cmd_train)

    policy = commands.add_parser("policy", help="show, change or evaluate the approval policy")
    policy_actions = policy.add_subparsers(dest="action", metavar="ACTION", required=True)
    policy_actions.add_parser("show", help="the current policy version and its outcome on the latest scores")
    change = policy_actions.add_parser("set", help="save a new policy version and evaluate it")
    change.add_argument("--approve-min", type=float, help="auto-approve at or above this score")
    change.add_argument("--decline-below", type=float, help="auto-decline below this score")
    change.add_argument("--lgd", type=float, help="loss given default, 0 to 1")
    change.add_argument(
        "--review-rule",
        action="append",
        metavar="'COLUMN OP VALUE'",
        help="send to manual review when it holds, e.g. 'utilization > 0.95' (repeatable; replaces the rules)",
    )
    change.add_argument(
        "--no-persona-review", action="store_true", help="do not send flagged personas to manual review"
    )
    explain = policy_actions.add_parser("explain", help="score, grade, decision and reasons of some customers")
    explain.add_argument("customer_ids", nargs="+", help="customer keys (numbers or text, as the warehouse holds them)")
    for action in policy_actions.choices.values():
        _db_argument(action)
    policy.set_defaults(handler=cmd_policy)

    personas = commands.add_parser("personas", help="list personas, rename one, or set its strategy")
    persona_actions = personas.add_subparsers(dest="action", metavar="ACTION", required=True)
    persona_actions.add_parser("list", help="the personas of the latest segments run")
    rename = persona_actions.add_parser("rename", help="rename a persona (kept across re-runs)")
    rename.add_argument("segment_key", help="the persona's key, e.g. S3 (see `segrisk personas list`)")
    rename.add_argument("text", help="the new name")
    strategy = persona_actions.add_parser("strategy", help="set a persona's strategy text (kept across re-runs)")
    strategy.add_argument("segment_key", help="the persona's key, e.g. S3")
    strategy.add_argument("text", help="the strategy, in a sentence or two")
    for action in persona_actions.choices.values():
        _db_argument(action)
    personas.set_defaults(handler=cmd_personas)

    users = commands.add_parser("users", help="add, remove or list who may sign in to the dashboard")
    user_actions = users.add_subparsers(dest="action", metavar="ACTION", required=True)
    user_actions.add_parser("list", help="the users, their roles, and any lockout")
    add_user = user_actions.add_parser("add", help="add a user (asks for the password unless --password-stdin)")
    passwd = user_actions.add_parser("passwd", help="set a user's password (their open sessions end)")
    change_role = user_actions.add_parser("role", help="change a user's role")
    remove_user = user_actions.add_parser("remove", help="remove a user (their audit entries stay)")
    for action in (add_user, passwd, change_role, remove_user):
        action.add_argument("name", help="user name: letters, digits, . _ @ -")
    for action in (add_user, change_role):
        action.add_argument(
            "--role",
            required=True,
            choices=("viewer", "analyst", "admin"),
            help="viewer: aggregates only; analyst: also customer-level pages, downloads, SQL; "
            "admin: also policy, personas, users, audit log",
        )
    for action in (add_user, passwd):
        action.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    for action in user_actions.choices.values():
        _db_argument(action)
    users.set_defaults(handler=cmd_users)

    apikeys = commands.add_parser("apikeys", help="create, revoke or list the scoring API's keys")
    apikey_actions = apikeys.add_subparsers(dest="action", metavar="ACTION", required=True)
    apikey_create = apikey_actions.add_parser("create", help="make a key and print it once")
    apikey_create.add_argument("name", help="who or what uses the key, e.g. loan-origination")
    apikey_revoke = apikey_actions.add_parser("revoke", help="revoke a key at once")
    apikey_revoke.add_argument("name", help="the key's name (see `segrisk apikeys list`)")
    apikey_actions.add_parser("list", help="every key's name, prefix, creation and revocation")
    for action in apikey_actions.choices.values():
        _db_argument(action)
    apikeys.set_defaults(handler=cmd_apikeys)

    serve = commands.add_parser("serve", help="run the web dashboard (users: see `segrisk users`)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    _db_argument(serve)
    serve.set_defaults(handler=cmd_serve)

    report = commands.add_parser(
        "report", help="write the executive PDF report or the Excel workbook, for all customers or a filter"
    )
    report.add_argument(
        "--format", required=True, choices=["pdf", "xlsx"], help="pdf: executive report; xlsx: workbook"
    )
    report.add_argument("--out", required=True, help="file to write (replaced whole, or left as it was on failure)")
    for key, meaning in (
        ("persona", "persona keys, e.g. S1,S3"),
        ("age", "age bands, e.g. 26-35"),
        ("grade", "risk grades, e.g. D,E"),
        ("product", "products held, e.g. mortgage"),
        ("region", "regions"),
    ):
        report.add_argument(
            f"--{key}", action="append", metavar="A,B", help=f"only these {meaning} (comma-separated or repeated)"
        )
    _db_argument(report)
    report.set_defaults(handler=cmd_report)

    specs = commands.add_parser("specs", help="list the built-in dataset specs")
    specs.set_defaults(handler=cmd_specs)

    listed = commands.add_parser("settings", help="list every SEGRISK_* setting, its value (secrets masked) and help")
    listed.set_defaults(handler=cmd_settings)

    spec = commands.add_parser("spec", help="write a starting dataset spec from a bank's files (spec draft)")
    spec_actions = spec.add_subparsers(dest="action", metavar="ACTION", required=True)
    draft = spec_actions.add_parser(
        "draft", help="guess a commented spec (delimiter, encoding, types, id, target, roles) for you to edit"
    )
    draft.add_argument("files", nargs="+", metavar="FILE", help="the data files (CSV or other text, Parquet, .xlsx)")
    draft.add_argument(
        "--data-dir", help="the folder the spec's file names are relative to (default: the files' folder)"
    )
    draft.add_argument("--out", help="write the spec to this .toml file instead of stdout")
    draft.add_argument("--force", action="store_true", help="with --out: replace an existing file")
    spec.set_defaults(handler=cmd_spec)
    return parser


# Where a failure came from, for its one line: the innermost frame of the traceback in one of these.
_ENGINES = {
    "polars": "the Polars data engine",
    "duckdb": "the DuckDB database engine",
    "pyarrow": "the Arrow library",
    "sklearn": "scikit-learn",
    "imblearn": "imbalanced-learn",
    "scipy": "SciPy",
    "numpy": "NumPy",
    "fastexcel": "the Excel reader (fastexcel)",
    "xlsxwriter": "the Excel writer (XlsxWriter)",
    "reportlab": "the PDF writer (ReportLab)",
    "kaleido": "the chart renderer (Kaleido)",
    "plotly": "Plotly",
}


def _quiet_engine_panics(environ: MutableMapping[str, str] = os.environ) -> None:
    """Keep a Rust engine's panic (Polars', or another pyo3 library's) from printing a backtrace.

    When Rust code panics, Rust's panic hook itself writes ``thread '<unnamed>' panicked at
    FILE:LINE:COL:`` and the panic's message to stderr, before pyo3 hands Python a
    ``PanicException``: Python can neither catch nor silence those two lines. Under them the hook
    prints a stack backtrace (about 50 lines a panic) when ``RUST_BACKTRACE`` is 1 or full, as it
    is on this project's development machines, and only "note: run with `RUST_BACKTRACE=1` ..."
    when it is unset or 0. Rust reads the variable at the first panic and then keeps it, so setting
    it here works although Polars may already be imported. Checked with a small panicking Rust
    library loaded into Python: with RUST_BACKTRACE=1 inherited, 55 lines on stderr for one panic;
    with the process setting it to 0 before the panic, 4 (a blank line, the panic line, its
    message, the note). So a command sets it to 0 even over an inherited 1: ``SEGRISK_DEBUG=1``,
    the one switch for the detail, leaves it as it was (and turns it on when it is unset).
    """
    from warehouse import settings

    if settings.DEBUG.read(environ):
        environ.setdefault("RUST_BACKTRACE", "1")
    else:
        environ["RUST_BACKTRACE"] = "0"


def _failed_in(exc: BaseException) -> str | None:
    """The library, in words, whose code raised ``exc``: its frame nearest the failure."""
    found = None
    frame = exc.__traceback__
    while frame is not None:
        package = str(frame.tb_frame.f_globals.get("__name__", "")).partition(".")[0]
        found = _ENGINES.get(package, found)
        frame = frame.tb_next
    return found


def _failure_line(command: str, exc: BaseException) -> str:
    """One line for a failure that is not one of ours (a bug, or an engine's own failure)."""
    engine = _failed_in(exc)
    kind = type(exc).__name__
    if kind == "PanicException":  # pyo3_runtime's: Rust code panicked (it derives from BaseException)
        what = f"{engine or 'a compiled library'} crashed (an internal error of that library)"
    else:
        what = f"unexpected {kind}" + (f" in {engine}" if engine else "")
    lines = str(exc).strip().splitlines()
    detail = f": {lines[0][:200]}" if lines else ""
    return f"error: `segrisk {command}` failed: {what}{detail}; set SEGRISK_DEBUG=1 for the detail."


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; a user sees one clear line on failure, never a traceback.

    The boundary catches every BaseException, not only Exception: pyo3's ``PanicException``, which
    Polars raises when its Rust code panics, derives from BaseException. KeyboardInterrupt is one
    line too; SystemExit (argparse's --help and usage errors) and GeneratorExit pass through.
    """
    _quiet_engine_panics()
    from warehouse import settings
    from warehouse.errors import SegriskError

    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except SegriskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if settings.DEBUG.read():
            raise
        print(_failure_line(args.command, exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The ``segrisk`` command.

It lives in ``dashboard`` because that package sits on top of the import graph: ``serve`` and
``train`` (later) need ``dashboard`` and ``models``, while ``warehouse`` may import neither.
Heavy imports happen inside each command so ``segrisk --help`` stays instant.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
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
    from warehouse.build import build_warehouse
    from warehouse.db import default_db_path
    from warehouse.spec import load_spec

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
    from warehouse.checks import run_checks
    from warehouse.db import default_db_path, read_only

    db_path = default_db_path(args.db)
    with read_only(db_path) as con:
        results = run_checks(con)
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        print(f"{mark}  {result.check_name:<24} {result.table_name:<22} {result.detail}")
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from warehouse.build import build_warehouse
    from warehouse.db import default_db_path
    from warehouse.spec import load_spec

    _check_size(args.customers)
    data_dir = _ensure_demo_data(args.customers, args.seed)
    spec, text = load_spec("demo")
    summary = build_warehouse(spec, text, data_dir, default_db_path(args.db), progress=_say)
    _print_build(summary)
    cmd_train(argparse.Namespace(model="all", seed=args.seed, k=None, as_of=None, db=str(summary.db_path)))
    print(f"Open it with any DuckDB client, e.g.: duckdb -readonly {summary.db_path}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from models.train import train_rfm, train_segments
    from warehouse.db import default_db_path

    db_path = default_db_path(args.db)
    if args.model in ("segments", "all"):
        if args.model == "all" and not _supports(db_path, "personas"):
            print("Skipped segments: this warehouse has no customer attributes to build personas from.")
        else:
            run = train_segments(db_path, seed=args.seed, k=args.k, progress=_say)
            print(
                f"Trained segments on {db_path}: run {run.run_id}; k = {run.metrics['k']}, "
                f"silhouette {run.metrics['silhouette']:.3f}"
            )
            _print_personas(db_path)
    if args.model in ("rfm", "all"):
        if args.model == "all" and not _supports(db_path, "rfm"):
            print("Skipped rfm: this warehouse has no transactions.")
        else:
            run = train_rfm(db_path, seed=args.seed, progress=_say, as_of=args.as_of)
            clusters = ", ".join(f"{name} {count:,}" for name, count in run.metrics["cluster_counts"].items())
            print(
                f"Trained rfm on {db_path}: run {run.run_id}; {run.metrics['customers']:,} customers; clusters: {clusters}"
            )
    return 0


def _supports(db_path: Path, capability: str) -> bool:
    from warehouse.db import read_only

    with read_only(db_path) as con:
        rows = con.execute("SELECT is_supported FROM meta_capabilities WHERE capability = ?", [capability]).fetchall()
    return bool(rows and rows[0][0])


def _print_personas(db_path: Path) -> None:
    from models.train import list_personas

    for key, name, customers, share, description, strategy in list_personas(db_path):
        print(f"  {key:<4} {name:<30} {customers:>9,} ({share:5.1%})  {description}")
        print(f"       strategy: {strategy}")


def cmd_personas(args: argparse.Namespace) -> int:
    from models.train import set_persona_label
    from warehouse.db import default_db_path

    db_path = default_db_path(args.db)
    if args.action == "rename":
        set_persona_label(db_path, args.segment_key, name=args.text)
        print(f"Renamed {args.segment_key} to '{args.text}'.")
    elif args.action == "strategy":
        set_persona_label(db_path, args.segment_key, strategy=args.text)
        print(f"Set the strategy of {args.segment_key}.")
    _print_personas(db_path)
    return 0


def cmd_specs(args: argparse.Namespace) -> int:
    from warehouse.spec import builtin_spec_names, load_spec

    for name in builtin_spec_names():
        spec, _ = load_spec(name)
        print(f"{name:<16} {spec.description}")
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
    _db_argument(demo)
    demo.set_defaults(handler=cmd_demo)

    train = commands.add_parser("train", help="fit models on the warehouse and write their results back into it")
    train.add_argument(
        "model",
        choices=["segments", "rfm", "all"],
        help="segments: K-Means personas; rfm: RFM scores, segments and clusters; all: both (rfm when there are transactions)",
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
    _db_argument(train)
    train.set_defaults(handler=cmd_train)

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

    specs = commands.add_parser("specs", help="list the built-in dataset specs")
    specs.set_defaults(handler=cmd_specs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; a user sees one clear line on failure, never a traceback."""
    from warehouse.errors import SegriskError

    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except SegriskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; the previous warehouse is unchanged.", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("SEGRISK_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            "(set SEGRISK_DEBUG=1 to see the details).",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())

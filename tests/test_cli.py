"""The segrisk command: documented commands exist, work, and fail with one line, never a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import FIXTURES, REPO, file_digest

from dashboard.cli import build_parser, main


def _commands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)


def test_readme_commands_exist_and_every_command_is_documented() -> None:
    readme = (REPO / "README.md").read_text()
    mentioned = set(re.findall(r"segrisk ([a-z]+)", readme))
    commands = _commands()
    assert mentioned - {"demo"} <= commands | {"build"}, mentioned - commands
    assert mentioned >= commands, f"undocumented commands: {commands - mentioned}"
    for command in commands:
        for action in build_parser()._subparsers._group_actions[0].choices[command]._actions:  # type: ignore[union-attr]
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in readme, f"`segrisk {command} {flag}` is not in the README"


def test_readme_opens_with_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert "segrisk demo" in blocks[0]
    assert "pytest" in blocks[1]


def test_build_and_check_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "g.duckdb"
    assert main(["build", "--spec", "german-credit", "--data-dir", str(FIXTURES), "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "customers: 200" in out and "data tests:" in out
    assert main(["check", "--db", str(db)]) == 0
    assert "0 failed" in capsys.readouterr().out


def test_check_fails_on_a_broken_warehouse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "g.duckdb"
    assert main(["build", "--spec", "german-credit", "--data-dir", str(FIXTURES), "--db", str(db)]) == 0
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO customers (customer_id) SELECT customer_id FROM customers LIMIT 2")
    assert main(["check", "--db", str(db)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  unique_key" in out and "2 duplicate customer_id values" in out


def test_db_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "env.duckdb"
    monkeypatch.setenv("SEGRISK_DB", str(db))
    assert main(["build", "--spec", "german-credit", "--data-dir", str(FIXTURES)]) == 0
    assert db.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["build", "--spec", "no-such-spec"], "error: Spec 'no-such-spec' is neither a built-in spec"),
        (
            ["build", "--spec", "german-credit", "--data-dir", "/nonexistent"],
            "error: --data-dir /nonexistent is not a folder.",
        ),
        (["check", "--db", "/nonexistent/x.duckdb"], "error: No warehouse at /nonexistent/x.duckdb"),
        (
            ["generate", "--customers", "5", "--out", "x"],
            "error: --customers must be between 1,000 and 5,000,000, got 5.",
        ),
        (["demo", "--customers", "0"], "error: --customers must be between 1,000"),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path: Path, args: list[str], expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dashboard.cli", *args], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode != 0
    assert result.stderr.startswith(expected), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# -- failures that are not ours: an engine's panic, a bug, Ctrl-C (issue 12) ------------------------
PANIC_MESSAGE = "index out of bounds: the len is 3 but the index is 7"


def _panic() -> BaseException:
    """The exception Polars raises when its Rust code panics: pyo3's PanicException, a BaseException."""
    import polars.exceptions

    panic_class = getattr(polars.exceptions, "PanicException", None) or sys.modules["pyo3_runtime"].PanicException
    assert not issubclass(panic_class, Exception)  # what let it past `except Exception`
    return panic_class(PANIC_MESSAGE)


def _raised_inside(module: str, exc: BaseException):  # noqa: ANN202 - a function that raises
    """A function that raises ``exc`` from a frame of ``module``, as a failure inside that library does."""
    namespace: dict[str, object] = {"__name__": module, "exc": exc}
    exec("def fail(*args, **kwargs):\n    raise exc\n", namespace)
    return namespace["fail"]


@pytest.fixture
def no_debug(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("SEGRISK_DEBUG", raising=False)
    monkeypatch.setenv("RUST_BACKTRACE", "1")  # as on a machine set up for Rust; restored afterwards
    return monkeypatch


def test_an_engine_panic_is_one_line_without_traceback(
    tmp_path: Path, no_debug: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "g.duckdb"
    assert main(["build", "--spec", "german-credit", "--data-dir", str(FIXTURES), "--db", str(db)]) == 0
    capsys.readouterr()
    no_debug.setattr("warehouse.checks.run_checks", _raised_inside("polars.lazyframe.frame", _panic()))
    code = main(["check", "--db", str(db)])
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err == (
        f"error: `segrisk check` failed: the Polars data engine crashed (an internal error of that library): "
        f"{PANIC_MESSAGE}; set SEGRISK_DEBUG=1 for the detail.\n"
    )
    assert os.environ["RUST_BACKTRACE"] == "0"  # Rust's own panic lines come without a backtrace


def test_a_panic_during_a_build_leaves_no_temporary_file(
    tmp_path: Path, no_debug: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "g.duckdb"
    build = ["build", "--spec", "german-credit", "--data-dir", str(FIXTURES), "--db", str(db)]
    assert main(build) == 0
    before = file_digest(db)
    capsys.readouterr()
    no_debug.setattr("dashboard.cli._say", lambda _message: None)  # no progress lines: only the error
    no_debug.setattr(pl.LazyFrame, "collect", _raised_inside("polars.lazyframe.frame", _panic()))
    assert main(build) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: `segrisk build` failed: the Polars data engine crashed"), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.duckdb"]  # no .g.duckdb.building-* left
    assert file_digest(db) == before


def test_an_unexpected_error_is_one_line(no_debug: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    no_debug.setattr("warehouse.spec.builtin_spec_names", _raised_inside("sklearn.base", ZeroDivisionError("x")))
    assert main(["specs"]) == 1
    assert capsys.readouterr().err == (
        "error: `segrisk specs` failed: unexpected ZeroDivisionError in scikit-learn: x; "
        "set SEGRISK_DEBUG=1 for the detail.\n"
    )


def test_ctrl_c_is_one_line(no_debug: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    no_debug.setattr("warehouse.spec.builtin_spec_names", _raised_inside("polars", KeyboardInterrupt()))
    assert main(["specs"]) == 130
    assert capsys.readouterr().err == "Interrupted.\n"


def test_debug_shows_the_panic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGRISK_DEBUG", "1")
    monkeypatch.setenv("RUST_BACKTRACE", "full")
    panic = _panic()
    monkeypatch.setattr("warehouse.spec.builtin_spec_names", _raised_inside("polars", panic))
    with pytest.raises(type(panic), match="index out of bounds"):
        main(["specs"])
    assert os.environ["RUST_BACKTRACE"] == "full"  # the user's, left alone when debugging


PANICKING_COMMAND = """
import sys
import polars.exceptions
import warehouse.spec
from dashboard.cli import main

def fail():
    raise polars.exceptions.PanicException("index out of bounds")

warehouse.spec.builtin_spec_names = fail
sys.exit(main(["specs"]))
"""


@pytest.mark.parametrize("debug", [False, True])
def test_a_panicking_command_in_its_own_process(tmp_path: Path, debug: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SEGRISK_DEBUG"} | ({"SEGRISK_DEBUG": "1"} if debug else {})
    result = subprocess.run(
        [sys.executable, "-c", PANICKING_COMMAND], capture_output=True, text=True, cwd=tmp_path, env=env, check=False
    )
    assert result.returncode == 1
    if debug:
        assert "Traceback (most recent call last)" in result.stderr, result.stderr
        assert "PanicException: index out of bounds" in result.stderr, result.stderr
    else:
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        assert "crashed" in result.stderr and "SEGRISK_DEBUG=1" in result.stderr, result.stderr

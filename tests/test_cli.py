"""The segrisk command: documented commands exist, work, and fail with one line, never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import FIXTURES, REPO

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

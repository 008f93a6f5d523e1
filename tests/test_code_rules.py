"""The codebase's rules, enforced in the normal test run (issue 14, item 9): ruff's lint and format,
and the import contract between the layers: ``warehouse`` imports neither ``models`` nor
``dashboard``, and ``models`` never imports ``dashboard`` (lazy imports inside functions count too).
Each rule's checker is also shown to fail on a deliberate break."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGES = ("warehouse", "models", "dashboard")
#: Which packages each layer may not import.
FORBIDDEN = {"warehouse": {"models", "dashboard"}, "models": {"dashboard"}, "dashboard": set()}


def imported_packages(source: str) -> set[str]:
    """The top-level packages a module imports, wherever the import statement sits."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def contract_breaks(package: str, relative: str, source: str) -> list[str]:
    """Each forbidden import of one module of ``package``, as ``file imports package``."""
    return [f"{relative} imports {name}" for name in sorted(imported_packages(source) & FORBIDDEN[package])]


def test_the_layers_import_only_downwards() -> None:
    breaks = [
        problem
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        for problem in contract_breaks(package, str(path.relative_to(REPO)), path.read_text(encoding="utf-8"))
    ]
    assert breaks == []


@pytest.mark.parametrize(
    ("package", "source", "expected"),
    [
        ("warehouse", "from dashboard.app import create_app\n", ["warehouse/x.py imports dashboard"]),
        ("warehouse", "def f():\n    import models.train\n", ["warehouse/x.py imports models"]),
        ("models", "from dashboard import auth\n", ["models/x.py imports dashboard"]),
        ("models", "from warehouse.db import read_only\nfrom . import runs\n", []),
        ("dashboard", "import models.train\nimport warehouse.db\n", []),
    ],
)
def test_the_contract_check_catches_a_deliberate_break(package: str, source: str, expected: list[str]) -> None:
    assert contract_breaks(package, f"{package}/x.py", source) == expected


def _ruff(*arguments: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *arguments], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_ruff_finds_nothing_to_fix() -> None:
    result = _ruff("check", *PACKAGES, "tests")
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_code_is_formatted_as_ruff_formats_it() -> None:
    result = _ruff("format", "--check", *PACKAGES, "tests")
    assert result.returncode == 0, result.stdout[-3000:]


def test_ruff_fails_on_a_deliberate_break(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    (tmp_path / "broken.py").write_text("import os\nx  =  [1,2]\n")  # an unused import, and unformatted
    assert _ruff("check", "broken.py", cwd=tmp_path).returncode == 1
    assert _ruff("format", "--check", "broken.py", cwd=tmp_path).returncode == 1

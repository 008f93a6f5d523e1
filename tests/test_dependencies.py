"""The versions CI tests are the versions installed: .ci/constraints.txt pins every dependency,
and this venv holds exactly the pinned versions (the README's commands install with -c)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from conftest import REPO

CONSTRAINTS = REPO / ".ci" / "constraints.txt"
INSTALL_HINT = ".venv/bin/pip install -c .ci/constraints.txt -e '.[test]'"

try:
    from packaging.utils import canonicalize_name
except ImportError:  # packaging comes with the test tools; the rule is PEP 503's

    def canonicalize_name(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    """The distribution a requirement names: 'scikit-learn>=1.6' -> 'scikit-learn'."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"cannot read a package name in pyproject.toml's requirement {requirement!r}"
    return canonicalize_name(match.group(1))


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, raw in enumerate(CONSTRAINTS.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version.strip(), f".ci/constraints.txt line {number} is not NAME==VERSION: {raw!r}"
        pins[canonicalize_name(name.strip())] = version.strip()
    return pins


def _declared() -> dict[str, list[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return {
        "dependencies": project["dependencies"],
        "the test extra": extras.get("test", []),
        "the bench extra": extras.get("bench", []),
    }


def test_every_dependency_is_pinned() -> None:
    pins = _pins()
    assert "segrisk" not in pins, ".ci/constraints.txt pins segrisk itself: leave its own line out"
    missing = [
        f"{_requirement_name(requirement)} (from {where})"
        for where, requirements in _declared().items()
        for requirement in requirements
        if _requirement_name(requirement) not in pins
    ]
    assert not missing, (
        f"pyproject.toml names {', '.join(missing)} but .ci/constraints.txt pins no version of it: "
        "run .ci/upgrade-dependencies"
    )


def test_installed_versions_are_the_pinned_ones() -> None:
    wrong = []
    for name, pinned in sorted(_pins().items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # e.g. pandas, of the bench extra, in a venv made with '.[test]'
        if installed != pinned:
            wrong.append(f"{name} is {installed} here but pinned to {pinned}")
    assert not wrong, (
        f"This venv does not hold the versions CI tests ({'; '.join(wrong)}): reinstall it with "
        f"`{INSTALL_HINT}`, or, to move the pins, run .ci/upgrade-dependencies."
    )


def test_the_documented_commands_install_with_the_constraints() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    for block in blocks[:2]:
        assert "pip install -c .ci/constraints.txt " in block, block
    ci = (REPO / ".ci" / "run").read_text()
    assert blocks[1].strip() in ci, ".ci/run does not run the README's test command verbatim"

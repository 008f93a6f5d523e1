"""The settings registry: every ``SEGRISK_*`` setting in one table, read when asked for, refused with
one sentence at start-up, documented in the README, and read from the environment nowhere else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dashboard.cli import main
from warehouse import settings
from warehouse.errors import SegriskError, SettingError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
#: Values each setting refuses (a setting without one takes any text).
BAD = {
    "SEGRISK_MAX_INPUT_MB": "4 GB",
    "SEGRISK_BUILD_MEMORY_MB": "lots",
    "SEGRISK_WRITE_LOCK_WAIT_S": "soon",
    "SEGRISK_SECRET_KEY": "short",
    "SEGRISK_SECURE_COOKIES": "yes",
    "SEGRISK_SESSION_IDLE_MINUTES": "0",
    "SEGRISK_SESSION_HOURS": "1.5",
    "SEGRISK_ADMIN_PASSWORD": "short",
    "SEGRISK_USERS": "carol:superuser:xyz",
    "SEGRISK_QUERY_CACHE_MB": "lots",
    "SEGRISK_MIN_CELL_SIZE": "zero",
    "SEGRISK_SQL_TIME_LIMIT": "-1",
    "SEGRISK_SQL_ROW_CAP": "many",
    "SEGRISK_SQL_THREADS": "0",
    "SEGRISK_SQL_WORKERS": "two",
    "SEGRISK_SQL_RESULT_MB": "1.5",
    "SEGRISK_SQL_RESULTS_MB": "0",
    "SEGRISK_SQL_WORKER_MEMORY": "lots",
}
SECRETS = ("SEGRISK_SECRET_KEY", "SEGRISK_ADMIN_PASSWORD", "SEGRISK_USERS")  # their sentences name no secret


@pytest.fixture(autouse=True)
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in settings.REGISTRY:
        monkeypatch.delenv(name, raising=False)


# -- the registry ------------------------------------------------------------------------------------------
def test_every_setting_has_a_name_default_parser_help_and_place() -> None:
    assert len(settings.REGISTRY) >= 20
    for name, setting in settings.REGISTRY.items():
        assert name == setting.name and name.startswith("SEGRISK_")
        assert setting.applies and set(setting.applies) <= set(settings.PLACES), name
        assert setting.help[0].isupper() and setting.help.endswith(".") and setting.help.count(". ") == 0, name
        assert setting.read({}) == setting.default, name  # unset is the default, and the default is not refused


def test_settings_are_read_when_asked_for_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.MIN_CELL_SIZE.read() == 5
    monkeypatch.setenv("SEGRISK_MIN_CELL_SIZE", " 7 ")
    assert settings.MIN_CELL_SIZE.read() == 7 == settings.get("SEGRISK_MIN_CELL_SIZE")
    assert settings.MIN_CELL_SIZE.read({"SEGRISK_MIN_CELL_SIZE": "9"}) == 9  # a given mapping wins


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("SEGRISK_DB", "bank.duckdb", Path("bank.duckdb")),
        ("SEGRISK_DEBUG", "0", True),  # any value turns it on, as before
        ("SEGRISK_MAX_INPUT_MB", "12", 12),
        ("SEGRISK_BUILD_MEMORY_MB", "800", 800),
        ("SEGRISK_WRITE_LOCK_WAIT_S", "0.5", 0.5),
        ("SEGRISK_SECURE_COOKIES", "TRUE", True),
        ("SEGRISK_SECURE_COOKIES", "0", False),
        ("SEGRISK_SESSION_IDLE_MINUTES", "1440", 1440),
        ("SEGRISK_USERS", "a:viewer:h1, b:admin:h2", (("a", "viewer", "h1"), ("b", "admin", "h2"))),
        ("SEGRISK_QUERY_CACHE_MB", "0", 0.0),
        ("SEGRISK_QUERY_CACHE_MB", "1.5", 1.5),
        ("SEGRISK_SQL_TIME_LIMIT", "2.5", 2.5),
        ("SEGRISK_SQL_WORKER_MEMORY", "512 MiB", "512 MiB"),
    ],
)
def test_good_values_are_typed(name: str, text: str, value: object) -> None:
    assert settings.get(name, {name: text}) == value


@pytest.mark.parametrize(("name", "text"), sorted(BAD.items()))
def test_a_bad_value_is_one_sentence_naming_the_setting_and_the_value(name: str, text: str) -> None:
    with pytest.raises(SettingError) as refused:
        settings.get(name, {name: text})
    sentence = str(refused.value)
    assert sentence.startswith(f"{name} ") and sentence.endswith(".") and "\n" not in sentence, sentence
    if name not in SECRETS:
        assert text in sentence, sentence  # a password or key is never repeated back
    assert isinstance(refused.value, SegriskError)


def test_a_caller_may_keep_its_own_error_class() -> None:
    from warehouse.errors import SourceError

    with pytest.raises(SourceError, match=r"^SEGRISK_MAX_INPUT_MB must be a whole number of megabytes"):
        settings.MAX_INPUT_MB.read({"SEGRISK_MAX_INPUT_MB": "x"}, error=SourceError)


def test_validate_reads_only_the_settings_of_the_places_asked_for() -> None:
    bad_console = {"SEGRISK_SQL_ROW_CAP": "many"}
    settings.validate("build", environ=bad_console)
    with pytest.raises(SettingError, match="SEGRISK_SQL_ROW_CAP"):
        settings.validate("dashboard", "console", environ=bad_console)


def test_the_listing_masks_secrets() -> None:
    shown = dict(
        (setting.name, text)
        for setting, text in settings.listing({"SEGRISK_SECRET_KEY": "k" * 40, "SEGRISK_SQL_ROW_CAP": "many"})
    )
    assert "k" * 40 not in shown["SEGRISK_SECRET_KEY"] and "hidden" in shown["SEGRISK_SECRET_KEY"]
    assert shown["SEGRISK_SQL_ROW_CAP"].startswith("refused: SEGRISK_SQL_ROW_CAP must be")
    assert shown["SEGRISK_MIN_CELL_SIZE"] == "5 (default)"


# -- validated at start-up ------------------------------------------------------------------------------------
def test_a_bad_dashboard_setting_stops_serve_before_it_prints_the_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEGRISK_QUERY_CACHE_MB", "lots")
    assert main(["serve", "--db", str(tmp_path / "none.duckdb"), "--port", "0"]) == 2
    captured = capsys.readouterr()
    assert "http://" not in captured.out
    assert captured.err == (
        "error: SEGRISK_QUERY_CACHE_MB must be a number of megabytes, 0 or more (0 turns the cache off), not 'lots'.\n"
    )


@pytest.mark.parametrize("name", ["SEGRISK_SQL_WORKERS", "SEGRISK_SECURE_COOKIES", "SEGRISK_MIN_CELL_SIZE"])
def test_serve_refuses_each_dashboard_and_console_setting(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, BAD[name])
    assert main(["serve", "--db", str(tmp_path / "none.duckdb"), "--port", "0"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {name} must be ")


def test_a_bad_build_setting_stops_the_build_before_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A small build never asks for the memory setting (under 1 GB), so only the start-up check finds it.
    monkeypatch.setenv("SEGRISK_BUILD_MEMORY_MB", "lots")
    db = tmp_path / "g.duckdb"
    assert main(["build", "--spec", "german-credit", "--data-dir", str(FIXTURES), "--db", str(db)]) == 2
    assert capsys.readouterr().err == (
        "error: SEGRISK_BUILD_MEMORY_MB must be a whole number of megabytes, 1 or more, got 'lots'.\n"
    )
    assert not db.exists()


# -- documented, and read nowhere else ----------------------------------------------------------------------
def test_the_readme_documents_every_setting_with_its_default() -> None:
    readme = (REPO / "README.md").read_text()
    for setting in settings.REGISTRY.values():
        row = re.search(rf"^\| `{setting.name}` \| ([^|]+) \|", readme, re.M)
        assert row, f"{setting.name} has no row in the README's settings table"
        assert row.group(1).strip() == setting.default_text, (setting.name, row.group(1))


#: Reads of the process environment that are not settings, each with its reason.
NOT_SETTINGS = {
    ("dashboard/cli.py", "os.environ.get('USER', 'unknown')"),  # who made an API key, for its record
    # writes RUST_BACKTRACE (Rust's own panic output); SEGRISK_DEBUG is read through the registry
    ("dashboard/cli.py", "environ: MutableMapping[str, str] = os.environ"),
}
READS = re.compile(r"os\.environ|os\.getenv|\bgetenv\(|environ\.get\(\s*[\"']SEGRISK_|environ\[\s*[\"']SEGRISK_")


def test_no_module_but_the_registry_reads_a_setting_from_the_environment() -> None:
    found = []
    for package in ("dashboard", "models", "warehouse"):
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative == "warehouse/settings.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if READS.search(line) and not any(
                    relative == where and snippet in line for where, snippet in NOT_SETTINGS
                ):
                    found.append(f"{relative}:{number}: {line.strip()}")
    assert not found, "read the setting through warehouse.settings:\n" + "\n".join(found)


def test_segrisk_settings_lists_each_setting_with_its_value_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEGRISK_ADMIN_PASSWORD", "a long admin password")
    monkeypatch.setenv("SEGRISK_MIN_CELL_SIZE", "zero")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in settings.REGISTRY)
    assert "a long admin password" not in out and "(set, hidden)" in out
    assert "refused: SEGRISK_MIN_CELL_SIZE must be a whole number of at least 1" in out
    assert settings.QUERY_CACHE_MB.help in out

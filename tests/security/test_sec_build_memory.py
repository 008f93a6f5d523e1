"""Issue 13, item 2 and must-show 3, the rest: the reader streams, but a build holds the customer-level
sources in memory (about 16 times their text size), so a real 2 GB customers file would still have been
killed by the out-of-memory killer. The build now stops first, with the figures, when the projection
exceeds the memory available (or ``SEGRISK_BUILD_MEMORY_MB``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, Builder

from warehouse.errors import SegriskError
from warehouse.sources import BUILD_MEMORY_ENV_VAR, available_memory_bytes

CSV = "german_credit/german_credit_data_with_risk.csv"


@pytest.fixture
def large_customers_file(tmp_path: Path) -> Path:
    """German credit's customers file extended to 200 MB without using disk (a sparse tail)."""
    folder = tmp_path / "data"
    (folder / "german_credit").mkdir(parents=True)
    shutil.copyfile(FIXTURES / CSV, folder / CSV)
    os.truncate(folder / CSV, 200_000_000)
    return folder


def test_a_build_that_would_not_fit_in_memory_stops_first_with_the_figures(
    build: Builder, large_customers_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BUILD_MEMORY_ENV_VAR, "1000")
    with pytest.raises(SegriskError) as refused:
        build("german-credit", large_customers_file, tmp_path / "wh" / "g.duckdb")
    sentence = str(refused.value)
    assert sentence.startswith(f"customers: file {CSV} is 200 MB;")
    assert "about 3.2 GB of memory" in sentence and "1.0 GB is available" in sentence
    assert BUILD_MEMORY_ENV_VAR in sentence
    assert not (tmp_path / "wh" / "g.duckdb").exists()
    # With room to spare the build goes on to read the file, and stops at its first NUL byte instead.
    monkeypatch.setenv(BUILD_MEMORY_ENV_VAR, "100000")
    with pytest.raises(SegriskError, match="NUL byte"):
        build("german-credit", large_customers_file, tmp_path / "wh" / "g.duckdb")


def test_small_inputs_are_never_held_back(build: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUILD_MEMORY_ENV_VAR, "1")  # far below what any build needs: under 1 GB is not asked
    assert build("german-credit", FIXTURES, tmp_path / "g.duckdb").customers > 0


@pytest.mark.parametrize("value", ["0", "-5", "lots", "2.5"])
def test_a_bad_memory_setting_is_refused_with_a_sentence(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUILD_MEMORY_ENV_VAR, value)
    with pytest.raises(SegriskError, match=f"{BUILD_MEMORY_ENV_VAR} must be a whole number of megabytes"):
        available_memory_bytes()


def test_without_the_setting_the_machines_available_memory_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BUILD_MEMORY_ENV_VAR, raising=False)
    available = available_memory_bytes()
    assert available is not None and 0 < available <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

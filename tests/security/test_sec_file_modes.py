"""Issue 13, low finding: the warehouse and the app-state store were world-readable under the usual
umask 022 (the store holds password hashes). Both are created owner-only; a mode an admin gives the
warehouse on purpose (group-readable for an analysts' group) is kept by later builds."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Builder

from warehouse.app_state import AppState, state_path


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_warehouse_is_owner_only_and_a_chosen_mode_survives_a_rebuild(
    build: Builder, tmp_path: Path, umask_022: None
) -> None:
    db = tmp_path / "german.duckdb"
    build("german-credit", db_path=db)
    assert _mode(db) == 0o600
    db.chmod(0o640)  # an admin shares it with the analysts' group on purpose
    build("german-credit", db_path=db)
    assert _mode(db) == 0o640


def test_the_store_is_owner_only_whoever_creates_it(tmp_path: Path, umask_022: None) -> None:
    store = AppState(state_path(tmp_path / "bank.duckdb"))
    store.add_user("alice", "admin", "a long password")  # as `segrisk users add` does, with no server
    store.record_audit("login", user="alice")
    for path in (store.path, Path(f"{store.path}-wal"), Path(f"{store.path}-shm")):
        if path.exists():
            assert _mode(path) == 0o600, path.name

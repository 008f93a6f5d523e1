"""Issue 13, low findings: ``segrisk check`` reads every block of the warehouse (it passed a file
with 1 MB of random bytes in it), and the audit log is hash-chained, so an entry changed or removed
with the append-only triggers dropped is found by ``segrisk check``."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from dashboard.cli import main
from warehouse.app_state import AppState, audit_entry_hash, state_path


def _check(db: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check", "--db", str(db)])
    return code, capsys.readouterr().out


def test_check_reads_every_block_and_names_a_damaged_table(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    code, out = _check(db, capsys)
    assert code == 0 and "PASS  full_read_integrity" in out
    size = db.stat().st_size
    with db.open("r+b") as handle:  # random bytes through the data, as a bad disk would leave them
        for share in (0.3, 0.5, 0.7):  # three places, so one is in a table's blocks whatever the layout
            handle.seek(int(size * share))
            handle.write(os.urandom(256 << 10))
    code, out = _check(db, capsys)
    assert code != 0
    line = next((line for line in out.splitlines() if "full_read_integrity" in line), "")
    # Either the full read names the damage, or (when the catalog itself was hit) the file cannot
    # even be opened, which the check's error line says: never "passed".
    assert (line.startswith("FAIL") and "Corrupt database file" in line) or "passed" not in out


def _store_with_entries(tmp_path: Path, count: int = 5) -> AppState:
    store = AppState(tmp_path / "x.state.sqlite")
    for number in range(count):
        store.record_audit("customer_lookup", user="alice", detail=f"customer {number}", client_address="10.0.0.1")
    return store


def _tamper(path: Path, sql: str, params: list) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("DROP TRIGGER audit_log_no_update")
        con.execute("DROP TRIGGER audit_log_no_delete")
        con.execute(sql, params)
    finally:
        con.close()


def test_the_chain_holds_and_each_entry_links_to_the_one_before(tmp_path: Path) -> None:
    store = _store_with_entries(tmp_path)
    found = store.verify_audit_chain()
    assert found.holds and found.entries == 5 and found.unchained == 0
    con = sqlite3.connect(store.path)
    rows = con.execute(
        "SELECT at, user_name, action, detail, client_address, outcome, entry_hash FROM audit_log ORDER BY id"
    ).fetchall()
    con.close()
    previous = None
    for *values, stored in rows:
        assert stored == audit_entry_hash(previous, values)
        previous = stored


@pytest.mark.parametrize(
    ("sql", "broken_at"),
    [
        ("UPDATE audit_log SET detail = 'nothing to see' WHERE id = ?", 3),  # an entry edited
        ("DELETE FROM audit_log WHERE id = ?", 4),  # an entry removed: the next one no longer follows
        ("UPDATE audit_log SET entry_hash = NULL WHERE id = ?", 3),  # a hash wiped
    ],
)
def test_tampering_breaks_the_chain_and_segrisk_check_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], demo_db: Path, sql: str, broken_at: int
) -> None:
    db = tmp_path / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    store = AppState(state_path(db))
    for number in range(5):
        store.record_audit("download", user="bob", detail=f"file {number}")
    assert _check(db, capsys)[0] == 0
    _tamper(store.path, sql, [3])
    found = store.verify_audit_chain()
    assert not found.holds and found.broken_at == broken_at
    code, out = _check(db, capsys)
    assert code == 1
    line = next(line for line in out.splitlines() if "audit_log_chain" in line)
    assert line.startswith("FAIL") and f"entry {broken_at}" in line


def test_an_audit_log_from_before_the_chain_keeps_its_entries_and_chains_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "old.state.sqlite"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(
        "CREATE TABLE audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, user_name TEXT, "
        "action TEXT NOT NULL, detail TEXT, client_address TEXT, outcome TEXT NOT NULL)"
    )
    con.execute(
        "INSERT INTO audit_log (at, user_name, action, outcome) VALUES ('2026-01-01T00:00:00', 'a', 'login', 'ok')"
    )
    con.close()
    store = AppState(path)
    store.record_audit("login", user="a")
    store.record_audit("logout", user="a")
    found = store.verify_audit_chain()
    assert found.holds and found.entries == 3 and found.unchained == 1
    assert [e.action for e in store.audit_entries()] == ["logout", "login", "login"]


def test_many_first_openings_at_once_add_the_chain_column_once(tmp_path: Path) -> None:
    """Every new ``AppState`` checks the audit log for its hash column; several opening a new store at
    once raced to add it ("duplicate column name: entry_hash", seen in CI)."""
    import threading

    path = tmp_path / "new.state.sqlite"
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def open_and_write(number: int) -> None:
        try:
            barrier.wait()
            AppState(path).record_audit("login", user=f"user{number}")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_and_write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    found = AppState(path).verify_audit_chain()
    assert found.holds and found.entries == 8


def test_the_chain_column_added_by_another_opener_meanwhile_is_no_error(tmp_path: Path) -> None:
    """The race itself, made certain: this opener read the table before the column existed, and
    another one added it before this one's ALTER."""
    from warehouse.app_state import _chain_audit_log

    store = AppState(tmp_path / "s.state.sqlite")
    store.record_audit("login", user="a")  # the store exists, its audit log chained

    class ReadBeforeTheOtherAdded:
        def __init__(self, con: sqlite3.Connection) -> None:
            self.con = con

        def execute(self, sql: str, *args: object) -> object:
            if sql.startswith("PRAGMA table_info"):
                return [row for row in self.con.execute(sql, *args) if row[1] != "entry_hash"]
            return self.con.execute(sql, *args)

    con = sqlite3.connect(store.path, isolation_level=None)
    try:
        _chain_audit_log(ReadBeforeTheOtherAdded(con))  # type: ignore[arg-type]
    finally:
        con.close()
    assert store.verify_audit_chain().holds

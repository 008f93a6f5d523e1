"""Writers of one warehouse take turns, and temporary files do not outlive their process (issue 13).

Builds and model runs each replace the warehouse with a new file. Two at once used to both
report success while the last rename silently dropped the other's work; a writer killed with
``kill -9`` left its ``.NAME.building-PID`` / ``.NAME.training-PID`` files (and ``.wal``) forever.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from conftest import FIXTURES, REPO, Builder, file_digest

from models.runs import write_back
from warehouse.build import build_warehouse
from warehouse.errors import WarehouseError
from warehouse.locks import LOCK_WAIT_ENV_VAR, WriterBusyError, exclusive_writer, lock_path
from warehouse.spec import load_spec

#: Each test starts writer processes (seconds each): not in the fast subset.
pytestmark = pytest.mark.slow

#: A child that waits for ``go`` to exist, then runs the statistics model (the quickest) with a
#: slow write-back (the copy-to-rename window held open for a while), and prints its run id.
#: Once its write-back has started it says so (``writing``).
TRAIN_CHILD = """
import sys, time
from pathlib import Path
from models import runs, train

db, go, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
slow, writing = float(sys.argv[4]), Path(sys.argv[5])

def slow_write_back(path, write, **options):
    writing.touch()

    def slowly(con):
        time.sleep(slow)
        write(con)
    runs.write_back(path, slowly, **options)

train.write_back = slow_write_back
while not go.exists():
    time.sleep(0.02)
run = train.train_statistics(db, seed=seed)
print(run.run_id)
"""

#: A child that waits for ``go``, then rebuilds the warehouse; once it has copied the model
#: history from the warehouse it replaces, it says so (``read``), waits for the model run to
#: start writing (``writing``, or 60 s: with the lock the run waits for the build) and takes
#: its time to finish.
BUILD_CHILD = """
import sys, time
from pathlib import Path
from warehouse import build, spec

db, go, read, data = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
writing = Path(sys.argv[5])
real = build.carry_over_history

def carry_over_then_wait(*args, **kwargs):
    copied = real(*args, **kwargs)
    read.touch()
    deadline = time.monotonic() + 60
    while not writing.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(4)
    return copied

build.carry_over_history = carry_over_then_wait
parsed, text = spec.load_spec("german-credit")
while not go.exists():
    time.sleep(0.02)
build.build_warehouse(parsed, text, data, db)
print("built")
"""


def _child(script: str, *args: object) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop(LOCK_WAIT_ENV_VAR, None)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(child: subprocess.Popen[str]) -> str:
    out, err = child.communicate(timeout=240)
    assert child.returncode == 0, err[-2000:]
    return out.strip().splitlines()[-1]


def _run_ids(db: Path) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {row[0] for row in con.execute("SELECT run_id FROM ml_model_runs").fetchall()}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def german(build: Builder, tmp_path: Path) -> Path:
    db = tmp_path / "wh" / "g.duckdb"
    build("german-credit", FIXTURES, db)
    return db


def test_two_model_runs_at_once_both_survive(german: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    children = [_child(TRAIN_CHILD, german, go, seed, 1.5, tmp_path / f"writing-{seed}") for seed in (42, 7)]
    time.sleep(0.5)
    go.touch()
    run_ids = {_finish(child) for child in children}
    assert len(run_ids) == 2
    assert run_ids <= _run_ids(german), "a run reported as written is missing from ml_model_runs"
    assert _leftovers(german.parent) == []  # no lock file, no copy left beside the warehouse


def test_a_build_and_a_model_run_at_once_lose_nothing_silently(german: Path, tmp_path: Path) -> None:
    """The run fits on the build it read, the rebuild swaps in first: the run then refuses with a
    sentence (its results are about another build's customers) instead of being lost to the
    build's rename (before the lock) or written into the new build (before the build check)."""
    go, read, writing = tmp_path / "go", tmp_path / "history-read", tmp_path / "writing"
    builder = _child(BUILD_CHILD, german, go, read, FIXTURES, writing)
    trainer = _child(TRAIN_CHILD, german, read, 42, 0, writing)  # starts once the build has read the history
    time.sleep(0.5)
    go.touch()
    out, err = trainer.communicate(timeout=240)
    assert _finish(builder) == "built"
    assert trainer.returncode != 0 and "The warehouse was rebuilt" in err and "run it again" in err, err[-2000:]
    with duckdb.connect(str(german), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM customers").fetchone()[0] > 0
        runs = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'ml_model_runs'").fetchall()
    assert runs[0][0] == 0  # nothing of the refused run was written
    assert _leftovers(german.parent) == []


def test_a_writer_gives_up_with_a_sentence_when_the_lock_stays_held(
    german: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOCK_WAIT_ENV_VAR, "0.3")
    before = file_digest(german)
    expected = (
        f"Another build or model run is writing {german.resolve()} (process {os.getpid()}); "
        "try again when it has finished."
    )
    with exclusive_writer(german):
        assert stat.S_IMODE(os.stat(lock_path(german)).st_mode) == 0o600
        started = time.monotonic()
        with pytest.raises(WriterBusyError) as caught:
            write_back(german, lambda con: con.execute("CREATE TABLE ml_never AS SELECT 1 AS x"))
        assert 0.25 <= time.monotonic() - started < 5
        assert str(caught.value).replace(str(german), str(german.resolve())) == expected
        spec, text = load_spec("german-credit")
        with pytest.raises(WriterBusyError) as caught:
            build_warehouse(spec, text, FIXTURES, german)
        assert str(caught.value) == expected
    assert isinstance(caught.value, WarehouseError)
    assert file_digest(german) == before
    assert _leftovers(german.parent) == []


def test_the_wait_setting_must_be_a_number(german: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = file_digest(german)
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(LOCK_WAIT_ENV_VAR, bad)
        with pytest.raises(WarehouseError) as caught:
            write_back(german, lambda con: None)
        text = str(caught.value)
        assert text.startswith(f"{LOCK_WAIT_ENV_VAR} must be a number of seconds") and "\n" not in text, text
        assert repr(bad) in text
    assert file_digest(german) == before


def test_a_waiting_writer_goes_on_once_the_holder_is_done(german: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_WAIT_ENV_VAR, "30")
    holder = _child(
        """
        import sys, time
        from pathlib import Path
        from warehouse.locks import exclusive_writer
        with exclusive_writer(Path(sys.argv[1])):
            Path(sys.argv[2]).touch()
            time.sleep(1.5)
            Path(sys.argv[3]).touch()
        """,
        german,
        german.parent.parent / "holding",
        german.parent.parent / "released",
    )
    while not (german.parent.parent / "holding").exists():
        assert holder.poll() is None, holder.communicate()
        time.sleep(0.02)
    write_back(german, lambda con: con.execute("CREATE TABLE ml_after_wait AS SELECT 1 AS x"))
    assert (german.parent.parent / "released").exists()  # it waited for the holder
    holder.communicate(timeout=30)
    with duckdb.connect(str(german), read_only=True) as con:
        assert con.execute("SELECT x FROM ml_after_wait").fetchone() == (1,)


def _dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(german: Path) -> None:
    folder, name = german.parent, german.name
    dead = _dead_pid()
    stale = [
        folder / f".{name}.building-{dead}",
        folder / f".{name}.building-{dead}.wal",
        folder / f".{name}.training-{dead}",
        folder / f".{name}.training-{dead}.wal",
    ]
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = folder / f".{name}.training-{sleeper.pid}"
        other = folder / f".other.duckdb.training-{dead}"  # another warehouse's: not this one's to judge
        for path in [*stale, live, other]:
            path.write_bytes(b"left over")
        german.chmod(0o640)
        modes = []

        def write(con: duckdb.DuckDBPyConnection) -> None:
            modes.append(stat.S_IMODE(os.stat(folder / f".{name}.training-{os.getpid()}").st_mode))

        write_back(german, write)
        assert [path for path in stale if path.exists()] == []
        assert live.exists() and other.exists()
        assert modes == [0o600]  # the copy being written is the owner's alone
        assert stat.S_IMODE(german.stat().st_mode) == 0o640  # the warehouse keeps its mode
        assert _leftovers(folder) == sorted([live.name, other.name])
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_build_removes_what_a_killed_build_left(german: Path) -> None:
    dead = _dead_pid()
    stale = [german.parent / f".{german.name}.building-{dead}", german.parent / f".{german.name}.building-{dead}.wal"]
    for path in stale:
        path.write_bytes(b"left over")
    spec, text = load_spec("german-credit")
    build_warehouse(spec, text, FIXTURES, german)
    assert _leftovers(german.parent) == []


def test_a_writer_killed_mid_write_blocks_nobody_and_its_copy_goes_at_the_next_run(
    german: Path, tmp_path: Path
) -> None:
    writing = tmp_path / "writing"
    child = _child(
        """
        import sys, time
        from pathlib import Path
        from models.runs import write_back

        def write(con):
            Path(sys.argv[2]).touch()
            time.sleep(120)

        write_back(Path(sys.argv[1]), write)
        """,
        german,
        writing,
    )
    try:
        while not writing.exists():
            assert child.poll() is None, child.communicate()
            time.sleep(0.02)
        copy = german.parent / f".{german.name}.training-{child.pid}"
        assert copy.exists()
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    started = time.monotonic()
    write_back(german, lambda con: con.execute("CREATE TABLE ml_after_kill AS SELECT 1 AS x"))
    assert time.monotonic() - started < 30  # the kernel released the dead writer's lock
    assert not copy.exists() and not copy.with_name(copy.name + ".wal").exists()
    assert _leftovers(german.parent) == []
    with duckdb.connect(str(german), read_only=True) as con:
        assert con.execute("SELECT x FROM ml_after_kill").fetchone() == (1,)

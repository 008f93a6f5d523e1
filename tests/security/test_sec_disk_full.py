"""Issue 13, item 14: on a full disk ``train`` leaked its partial copy and printed "unexpected
OSError"; a failed build could leave its temporary file and ``.wal``. Both now clean up on every path
and say what happened in one sentence, with the previous warehouse unchanged."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from conftest import FIXTURES, Builder, file_digest

from dashboard.cli import main
from models import runs


def _no_space(path: object) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def german(build: Builder, tmp_path: Path) -> Path:
    db = tmp_path / "wh" / "g.duckdb"
    build("german-credit", FIXTURES, db)
    return db


def test_a_full_disk_during_a_model_run_leaves_no_copy_and_says_so(
    german: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = file_digest(german)

    def copy_until_the_disk_is_full(source: Path, target: Path) -> None:
        with open(source, "rb") as reading, open(target, "wb") as writing:
            writing.write(reading.read(1 << 20))  # part of the copy is on disk when the space runs out
        raise _no_space(target)

    monkeypatch.setattr(runs.shutil, "copyfile", copy_until_the_disk_is_full)
    assert main(["train", "statistics", "--db", str(german)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "the warehouse is unchanged" in err
    assert "unexpected" not in err and "Traceback" not in err
    assert _leftovers(german.parent) == []
    assert file_digest(german) == before


def test_a_full_disk_during_a_build_leaves_no_temporary_file_and_says_so(
    german: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from warehouse import build as building

    before = file_digest(german)
    real_run = building._Builder.run

    def run_until_the_disk_is_full(self: object) -> object:
        real_run(self)  # the whole build is written to the temporary file, then the space runs out
        raise _no_space(german.parent / f".{german.name}.building")

    monkeypatch.setattr(building._Builder, "run", run_until_the_disk_is_full)
    code = main(["build", "--spec", "german-credit", "--data", str(FIXTURES), "--db", str(german)])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and "the previous warehouse is unchanged" in err
    assert _leftovers(german.parent) == []
    assert file_digest(german) == before

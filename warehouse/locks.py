"""One writer at a time per warehouse file, and no temporary file outlives its process.

A build and every model run replace the warehouse with a new file (build or copy, write,
rename). Two of them at once would each rename their own file over the target, and the last
one would silently drop the other's work. Each writer therefore holds an exclusive advisory
lock (``flock``) on ``.NAME.lock`` beside the warehouse from before it reads the file it starts
from until its new file is in place; a second writer waits for it (``SEGRISK_WRITE_LOCK_WAIT_S``
seconds, 10 minutes unless set), then starts from the first one's result. Readers (the
dashboard, the API, reports) never take the lock: they read the file that is in place.

The kernel releases the lock when its holder dies, even under ``kill -9``; what such a process
leaves behind (``.NAME.building-PID``, ``.NAME.training-PID`` and their ``.wal`` files) is
removed by the next writer, which holds the lock and so knows that no live writer uses them.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import settings
from .errors import WarehouseError

LOCK_WAIT_ENV_VAR = settings.WRITE_LOCK_WAIT_S.name
DEFAULT_LOCK_WAIT_S = settings.WRITE_LOCK_WAIT_S.default
_POLL_S = 0.1


class WriterBusyError(WarehouseError):
    """Another build or model run held the warehouse's write lock for longer than the wait allows."""


def lock_path(db_path: Path) -> Path:
    """The lock file of the warehouse ``db_path``: ``.NAME.lock`` beside it."""
    return db_path.with_name(f".{db_path.name}.lock")


def lock_wait_seconds() -> float:
    """How long a writer waits for another one: ``$SEGRISK_WRITE_LOCK_WAIT_S``, else 10 minutes."""
    return settings.WRITE_LOCK_WAIT_S.read(error=WarehouseError)


@contextmanager
def exclusive_writer(db_path: Path, progress: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the write lock of ``db_path`` for the block; wait for another holder, up to the limit.

    On entry, temporary files left beside the warehouse by writers that died are removed.
    """
    # One lock per file, however it is named: a build resolves the path, a model run need not.
    path = lock_path(db_path.resolve())
    wait = lock_wait_seconds()
    deadline = time.monotonic() + wait
    told = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            if time.monotonic() >= deadline:
                who = f"process {holder}" if holder else "another process"
                raise WriterBusyError(
                    f"Another build or model run is writing {db_path} ({who}); try again when it has finished."
                ) from None
            if progress is not None and not told:
                progress(f"Waiting for another build or model run to finish writing {db_path.name}")
                told = True
            time.sleep(min(_POLL_S, max(deadline - time.monotonic(), 0.0)))
            continue
        except BaseException:
            os.close(fd)
            raise
        # The holder before us removes the lock file as it finishes: a lock on the removed file
        # would exclude nobody, so take the one now at the path instead.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is None or not os.path.samestat(os.fstat(fd), current):
            os.close(fd)
            continue
        break
    try:
        try:
            os.fchmod(fd, 0o600)
        except OSError:
            pass  # another user's file: the lock works all the same
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        for place in dict.fromkeys([db_path, db_path.resolve()]):
            remove_stale_temporaries(place)
        yield
    finally:
        # Removed while still locked, so a waiter that opened it sees the file change and retries.
        path.unlink(missing_ok=True)
        os.close(fd)


def _holder(fd: int) -> str:
    """The pid the lock's holder wrote into the lock file ('' when not written yet)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


def remove_stale_temporaries(db_path: Path) -> list[Path]:
    """Remove the build and training files beside ``db_path`` that no live writer uses.

    Called with the write lock held: then no other writer of this warehouse is running, and a
    temporary file is stale unless its process is alive (a writer of this process has finished,
    since it held the lock that is now ours).
    """
    pattern = re.compile(rf"\.{re.escape(db_path.name)}\.(?:building|training)-(\d+)(?:\.wal)?")
    removed = []
    try:
        candidates = list(db_path.parent.iterdir())
    except OSError:
        return removed
    for candidate in candidates:
        match = pattern.fullmatch(candidate.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and _alive(pid):
            continue
        try:
            candidate.unlink()
        except FileNotFoundError:
            continue
        except OSError:
            continue  # not ours to remove (another user's process): left as it is
        removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True

"""Write an export into a hidden staging folder beside its destination and rename it into place
only when everything (manifest last) is written. A process killed midway leaves a
``.NAME.partial-PID-XXXX`` folder without a manifest, never a folder named NAME; the next export
to the same destination removes such leftovers once their process is gone."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from relcurate.exports.common import ExportError

PARTIAL_TAG = ".partial-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_partials(out: Path) -> list[Path]:
    """Leftover staging folders of `out` whose writing process no longer runs."""
    prefix = f".{out.name}{PARTIAL_TAG}"
    found = []
    if not out.parent.is_dir():
        return found
    for p in out.parent.iterdir():
        if not p.name.startswith(prefix) or not p.is_dir():
            continue
        pid = p.name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or not _pid_alive(int(pid)):
            found.append(p)
    return sorted(found)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def staged_dir(out: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder; on normal exit it replaces `out` in one rename."""
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; choose another folder or overwrite it")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in stale_partials(out):
        shutil.rmtree(old, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}{PARTIAL_TAG}{os.getpid()}-", dir=out.parent))
    try:
        yield staging
        fsync_path(staging)
        if out.exists():
            # Two renames: the old export stays complete until the new one is in place.
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, old / "x")
            os.rename(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, out)
        fsync_path(out.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

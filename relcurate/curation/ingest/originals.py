"""Put an original into the content-addressed store: clone the source file where the file system
can (copy-on-write reflink, else `copy_file_range` in the kernel), write the bytes already in
memory otherwise. Never a hard link: a source edited in place must not change the store.

The clone is only trusted when the source still has the size, mtime and inode it had when it was
read and hashed (checked before and after the copy); otherwise the verified bytes are written.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
_made_dirs: set[Path] = set()  # per process: skip the mkdir syscalls for folders already made
_clone_works: dict[int, bool] = {}  # st_dev -> whether FICLONE worked there (skip futile ioctls)


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ino, a.st_dev) == (b.st_size, b.st_mtime_ns, b.st_ino, b.st_dev)


def _clone_into(src_fd: int, dst_fd: int, size: int, dev: int) -> bool:
    if _clone_works.get(dev, True):
        try:
            fcntl.ioctl(dst_fd, FICLONE, src_fd)
            _clone_works[dev] = True
            return True
        except OSError:
            _clone_works[dev] = False
    if not hasattr(os, "copy_file_range"):
        return False
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(src_fd, dst_fd, size - copied, copied, copied)
            if n == 0:
                return False
            copied += n
    except OSError:
        return False
    return True


def store_original(dst: Path, data: bytes, src: tuple[str, os.stat_result] | None = None) -> None:
    """Write-then-rename `dst` (content-addressed: an existing file already has these bytes)."""
    if dst.exists():
        return
    parent = dst.parent
    if parent not in _made_dirs:
        parent.mkdir(parents=True, exist_ok=True)
        _made_dirs.add(parent)
    tmp = parent / f".tmp-{os.getpid()}-{dst.name}"  # unique per process and content
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            if not (src is not None and _try_clone(src, fd, len(data))):
                os.ftruncate(fd, 0)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _try_clone(src: tuple[str, os.stat_result], dst_fd: int, size: int) -> bool:
    path, before = src
    if before.st_size != size:
        return False
    try:
        src_fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        if not _same(os.fstat(src_fd), before):
            return False
        ok = _clone_into(src_fd, dst_fd, size, before.st_dev)
        return ok and _same(os.fstat(src_fd), before)  # unchanged while we copied
    except OSError:
        return False
    finally:
        os.close(src_fd)

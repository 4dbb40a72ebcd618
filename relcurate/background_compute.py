"""How background number crunching (the fast-head refresh, k-center steps) runs beside the
interactive calls: one BLAS thread, and a lowered CPU priority for the thread doing it.

One BLAS thread: the loop's products are memory-bound (a million-row matrix-vector product) or
small (k-center steps), where extra threads add contention, not speed, and a second core stays
free for the annotators' app. The threadpoolctl controller is kept between calls: building one
scans every loaded shared library (~30 ms a call, measured), more than some of the work.

Lower priority: `run_niced` runs a function in a fresh thread whose nice value is raised, so when
the annotators' next-task call and the refresh want the same core the call wins. Linux applies
nice per thread, and the thread ends with the work, so the process's other threads keep their
priority (an unprivileged process could never lower its nice value again). Where scheduling is
grouped (autogroup per session, cgroups per service), nice only orders the tasks inside one
group: a refresh alone in its group keeps the group's whole share, so this costs it nothing
against other programs.
"""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")

REFRESH_NICE = 10  # CFS weight 110 against 1024 at nice 0: the interactive task gets ~90% of a shared core

_controller = None
_controller_modules = -1  # len(sys.modules) when it was built
_controller_lock = threading.Lock()


def _blas_controller():
    """The process's controller, rebuilt when modules were imported since (an import such as
    sklearn's or scipy's can load another BLAS / OpenMP library that must be limited too)."""
    global _controller, _controller_modules
    with _controller_lock:
        if _controller is None or len(sys.modules) != _controller_modules:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
            _controller_modules = len(sys.modules)
        return _controller


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS / OpenMP pools limited to one thread inside the block (process-wide, as
    threadpoolctl's limits are), restored after."""
    with _blas_controller().limit(limits=1):
        yield


def run_niced(fn: Callable[[], T], nice: int = REFRESH_NICE) -> T:
    """`fn()` in a new thread with its nice value raised by `nice`; its result or exception
    comes back to the caller. Where per-thread priorities are not available (not Linux) or
    `nice` is 0, `fn` runs in the calling thread."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return fn()
    box: dict[str, object] = {}

    def body() -> None:
        try:
            try:
                tid = threading.get_native_id()
                os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
            except OSError:
                pass  # a sandbox without setpriority: run at the normal priority
            box["result"] = fn()
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=body, name="relcurate-niced", daemon=True)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]

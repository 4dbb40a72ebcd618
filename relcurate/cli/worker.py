"""`relcurate worker`: the background process that runs queued jobs (fast-head refreshes,
retrains, exports) and enqueues a fast-head refresh after every N new labels."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from relcurate.cli.common import DbOpt, WorkspaceOpt, err, open_workspace


def worker(workspace: WorkspaceOpt = Path("."), db: DbOpt = None,
           poll: Annotated[float, typer.Option(help="Seconds between looks at an empty queue.")] = 2.0,
           once: Annotated[bool, typer.Option("--once", help="Run what is queued, then exit.")] = False,
           max_jobs: Annotated[Optional[int], typer.Option(help="Exit after this many jobs.")] = None,
           no_auto_refresh: Annotated[bool, typer.Option("--no-auto-refresh", help="Do not enqueue fast-head refreshes after new labels.")] = False) -> None:
    """Run jobs until SIGTERM / SIGINT; the job in hand finishes or is released back to the queue."""
    from relcurate.jobs.worker import install_signal_handlers, run_worker, worker_name
    from relcurate.training.filter_loop import maybe_enqueue_refresh

    ws = open_workspace(workspace, db)
    stop = threading.Event()
    install_signal_handlers(stop)
    name = worker_name()
    err.print(f"worker {escape(name)} on {escape(str(ws.root))}: waiting for jobs (Ctrl-C to stop)")
    n = run_worker(ws, stop=stop, poll_s=poll, max_jobs=max_jobs, exit_when_idle=once, name=name,
                   idle_hooks=[] if no_auto_refresh else [maybe_enqueue_refresh],
                   on_event=lambda m: err.print(escape(m)))
    err.print(f"worker stopped after {n} job(s)")

"""What `relcurate serve` starts: the Streamlit command line and environment, the port check, the
base path, the optional background worker; `serve()` runs them under the supervisor.

No Streamlit import here: this runs in the small parent process that only supervises.
"""
from __future__ import annotations

import errno
import os
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import relcurate
from relcurate.labeling_ui.supervisor import DEFAULT_GRACE_S, ChildSpec, Supervisor

APP_PATH = Path(__file__).resolve().parent / "app.py"
WORKSPACE_ENV = "RELCURATE_WORKSPACE"  # read by labeling_ui/resources.py in the Streamlit process
DB_URL_ENV = "RELCURATE_DB_URL"  # read by Workspace.open; passed by env so it never shows in `ps`
HEALTH_ROUTE = "_stcore/health"  # Streamlit's own: 200 "ok" once it accepts sessions, no sign-in
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


class ServeError(Exception):
    """A setting that makes serving impossible; the message says what to do."""


@dataclass(frozen=True)
class ServeSettings:
    root: Path
    port: int = 8501
    address: str = "127.0.0.1"
    base_path: str = ""  # normalised: "" or "a/b" (no leading/trailing slash)
    db_url: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/" + (f"{self.base_path}/" if self.base_path else "")

    @property
    def health_url(self) -> str:
        return self.url + HEALTH_ROUTE


def normalise_base_path(raw: str | None) -> str:
    """'/team/relcurate/' -> 'team/relcurate'; only URL-safe path segments, no '.' or '..'."""
    value = (raw or "").strip().strip("/")
    if not value:
        return ""
    for seg in value.split("/"):
        if not _SEGMENT.fullmatch(seg) or seg in (".", ".."):
            raise ServeError(f"--base-path {raw!r}: each segment must be letters, digits or . _ ~ - "
                             f"(and not '.' or '..'), e.g. --base-path team/relcurate")
    return value


def check_port_free(address: str, port: int) -> None:
    """Raise ServeError naming the port if something listens there (Streamlit would move on).

    Binds the way Streamlit does (SO_REUSEADDR), so a port whose old connections linger in
    TIME_WAIT counts as free, as it is for the server."""
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"--address {address!r}: cannot resolve it ({exc.strerror})") from exc
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(
                    f"port {port} on {address} is already in use (another `relcurate serve`, or another "
                    f"program). Stop it, or choose a free port with --port, e.g. --port {port + 1}") from exc
            if exc.errno == errno.EACCES:
                raise ServeError(f"port {port} on {address}: permission denied (ports below 1024 need "
                                 f"privileges); choose another with --port") from exc
            raise ServeError(f"cannot listen on {address} port {port}: {exc.strerror}") from exc


def child_env(settings: ServeSettings) -> dict[str, str]:
    env = dict(os.environ)
    env[WORKSPACE_ENV] = str(settings.root)
    if settings.db_url:
        env[DB_URL_ENV] = settings.db_url
    # The children import the same relcurate as this process (a checkout, not another install).
    pkg_parent = str(Path(relcurate.__file__).resolve().parents[1])
    if Path(pkg_parent).name not in ("site-packages", "dist-packages"):
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if pkg_parent not in paths:
            env["PYTHONPATH"] = os.pathsep.join([pkg_parent, *paths])
    return env


def streamlit_argv(settings: ServeSettings) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.headless", "true", "--server.address", settings.address,
        # Given on the command line, the port counts as set by hand: Streamlit exits instead of
        # moving to the next port if it was taken after check_port_free.
        "--server.port", str(settings.port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--server.runOnSave", "false", "--client.toolbarMode", "minimal",
        # A full GC after every rerun doubled key-press-to-next-image latency (bench/label_latency.py).
        "--runner.postScriptGC", "false",
    ] + (["--server.baseUrlPath", settings.base_path] if settings.base_path else [])


def web_child(settings: ServeSettings) -> ChildSpec:
    return ChildSpec("web app", streamlit_argv(settings), child_env(settings))


def worker_child(settings: ServeSettings) -> ChildSpec:
    """The background job worker (`relcurate worker -w WS`), for the CLI to add when it exists."""
    argv = [sys.executable, "-m", "relcurate.cli.main", "worker", "-w", str(settings.root)]
    return ChildSpec("worker", argv, child_env(settings))


def serve(settings: ServeSettings, extra_children: Sequence[ChildSpec] = (), *,
          grace_s: float = DEFAULT_GRACE_S, log: Callable[[str], None] | None = None) -> int:
    """Check the port, start the web app and `extra_children`, supervise; returns the exit status."""
    check_port_free(settings.address, settings.port)
    kwargs = {"log": log} if log is not None else {}
    return Supervisor([web_child(settings), *extra_children], grace_s=grace_s, **kwargs).run()

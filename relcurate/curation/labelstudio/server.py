"""Start a local Label Studio safely: loopback only, no telemetry or update checks, SQLite in
its own data folder, local-files serving rooted at the workspace (the image store).

Label Studio is an application with its own pinned dependencies, installed in its own virtualenv
(`.venv-labelstudio/`, made by `make labelstudio`); `RELCURATE_LABEL_STUDIO` names another
executable. Traps handled here (see ../shared/notes/stack.md): a busy port is silently replaced
by port+1, so the port is picked free and the answer checked on that port; `--user-token` only
works with `--enable-legacy-api-token` given at the first start; `label-studio --version`
starts a server, so the version is never asked that way.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from relcurate.curation.labelstudio.connection import LabelStudioError

EXECUTABLE_ENV = "RELCURATE_LABEL_STUDIO"
_REPO_VENV = Path(__file__).resolve().parents[3] / ".venv-labelstudio" / "bin" / "label-studio"


def find_executable() -> Path:
    for cand in (os.environ.get(EXECUTABLE_ENV), _REPO_VENV, shutil.which("label-studio")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return Path(cand)
    raise LabelStudioError(f"label-studio is not installed: run `make labelstudio` (its own virtualenv "
                           f".venv-labelstudio/) or set {EXECUTABLE_ENV}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class LSServer:
    url: str
    port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # its own process group: Django + workers
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)


def server_env(data_dir: Path, document_root: Path, *, allow_loopback_webhooks: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "DJANGO_DB": "sqlite",
        "LOCAL_FILES_SERVING_ENABLED": "true", "LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
        "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false", "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
    })
    if allow_loopback_webhooks:
        env["SSRF_PROTECTION_ENABLED"] = "false"  # only so webhooks can reach a 127.0.0.1 receiver
    return env


def start_server(data_dir: Path, document_root: Path, *, token: str, username: str = "admin@example.com",
                 password: str | None = None, port: int | None = None, allow_loopback_webhooks: bool = False,
                 timeout: float = 180.0, executable: Path | None = None) -> LSServer:
    """Start Label Studio on 127.0.0.1 and wait until it answers with this token."""
    exe = executable or find_executable()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    if _port_busy(port):
        raise LabelStudioError(f"port {port} on 127.0.0.1 is busy (Label Studio would silently move to another)")
    password = password or secrets.token_urlsafe(16)
    args = [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--host", f"http://127.0.0.1:{port}",
            "--port", str(port), "--data-dir", str(data_dir), "--username", username, "--password", password,
            "--user-token", token, "--enable-legacy-api-token"]
    log_path = data_dir / "server.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen(args, env=server_env(data_dir, Path(document_root).resolve(),
                                                 allow_loopback_webhooks=allow_loopback_webhooks),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                            cwd=data_dir)  # not the caller's folder: it reports a git checkout there
    log.close()
    server = LSServer(f"http://127.0.0.1:{port}", port, data_dir, log_path, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabelStudioError(f"Label Studio exited with code {proc.returncode} during start-up; see {log_path}")
        try:
            r = httpx.get(f"{server.url}/api/current-user/whoami", headers={"Authorization": f"Token {token}"},
                          timeout=5)
            if r.status_code == 200:
                return server
            if r.status_code in (401, 403):
                server.stop()
                raise LabelStudioError(f"Label Studio on port {port} refuses the token: the data folder "
                                       f"{data_dir} was created with another one")
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise LabelStudioError(f"Label Studio did not answer on port {port} within {timeout:.0f} s; see {log_path}")


def serve_workspace(ws, *, port: int | None = None, allow_loopback_webhooks: bool = True,
                    timeout: float = 180.0) -> tuple[LSServer, Path]:
    """Start a Label Studio for this workspace (data in <workspace>/labelstudio/, local files
    rooted at the workspace) and connect the workspace to it. Returns the server and the file
    holding the admin login (mode 0600; the token and password are never printed).

    The port is chosen once and kept, so the server's URL (which names relcurate's projects on
    it) stays the same across restarts; webhooks to the local receiver need loopback calls."""
    import tomllib

    from relcurate.curation.labelstudio.connection import LSConfig, _toml_str, load_config, save_config

    folder = ws.root / "labelstudio"
    folder.mkdir(exist_ok=True)
    login = folder / "admin.toml"
    if login.exists():
        saved = tomllib.loads(login.read_text())
    else:
        saved = {"email": "admin@example.com", "password": secrets.token_urlsafe(16),
                 "token": secrets.token_hex(20), "port": port or free_port()}
        fd = os.open(login, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("# Label Studio admin login for this workspace (keep private)\n")
            for k in ("email", "password", "token"):
                fh.write(f"{k} = {_toml_str(saved[k])}\n")
            fh.write(f"port = {int(saved['port'])}\n")
    server = start_server(folder / "data", ws.root, token=saved["token"], username=saved["email"],
                          password=saved["password"], port=port or int(saved["port"]),
                          allow_loopback_webhooks=allow_loopback_webhooks, timeout=timeout)
    try:
        secret = load_config(ws).webhook_secret
    except LabelStudioError:
        secret = None
    save_config(ws, LSConfig(server.url, saved["token"], secret))
    return server, login

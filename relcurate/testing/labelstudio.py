"""A real Label Studio server for tests, started once per pytest session on a free loopback port.

The first session migrates a data folder (a cold start, ~35-50 s) and keeps a copy in the temp
dir keyed by the Label Studio version; later sessions copy it and start warm (~3-5 s). The server
runs from `.venv-labelstudio/` (`make labelstudio`, part of `make test`). Workspaces that push
images must live under `ls_server.document_root` (Label Studio serves local files only below its
document root).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from relcurate.curation.labelstudio.connection import LSClient
from relcurate.curation.labelstudio.server import LSServer, find_executable, start_server

# A loopback-only test credential; the data folder is created with it (--user-token).
TEST_TOKEN = "relcurate-test-token-5b1d2f0c9a7e"
ADMIN = "admin@example.com"


@dataclass
class LSFixture:
    server: LSServer
    token: str
    document_root: Path

    @property
    def url(self) -> str:
        return self.server.url

    def client(self) -> LSClient:
        return LSClient(self.url, self.token)

    def new_root(self) -> Path:
        """A fresh folder under the document root (for one test's workspace)."""
        path = self.document_root / uuid.uuid4().hex[:10]
        path.mkdir()
        return path


def _ls_version(exe: Path) -> str:
    # Never `label-studio --version`: it starts a server. Ask pip in its own environment.
    out = subprocess.run([str(exe.parent / "python"), "-c", "import importlib.metadata as m; "
                          "print(m.version('label-studio'))"], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or "unknown"


def cached_data_dir(exe: Path, token: str = TEST_TOKEN) -> Path:
    """A migrated data folder for this Label Studio version and token (built once, then reused)."""
    key = f"{_ls_version(exe)}-{hashlib.sha256(token.encode()).hexdigest()[:12]}"
    base = Path(tempfile.gettempdir()) / "relcurate-labelstudio-cache"
    base.mkdir(exist_ok=True)
    ready = base / key
    with open(base / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions starting together: one cold start
        if not ready.exists():
            build = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=base))
            root = build / "root"
            root.mkdir()
            server = start_server(build / "data", root, token=token, username=ADMIN, password=uuid.uuid4().hex)
            server.stop()
            (build / "data" / "server.log").unlink(missing_ok=True)
            os.rename(build / "data", ready)
            shutil.rmtree(build, ignore_errors=True)
    return ready


@pytest.fixture(scope="session")
def ls_server(tmp_path_factory) -> LSFixture:
    try:
        exe = find_executable()
    except Exception as exc:  # part of `make test`: a missing server is a failure, not a skip
        pytest.fail(f"{exc}")
    base = tmp_path_factory.mktemp("labelstudio")
    data = base / "data"
    shutil.copytree(cached_data_dir(exe), data)
    root = base / "root"
    root.mkdir()
    server = start_server(data, root, token=TEST_TOKEN, username=ADMIN, password=uuid.uuid4().hex,
                          allow_loopback_webhooks=True)
    try:
        yield LSFixture(server, TEST_TOKEN, root)
    finally:
        server.stop()

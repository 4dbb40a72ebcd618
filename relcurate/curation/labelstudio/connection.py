"""Where the Label Studio server is and how to talk to it.

The URL and token live in `labelstudio.toml` in the workspace folder (mode 0600, beside
relcurate.toml: `Workspace.init` rewrites relcurate.toml, which must not drop the token). The
token is never printed, logged or put in an error message: `LSClient.__repr__` hides it, and
every error names the URL and the HTTP status only.

The client is a thin httpx wrapper over Label Studio's REST API. label-studio-sdk 2.1.2 (what
label-studio 1.23.2 pins) cannot be installed in the project environment without downgrading
numpy (its opencv dependency caps numpy < 2.3), so the few endpoints used here are called
directly; the request/response shapes are the SDK's.
"""
from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from relcurate.workspace import Workspace

CONFIG_NAME = "labelstudio.toml"
TOKEN_ENV = "RELCURATE_LS_TOKEN"  # overrides the stored token (CI secrets)


class LabelStudioError(RuntimeError):
    """A Label Studio call failed; the message is meant for the user (never holds the token)."""


@dataclass
class LSConfig:
    url: str
    token: str
    webhook_secret: str | None = None
    # The server's LOCAL_FILES_DOCUMENT_ROOT: local-file URLs are relative to it (None: the
    # workspace folder, as `relcurate labelstudio serve` sets it).
    document_root: str | None = None

    def __repr__(self) -> str:  # dataclass repr would show the token
        return (f"LSConfig(url={self.url!r}, token=***, webhook_secret={'***' if self.webhook_secret else None}, "
                f"document_root={self.document_root!r})")


def normalise_url(url: str) -> str:
    url = (url or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LabelStudioError(f"{url!r} is not a Label Studio URL (expected http://host:port)")
    if parts.username or parts.password:
        raise LabelStudioError("put the token in --token, not in the URL")
    if parts.query or parts.fragment:
        raise LabelStudioError(f"{url!r}: a Label Studio URL has no query or fragment")
    return url


def config_path(ws: Workspace) -> Path:
    return ws.root / CONFIG_NAME


def save_config(ws: Workspace, cfg: LSConfig) -> Path:
    """Write the connection settings, readable by the owner only."""
    path = config_path(ws)
    lines = ["# Label Studio connection (relcurate labelstudio connect); keep this file private",
             "[labelstudio]", f"url = {_toml_str(cfg.url)}", f"token = {_toml_str(cfg.token)}"]
    if cfg.webhook_secret:
        lines.append(f"webhook_secret = {_toml_str(cfg.webhook_secret)}")
    if cfg.document_root:
        lines.append(f"document_root = {_toml_str(cfg.document_root)}")
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def load_config(ws: Workspace) -> LSConfig:
    path = config_path(ws)
    if not path.exists():
        raise LabelStudioError(f"no Label Studio connection for {ws.root}: run `relcurate labelstudio connect "
                               f"--url URL --token TOKEN` or `relcurate labelstudio serve`")
    try:
        data = tomllib.loads(path.read_text()).get("labelstudio", {})
    except tomllib.TOMLDecodeError as exc:
        raise LabelStudioError(f"{path}: invalid TOML (line {exc.lineno})") from None
    url, token = data.get("url"), os.environ.get(TOKEN_ENV) or data.get("token")
    if not url or not token:
        raise LabelStudioError(f"{path}: needs both url and token")
    return LSConfig(normalise_url(url), token, data.get("webhook_secret"), data.get("document_root"))


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LSClient:
    """Label Studio REST client. Legacy API tokens (`Token ...`) and personal access tokens
    (a JWT refresh token, exchanged for an access token) both work."""

    def __init__(self, url: str, token: str, *, timeout: float = 60.0):
        self.url = normalise_url(url)
        self._token = token
        self._http = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=False)
        self._auth: str | None = None

    @classmethod
    def from_workspace(cls, ws: Workspace, **kw) -> "LSClient":
        cfg = load_config(ws)
        return cls(cfg.url, cfg.token, **kw)

    def __repr__(self) -> str:
        return f"LSClient({self.url!r}, token=***)"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "LSClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------
    def _authorization(self) -> str:
        if self._auth is None:
            if self._token.count(".") == 2:  # a personal access token (JWT refresh token)
                data = self._send("POST", "/api/token/refresh", json={"refresh": self._token}, auth=False)
                self._auth = f"Bearer {data['access']}"
            else:
                self._auth = f"Token {self._token}"
        return self._auth

    def _send(self, method: str, path: str, *, auth: bool = True, raw: bool = False, **kw) -> Any:
        headers = {"Authorization": self._authorization()} if auth else {}
        try:
            resp = self._http.request(method, path, headers=headers, **kw)
        except httpx.ConnectError:
            raise LabelStudioError(f"Label Studio at {self.url} is not reachable (connection refused or "
                                   f"unknown host): is the server running?") from None
        except httpx.TimeoutException:
            raise LabelStudioError(f"Label Studio at {self.url} did not answer {method} {path} in time") from None
        except httpx.HTTPError as exc:
            raise LabelStudioError(f"Label Studio at {self.url}: {type(exc).__name__} on {method} {path}") from None
        if resp.status_code in (401, 403):
            raise LabelStudioError(f"Label Studio at {self.url} refused the token (HTTP {resp.status_code} on "
                                   f"{method} {path}): check the token (legacy tokens need a server started "
                                   f"with --enable-legacy-api-token)")
        if resp.status_code == 404:
            raise LabelStudioError(f"Label Studio at {self.url}: {method} {path} not found (HTTP 404): wrong URL, "
                                   f"or the object was deleted")
        if resp.status_code >= 400:
            detail = resp.text[:300].replace(self._token, "***")
            raise LabelStudioError(f"Label Studio at {self.url}: {method} {path} failed (HTTP "
                                   f"{resp.status_code}): {detail}")
        if raw:
            return resp.content
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise LabelStudioError(f"{self.url} does not look like a Label Studio server ({method} {path} "
                                   f"answered {resp.headers.get('content-type', 'no content type')}, not JSON)") from None

    def get(self, path: str, **params) -> Any:
        return self._send("GET", path, params=params or None)

    def post(self, path: str, body: Any = None, **params) -> Any:
        return self._send("POST", path, json=body, params=params or None)

    def patch(self, path: str, body: Any) -> Any:
        return self._send("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self._send("DELETE", path)

    # -- checks -------------------------------------------------------------------------
    def check(self) -> dict:
        """Is this a Label Studio server that accepts the token? Returns {version, user}."""
        try:
            version = self._send("GET", "/api/version", auth=False)
        except LabelStudioError as exc:
            if "HTTP 404" in str(exc):
                raise LabelStudioError(f"{self.url} does not look like a Label Studio server "
                                       f"(GET /api/version not found)") from None
            raise
        if not isinstance(version, dict) or "release" not in version:
            raise LabelStudioError(f"{self.url} does not look like a Label Studio server (unexpected /api/version)")
        user = self.get("/api/current-user/whoami")
        return {"version": version.get("release"), "user": user.get("email") if isinstance(user, dict) else None}

    def users(self) -> dict[int, str]:
        """Label Studio user id -> e-mail."""
        data = self.get("/api/users/")
        rows = data.get("results", data) if isinstance(data, dict) else data
        return {int(u["id"]): u.get("email") or u.get("username") or str(u["id"]) for u in rows}

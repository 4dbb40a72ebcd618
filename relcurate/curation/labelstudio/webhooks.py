"""Receive Label Studio webhooks (ANNOTATION_CREATED / ANNOTATION_UPDATED / ANNOTATIONS_DELETED)
and ingest them as they happen, through the same `pull.Ingestor` as a pull.

Label Studio calls webhooks synchronously while it handles the annotator's request, so the
receiver only checks and queues the event and answers at once; one worker thread ingests
(it may call Label Studio back, e.g. for the user list, without deadlocking it). A missed or
refused webhook changes nothing: the next pull catches up.

Every request must carry the shared secret in the `X-Relcurate-Secret` header (compared in
constant time); anything else is refused with 403 and never ingested. The secret is generated
by `register_webhook`, stored in labelstudio.toml beside the token, and never printed.
"""
from __future__ import annotations

import hmac
import json
import logging
import queue
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from relcurate.curation.labelstudio import projects
from relcurate.curation.labelstudio.connection import LabelStudioError, LSClient, load_config, save_config
from relcurate.curation.labelstudio.pull import Ingestor, PullResult
from relcurate.db.engine import read_scope
from relcurate.db.models import LSProject
from relcurate.workspace import Workspace
from sqlmodel import select

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Relcurate-Secret"
ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
MAX_BODY = 8 * 1024 * 1024


def register_webhook(ws: Workspace, client: LSClient, receiver_url: str, purpose: str = projects.FILTER) -> int:
    """Point the project's annotation webhooks at `receiver_url` (once; a re-run reuses it).
    Returns the Label Studio webhook id."""
    cfg = load_config(ws)
    if not cfg.webhook_secret:
        cfg.webhook_secret = secrets.token_urlsafe(24)
        save_config(ws, cfg)
    rec = projects.project_record(ws, client.url, purpose)
    if rec is None:
        raise LabelStudioError(f"push {purpose!r} before registering its webhook")
    body = {"project": rec.ls_project_id, "url": receiver_url, "send_payload": True,
            "send_for_all_actions": False, "is_active": True, "actions": list(ACTIONS),
            "headers": {SECRET_HEADER: cfg.webhook_secret}}
    existing = client.get("/api/webhooks/", project=rec.ls_project_id) or []
    for hook in existing:
        if hook.get("url") == receiver_url:
            client.patch(f"/api/webhooks/{hook['id']}/", body)
            return int(hook["id"])
    return int(client.post("/api/webhooks/", body)["id"])


@dataclass
class ReceiverStats:
    received: int = 0
    refused: int = 0
    ingested: PullResult = field(default_factory=PullResult)


class WebhookReceiver:
    """An HTTP receiver on loopback; `start()` returns its URL."""

    def __init__(self, ws: Workspace, client: LSClient, secret: str, *, host: str = "127.0.0.1", port: int = 0):
        if not secret:
            raise LabelStudioError("a webhook receiver needs a shared secret (run `relcurate labelstudio listen`, "
                                   "which registers one)")
        self.ws, self.client, self._secret = ws, client, secret.encode()
        self.stats = ReceiverStats()
        self._queue: queue.Queue = queue.Queue()
        self._ingestors: dict[int, Ingestor] = {}
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> str:
        for target in (self._server.serve_forever, self._work):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self.url

    def stop(self) -> None:
        if self._threads:  # shutdown() waits for serve_forever, which only runs once started
            self._server.shutdown()
        self._server.server_close()
        self._queue.put(None)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once every accepted event has been ingested."""
        return self._idle.wait(timeout)

    # -- HTTP ---------------------------------------------------------------------------
    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # the default writes every request to stderr
                log.debug("webhook %s", fmt % args)

            def _answer(self, code: int, text: str) -> None:
                body = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                receiver.stats.received += 1
                given = (self.headers.get(SECRET_HEADER) or "").encode()
                if not hmac.compare_digest(given, receiver._secret):
                    receiver.stats.refused += 1
                    log.warning("webhook refused: missing or wrong %s header", SECRET_HEADER)
                    return self._answer(403, "refused")
                try:
                    n = int(self.headers.get("Content-Length") or 0)
                    if not 0 < n <= MAX_BODY:
                        raise ValueError("body size")
                    payload = json.loads(self.rfile.read(n))
                    action = payload.get("action")
                except (ValueError, AttributeError):
                    receiver.stats.refused += 1
                    return self._answer(400, "not a Label Studio webhook")
                if action not in ACTIONS:
                    return self._answer(200, "ignored")
                receiver._idle.clear()
                receiver._queue.put(payload)
                return self._answer(200, "queued")

            def do_GET(self):
                return self._answer(405, "POST only")

        return Handler

    # -- ingest -------------------------------------------------------------------------
    def _ingestor(self, ls_project_id: int) -> Ingestor | None:
        if ls_project_id not in self._ingestors:
            with read_scope(self.ws.engine) as s:
                rec = s.exec(select(LSProject).where(LSProject.server == self.client.url,
                                                     LSProject.ls_project_id == ls_project_id)).first()
            if rec is None:
                return None
            self._ingestors[ls_project_id] = Ingestor(self.ws, self.client, rec)
        return self._ingestors[ls_project_id]

    def _work(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            try:
                self._ingest(payload)
            except Exception as exc:  # keep receiving; the next pull catches up
                self.stats.ingested.problems.append(f"webhook {payload.get('action')}: {exc}")
                log.warning("webhook not ingested (%s); the next pull will catch up", type(exc).__name__)
            finally:
                if self._queue.empty():
                    self._idle.set()

    def _ingest(self, payload: dict) -> None:
        project = payload.get("project") or {}
        pid = project.get("id") if isinstance(project, dict) else project
        ing = self._ingestor(int(pid)) if pid is not None else None
        out = self.stats.ingested
        if ing is None:
            out.problems.append(f"webhook for Label Studio project {pid}: not a relcurate project; ignored")
            return
        projects.check_project(self.client, ing.rec)
        if payload["action"] == "ANNOTATIONS_DELETED":
            for ann in payload.get("annotations") or []:
                ing.delete(int(ann["id"]), out)
            return
        ann = payload.get("annotation") or {}
        task = ann.get("task")
        task_id = int(task["id"] if isinstance(task, dict) else task if task is not None else
                      (payload.get("task") or {}).get("id"))
        if task_id not in ing.tasks:
            ing.refresh_tasks()  # pushed after this receiver started
        ing.apply(ann, task_id, out)

"""A local stand-in for an OpenAI-compatible chat endpoint (the paid LLM judge), on 127.0.0.1
in a thread. `responder(request) -> Reply` decides each answer: good, malformed, slow or failing.
The default answers a score derived from the two images (deterministic)."""
from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    text: str | None = None  # the assistant message; None with status >= 400
    status: int = 200
    delay_s: float = 0.0


def images_of(request: dict) -> list[str]:
    content = request["messages"][-1]["content"]
    return [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]


def default_score(request: dict) -> Reply:
    digest = hashlib.sha256("".join(images_of(request)).encode()).digest()
    return Reply(str(digest[0] % 11))


class StandInJudge:
    def __init__(self, responder: Callable[[dict], Reply] = default_score) -> None:
        self.responder = responder
        self.requests: list[dict] = []
        self.auth_headers: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: tests read stderr
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    outer.requests.append(body)
                    outer.auth_headers.append(self.headers.get("Authorization", ""))
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    reply = outer.responder(body)
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    if reply.status >= 400:
                        payload = {"error": {"message": "stand-in failure", "type": "server_error"}}
                    else:
                        payload = {"id": "cmpl-1", "object": "chat.completion", "created": 0,
                                   "model": body.get("model", ""),
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": reply.text}}],
                                   "usage": {"prompt_tokens": 1000, "completion_tokens": 2, "total_tokens": 1002}}
                    data = json.dumps(payload).encode()
                    try:
                        self.send_response(reply.status)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):  # the client timed out first
                        pass
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "StandInJudge":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

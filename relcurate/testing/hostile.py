"""A hostile-input corpus covering every class of bad input ingest must survive, and a loopback
HTTP server (good images, a slow-drip route) to go with it. A helper module (no tests here).

`make_hostile_corpus(root, base_url)` writes, under `root`:

* ``folder/``: `make_mixed_folder` plus a symlink leaving the tree and an oversized junk file;
* ``urls.txt``: good URLs on `base_url` and malformed / non-http ones;
* ``relsim/anonymous_captions_train.jsonl`` (+ ``relsim/images/``): path traversal, absolute and
  over-long hashes, lone surrogates, NUL, bad URLs, bad JSON, next to good rows;
* ``seed_group.json``: a good group and one with a ``file:`` URL;
* ``outside/``: files the corpus points at from inside (a victim to overwrite, a secret to leak).

It returns a `HostileCorpus` naming the inputs, what must land, and what must be rejected where.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from PIL import Image

from relcurate.testing.images import OK, make_mixed_folder

VICTIM_BYTES = b"victim: must never be read, copied or overwritten\n"
SECRET_BYTES = b"root:x:0:0:secret:/root:/bin/bash\n" * 4


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (48, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


ROUTES = {"/red.png": png_bytes((220, 20, 20)), "/green.png": png_bytes((20, 200, 20)),
          "/blue.png": png_bytes((20, 20, 220)), "/grey.png": png_bytes((128, 128, 128))}


class _Handler(http.server.BaseHTTPRequestHandler):
    drip_interval_s = 0.3
    drip_requests = 0  # attempts the /drip route has seen (tests bound retries by counting them)

    def log_message(self, *a):  # keep test output clean
        pass

    def do_GET(self):
        if self.path.startswith("/drip"):  # a byte at a time: never trips a read timeout
            type(self).drip_requests += 1
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100_000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(self.drip_interval_s)
            except OSError:
                pass
            return
        body = ROUTES.get(self.path.split("?")[0])
        self.send_response(200 if body else 404)
        body = body or b"missing"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def drip_requests() -> int:
    """How many requests the /drip route has received (in this process)."""
    return _Handler.drip_requests


@contextmanager
def loopback_server() -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 serving ROUTES and /drip; yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class HostileCorpus:
    root: Path
    inputs: list[Path]  # pass each to `relcurate ingest` (the relsim file wants --image-folder default)
    folder_expected: dict[str, str]  # relative path in folder/ -> "ok" or reason (make_mixed_folder's)
    good_urls: list[str]
    # (substring of the reported place, reason) for every bad record outside the folder
    rejected: list[tuple[str, str]] = field(default_factory=list)
    victim: Path = Path()
    secret: Path = Path()
    relsim_good_hashes: list[str] = field(default_factory=list)


def make_hostile_corpus(root: Path, base_url: str) -> HostileCorpus:
    root = Path(root)
    outside = root / "outside"
    outside.mkdir(parents=True, exist_ok=True)
    victim, secret = outside / "victim.png", outside / "secret.png"
    victim.write_bytes(VICTIM_BYTES)
    secret.write_bytes(SECRET_BYTES)

    folder = root / "folder"
    expected = make_mixed_folder(folder)
    os.symlink(secret, folder / "bad" / "escape.png")  # leaves the source tree: reported, not read
    expected["bad/escape.png"] = "symlink_outside_source"
    os.symlink("../good/normal_a.png", folder / "awkward" / "inside_link.png")  # stays inside: followed
    expected["awkward/inside_link.png"] = "duplicate"  # same bytes as good/normal_a.png
    (folder / "bad" / "junk.jpg").write_bytes(b"not an image, only junk text. " * 2200)  # ~66 KB: over a small quarantine cap
    expected["bad/junk.jpg"] = "not_an_image"

    good_urls = [f"{base_url}/red.png", f"{base_url}/green.png"]
    url_lines = good_urls + [
        "http://127.0.0.1:99999/x.png",  # port out of range
        "http://[::1",  # unbalanced bracket
        "file:///etc/passwd",
        "javascript:alert(1)",
        "ftp://example.org/x.png",
        "not a url at all",
    ]
    urls = root / "urls.txt"
    urls.write_text("\n".join(url_lines) + "\n")
    rejected = [(f"urls.txt:{i}", "bad_url") for i in range(3, len(url_lines) + 1)]

    rel = root / "relsim"
    (rel / "images").mkdir(parents=True, exist_ok=True)
    good_hashes = []
    lines: list[str] = []
    for i, colour in enumerate([(10, 120, 200), (200, 120, 10), (90, 90, 30)]):
        h = hashlib.md5(f"local-{i}".encode()).hexdigest()
        (rel / "images" / f"{h}.png").write_bytes(png_bytes(colour, (64, 48)))
        good_hashes.append(h)
        lines.append(json.dumps({"image_hash": h, "caption": f"{{Object}} number {i}", "url_link": ""}))
    # The relsim rows below reach for ../../outside/victim.png from relsim/images/.
    bad_rows = [
        ('{"image_hash": "../../outside/victim", "caption": "x", "url_link": ""}', "bad_image_hash"),
        (json.dumps({"image_hash": str(victim.with_suffix("")), "caption": "x", "url_link": ""}), "bad_image_hash"),
        (json.dumps({"image_hash": "a" * 300, "caption": "x", "url_link": ""}), "bad_image_hash"),
        ('{"image_hash": "%s", "caption": "lone \\udcff surrogate", "url_link": ""}' % good_hashes[0], "bad_text"),
        ('{"image_hash": "%s", "caption": "nul \\u0000 byte", "url_link": ""}' % good_hashes[1], "bad_text"),
        ('{"image_hash": "abc", "caption": "x", "url_link": "http://[::1"}', "bad_url"),
        ('{"image_hash": "abd", "caption": "x", "url_link": "file:///etc/passwd"}', "bad_url"),
        ('{"image_hash": ', "bad_json"),
    ]
    start = len(lines) + 1
    lines += [row for row, _ in bad_rows]
    rejected += [(f"anonymous_captions_train.jsonl:{start + i}", reason) for i, (_, reason) in enumerate(bad_rows)]
    jsonl = rel / "anonymous_captions_train.jsonl"
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")

    seed = root / "seed_group.json"
    seed.write_text(json.dumps([
        {"anonymous_caption": "\"a {Object} in three colours\"", "image_urls": [f"{base_url}/blue.png", f"{base_url}/grey.png"]},
        {"anonymous_caption": "\"leaks a file\"", "image_urls": [f"{base_url}/red.png", "file:///etc/passwd"]},
    ]))
    rejected.append(("seed_group.json:record 1", "bad_record"))
    good_urls += [f"{base_url}/blue.png", f"{base_url}/grey.png"]
    return HostileCorpus(root=root, inputs=[folder, urls, jsonl, seed], folder_expected=expected,
                         good_urls=good_urls, rejected=rejected, victim=victim, secret=secret,
                         relsim_good_hashes=good_hashes)


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every file under `root` (links not followed): compare before
    and after a run to prove nothing was written there."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


__all__ = ["HostileCorpus", "OK", "loopback_server", "make_hostile_corpus", "png_bytes", "tree_state"]

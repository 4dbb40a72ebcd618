"""URL ingest against a real HTTP server on loopback: downloads, caps, retries, SSRF refusal."""
from __future__ import annotations

import http.server
import io
import socket
import threading

import pytest
from PIL import Image as PILImage

from relcurate.curation.ingest.download import RefusedURL, check_url
from relcurate.curation.ingest.pipeline import ingest_source
from relcurate.curation.catalog.stats import workspace_stats


def _png(color) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (48, 40), color).save(buf, "PNG")
    return buf.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    flaky_hits: dict[str, int] = {}

    def log_message(self, *a):  # keep test output clean
        pass

    def do_GET(self):
        routes = {
            "/red.png": (200, _png((255, 0, 0))),
            "/blue.png": (200, _png((0, 0, 255))),
            "/html.jpg": (200, b"<html>not an image</html>"),
            "/big.png": (200, b"\0" * 300_000),
        }
        if self.path == "/flaky.png":  # fails twice, then works: retried with backoff
            n = self.flaky_hits[self.path] = self.flaky_hits.get(self.path, 0) + 1
            status, body = (503, b"busy") if n <= 2 else (200, _png((0, 255, 0)))
        elif self.path == "/redirect-to-red":
            self.send_response(302)
            self.send_header("Location", "/red.png")
            self.end_headers()
            return
        else:
            status, body = routes.get(self.path, (404, b"missing"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_downloads_with_allow_private(workspace, server, tmp_path):
    workspace.ingest.max_download_bytes = 200_000
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(f"{server}{p}" for p in
                              ["/red.png", "/blue.png", "/html.jpg", "/big.png", "/missing.png", "/flaky.png",
                               "/redirect-to-red"]) + "\n# comment\nnot-a-url\n")
    report = ingest_source(workspace, urls, allow_private_urls=True)
    # fetched: red, blue, html (then quarantined), flaky (after two 503s), redirect (same bytes as red)
    assert report.downloaded == 5
    assert report.added == 3 and report.duplicates_merged == 1
    reasons = sorted(q.reason for q in report.quarantined)
    assert reasons == ["bad_url", "http_error", "not_an_image", "too_large"]
    s = workspace_stats(workspace)
    assert s["images"]["pending_download"] == 0
    # resumable / idempotent: nothing left to fetch, nothing changes
    again = ingest_source(workspace, urls, allow_private_urls=True)
    assert again.downloaded == 0 and again.added == 0
    assert workspace_stats(workspace) == s


def test_loopback_refused_by_default(sqlite_workspace, server, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{server}/red.png\n")
    report = ingest_source(sqlite_workspace, urls)
    assert [q.reason for q in report.quarantined] == ["refused_url"]
    assert "loopback" in report.quarantined[0].detail


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.4", "169.254.169.254", "[::1]",
                                  "[fe80::1]", "0.0.0.0", "localhost", "metadata.google.internal"])
def test_private_addresses_refused(host):
    with pytest.raises(RefusedURL):
        check_url(f"http://{host}/x.png")
    check_url(f"http://{host}/x.png", allow_private=True)  # explicitly allowed


def test_dns_answer_checked_not_the_name():
    # A public-looking name that resolves to a private address is refused (checked after DNS).
    def fake_resolve(host, port, type=0):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))]

    with pytest.raises(RefusedURL, match="private"):
        check_url("https://images.example.com/a.png", resolve=fake_resolve)

    def public(host, port, type=0):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    check_url("https://images.example.com/a.png", resolve=public)


def test_offline_urls_stay_pending(sqlite_workspace, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("https://no-such-host.invalid/a.png\n")
    report = ingest_source(sqlite_workspace, urls)
    assert report.quarantined == [] and report.pending_download == 1
    assert any("still pending" in w for w in report.warnings)
    assert workspace_stats(sqlite_workspace)["images"]["pending_download"] == 1

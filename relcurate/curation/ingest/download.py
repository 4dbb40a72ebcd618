"""Fetch `pending_download` images: bounded concurrency, timeouts, size caps, retries with
backoff, resumable (only pending rows are fetched, so a re-run continues where it stopped).

Time is bounded three ways: httpx's per-read timeout, a wall-clock deadline per attempt (a server
dripping one byte every few seconds never trips a read timeout) and one per URL covering every
attempt and backoff. Any failure of one URL, whatever its type, is that URL's result: it never
stops the other downloads.

Host names are normalised before the check (lower case, a trailing dot removed: ``localhost.``
and ``127.0.0.1.`` are the same hosts), IP literals and ``*.localhost`` are judged without DNS.

Every host is resolved first and refused when any address is loopback, private, link-local,
multicast, reserved or a cloud metadata endpoint, unless `allow_private=True`. Redirects are
followed by hand so each hop is checked the same way.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import urljoin, urlsplit

import httpx

from relcurate.safe_names import url_problem

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}
MAX_REDIRECTS = 5
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class RefusedURL(Exception):
    pass


class Unresolvable(Exception):
    """DNS failed: offline or a bad host. Not refused (the row stays pending), not retried."""


@dataclass(frozen=True)
class Fetched:
    url: str
    data: bytes | None
    error: str | None = None  # short reason code when data is None
    detail: str = ""
    retryable: bool = False


def _address_refused(ip: ipaddress._BaseAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"  # includes 169.254.169.254, the common metadata address
    if ip.is_private:
        return "private"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return "reserved"
    if str(ip) == "fd00:ec2::254":
        return "metadata"
    return None


def normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def check_url(url: str, *, allow_private: bool = False, resolve=socket.getaddrinfo) -> None:
    """Raise RefusedURL unless the URL is http(s) and every address it resolves to is public."""
    problem = url_problem(url)
    if problem:
        raise RefusedURL(problem)
    parts = urlsplit(url)
    host = normalise_host(parts.hostname or "")
    if not host:
        raise RefusedURL("no host in URL")
    if allow_private:
        return
    if host in METADATA_HOSTS:
        raise RefusedURL(f"{host} is a metadata endpoint")
    if host == "localhost" or host.endswith(".localhost"):
        raise RefusedURL(f"{host} is loopback; pass --allow-private-urls to permit")
    try:
        literal = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = resolve(host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise Unresolvable(f"cannot resolve {host}: {exc}") from exc
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for ip in addresses:
        why = _address_refused(ip)
        if why:
            raise RefusedURL(f"{host} resolves to {ip} ({why}); pass --allow-private-urls to permit")


async def _fetch_one(client: httpx.AsyncClient, url: str, *, max_bytes: int, retries: int,
                     allow_private: bool, backoff_s: float, attempt_deadline_s: float = 120.0,
                     url_deadline_s: float = 300.0) -> Fetched:
    try:
        async with asyncio.timeout(url_deadline_s):
            return await _attempts(client, url, max_bytes=max_bytes, retries=retries, allow_private=allow_private,
                                   backoff_s=backoff_s, attempt_deadline_s=attempt_deadline_s)
    except TimeoutError:
        return Fetched(url, None, "download_failed", f"gave up after the {url_deadline_s:g} s deadline for this URL",
                       retryable=True)
    except Exception as exc:  # one URL's surprise (a malformed URL, a bad header) is its own result
        return Fetched(url, None, "download_failed", f"{type(exc).__name__}: {exc}")


async def _attempts(client: httpx.AsyncClient, url: str, *, max_bytes: int, retries: int, allow_private: bool,
                    backoff_s: float, attempt_deadline_s: float) -> Fetched:
    attempt = 0
    while True:
        try:
            async with asyncio.timeout(attempt_deadline_s):
                return await _fetch_follow(client, url, max_bytes=max_bytes, allow_private=allow_private)
        except RefusedURL as exc:
            return Fetched(url, None, "refused_url", str(exc))
        except Unresolvable as exc:
            return Fetched(url, None, "unresolvable", str(exc), retryable=True)
        except _TooLarge as exc:
            return Fetched(url, None, "too_large", str(exc))
        except (httpx.TransportError, _RetryableStatus, TimeoutError) as exc:
            attempt += 1
            if isinstance(exc, TimeoutError):
                exc = _RetryableStatus(f"attempt took longer than {attempt_deadline_s:g} s")
            if attempt > retries:
                return Fetched(url, None, "download_failed", f"{type(exc).__name__}: {exc} ({attempt} attempts)",
                               retryable=True)
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
        except (_HTTPError, httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return Fetched(url, None, "http_error", str(exc))


class _TooLarge(Exception):
    pass


class _HTTPError(Exception):
    pass


class _RetryableStatus(Exception):
    pass


async def _fetch_follow(client: httpx.AsyncClient, url: str, *, max_bytes: int, allow_private: bool) -> Fetched:
    for _ in range(MAX_REDIRECTS + 1):
        await asyncio.to_thread(check_url, url, allow_private=allow_private)
        async with client.stream("GET", url) as resp:
            if resp.is_redirect and "location" in resp.headers:
                url = urljoin(url, resp.headers["location"])
                continue
            if resp.status_code in RETRY_STATUS:
                raise _RetryableStatus(f"HTTP {resp.status_code}")
            if resp.status_code >= 400:
                raise _HTTPError(f"HTTP {resp.status_code}")
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise _TooLarge(f"{declared} bytes > cap {max_bytes}")
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise _TooLarge(f"more than cap {max_bytes} bytes")
                chunks.append(chunk)
            return Fetched(url, b"".join(chunks))
    raise _HTTPError(f"more than {MAX_REDIRECTS} redirects")


async def fetch_all(urls: Iterable[str], on_done: Callable[[str, Fetched], None], *, concurrency: int = 8,
                    timeout_s: float = 30.0, max_bytes: int = 50_000_000, retries: int = 3,
                    allow_private: bool = False, backoff_s: float = 0.5, attempt_deadline_s: float = 120.0,
                    url_deadline_s: float = 300.0) -> None:
    """Fetch every URL, calling `on_done(original_url, result)` as each finishes."""
    sem = asyncio.Semaphore(concurrency)
    timeout = httpx.Timeout(timeout_s)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False,
                                 headers={"User-Agent": "relcurate/0.1"}) as client:

        async def one(u: str) -> None:
            async with sem:
                r = await _fetch_one(client, u, max_bytes=max_bytes, retries=retries,
                                     allow_private=allow_private, backoff_s=backoff_s,
                                     attempt_deadline_s=attempt_deadline_s, url_deadline_s=url_deadline_s)
            on_done(u, r)

        await asyncio.gather(*(one(u) for u in urls))

"""Checks for names and text that come from input before they become paths, URLs or rows.

Every reader and every export goes through these, so one hostile value (``../../victim``, a
300-character hash, a lone surrogate, a NUL byte, ``http://[::1``) is one rejected record with a
reason instead of a crash, a traceback or a file written outside its folder.
"""
from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

# A reference image_hash becomes ``<hash>.png``: one path component of a sane length, no
# separators, no leading dot (hidden files, "." and ".."), ASCII only. md5/sha hex fit easily.
MAX_HASH_LEN = 64  # the store's ref_hash column
_SAFE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_URL_LEN = 4096  # the store's uri column
MAX_TEXT_LEN = 100_000


def hash_problem(value: object) -> str | None:
    """Why `value` cannot name a file (None when it can)."""
    if not isinstance(value, str) or not value:
        return "image_hash must be a non-empty string"
    if len(value) > MAX_HASH_LEN:
        return f"image_hash is {len(value)} characters (at most {MAX_HASH_LEN})"
    if not _SAFE_STEM.fullmatch(value):
        return f"image_hash {shorten(value)} is not a plain file name (letters, digits, '.', '_', '-')"
    return None


def is_safe_stem(value: object) -> bool:
    return hash_problem(value) is None


def text_problem(value: object, what: str = "text") -> str | None:
    """Why a string cannot be stored identically on SQLite and PostgreSQL (None when it can):
    lone surrogates do not encode as UTF-8, PostgreSQL text refuses NUL."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"{what} must be a string"
    if "\x00" in value:
        return f"{what} contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"{what} contains an unpaired surrogate at position {exc.start}"
    if len(value) > MAX_TEXT_LEN:
        return f"{what} is {len(value)} characters (at most {MAX_TEXT_LEN})"
    return None


def url_problem(url: object) -> str | None:
    """Why `url` is not a fetchable http(s) URL (None when it is). Parsing only, no DNS."""
    if not isinstance(url, str) or not url:
        return "URL must be a non-empty string"
    bad_text = text_problem(url, "URL")
    if bad_text:
        return bad_text
    if len(url) > MAX_URL_LEN:
        return f"URL is {len(url)} characters (at most {MAX_URL_LEN})"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return f"URL {shorten(url)} contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError as exc:
        return f"malformed URL {shorten(url)}: {exc}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"not an http(s) URL: {shorten(url)}"
    if not parts.hostname:
        return f"no host in URL {shorten(url)}"
    if port == 0:
        return f"port 0 in URL {shorten(url)}"
    return None


def is_within(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether `path`, with every symlink resolved, lies inside `root` (also resolved)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def shorten(value: str, limit: int = 80) -> str:
    """repr() of at most `limit` characters, so an error message never echoes a huge input."""
    text = value if len(value) <= limit else value[:limit] + "…"
    return ascii(text)

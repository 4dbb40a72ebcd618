"""What people without the curate permission see of a server location: the file name (and a
":line" or "[record]" suffix), never the folders above it. URLs stay as they are: they are
public addresses, not the server's layout."""
from __future__ import annotations

import posixpath
import re

_FILE_URI = re.compile(r"^file://")
_SUFFIX = re.compile(r"(:\d+|\[\d+\])$")


def redact_location(text: str | None) -> str:
    """'/srv/data/in/a.jsonl:12' -> 'a.jsonl:12'; 'file:///srv/x/p.png' -> 'p.png';
    'https://example.org/a.png' unchanged; text that is no path unchanged."""
    if not text:
        return text or ""
    s = _FILE_URI.sub("", text)
    if not (s.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", s)):
        return text
    m = _SUFFIX.search(s)
    suffix = m.group(1) if m else ""
    base = s[: len(s) - len(suffix)] if suffix else s
    return (posixpath.basename(base.replace("\\", "/").rstrip("/")) or base) + suffix


def redact_paths_in(text: str | None) -> str:
    """Every absolute path or file URI inside free text (error details) cut to its file name."""
    if not text:
        return text or ""
    return re.sub(r"(file://)?(/[^\s'\",;()]+)", lambda m: redact_location(m.group(0)), text)

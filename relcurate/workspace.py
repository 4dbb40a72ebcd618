"""A workspace is a folder: config, SQLite database (unless a URL is configured), a
content-addressed image store, thumbnails, quarantine, models and exports.

Layout::

    relcurate.toml            config (db_url, ingest limits)
    relcurate.db              SQLite store (WAL)
    images/ab/cd/<sha256>.<ext>   originals, byte for byte
    thumbs/ab/cd/<sha256>.jpg     EXIF-normalised RGB thumbnails
    quarantine/<sha256>.bin       bad inputs kept aside for inspection
    models/  exports/  vectors/
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import Engine, make_url

from relcurate.db.engine import make_engine
from relcurate.db.migrate import upgrade_to_head

CONFIG_NAME = "relcurate.toml"
DB_URL_ENV = "RELCURATE_DB_URL"
DEFAULT_DB_URL = "sqlite:///relcurate.db"


class WorkspaceError(Exception):
    pass


@dataclass
class IngestSettings:
    max_pixels: int = 64_000_000
    max_download_bytes: int = 50_000_000
    download_timeout_s: float = 30.0
    download_concurrency: int = 8
    download_retries: int = 3
    # A slow-drip server can keep each read under download_timeout_s forever: these bound the
    # wall-clock time of one attempt and of one URL (all attempts and backoff together).
    download_attempt_deadline_s: float = 120.0
    download_url_deadline_s: float = 300.0
    near_duplicate_distance: int = 6  # pHash Hamming distance that makes a candidate pair
    # Second signal: cosine of the two thumbnails' centred 32x32 colour pixels (ingest/dedup.py).
    near_duplicate_min_similarity: float = 0.95
    quarantine_max_bytes: int = 20_000_000  # larger bad files keep their reason, not their bytes


@dataclass
class ReviewSettings:
    """``[review]`` in relcurate.toml. allow_self_accept: one-person teams may accept captions
    they wrote or last edited (separation of duties is the default; each such accept is recorded)."""

    allow_self_accept: bool = False


@dataclass
class Workspace:
    root: Path
    db_url_setting: str = DEFAULT_DB_URL
    ingest: IngestSettings = field(default_factory=IngestSettings)
    review: ReviewSettings = field(default_factory=ReviewSettings)

    # -- creation / discovery -------------------------------------------------------------
    @classmethod
    def init(cls, root: str | os.PathLike, db_url: str | None = None) -> "Workspace":
        """Create the workspace (or reuse it) and bring its database to the latest schema."""
        root = Path(root).resolve()
        root.mkdir(parents=True, exist_ok=True)
        cfg = root / CONFIG_NAME
        if not cfg.exists():
            cfg.write_text(_render_config(db_url or DEFAULT_DB_URL))
        elif db_url:
            ws = cls.open(root)
            if ws.db_url_setting != db_url:
                cfg.write_text(_render_config(db_url, ws.ingest, ws.review))
        ws = cls.open(root, db_url=db_url)
        for sub in ("images", "thumbs", "quarantine", "models", "exports", "vectors"):
            (root / sub).mkdir(exist_ok=True)
        upgrade_to_head(ws.engine)
        return ws

    @classmethod
    def open(cls, root: str | os.PathLike = ".", db_url: str | None = None) -> "Workspace":
        root = Path(root).resolve()
        cfg = root / CONFIG_NAME
        if not cfg.exists():
            raise WorkspaceError(f"{root} is not a relcurate workspace (no {CONFIG_NAME}); run `relcurate init {root}`")
        try:
            data = tomllib.loads(cfg.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise WorkspaceError(f"{cfg}: invalid TOML: {exc}") from exc
        section = data.get("relcurate", {})
        ingest = IngestSettings(**{k: v for k, v in data.get("ingest", {}).items() if k in IngestSettings.__dataclass_fields__})
        review_data = data.get("review", {})
        allow = review_data.get("allow_self_accept", False)
        if not isinstance(allow, bool):
            raise WorkspaceError(f"{cfg}: [review] allow_self_accept must be true or false, not {allow!r}")
        url = db_url or os.environ.get(DB_URL_ENV) or section.get("db_url", DEFAULT_DB_URL)
        return cls(root=root, db_url_setting=url, ingest=ingest, review=ReviewSettings(allow_self_accept=allow))

    # -- paths ----------------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        """The configured URL with a relative SQLite path resolved against the workspace."""
        url = make_url(self.db_url_setting)
        if url.get_backend_name() == "sqlite" and url.database and not os.path.isabs(url.database):
            url = url.set(database=str(self.root / url.database))
        return url.render_as_string(hide_password=False)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.db_url)

    def image_path(self, sha256: str, ext: str) -> Path:
        return self.root / image_relpath(sha256, ext)

    def thumb_path(self, sha256: str) -> Path:
        return self.root / thumb_relpath(sha256)

    def quarantine_path(self, sha256: str) -> Path:
        return self.root / quarantine_relpath(sha256)

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def vectors_dir(self) -> Path:
        return self.root / "vectors"


# Module-level so worker processes can compute store paths without a Workspace (engine) object.
# Store paths are built only from a sha256 the store computed and a short extension; anything
# else (a name that came from input) is refused here, so it can never become a path.
_SHA256 = re.compile(r"[0-9a-f]{64}")
_EXT = re.compile(r"[a-z0-9]{1,8}")


def _checked(sha256: str, ext: str = "bin") -> str:
    if not (isinstance(sha256, str) and _SHA256.fullmatch(sha256) and isinstance(ext, str) and _EXT.fullmatch(ext)):
        raise ValueError(f"not a store key: {sha256!r}.{ext!r}")
    return sha256


def image_relpath(sha256: str, ext: str) -> str:
    _checked(sha256, ext)
    return f"images/{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext}"


def thumb_relpath(sha256: str) -> str:
    _checked(sha256)
    return f"thumbs/{sha256[:2]}/{sha256[2:4]}/{sha256}.jpg"


def quarantine_relpath(sha256: str) -> str:
    _checked(sha256)
    return f"quarantine/{sha256}.bin"


def _render_config(db_url: str, ingest: IngestSettings | None = None,
                   review: ReviewSettings | None = None) -> str:
    ingest = ingest or IngestSettings()
    review = review or ReviewSettings()
    lines = [
        "# relcurate workspace configuration",
        "[relcurate]",
        "version = 1",
        f"db_url = {_toml_str(db_url)}  # relative sqlite paths are resolved against this folder",
        "",
        "[ingest]",
    ]
    for name in IngestSettings.__dataclass_fields__:
        lines.append(f"{name} = {getattr(ingest, name)!r}")
    lines += ["", "[review]", "# true only for one-person teams: lets whoever wrote or edited a caption accept it",
              f"allow_self_accept = {'true' if review.allow_self_accept else 'false'}"]
    return "\n".join(lines) + "\n"


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

"""Read-side queries for the UI and CLI: paged image listings with filters."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, or_
from sqlmodel import select

from relcurate.db.engine import read_scope
from relcurate.db.models import Image, ImageSource
from relcurate.workspace import Workspace


@dataclass(frozen=True)
class ImageCard:
    id: int
    sha256: str | None
    status: str
    source_uri: str
    alt_text: str | None
    width: int | None
    height: int | None
    thumb: Path | None
    original: Path | None
    quarantine_reason: str | None


def card_of(ws: Workspace, img: Image) -> ImageCard:
    ok = img.sha256 and img.ext and img.status == "ok"
    return ImageCard(
        id=img.id, sha256=img.sha256, status=img.status, source_uri=img.source_uri, alt_text=img.alt_text,
        width=img.width, height=img.height,
        thumb=ws.thumb_path(img.sha256) if ok else None,
        original=ws.image_path(img.sha256, img.ext) if ok else None,
        quarantine_reason=img.quarantine_reason,
    )


def list_images(ws: Workspace, *, status: str | None = "ok", text: str | None = None,
                offset: int = 0, limit: int = 48) -> tuple[list[ImageCard], int]:
    """A page of images (newest id last) and the total matching count."""
    q = select(Image)
    if status:
        q = q.where(Image.status == status)
    if text:
        like = f"%{text.strip()}%"
        q = q.where(or_(Image.alt_text.ilike(like), Image.source_uri.ilike(like)))
    with read_scope(ws.engine) as s:
        total = s.exec(select(func.count()).select_from(q.subquery())).one()
        rows = s.exec(q.order_by(Image.id).offset(offset).limit(limit)).all()
        return [card_of(ws, r) for r in rows], total


def get_image(ws: Workspace, image_id: int) -> ImageCard | None:
    with read_scope(ws.engine) as s:
        img = s.get(Image, image_id)
        return card_of(ws, img) if img else None


def image_sources(ws: Workspace, image_id: int) -> list[str]:
    with read_scope(ws.engine) as s:
        return list(s.exec(select(ImageSource.uri).where(ImageSource.image_id == image_id).order_by(ImageSource.id)))

"""Guideline examples for the filter question: images an admin pins as a clear Yes / clear No.

Annotators see them in the guidelines panel of the filter page. Pinning is configuration, not
labeling history: unpinning deletes the row.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from relcurate.db.write_retry import run_write
from relcurate.db.engine import read_scope
from relcurate.db.models import Answer, GuidelineExample, Image, ImageStatus, utcnow

MAX_NOTE = 500


class GuidelineError(ValueError):
    pass


@dataclass(frozen=True)
class Example:
    image_id: int
    answer: str  # yes | no
    note: str | None


def pin_example(engine: Engine, image_id: int, answer: str, *, user_id: int | None = None,
                note: str | None = None) -> None:
    """Pin (or re-pin with a new answer/note) an image as a clear example."""
    answer = Answer(answer).value
    if answer == Answer.skip:
        raise GuidelineError("a guideline example is a clear yes or a clear no")
    note = (note or "").strip()[:MAX_NOTE] or None

    def tx(s: Session) -> None:
        img = s.get(Image, image_id)
        if img is None or img.status != ImageStatus.ok:
            raise GuidelineError(f"no usable image {image_id}")
        ex = s.get(GuidelineExample, image_id)
        if ex is None:
            s.add(GuidelineExample(image_id=image_id, answer=answer, note=note, pinned_by=user_id))
        else:
            ex.answer, ex.note, ex.pinned_by, ex.pinned_at = answer, note, user_id, utcnow()

    run_write(engine, tx)


def unpin_example(engine: Engine, image_id: int) -> bool:
    return run_write(engine, lambda s: s.execute(
        delete(GuidelineExample).where(GuidelineExample.image_id == image_id)).rowcount == 1)


def list_examples(engine: Engine) -> list[Example]:
    """Pinned examples, clear Yes first, oldest pin first within each."""
    with read_scope(engine) as s:
        rows = s.exec(select(GuidelineExample).order_by(GuidelineExample.answer.desc(),
                                                         GuidelineExample.pinned_at, GuidelineExample.image_id))
        return [Example(r.image_id, r.answer, r.note) for r in rows]

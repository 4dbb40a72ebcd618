"""The LLM judge's cache: one verdict per (endpoint, model, prompt, temperature, image pair),
so a rerun — or another study over the same pairs — does not pay twice.

The key hashes the endpoint (normalised: no trailing slash), the model, the full prompt text,
the temperature and the two images' sha256 (order matters: the prompt names a first and a second
image). Invalid replies are cached too (at temperature 0 the same request gives the same reply);
failed requests (network, 5xx after retries, spending cap) are not, so a rerun tries them again.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select

from relcurate.db.engine import read_scope, session_scope
from relcurate.db.models import JudgeVerdict, utcnow
from relcurate.workspace import Workspace

REPLY_KEEP = 300  # characters of the reply text kept (enough to see why it was invalid)


def cache_key(endpoint: str, model: str, prompt: str, temperature: float, image_a: str, image_b: str) -> str:
    fields = [endpoint.rstrip("/"), model, prompt, repr(float(temperature)), image_a, image_b]
    return hashlib.sha256(json.dumps(fields).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Verdict:
    key: str
    endpoint: str
    model: str
    image_a: str
    image_b: str
    score: float | None
    valid: bool
    reply: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class JudgeCache(Protocol):
    def get_many(self, keys: Sequence[str]) -> dict[str, Verdict]: ...

    def put_many(self, verdicts: Iterable[Verdict]) -> None: ...


class MemoryJudgeCache:
    """In-process cache (benchmarks, dry runs)."""

    def __init__(self) -> None:
        self._d: dict[str, Verdict] = {}

    def get_many(self, keys: Sequence[str]) -> dict[str, Verdict]:
        return {k: self._d[k] for k in keys if k in self._d}

    def put_many(self, verdicts: Iterable[Verdict]) -> None:
        for v in verdicts:
            self._d.setdefault(v.key, v)

    def __len__(self) -> int:
        return len(self._d)


class StoreJudgeCache:
    """The cache in the workspace's store (`judge_verdict`); writes are insert-or-ignore, so two
    runs racing on one pair keep the first verdict and neither fails."""

    CHUNK = 500

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def get_many(self, keys: Sequence[str]) -> dict[str, Verdict]:
        out: dict[str, Verdict] = {}
        keys = list(dict.fromkeys(keys))
        with read_scope(self.ws.engine) as s:
            for i in range(0, len(keys), self.CHUNK):
                for r in s.exec(select(JudgeVerdict).where(JudgeVerdict.key.in_(keys[i:i + self.CHUNK]))):
                    out[r.key] = Verdict(r.key, r.endpoint, r.model, r.image_a, r.image_b, r.score, r.valid,
                                         r.reply, r.prompt_tokens, r.completion_tokens)
        return out

    def put_many(self, verdicts: Iterable[Verdict]) -> None:
        rows = [{"key": v.key, "endpoint": v.endpoint[:1024], "model": v.model[:256], "image_a": v.image_a,
                 "image_b": v.image_b, "score": v.score, "valid": v.valid, "reply": v.reply[:REPLY_KEEP],
                 "prompt_tokens": v.prompt_tokens, "completion_tokens": v.completion_tokens}
                for v in verdicts]
        if not rows:
            return
        dialect = self.ws.engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        now = utcnow()
        for r in rows:
            r["created_at"] = now
        with session_scope(self.ws.engine) as s:
            for i in range(0, len(rows), self.CHUNK):
                stmt = insert(JudgeVerdict.__table__).values(rows[i:i + self.CHUNK]).on_conflict_do_nothing(
                    index_elements=["key"])
                s.execute(stmt)

    def count(self) -> int:
        with read_scope(self.ws.engine) as s:
            return int(s.exec(select(func.count()).select_from(JudgeVerdict)).one())

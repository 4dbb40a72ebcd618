"""An LLM judge over any OpenAI-compatible chat endpoint (the `openai` package), with the
paper's prompt verbatim and two images as base64 data URIs.

Differences from the reference, on purpose: temperature 0 by default (the reference used 0.7;
configurable), strict parsing (a reply that is not exactly one number in [0, 10] is recorded
invalid, never guessed from "the first number"), bounded concurrency, retries with jittered
exponential backoff on transient errors only, a cache (judge_cache.py), and a spending cap
(paid requests and/or estimated cost). The API key comes from the config or the environment
and is never printed, logged or put into an error message.
"""
from __future__ import annotations

import base64
import hashlib
import math
import os
import random
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from relcurate.evaluation.judge_cache import JudgeCache, MemoryJudgeCache, REPLY_KEEP, Verdict, cache_key

# The paper's judge prompt, verbatim (see ../shared/notes/relsim-reference.md).
JUDGE_PROMPT = (
    "You are given two images.\n"
    "Your task is to determine whether these two images share a similar underlying logic\u2014that is, "
    "whether they form an analogical pair.\n"
    "\n"
    "Do NOT base your judgment on visual similarity (e.g., color, shape, composition) or semantic "
    "similarity (such as both showing the same object or class). \n"
    "Images that are visually or semantically similar but do NOT share the same underlying logic should "
    "receive a very low score.\n"
    "\n"
    "Focus ONLY on whether the two images convey the same conceptual or relational logic. \n"
    "For example, if one image shows a peach's internal structures, and the other shows a Earth's internal "
    "structures, they share the same logic and should receive a very high score.\n"
    "\n"
    "Output a single numerical score between 0 and 10, where:\n"
    "10 = very strong analogical/relational similarity (same underlying logic)\n"
    "0 = no logical/relational similarity\n"
    "\n"
    "Output only the number."
)
SYSTEM_PROMPT = "You are a helpful assistant."
API_KEY_ENVS = ("RELCURATE_JUDGE_API_KEY", "OPENAI_API_KEY")
_NUMBER = re.compile(r"[+]?(\d+(?:\.\d+)?|\.\d+)")
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif"}

Progress = Callable[[int, int], None]


def parse_score(reply: str | None) -> float | None:
    """The score if the whole reply (whitespace aside) is one number in [0, 10], else None."""
    if reply is None:
        return None
    m = _NUMBER.fullmatch(reply.strip())
    if m is None:
        return None
    value = float(m.group(1))
    return value if 0.0 <= value <= 10.0 and math.isfinite(value) else None


@dataclass
class JudgeConfig:
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)  # else RELCURATE_JUDGE_API_KEY / OPENAI_API_KEY
    temperature: float = 0.0
    concurrency: int = 8
    retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    timeout_s: float = 60.0
    max_tokens: int = 16
    max_requests: int | None = None  # spending cap: paid requests this run
    max_cost: float | None = None  # spending cap: estimated cost this run (needs the prices)
    price_prompt_per_1k: float = 0.0
    price_completion_per_1k: float = 0.0
    prompt: str = JUDGE_PROMPT

    def resolved_key(self) -> str:
        if self.api_key:
            return self.api_key
        for name in API_KEY_ENVS:
            if os.environ.get(name):
                return os.environ[name]
        # A local stand-in server needs no key; the openai client refuses an empty one.
        return "no-key"

    def public(self) -> dict:
        """The settings worth recording with a result — never the key."""
        return {"base_url": self.base_url.rstrip("/"), "model": self.model, "temperature": self.temperature,
                "concurrency": self.concurrency, "retries": self.retries, "max_requests": self.max_requests,
                "max_cost": self.max_cost, "prompt_sha256": hashlib.sha256(self.prompt.encode()).hexdigest()}


@dataclass(frozen=True)
class JudgePair:
    path_a: Path
    path_b: Path
    hash_a: str  # sha256 of the bytes (the store's Image.sha256)
    hash_b: str


@dataclass(frozen=True)
class JudgeResult:
    pair: JudgePair
    status: str  # ok | invalid | failed | capped
    score: float | None
    reply: str = ""
    cached: bool = False
    error: str = ""


@dataclass
class JudgeStats:
    requests: int = 0
    cached: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    capped: int = 0
    failed: int = 0
    invalid: int = 0


def _data_uri(path: Path) -> str:
    mime = _MIME.get(path.suffix.lower(), "image/png")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _transient(exc: Exception) -> bool:
    import openai

    if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in (408, 409, 429)
    return False


def _describe(exc: Exception) -> str:
    """An error line without request details (headers could carry the key)."""
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")


class Judge:
    def __init__(self, config: JudgeConfig, cache: JudgeCache | None = None, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        from openai import OpenAI

        self.config = config
        self.cache = cache if cache is not None else MemoryJudgeCache()
        self._sleep = sleep
        # Retries are ours (counted, capped, backoff shaped); the client's own are off.
        self._client = OpenAI(base_url=config.base_url, api_key=config.resolved_key(), max_retries=0,
                              timeout=config.timeout_s)
        self.stats = JudgeStats()
        self._lock = threading.Lock()

    def _key(self, pair: JudgePair) -> str:
        c = self.config
        return cache_key(c.base_url, c.model, c.prompt, c.temperature, pair.hash_a, pair.hash_b)

    def _ask(self, pair: JudgePair) -> tuple[str, int, int]:
        c = self.config
        content = [{"type": "text", "text": c.prompt},
                   {"type": "image_url", "image_url": {"url": _data_uri(pair.path_a)}},
                   {"type": "image_url", "image_url": {"url": _data_uri(pair.path_b)}}]
        for attempt in range(c.retries + 1):
            try:
                resp = self._client.chat.completions.create(
                    model=c.model, temperature=c.temperature, max_tokens=c.max_tokens,
                    messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}])
                usage = getattr(resp, "usage", None)
                text = resp.choices[0].message.content if resp.choices else None
                return (text or ""), int(getattr(usage, "prompt_tokens", 0) or 0), \
                    int(getattr(usage, "completion_tokens", 0) or 0)
            except Exception as exc:  # noqa: BLE001 - classified below
                if attempt >= c.retries or not _transient(exc):
                    raise
                with self._lock:
                    self.stats.retries += 1
                delay = min(c.max_backoff_s, c.backoff_s * 2 ** attempt)
                self._sleep(delay * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")

    def _within_cap(self, in_flight: int) -> bool:
        c, st = self.config, self.stats
        if c.max_requests is not None and st.requests + in_flight >= c.max_requests:
            return False
        if c.max_cost is not None:
            per = st.cost / st.requests if st.requests else 0.0  # in-flight requests priced like the past ones
            if st.cost + per * in_flight >= c.max_cost:
                return False
        return True

    def score(self, pairs: Sequence[JudgePair], progress: Progress | None = None,
              flush_every: int = 50) -> list[JudgeResult]:
        """A result per pair (in order). Cached verdicts first; the rest go to the endpoint with at
        most `concurrency` in flight, until done or the spending cap stops new requests."""
        c = self.config
        keys = [self._key(p) for p in pairs]
        hits = self.cache.get_many(keys)
        results: list[JudgeResult | None] = [None] * len(pairs)
        todo: dict[str, list[int]] = {}
        for i, (p, k) in enumerate(zip(pairs, keys)):
            v = hits.get(k)
            if v is not None:
                results[i] = JudgeResult(p, "ok" if v.valid else "invalid", v.score, v.reply, cached=True)
            else:
                todo.setdefault(k, []).append(i)  # one request for a pair asked twice
        self.stats.cached += len(pairs) - sum(len(v) for v in todo.values())
        done = len(pairs) - sum(len(v) for v in todo.values())
        if progress:
            progress(done, len(pairs))
        queue = list(todo.items())
        pending: dict[Future, str] = {}
        unflushed: list[Verdict] = []
        with ThreadPoolExecutor(max_workers=max(1, c.concurrency)) as pool:
            while queue or pending:
                while queue and len(pending) < max(1, c.concurrency) and self._within_cap(len(pending)):
                    key, idx = queue.pop(0)
                    pending[pool.submit(self._ask, pairs[idx[0]])] = key
                if not pending:  # capped: everything left is recorded as such, not asked
                    for key, idx in queue:
                        for i in idx:
                            results[i] = JudgeResult(pairs[i], "capped", None, error="spending cap reached")
                        self.stats.capped += len(idx)
                        done += len(idx)
                    queue = []
                    break
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in finished:
                    key = pending.pop(fut)
                    idx = todo[key]
                    pair = pairs[idx[0]]
                    self.stats.requests += 1
                    try:
                        text, pt, ct = fut.result()
                    except Exception as exc:  # noqa: BLE001
                        for i in idx:
                            results[i] = JudgeResult(pairs[i], "failed", None, error=_describe(exc))
                        self.stats.failed += 1
                    else:
                        self.stats.prompt_tokens += pt
                        self.stats.completion_tokens += ct
                        self.stats.cost += pt / 1000 * c.price_prompt_per_1k + ct / 1000 * c.price_completion_per_1k
                        value = parse_score(text)
                        self.stats.invalid += value is None
                        for i in idx:
                            results[i] = JudgeResult(pairs[i], "ok" if value is not None else "invalid", value,
                                                     text[:REPLY_KEEP])
                        unflushed.append(Verdict(key, c.base_url.rstrip("/"), c.model, pair.hash_a, pair.hash_b,
                                                 value, value is not None, text[:REPLY_KEEP], pt, ct))
                    done += len(idx)
                if len(unflushed) >= flush_every:  # paid answers reach the cache as they come: resumable
                    self.cache.put_many(unflushed)
                    unflushed = []
                if progress:
                    progress(done, len(pairs))
        self.cache.put_many(unflushed)
        if progress:
            progress(len(pairs), len(pairs))
        return [r for r in results if r is not None]


_CONFIG_FIELDS = {"base_url", "model", "api_key", "temperature", "concurrency", "retries", "backoff_s", "timeout_s",
                  "max_tokens", "max_requests", "max_cost", "price_prompt_per_1k", "price_completion_per_1k"}


def judge_config(config_file: Path | None = None, **overrides) -> JudgeConfig:
    """A JudgeConfig from the `[judge]` table of a workspace's relcurate.toml, then `overrides`
    (None values ignored). The key: `api_key` in the table or overrides, else the environment
    variable named by `api_key_env` (default RELCURATE_JUDGE_API_KEY, then OPENAI_API_KEY)."""
    import tomllib

    table: dict = {}
    if config_file is not None and Path(config_file).exists():
        try:
            table = dict(tomllib.loads(Path(config_file).read_text()).get("judge", {}))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{config_file}: invalid TOML: {exc}") from None
    unknown = set(table) - _CONFIG_FIELDS - {"api_key_env"}
    if unknown:
        raise ValueError(f"{config_file}: unknown [judge] settings {sorted(unknown)}")
    values = {**table, **{k: v for k, v in overrides.items() if v is not None}}
    key_env = values.pop("api_key_env", None)
    if not values.get("api_key") and key_env:
        values["api_key"] = os.environ.get(str(key_env)) or None
    missing = [k for k in ("base_url", "model") if not values.get(k)]
    if missing:
        raise ValueError(f"the judge needs {' and '.join(missing)}: pass --{missing[0].replace('_', '-')} or set it "
                         f"in the [judge] table of {config_file or 'relcurate.toml'}")
    return JudgeConfig(**{k: v for k, v in values.items() if k in _CONFIG_FIELDS})

"""The LLM judge against a local stand-in server: good, malformed, slow and failing replies,
retries with backoff, bounded concurrency, the cache, the spending cap, the key kept secret."""
from __future__ import annotations

import hashlib
import logging
import threading

import numpy as np
import pytest
from PIL import Image as PILImage

from relcurate.evaluation.judge import JUDGE_PROMPT, Judge, JudgeConfig, JudgePair, parse_score
from relcurate.evaluation.judge_cache import MemoryJudgeCache, StoreJudgeCache, cache_key
from relcurate.testing.judge_server import Reply, StandInJudge, default_score, images_of

SECRET = "sk-test-SECRET-never-shown-123"


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    d = tmp_path_factory.mktemp("judge-img")
    paths = []
    for i in range(12):
        p = d / f"{i}.png"
        PILImage.fromarray(np.full((8, 8, 3), i * 20, np.uint8)).save(p)
        paths.append((p, hashlib.sha256(p.read_bytes()).hexdigest()))
    return [JudgePair(paths[i][0], paths[i + 1][0], paths[i][1], paths[i + 1][1]) for i in range(11)]


def config(server, **kw) -> JudgeConfig:
    kw.setdefault("backoff_s", 0.01)
    return JudgeConfig(base_url=server.base_url, model="stand-in", api_key=SECRET, **kw)


@pytest.mark.parametrize("reply, score", [("7", 7.0), (" 3.5\n", 3.5), ("10", 10.0), ("0", 0.0),
                                          ("11", None), ("-1", None), ("Score: 7", None), ("7/10", None),
                                          ("7 or 8", None), ("", None), (None, None), ("seven", None)])
def test_strict_parsing(reply, score):
    assert parse_score(reply) == score


def test_good_replies_are_scored_cached_and_not_paid_twice(pairs, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    with StandInJudge() as server:
        cache = MemoryJudgeCache()
        judge = Judge(config(server, concurrency=4), cache)
        results = judge.score(pairs)
        assert [r.status for r in results] == ["ok"] * len(pairs)
        assert all(0 <= r.score <= 10 for r in results)
        assert len(server.requests) == len(pairs)
        req = server.requests[0]
        assert req["temperature"] == 0.0  # the reference used 0.7
        assert req["messages"][0]["content"] == "You are a helpful assistant."
        user = req["messages"][1]["content"]
        assert user[0] == {"type": "text", "text": JUDGE_PROMPT}
        assert [u[:22] for u in images_of(req)] == ["data:image/png;base64,"] * 2
        assert server.auth_headers[0] == f"Bearer {SECRET}"  # sent to the endpoint...
        again = Judge(config(server), cache).score(pairs)
        assert len(server.requests) == len(pairs)  # ...rerun served from the cache
        assert [r.score for r in again] == [r.score for r in results] and all(r.cached for r in again)
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err + caplog.text  # ...and never printed or logged
    assert SECRET not in repr(judge.config) and SECRET not in str(judge.config.public())


def test_malformed_replies_are_invalid_never_guessed(pairs):
    answers = iter(["Score: 8", "8", "eight", "12", "4.5 out of 10", "   6  "] * 3)
    lock = threading.Lock()

    def responder(req):
        with lock:
            return Reply(next(answers))

    with StandInJudge(responder) as server:
        results = Judge(config(server, concurrency=1)).score(pairs[:6])
    assert [r.status for r in results] == ["invalid", "ok", "invalid", "invalid", "invalid", "ok"]
    assert [r.score for r in results] == [None, 8.0, None, None, None, 6.0]
    assert results[0].reply == "Score: 8"


def test_failing_and_slow_replies_are_retried_with_backoff(pairs):
    calls: dict[str, int] = {}
    lock = threading.Lock()
    first, second, third = (images_of_pair(p) for p in pairs[:3])

    def responder(req):
        key = "".join(images_of(req))
        with lock:
            calls[key] = calls.get(key, 0) + 1
            n = calls[key]
        if key == first and n <= 2:
            return Reply(status=500)  # transient: retried
        if key == second:
            return Reply(status=400)  # the request is wrong: not retried
        if key == third and n == 1:
            return Reply("5", delay_s=3.0)  # slower than the timeout: retried
        return default_score(req)

    sleeps = []
    with StandInJudge(responder) as server:
        judge = Judge(config(server, concurrency=2, timeout_s=1.0, backoff_s=0.2), sleep=sleeps.append)
        results = judge.score(pairs[:4])
    assert [r.status for r in results] == ["ok", "failed", "ok", "ok"]
    assert calls[first] == 3 and calls[second] == 1 and calls[third] >= 2
    assert "HTTP 400" in results[1].error and SECRET not in results[1].error
    # 2 for the 500s, >= 1 for the timeout (more only if the loaded machine delays a normal reply)
    assert judge.stats.retries >= 3 and len(sleeps) == judge.stats.retries
    assert max(sleeps) > 0.2 * 0.5 * 1.9  # the second retry of the first pair waited about twice as long

    with StandInJudge(lambda req: Reply(status=503)) as server:
        cache = MemoryJudgeCache()
        judge = Judge(config(server, retries=2), cache, sleep=lambda s: None)
        results = judge.score(pairs[:2])
        assert [r.status for r in results] == ["failed", "failed"]
        assert len(server.requests) == 6 and len(cache) == 0  # failures are not cached: a rerun tries again


def images_of_pair(pair: JudgePair) -> str:
    from relcurate.evaluation.judge import _data_uri

    return _data_uri(pair.path_a) + _data_uri(pair.path_b)


def test_concurrency_is_bounded(pairs):
    with StandInJudge(lambda req: Reply("5", delay_s=0.1)) as server:
        Judge(config(server, concurrency=3)).score(pairs)
        assert 2 <= server.max_in_flight <= 3


def test_spending_cap(pairs):
    with StandInJudge() as server:
        cache = MemoryJudgeCache()
        judge = Judge(config(server, concurrency=2, max_requests=4), cache)
        results = judge.score(pairs)
        assert len(server.requests) == 4
        assert sum(r.status == "ok" for r in results) == 4 and sum(r.status == "capped" for r in results) == 7
        # Cost cap: 1000 prompt tokens per request at 0.01 per 1k = 0.01 per request.
        judge = Judge(config(server, concurrency=1, max_cost=0.025, price_prompt_per_1k=0.01), cache)
        results = judge.score(pairs)
        assert len(server.requests) == 4 + 3  # the cached four are free; three more reach the cap
        assert sum(r.cached for r in results) == 4 and sum(r.status == "capped" for r in results) == 4


def test_cache_key_and_store_cache(workspace, pairs):
    k = cache_key("http://h/v1/", "m", "p", 0.0, "a", "b")
    assert k == cache_key("http://h/v1", "m", "p", 0.0, "a", "b")
    assert len({k, cache_key("http://h/v1", "m2", "p", 0.0, "a", "b"), cache_key("http://h/v1", "m", "p2", 0.0, "a", "b"),
                cache_key("http://h/v1", "m", "p", 0.7, "a", "b"), cache_key("http://h/v1", "m", "p", 0.0, "b", "a")}) == 5
    with StandInJudge() as server:
        cache = StoreJudgeCache(workspace)
        first = Judge(config(server), cache).score(pairs[:5])
        cache.put_many([])  # no-op
        again = Judge(config(server), StoreJudgeCache(workspace)).score(pairs[:5])
        assert len(server.requests) == 5 and cache.count() == 5
        assert [r.score for r in again] == [r.score for r in first]
        from relcurate.evaluation.judge_cache import Verdict
        v = Verdict("x" * 64, "e", "m", "a", "b", 1.0, True, "1")
        cache.put_many([v])
        cache.put_many([v])  # a racing second writer: ignored, not an error
        assert cache.count() == 6

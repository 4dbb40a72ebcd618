"""The refresh's compute helpers: a lowered-priority thread that hands back its result or error
and leaves the caller's priority alone; the float32 logistic at its extremes."""
from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

from relcurate.background_compute import one_blas_thread, run_niced
from relcurate.models.linear_head import LinearHead, sigmoid


def _my_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_run_niced_returns_the_result_and_keeps_the_callers_priority():
    before = _my_nice()
    seen = run_niced(lambda: (threading.get_native_id(), _my_nice()), 5)
    assert _my_nice() == before
    if sys.platform.startswith("linux"):
        assert seen[0] != threading.get_native_id()
        assert seen[1] == min(19, before + 5)


def test_run_niced_raises_the_workers_error_in_the_caller():
    def boom():
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        run_niced(boom, 5)


def test_nice_zero_runs_in_the_calling_thread():
    assert run_niced(threading.get_native_id, 0) == threading.get_native_id()


def test_one_blas_thread_is_reentrant_and_products_still_work():
    x = np.ones((8, 4), dtype=np.float32)
    with one_blas_thread(), one_blas_thread():
        assert (x @ np.ones(4, dtype=np.float32)).tolist() == [4.0] * 8


def test_sigmoid_is_float32_and_stable_at_the_extremes():
    z = np.array([-1e4, -30.0, -1.0, 0.0, 1.0, 30.0, 1e4], dtype=np.float32)
    p = sigmoid(z)
    assert p.dtype == np.float32 and np.isfinite(p).all()
    want = 1.0 / (1.0 + np.exp(-z.astype(np.float64).clip(-700, 700)))
    assert np.allclose(p, want, rtol=1e-6, atol=1e-30)
    assert p[0] == 0.0 and p[-1] == 1.0 and p[3] == 0.5


def test_predict_vectors_matches_the_plain_formula_across_chunks():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(1000, 16)).astype(np.float32), rng.normal(size=16)
    got = LinearHead(w, 0.3).predict_vectors(x, chunk=128)
    assert np.allclose(got, 1.0 / (1.0 + np.exp(-(x.astype(np.float64) @ w + 0.3))), atol=1e-6)

"""Subprocess helpers for the trainer kill -9 / resume tests (no tests here).

`python -m relcurate.testing.training_runs KIND WS BASE NAME KILL_AT` trains with the small test
settings of `small_settings` and SIGKILLs itself right after optimizer step KILL_AT (0: never) —
a real kill -9 at a known point, not a timing race.
"""
from __future__ import annotations

import os
import signal
import sys

from relcurate.training.loop import LoopSettings


def small_loop(**kw) -> LoopSettings:
    base = dict(epochs=50, max_steps=8, batch_size=8, lr=1e-3, checkpoint_every=2, log_every=1, progress=False,
                seed=7)
    base.update(kw)
    return LoopSettings(**base)


def small_settings(kind: str, **loop_kw):
    if kind == "relsim":
        from relcurate.training.relsim_trainer import RelsimSettings

        return RelsimSettings(image_size=56, loop=small_loop(**loop_kw))
    if kind == "filter":
        from relcurate.training.filter_trainer import FilterSettings

        return FilterSettings(max_pixels=56 * 56, loop=small_loop(**loop_kw))
    from relcurate.training.captioner_trainer import CaptionerSettings

    return CaptionerSettings(max_pixels=56 * 56, eval_max_new_tokens=4, loop=small_loop(**loop_kw))


def train(kind: str, ws, base: str, name: str, *, on_step=None, settings=None):
    from relcurate.training import train_model

    return train_model(kind, ws, name=name, base=base, settings=settings or small_settings(kind), on_step=on_step)


def main(argv: list[str]) -> None:
    from relcurate.workspace import Workspace

    kind, ws_path, base, name, kill_at = argv[0], argv[1], argv[2], argv[3], int(argv[4])

    def on_step(step: int) -> None:
        if kill_at and step >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    train(kind, Workspace.open(ws_path), base, name, on_step=on_step)


if __name__ == "__main__":
    main(sys.argv[1:])

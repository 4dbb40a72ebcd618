"""Metrics logging through accelerate's tracker API.

`LocalTracker` (the default) appends one JSON object per `log` call to `metrics.jsonl` and the same
rows to `metrics.csv` in the run folder: no service, readable with pandas, and appended to (not
rewritten) when a run resumes. TensorBoard / W&B / any accelerate tracker is chosen by name.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from accelerate.tracking import GeneralTracker

LOCAL = "local"


class LocalTracker(GeneralTracker):
    name = LOCAL
    requires_logging_directory = False
    main_process_only = True

    def __init__(self, run_name: str, logging_dir: str | Path) -> None:
        super().__init__()
        self.run_name = run_name
        self.dir = Path(logging_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.dir / "metrics.jsonl"
        self.csv = self.dir / "metrics.csv"

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values: dict) -> None:
        (self.dir / "hparams.json").write_text(json.dumps(values, indent=1, sort_keys=True, default=str))

    def log(self, values: dict, step: Optional[int] = None, **kwargs: Any) -> None:
        row = {"step": step, "time": round(time.time(), 3), **values}
        with self.jsonl.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=float) + "\n")
        new = not self.csv.exists()
        with self.csv.open("a", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "time", "key", "value"])  # long format: metric keys may differ per call
            for k, v in values.items():
                w.writerow([step, row["time"], k, v])


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "logs" / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_trackers(names: Sequence[str], run_dir: Path, run_name: str) -> list:
    """`log_with` for `Accelerator`: "local" becomes a LocalTracker; other names go to accelerate
    ("tensorboard", "wandb", "all", ...)."""
    out: list = []
    for n in names or (LOCAL,):
        out.append(LocalTracker(run_name, run_dir / "logs") if n == LOCAL else n)
    return out

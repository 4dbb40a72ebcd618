"""Label Studio round trip: push N tasks with predictions, pull N annotations, against a local
Label Studio server (started here from .venv-labelstudio/, warm from the test cache).

    .venv/bin/python bench/labelstudio.py [--n 20000] [--baseline-n 200] [--reps 3]

Timed (relcurate, the whole library call):
- push: `push_filter` of N queue-selected images with predictions (batched imports of 1,000,
  task <-> image map written per batch);
- pull: `pull` of N annotations (one JSON export, then label events via labels.record_labels, 500 a transaction);
- re-pull: the idempotent no-op pull (median of --reps).

Baseline, measured in the same run against the same server: the label-studio-sdk 2.1.2 plain
loop, one call per task — `tasks.create` + `predictions.create` per task for the push,
`annotations.list(task)` per task for the pull — run in .venv-labelstudio's Python (the SDK is
not installable beside relcurate's numpy). It runs --baseline-n tasks; the table gives the
median per-task latency and that times N ("extrapolated": a 20,000-call loop takes over an hour).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from sqlalchemy import insert  # noqa: E402

from relcurate.curation.labeling import leases  # noqa: E402
from relcurate.curation.labelstudio import projects  # noqa: E402
from relcurate.curation.labelstudio.connection import LSClient, LSConfig, save_config  # noqa: E402
from relcurate.curation.labelstudio.pull import pull  # noqa: E402
from relcurate.curation.labelstudio.push import _reconcile, push_filter  # noqa: E402
from relcurate.curation.labelstudio.server import find_executable, start_server  # noqa: E402
from relcurate.db.engine import session_scope  # noqa: E402
from relcurate.db.models import ModelKind, Prediction  # noqa: E402
from relcurate.models.registry import register_model  # noqa: E402
from relcurate.testing.labeling import add_image_rows  # noqa: E402
from relcurate.testing.labelstudio import ADMIN, TEST_TOKEN, cached_data_dir  # noqa: E402

# Runs in .venv-labelstudio: the SDK's one-call-per-task loops. URL and token come by environment.
SDK_LOOP = r"""
import json, os, statistics, sys, time
from label_studio_sdk import LabelStudio
ls = LabelStudio(base_url=os.environ["B_URL"], api_key=os.environ["B_TOKEN"])
n, config = int(sys.argv[1]), sys.argv[2]
p = ls.projects.create(title="sdk baseline", label_config=config)
push = []
for i in range(n):
    t0 = time.perf_counter()
    t = ls.tasks.create(project=p.id, data={"image": f"/data/local-files/?d=x{i}.png", "relcurate_image_id": i})
    ls.predictions.create(task=t.id, model_version="m:1", score=0.7,
        result=[{"from_name": "answer", "to_name": "image", "type": "choices", "value": {"choices": ["Yes"]}}])
    push.append(time.perf_counter() - t0)
ids = [t.id for t in ls.tasks.list(project=p.id)]
pull = []
for tid in ids:
    t0 = time.perf_counter()
    ls.annotations.list(id=tid)
    pull.append(time.perf_counter() - t0)
ls.projects.delete(id=p.id)
print(json.dumps({"push": statistics.median(push), "pull": statistics.median(pull)}))
"""


def _workspace(root: Path, n: int, server: str, doc_root: Path, predictions: bool):
    from relcurate.workspace import Workspace

    ws = Workspace.init(root)
    save_config(ws, LSConfig(server, TEST_TOKEN, document_root=str(doc_root)))
    ids = add_image_rows(ws.engine, n)
    leases.sync_pool(ws.engine)
    if predictions:
        mv = register_model(ws, kind=ModelKind.filter, name="bench", base_model="none")
        rows = [{"model_version_id": mv.id, "image_id": i, "score": (k % 997) / 997} for k, i in enumerate(ids)]
        with session_scope(ws.engine) as s:
            s.execute(insert(Prediction), rows)
    return ws, ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--baseline-n", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    exe = find_executable()
    base = Path(tempfile.mkdtemp(prefix="relcurate-bench-ls-"))
    shutil.copytree(cached_data_dir(exe), base / "data")
    doc_root = base / "root"
    doc_root.mkdir()
    server = start_server(base / "data", doc_root, token=TEST_TOKEN, username=ADMIN, password=uuid.uuid4().hex)
    try:
        client = LSClient(server.url, TEST_TOKEN, timeout=600)
        ws, _ = _workspace(doc_root / "push", args.n, server.url, doc_root, predictions=True)
        t0 = time.perf_counter()
        res = push_filter(ws, client)
        t_push = time.perf_counter() - t0
        assert res.pushed == args.n, res

        # Pull: a second workspace whose project gets N annotated tasks (imported in bulk, untimed).
        ws2, ids2 = _workspace(doc_root / "pull", args.n, server.url, doc_root, predictions=False)
        rec = projects.ensure_project(ws2, client, projects.FILTER)
        admin = next(u for u, e in client.users().items() if e == ADMIN)
        for start in range(0, args.n, 1000):
            client.post(f"/api/projects/{rec.ls_project_id}/import", [
                {"data": {"image": "/x.png", "relcurate_image_id": i},
                 "annotations": [{"result": [{"from_name": "answer", "to_name": "image", "type": "choices",
                                              "value": {"choices": ["Yes" if i % 3 else "No"]}}],
                                  "completed_by": admin, "lead_time": 1.5}]}
                for i in ids2[start:start + 1000]])
        _reconcile(ws2, client, rec, "relcurate_image_id")
        t0 = time.perf_counter()
        out = pull(ws2, client)
        t_pull = time.perf_counter() - t0
        assert out.new == args.n, (out.new, out.problems[:3])
        repull = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            assert pull(ws2, client).changed == 0
            repull.append(time.perf_counter() - t0)

        env = dict(os.environ, B_URL=server.url, B_TOKEN=TEST_TOKEN)
        sdk = subprocess.run([str(exe.parent / "python"), "-c", SDK_LOOP, str(args.baseline_n),
                              projects.filter_label_config()], env=env, capture_output=True, text=True, timeout=3000)
        if sdk.returncode != 0:
            raise SystemExit(f"SDK baseline failed: {sdk.stderr[-2000:]}")
        per = json.loads(sdk.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)

    n = args.n
    rows = [("push (tasks + predictions)", t_push, per["push"] * n),
            ("pull (annotations)", t_pull, per["pull"] * n)]
    print(f"Label Studio 1.23.2 on loopback, N = {n:,}; SDK loop median per task over {args.baseline_n} tasks, x N")
    print(f"{'step':<28}{'relcurate s':>13}{'SDK loop s':>13}{'speed-up':>10}")
    for name, ours, theirs in rows:
        print(f"{name:<28}{ours:>13.1f}{theirs:>13.1f}{theirs / ours:>9.0f}x")
    print(f"{'re-pull, no change (median)':<28}{statistics.median(repull):>13.1f}")
    print(f"SDK per task: push {per['push'] * 1000:.0f} ms, pull {per['pull'] * 1000:.0f} ms")


if __name__ == "__main__":
    main()

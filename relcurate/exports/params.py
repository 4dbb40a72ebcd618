"""Any export from a plain params dict (what the web app's Export page and its job send):
validated and normalised into an `ExportRequest`, then run through the same library calls as
`relcurate export ...`, so both give byte-identical folders for the same store state.

Params: ``format`` (one of FORMATS), ``name`` (the output folder, created under the workspace's
``exports/``; it must be a plain file name, never a path), ``overwrite``, and per format the
options the CLI has (OPTIONS below; ``splits`` as ``"train=9,test=1"`` or a mapping, ``seed``).
Unknown keys and bad values are refused with a message naming the key. Splits are always group-
and near-duplicate-aware (splits.py): ``group_aware`` may be given, but only as true.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from relcurate.db.models import GroupStatus, User
from relcurate.exports.common import ExportResult, ImageMode
from relcurate.exports.relsim_jsonl import CAPTION_SOURCES
from relcurate.exports.snapshot import EXCLUDED_GROUP_STATUSES, URL_LINK_MODES
from relcurate.exports.splits import RELSIM_SPLITS, SFT_SPLITS, check_weights, empty_split_warnings, parse_splits
from relcurate.safe_names import hash_problem, is_within
from relcurate.workspace import Workspace

FORMATS = ("relsim", "seed-groups", "filter-sft", "captioner-sft", "hf")
COMMON_KEYS = ("format", "name", "overwrite", "group_aware")
OPTIONS: dict[str, tuple[str, ...]] = {
    "relsim": ("caption_source", "splits", "seed", "images", "include_pending", "url_link"),
    "seed-groups": ("exclude_statuses",),
    "filter-sft": ("splits", "seed", "images"),
    "captioner-sft": ("per", "caption_source", "splits", "seed", "images"),
    "hf": ("dataset", "embed", "caption_source", "splits", "seed", "include_pending"),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "caption_source": CAPTION_SOURCES, "images": tuple(m.value for m in ImageMode), "url_link": URL_LINK_MODES,
    "per": ("image", "group"), "dataset": ("relsim", "filter"),
}
DEFAULTS: dict[str, Any] = {"caption_source": "both", "seed": 0, "images": "copy", "include_pending": False,
                            "url_link": "empty", "per": "image", "dataset": "relsim", "embed": False,
                            "exclude_statuses": list(EXCLUDED_GROUP_STATUSES)}
MAX_SEED = 2**63 - 1

ProgressNote = Callable[[float, str], None]  # (fraction 0..1, note), what a job's ctx.progress takes


class ExportParamsError(ValueError):
    """The params dict is not a valid export request (the message names the key)."""


@dataclass(frozen=True)
class ExportRequest:
    format: str
    name: str
    options: dict[str, Any]  # every option of the format, defaults filled in, splits as a weight dict
    overwrite: bool = False

    def as_params(self) -> dict[str, Any]:
        """The normalised params dict (what a job stores; parses back to an equal request)."""
        return {"format": self.format, "name": self.name, "overwrite": self.overwrite, **self.options}

    @property
    def weights(self) -> dict[str, float] | None:
        return self.options.get("splits")


def default_weights(fmt: str, dataset: str = "relsim") -> dict[str, float] | None:
    """The split weights the CLI uses when --splits is not given (None: the format has no splits)."""
    if fmt == "seed-groups":
        return None
    if fmt == "relsim" or (fmt == "hf" and dataset == "relsim"):
        return dict(RELSIM_SPLITS)
    return dict(SFT_SPLITS)


def check_name(name: object) -> str:
    """An export folder name: one plain path component (letters, digits, '.', '_', '-', starting
    with a letter or digit, at most 64 characters), so it can never point outside exports/."""
    problem = hash_problem(name)
    if problem:
        raise ExportParamsError("name: " + problem.replace("image_hash", "the export name"))
    return str(name)


def export_path(ws: Workspace, name: str) -> Path:
    """exports/<name> of the workspace, after checking the name and that it stays inside."""
    root = ws.exports_dir
    path = root / check_name(name)
    if path.is_symlink() or (path.exists() and not is_within(root, path)):
        raise ExportParamsError(f"name: exports/{name} is a link; it would lead outside the exports folder")
    return path


def _flag(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ExportParamsError(f"{key}: must be true or false, not {value!r}")
    return value


def _splits(value: object) -> dict[str, float]:
    try:
        if isinstance(value, str):
            return parse_splits(value)
        if isinstance(value, Mapping):
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value.values()):
                raise ValueError("split weights must be numbers")
            return check_weights(value)
    except ValueError as exc:
        raise ExportParamsError(f"splits: {exc}") from None
    raise ExportParamsError(f"splits: give NAME=WEIGHT[,NAME=WEIGHT...] or a mapping, not {type(value).__name__}")


def _option(key: str, value: object) -> Any:
    if key in CHOICES:
        if value not in CHOICES[key]:
            raise ExportParamsError(f"{key}: must be one of {', '.join(CHOICES[key])}, not {value!r}")
        return value
    if key == "seed":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
            raise ExportParamsError(f"seed: must be a whole number from 0 to {MAX_SEED}, not {value!r}")
        return value
    if key in ("include_pending", "embed"):
        return _flag(key, value)
    if key == "splits":
        return _splits(value)
    if key == "exclude_statuses":
        known = [s.value for s in GroupStatus]
        if not isinstance(value, (list, tuple)) or any(v not in known for v in value):
            raise ExportParamsError(f"exclude_statuses: a list of group statuses ({', '.join(known)}), not {value!r}")
        return list(dict.fromkeys(value))
    raise ExportParamsError(f"unknown option {key!r}")  # unreachable: keys are checked first


def parse_export_params(params: Mapping[str, Any]) -> ExportRequest:
    """Validate and normalise a params dict (see the module docstring); ExportParamsError if bad."""
    if not isinstance(params, Mapping):
        raise ExportParamsError("export params must be a mapping")
    fmt = params.get("format")
    if fmt not in FORMATS:
        raise ExportParamsError(f"format: must be one of {', '.join(FORMATS)}, not {fmt!r}")
    allowed = set(COMMON_KEYS) | set(OPTIONS[fmt])
    unknown = sorted(str(k) for k in params if k not in allowed)
    if unknown:
        raise ExportParamsError(f"unknown option(s) for a {fmt} export: {', '.join(unknown)} "
                                f"(allowed: {', '.join(sorted(allowed))})")
    if "name" not in params:
        raise ExportParamsError("name: say which folder under exports/ to write")
    name = check_name(params["name"])
    if "group_aware" in params and _flag("group_aware", params["group_aware"]) is not True:
        raise ExportParamsError("group_aware: splits always keep seed groups and near duplicates together "
                                "(no leakage between splits); it cannot be turned off")
    overwrite = _flag("overwrite", params.get("overwrite", False))
    options: dict[str, Any] = {}
    for key in OPTIONS[fmt]:
        if key == "splits":
            continue
        options[key] = _option(key, params[key]) if key in params else DEFAULTS[key]
    if "splits" in OPTIONS[fmt]:
        given = params.get("splits")
        options["splits"] = _splits(given) if given not in (None, "") else \
            default_weights(fmt, options.get("dataset", "relsim"))
    return ExportRequest(fmt, name, options, overwrite)


def _throttled(progress: ProgressNote | None, every_s: float = 0.5):
    """The exports' (done, total) callback as a (fraction, note) one, writing at most every
    `every_s` (each write is a job heartbeat) but always the last step of a phase."""
    if progress is None:
        return None
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < every_s:
            return
        last[0] = now
        progress(done / total if total else 1.0, f"{done}/{total}")

    return report


def run_export_request(ws: Workspace, req: ExportRequest, *, user: str | User,
                       progress: ProgressNote | None = None) -> ExportResult:
    """Write the export to exports/<name> with the same library call the CLI makes."""
    out = export_path(ws, req.name)
    o, p = req.options, _throttled(progress)
    if req.format == "relsim":
        from relcurate.exports.relsim_jsonl import export_relsim

        result = export_relsim(ws, out, user=user, caption_source=o["caption_source"], splits=o["splits"],
                               seed=o["seed"], images=o["images"], include_pending=o["include_pending"],
                               url_link=o["url_link"], overwrite=req.overwrite, progress=p)
    elif req.format == "seed-groups":
        from relcurate.exports.seed_groups import export_seed_groups

        result = export_seed_groups(ws, out, user=user, exclude_statuses=tuple(o["exclude_statuses"]),
                                    overwrite=req.overwrite)
    elif req.format == "filter-sft":
        from relcurate.exports.sft import export_filter_sft

        result = export_filter_sft(ws, out, user=user, splits=o["splits"], seed=o["seed"], images=o["images"],
                                   overwrite=req.overwrite, progress=p)
    elif req.format == "captioner-sft":
        from relcurate.exports.sft import export_captioner_sft

        result = export_captioner_sft(ws, out, user=user, per=o["per"], caption_source=o["caption_source"],
                                      splits=o["splits"], seed=o["seed"], images=o["images"],
                                      overwrite=req.overwrite, progress=p)
    else:
        from relcurate.exports.hf import export_hf

        result = export_hf(ws, out, user=user, dataset=o["dataset"], embed_images=o["embed"],
                           caption_source=o["caption_source"], splits=o["splits"], seed=o["seed"],
                           include_pending=o["include_pending"], overwrite=req.overwrite, progress=p)
    splits = result.manifest.get("splits") or {}
    rows = result.counts.get("rows")
    if splits and isinstance(rows, dict):
        result.warnings.extend(w for w in empty_split_warnings(rows, splits.get("weights") or {},
                                                               splits.get("components"))
                               if w not in result.warnings)
    return result


def run_export_params(ws: Workspace, params: Mapping[str, Any], *, user: str | User,
                      progress: ProgressNote | None = None) -> ExportResult:
    """`parse_export_params` + `run_export_request`."""
    return run_export_request(ws, parse_export_params(params), user=user, progress=progress)


def result_summary(result: ExportResult, req: ExportRequest) -> dict[str, Any]:
    """What an export job stores as its result (JSON-able)."""
    files = result.manifest.get("files") or {}
    return {"name": req.name, "format": req.format, "kind": result.kind, "path": str(result.path),
            "manifest_id": result.manifest_id, "warnings": list(result.warnings), "counts": result.counts,
            "files": len(files) + 1, "bytes": sum(int(v.get("bytes", 0)) for v in files.values())}


def suggest_name(ws: Workspace, fmt: str) -> str:
    """The first ``<format>-<n>`` not yet taken under exports/ (a stable default: the same until
    that folder exists, so repeating a click repeats the same request)."""
    if fmt not in FORMATS:
        raise ExportParamsError(f"format: must be one of {', '.join(FORMATS)}, not {fmt!r}")
    n = 1
    while (ws.exports_dir / f"{fmt}-{n}").exists():
        n += 1
    return f"{fmt}-{n}"


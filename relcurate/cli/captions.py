"""`relcurate captions ...`: check anonymous captions in bulk (see relcurate.curation.groups.anonymity).

Input: a seed-group file (JSON list of ``{"anonymous_caption": ..., "image_urls": [...]}``), any
JSON list of objects with ``caption`` / ``anonymous_caption``, or a JSONL file with a ``caption``
field per line and optional ``alt_text`` (string) / ``alt_texts`` (list of strings) -- member
alt-texts enable the leak check against what the images actually show.

Exit status: 0 normally; with ``--strict``, 1 when any caption is flagged (an error or a warning)
and 2 when some input records could not be read (they are reported and skipped, the rest is
still checked; 2 wins over 1 because the check was incomplete). A file that cannot be read at
all, or a JSON list that does not parse, exits 2 whatever the mode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from relcurate.curation.groups.anonymity import (
    DEFAULT_MAX_WORDS,
    DEFAULT_MIN_WORDS,
    CaptionCheck,
    check_caption,
    summarise,
)

app = typer.Typer(help="Check anonymous captions for leaked concrete content.",
                  no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Anonymous-caption tools."""  # keeps `check` a sub-command even while it is the only one


@dataclass(frozen=True)
class CaptionRecord:
    label: str  # where it came from, for messages: "file.jsonl:12" or "seed_group.json[3]"
    caption: str
    alt_texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputProblem:
    label: str
    message: str


class InputFileError(Exception):
    """The whole file is unusable (unreadable, or a JSON list that does not parse)."""


def _record_from_obj(obj: object, label: str) -> CaptionRecord | InputProblem:
    if not isinstance(obj, dict):
        return InputProblem(label, f"expected a JSON object, got {type(obj).__name__}")
    caption = obj.get("caption", obj.get("anonymous_caption"))
    if not isinstance(caption, str):
        return InputProblem(label, "no 'caption' or 'anonymous_caption' string")
    alts = obj.get("alt_texts", obj.get("alt_text", ()))
    if isinstance(alts, str):
        alts = (alts,)
    if alts is None:
        alts = ()
    if not isinstance(alts, (list, tuple)) or not all(isinstance(a, str) for a in alts):
        return InputProblem(label, "'alt_text'/'alt_texts' must be a string or a list of strings")
    return CaptionRecord(label, caption, tuple(alts))


def read_caption_records(path: Path) -> tuple[list[CaptionRecord], list[InputProblem]]:
    """Records and per-record problems; raises InputFileError when nothing can be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read: {exc}") from exc
    records: list[CaptionRecord] = []
    problems: list[InputProblem] = []
    if path.suffix.lower() != ".jsonl" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
        for i, obj in enumerate(items):
            rec = _record_from_obj(obj, f"{path.name}[{i}]")
            (records if isinstance(rec, CaptionRecord) else problems).append(rec)
        return records, problems
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        label = f"{path.name}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(InputProblem(label, f"invalid JSON: {exc.msg} (column {exc.colno})"))
            continue
        rec = _record_from_obj(obj, label)
        (records if isinstance(rec, CaptionRecord) else problems).append(rec)
    return records, problems


def summary_line(summary: dict, skipped: int = 0) -> str:
    by_code = ", ".join(f"{c}={n}" for c, n in summary["findings_by_code"].items()) or "none"
    line = (f"checked {summary['checked']} captions: {summary['flagged']} flagged "
            f"(error: {summary['with_errors']}, warning: {summary['warnings_only']}); "
            f"by code: {by_code}")
    if skipped:
        line += f"; {skipped} input record{'s' * (skipped != 1)} skipped"
    return line


def _print_check(out: Console, record: CaptionRecord, check: CaptionCheck) -> None:
    out.print(f"[bold]{escape(record.label)}[/bold]: {escape(check.text)}")
    for f in check.findings:
        style = "red" if f.severity == "error" else "yellow"
        word = f" {escape(repr(f.word))}" if f.word is not None else ""
        out.print(f"  [{style}]{f.severity}[/{style}] {f.code}{word}: {escape(f.message)}")


@app.command("check")
def check(
    file: Path = typer.Argument(..., help="seed_group.json (JSON list) or captions JSONL."),
    strict: bool = typer.Option(False, "--strict",
                                help="Exit 1 if any caption is flagged, 2 if input records "
                                     "were skipped."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON report on stdout."),
    min_words: int = typer.Option(DEFAULT_MIN_WORDS, help="Fewer words is an error."),
    max_words: int = typer.Option(DEFAULT_MAX_WORDS, help="More words is a warning."),
) -> None:
    """Check every caption in FILE; print flagged ones with their findings and a summary."""
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        records, problems = read_caption_records(file)
    except InputFileError as exc:
        err.print(f"[red]error[/red]: {escape(str(exc))}")
        raise typer.Exit(2) from exc
    for p in problems:
        err.print(f"[red]error[/red]: {escape(p.label)}: {escape(p.message)} -- record skipped")
    checks = [check_caption(r.caption, alt_texts=r.alt_texts, min_words=min_words,
                            max_words=max_words) for r in records]
    summary = summarise(checks)
    if as_json:
        report = {
            "file": str(file),
            "summary": {**summary, "skipped": len(problems)},
            "results": [{"label": r.label, **c.to_dict()} for r, c in zip(records, checks)],
            "input_errors": [{"label": p.label, "message": p.message} for p in problems],
        }
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        for record, c in zip(records, checks):
            if c.findings:
                _print_check(out, record, c)
        out.print(escape(summary_line(summary, len(problems))))
    if strict and problems:
        raise typer.Exit(2)
    if strict and summary["flagged"]:
        raise typer.Exit(1)

"""`relcurate captions check` on the sub-app, with typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relcurate.cli.captions import app

SEED_GROUPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seed_group.json"
runner = CliRunner()


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    groups = [
        {"anonymous_caption": '"This image illustrates the progression of {Subject} from '
                              '{InitialStage} to {FinalStage}."', "image_urls": ["u1", "u2"]},
        {"anonymous_caption": '"{Subject} holding three red apples beside {Object}."',
         "image_urls": ["u3", "u4"]},
        {"anonymous_caption": '"This image shows {Subject} wearing a crown in a {Setting}."',
         "image_urls": ["u5", "u6"]},
    ]
    path = tmp_path / "seed_group.json"
    path.write_text(json.dumps(groups), encoding="utf-8")
    return path


def test_check_seed_groups_prints_flagged_and_summary(seed_file: Path) -> None:
    result = runner.invoke(app, ["check", str(seed_file)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "seed_group.json[1]: {Subject} holding three red apples beside {Object}." in out
    assert "count_word 'three'" in out and "colour_word 'red'" in out
    assert "seed_group.json[2]" in out and "object_noun 'crown'" in out
    assert "seed_group.json[0]" not in out  # clean captions are not listed
    assert out.strip().splitlines()[-1] == (
        "checked 3 captions: 2 flagged (error: 2, warning: 0); "
        "by code: colour_word=1, count_word=1, object_noun=2")


def test_strict_exits_non_zero_when_flagged(seed_file: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["check", str(seed_file), "--strict"]).exit_code == 1
    clean = write_jsonl(tmp_path / "clean.jsonl", [
        {"caption": "This image shows the progression of {Subject} over time."}])
    result = runner.invoke(app, ["check", str(clean), "--strict"])
    assert result.exit_code == 0, result.output
    assert "checked 1 captions: 0 flagged (error: 0, warning: 0); by code: none" in result.stdout


def test_jsonl_with_alt_texts_and_bad_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "captions.jsonl", [
        {"caption": "{Subject} sits on a bench in a quiet {Place}",
         "alt_text": "a cat sits on a wooden bench"},
        "{not json",
        "",
        {"caption": 42},
        [1, 2],
        {"caption": "{Subject} wearing a crown beside a sofa in the {Place}",
         "alt_texts": ["a dog wearing a crown", "a cat wearing a crown on a sofa"]},
        {"caption": "{Subject} rests beside {Object} in a quiet scene", "alt_texts": "ok"},
        {"caption": "{Subject} rests beside {Object} in a quiet scene", "alt_texts": [1]},
    ])
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output  # bad records do not fail a non-strict run
    err = result.stderr
    assert "captions.jsonl:2: invalid JSON" in err and "record skipped" in err
    assert "captions.jsonl:4: no 'caption'" in err
    assert "captions.jsonl:5: expected a JSON object, got list" in err
    assert "captions.jsonl:8: 'alt_text'/'alt_texts' must be" in err
    out = result.stdout
    assert "captions.jsonl:1:" in out and "alt_text_leak 'bench'" in out
    assert "captions.jsonl:6:" in out and "alt_text_leak 'sofa'" in out
    assert "alt_text_leak 'crown'" not in out  # shared by every member
    assert out.strip().endswith("; 4 input records skipped")
    assert "checked 3 captions: 2 flagged (error: 2, warning: 0)" in out
    # Strict: input problems win over flagged captions.
    assert runner.invoke(app, ["check", str(path), "--strict"]).exit_code == 2


def test_json_report(tmp_path: Path, seed_file: Path) -> None:
    result = runner.invoke(app, ["check", str(seed_file), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["summary"]["checked"] == 3 and report["summary"]["skipped"] == 0
    assert [r["ok"] for r in report["results"]] == [True, False, False]  # a crown is an error now
    three = report["results"][1]["findings"][0]
    assert three == {"code": "count_word", "word": "three", "start": 18, "end": 23,
                     "message": three["message"], "severity": "error"}
    assert report["input_errors"] == []


def test_user_text_is_escaped_not_rendered_as_markup(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"caption": "[bold]{Subject}[/bold] [red]x[/red]"}])
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "[bold]{Subject}[/bold] [red]x[/red]" in result.stdout


def test_unusable_files_exit_2(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["check", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('[\n {"anonymous_caption": "x"},\n oops\n]', encoding="utf-8")
    result = runner.invoke(app, ["check", str(broken)])
    assert result.exit_code == 2
    assert "broken.json:3:2: invalid JSON" in result.stderr


def test_real_seed_file(tmp_path: Path) -> None:
    if not SEED_GROUPS.exists():
        pytest.skip(f"real seed groups not available at {SEED_GROUPS} (third-party data)")
    result = runner.invoke(app, ["check", str(SEED_GROUPS), "--strict"])
    assert result.exit_code == 1  # 68 of the 532 are flagged (see test_anonymity)
    assert "checked 532 captions: 68 flagged (error: 62, warning: 6)" in result.stdout

"""Anonymous-caption checker: hand-made leaks, placeholder syntax, and the real seed captions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relcurate.curation.groups.anonymity import check_caption, normalise_caption, summarise

SEED_GROUPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seed_group.json"


def codes(check) -> list[tuple[str, str | None, str]]:
    return [(f.code, f.word, f.severity) for f in check.findings]


def words(check, code: str) -> list[str | None]:
    return [f.word for f in check.findings if f.code == code]


# --- normalisation -------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ('"This image shows {Subject} beside {Object}."', "This image shows {Subject} beside {Object}."),
    ('“{Subject} beside {Object}.”', "{Subject} beside {Object}."),
    ('""“{Subject}   beside\n {Object}.”""', "{Subject} beside {Object}."),
    ('"{Subject} beside {Object}".', "{Subject} beside {Object}."),  # full stop after the quote
    ('"{Subject} beside {Object}."."', '"{Subject} beside {Object}."."'),  # ambiguous: left
    ('"Yes" means {Word} and "No"', '"Yes" means {Word} and "No"'),
    ('"Hello" is written in {Language}.', '"Hello" is written in {Language}.'),
    ("‘{Subject} beside {Object}’", "{Subject} beside {Object}"),
    ("  plain {Text}  ", "plain {Text}"),
])
def test_normalise_caption_strips_wrapping_quotes_and_whitespace(raw: str, expected: str) -> None:
    assert normalise_caption(raw) == expected


def test_check_reports_offsets_into_the_normalised_text() -> None:
    check = check_caption('"  {Subject}  holding three\tred apples beside {Object}. "')
    assert check.text == "{Subject} holding three red apples beside {Object}."
    for f in check.findings:
        assert check.text[f.start:f.end] == f.word


# --- leaks -----------------------------------------------------------------------------------

def test_red_apple_without_placeholder() -> None:
    check = check_caption("a red apple next to its reflection")
    assert not check.ok
    assert codes(check) == [
        ("missing_placeholder", None, "error"),
        ("colour_word", "red", "error"),      # it colours a concrete object
        ("object_noun", "apple", "warning"),
    ]
    assert "reflection" not in [f.word for f in check.findings]  # structural, not an object


def test_alt_text_leak_flags_the_noun_not_the_verb() -> None:
    check = check_caption("{Subject} sits on a bench", alt_texts=["a cat sits on a wooden bench"],
                          min_words=3)
    assert codes(check) == [("alt_text_leak", "bench", "error")]
    assert "alt-text" in check.findings[0].message


def test_alt_text_leak_of_a_word_outside_the_vocabulary_in_noun_position() -> None:
    alt = "a marmoset perched on a eucalyptus branch"
    check = check_caption("{Subject} perched on a eucalyptus branch beside {Object}",
                          alt_texts=[alt])
    # "eucalyptus" and "branch" are in no vocabulary: caught because they follow "a" (+1 word);
    # "perched" is shared too but sits in verb position.
    assert words(check, "alt_text_leak") == ["eucalyptus", "branch"]


def test_word_shared_by_every_member_is_the_group_element_not_a_leak() -> None:
    alts = ["a dog wearing a crown on grass", "a cat wearing a crown on a sofa"]
    check = check_caption("{Subject} wearing a crown while resting on a sofa", alt_texts=alts)
    assert words(check, "alt_text_leak") == ["sofa"]  # only one member shows a sofa
    crown = [f for f in check.findings if f.word == "crown"]
    assert [(f.code, f.severity) for f in crown] == [("object_noun", "warning")]
    assert "all 2 members" in crown[0].message


def test_plurals_and_irregular_plurals_are_folded() -> None:
    check = check_caption("{Subject} chasing mice past benches, berries and knives today")
    assert words(check, "object_noun") == ["mice", "benches", "berries", "knives"]
    leak = check_caption("{Subject} among the benches of a quiet square",
                         alt_texts=["a dog next to a bench"])
    assert words(leak, "alt_text_leak") == ["benches"]


def test_extra_vocab_extends_the_object_nouns() -> None:
    text = "{Subject} assembles gizmos into a larger {Object} over time"
    assert check_caption(text).findings == []
    assert words(check_caption(text, extra_vocab=["Gizmo"]), "object_noun") == ["gizmos"]


def test_words_inside_placeholders_are_never_flagged() -> None:
    check = check_caption("{RedApple} resting beside {ThreeCats} and {Bench} in a quiet scene")
    assert check.findings == []
    alt = check_caption("{Subject} resting beside {Bench} in the quiet scene",
                        alt_texts=["a cat on a bench"])
    assert alt.findings == []


def test_verb_use_of_an_object_noun_is_not_flagged() -> None:
    check = check_caption("The composition bridges reality and fiction as {Subject} "
                          "creatively crowns {Object}")
    assert check.findings == []


# --- colours and counts ------------------------------------------------------------------------

def test_three_red_apples() -> None:
    check = check_caption("{Subject} holding three red apples beside {Object}")
    assert codes(check) == [
        ("count_word", "three", "error"),
        ("colour_word", "red", "error"),
        ("object_noun", "apples", "warning"),
    ]


@pytest.mark.parametrize("text", [
    "This image captures the interaction between two {Subjects} in their habitat.",
    "This image compares two versions of {Subject}, one in full color and one in monochrome.",
    "{Subject} demonstrates three key actions: {Action1}, {Action2}, and {Action3}.",
    "Each stage builds upon the previous one, moving from one form to the next for {Subject}.",
    "{Subject} and {Object} face one another, each one echoing the other.",
    "{Subject} appears as a three-dimensional 3D form in a 360-degree view.",
    "A black and white photo of {Subject} next to its shadow and {Object}.",
    "{Subject} merges with {Object}, blending the two into a single whole.",
])
def test_structural_counts_and_styles_are_not_flagged(text: str) -> None:
    assert check_caption(text).findings == []


def test_ambiguous_counts_and_colours_are_warnings() -> None:
    check = check_caption("{Subject} waves four glowing orbs while the green circle marks "
                          "{Object}")
    assert [(f.code, f.word, f.severity) for f in check.findings] == [
        ("count_word", "four", "warning"),   # "orbs" is not a known object
        ("colour_word", "green", "warning"),  # "circle" is a shape, may be the intended sign
    ]
    assert check.ok


def test_digits_count_objects_and_one_counts_only_a_direct_object() -> None:
    assert codes(check_caption("{Subject} surrounded by 12 cats in a {Setting}")) == [
        ("count_word", "12", "error"), ("object_noun", "cats", "warning")]
    assert codes(check_caption("{Subject} beside one red apple in a {Setting}")) == [
        ("count_word", "one", "error"), ("colour_word", "red", "error"),
        ("object_noun", "apple", "warning")]


# --- placeholders --------------------------------------------------------------------------------

def test_malformed_braces() -> None:
    check = check_caption("{Subject} holding {Object} with {Subject {Inner}} and {} and } or {Bad")
    assert codes(check) == [
        ("nested_braces", "{Subject {Inner}}", "error"),
        ("empty_placeholder", "{}", "error"),
        ("unbalanced_brace", "}", "error"),
        ("unbalanced_brace", "{", "error"),
    ]
    assert not check.ok


def test_placeholder_names() -> None:
    check = check_caption("{Muscle Group} works during {Exercise} and {Subject's identity} "
                          "shows beside {12}")
    found = [(f.word, f.severity) for f in check.findings if f.code == "placeholder_name"]
    assert found == [("{Muscle Group}", "warning"), ("{Subject's identity}", "warning"),
                     ("{12}", "error")]
    assert "{MuscleGroup}" in check.findings[0].message
    assert "{SubjectIdentity}" in check.findings[1].message


def test_missing_placeholder_hints_at_other_brackets() -> None:
    check = check_caption("This shows [Subject] next to [Object] in a quiet room")
    assert codes(check) == [("missing_placeholder", None, "error")]
    assert "[Subject]" in check.findings[0].message
    # Only malformed placeholders: still nothing anonymised.
    assert ("missing_placeholder", None, "error") in codes(
        check_caption("This image shows {} beside {1} in a quiet scene"))


def test_length_bounds() -> None:
    assert codes(check_caption("{Subject} beside {Object}")) == [("too_short", None, "error")]
    long = "{Subject} " + "quietly " * 70 + "rests."
    assert codes(check_caption(long)) == [("too_long", None, "warning")]
    assert check_caption("{Subject} beside {Object}", min_words=3).findings == []


def test_summarise_counts() -> None:
    checks = [check_caption(t) for t in (
        "{Subject} holding three red apples beside {Object}",      # 2 errors + 1 warning
        "{Subject} wearing a crown while resting on the ground",    # 1 warning
        "This image shows the progression of {Subject} over time",  # clean
    )]
    assert summarise(checks) == {
        "checked": 3, "flagged": 2, "with_errors": 1, "warnings_only": 1,
        "findings_by_severity": {"error": 2, "warning": 2},
        "findings_by_code": {"colour_word": 1, "count_word": 1, "object_noun": 2},
        "captions_by_code": {"colour_word": 1, "count_word": 1, "object_noun": 2},
    }


# --- the real seed captions ------------------------------------------------------------------------

def test_real_seed_captions_summary() -> None:
    """All 532 curated seed captions (seed_group.json, relsim). Measured with the checker's
    defaults (6-60 words): 21 flagged, 1 with an error, 20 with warnings only; findings by code:
    object_noun 19 (13 captions: flag x3, table x2, seeds x2, child x2, crown, glasses, hat, chef,
    and one wedding caption naming bride, groom, gown, veil, suit, tuxedo), placeholder_name 6
    warnings ({Muscle Group}, {Sports Attire}, {Primary Object}, {Object/Subject},
    {Event/Scene}, {Subject's identity}), colour_word 2 warnings ("the green circle ... the red
    circle" of an allowed/forbidden sign), missing_placeholder 1 error ("Two individuals present
    a drawn caricature of themselves, ..."). Read by hand: each flag names a concrete detail or a
    real syntax problem; the warnings are mostly the group's shared element (a crown, a flag),
    which is exactly what a warning asks the curator to confirm. No count, length or leak flags.
    """
    if not SEED_GROUPS.exists():
        pytest.skip(f"real seed groups not available at {SEED_GROUPS} (third-party data, "
                    "never copied into the repo)")
    groups = json.loads(SEED_GROUPS.read_text(encoding="utf-8"))
    checks = [check_caption(g["anonymous_caption"]) for g in groups]
    summary = summarise(checks)
    print(json.dumps(summary, indent=1))
    assert all(not c.text.startswith('"') and not c.text.endswith('"') for c in checks)
    assert summary["checked"] == 532
    assert summary["flagged"] == 21
    assert summary["with_errors"] == 1
    assert summary["findings_by_code"] == {
        "colour_word": 2, "missing_placeholder": 1, "object_noun": 19, "placeholder_name": 6}
    assert summary["captions_by_code"]["object_noun"] == 13
    assert summary["findings_by_severity"] == {"error": 1, "warning": 27}
    errors = [c for c in checks if not c.ok]
    assert errors[0].text.startswith("Two individuals present")

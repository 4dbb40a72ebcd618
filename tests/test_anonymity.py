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
        ("object_noun", "apple", "error"),    # unless a curator marks it shared
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
    assert [(f.code, f.severity) for f in crown] == [("object_noun", "error")]
    assert "all 2 members" in crown[0].message and "mark it as shared" in crown[0].message
    marked = check_caption("{Subject} wearing a crown while resting on a sofa", alt_texts=alts,
                           shared_nouns=["crown"])
    assert [f.word for f in marked.findings] == ["sofa"]


def test_plurals_and_irregular_plurals_are_folded() -> None:
    check = check_caption("{Subject} chasing mice past benches, berries and knives today")
    assert words(check, "object_noun") == ["mice", "benches", "berries", "knives"]
    leak = check_caption("{Subject} among the benches of a quiet square",
                         alt_texts=["a dog next to a bench"])
    assert words(leak, "alt_text_leak") == ["benches"]


def test_extra_vocab_extends_the_object_nouns() -> None:
    text = "{Subject} assembles florbs into a larger {Object} over time"  # in no dictionary
    assert check_caption(text).findings == []
    assert words(check_caption(text, extra_vocab=["Florb"]), "object_noun") == ["florbs"]


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
        ("object_noun", "apples", "error"),
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
    check = check_caption("{Subject} waves four glowing zorbs while the green circle marks "
                          "{Object}")
    assert [(f.code, f.word, f.severity) for f in check.findings] == [
        ("count_word", "four", "warning"),   # "zorbs" is not a known object
        ("colour_word", "green", "warning"),  # "circle" is a shape, may be the intended sign
    ]
    assert check.ok


def test_digits_count_objects_and_one_counts_only_a_direct_object() -> None:
    assert codes(check_caption("{Subject} surrounded by 12 cats in a {Setting}")) == [
        ("count_word", "12", "error"), ("object_noun", "cats", "error")]
    assert codes(check_caption("{Subject} beside one red apple in a {Setting}")) == [
        ("count_word", "one", "error"), ("colour_word", "red", "error"),
        ("object_noun", "apple", "error")]


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
    assert codes(check) == [("missing_placeholder", None, "error"), ("object_noun", "room", "error")]
    assert "[Subject]" in check.findings[0].message
    # Only malformed placeholders: still nothing anonymised.
    assert ("missing_placeholder", None, "error") in codes(
        check_caption("This image shows {} beside {1} in a quiet scene"))


def test_length_bounds() -> None:
    assert codes(check_caption("{Subject} beside {Object}")) == [("too_short", None, "error")]
    long = "{Subject} " + "quietly " * 70 + "rests."
    assert codes(check_caption(long)) == [("too_long", None, "error")]
    assert check_caption("{Subject} beside {Object}", min_words=3).findings == []


def test_summarise_counts() -> None:
    checks = [check_caption(t) for t in (
        "{Subject} holding three red apples beside {Object}",      # 3 errors
        "{Subject} wearing a crown while resting on the ground",    # 1 error
        "This image shows the progression of {Subject} over time",  # clean
    )]
    assert summarise(checks) == {
        "checked": 3, "flagged": 2, "with_errors": 2, "warnings_only": 0,
        "findings_by_severity": {"error": 4, "warning": 0},
        "findings_by_code": {"colour_word": 1, "count_word": 1, "object_noun": 2},
        "captions_by_code": {"colour_word": 1, "count_word": 1, "object_noun": 2},
    }


# --- the real seed captions ------------------------------------------------------------------------

def test_real_seed_captions_summary() -> None:
    """All 532 curated seed captions (seed_group.json, relsim), checker defaults (6-60 words).

    Measured: 68 flagged, 62 with an error. object_noun 79 findings in 61 captions, now errors
    (a curator must mark a shared object): the hand list alone finds 19 in 13 captions (flag x3,
    table x2, seeds x2, child x2, crown, glasses, hat, chef, a wedding caption naming bride,
    groom, gown, veil, suit, tuxedo); WordNet adds 60 more, each read by hand and each a
    depicted thing (attire x15 as in "{Sport} attire", water x6, fluid x3, ice x3, muscle(s) x5,
    offspring x3, fur x2, hand, face(s), ears, mouth, flesh, sky, stars, fruits, vegetables,
    ingredients, refreshments, bouquet, furniture, roadway, traveler, parent, "chalk-drawn").
    placeholder_name 6 warnings ({Muscle Group}, {Sports Attire}, {Primary Object},
    {Object/Subject}, {Event/Scene}, {Subject's identity}), colour_word 2 warnings (an
    allowed/forbidden sign's green and red circle), missing_placeholder 1 error ("Two individuals
    present a drawn caricature of themselves, ..."). No count, length, leak, emoji, markup or
    control-character flags.
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
    assert summary["flagged"] == 68
    assert summary["with_errors"] == 62
    assert summary["findings_by_code"] == {
        "colour_word": 2, "missing_placeholder": 1, "object_noun": 79, "placeholder_name": 6}
    assert summary["captions_by_code"]["object_noun"] == 61
    assert summary["findings_by_severity"] == {"error": 80, "warning": 8}
    hand_only = summarise(check_caption(g["anonymous_caption"], use_lexicon=False) for g in groups)
    assert hand_only["findings_by_code"]["object_noun"] == 19
    assert hand_only["captions_by_code"]["object_noun"] == 13
    missing = [c for c in checks if any(f.code == "missing_placeholder" for f in c.findings)]
    assert missing[0].text.startswith("Two individuals present")


# Captions with the concrete words a checker must catch: every object word of this suite's
# hand-made captions, the examples, and everyday leaks the hand list does not hold.
LEAKS = [
    ("a red apple next to its reflection", ["apple"]),
    ("{Subject} chasing mice past benches, berries and knives today", ["mice", "benches", "berries", "knives"]),
    ("{Subject} holding three red apples beside {Object}", ["apples"]),
    ("{Subject} surrounded by 12 cats in a {Setting}", ["cats"]),
    ("{Subject} wearing a crown while resting on the ground", ["crown"]),
    ("This shows [Subject] next to [Object] in a quiet room", ["room"]),
    ("an apple placed right next to {Object}", ["apple"]),
    ("The layers of {Subject} mirror the Earth's crust, mantle and core of a planet.", ["Earth's", "crust", "mantle", "planet"]),
    ("A peach cut open shows its skin, flesh and pit, like {Subject}.", ["peach", "skin", "flesh"]),
    ("{Subject} drawn on a chalkboard beside a kettle and a teapot", ["chalkboard", "kettle", "teapot"]),
    ("{Subject} carved from driftwood resting on a pebble beach", ["driftwood", "pebble", "beach"]),
    ("A violin and a saxophone arranged in the shape of {Object}", ["violin", "saxophone"]),
    ("{Subject} made of spaghetti and meatballs on a plate", ["spaghetti", "meatballs", "plate"]),
    ("A giraffe and a penguin swap their patterns with {Subject}", ["giraffe", "penguin"]),
    ("{Subject} growing out of a cactus under the moon", ["cactus", "moon"]),
    ("A lighthouse built from stacked {Object} on a cliff", ["lighthouse", "cliff"]),
    ("{Subject} seen through a microscope next to a beaker", ["microscope", "beaker"]),
    ("A sneaker split into layers like a sandwich of {Material}", ["sneaker", "sandwich"]),
    ("{Subject} reflected in a puddle on the pavement", ["puddle", "pavement"]),
    ("A skyscraper shaped like a pencil standing beside {Object}", ["skyscraper", "pencil"]),
]


def test_lexicon_recall_on_the_suites_captions() -> None:
    """Recall of concrete words over LEAKS (42 words). Measured: hand list 28/42 (0.67), with
    WordNet 41/42 (0.98); the miss is "puddle", which WordNet's SemCor counts tag more often as
    a verb than as a noun."""
    def recall(**kw) -> float:
        found = total = 0
        for text, objects in LEAKS:
            flagged = {f.word for f in check_caption(text, min_words=1, **kw).findings
                       if f.code in ("object_noun", "alt_text_leak")}
            found += sum(o in flagged for o in objects)
            total += len(objects)
        return found / total
    hand, full = recall(use_lexicon=False), recall()
    print(f"object-word recall: hand list {hand:.2f}, with WordNet {full:.2f}")
    assert full >= 0.95
    assert hand < 0.7


def test_emoji_markup_and_control_characters_are_errors() -> None:
    check = check_caption("{Subject} 🍎 grows <b>into</b> **{Object}** over\u200b time")
    found = [(f.code, f.word) for f in check.findings]
    assert ("emoji", "🍎") in found
    assert ("markup", "<b>") in found and ("markup", "</b>") in found and ("markup", "**") in found
    assert any(f.code == "control_character" and "U+200B" in f.message for f in check.findings)
    assert not check.ok
    # Ordinary line breaks and tabs are folded, not reported.
    assert check_caption("{Subject} slowly\n\tturns into {Object} over time").findings == []

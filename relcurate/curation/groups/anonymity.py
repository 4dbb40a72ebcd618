"""Anonymity checker for anonymous captions.

An anonymous caption states the relational logic a seed group shares, with ``{Placeholders}``
where the concrete content varies: "This image illustrates the progression of {Subject} from
{InitialStage} to {FinalStage}." :func:`check_caption` returns findings that each name one word
(or brace) and say why it is suspect. It runs live in the caption editor, so it is a handful of
regex scans and set look-ups (well under a millisecond for a typical caption), and every rule is
simple enough to explain in one sentence:

``missing_placeholder`` (error)
    No well-formed ``{Name}`` at all: nothing in the caption is anonymised.
``unbalanced_brace`` / ``nested_braces`` / ``empty_placeholder`` (error)
    ``{`` without ``}`` (or the reverse), ``{{X}}``, ``{}``.
``placeholder_name`` (warning or error)
    ``{Muscle Group}`` (words, but not an identifier: warning, suggests ``{MuscleGroup}``);
    ``{12}`` or ``{a+b}`` (not a name at all: error).
``alt_text_leak`` (error)
    A word that also occurs in a member's alt-text / original caption and is either a known object
    noun or stands in noun position (right after a determiner such as "a"/"the"/"its", a count or
    a colour, or one word after it). With alt-texts of several members, a word found in *every*
    one of them is taken as the shared element of the group and is not reported by this rule.
``object_noun`` (error)
    A concrete object noun outside placeholders: the hand list
    (:data:`~relcurate.curation.groups.object_nouns.OBJECT_NOUNS`, simple plurals folded) or a
    noun whose main WordNet sense is a physical thing (``lexicon.py``: "Earth", "crust",
    "mantle"), less :data:`FIGURATIVE_NOUNS`. An error unless the curator marks the noun as
    shared by every member (``shared_nouns``): it may be the invariant the group is about
    ("{Subject} adorned with a crown"), but a person must say so.
``control_character`` / ``emoji`` / ``markup`` (error)
    Invisible control or format characters, emoji and pictographs, HTML or Markdown.
``colour_word`` (error before an object noun / leaked word, else warning)
    "red apples" pins a detail that should be a placeholder; "the green circle" may be intended.
    "black and white" (the monochrome style) is not reported.
``count_word`` (error when it counts an object noun / leaked word, else warning)
    "three red apples". Counts before a placeholder or a structural noun ("two {Subjects}",
    "three stages", "two versions") are the relational structure and are not reported; bare "one"
    is almost always a pronoun ("one another", "from one form to the next") and is reported only
    when it directly counts an object ("one apple"). Hyphenated compounds ("three-dimensional",
    "360-degree") and tokens like "3D" are not counts.
``too_short`` / ``too_long`` (error)
    Word count outside ``[min_words, max_words]`` (a placeholder counts as one word).

``ok`` is true when no finding has severity "error". Words inside placeholders are never checked.
Offsets (``start``/``end``) index :attr:`CaptionCheck.text`, the normalised caption.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import unicodedata

from relcurate.curation.groups import lexicon
from relcurate.curation.groups.object_nouns import OBJECT_NOUNS

Severity = Literal["error", "warning"]

DEFAULT_MIN_WORDS = 6
# The 532 curated seed captions run 14-54 words; the reference captioner asks for "concise".
DEFAULT_MAX_WORDS = 60

_QUOTES = "\"'“”‘’„«»`"
_TERMINAL = ".!?"
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# Human-readable but not an identifier: "{Muscle Group}", "{Object/Subject}", "{Subject's identity}".
_WORDY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_ /'’\-]*")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*")
_POSSESSIVE = re.compile(r"['’]s?$")
_OTHER_BRACKETS = re.compile(r"[\[<]\s*[A-Z][A-Za-z0-9_]*\s*[\]>]")
_DIGITS = re.compile(r"\d+(?:[.,]\d+)?")

COLOUR_WORDS = frozenset(
    "red green blue yellow orange purple pink brown black white gray grey violet indigo cyan "
    "magenta turquoise teal beige maroon crimson scarlet lavender lilac".split()
)
# Two and up: "one" is handled separately (usually a pronoun). Ordinals are structure, not counts.
NUMBER_WORDS = frozenset(
    "two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty hundred hundreds thousand "
    "thousands million dozen".split()
)
STOP_WORDS = frozenset(
    """a an the this that these those it its it's they them their theirs he him his she her hers
    we us our you your i me my one ones oneself itself themselves something anything everything
    and or but nor so yet if then than as because while whereas though although when where which
    who whom whose what how why whether of in on at to for with without within by from into onto
    upon about above below under over after before between among amid amidst around through
    across along toward towards against beside besides behind beyond near off out up down via per
    is are was were be been being am has have had having do does did done can could may might must
    shall should will would not no yes also too very just only even still each every all any both
    either neither some such other another same own more most less least much many few several
    there here""".split()
)
# Words that describe the image, its layout or the logic rather than a depicted object. They are
# never reported as alt-text leaks and they end a count's look-ahead ("three stages").
STRUCTURAL_WORDS = frozenset(
    """image picture photo photograph photography illustration drawing painting sketch render
    rendering artwork art poster diagram chart graphic icon logo symbol sign text caption label
    word letter number scene view shot close-up closeup angle perspective viewpoint frame panel
    layout composition arrangement format grid row column layer background foreground backdrop
    setting surroundings environment context space surface area region edge corner border
    centre center middle top bottom left right side front back upper lower inner outer inside
    outside interior exterior half halves part parts piece pieces portion section segment
    element component detail details feature features item items object thing subject
    pattern sequence series set collection group pair couple trio cluster array stack
    version versions copy copies variant variation variations counterpart original duplicate
    stage stages step steps phase phases state states form forms shape shapes size scale
    style styles color colour colors colours tone texture material medium design structure
    reflection shadow silhouette outline contour mirror-image
    large larger largest small smaller smallest big bigger biggest tiny huge giant miniature
    tall taller short shorter long longer wide narrow full empty whole single double multiple
    different similar identical same various several separate distinct individual
    first second third fourth fifth last final initial next previous following middle
    new old young older younger early late
    person people human humans individual individuals figure figures character characters
    someone somebody viewer observer
    action actions activity activities movement motion process change changes transformation
    transition progression growth development evolution cycle journey moment time
    relationship relation connection interaction contrast comparison juxtaposition
    concept idea theme logic meaning role roles way ways manner kind type types category
    example instance case version look appearance""".split()
)
# WordNet files these under physical things, but captions use them for structure or ideas
# ("a system of {Parts}", "the key element", "the body of {Text}"); never reported from WordNet
# alone (the hand list and alt-text leaks still apply).
FIGURATIVE_NOUNS = frozenset(
    """key system systems product products network assembly solution solutions innovation
    physics addition architecture world body bodies guide chain link bridge gateway pathway
    pathways path paths output outputs snapshot motif motifs fragment fragments covering cover
    match marker container containers equipment tool tools device devices mechanism lens
    barrier anchor frame frames model models display screen network structure medium media
    accessory accessories decor decoration decorations piece pieces unit units station stage
    platform base foundation ground field line lines point points mirror mirrors window
    windows door doors gate gates wall walls seat seats table tables chosen serving ordinary
    cutout cutouts personification monochrome transport pile carving carvings shelter office
    floor""".split()
)
# A noun usually follows these (possibly after one adjective): the window for "noun position".
_DETERMINERS = frozenset(
    "a an the this that these those its their his her my our your some each every another "
    "several many few various multiple".split()
)
_IRREGULAR_PLURALS = {
    "mice": "mouse", "geese": "goose", "teeth": "tooth", "feet": "foot", "children": "child",
    "men": "man", "women": "woman", "people": "person", "oxen": "ox", "cacti": "cactus",
    "fungi": "fungus", "policemen": "policeman", "firemen": "fireman", "dice": "dice",
}


@dataclass(frozen=True)
class Finding:
    code: str
    word: str | None
    start: int | None
    end: int | None
    message: str
    severity: Severity


@dataclass(frozen=True)
class CaptionCheck:
    text: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict:
        return {"text": self.text, "ok": self.ok,
                "findings": [dataclasses.asdict(f) for f in self.findings]}

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]


@dataclass(frozen=True)
class _Token:
    kind: Literal["word", "placeholder"]
    start: int
    end: int
    text: str
    word: str  # lower case, possessive stripped; the placeholder name for placeholders


def normalise_caption(text: str) -> str:
    """Strip literal surrounding quotes (straight or curly, possibly repeated) and collapse
    whitespace. ``'"A {X}."'`` → ``'A {X}.'``; also handles a full stop after the closing quote
    (``'"A {X}".'``), which occurs in the curated seed file. A quote at one end only is content
    ("'Hello' written in {Language}") and stays, and so does a straight double quote pair when
    more straight double quotes occur inside (which quote pairs with which is ambiguous)."""
    s = " ".join(text.split())
    while len(s) >= 2:
        end = len(s)
        if s[-1] in _TERMINAL and len(s) >= 3 and s[-2] in _QUOTES:
            end -= 1  # '"...".' : the full stop sits outside the quotes
        if s[0] == '"' and '"' in s[1 : end - 1].strip(_QUOTES):
            break  # '"Yes" means {Word} and "No"': ambiguous, so leave the text as written
        if s[0] in _QUOTES and s[end - 1] in _QUOTES and end >= 2:
            inner = s[1 : end - 1].strip()
            if end < len(s) and inner and inner[-1] not in _TERMINAL:
                inner += s[-1]
            s = inner
        else:
            break
    return s


@lru_cache(maxsize=16384)
def _forms(word: str) -> frozenset[str]:
    """The word plus its plausible singulars ("benches" → bench, "berries" → berry,
    "knives" → knife/knif): over-generating is harmless because callers intersect with a
    vocabulary or with another word's forms."""
    forms = {word}
    if word in _IRREGULAR_PLURALS:
        forms.add(_IRREGULAR_PLURALS[word])
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        forms.add(word[:-1])
        if word.endswith("es"):
            forms.add(word[:-2])
        if word.endswith("ies"):
            forms.add(word[:-3] + "y")
        if word.endswith("ves"):
            forms.update((word[:-3] + "f", word[:-3] + "fe"))
    return frozenset(forms)


@dataclass(frozen=True)
class _Vocab:
    """Object nouns: the hand list (+ a project's extra words), backed by WordNet's concrete
    nouns (lexicon.py) minus words whose use in captions is mostly figurative; `shared` are
    nouns a curator marked as shown by every member of the group (never reported)."""

    nouns: frozenset[str]
    shared: frozenset[str] = frozenset()
    use_lexicon: bool = True


def _vocab_hit(word: str, vocab: _Vocab) -> str | None:
    forms = _forms(word)
    if forms & vocab.shared:
        return None
    if word in vocab.nouns:
        return word
    for form in forms:
        if form in vocab.nouns:
            return form
    if vocab.use_lexicon and not forms & FIGURATIVE_NOUNS:
        lemma = lexicon.concrete_lemma(word)
        if lemma is not None and lemma not in vocab.shared and lemma not in FIGURATIVE_NOUNS:
            return lemma
    return None


@lru_cache(maxsize=16384)
def _is_structural(word: str) -> bool:
    return any(form in STRUCTURAL_WORDS for form in _forms(word))


def _is_plain(word: str) -> bool:
    """A content word: not a stop word, not structural ("stages", "elements"), 3+ letters."""
    return len(word) >= 3 and word not in STOP_WORDS and not _is_structural(word)


def _word_key(raw: str) -> str:
    return _POSSESSIVE.sub("", raw.lower())


def _scan_placeholders(text: str) -> tuple[list[_Token], list[tuple[int, int]], list[Finding]]:
    """Placeholders (outermost spans), the spans to exclude from word checks, and brace findings."""
    placeholders: list[_Token] = []
    masked: list[tuple[int, int]] = []
    findings: list[Finding] = []
    stack: list[int] = []
    nested = False
    for i, ch in enumerate(text):
        if ch == "{":
            if stack:
                nested = True
            stack.append(i)
        elif ch == "}":
            if not stack:
                findings.append(Finding("unbalanced_brace", "}", i, i + 1,
                                        "'}' closes no '{'.", "error"))
                continue
            start = stack.pop()
            if stack:
                continue
            span = text[start : i + 1]
            masked.append((start, i + 1))
            if nested:
                nested = False
                findings.append(Finding("nested_braces", span, start, i + 1,
                                        f"{span!r} nests braces; use one level: {{Name}}.",
                                        "error"))
                continue
            name = span[1:-1]
            stripped = name.strip()
            if not stripped:
                findings.append(Finding("empty_placeholder", span, start, i + 1,
                                        "Empty placeholder: name what varies, e.g. {Object}.",
                                        "error"))
                continue
            placeholders.append(_Token("placeholder", start, i + 1, span, stripped))
            if _IDENTIFIER.fullmatch(name):
                continue
            if _WORDY_NAME.fullmatch(stripped):
                bare = re.sub(r"['’]s\b", "", stripped)  # "Subject's identity" → SubjectIdentity
                camel = "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", bare))
                findings.append(Finding("placeholder_name", span, start, i + 1,
                                        f"{span!r} is not an identifier; write {{{camel}}}.",
                                        "warning"))
            else:
                placeholders.pop()
                findings.append(Finding("placeholder_name", span, start, i + 1,
                                        f"{span!r} is not a name; start with a letter, use "
                                        "letters, digits, '_' (e.g. {Object1}).", "error"))
    for start in stack:
        findings.append(Finding("unbalanced_brace", "{", start, start + 1,
                                "'{' is never closed.", "error"))
    return placeholders, masked, findings


def _tokens(text: str, placeholders: list[_Token], masked: list[tuple[int, int]]) -> list[_Token]:
    words = []
    for m in _WORD.finditer(text):
        if any(a <= m.start() < b for a, b in masked):
            continue
        words.append(_Token("word", m.start(), m.end(), m.group(), _word_key(m.group())))
    return sorted(words + placeholders, key=lambda t: t.start)


def _alt_text_forms(alt_texts: Sequence[str]) -> list[frozenset[str]]:
    """One set of word forms per alt-text (stop/structural words dropped)."""
    out = []
    for alt in alt_texts:
        forms: set[str] = set()
        for m in _WORD.finditer(alt):
            w = _word_key(m.group())
            if _is_plain(w):
                forms.update(_forms(w))
        out.append(frozenset(forms))
    return out


class _Checker:
    """One caption's state while the rules run; kept tiny so the editor can call it per keystroke."""

    def __init__(self, text: str, tokens: list[_Token], vocab: _Vocab,
                 alt_forms: list[frozenset[str]]) -> None:
        self.text = text
        self.tokens = tokens
        self.vocab = vocab
        self.alt_forms = alt_forms
        self.findings: list[Finding] = []

    def joined(self, i: int) -> bool:
        """Token i follows token i-1 with only spaces between (no comma, full stop, dash...)."""
        return i > 0 and not self.text[self.tokens[i - 1].end : self.tokens[i].start].strip()

    def noun_position(self, i: int) -> bool:
        """A determiner, colour or count directly before token i, or one token before that
        ("a bench", "a wooden bench", "a {Size} bench", "three benches")."""
        for j in (i - 1, i - 2):
            if j < 0 or not self.joined(j + 1):
                return False
            prev = self.tokens[j]
            if prev.kind == "word" and (prev.word in _DETERMINERS or prev.word in COLOUR_WORDS
                                        or _is_count(prev.word)):
                return True
        return False

    def verb_position(self, i: int) -> bool:
        """An -s form right after a subject-like token reads as a verb: after a placeholder or a
        structural noun ("{Subject} mirrors", "the reflection mirrors") or an -ly adverb
        ("creatively mirrors") -- unless a determiner or count precedes that placeholder
        ("three {Size} apples")."""
        if i == 0 or not self.joined(i):
            return False
        prev = self.tokens[i - 1]
        if prev.kind == "placeholder":
            return not self.noun_position(i)
        return prev.word.endswith("ly") or (_is_structural(prev.word) and prev.word not in COLOUR_WORDS)

    def leak_source(self, word: str) -> str | None:
        """Why `word` is an alt-text leak, or None. With several alt-texts a word present in all
        of them is the group's shared element, not a leak."""
        if not self.alt_forms or not _is_plain(word):
            return None
        forms = _forms(word)
        hits = sum(1 for alt in self.alt_forms if forms & alt)
        if hits == 0 or (len(self.alt_forms) > 1 and hits == len(self.alt_forms)):
            return None
        n = len(self.alt_forms)
        return "the member's alt-text" if n == 1 else f"{hits} of {n} members' alt-texts"

    def concrete(self, i: int) -> bool:
        """Token i names a concrete object (vocabulary noun or an alt-text leak in noun position)."""
        t = self.tokens[i]
        if t.kind != "word" or not _is_plain(t.word):
            return False
        if _vocab_hit(t.word, self.vocab):
            return True
        return self.leak_source(t.word) is not None and self.noun_position(i)

    def add(self, code: str, t: _Token, message: str, severity: Severity) -> None:
        self.findings.append(Finding(code, t.text, t.start, t.end, message, severity))

    def run(self) -> list[Finding]:
        for i, t in enumerate(self.tokens):
            if t.kind != "word":
                continue
            if "-" in t.word:
                self.check_compound(t)
            elif t.word in COLOUR_WORDS:
                self.check_colour(i)
            elif _is_count(t.word) or t.word == "one":
                self.check_count(i)
            else:
                self.check_object(i)
        return self.findings

    def check_object(self, i: int) -> None:
        t = self.tokens[i]
        if not _is_plain(t.word):
            return
        noun = _vocab_hit(t.word, self.vocab)
        from_lexicon = noun is not None and not (_forms(t.word) & self.vocab.nouns)
        if noun and (noun != t.word or from_lexicon) and self.verb_position(i):
            return  # "The composition bridges reality", "{Subject} mirrors {Object}", "... face one another"
        source = self.leak_source(t.word)
        if source and (noun or self.noun_position(i)):
            self.add("alt_text_leak", t, f"{t.text!r} also appears in {source}: it names what "
                     "one image shows; replace it with a placeholder.", "error")
        elif noun:
            n = len(self.alt_forms)
            if n > 1 and all(_forms(t.word) & alt for alt in self.alt_forms):
                why = (f"{t.text!r} is a concrete object named in all {n} members' alt-texts: "
                       "if it is the element the group shares, mark it as shared.")
            else:
                why = (f"{t.text!r} is a concrete object ({noun}); use a placeholder, or mark it "
                       "as shared if every image in the group shows it.")
            self.add("object_noun", t, why, "error")

    def check_compound(self, t: _Token) -> None:
        # "apple-shaped", "dog-like": the object part leaks. Colours and counts inside compounds
        # are styles or dimensions ("black-and-white", "three-dimensional"): not reported.
        for part in t.word.split("-"):
            noun = _vocab_hit(part, self.vocab) if _is_plain(part) else None
            if noun:
                self.add("object_noun", t, f"{t.text!r} contains the concrete object {noun!r}; "
                         "use a placeholder, or mark it as shared if every image shows it.", "error")
                return

    def check_colour(self, i: int) -> None:
        t = self.tokens[i]
        if self.black_and_white(i):
            return
        nxt = self.next_word(i)
        if nxt is not None and self.concrete(nxt):
            self.add("colour_word", t, f"{t.text!r} fixes the colour of "
                     f"{self.tokens[nxt].text!r}; use a placeholder such as {{Color}}.", "error")
        else:
            self.add("colour_word", t, f"{t.text!r} is a specific colour; use {{Color}} unless "
                     "every image in the group has it.", "warning")

    def black_and_white(self, i: int) -> bool:
        words = [tok.word for tok in self.tokens]
        return (words[i] == "black" and words[i + 1 : i + 3] == ["and", "white"]) or (
            words[i] == "white" and i >= 2 and words[i - 2 : i] == ["black", "and"])

    def next_word(self, i: int) -> int | None:
        j = i + 1
        return j if j < len(self.tokens) and self.joined(j) else None

    def check_count(self, i: int) -> None:
        t = self.tokens[i]
        is_one = t.word == "one"
        # Look ahead over up to three joined tokens for the counted thing.
        for j in range(i + 1, min(i + 4, len(self.tokens))):
            if not self.joined(j):
                break
            nt = self.tokens[j]
            if nt.word in STOP_WORDS and j > i + 1:
                break  # "four glowing orbs while ...": the counted word was unknown
            if nt.kind == "placeholder" or nt.word in STOP_WORDS or _is_structural(nt.word):
                return  # "two {Subjects}", "three stages", "one of", "one another"
            if self.concrete(j):
                self.add("count_word", t, f"{t.text!r} fixes how many {nt.text!r}; use a "
                         "placeholder such as {Quantity} or drop the number.", "error")
                return
            if is_one and nt.word not in COLOUR_WORDS:
                return  # "one" counts only an object right after it (or after a colour)
        if not is_one and self.next_word(i) is not None:  # "between the two." is a pronoun
            self.add("count_word", t, f"{t.text!r} is a specific number; use {{Quantity}} "
                     "unless every image in the group has exactly this many.", "warning")


_MARKUP = re.compile(r"<\s*/?\s*[A-Za-z!][^>]*>|&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);|\*\*|__|`|"
                     r"\[[^\]]*\]\([^)]*\)|^\s*#+\s")


def _is_emoji(ch: str) -> bool:
    cp = ord(ch)
    return (0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF or 0x2B00 <= cp <= 0x2BFF
            or cp in (0xFE0F, 0x200D) or unicodedata.category(ch) == "So")


def _character_findings(raw: str, norm: str) -> list[Finding]:
    """Characters no caption should hold: control/format characters (in the raw text, before
    whitespace is folded; ordinary newlines and tabs are fine), emoji and pictographs, markup
    (HTML tags or entities, Markdown emphasis, code or links)."""
    out: list[Finding] = []
    bad = sorted({ch for ch in raw if unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")
                  and ch not in "\n\t\r" and not _is_emoji(ch)})
    if bad:
        names = ", ".join(f"U+{ord(ch):04X}" for ch in bad)
        out.append(Finding("control_character", None, None, None,
                           f"invisible control or format characters ({names}); retype the caption.",
                           "error"))
    for i, ch in enumerate(norm):
        if _is_emoji(ch):
            out.append(Finding("emoji", ch, i, i + 1, f"{ch!r} is an emoji or pictograph; describe "
                               "the relation in words.", "error"))
    for m in _MARKUP.finditer(norm):
        out.append(Finding("markup", m.group(), m.start(), m.end(), f"{m.group().strip()!r} is markup "
                           "(HTML or Markdown); write plain text.", "error"))
    return out


def _is_count(word: str) -> bool:
    return word in NUMBER_WORDS or _DIGITS.fullmatch(word) is not None


def check_caption(
    text: str,
    *,
    alt_texts: Sequence[str] = (),
    min_words: int = DEFAULT_MIN_WORDS,
    max_words: int = DEFAULT_MAX_WORDS,
    extra_vocab: Iterable[str] = (),
    shared_nouns: Iterable[str] = (),
    use_lexicon: bool = True,
) -> CaptionCheck:
    """Check one anonymous caption. `alt_texts`: alt-texts / original captions of the member
    images (words they share with the caption are leaks). `extra_vocab`: more object nouns to
    report (singular or plural, any case), e.g. a project's own domain terms. `shared_nouns`:
    object nouns a curator marked as shown by every member (the group's invariant, "{Subject}
    wearing a crown"); they are not reported. `use_lexicon=False` checks against the hand list
    only (WordNet off)."""
    norm = normalise_caption(text)
    placeholders, masked, findings = _scan_placeholders(norm)
    findings.extend(_character_findings(text, norm))
    if not placeholders:
        hint = _OTHER_BRACKETS.search(norm)
        msg = "No {Placeholder}: name what varies between the images, e.g. {Subject}."
        if hint:
            msg += f" Found {hint.group()!r}: placeholders use curly braces."
        findings.append(Finding("missing_placeholder", None, None, None, msg, "error"))
    nouns = OBJECT_NOUNS
    extra = [w.strip().lower() for w in extra_vocab if w.strip()]
    if extra:
        nouns = OBJECT_NOUNS | {f for w in extra for f in _forms(w)}
    shared = frozenset(f for w in shared_nouns if w.strip() for f in _forms(w.strip().lower()))
    vocab = _Vocab(nouns, shared, use_lexicon)
    tokens = _tokens(norm, placeholders, masked)
    checker = _Checker(norm, tokens, vocab, _alt_text_forms(alt_texts))
    findings.extend(checker.run())
    n_words = len(norm.split())
    if n_words < min_words:
        findings.append(Finding("too_short", None, None, None,
                                f"{n_words} word{'s' * (n_words != 1)}; at least {min_words} are needed to state the "
                                "relation.", "error"))
    elif n_words > max_words:
        findings.append(Finding("too_long", None, None, None,
                                f"{n_words} words; keep it to {max_words} at most (concise, reusable).",
                                "error"))
    findings.sort(key=lambda f: (f.start if f.start is not None else -1))
    return CaptionCheck(norm, findings)


def summarise(checks: Iterable[CaptionCheck]) -> dict:
    """Counts over many checks: ``checked``; ``flagged`` (captions with any finding), split by
    their worst severity into ``with_errors`` and ``warnings_only``; ``findings_by_severity``;
    ``findings_by_code`` (findings per code) and ``captions_by_code`` (captions having it)."""
    checked = flagged = with_errors = 0
    by_code: Counter[str] = Counter()
    captions_by_code: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    for check in checks:
        checked += 1
        if not check.findings:
            continue
        flagged += 1
        with_errors += not check.ok
        by_code.update(f.code for f in check.findings)
        captions_by_code.update({f.code for f in check.findings})
        by_severity.update(f.severity for f in check.findings)
    return {
        "checked": checked,
        "flagged": flagged,
        "with_errors": with_errors,
        "warnings_only": flagged - with_errors,
        "findings_by_severity": {"error": by_severity["error"], "warning": by_severity["warning"]},
        "findings_by_code": dict(sorted(by_code.items())),
        "captions_by_code": dict(sorted(captions_by_code.items())),
    }

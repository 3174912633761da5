"""The difference rule: the content words of one text that nothing in the other paraphrases.

A word is explained by the other side when it appears there in another inflection, abbreviated,
misspelled, split in two ("user name" / "username"), or as a word the embedding places as
interchangeable (``wording.py``). What is left changes the question, unless both sides reworded
broadly enough for the sentence cosine to judge (``broad_rewording``). See docs/semantic_cache.md,
"The difference rule".
"""

from __future__ import annotations

from difflib import SequenceMatcher
from functools import lru_cache

from .verifier_entities import abbreviates, in_spelled_out_acronym, spelled_out
from .verifier_features import Features, stem
from .verifier_order import parties
from .verifier_lexicon import (
    FRAME_NOUNS,
    FUNCTION,
    INVERTING,
    NOUN_PHRASE_OPENERS,
    NUMBER_PREFIXES,
    OPPOSED_PREFIXES,
    PARTICLES,
    PROCEDURE_WORDS,
    REQUEST_KINDS,
    SUBJECTS,
    WH_WORDS,
    compound_of,
)
from .wording import SYNONYM, WordSimilarity, word_similarity


def inflection_bases(w: str) -> set[str]:
    """The words ``w`` may be an inflection of: "living" -> live, "running" -> run, "runs" -> run.
    ``stem`` leaves words of up to six letters whole, so short verbs' forms never meet there;
    the word vectors put them at 0.8-0.9, which the earlier turns' stricter bar refuses."""
    out = {w}
    for suffix in ("ing", "ed", "es", "s"):
        if w.endswith(suffix) and not w.endswith("ss") and len(w) - len(suffix) >= 3:
            base = w[: -len(suffix)]
            out |= {base, base + "e"}
            if len(base) >= 4 and base[-1] == base[-2]:  # "running" -> "run"
                out.add(base[:-1])
    return out


@lru_cache(maxsize=100_000)
def _same_word(x: str, y: str) -> bool:
    """Inflections and spellings of one word: "include" / "included", "write" / "writing"."""
    if x == y or stem(x) == stem(y) or _plural_ies(x, y) or _plural_ies(y, x):
        return True
    # A word with another after it is a compound, another thing ("data" / "database").
    if compound_of(x, y) or compound_of(y, x):
        return False
    x, y = stem(x), stem(y)  # "dicts" is "dict" cut off from "dictionaries"
    common = 0
    for a, b in zip(x, y):
        if a != b:
            break
        common += 1
    short, long_ = sorted((len(x) - common, len(y) - common))
    # One word cut off ("config" / "configuration"), or an ending of at most one letter traded
    # for an inflection ("write" / "writing", "study" / "studies", "color" / "colour"). Two
    # endings of two letters or more are two words on one root ("internal" / "international",
    # "generic" / "general", "electric" / "electronic"), and so are two different letters
    # ("foldr" / "foldl").
    if common < 4:
        return False
    if short == 0:
        return True
    x_end, y_end = sorted((x[common:], y[common:]), key=len)
    # An adjective made of a verb is another word ("write" / "writable").
    return short <= 1 and long_ <= 4 and (x_end in "eyi" or y_end.endswith(x_end)) and y_end not in ("able", "ible")


def _plural_ies(x: str, y: str) -> bool:
    """Is ``x`` the plural of ``y`` in "-ies" ("cities" / "city"), which ``stem`` leaves apart in
    short words?"""
    return x.endswith("ies") and len(x) >= 5 and x[:-3] + "y" == y


_PATIENT_ENDINGS = ("ee", "ees")
_AGENT_ENDINGS = ("er", "ers", "or", "ors")


def _converse_roles(x: str, y: str) -> bool:
    """The two parties of one act, named on one stem: the one who acts ("-er", "-or") and the
    one acted on ("-ee"): "employer" / "employee", "lessor" / "lessee", "payer" / "payee",
    "trainer" / "trainee". They differ by one letter, and the word vectors place them close, but
    a question about one is not a question about the other."""
    for a, b in ((x, y), (y, x)):
        for pe in _PATIENT_ENDINGS:
            if a.endswith(pe) and len(a) - len(pe) >= 3:
                root = a[: -len(pe)]
                if any(b == root + ae for ae in _AGENT_ENDINGS):
                    return True
    return False


def _typo(x: str, y: str) -> bool:
    """One misspelling of a long word ("permanantly" / "permanently"): one edit, same first
    letter, seven letters or more. Shorter words one edit apart, or longer ones two apart, are
    often different words ("affect" / "effect", "maximum" / "minimum")."""
    if x[0] != y[0] or min(len(x), len(y)) < 7 or abs(len(x) - len(y)) > 1:
        return False
    prev = list(range(len(y) + 1))
    for i, a in enumerate(x, 1):
        cur = [i]
        for j, b in enumerate(y, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a != b)))
        prev = cur
    return prev[-1] <= 1


def _joined(f: Features) -> set[str]:
    """Adjacent word pairs written as one ("user name" -> "username", "node js" -> "nodejs")."""
    toks = [t for t in f.tokens if t[:1].isalpha()]
    return {a + b for a, b in zip(toks, toks[1:])} | {t.replace("-", "").replace(".", "") for t in toks}


def _half_of_joined(w: str, f: Features, other: Features) -> bool:
    """Is ``w`` one half of two adjacent words of ``f`` that ``other`` writes as one?"""
    toks = [t for t in f.tokens if t[:1].isalpha()]
    joined = {v.replace("-", "").replace(".", "") for v in other.tokens}
    # Or a piece of a hyphenated word the other side writes as one ("non-zero" / "nonzero").
    return any(w in (a, b) and a + b in joined for a, b in zip(toks, toks[1:])) or any(
        "-" in t and w in t.split("-") and t.replace("-", "") in joined for t in toks
    )


_NOT_ABBREVIATING = NOUN_PHRASE_OPENERS | INVERTING | SUBJECTS | {
    "me", "him", "us", "them", "and", "or", "but", "if", "so", "to", "as", "than", "then", "not", "nor",
}


def _spelled_alike(w: str, f: Features, own: Features) -> bool:
    """Is ``w`` of text ``own`` in text ``f`` up to inflection, abbreviation, a typo or word
    splitting?"""
    # An abbreviation is short ("js", "pkg", "repo"); a longer word whose letters come in order
    # in another is a different word ("vegan" / "vegetarian"); a cut-off word ("config") is
    # ``_same_word``.
    if any(
        not _converse_roles(w, v)
        and (_same_word(w, v) or (len(w) <= 4 and abbreviates(w, v) and not compound_of(w, v)) or _typo(w, v))
        for v in f.words
    ):
        return True
    # An abbreviation may be a function word elsewhere ("Go" / "Golang"), but not a determiner,
    # a preposition, an auxiliary or a pronoun ("in" does not abbreviate "index", nor "do"
    # "dictionary"). Nor a word ``w``'s own side holds too: "set a secret config value" / "set a
    # config value" keeps "secret", which that side did not write as "set".
    if any(
        2 <= len(v) <= 4 and v[:1].isalpha() and v not in _NOT_ABBREVIATING and v not in own.tokens
        and abbreviates(v, w) and not compound_of(v, w)
        for v in f.tokens
    ):
        return True
    # A name spelled out on one side and by its initials on the other: "the United States" /
    # "the US", "Entity Framework Core" / "ef core".
    if spelled_out(w, f) or in_spelled_out_acronym(w, own, f):
        return True
    return w.replace("-", "").replace(".", "") in _joined(f)


def differences(
    q: Features, c: Features, words: WordSimilarity | None
) -> tuple[list[str], list[str], list[str], list[str]]:
    """The content words of each side that nothing on the other side paraphrases.

    A word is paraphrased by the other side when it appears there in some inflection, when one
    abbreviates the other ("js" / "javascript"), misspelled, split in two ("user name"), or when the embedding puts the two words at
    ``SYNONYM`` or above. What is left changes the question."""
    q_left = [w for w in dict.fromkeys(q.words) if not _spelled_alike(w, c, q) and not _half_of_joined(w, q, c)]
    c_left = [w for w in dict.fromkeys(c.words) if not _spelled_alike(w, q, c) and not _half_of_joined(w, c, q)]
    if not q_left and not c_left:
        return [], [], [], []
    sim = words or word_similarity
    c_all = list(dict.fromkeys(c.words))
    q_all = list(dict.fromkeys(q.words))

    def unexplained(left: list[str], other: list[str]) -> list[str]:
        if not left or not other:
            return left
        m = sim(left, other)
        return [
            w for w, row in zip(left, m, strict=True)
            if not any(s >= _bar(w, v) and not _prefix_swap(w, v) and not _converse_roles(w, v)
                       and not _last_letter_swap(w, v)
                       for s, v in zip(row, other, strict=True))
        ]

    # A word is explained only by a word its own side lacks: "divorced and remarried" /
    # "divorced" keeps "remarried", whatever the embedding says of it and "divorced".
    q_words, c_words = set(q.words), set(c.words)
    q_un = unexplained(q_left, [v for v in c_all if v not in q_words])
    c_un = unexplained(c_left, [v for v in q_all if v not in c_words])
    # A compound of a word on the other side ("database" / "data") is left, but it is a change of
    # one word, not a rewording: it does not make the rewording broad enough for the cosine.
    q_changed = [w for w in q_left if not _compounds(w, c)]
    c_changed = [w for w in c_left if not _compounds(w, q)]
    return _framing(q_un, q, c), _framing(c_un, c, q), q_changed, c_changed


def _compounds(w: str, f: Features) -> bool:
    """Is ``w`` a compound of a word of ``f``, or ``f``'s word a compound of ``w``?"""
    return any(compound_of(w, v) or compound_of(v, w) for v in f.words)


@lru_cache(maxsize=20_000)
def _request_kind(w: str) -> str:
    """The kind of request ``w`` frames (``REQUEST_KINDS``, any inflection or a misspelling), or ""."""
    return next((kind for verb, kind in REQUEST_KINDS.items() if _same_word(w, verb) or _typo(w, verb)), "")


def _framing(left: list[str], f: Features, other: Features) -> list[str]:
    """``left`` without the words that only frame the request: a request verb when the other
    text asks for the same kind of thing with another verb, or with none ("write a haiku" / "a
    haiku"); a noun naming the means ("the command to", ``FRAME_NOUNS``) when the other text
    asks how too, or is a bare phrase."""
    # "How do I create a virtual environment?" / "What is a virtual environment?": there the verb
    # is what the question asks how to do, and the other text asks what the thing is.
    asks_what = not _procedure(other) and any(t in WH_WORDS for t in other.tokens)
    left = [w for w in left if w not in FRAME_NOUNS or asks_what]
    kinds = {k for t in other.tokens if (k := _request_kind(t))}
    if not kinds and _procedure(f) and asks_what:
        return left
    # A verb joined to another by "and" ("create and activate a venv") is a second thing to do,
    # not the frame of the request, unless the other text has a verb of its kind too.
    joined = {t for t, n in zip(f.tokens, f.tokens[1:]) if n in ("and", "&")}
    # Nor is one after a preposition: "a file opened for writing" / "for reading" is a mode.
    joined |= {n for t, n in zip(f.tokens, f.tokens[1:]) if t in _GERUND_PREPOSITIONS}
    return [w for w in left if not (k := _request_kind(w)) or (k not in kinds and (kinds or w in joined))]


_GERUND_PREPOSITIONS = {"for", "of", "in", "on", "with", "by", "from", "about", "into", "at", "after", "before", "without"}


def _procedure(f: Features) -> bool:
    """Does ``f`` ask how to do something ("how do I", "what's the way to")?"""
    return any(t in PROCEDURE_WORDS for t in f.tokens)


SCALE_SYNONYM = 0.88
"""The word-level cosine two comparatives, or two superlatives, need to count as interchangeable.

Two ends of one scale sit as close as ordinary synonyms on this model ("smaller" / "larger" 0.86,
"older" / "younger" 0.86, "thinner" / "thicker" 0.82, "stronger" / "weaker" 0.82), while graded
forms that mean the same sit higher ("bigger" / "larger" 0.93, "faster" / "quicker" 0.89): a
comparison asks for one direction, so its words are held to the higher bar."""


def _graded(w: str) -> str:
    """The degree suffix of a comparative or superlative ("older" -> "er", "largest" -> "est")."""
    for suffix in ("est", "er"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            return suffix
    return ""


def _bar(x: str, y: str) -> float:
    """The word-level cosine at which ``x`` may stand in for ``y``."""
    gx = _graded(x)
    return SCALE_SYNONYM if gx and gx == _graded(y) else SYNONYM


def _prefix_swap(x: str, y: str) -> bool:
    """The same word under another prefix ("ascending" / "descending", "import" / "export",
    "upload" / "download"): prefixes that differ flip the meaning, whatever the embedding says."""
    common = 0
    for a, b in zip(reversed(x), reversed(y)):
        if a != b:
            break
        common += 1
    if x != y and common >= 4 and len(x) - common <= 4 and len(y) - common <= 4:
        return True
    # A number prefix may be longer ("multi"): "monofocal" / "multifocal".
    x_head, y_head = x[: len(x) - common], y[: len(y) - common]
    return common >= 4 and x_head != y_head and x_head in NUMBER_PREFIXES and y_head in NUMBER_PREFIXES


def _last_letter_swap(x: str, y: str) -> bool:
    """The same word with another last letter ("foldr" / "foldl", "ipv4" / "ipv6"): two names,
    whose word vectors share all but one piece, so they look like synonyms."""
    return len(x) == len(y) >= 4 and x[:-1] == y[:-1] and x[-1] != y[-1]


def opposed_prefixes(q_left: list[str], c_left: list[str]) -> bool:
    """Does each side hold one stem under the two prefixes of a direction ("indoors" /
    "outdoors", "uphill" / "downhill", "include" / "exclude", "online" / "offline")? Inside a
    broad rewording too: rephrasing the rest of the sentence does not make the two ends of one
    direction interchangeable. Only the closed class of opposed prefixes (``OPPOSED_PREFIXES``):
    any two prefixes would pair "samples" with "examples"."""
    for x in q_left:
        for y in c_left:
            for a, b in OPPOSED_PREFIXES:
                for u, v in ((x, y), (y, x)):
                    if u.startswith(a) and v.startswith(b) and len(u) - len(a) >= 3 and u[len(a):] == v[len(b):]:
                        return True
    return False


def _modified(f: Features, left: set[str]) -> dict[str, set[str]]:
    """The words of ``f`` that come right after a word of ``left``, with those words.

    Hyphenated words are split as ``_words`` reads them: inside one ("soft-boiled") the piece
    before modifies the next ("boiled" by "soft"); a compound before a word ("a multi-stage
    Dockerfile") modifies it with each of its pieces."""
    out: dict[str, set[str]] = {}
    inverted = _inverted_auxiliary(f.tokens)
    before, prev = "", []  # the last piece of the token before the previous one; its pieces
    for i, tok in enumerate(f.tokens):
        pieces = [p.strip("'’.") for p in tok.split("-")] if "-" in tok and not tok.startswith("-") else [tok]
        pieces = [p for p in pieces if p]
        for k, piece in enumerate(pieces):
            if not piece[:1].isalpha() or piece in FUNCTION:
                continue
            if k > 0:
                mods = {pieces[k - 1]} & left
            else:
                # After "is"/"are" too: "... question: is boiled linseed oil ok?".
                opens = _opens_phrase(before) or before in _BE or (inverted is not None and i - 2 == inverted)
                mods = set(prev) & left if opens else set()
                # Two modifiers joined by "and"/"or" modify the word after both: "a username and
                # password credential" / "a secret text credential".
                if before in _JOINERS and i >= 3 and f.tokens[i - 3] in left and set(prev) & left:
                    mods = (set(prev) | {f.tokens[i - 3]}) & left
            if mods:
                out.setdefault(piece, set()).update(mods)
        before, prev = (prev[-1] if prev else ""), pieces
    for head, mods in _described(f, left).items():
        out.setdefault(head, set()).update(mods)
    return out


_RELATIVE = {"that", "which", "who"}
_JOINERS = {"and", "or", "&"}
_BE = {"is", "are", "was", "were"}
_RELATIVE_BE = {"that's", "thats", "who's", "which's"}
_COMPLEMENT = {
    "to", "by", "than", "as", "from", "into", "onto", "at", "with", "for", "of", "in", "on",
    "about", "via", "a", "an", "the",
}
_DEGREE = {"too", "very", "so", "really", "quite", "extremely", "fairly", "rather", "still"}


def _described(f: Features, left: set[str]) -> dict[str, set[str]]:
    """Words of ``left`` that a relative clause says a noun is: "a steak that's thin", "a lemon
    tree that is fully grown", "a pizza that has been thawed" (noun -> {"thin"}, ...). Such a
    clause is an attribute put after its noun instead of before it."""
    out: dict[str, set[str]] = {}
    toks = list(f.tokens)
    for i, tok in enumerate(toks[1:], 1):
        if tok in _RELATIVE_BE:
            j = i + 1
        elif tok in _RELATIVE and i + 1 < len(toks) and toks[i + 1] in _BE | {"has", "have", "had"}:
            j = i + 2
        elif tok in _BE and toks[i - 1][:1].isalpha() and toks[i - 1] not in FUNCTION:
            # A noun and what it is said to be: "when interest rates are high" / "when rates
            # are low", "if my lawn is too wet" / "too dry". Only a word that ends its clause: a
            # verb or an adjective with a complement ("is set to True", "is distinct from",
            # "is better to buy") says what is done or compared, which a rewording rephrases.
            j = i + 1
            while j < len(toks) and toks[j] in _DEGREE:
                j += 1
            nxt = toks[j + 1] if j + 1 < len(toks) else ""
            # A participle ("if a file is detected") tells an event, not what the noun is like.
            if j >= len(toks) or toks[j] in FUNCTION or toks[j].endswith("ed") or (nxt and (nxt not in FUNCTION or nxt in _COMPLEMENT)):
                continue
        else:
            continue
        # The clause describes the whole noun phrase before it ("lemon tree"), each of its words.
        phrase = []
        k = i - 1
        while k >= 0 and len(phrase) < 3 and toks[k][:1].isalpha() and toks[k] not in FUNCTION:
            phrase.append(toks[k])
            k -= 1
        while j < len(toks) and (toks[j] in FUNCTION or toks[j] in _DEGREE) and j - i <= 3:  # "been", "too"
            j += 1
        said = toks[j : j + 2] if j < len(toks) and toks[j].endswith("ly") else toks[j : j + 1]
        mods = set(said) & left
        for word in phrase if mods else ():
            out.setdefault(word, set()).update(mods)
    return out


def _inverted_auxiliary(tokens: tuple[str, ...]) -> int | None:
    """The place of the auxiliary a question opens with, before its subject: "Does raw chicken
    ...", "How many days can cooked chicken ...", "Why is brown rice ...". What follows it is the
    subject's noun phrase, so a word there before a noun is a modifier, as after "the"."""
    if not tokens or not (tokens[0] in WH_WORDS or tokens[0] in INVERTING):
        return None
    return next((i for i, tok in enumerate(tokens) if tok in INVERTING), None)


def _opens_phrase(w: str) -> bool:
    """Can a modifier follow ``w`` inside a noun phrase: a determiner or preposition ("a young
    tree", "for brown rice"), a number, or another modifier ("the second largest")? After a
    pronoun, "that", "and" or "to", the word is a verb instead ("that provides demos", "to store
    and retrieve datasets"), and a verb swapped in a rewording is judged by the cosine."""
    return w in NOUN_PHRASE_OPENERS or w[:1].isdigit() or (w[:1].isalpha() and w not in FUNCTION)


def swapped_modifier(q: Features, c: Features, q_left: list[str], c_left: list[str]) -> bool:
    """Does each side put a different unexplained word right before the same word, or before
    words the other side names too?

    "a fresh ankle sprain" / "an old stiff ankle injury", "brown rice" / "white rice",
    "the biggest stock market crash" / "the second largest stock market crash": the word both
    sides hold is the thing asked about, the words before it are what is asked of it (an
    attribute, an ordinal, a qualifier), and one was put in place of the other. That is an edit
    of the question, not a rewording, however the rest of the sentence was rephrased, so the
    sentence cosine does not get to judge it (``broad_rewording``)."""
    # In a question or a request the words before the thing asked about select the answer. A
    # statement rewritten word by word (a description: "the entire dataset" / "the whole
    # dataset", "a specific version" / "a certain version") rewords them with everything else.
    if not q_left or not c_left or not (q.asks or c.asks):
        return False
    in_c = _modified(c, set(c_left))
    if not in_c:
        return False
    in_q = _modified(q, set(q_left))
    if any(any(_same_word(head, other) for other in in_c) for head in in_q):
        return True
    # The same through the words between a modifier and its phrase's head that both sides hold:
    # "a fixed-term job contract" / "a permanent employment contract" ("employment" is "job").
    # It refuses one QQP duplicate of 4,000, "the best romantic novel by an Indian author" /
    # "the good Indian romantic novels", where the two modifiers are degrees of one praise.
    q_on, c_on = _to_head(q, in_q, set(q_left)), _to_head(c, in_c, set(c_left))
    if any(any(_same_word(head, other) for other in c_on) for head in q_on):
        return True
    # Each side may also put its attribute on another of the things both name: "the best beginner
    # guitar for kids" / "a guitar for advanced children" (the guitar and the children are on
    # both sides, "children" as a synonym of "kids"). A head that is not among the unexplained
    # words is one the other side names too.
    # Only on a phrase's head, its last word: in "the good Indian romantic novels" "good" sits on
    # "Indian" as one of a stack of modifiers, which a rewording reorders ("the best romantic
    # novel by an Indian author").
    q_heads, c_heads = _heads(q), _heads(c)
    return any(h not in q_left and h in q_heads for h in in_q) and any(
        h not in c_left and h in c_heads for h in in_c
    )


def _to_head(f: Features, modified: dict[str, set[str]], left: set[str]) -> set[str]:
    """The heads (``_heads``) that a modified word of ``modified`` leads to through explained
    content words: "contract" in "permanent employment contract" when "employment" is explained."""
    toks, heads = f.tokens, _heads(f)
    out: set[str] = set()
    for i, tok in enumerate(toks):
        if tok not in modified:
            continue
        j = i + 1
        while j < len(toks) and toks[j][:1].isalpha() and toks[j] not in FUNCTION and toks[j] not in left:
            if toks[j] in heads:
                out.add(toks[j])
            j += 1
    return out


def _heads(f: Features) -> set[str]:
    """The words of ``f`` that end a run of content words: a noun phrase's head ("guitar" in
    "the best beginner guitar for kids")."""
    toks = list(f.tokens)
    out: set[str] = set()
    for i, tok in enumerate(toks):
        if not tok[:1].isalpha() or tok in FUNCTION:
            continue
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if not nxt[:1].isalpha() or nxt in FUNCTION:
            out.add(tok.split("-")[-1].strip("'’."))
    return out


def swapped_party(q: Features, c: Features, words: WordSimilarity | None, bar: float) -> bool:
    """Is the party of a request (``verifier_order.parties``: "to my landlord", "for the
    seller") another one on the other side, though the word vectors may place the two as close
    as synonyms?

    Who an email goes to, or whom a thing is for, is named by role nouns, and converse or
    sibling roles sit as high as synonyms on the word vectors ("landlord" / "tenant" 0.81,
    "husband" / "wife" 0.86), while the sentence cosine of a whole request hardly moves with
    them. So in a party's place a word passes only as another form of the same word or at
    ``bar``, the near-identity that earlier turns are held to ("kids" / "children" 0.91)."""
    # Both must ask: a statement that opens with "when" is read as asking, and a statement
    # reworded carries its prepositions' objects along with everything else.
    if not (q.asks and c.asks):
        return False
    qp, cp = parties(q), parties(c)
    q_only = [(r, w) for r, w in qp if not any(r == r2 and _same_word(w, v) for r2, v in cp)]
    c_only = [(r, w) for r, w in cp if not any(r == r2 and _same_word(w, v) for r2, v in qp)]
    pairs = [(w, v) for r, w in q_only for r2, v in c_only if r == r2]
    if not pairs:
        return False
    sim = words or word_similarity
    q_words = list(dict.fromkeys(w for w, _ in pairs))
    c_words = list(dict.fromkeys(v for _, v in pairs))
    m = sim(q_words, c_words)
    # Each party of one side must have a near-identical counterpart on the other.
    return any(max(m[i]) < bar for i in range(len(q_words)))


EDIT_OPENING = 3
"""Content words a text must share, in order, before its changed words for ``local_edit``."""

EDIT_CONTEXT = 6
"""Content words a text must share around its changed words, one at least before, for ``local_edit``."""


def local_edit(q: Features, c: Features, q_left: list[str], c_left: list[str]) -> bool:
    """Do the two texts differ only in one stretch, after an opening of at least
    ``EDIT_OPENING`` shared content words, with the same words after it?

    "How long does matcha stay fresh if the tin is still sealed?" / "... once the tin has been
    opened?", "a NOT NULL column to a table that is still empty" / "that already has rows in
    it": the question is asked word for word, and the words changed in one place are a detail of
    what it is asked about (a condition, a relative clause, a sentence of background). Several
    words changed on each side make it look like a rewording (``broad_rewording``), and the
    sentence cosine barely moves with a detail, so it does not get to judge. A rewording changes
    the frame of the question, which opens it ("serves as a repository for" / "is a platform to
    host"), or changes several places."""
    if not q_left or not c_left or not (q.asks or c.asks):
        return False
    qt, ct = list(q.tokens), list(c.tokens)
    q_set, c_set = set(q_left), set(c_left)

    def holds(tokens: list[str], left: set[str]) -> bool:
        return any(p in left for tok in tokens for p in tok.split("-"))

    changed = [
        (i1, i2, j1, j2)
        for op, i1, i2, j1, j2 in SequenceMatcher(None, qt, ct, autojunk=False).get_opcodes()
        if op != "equal" and (holds(qt[i1:i2], q_set) or holds(ct[j1:j2], c_set))
    ]
    if not changed:
        return False
    qa, qb = changed[0][0], changed[-1][1]
    ca, cb = changed[0][2], changed[-1][3]

    def content(tokens: list[str]) -> list[str]:
        return [t for t in tokens if t[:1].isalnum() and t not in FUNCTION]

    if content(qt[:qa]) != content(ct[:ca]) or content(qt[qb:]) != content(ct[cb:]):
        return False
    opening, closing = len(content(qt[:qa])), len(content(qt[qb:]))
    # Or after a shorter opening, with enough shared words after the stretch to hold it in
    # place: "In Texas, can a childless adult with income around 150% of the poverty line get
    # Medicaid?" / "... a pregnant woman with income ...".
    framed = opening >= EDIT_OPENING or (opening >= 1 and opening + closing >= EDIT_CONTEXT)
    return framed and max(qb - qa, cb - ca) <= max(len(qt), len(ct)) / 2


BROAD_COSINE = 0.85
"""Embedding cosine a broad rewording (at least two unexplained words on each side) needs."""

BROAD_QUESTION_COSINE = 0.88
"""``BROAD_COSINE`` for two questions or requests."""

WIDE_COSINE = 0.93
"""Embedding cosine a one-for-several rewording ("write" / "is the author of") needs."""


def broad_rewording(q_left: list[str], c_left: list[str], cosine: float | None, question: bool = False) -> bool:
    """Is this difference a rewording the sentence embedding may judge?

    A minimal pair, one word swapped for one word ("hottest" / "coldest", "team" / "manager") or
    words added on one side only ("... and explain how to map the port", "for my sister",
    "second"), is exactly what an embedding scores as near-identical, so it is judged word by
    word and refused above. When both sides reword several words, the question has been
    rephrased rather than edited, and that is what the embedding is good at: then the cosine
    decides, with a higher bar when one side has a single changed word."""
    if cosine is None or not q_left or not c_left:
        return False
    # A particle belongs to its verb ("leave out" is one changed word, not two).
    nq = max(1, sum(w not in PARTICLES for w in q_left))
    nc = max(1, sum(w not in PARTICLES for w in c_left))
    if min(nq, nc) >= 2:
        return cosine >= (BROAD_QUESTION_COSINE if question else BROAD_COSINE)
    if max(nq, nc) >= 2:
        return cosine >= WIDE_COSINE
    return False


"""Order and direction across two texts: the same terms on either side of a direction cue
("USD to EUR" / "EUR to USD"), or trading places around the same link ("cups in a tablespoon" /
"tablespoons in a cup", "dog chases cat" / "cat chases dog")."""

from __future__ import annotations

from .verifier_features import Features, stem
from .verifier_lexicon import FROM_TO_RE, FUNCTION, GAZETTEER, KEY_CUES, STRONG_CUES, SYMMETRIC_LINKS, TRANSFER_VERBS, UNIT_OF


def ordered_pairs(f: Features, shared: set[str], key: set[str]) -> set[tuple[str, str]]:
    """(left, right) pairs of shared terms joined by a direction cue ("X to Y", "X before Y").

    "than"/"before"/"after" order any shared words; "to"/"into"/"from" only key terms (names,
    units, currencies, languages), since "to" joins too many ordinary phrases.
    """
    toks = [stem(t) for t in f.tokens]
    pairs: set[tuple[str, str]] = {
        (stem(m.group(1)), stem(m.group(2))) for m in FROM_TO_RE.finditer(f.low)
    }
    # With a verb of moving or converting, "X to Y" is a direction whatever X and Y are.
    transfer = any(t in TRANSFER_VERBS for t in toks)
    for i, t in enumerate(toks):
        if t in STRONG_CUES or (transfer and t in ("to", "into")):
            allowed = shared
        elif t in KEY_CUES:
            allowed = shared & key
        else:
            continue
        # Every shared word within three tokens on each side, not only the nearest: a term of
        # several words ("a byte slice") ends on one word and starts on another, so "string to
        # a byte slice" and "byte slice into a string" have no nearest words in common.
        lefts = [toks[j] for j in range(i - 1, max(-1, i - 4), -1) if toks[j] in allowed]
        rights = [toks[j] for j in range(i + 1, min(len(toks), i + 4)) if toks[j] in allowed]
        pairs.update((left, right) for left in lefts for right in rights if left != right)
    return pairs


_ARTICLES = {"a", "an", "one", "1", "per", "each"}
_PER_LINKS = {"in", "make", "makes", "equal", "equals", "=", "fit", "to"}


def _head(tokens: list[str]) -> str:
    """The key of a quantity's noun: its unit, else the stem of its last word ("square feet" ->
    foot, "tablespoons" -> tbsp)."""
    words = [t for t in tokens if t[:1].isalpha() and t not in FUNCTION]
    return (UNIT_OF.get(words[-1]) or stem(words[-1])) if words else ""


def _noun_after(toks: list[str], i: int) -> list[str]:
    """The words of the noun phrase starting at ``toks[i]`` (at most 3, up to a function word)."""
    out: list[str] = []
    for t in toks[i : i + 3]:
        if not t[:1].isalpha() or t in _PER_LINKS or (t in FUNCTION and t not in UNIT_OF):
            break
        out.append(t)
    return out


def per_relations(f: Features) -> set[tuple[str, str]]:
    """("how many" A, per B) pairs of a unit question: "how many cups are in a liter", "how many
    cups make a liter", "one liter is how many cups", "cups in a liter" all give (cup, l)."""
    toks = list(f.tokens)
    out: set[tuple[str, str]] = set()
    for i, t in enumerate(toks):
        if t not in ("many", "much") or i == 0 or toks[i - 1] not in ("how", "many"):
            continue
        # "how many A [are] [there] LINK a B"
        for j in range(i + 1, min(len(toks), i + 6)):
            if toks[j] in _PER_LINKS and j + 1 < len(toks) and toks[j + 1] in _ARTICLES:
                a, b = _head(toks[i + 1 : j]), _head(_noun_after(toks, j + 2))
                if a and b and a != b:
                    out.add((a, b))
                break
        # "a B [is|equals|=|makes] how many A"
        for j in range(max(0, i - 6), i - 1):
            if toks[j] in _ARTICLES:
                b = _head(_noun_after(toks, j + 1))
                a = _head(_noun_after(toks, i + 1))
                if a and b and a != b:
                    out.add((a, b))
                break
    # The terse form, a whole text: "cups in a liter".
    if len(toks) <= 6 and "in" in toks:
        j = toks.index("in")
        if j + 1 < len(toks) and toks[j + 1] in _ARTICLES and "many" not in toks:
            a, b = _head(toks[:j]), _head(_noun_after(toks, j + 2))
            if a and b and a != b:
                out.add((a, b))
    return out


def reversed_per(q: Features, c: Features) -> bool:
    """Is one text's "how many A per B" the other's "how many B per A"?"""
    cp = per_relations(c)
    return any((b, a) in cp for a, b in per_relations(q))



def reversed_relation(q: Features, c: Features) -> bool:
    """Do two content words that both sides hold once trade places around the same link?"""
    def positions(f: Features) -> dict[str, int]:
        seen: dict[str, int] = {}
        dup: set[str] = set()
        for i, t in enumerate(f.tokens):
            if t in FUNCTION or not t[:1].isalpha():
                continue
            key = UNIT_OF.get(t) or stem(t)
            if len(key) > 3 and key.endswith("s") and not key.endswith("ss"):
                key = key[:-1]  # "cups" / "cup": too short for stem
            if key in seen:
                dup.add(key)
            seen[key] = i
        return {k: v for k, v in seen.items() if k not in dup}

    qp, cp = positions(q), positions(c)
    shared = [k for k in qp if k in cp]
    for i, x in enumerate(shared):
        for y in shared[i + 1 :]:
            if (qp[x] < qp[y]) == (cp[x] < cp[y]):
                continue
            qa, qb = sorted((qp[x], qp[y]))
            ca, cb = sorted((cp[x], cp[y]))
            if qb - qa > 5 or cb - ca > 5:
                continue
            # The link is the function words between the two ("in a", "to", "to a"): "yen to
            # British pounds" / "pounds to Japanese yen" swap around "to" whatever else is there.
            link_q = [t for t in q.tokens[qa + 1 : qb] if t in FUNCTION]
            link_c = [t for t in c.tokens[ca + 1 : cb] if t in FUNCTION]
            if link_q == link_c and link_q and not set(link_q) <= SYMMETRIC_LINKS:
                return True
    return False


def is_transposition(a: list[str], b: list[str]) -> bool:
    """True when ``b`` is ``a`` with exactly two non-adjacent elements exchanged."""
    if len(a) != len(b) or len(a) < 2:
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    # Adjacent words trade places in ordinary rewording ("dataset library" / "library dataset");
    # a swap across a verb ("dog bites man") or a direction cue is what changes meaning.
    return (
        len(diff) == 2
        and diff[1] - diff[0] >= 2
        and a[diff[0]] == b[diff[1]]
        and a[diff[1]] == b[diff[0]]
    )


def coordinated(f: Features, x: str, y: str) -> bool:
    """Are x and y joined by "and"/"or"/"," (a symmetric list) in text f?"""
    toks = [stem(t) for t in f.tokens]
    for i, t in enumerate(toks):
        if t in (x, y):
            window = toks[i + 1 : i + 4]
            other = y if t == x else x
            if other in window and any(w in ("and", "or", "&", "vs", "versus") for w in window[: window.index(other)]):
                return True
    return False


_SOURCE = {"from"}
_GOAL = {"to", "into", "onto", "for", "toward", "towards"}
_DETERMINERS = {"a", "an", "the", "my", "your", "our", "their", "his", "her", "its", "this", "that", "some"}


def _roles(f: Features) -> dict[str, str]:
    """Content words reached by a preposition of source ("from my manager") or of goal ("to my
    manager", "for my sister"), determiners skipped: word stem -> "source" or "goal"."""
    out: dict[str, str] = {}
    toks = list(f.tokens)
    for i, t in enumerate(toks):
        role = "source" if t in _SOURCE else "goal" if t in _GOAL else ""
        if not role:
            continue
        j = i + 1
        while j < len(toks) and toks[j] in _DETERMINERS:
            j += 1
        if j < len(toks) and toks[j][:1].isalpha() and toks[j] not in FUNCTION:
            # A word reached both ways in one text ("from the main version ... to the main
            # version") has no one role there.
            w = stem(toks[j])
            out[w] = role if out.get(w, role) == role else "both"
    return {w: r for w, r in out.items() if r != "both"}


def opposite_roles(q: Features, c: Features) -> bool:
    """Is a word both sides hold the source on one side and the goal on the other?

    "an email to my manager" / "an email from my manager", "flights to Lisbon" / "flights from
    Lisbon", "copy files from the server" / "copy files to the server": the prepositions are
    function words, so the difference rule does not see them, but they say which way the
    request goes. Questions and requests only: a statement reworded says "access to the
    storage" for "accessed from the storage"."""
    if not (q.asks or c.asks):
        return False
    cr = _roles(c)
    return any(cr.get(w, role) != role for w, role in _roles(q).items())


def _number_bindings(f: Features, terms: set[str]) -> dict[str, str]:
    """Each number of ``f`` -> the first of ``terms`` (units, names) within the next 4 tokens:
    what the number is an amount or a time of ("20 kg", "9 am in London")."""
    out: dict[str, str] = {}
    toks = list(f.tokens)
    for i, t in enumerate(toks):
        if not t[:1].isdigit():
            continue
        for u in toks[i + 1 : i + 5]:
            key = UNIT_OF.get(u) or stem(u)
            if key in terms:
                out.setdefault(t, key)
                break
    return out


def rebound_number(q: Features, c: Features) -> bool:
    """Does a number both sides state belong to a different unit or name on each side?

    "When it's 9 am in London, what time is it in Tokyo?" / "What time is it in London when
    it's 9 am in Tokyo?", "my suitcase is 20 kg: how many pounds?" / "a 20 lb suitcase: how many
    kilograms?": the same numbers, units and names, but the amount is stated of the other one."""
    def terms(f: Features) -> set[str]:
        return {stem(e) for e in f.entities} | set(f.units) | {stem(t) for t in f.tokens if t in GAZETTEER}

    shared = terms(q) & terms(c)
    if not shared:
        return False
    cb = _number_bindings(c, shared)
    return any(cb.get(n, term) != term for n, term in _number_bindings(q, shared).items())

"""Order and direction across two texts: the same terms on either side of a direction cue
("USD to EUR" / "EUR to USD"), or trading places around the same link ("cups in a tablespoon" /
"tablespoons in a cup", "dog chases cat" / "cat chases dog")."""

from __future__ import annotations

from collections.abc import Iterator

from .verifier_features import Features, stem
from .verifier_lexicon import (
    DETERMINERS,
    FROM_TO_RE,
    FUNCTION,
    GAZETTEER,
    INVERTING,
    KEY_CUES,
    STOP,
    STRONG_CUES,
    SYMMETRIC_LINKS,
    TRANSFER_VERBS,
    UNIT_OF,
)


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
# Quantifiers that open the noun phrase of a stated amount ("in a cup", "for one euro", "per 100 km").
_OPENERS = _ARTICLES | {"the", "every", "single"}
# What joins the asked quantity to the given one: prepositions of measure, and the closed class
# of verbs that state an amount ("make", "equal", "fit", "hold", "weigh", "contain", "get",
# "buy", "yield", "give", "take", "need", "use", "go").
_PER_LINKS = {"in", "make", "makes", "equal", "equals", "=", "fit", "to", "per", "for", "into", "inside"}
_AMOUNT_VERBS = {
    "make", "makes", "equal", "equals", "fit", "fits", "hold", "holds", "weigh", "weighs",
    "contain", "contains", "get", "gets", "buy", "buys", "yield", "yields", "give", "gives",
    "go", "goes", "there", "up", "worth", "be", "is", "are", "do", "does", "will", "would",
    "can", "could", "i", "you", "we",
}
_IS_LINKS = {"is", "are", "equals", "equal", "=", "makes", "make", "gives", "buys", "s"}


def _key(word: str) -> str:
    """A unit's key, else the word's singular ("leagues" / "league", "kibibytes" / "kibibyte",
    "inches" / "inch"): ``stem`` cuts "league" and "leagues" to different stems."""
    unit = UNIT_OF.get(word)
    if unit:
        return unit
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return UNIT_OF.get(word) or word


def _noun(word: str) -> bool:
    return word[:1].isalpha() and (word in UNIT_OF or word not in FUNCTION) and word not in _PER_LINKS


def _head_at(toks: list[str], i: int) -> tuple[str, int]:
    """(key of the noun phrase starting at ``toks[i]``, index after it). The head is the last
    word before "of" ("degrees of latitude" -> degree, "a cup of flour" -> cup) or before the
    first word that is not a noun ("cubic yards in" -> yard); at most 4 words."""
    words: list[str] = []
    j = i
    while j < len(toks) and len(words) < 4 and _noun(toks[j]) and toks[j] not in _AMOUNT_VERBS:
        words.append(toks[j])
        j += 1
    end = j
    if j < len(toks) and toks[j] == "of":  # skip the "of" complement
        j += 1
        while j < len(toks) and j - end < 4 and _noun(toks[j]) and toks[j] not in _AMOUNT_VERBS:
            j += 1
    return (_key(words[-1]) if words else "", j)


def _head_before(toks: list[str], i: int) -> str:
    """Key of the noun phrase that ends at ``toks[i]`` (read backwards, an "of" complement
    skipped: "a cup of flour" -> cup)."""
    j = i
    words: list[str] = []
    while j >= 0 and (_noun(toks[j]) or toks[j] == "of") and toks[j] not in _AMOUNT_VERBS and len(words) < 6:
        words.append(toks[j])
        j -= 1
    words.reverse()
    if "of" in words:
        words = words[: words.index("of")]
    return _key(words[-1]) if words else ""


def per_relations(f: Features) -> set[tuple[str, str]]:
    """(asked A, given B) pairs of a unit question: "how many cups are in a liter", "how many
    cups make a liter", "one liter is how many cups", "how many cups per liter", "how many
    grams does a cup of flour weigh", "cups in a liter" all give (cup, l)."""
    toks = list(f.tokens)
    out: set[tuple[str, str]] = set()

    def add(a: str, b: str) -> None:
        if a and b and a != b:
            out.add((a, b))

    for i, t in enumerate(toks):
        if t not in ("many", "much") or i == 0 or toks[i - 1] not in ("how", "many"):
            continue
        a, j = _head_at(toks, i + 1)
        if a:
            # "how many A [are|do I get|does] LINK|a B": what follows A up to the given amount
            # must be links and amount verbs only, else A is not measured against B.
            for k in range(j, min(len(toks), j + 6)):
                u = toks[k]
                if u in _OPENERS or u[:1].isdigit():
                    n = k + 1
                    while n < len(toks) and toks[n][:1].isdigit():
                        n += 1
                    add(a, _head_at(toks, n)[0])
                    break
                if _noun(u) and u not in _AMOUNT_VERBS:
                    if toks[k - 1] in _PER_LINKS:  # "per bar", "in liters"
                        add(a, _head_at(toks, k)[0])
                    break
                if u not in _PER_LINKS and u not in _AMOUNT_VERBS and u not in FUNCTION:
                    break
        # "[a] B is|equals|makes how many A"
        if i >= 3 and toks[i - 1] == "how" and toks[i - 2] in _IS_LINKS:
            add(a, _head_before(toks, i - 3))
    # The terse form, a whole text: "cups in a liter", "cups per liter" (but "3 acres in
    # hectares" asks for hectares: without an amount after "in", the unit after it is the one asked).
    if len(toks) <= 7 and "many" not in toks and "much" not in toks:
        for link in ("in", "per"):
            if link in toks[1:]:
                j = toks.index(link, 1)
                n = j + 1
                if link == "in" and not (n < len(toks) and (toks[n] in _OPENERS or toks[n][:1].isdigit())):
                    break
                while n < len(toks) and (toks[n] in _OPENERS or toks[n][:1].isdigit()):
                    n += 1
                add(_head_before(toks, j - 1), _head_at(toks, n)[0])
                break
    return out


CONVERSION_FRAME = frozenset({
    "many", "much", "per", "there", "up", "worth", "make", "makes", "equal", "equals", "fit", "fits",
    "hold", "holds", "weigh", "weighs", "contain", "contains",
})
"""Words that only frame a unit question ("how many", "per", "make up", "weigh", "is worth"):
between two texts that ask the same (asked, given) pair they are not content (``same_per``).
Not "get", "give", "buy": which side of an exchange one is on changes the rate."""


def same_per(q: Features, c: Features) -> bool:
    """Do both texts ask the same unit question ("how many grams of flour in a cup" / "a cup of
    flour is how many grams" / "grams of flour per cup")?"""
    qr = per_relations(q)
    return bool(qr) and qr == per_relations(c)


def per_heads(f: Features) -> set[str]:
    """The keys of the units a unit question relates ("cup", "g"); compare with ``unit_key``."""
    return {k for pair in per_relations(f) for k in pair}


def unit_key(word: str) -> str:
    """A word's key as ``per_relations`` names it (its unit, else its singular)."""
    return _key(word)


def reversed_per(q: Features, c: Features) -> bool:
    """Is one text's "how many A per B" the other's "how many B per A"?"""
    cp = per_relations(c)
    return any((b, a) in cp for a, b in per_relations(q))



# The auxiliaries a question opens with, less the forms of "be" (a link: "X is Y"), and the verbs
# of need: the modal of a relation, not its link.
_MODALS = (INVERTING - {"is", "are", "was", "were"}) | {"need", "needs", "ought"}
_MODAL_TO = {"have", "has", "had", "need", "needs", "ought"}


def _link(between: tuple[str, ...]) -> list[str]:
    """The function words between two content words, without the rest of either one's noun
    phrase (the modifiers and determiners that open the second, the words that end the first)
    and without modals: "need to tell the" -> tell; "have to tell the care [home]" -> tell;
    "[care] home must tell [families]" -> tell."""
    span = list(between)
    while span and span[-1] not in FUNCTION and span[-1][:1].isalpha():
        span.pop()
    while span and span[-1] in DETERMINERS:
        span.pop()
    while span and span[0] not in FUNCTION and span[0][:1].isalpha():
        span.pop(0)
    # The modal of the relation is not its link: "a care home must tell families" / "the family
    # has to tell the care home" relate the two by "tell" either way.
    out: list[str] = []
    for prev, t in zip(["", *span], span):
        if t in FUNCTION and t not in _MODALS and not (t == "to" and prev in _MODAL_TO):
            out.append(t)
    return out


def _near(between: tuple[str, ...]) -> bool:
    """Are two words close enough to be related by the words between them?"""
    content = sum(t not in FUNCTION and t[:1].isalpha() for t in between)
    return len(between) <= 4 or (len(between) <= 6 and content <= 1)


def reversed_relation(q: Features, c: Features) -> bool:
    """Do two content words that both sides hold once trade places around the same link?"""
    def positions(f: Features) -> dict[str, int]:
        seen: dict[str, int] = {}
        dup: set[str] = set()
        for i, t in enumerate(f.tokens):
            if t in FUNCTION or not t[:1].isalpha():
                continue
            # The singular first: ``stem`` cuts "family" and "families" apart ("fami", "famil").
            key = UNIT_OF.get(t) or stem(_key(t))
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
            # Near each other: at most five words apart, or seven when at most one content word
            # stands between ("the family have to tell the care home" / "a care home have to
            # tell the family": the rest of a two-word name; "does a motorboat have to give way
            # to a sailboat": a modal).
            if not (_near(q.tokens[qa + 1 : qb]) and _near(c.tokens[ca + 1 : cb])):
                continue
            # The link is the function words between the two ("in a", "to", "to a"): "yen to
            # British pounds" / "pounds to Japanese yen" swap around "to" whatever else is there.
            # The determiner of the second word belongs to it, not to the link: "what does a
            # teacher need to tell parents" / "what do parents need to tell the teacher" share
            # the link "need to tell".
            link_q = _link(q.tokens[qa + 1 : qb])
            link_c = _link(c.tokens[ca + 1 : cb])
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


def related_symmetrically(f: Features, x: str, y: str) -> bool:
    """Is a symmetric link ("with", "and", "vs") between x and y in text f, within five words
    ("Bangladesh's relationship with India")? Then the two trading places is no swap of roles."""
    toks = [stem(t) for t in f.tokens]
    if x not in toks or y not in toks:
        return False
    i, j = sorted((toks.index(x), toks.index(y)))
    return j - i <= 5 and any(t in SYMMETRIC_LINKS for t in toks[i + 1 : j])


_SOURCE = {"from"}
_GOAL = {"to", "into", "onto", "for", "toward", "towards"}


def _directed(toks: list[str]) -> Iterator[tuple[str, int, int]]:
    """(role, i, j) for each preposition of source or goal at ``toks[i]``, ``j`` the index of the
    first token after the determiners that follow it."""
    for i, t in enumerate(toks):
        role = "source" if t in _SOURCE else "goal" if t in _GOAL else ""
        if not role:
            continue
        j = i + 1
        while j < len(toks) and toks[j] in DETERMINERS:
            j += 1
        yield role, i, j


def _roles(f: Features) -> dict[str, str]:
    """Content words reached by a preposition of source ("from my manager") or of goal ("to my
    manager", "for my sister"), determiners skipped: word stem -> "source" or "goal"."""
    out: dict[str, str] = {}
    toks = list(f.tokens)
    for role, _, j in _directed(toks):
        if j < len(toks) and toks[j][:1].isalpha() and toks[j] not in FUNCTION:
            # A word reached both ways in one text ("from the main version ... to the main
            # version") has no one role there.
            w = stem(toks[j])
            out[w] = role if out.get(w, role) == role else "both"
    return {w: r for w, r in out.items() if r != "both"}


def parties(f: Features) -> set[tuple[str, str]]:
    """(role, word) for each noun phrase a preposition of source or goal opens with a determiner
    or possessive ("to my landlord" -> ("goal", "landlord"), "from the seller", "for our
    tenant"): the party a request is addressed to, made for or comes from. Without a determiner
    the word after "to" is most often a verb ("ways to soundproof"), not a party."""
    out: set[tuple[str, str]] = set()
    toks = list(f.tokens)
    for role, i, j in _directed(toks):
        if j == i + 1:
            continue
        # The party is the phrase's head, its last noun ("for a low-budget film" -> film, "to my
        # tenant's flat" -> tenant); a pronoun ("from the ones used before") names no party.
        k = j
        while k < len(toks) and k - j < 4 and toks[k][:1].isalpha() and toks[k] not in FUNCTION | STRONG_CUES:
            k += 1
        if k > j and toks[k - 1] not in STOP:
            out.add((role, toks[k - 1]))
    return out


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


# The speaker or the listener as a subject, and the forms that name them elsewhere in a text.
_OBJECTS = {"i": {"me", "myself"}, "we": {"us", "ourselves"}}
_PERSONS = {
    "i": {"i", "me", "my", "mine", "myself"},
    "we": {"we", "us", "our", "ours", "ourselves"},
    "you": {"you", "your", "yours", "yourself"},
}


_CLAUSE_OPENERS = {"if", "when", "whether", "once"}


def _speaker_clauses(f: Features) -> list[tuple[str, str, int]]:
    """(the clause's opening word, the person, the index of the verb) for each clause of ``f``
    whose subject is the speaker or the listener: a yes/no question ("Can I cancel ..." ->
    ("can", "i", 2)) or a condition ("... if I add my daughter ..." -> ("if", "i", k))."""
    toks = f.tokens
    out = []
    if len(toks) > 2 and toks[0] in INVERTING and toks[1] in _PERSONS:
        out.append(("?", toks[1], 2))
    # A statement opening with the person ("I sold my car to my brother."), as an earlier turn does.
    # ("You can find ..." is anyone.)
    if len(toks) > 2 and toks[0] in ("i", "we"):
        out.append(("^", toks[0], 1))
    out += [
        (t, toks[i + 1], i + 2)
        for i, t in enumerate(toks[:-2])
        if t in _CLAUSE_OPENERS and toks[i + 1] in _PERSONS
    ]
    return out


def _same_verb(a: str, b: str) -> bool:
    """One verb in two forms ("add" / "adds", "cancel" / "cancelled")."""
    return stem(a) == stem(b) or any(b == a + end or a == b + end for end in ("s", "es", "d", "ed"))


def swapped_subject(q: Features, c: Features) -> bool:
    """Does one side ask whether the speaker does a thing to a party, and the other whether that
    party does it to the speaker? "Can I cancel my hotel reservation without telling the hotel?"
    / "Can a hotel cancel my reservation without telling me?", "If I add my daughter as an
    authorized user on my card ..." / "If my daughter adds me as an authorized user on her card
    ...", "I sold my car to my brother." / "My brother sold his car to me.": the verb is the
    same, who does it is not, which the word-by-word rules cannot see (the
    person is a function word, the party is named on both sides)."""
    for f, g in ((q, c), (c, q)):
        for opener, person, v in _speaker_clauses(f):
            verb = f.tokens[v]
            if opener == "?":
                # Both asking with the speaker as subject is the same question, not a trade.
                if any(o == "?" for o, _, _ in _speaker_clauses(g)) or not g.tokens or g.tokens[0] not in INVERTING:
                    continue
                starts = [0]
            elif opener == "^":
                # The other opens with someone else doing it: "My brother sold his car to me."
                if any(o == "^" for o, _, _ in _speaker_clauses(g)):
                    continue
                starts = [-1]
            else:
                starts = [j for j, t in enumerate(g.tokens) if t == opener and g.tokens[j + 1 : j + 2] != (person,)]
            for j in starts:
                at = next((k for k in range(j + 2, min(j + 7, len(g.tokens))) if _same_verb(verb, g.tokens[k])), None)
                if at is None:
                    continue
                subject = {stem(_key(t)) for t in g.tokens[j + 1 : at] if t[:1].isalpha() and t not in FUNCTION}
                # The other's subject is acted on here, and the person is acted on there; a
                # generic "you" ("can hotels cancel a reservation and not tell you") stands for
                # anyone.
                acted_on = _PERSONS[person] | _PERSONS["you"]
                if opener == "^":
                    # Acted on, not owning: "I lost my card yesterday" / "Yesterday I lost my
                    # card" opens with another word, but nothing is done to the speaker.
                    acted_on = _OBJECTS[person]
                if subject & {stem(_key(t)) for t in f.tokens[v + 1 :]} and acted_on & set(g.tokens[at + 1 :]):
                    return True
    return False


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


# A pronoun's subject and object forms are one person: "my brother gave me" / "I gave my brother".
_CASE = {"me": "i", "him": "he", "her": "she", "us": "we", "them": "they"}
_LINK_ONLY = SYMMETRIC_LINKS | {"a", "an", "the", "both", "between", "either", "neither", ","}


def exchanged(q: Features, c: Features) -> bool:
    """Are the two texts the same words, with two stretches traded across the words between
    them? "if another company acquires my company" / "if my company acquires another company",
    "my brother gave me 1 bitcoin" / "I gave my brother 1 bitcoin", "column A has the sale
    amounts and column B has the dates" / "column A has the dates and column B has the sale
    amounts": who does what to whom, or what belongs where, is turned around. Only a trade
    across a symmetric link ("X and Y", "X's relationship with Y") keeps the meaning; a stretch
    merely moved ("python sort a list" / "sort a list python") is not a trade."""
    qt = [_CASE.get(t, t) for t in q.tokens]
    ct = [_CASE.get(t, t) for t in c.tokens]
    if qt == ct or sorted(qt) != sorted(ct):
        return False
    start = next(i for i, (a, b) in enumerate(zip(qt, ct)) if a != b)
    end = next(i for i, (a, b) in enumerate(zip(reversed(qt), reversed(ct))) if a != b)
    mq, mc = qt[start : len(qt) - end], ct[start : len(ct) - end]
    n = len(mq)
    # mc must end with mq's first stretch (``left``) and open with its last (``right``); only
    # the lengths where the boundary tokens agree are tried, so a long text costs little.
    lefts = [a for a in range(1, n - 1) if mc[n - a] == mq[0] and mc[n - a :] == mq[:a]]
    rights = [b for b in range(1, n - 1) if mc[0] == mq[n - b] and mc[:b] == mq[n - b :]]
    for a in lefts:
        for b in rights:
            if a + b >= n or mc[b : n - a] != mq[a : n - b]:
                continue
            middle = mq[a : n - b]
            # A symmetric link near both ("A and B", "A's relationship with B", as in
            # ``related_symmetrically``) relates them the same way in either order.
            if not (set(middle) <= _LINK_ONLY or (len(middle) <= 4 and SYMMETRIC_LINKS.intersection(middle))):
                return True
    return False

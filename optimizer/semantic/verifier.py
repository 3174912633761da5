"""Rule-based verifier: may a cached answer to ``candidate`` be served for ``query``?

Embeddings score "same topic", not "same answer": a swapped direction scores 0.995, a negation
0.94 to 0.96, a different number 0.86 to 0.91. So a semantic hit must also pass these rules, each
of which compares one kind of detail that changes the answer:

==============  =========================================================================
rule            rejects when
==============  =========================================================================
numbers         the numbers differ (digits and number words one..twenty, "a dozen", ...,
                a letter naming one of a series: "Class G" / "Class D"), or the capital
                letters both sides write as words ("an E restriction" / "an L restriction")
units           the units or currencies differ (km vs miles, USD vs EUR, % ...)
dates           month, weekday, relative day or year words differ (today vs tomorrow)
negation        the sides hold different numbers of negation words (not, n't, never, without)
quantifier      one side speaks of the whole (all, every, entire) and the other of a part
                (some, part, few, several)
entities        each side names something the other does not (France vs Germany), or
                the candidate adds a named constraint the query lacks, or each side writes
                a name in capitals the other lacks, one within the other ("LDAP" / "LDAPS")
direction       shared terms appear in swapped order (USD to EUR vs EUR to USD,
                A before B vs B before A, dog bites man vs man bites dog, the seller pays
                the buyer's costs vs the buyer pays the seller's), or a shared
                word is the goal on one side and the source on the other ("an email to my
                manager" / "from my manager"), or a number both state belongs to another
                unit or name ("9 am in London ... in Tokyo" / "in London ... 9 am in Tokyo")
format          the requested output format differs (JSON, table, 3 bullet points, code,
                a haiku, short vs long)
language        a requested natural or programming language differs ("in French"), or the
                two texts are written in different languages
compound        one is a compound question and the other one part of it
question        the questions ask for different kinds of answer (why / when / where / who /
                how many / yes-no)
qualifier       a negating prefix on one side only (safe / unsafe, illegal / legally), or a
                negating suffix against its stem (stateless / stateful, shapeless / shaped)
quoted          the quoted phrases differ (compared literally), or the code both sides write
                does ("http://backend/" / "http://backend", "Data.Map.Strict" / "Data.Map"),
                or the symbols written as words ("the + wildcard" / "the # wildcard"), or
                a setting's value ("contextIsolation: true" / "contextIsolation: false")
difference      a content word on one side that nothing on the other side paraphrases
                (inflection, abbreviation, typo, or a word the embedding places as
                interchangeable at word level, ``wording.py``); a broad rewording is judged
                by the two texts' cosine instead (``verifier_difference.broad_rewording``)
attribute       inside a broad rewording, each side puts a different unexplained word right
                before the same word ("young olive tree" / "mature olive tree"), or before
                words both sides name ("beginner guitar for kids" / "guitar for advanced
                children", "a secret text credential" / "a username and password
                credential"): an edit of what is asked about, which the cosine does not judge
                (``verifier_difference.swapped_modifier``); or each side holds a hyphenated
                attribute on the same word ("in-network" / "out-of-network"); or one ordinal
                picks a different thing on each side ("the last row" / "the last column")
recipient       a request's party ("to my landlord", "for my wife") is another word on the
                other side, unless a form of it or a near-identity (``swapped_party``), or
                one side names a second one of a thing ("from me" / "from our other dog")
antonym         one side holds a word, the other its WordNet antonym, directly or through
                an adjective's synonym or satellite ("temporary" / "permanent"); a change
                up a scale against one down it; one operation on a record against another
                ("when a row is added" / "when a row is updated")
bearing         the compass points named differ (east / west), or the two ends of a link
                between systems (server / client, primary / replica), or the places relative to a
                thing or a period ("outside on the right" / "below", "during" / "outside
                of"); "before" against "after" is
                refused as a ``direction``
==============  =========================================================================

The rules are pure Python over regexes and a closed class of function words; the difference rule
adds word vectors from the sentence model (cached per word): a verdict costs about 0.1 ms.
They are deliberately conservative: when in doubt they reject, and a rejection only costs a miss
(an upstream call), while a wrong serve costs the customer a wrong answer. The rules must still
pass ordinary paraphrases (case, punctuation, synonyms, reordered clauses); the benchmark in
``tests/bench/cache_quality.py`` measures both sides.

No cross-encoder is used: none ships inside a PyPI package that loads offline here.

The rules' parts live beside this module: the vocabulary (``verifier_lexicon.py``), what is read
from one text (``verifier_features.py``), names (``verifier_entities.py``), order and direction
(``verifier_order.py``) and the difference rule (``verifier_difference.py``). This module holds
the decision (``verify``) and the helpers other modules import.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from .verifier_difference import (
    BROAD_COSINE,
    BROAD_QUESTION_COSINE,
    WIDE_COSINE,
    broad_rewording,
    differences,
    local_edit,
    inflection_bases,
    opposed_prefixes,
    swapped_modifier,
    swapped_party,
)
from .verifier_entities import abbreviates, extra_entities
from .verifier_features import Features, features_of, stem
from .verifier_lexicon import (
    ACCESS_MODES,
    ANOTHER,
    ANTONYM_FORMS,
    BOUNDS,
    ANTONYMS,
    CHANGE_DOWN,
    CHANGE_UP,
    COMPASS,
    COMPASS_FORM,
    DATA_OPERATIONS,
    DETERMINERS,
    FUNCTION,
    GAZETTEER,
    NEG_PREFIXES,
    NEGATIONS,
    NEG_SUFFIX,
    NUMBER_WORDS,
    ORDINAL_LEADS,
    OTHER_PERSON,
    PART,
    PERSON,
    POSITIONS,
    QUANTITY_WORDS,
    REVERSING_DEGREE,
    STOP,
    SYSTEM_ROLES,
    TIME_SIDE,
    UNIT_OF,
    WHOLE,
)
from .verifier_order import (
    CONVERSION_FRAME,
    coordinated,
    exchanged,
    is_transposition,
    opposite_roles,
    ordered_pairs,
    per_heads,
    rebound_number,
    related_symmetrically,
    reversed_per,
    reversed_relation,
    same_per,
    swapped_subject,
    unit_key,
)
from .wording import WordSimilarity, word_similarity

__all__ = [
    "BROAD_COSINE",
    "BROAD_QUESTION_COSINE",
    "WIDE_COSINE",
    "Verdict",
    "content_words",
    "lexical_overlap",
    "verify",
    "word_tokens",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verifier's answer: ``ok`` or not, and which rule decided (``"ok"`` when none fired)."""

    ok: bool
    reason: str


def verify(
    query: str, candidate: str, words: WordSimilarity | None = None, cosine: float | None = None
) -> Verdict:
    """May the cached answer to ``candidate`` be served for ``query``? See the module doc.

    ``words`` gives word-level cosines for the difference rule (default: the sentence model on
    single words, ``wording.word_similarity``). ``cosine`` is the two texts' embedding cosine when
    the caller has it: a broad rewording (several words changed on both sides) is then judged by
    it; without it, a broad rewording is refused like any other unexplained difference.

    A text of several lines is a conversation (``conversation_text``: earlier user turns, one per
    line, then the question). When the earlier turns differ, each pair of them must pass on its
    own, without the cosine (which is the whole conversations', not theirs: only a change of form,
    synonyms or inflection passes) and be about the same person (``_other_person``), and the
    questions are compared alone; a different number of turns is refused (``context``)."""
    if query == candidate:
        return Verdict(True, "ok")
    q_turns, c_turns = query.split("\n"), candidate.split("\n")
    if q_turns[:-1] != c_turns[:-1]:
        if len(q_turns) != len(c_turns):
            return Verdict(False, "context")
        turn_words = _near_identical(words or word_similarity)
        for q_turn, c_turn in zip(q_turns[:-1], c_turns[:-1], strict=True):
            if q_turn == c_turn:
                continue
            if _other_person(q_turn, c_turn) or not _verify_text(q_turn, c_turn, turn_words, None, turn=True).ok:
                return Verdict(False, "context")
        return _verify_text(q_turns[-1], c_turns[-1], words, cosine)
    return _verify_text(query, candidate, words, cosine)


TURN_SYNONYM = 0.90
"""The word-level cosine a word of an earlier turn needs to stand in for another.

An earlier turn is compared without a sentence cosine, so a word swapped in it is judged by the
word vectors alone, and converse or sibling roles sit as high there as synonyms ("husband" /
"wife" 0.86, "tenant" / "landlord" 0.81, "hardcover" / "paperback" 0.78): in a question they are
usually caught by the sentence around them, in a turn nothing else is. So a turn's word passes
only as a near-identity ("grandma" / "grandmother" 0.93), besides inflections and spellings."""


def _near_identical(words: WordSimilarity) -> WordSimilarity:
    """``words`` with every cosine under ``TURN_SYNONYM`` set to 0, except between two forms of
    one word ("living" / "live", "running" / "runs")."""
    def sim(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        m = np.asarray(words(a, b), dtype=float)
        same = np.array([[bool(inflection_bases(x) & inflection_bases(y)) for y in b] for x in a], dtype=bool)
        return np.where((m >= TURN_SYNONYM) | same.reshape(m.shape), m, 0.0)

    return sim


def _other_person(q_turn: str, c_turn: str) -> bool:
    """Is one turn about "me" and the other about "us", or one about "him" and the other about
    "her"? Pronouns are function words to the rules (a question's "he" is whoever it was asked
    about), but an earlier turn's pronoun says whom the scene is set for: "I earn 60k a year." /
    "We earn 60k a year.", "He is 14." / "She is 14."."""
    q = {PERSON[t] for t in features_of(q_turn).tokens if t in PERSON}
    c = {PERSON[t] for t in features_of(c_turn).tokens if t in PERSON}
    return any(
        (x in q and y not in q and y in c and x not in c) or (y in q and x not in q and x in c and y not in c)
        for x, y in OTHER_PERSON
    )


def _verify_text(
    query: str, candidate: str, words: WordSimilarity | None, cosine: float | None, turn: bool = False
) -> Verdict:
    """``verify`` on one text (or on conversations whose earlier turns are the same). An earlier
    ``turn`` ("I'm driving to the coast tomorrow.") is read as part of the question it leads to."""
    if query == candidate:
        return Verdict(True, "ok")
    q, c = features_of(query), features_of(candidate)
    if turn:
        q, c = replace(q, asks=True), replace(c, asks=True)

    if q.numbers != c.numbers:
        return Verdict(False, "numbers")
    # A number's bound both sides give must be the same: "at least two" / "exactly 2".
    q_bound, c_bound = _bounds(q), _bounds(c)
    if q_bound and c_bound and not (q_bound & c_bound):
        return Verdict(False, "numbers")
    # Formulas both sides write must be the same ("x^3 - 3x" / "x^3 + 3x"); one written on one
    # side only is left to the other rules (a paraphrase may say "the function" instead).
    if q.formulas and c.formulas and q.formulas != c.formulas:
        return Verdict(False, "numbers")
    if q.units != c.units:
        return Verdict(False, "units")
    if q.dates != c.dates:
        return Verdict(False, "dates")
    # Negation words are counted, not just noticed: "can" / "can't ... without a visa" differ by
    # one negation even though both sides hold one. No word list stands in for a "not" ("free",
    # "optional"): whether it does depends on the sentence, and refusing costs only a miss.
    # "Avoid X" is "do not X" in what is asked ("which foods should I avoid" / "which foods are
    # good to eat"); a statement rewords it with the rest ("to avoid recomputing" / "to prevent
    # having to recalculate"), so it counts when either text asks.
    asked = q.asks or c.asks
    if q.negations + asked * q.avoids != c.negations + asked * c.avoids:
        return Verdict(False, "negation")
    # Counted alike, the negations must still negate the same clause: "We're vulnerable and
    # they're not." / "We're not vulnerable and they are." state opposite situations.
    if q.negations and (_moved_negation(query, candidate) or _moved_negation(candidate, query)):
        return Verdict(False, "negation")
    # An earlier turn states the situation a question is asked in, and the time it is set in is
    # part of it: "I was laid off." / "I'm going to be laid off.", "My daughter is sick." / "My
    # daughter was sick.". Present and future may paraphrase ("I'm moving next week" / "I will
    # move next week"); the past against either may not. In a question only the past against
    # the future ("my visa has expired" / "is about to expire"): "who is" and "who was", "if I
    # missed" and "if I miss" are often asked alike.
    if q.tense and c.tense and not (q.tense & c.tense) and ("past" in q.tense) != ("past" in c.tense):
        if turn or ({"past", "future"} <= q.tense | c.tense and q.asks and c.asks):
            return Verdict(False, "tense")
    # "Must I ...?" / "May I ...?": one asks for a duty, the other for a permission.
    if q.modality and c.modality and not (q.modality & c.modality):
        return Verdict(False, "modality")
    # The whole of a thing or a part of it: a closed class, like the negations.
    q_whole, c_whole = bool(WHOLE.intersection(q.tokens)), bool(WHOLE.intersection(c.tokens))
    q_part, c_part = _names_part(q), _names_part(c)
    if (q_whole and c_part and not (q_part or c_whole)) or (c_whole and q_part and not (c_part or q_whole)):
        return Verdict(False, "quantifier")
    if q.languages != c.languages:
        return Verdict(False, "language")
    if q.written_in != c.written_in and "?" not in (q.written_in, c.written_in):
        return Verdict(False, "language")
    if q.formats != c.formats or q.length != c.length:
        return Verdict(False, "format")
    if q.parts != c.parts:
        return Verdict(False, "compound")
    # "Why is X?", "When is X?" and "Is X?" want different answers. Open questions (what, how,
    # which, requests) paraphrase into the typed ones too often to be compared.
    if "" not in (q.answer_type, c.answer_type) and q.answer_type != c.answer_type:
        return Verdict(False, "question")

    q_extra, c_extra = extra_entities(q, c), extra_entities(c, q)
    # A swap: each side names something the other does not (France vs Germany).
    if q_extra and c_extra:
        return Verdict(False, "entities")
    # A short question that drops or adds a name asks something else ("the capital" vs "the
    # capital of France"); long texts paraphrase names away too often for this to hold.
    if (q_extra or c_extra) and min(len(q.tokens), len(c.tokens)) <= 14:
        return Verdict(False, "entities")

    # "safe" vs "unsafe", "legal" vs "illegal": a negating prefix on one side, whatever the
    # other side's inflection ("illegal" / "legally", "unsafe" / "safely").
    # Hyphenated words count by their pieces too ("for-profit" / "nonprofit").
    q_pieces, c_pieces = _pieces(q), _pieces(c)
    q_joined, c_joined = {t.replace("-", "") for t in q.tokens}, {t.replace("-", "") for t in c.tokens}
    for w in q_pieces ^ c_pieces:
        if w in (c_joined if w in q_pieces else q_joined):  # "nonzero" / "non-zero"
            continue
        other = c_pieces if w in q_pieces else q_pieces
        prefix = next((pre for pre in NEG_PREFIXES if w.startswith(pre)), "")
        base = w[len(prefix):]
        # A short base could be a word's own first letters ("index", "dense"); a written "non-"
        # cannot: "non-EU residents" / "EU residents".
        if prefix and base and (len(base) >= 4 or prefix == "non-") and any(t == base or stem(t) == base for t in other):
            return Verdict(False, "qualifier")
        # "the least painful way" says what "the painless way" says (``REVERSING_DEGREE``).
        stem_of = w.removesuffix(NEG_SUFFIX)
        negated = stem_of != w and len(stem_of) >= 4 and not REVERSING_DEGREE.intersection(q.tokens + c.tokens)
        if negated and any(t.startswith(stem_of) and not t.endswith(NEG_SUFFIX) for t in other):
            return Verdict(False, "qualifier")
    # Compass points are a closed class, like months: "the east side" / "the west side" ask
    # about different sides, though the word vectors place the two as close as synonyms (0.79).
    if _bearings(q) != _bearings(c):
        return Verdict(False, "bearing")
    # The two ends of a link between systems: "on a Ktor server" / "on a Ktor client".
    if _role_swap(q, c):
        return Verdict(False, "bearing")
    # Before and after are the two ends of time, a closed class like the compass: "rename a label
    # on the targets before they are scraped" / "on the metrics after they are scraped".
    q_when, c_when = _sides_of_time(q), _sides_of_time(c)
    if len(q_when) == 1 and len(c_when) == 1 and q_when != c_when:
        return Verdict(False, "direction")
    # A change up a scale against a change down it: "lower the pH" / "increase the pH of my tank".
    q_way, c_way = _change(q), _change(c)
    if len(q_way) == 1 and len(c_way) == 1 and q_way != c_way:
        return Verdict(False, "antonym")
    # One operation on a record against another: "when a new row is added" / "when a row gets
    # updated" (the word vectors place "added" and "updated" close). Only in what is asked: a
    # statement rewords its verbs with the rest ("make sure ..." / "... will be deleted").
    q_op, c_op = _operations(q), _operations(c)
    if q.asks and c.asks and len(q_op) == 1 and len(c_op) == 1 and q_op != c_op:
        return Verdict(False, "antonym")
    # Reading against writing, whatever else is reworded ("a write-only token for a bucket" / "a
    # token with read access to a bucket"); a text naming both ("read-write") names neither.
    q_mode, c_mode = _access(q), _access(c)
    if len(q_mode) == 1 and len(c_mode) == 1 and q_mode != c_mode:
        return Verdict(False, "antonym")

    # Direction and order: the shared terms around "to"/"before"/"than" are swapped, or the
    # shared content words are the same sequence with two of them exchanged.
    shared = set(q.content) & set(c.content)
    key = {
        stem(t)
        for t in (q.entities | q.units | q.numbers | q.languages | q.dates)
    } | {u for t in q.tokens if (u := UNIT_OF.get(t))} | {
        stem(t) for t in q.tokens if t in UNIT_OF or t in GAZETTEER
    }
    # A term one side abbreviates is the same term ("int to string" / "a string to an integer").
    alias = {
        w: v
        for w in set(c.content) - shared
        for v in set(q.content) - shared
        if len(min(w, v, key=len)) <= 4 and (abbreviates(w, v) or abbreviates(v, w))
    }
    qp = ordered_pairs(q, shared | set(alias.values()), key)
    cp = {(alias.get(a, a), alias.get(b, b)) for a, b in ordered_pairs(c, shared | set(alias), key)}
    if any((b, a) in cp for a, b in qp):
        return Verdict(False, "direction")
    q_seq = list(dict.fromkeys(t for t in q.content if t in shared))
    c_seq = list(dict.fromkeys(t for t in c.content if t in shared))
    # Both ask the same unit question, read by its links ("how many grams of flour in a cup" /
    # "a cup of flour is how many grams"): the order of its words is the phrasing's, not the
    # direction's, and "how many", "per", "weigh" only frame it.
    conversion = same_per(q, c)
    # Only for short texts: in long ones two shared words trade places by chance.
    if 3 <= len(q_seq) <= 7 and is_transposition(q_seq, c_seq):
        diff = [i for i, (x, y) in enumerate(zip(q_seq, c_seq, strict=True)) if x != y]
        x, y = q_seq[diff[0]], q_seq[diff[1]]
        # The two units of the same unit question may trade places; their attributes may not
        # ("teaspoons of dried basil ... of fresh" / "of fresh basil ... of dried").
        heads = per_heads(q) if conversion else set()
        symmetric = related_symmetrically(q, x, y) and related_symmetrically(c, x, y)
        if not (coordinated(q, x, y) or coordinated(c, x, y) or symmetric or {unit_key(x), unit_key(y)} <= heads):
            return Verdict(False, "direction")

    # A quoted phrase is the object of the question: it must be the same on both sides, or
    # appear word for word on the side that does not quote it.
    if q.quoted != c.quoted:
        for f, other in ((q, c), (c, q)):
            if any(span not in other.quoted and span not in other.low for span in f.quoted):
                return Verdict(False, "quoted")

    # Code is compared literally too, when both sides write some: "proxy_pass http://backend/" /
    # "http://backend", "Data.Map.Strict" / "Data.Map" (a paraphrase copies it, or writes it as
    # words: "proxy_pass" / "proxy pass").
    q_marked, c_marked = {x for x in q.code if not x.isalnum()}, {x for x in c.code if not x.isalnum()}
    if q_marked and c_marked and q_marked != c_marked:
        if any(_unwritten(span, other) for marked, other in ((q_marked, c), (c_marked, q)) for span in marked):
            return Verdict(False, "quoted")
    # A reference ("&str") is a type of its own, whatever the other side writes ("String"); an
    # identifier in camel case must be written on the other side too, as one word or spelled
    # out, and not inside a longer one ("cudaMallocManaged" / "cudaMalloc"); so must one in snake
    # case, its pieces written together ("ROLE_ADMIN" / "ADMIN", "proxy_pass" / "proxy pass").
    for f, other in ((q, c), (c, q)):
        for span in f.code:
            if (span.startswith("&") and span not in other.code) or (span.isalnum() and _unwritten(span, other)):
                return Verdict(False, "quoted")
            if _SNAKE_RE.fullmatch(span) and span not in other.code and _squash(span) not in other.squashed:
                return Verdict(False, "quoted")

    # A symbol written as a word is mentioned, like a quoted one: "the + wildcard" / "the #
    # wildcard" (the word rules drop symbols).
    if q.symbols and c.symbols and q.symbols != c.symbols:
        return Verdict(False, "quoted")
    # The same letters with other symbols in them: "a workspace:^ dependency" / "a workspace:*
    # dependency", "C++" / "C#".
    q_signs, c_signs = _signs_of(q), _signs_of(c)
    if any(signs != c_signs.get(letters, signs) for letters, signs in q_signs.items()):
        return Verdict(False, "quoted")
    # A setting both sides give a value must have the same one: "contextIsolation: true and
    # nodeIntegration: false" / "contextIsolation: false and nodeIntegration: true".
    q_set, c_set = dict(q.settings), dict(c.settings)
    if any(c_set.get(name, value) != value for name, value in q_set.items()):
        return Verdict(False, "quoted")
    # A capital letter names one of a kind, like a number: "a CDL with an E restriction" / "an L
    # restriction". Only when both sides write one: a paraphrase may spell it out.
    if q.letters and c.letters and q.letters != c.letters:
        return Verdict(False, "numbers")
    # A name in capitals is spelled out, never inflected or abbreviated: "LDAPS" / "LDAP", "SSDI"
    # / "SSI" are two names, though the word rules read a plural and an abbreviation.
    if _acronym_swap(q, c):
        return Verdict(False, "entities")

    # One side done to, the other doing: "my son has been bullied by another boy" / "my son has
    # been bullying another boy" (the two forms of one verb are one word to the rules below).
    if _voice_swap(q, c) or _voice_swap(c, q):
        return Verdict(False, "direction")
    # The same content words in another order with the same link between them: "cups in a
    # tablespoon" / "tablespoons in a cup", "dog chases cat" / "cat chases dog".
    if (reversed_relation(q, c) or reversed_per(q, c) or opposite_roles(q, c) or rebound_number(q, c)
            or swapped_subject(q, c) or exchanged(q, c)):
        return Verdict(False, "direction")

    # A hyphenated attribute is one unit: "in-network" / "out-of-network", "single-page" /
    # "multi-page". Its pieces are function words or words the other side holds elsewhere
    # ("out-of-pocket"), so the word-by-word rules below do not see the swap.
    if _swapped_compound(q, c):
        return Verdict(False, "attribute")

    # The principle behind the rest: every content word one side has and the other lacks must be
    # a paraphrase of a word on the other side (an inflection, an abbreviation, or a word the
    # embedding places as interchangeable). Opposites, ordinals, attributes, recipients, added
    # qualifiers and added sub-requests are not, whatever the word.
    q_left, c_left, q_changed, c_changed = differences(q, c, words)
    if conversion:
        q_left = [w for w in q_left if w not in CONVERSION_FRAME]
        c_left = [w for w in c_left if w not in CONVERSION_FRAME]
    # A place relative to the thing asked about, one for another: a closed class, like the
    # compass ("put the legend outside the plot on the right" / "below the plot"). Only
    # unexplained words count: "the right way" / "the correct way" is explained.
    q_at = {POSITIONS[w] for w in q_left if w in POSITIONS}
    c_at = {POSITIONS[w] for w in c_left if w in POSITIONS}
    if q_at and c_at and not (q_at & c_at):
        return Verdict(False, "bearing")
    # One ordinal on two things: "the last row that contains data" / "the last column with
    # data". The ordinal both sides hold is explained, the things after it are not.
    if _ordinal_swap(q, c, set(q_left), set(c_left)) or _ordinals_traded(q, c):
        return Verdict(False, "attribute")
    # How broad the rewording is counts every changed word, synonyms included: a sentence
    # rephrased in four words with one synonym among them is still a rephrasing.
    if (q_left or c_left) and not broad_rewording(q_changed, c_changed, cosine):
        return Verdict(False, "difference")
    if opposed_prefixes(q_left, c_left):
        return Verdict(False, "difference")
    if local_edit(q, c, q_left, c_left):
        return Verdict(False, "edit")
    if swapped_modifier(q, c, q_left, c_left):
        return Verdict(False, "attribute")
    if swapped_party(q, c, words, TURN_SYNONYM) or _second_one(q, c) or _second_one(c, q):
        return Verdict(False, "recipient")
    # Two questions reworded broadly need a higher cosine than two statements: what a question
    # asks about can change inside the rewording ("reverse as soon as it starts to close" /
    # "right before it touches the floor"), and the rules above see it only when it sits before
    # a word both sides hold. After them, so that what they name keeps its name.
    if (q_left or c_left) and q.asks and c.asks and not broad_rewording(q_changed, c_changed, cosine, question=True):
        return Verdict(False, "difference")
    # Last, a lexical resource over what the rules above let through: one side holds a word, the
    # other its antonym in WordNet, instead ("cheap ways to soundproof a room" / "expensive
    # ways", "slow down a song" / "make a song faster", "affect borrowers" / "affect lenders").
    if _opposite_words(q, c):
        return Verdict(False, "antonym")

    return Verdict(True, "ok")


_BE_FORMS = {"is", "are", "was", "were", "be", "been", "being", "am", "get", "gets", "got", "getting"}


def _voice_swap(f: Features, g: Features) -> bool:
    """Does ``f`` say a verb was done to its subject by someone ("been bullied by another boy")
    where ``g`` has the subject doing it to that someone ("been bullying another boy")? Told from
    "a teacher is bullying my child", which says the same as "my child is being bullied by their
    teacher", by where the doer stands: after the verb, it is done to."""
    t, u = f.tokens, g.tokens
    for i in range(1, len(t) - 1):
        if not (t[i].endswith("ed") and t[i - 1] in _BE_FORMS and t[i + 1] == "by"):
            continue
        doer = next((w for w in t[i + 2:] if w not in FUNCTION and w not in STOP), "")
        for j in range(1, len(u)):
            if u[j].endswith("ing") and u[j - 1] in _BE_FORMS and _token_bases(t[i]) & _token_bases(u[j]):
                if doer and doer in u[j + 1:]:
                    return True
    return False


def _token_bases(tok: str) -> set[str]:
    """``inflection_bases`` with "-ied" read as "-y" ("bullied" -> bully, "modified" -> modify)."""
    return inflection_bases(tok) | ({tok[:-3] + "y"} if tok.endswith("ied") else set())


def _bounds(f: Features) -> set[str]:
    """The bounds ``f`` gives its numbers (``BOUNDS``): ">=" for "at least", "=" for "exactly"."""
    return {kind for kind, pattern in BOUNDS if pattern.search(f.low)}


def _signs_of(f: Features) -> dict[str, set[str]]:
    """The symbols ``f`` writes in each of its signed words (``Features.signed``), by letters."""
    out: dict[str, set[str]] = {}
    for letters, signs in f.signed:
        out.setdefault(letters, set()).add(signs)
    return out


# Clauses end at punctuation and at a conjunction; "and" joins clauses only before a subject
# pronoun ("and they're not"), elsewhere it joins words ("*args and **kwargs").
_CLAUSE_BREAK = re.compile(
    r"[.;,:!?]+|\b(?:but|while|whereas|although|though|yet)\b"
    r"|\band\b(?=\s+(?:i|we|you|he|she|it|they|i'm|we're|you're|he's|she's|it's|they're)\b)",
    re.IGNORECASE,
)


def _clauses(text: str) -> list[Features]:
    return [features_of(part) for part in _CLAUSE_BREAK.split(text) if part.strip()]


def _moved_negation(a: str, b: str) -> bool:
    """Is a negated clause of ``a`` most like a clause of ``b`` negated another number of times?
    Clauses are matched by the words they share, negations aside; only when both texts have
    several clauses (a single one is the negation count's business)."""
    a_parts, b_parts = _clauses(a), _clauses(b)
    if len(a_parts) < 2 or len(b_parts) < 2:
        return False

    def words(f: Features) -> set[str]:
        return {t for t in f.tokens if t not in NEGATIONS}

    for part in a_parts:
        if not part.negations or not (mine := words(part)):
            continue
        overlap, match = max(
            ((len(mine & words(other)) / len(mine | words(other)), other) for other in b_parts),
            key=lambda x: x[0],
        )
        if overlap >= 0.5 and match.negations != part.negations:
            return True
    return False


def _second_one(f: Features, g: Features) -> bool:
    """Does ``f`` name a thing and then "another"/"other" one of it, where ``g`` names only the
    first? "stop my dog guarding his bowl from our other dog" / "... from me": the second dog is
    a party of its own, though the word "dog" is on both sides."""
    toks = f.tokens
    for i, t in enumerate(toks[:-1]):
        if t not in ANOTHER:
            continue
        w = stem(toks[i + 1])
        plain = [j for j, x in enumerate(toks) if stem(x) == w and (j == 0 or toks[j - 1] not in ANOTHER)]
        in_g = [j for j, x in enumerate(g.tokens) if stem(x) == w]
        if plain and in_g and len(in_g) <= len(plain) and not any(j and g.tokens[j - 1] in ANOTHER for j in in_g):
            return True
    return False


def _swapped_compound(q: Features, c: Features) -> bool:
    """Does each side hold a hyphenated word the other lacks, on the same last piece, with other
    pieces before it ("in-network" / "out-of-network")?"""
    def heads(f: Features, other: Features) -> dict[str, str]:
        return {
            t.rsplit("-", 1)[1]: t.rsplit("-", 1)[0]
            for t in f.tokens
            if "-" in t.strip("-") and t[:1].isalpha() and t not in other.tokens
        }

    # Numbers are the numbers rule's ("a three-year-old" / "a 3-year-old"), articles nobody's
    # ("receiver-in-the-canal" / "receiver-in-canal").
    def pieces(mod: str) -> list[str]:
        return [p for p in mod.split("-") if p not in ("a", "an", "the") and p not in NUMBER_WORDS and not p[:1].isdigit()]

    q_heads, c_heads = heads(q, c), heads(c, q)
    return any(head in c_heads and pieces(mod) != pieces(c_heads[head]) for head, mod in q_heads.items())


def _role_swap(q: Features, c: Features) -> bool:
    """Does each side name a different end of one link between systems (``SYSTEM_ROLES``), and
    neither side both ("client-server" names the link)?"""
    def ends(f: Features) -> dict[int, set[int]]:
        out: dict[int, set[int]] = {}
        for tok in f.tokens:
            for piece in (tok, *tok.split("-")):
                if piece in SYSTEM_ROLES:
                    pair, side = SYSTEM_ROLES[piece]
                    out.setdefault(pair, set()).add(side)
        return out

    q_ends, c_ends = ends(q), ends(c)
    return any(len(sides) == 1 and len(c_ends.get(pair, ())) == 1 and sides != c_ends[pair] for pair, sides in q_ends.items())


def _ordinal_swap(q: Features, c: Features, q_left: set[str], c_left: set[str]) -> bool:
    """Does an ordinal both sides hold ("last") come before a different unexplained word on
    each side ("row" / "column")? Only after a determiner: "by first shuffling the dataset" is an
    adverb, not an ordinal."""
    def picked(f: Features, left: set[str]) -> set[tuple[str, str]]:
        toks = f.tokens
        return {
            (t, n) for d, t, n in zip(toks, toks[1:], toks[2:])
            if d in DETERMINERS and t in ORDINAL_LEADS and n in left
        }

    q_picks, c_picks = picked(q, q_left), picked(c, c_left)
    return any(lead == other for lead, _ in q_picks for other, _ in c_picks)


def _ordinals_traded(q: Features, c: Features) -> bool:
    """Do two ordinals trade the things they pick, each side naming the same ordinals and the
    same things ("the second row and third column" / "the third row and second column")?"""
    def picks(f: Features) -> dict[str, str]:
        return {t: n for t, n in zip(f.tokens, f.tokens[1:]) if t in ORDINAL_LEADS}

    q_picks, c_picks = picks(q), picks(c)
    return (len(q_picks) >= 2 and q_picks.keys() == c_picks.keys() and q_picks != c_picks
            and sorted(q_picks.values()) == sorted(c_picks.values()))


def _acronym_swap(q: Features, c: Features) -> bool:
    """Does each side write a name in capitals that the other lacks, one the other's letters
    with some added ("LDAP" / "LDAPS", "SSI" / "SSDI")?"""
    q_only, c_only = q.acronyms - c.acronyms, c.acronyms - q.acronyms
    for x in q_only:
        for y in c_only:
            short, long_ = sorted((x, y), key=len)
            if len(x) == len(y) or not abbreviates(short, long_):
                continue
            # The rest spelled out by the words after the short name is the same name: "100 USD"
            # / "100 US dollars".
            if not _spelled_on(short, long_, c if short == y else q):
                return True
    return False


def _spelled_on(short: str, long_: str, f: Features) -> bool:
    """Does ``f`` write ``short`` followed by words whose initials complete ``long_``?"""
    if not long_.startswith(short):
        return False
    rest, toks = long_[len(short):].lower(), f.tokens
    return any(
        t == short.lower() and "".join(w[:1] for w in toks[i + 1 : i + 1 + len(rest)]) == rest
        for i, t in enumerate(toks)
    )


def _squash(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


_SNAKE_RE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)+")


def _unwritten(span: str, f: Features) -> bool:
    """Is code ``span`` missing from ``f``: not among its code, nor spelled out in its words
    ("datasets.AudioClassification" / "the AudioClassification class of datasets")? Code of ``f``
    with the same letters is other code ("http://backend" / "http://backend/", "data.map" /
    "data.map.strict")."""
    if span in f.code:
        return False
    squashed = _squash(span)
    # A qualified name is the same name ("AutomaticSpeechRecognition" /
    # "datasets.AutomaticSpeechRecognition").
    if any(squashed in _squash(o) and squashed not in re.split(r"[^\w]+", o) for o in f.code):
        return True
    return not all(_squash(piece) in f.squashed for piece in re.split(r"[^\w]+|_", span) if piece)


def _pieces(f: Features) -> set[str]:
    """``f``'s tokens and the pieces of its hyphenated tokens."""
    return set(f.tokens) | {p for tok in f.tokens if "-" in tok for p in tok.split("-") if p}


def _names_part(f: Features) -> bool:
    """Does ``f`` speak of a part of a thing: "some", "a few", or a single one singled out
    ("just one of the coroutines", "only one resource", "restart one service", "a single row")?"""
    if PART.intersection(f.tokens) or "single" in f.tokens:
        return True
    # "just one of", "only one", and "one" before a noun ("restart one service").
    return any(
        b == "one" and (a in ("just", "only") or (c[:1].isalpha() and c not in FUNCTION))
        for a, b, c in zip(("", *f.tokens), f.tokens, (*f.tokens[1:], ""))
    )


def _change(f: Features) -> set[str]:
    """The directions of change ``f``'s verbs name: "up" ("increase", "raised"), "down"."""
    return {way for tok in f.tokens for way in _token_change(tok)}


@lru_cache(maxsize=20_000)
def _token_change(tok: str) -> frozenset[str]:
    bases = inflection_bases(tok)
    return frozenset(way for way, words in (("up", CHANGE_UP), ("down", CHANGE_DOWN)) if bases & words)


def _operations(f: Features) -> set[str]:
    """The operations on a record ``f``'s verbs name (``DATA_OPERATIONS``): "create", "update",
    "delete"."""
    return {op for tok in f.tokens for op in _token_operations(tok)}


@lru_cache(maxsize=20_000)
def _token_operations(tok: str) -> frozenset[str]:
    return frozenset(op for base in _token_bases(tok) if (op := DATA_OPERATIONS.get(base)))


def _access(f: Features) -> set[str]:
    """The modes of access ``f`` names (``ACCESS_MODES``), in words or hyphenated pieces."""
    return {mode for tok in f.tokens for piece in tok.split("-") if (mode := ACCESS_MODES.get(piece))}


@lru_cache(maxsize=20_000)
def _lemmas(tok: str) -> frozenset[str]:
    """The dictionary forms ``tok`` may be of: itself, an inflection's base, an irregular form's
    ("sold" -> sell, "worse" -> bad), a comparative's or superlative's ("cheapest" -> cheap,
    "happier" -> happy), or an adverb's ("cheaply" -> cheap, "automatically" -> automatic)."""
    out = set(inflection_bases(tok))
    if base := ANTONYM_FORMS.get(tok):
        out.add(base)
    # WordNet's own rule for the plurals its list of exceptions leaves out: "women" -> woman.
    if tok.endswith("men") and (base := tok[:-3] + "man") in ANTONYMS:
        out.add(base)
    for suffix in ("est", "er", "ally", "ly"):
        if tok.endswith(suffix) and len(tok) > len(suffix) + 2:
            root = tok[: -len(suffix)]
            out.update(b for b in (root, root + "e", root[:-1] + "y") if b in ANTONYMS)
    return frozenset(out)


_NOT_OPPOSED = STOP | FUNCTION | QUANTITY_WORDS | REVERSING_DEGREE | {"most", "fewest"}


def _opposable(f: Features) -> dict[str, frozenset[str]]:
    """``f``'s words that may have an antonym, each with its dictionary forms. Function and
    quantity words are compared by their own rules (negation, quantifier, direction)."""
    pieces = {p for tok in f.tokens for p in tok.split("-") if p.isalpha()}
    return {p: _lemmas(p) for p in pieces if p not in _NOT_OPPOSED}


def _opposite_words(q: Features, c: Features) -> bool:
    """Does one side hold a word where the other holds its antonym (``ANTONYMS``), and neither
    holds both? A text with a reversing degree word is exempt: "the least painful way" says
    what "the painless way" says."""
    if REVERSING_DEGREE.intersection(q.tokens) or REVERSING_DEGREE.intersection(c.tokens):
        return False
    qw, cw = _opposable(q), _opposable(c)
    q_all = frozenset().union(*qw.values())
    c_all = frozenset().union(*cw.values())
    c_only = frozenset().union(*(forms for w, forms in cw.items() if w not in qw))
    for w, forms in qw.items():
        if w in cw:
            continue
        for lemma in forms - c_all:
            if any(a in c_only and a not in q_all for a in ANTONYMS.get(lemma, ())):
                return True
    return False


def _sides_of_time(f: Features) -> frozenset[str]:
    """Which side of a moment ``f`` speaks of: "before" ("prior to", "earlier"), "after"."""
    return frozenset(TIME_SIDE[t] for t in f.tokens if t in TIME_SIDE)


def _bearings(f: Features) -> frozenset[str]:
    """The compass points ``f`` names ("east", "north-western" -> north, west)."""
    out: set[str] = set()
    for tok in f.tokens:
        for piece in tok.split("-"):
            if COMPASS_FORM.fullmatch(piece):
                out.update(point for point in COMPASS if point in piece)
    return frozenset(out)


def lexical_overlap(a: str, b: str) -> float:
    """Jaccard overlap of the two texts' content-word stems, in [0, 1].

    Used by the policy to break near-ties between candidates: when two cached entries are
    almost equally close in embedding space, the one sharing more of the query's own words is
    the more likely match.
    """
    fa, fb = set(features_of(a).content), set(features_of(b).content)
    if not fa or not fb:
        return 0.0
    return len(fa & fb) / len(fa | fb)


def word_tokens(text: str) -> list[str]:
    """The verifier's tokens of ``text``: lower-cased words, numbers and symbols, in order."""
    return list(features_of(text).tokens)


def content_words(text: str) -> set[str]:
    """The stems of ``text``'s content words (stopwords dropped), as ``lexical_overlap`` uses."""
    return set(features_of(text).content)

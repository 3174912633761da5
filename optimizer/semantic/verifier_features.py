"""What the verifier reads in one text: tokens, stems, numbers, units, dates, negations, names,
formats, languages, question type, content words and quoted spans (``features_of``, cached).

Every rule in ``verifier.py`` compares two of these; extraction is done once per text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from .verifier_lexicon import (
    ANSWER_TYPES,
    ASKED_NEGATIONS,
    CODE_RE,
    COMPOUND_RE,
    DATE_WORDS,
    FUNCTION,
    FUTURE_LEADS,
    GAZETTEER,
    INVERTING,
    IRREGULAR_PAST,
    LANG_STOP,
    LANGUAGES,
    LENGTH_RE,
    MAGNITUDES,
    NEGATIONS,
    NOT_ENTITIES,
    NOUN_PHRASE_OPENERS,
    NUMBER_WORDS,
    NUMERIC_ONLY_UNITS,
    OBLIGATION,
    OBLIGATION_LEADS,
    PERFECT,
    PERMISSION,
    QUANTITY_WORDS,
    RELATIVE_PERIOD,
    REQUEST_KINDS,
    REQUEST_VERBS,
    ROMAN,
    SERIES,
    SHORT,
    STOP,
    STRONG_FORMATS,
    SUBJECTS,
    TENSE_MARKERS,
    TIME_ADVERBS,
    TIME_UNITS,
    TOKEN_RE,
    TONES,
    UNIT_OF,
    WAY_ADJECTIVES,
    WEAK_FORMAT_RE,
    WEAK_FORMATS,
    WEAK_NUMBER_WORDS,
    WH,
    YES_NO,
)


# Accented Latin letters read as their base letter: "Reykjavík" / "Reykjavik", "börek" / "borek"
# name one thing (a user types either). Only Latin: other scripts decompose into other letters.
_FOLD = str.maketrans({
    c: base for c in map(chr, range(0xC0, 0x250))
    if (base := unicodedata.normalize("NFD", c)[0]) != c and base.isascii()
})
# A superscript digit is a power: "tan²x" / "tan^2 x".
_SUPERSCRIPTS = str.maketrans({s: f"^{d}" for d, s in enumerate("⁰¹²³⁴⁵⁶⁷⁸⁹")})


def normalize(text: str) -> str:
    if text.isascii():  # most texts: nothing to fold (``normalize`` runs several times per verdict)
        return text
    return text.replace("’", "'").replace("“", '"').replace("”", '"').translate(_FOLD).translate(_SUPERSCRIPTS)


def _tokens(text: str) -> list[str]:
    t = normalize(text).lower()
    # Join contractions so "doesn't" reads as one negation word.
    t = re.sub(r"\b(\w+)n't\b", r"\1nt", t)
    t = t.replace("can not", "cannot")
    # A letter in parentheses after a number names a plan or a clause: "401(k)" is "401k".
    t = re.sub(r"\b(\d+)\(([a-z])\)", r"\1\2", t)
    # "non" is a prefix wherever it is written: "non chlorine shock" reads as "non-chlorine".
    t = re.sub(r"\bnon\s+(?=[a-z])", "non-", t)
    out: list[str] = []
    for tok in TOKEN_RE.findall(t):
        # A possessive is a link between two nouns, like "of": "the seller pays the buyer's
        # costs" holds the words "seller" and "buyer", so a swap of the two is seen as one
        # ("the buyer pays the seller's costs"). Contractions of function words stay whole
        # ("it's", "who's", "let's": "is" or "us", not a possessive).
        if tok.endswith("'s") and len(tok) > 3 and tok[:-2] not in FUNCTION and tok[:-2] not in STOP:
            out += [tok[:-2], "'s"]
        else:
            out.append(tok)
    return out


@lru_cache(maxsize=50_000)
def stem(w: str) -> str:
    """A crude stem: enough to match plurals and -ing/-ed forms across paraphrases. Cached: the
    rules stem the same words again and again (most of a long pair's verdict, uncached)."""
    for suf in ("ings", "ing", "ies", "ied", "es", "ed", "s", "ly"):
        if len(w) > len(suf) + 3 and w.endswith(suf):
            w = w[: -len(suf)]
            # "formatting" -> "formatt" -> "format"
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]
            return w
    return w


@dataclass(frozen=True, slots=True)
class Features:
    tokens: tuple[str, ...]
    low: str
    squashed: str
    numbers: frozenset[str]
    units: frozenset[str]
    dates: frozenset[str]
    negations: int
    avoids: int
    """How many ``ASKED_NEGATIONS`` ("avoid") the text holds: a negation when either text asks."""
    entities: frozenset[str]
    formats: frozenset[str]
    length: frozenset[str]
    languages: frozenset[str]
    written_in: str
    parts: int
    answer_type: str
    content: tuple[str, ...]
    words: tuple[str, ...]
    quoted: frozenset[str]
    tense: frozenset[str] = frozenset()
    """The times the auxiliaries set the text in ("past", "present", "future"; ``_tense``)."""
    modality: frozenset[str] = frozenset()
    """What a yes/no question asks of its act: "obligation", "permission" (``_modality``)."""
    asks: bool = False
    """A question or a request ("?", or it opens with a question word or a request verb), not a
    statement; an earlier turn of a conversation is read as part of its question."""
    formulas: frozenset[str] = frozenset()
    """The formulas written in the text, without spaces (``_formulas``)."""
    code: frozenset[str] = frozenset()
    """The code written in the text: paths, URLs, dotted and snake_case names (``_code``)."""
    symbols: frozenset[str] = frozenset()
    """Symbols written as words: "the + wildcard", "what does (#) match" (``_symbols``)."""
    signed: frozenset[tuple[str, str]] = frozenset()
    """Words written with symbols in them, as (letters, symbols): "workspace:^" -> ("workspace",
    "^") (``_signed_words``)."""
    acronyms: frozenset[str] = frozenset()
    """Names written in capitals, as written ("LDAPS", "SSDI"; ``_acronyms``)."""
    letters: frozenset[str] = frozenset()
    """Capital letters written as words, which name one of a kind ("an E restriction"; ``_letters``)."""
    settings: frozenset[tuple[str, str]] = frozenset()
    """Settings given a literal value ("contextIsolation: true"; ``_settings``)."""


_QUOTED_RE = re.compile(r"""(?:^|[\s(])['"‘“`]([^'"’”`]{1,80})['"’”`](?=$|[\s?.!,:;)])""")


_FORMULA_RE = re.compile(r"[\w().]+(?:\s*(?:\*\*|[-+*/^=<>])\s*[\w().]+)+")


def _formulas(text: str) -> frozenset[str]:
    """The formulas of a text ("x^3 - 3x", "a = b + 1", "3/4"), lower-cased without spaces: terms
    joined by operators, with a digit or an operator other than "-" and "/" in them, so
    "soft-boiled" and "and/or" are words. Their signs and order are the question ("x^3 - 3x" /
    "x^3 + 3x"), which the numbers rule cannot see (the same numbers)."""
    out = set()
    text = text.replace("–", "-").replace("−", "-").replace("—", "-").replace("×", "*")
    # A power's argument written apart or in parentheses is the same term: "tan^2 x", "tan^2(x)"
    # and "tan^2x" (from "tan²x").
    text = re.sub(r"(\^\d+)(?:\s+([a-z])\b(?!\s*[\w(])|\(([a-z])\))", lambda m: m.group(1) + (m.group(2) or m.group(3)), text)
    for m in _FORMULA_RE.finditer(text):
        span = m.group(0)
        if any(ch.isdigit() for ch in span) or any(op in span for op in "^+*=<>"):
            out.add("".join(span.lower().split()).rstrip("."))
    return frozenset(out)


# Tokens that are code: a URL, a path, a reference ("&str"), a snake_case or "::" name, a call
# ("len(x)"; "f(x)" is maths), or a dotted name whose pieces are words ("Data.Map.Strict",
# "os.path"; not "Node.js", "e.g.", "3.5").
_CODE_RE = re.compile(
    r"://|^/\w|^&[a-z_]|\w_\w|::|->|[a-z_]\w+\(|^[a-z_]\w*(?:\.[a-z_]\w*)*\.[a-z_]\w{2,}$", re.IGNORECASE
)
# A file name of three pieces or more is code whatever its extension ("bootstrap.bundle.min.js" /
# "bootstrap.min.js"); with two, "Node.js" and "Vue.js" are product names.
_FILE_RE = re.compile(r"^[a-z_][\w-]+(?:\.[a-z_][\w-]*){2,}$", re.IGNORECASE)
_CODE_MARKS = frozenset("/_:(&.>")
_CAMEL_RE = re.compile(r"[a-z][A-Z]")
_NOT_CODE_ENDINGS = (".js", ".ts", ".net", ".io", ".com", ".org", ".txt")


def _code(text: str) -> frozenset[str]:
    """The code tokens of a text, lower-cased, without the punctuation around them: they are
    compared literally, like quotes ("proxy_pass http://backend/" / "http://backend",
    "Data.Map.Strict" / "Data.Map", "MeshBasicMaterial" / "MeshStandardMaterial")."""
    out = set()
    for raw in text.split():
        # A name in camel case with two capitals after a small letter is an identifier
        # ("MeshBasicMaterial", "cudaMallocManaged"; not "iPhone" or "JavaScript").
        camel = not raw.islower() and len(_CAMEL_RE.findall(raw)) >= 2
        if _CODE_MARKS.isdisjoint(raw) and not camel:  # most words: no regex
            continue
        tok = raw.lstrip("\"'`“”‘’{[").rstrip("\"'`“”‘’,;:!?}].").lower()
        if camel and tok.isalnum():
            out.add(tok)
            continue
        if (tok.startswith("(") and not tok.endswith(")")) or (tok.endswith(")") and "(" not in tok):
            tok = tok.strip("()")
        # A formula ("g(t)=t^2-4t") is the formulas' rule's.
        if any(ch.isalnum() for ch in tok) and "^" not in tok and _CODE_RE.search(tok) and not tok.endswith(_NOT_CODE_ENDINGS):
            out.add(tok)
        elif _FILE_RE.match(tok):
            out.add(tok)
    return frozenset(out)


_SYMBOL_RE = re.compile(r"[+#*%^|~@$=<>!]{1,3}")


_SIGN_RE = re.compile(r"[+#*%^|~@$=<>&\\]")


def _signed_words(text: str) -> frozenset[tuple[str, str]]:
    """The words a text writes with symbols in them, as their letters and their symbols: a
    "workspace:^" and a "workspace:*" dependency are two things whose letters are the same."""
    out = set()
    for raw in text.split():
        tok = raw.strip("\"'`“”‘’()[]{},;:.?!")
        signs = "".join(_SIGN_RE.findall(tok))
        letters = re.sub(r"[^0-9a-z]", "", tok.lower())
        if signs and letters:
            out.add((letters, signs))
    return frozenset(out)


def _symbols(text: str) -> frozenset[str]:
    """The symbols a text writes as words, without quotes or brackets around them: "the +
    wildcard" / "the # wildcard", "what does ** do". A word that is only a symbol is mentioned,
    like a quoted one, and the words around it are the same on both sides. "&" and "/" stand
    for "and" and "or"; "?" and "!" end sentences."""
    out = set()
    for raw in text.split():
        tok = raw.strip("\"'`“”‘’()[]{},;:.")
        if _SYMBOL_RE.fullmatch(tok) and tok not in ("!", "!!", "!!!"):
            out.add(tok)
        # A sign outside ASCII: "the ® symbol" / "the ™ symbol", "°" / "′".
        elif len(tok) == 1 and unicodedata.category(tok) in ("So", "Sm", "Sc"):
            out.add(tok)
    return frozenset(out)


_ACRONYM_RE = re.compile(r"\b[A-Z][A-Z0-9]*[A-Z](?:s|'s)?\b")


def _acronyms(text: str) -> frozenset[str]:
    """The names a text writes in capitals, without a plural or possessive "s" ("APIs" -> "API"):
    "LDAPS" is not the plural of "LDAP", nor "SSI" short for "SSDI". A text written all in
    capitals has none."""
    if not re.search(r"[a-z]", text):
        return frozenset()
    return frozenset(m.group(0).removesuffix("'s").rstrip("s") for m in _ACRONYM_RE.finditer(text))


# With a grade's sign, as written: "a C-" / "a C" are two grades.
_LETTER_RE = re.compile(r"(?<![\w.'’&-])[B-HJ-Z](?:[+-](?![\w+-]))?(?![\w.'’&+-])")


# One that ends a sentence after a small word: "the tag says cleaning code W." (a letter with a
# period after a capital or at the start is more often an initial: "J. K. Rowling").
_LETTER_AT_END_RE = re.compile(r"(?<=[a-z] )[B-HJ-Z](?=\.(?:\s|$))")


def _letters(text: str) -> frozenset[str]:
    """The capital letters a text writes as words, besides "I" and "A" ("a CDL with an E
    restriction", "Plan B"): each names one of a kind, like a number. A text written all in
    capitals has none."""
    if not re.search(r"[a-z]", text):
        return frozenset()
    return frozenset(_LETTER_RE.findall(text)) | frozenset(_LETTER_AT_END_RE.findall(text))


_SETTING_RE = re.compile(r"([A-Za-z_][\w.-]*)\s*[:=]\s*(true|false|yes|no|on|off|enabled|disabled|null|none|nil)\b", re.IGNORECASE)


def _settings(text: str) -> frozenset[tuple[str, str]]:
    """The settings a text gives a literal value ("contextIsolation: true", "DEBUG=False"),
    lower-cased: the same names with the values traded ("contextIsolation: false and
    nodeIntegration: true") hold the same words, so no word rule sees the swap."""
    return frozenset((m.group(1).lower(), m.group(2).lower()) for m in _SETTING_RE.finditer(text))


def _quoted(text: str) -> frozenset[str]:
    """The quoted spans of a text, compared literally: a quoted word is mentioned, not used, so
    no synonym stands in for it ("'affect'" / "'effect'", "'a is b'" / "'a == b'")."""
    return frozenset(" ".join(m.group(1).lower().split()) for m in _QUOTED_RE.finditer(text))


def _words(tokens: list[str]) -> list[str]:
    """The content words the difference rule compares: hyphenated words split ("soft-boiled"
    reads as "soft" + "boiled", so the attribute is compared, not the compound), function words,
    numbers (the ``numbers`` rule) and symbols dropped."""
    out: list[str] = []
    for i, tok in enumerate(tokens):
        if tok in WAY_ADJECTIVES and i + 1 < len(tokens) and tokens[i + 1] in ("way", "ways"):
            continue
        if tok in ROMAN:
            continue
        # A one-letter piece is a prefix of its word, kept whole: "e-bike" is not a "bike".
        split = "-" in tok and not tok.startswith("-") and all(len(p) > 1 for p in tok.split("-") if p)
        for part in tok.split("-") if split else (tok,):
            part = part.strip("'’.")
            if (len(part) < 2 or not part[0].isalpha() or part in FUNCTION
                    or (part in NUMBER_WORDS and part not in WEAK_NUMBER_WORDS)):
                continue
            out.append(part)
    return out



def _tense(tokens: list[str]) -> set[str]:
    """The times ``tokens``' auxiliaries and verbs name: "was" past, "is" present, "will" or
    "going to" before a verb future; "used to", a past form after a subject ("we got married",
    "I filed") or a participle after "have" ("my visa has expired") past."""
    out = {t for t, markers in TENSE_MARKERS.items() if markers.intersection(tokens)}
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        after = tokens[i + 2] if i + 2 < len(tokens) else ""
        if tok in FUTURE_LEADS and nxt == "to" and after[:1].isalpha() and after not in NOUN_PHRASE_OPENERS:
            out.add("future")
        elif tok == "used" and nxt == "to":
            out.add("past")
        elif tok in SUBJECTS | PERFECT and not (i and tokens[i - 1] in INVERTING | {"am"}):
            # The verb after a subject or "have", past an adverb of time ("I've already filed");
            # not after an inverted auxiliary: "am I allowed", "have you tried" ask, they do not
            # tell what happened.
            j = i + 1
            while j < len(tokens) and tokens[j] in TIME_ADVERBS:
                j += 1
            verb = tokens[j] if j < len(tokens) else ""
            if verb == "been" and j + 1 < len(tokens) and tokens[j + 1].endswith("ing"):
                continue  # "have been losing weight" goes on now
            if verb in IRREGULAR_PAST or (verb.endswith("ed") and len(verb) > 4 and verb not in FUNCTION):
                out.add("past")
    return out


def _modality(tokens: list[str]) -> set[str]:
    """Whether a yes/no question asks if one must ("do I have to", "is it required") or if one
    may ("can I", "am I allowed"); nothing for other texts."""
    if not tokens or tokens[0] not in INVERTING | {"am"}:
        return set()
    out = set()
    if OBLIGATION.intersection(tokens) or any(
        t in OBLIGATION_LEADS and n == "to" for t, n in zip(tokens, tokens[1:])
    ):
        out.add("obligation")
    if PERMISSION.intersection(tokens):
        out.add("permission")
    return out


def _numbers(tokens: list[str]) -> set[str]:
    out: set[str] = set()
    for i, tok in enumerate(tokens):
        if tok in ROMAN:
            out.add(ROMAN[tok])
        elif len(tok) == 1 and tok.isalpha() and tok not in "ai" and i and tokens[i - 1] in SERIES:
            # A letter naming one of a series, like a number: "Class G" / "Class D" airspace,
            # "vitamin D" / "vitamin C", "Medicare Part B" ("a" and "i" are words too: "Plan A"
            # against "Plan B" still differs by the B).
            out.add("#" + tok)
        elif tok[0].isdigit():
            n = tok.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", tok) else tok
            n = re.sub(r"^(\d+)k$", lambda m: str(int(m.group(1)) * 1000), n)
            n = re.sub(r"^(\d{1,2}):00$", r"\1", n)  # on the hour: "6:00 am" is "6am"
            out.add(n)
        elif tok in NUMBER_WORDS:
            if tok in MAGNITUDES:
                # "5 thousand" is a number; "thousands of files" is only "many".
                prev = tokens[i - 1] if i else ""
                if not (prev[:1].isdigit() or prev in NUMBER_WORDS):
                    continue
            if tok in WEAK_NUMBER_WORDS:
                nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
                # "one hour", "half a cup" are quantities; "one of", "the first time" are not.
                # "the second biggest", "the second most spoken": an ordinal on a scale.
                ranked = tok == "second" and (nxt in ("most", "least") or (len(nxt) > 5 and nxt.endswith("est")))
                if not (ranked or nxt in UNIT_OF or (tok in ("half", "quarter", "double") and nxt in ("a", "an"))):
                    continue
            out.add(NUMBER_WORDS[tok])
        elif "-" in tok and (count := tok.split("-", 1)[0]) in NUMBER_WORDS:
            # A count inside a compound ("one-handed" / "two-handed", "three-phase"): the word
            # embedding puts such compounds side by side, but the count is the attribute asked
            # about. Ordinals and halves make idioms instead ("second-hand", "half-baked").
            if count not in WEAK_NUMBER_WORDS or count == "one":
                out.add(NUMBER_WORDS[count])
    return out


# A minus sign: a hyphen or dash right before a number that does not follow a word or number
# ("-20°C", "(-3, 4)"; not "10-20" or "x-1").
NEGATIVE_RE = re.compile(r"(?<![\w.\-−–])[-−–](\d[\d,]*(?:\.\d+)?)")
UNSIGNED_RE = re.compile(r"(?<![\d.,\-−–])\d[\d,]*(?:\.\d+)?")


def _signed(numbers: set[str], text: str) -> set[str]:
    """``numbers`` with those written after a minus sign negative: "-20°C" is not "20°C". The
    tokens drop the sign."""
    negative = {m.group(1).replace(",", "") for m in NEGATIVE_RE.finditer(text)} & numbers
    if not negative:
        return numbers
    unsigned = {m.replace(",", "") for m in UNSIGNED_RE.findall(text)}
    return (numbers - (negative - unsigned)) | {"-" + n for n in negative}


def _units(tokens: list[str]) -> set[str]:
    out: set[str] = set()
    for i, tok in enumerate(tokens):
        # "an 8-year-old" reads "8", "year-old": the unit opens the hyphenated word, as in "8
        # year old"; "a three-year-old" holds its number too.
        head = tok if tok in UNIT_OF or "-" not in tok else tok.split("-", 1)[0]
        pieces = tok.split("-")
        if len(pieces) > 1 and pieces[0] in NUMBER_WORDS and pieces[1] in UNIT_OF:
            out.add(UNIT_OF[pieces[1]])  # "a three-year-old", as "a 3-year-old"
            continue
        unit = UNIT_OF.get(head)
        if unit is None:
            continue
        if head in NUMERIC_ONLY_UNITS:
            prev = tokens[i - 1] if i else ""
            quantity = prev in QUANTITY_WORDS and unit in TIME_UNITS
            if not (prev[:1].isdigit() or prev in NUMBER_WORDS or quantity):
                continue
        out.add(unit)
    return out


def _entities(text: str, tokens: list[str]) -> set[str]:
    """Capitalised words not at a sentence start, acronyms, code names, and gazetteer names."""
    out: set[str] = set()
    norm = normalize(text)
    for m in re.finditer(r"[A-Za-z][A-Za-z0-9.+#'-]*", norm):
        # A possessive is its name: "Microsoft's extension" names Microsoft.
        word = re.sub(r"'s$", "", m.group(0).rstrip(".'-"))
        start = m.start()
        before = norm[:start].rstrip()
        sentence_start = not before or before[-1] in ".?!:\n\"'(" or before.endswith("- ")
        if word[0].isupper() and (not sentence_start or sum(c.isupper() for c in word) > 1):
            low = word.lower()
            # "I'm", "We've": a function word with a contraction is still a function word.
            if low not in STOP and low.split("'")[0] not in STOP and low not in NUMBER_WORDS and low not in NOT_ENTITIES and len(word) > 1:
                out.add(word.lower())
    for m in CODE_RE.finditer(norm):
        out.add(m.group(0).strip("`").lower())
    for tok in tokens:
        if tok in GAZETTEER:
            out.add(tok)
    return out



def _answer_type(low: str) -> str:
    """What kind of answer a question asks for: a quantity, a time, a place, a reason, a person,
    yes/no, or "" (open: what/how/which/requests, which paraphrase into each other freely)."""
    for name, pattern in ANSWER_TYPES:
        if pattern.search(low):
            return name
    return "yes/no" if YES_NO.match(low) else ""


def _written_in(tokens: list[str]) -> str:
    if any(re.match(r"[\u0400-\u04ff]", t) for t in tokens):
        return "ru"
    if any(re.match(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af\u0600-\u06ff]", t) for t in tokens):
        return "cjk-ar"
    scores = {lang: sum(t in words for t in tokens) for lang, words in LANG_STOP.items()}
    best = max(scores, key=lambda k: scores[k])
    # Only claim a language with some evidence; short texts stay undecided.
    if scores[best] >= 2 and scores[best] >= 2 * max(v for k, v in scores.items() if k != best):
        return best
    return "?"


@lru_cache(maxsize=8192)
def features_of(text: str) -> Features:
    # "not only X but also Y" affirms both; "1)" "2)" enumerate, they are not quantities.
    text = re.sub(r"\bnot only\b", "", text, flags=re.IGNORECASE)
    text = re.sub(r"(?:(?<=\s)|^)\d{1,2}\)", " ", text)
    tokens = _tokens(text)
    low = " ".join(tokens)
    squashed = re.sub(r"[^a-z0-9+#]", "", low)
    dates = {t for t in tokens if t in DATE_WORDS}
    # "may" and "march" are months only next to a number ("May 5", "March 2020").
    for i, t in enumerate(tokens):
        if t in ("may", "march") and (
            (i + 1 < len(tokens) and tokens[i + 1][:1].isdigit())
            or (i and tokens[i - 1][:1].isdigit())
        ):
            dates.add(t)
    dates |= {m.group(0) for m in RELATIVE_PERIOD.finditer(low)}
    # "caffeine-free", "gluten-free": a suffix that means "without", like a negating prefix.
    # A negation inside a hyphenated word counts too ("a not-at-fault claim").
    neg_tokens = [
        t for t in tokens
        if t in NEGATIONS or re.fullmatch(r"[a-z]{3,}-free", t) or ("-" in t and NEGATIONS.intersection(t.split("-")))
    ]
    # A leading "No," / "Yes," answers a question; it does not negate the statement.
    if re.match(r"\s*no\s*[,.!]", normalize(text).lower()) and neg_tokens:
        neg_tokens = neg_tokens[1:]
    question = "?" in text or bool(re.match(rf"\s*(?:{WH}|{REQUEST_VERBS})\b", low))
    formats = {STRONG_FORMATS[t] for t in tokens if t in STRONG_FORMATS}
    formats |= {"tone:" + TONES[t] for t in tokens if t in TONES}
    length = set()
    # Ordinary nouns ("table", "list", "code") and length words are a requested format only in
    # a request; in a statement they are its subject ("the Table class").
    if question:
        formats |= {
            WEAK_FORMATS[m.group(1)]
            for m in WEAK_FORMAT_RE.finditer(low)
            if m.group(1) in WEAK_FORMATS
        }
        for m in LENGTH_RE.finditer(low):
            word = m.group(1) or m.group(3)
            length.add("short" if word in SHORT else "long")
    # A language asked for ("in French", "translate to Spanish"); programming languages and
    # platforms are entities and go through the entity rule instead.
    languages = {t for t in tokens if t in LANGUAGES}
    parts = 1
    if question:
        parts = max(1, text.count("?")) + len(COMPOUND_RE.findall(low))
    answer_type = _answer_type(low) if question else ""
    content = tuple(stem(t) for t in tokens if t not in STOP and len(t) > 1 or t[:1].isdigit())
    return Features(
        tokens=tuple(tokens),
        low=low,
        squashed=squashed,
        numbers=frozenset(_signed(_numbers(tokens), normalize(text))),
        units=frozenset(_units(tokens)),
        dates=frozenset(dates),
        negations=len(neg_tokens),
        avoids=sum(t in ASKED_NEGATIONS for t in tokens),
        entities=frozenset(_entities(text, tokens)),
        formats=frozenset(formats),
        length=frozenset(length),
        languages=frozenset(languages),
        written_in=_written_in(tokens),
        parts=parts,
        answer_type=answer_type,
        content=content,
        words=tuple(_words(tokens)),
        quoted=_quoted(normalize(text)),
        code=_code(normalize(text)),
        symbols=_symbols(normalize(text)),
        signed=_signed_words(normalize(text)),
        acronyms=_acronyms(text),
        letters=_letters(normalize(text)),
        settings=_settings(text),
        formulas=_formulas(normalize(text)),
        tense=frozenset(_tense(tokens)),
        modality=frozenset(_modality(tokens)),
        # A question typed without its "?" after a sentence of background ("my braces came off
        # last month. how long do i need to wear it"), or after a phrase ("in c++ how should i
        # pass a string"), asks too.
        asks=question or bool(tokens and tokens[0] in REQUEST_KINDS) or bool(re.search(rf"[.;:!]\s+{WH}\b", normalize(text).lower()))
        or bool(re.search(r"\b(?:how|what|why|where)\s+(?:do|does|did|can|could|should|would|will|is|are|am)\b", low)),
    )

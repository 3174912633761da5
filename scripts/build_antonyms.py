"""Write the verifier's antonym table from WordNet 3.0 (``optimizer/semantic/data/antonyms.tsv``).

    apt-get install wordnet-base && python scripts/build_antonyms.py

WordNet's database files (``wndb(5)``) come from Debian's ``wordnet-base`` package, the only
offline copy this project can install: no maintained PyPI package ships them, and ``nltk`` reads
its own download layout, not Debian's. The format is a documented fixed layout, so reading the
antonym pointers (``!``) takes a few lines. The table is committed; the server never needs
WordNet itself. ``tests/test_antonyms.py`` checks that the committed table is this script's output.

Kept: lexical antonyms of adjectives, verbs and adverbs, one word on each side ("cheap" /
"expensive", "buy" / "sell", "slowly" / "quickly"), of nouns for people (the two parties of a
relation: "lender" / "borrower", "husband" / "wife", "plaintiff" / "defendant"), and the
irregular forms of those words (``*.exc``: "worse" -> "bad", "sold" -> "sell"). Other nouns are
left out: their antonym pointers pair words a paraphrase trades freely ("question" / "answer").
An adjective's synonyms and satellites take its antonyms too, both ways (WordNet's "indirect
antonyms": "temporary" and "transient" against "permanent", through "impermanent").
"""

from __future__ import annotations

import argparse
from pathlib import Path

WORDNET = Path("/usr/share/wordnet")
OUT = Path(__file__).resolve().parent.parent / "optimizer" / "semantic" / "data" / "antonyms.tsv"
PARTS = ("adj", "verb", "adv", "noun")
PEOPLE = 18
"""The lexicographer file ``noun.person``: the only nouns whose antonyms are kept."""

NOTICE = """\
# Antonyms and irregular forms from WordNet 3.0, written by scripts/build_antonyms.py.
# Lines: "=<TAB>form<TAB>base" (an irregular form) or "word<TAB>antonym<TAB>antonym...".
#
# WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.
# THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO
# REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED.  BY WAY OF EXAMPLE, BUT NOT LIMITATION,
# PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANTABILITY OR FITNESS FOR
# ANY PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION
# WILL NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR OTHER RIGHTS.
# The name of Princeton University or Princeton may not be used in advertising or publicity
# pertaining to distribution of the software and/or database.  Title to copyright in this
# software, database and any associated documentation shall at all times remain with Princeton
# University and LICENSEE agrees to preserve same.
"""


def _single(word: str) -> str | None:
    """The lemma as a plain lower-case word ("close(a)" -> "close"), or None for a phrase."""
    word = word.split("(")[0].lower()
    return word if word.isalpha() else None


def antonyms(root: Path, part: str) -> dict[str, set[str]]:
    """word -> antonyms, from the ``!`` pointers of ``data.<part>``.

    A data line is: offset, lexicographer file, synset type, word count (hex), that many
    (word, lex id) pairs, pointer count, then pointers of four fields each: symbol, target
    offset, part of speech, and source/target word numbers (two hex bytes; 0 for a synset)."""
    synsets: dict[str, list[str]] = {}
    people: set[str] = set()
    pointers: list[tuple[str, int, str, int]] = []
    heads: dict[str, str] = {}  # an adjective satellite's synset -> its head's
    with open(root / f"data.{part}", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("  "):  # the licence header
                continue
            fields = line.split(" | ")[0].split()
            offset, count = fields[0], int(fields[3], 16)
            if int(fields[1]) == PEOPLE:
                people.add(offset)
            synsets[offset] = [fields[4 + 2 * i] for i in range(count)]
            i = 4 + 2 * count
            for _ in range(int(fields[i])):
                symbol, target, _pos, st = fields[i + 1 : i + 5]
                if symbol == "!":
                    pointers.append((offset, int(st[:2], 16), target, int(st[2:], 16)))
                elif symbol == "&" and fields[2] == "s":
                    heads[offset] = target
                i += 4
    out: dict[str, set[str]] = {}
    for offset, source, target, goal in pointers:
        if part == "noun" and offset not in people:
            continue
        a, b = _single(synsets[offset][source - 1]), _single(synsets[target][goal - 1])
        if a and b and a != b:
            out.setdefault(a, set()).add(b)
    # An adjective's synonyms and satellites are opposed to its antonym too (WordNet's
    # "indirect antonyms"): "temporary" shares a synset with "impermanent", whose antonym is
    # "permanent"; "transient" is one of its satellites.
    satellites: dict[str, list[str]] = {}
    for satellite, head in heads.items():
        satellites.setdefault(head, []).append(satellite)
    for offset, source, target, goal in pointers:
        if part != "adj":
            continue
        b = _single(synsets[target][goal - 1])
        for synset in (offset, *satellites.get(offset, ())):
            for word in synsets[synset]:
                a = _single(word)
                if a and b and a != b:
                    out.setdefault(a, set()).add(b)
                    out.setdefault(b, set()).add(a)
    return out


def irregular_forms(root: Path, part: str, words: set[str]) -> dict[str, str]:
    """form -> base, from ``<part>.exc``, for the bases in ``words``."""
    out: dict[str, str] = {}
    with open(root / f"{part}.exc", encoding="latin-1") as fh:
        for line in fh:
            form, *bases = line.split()
            for base in bases:
                if base in words and form.isalpha() and form != base:
                    out.setdefault(form, base)
    return out


def table(root: Path = WORDNET) -> str:
    """The text of ``antonyms.tsv``."""
    pairs: dict[str, set[str]] = {}
    for part in PARTS:
        for word, others in antonyms(root, part).items():
            pairs.setdefault(word, set()).update(others)
    forms: dict[str, str] = {}
    for part in PARTS:
        for form, base in irregular_forms(root, part, set(pairs)).items():
            forms.setdefault(form, base)
    lines = [f"=\t{form}\t{base}" for form, base in sorted(forms.items())]
    lines += ["\t".join([word, *sorted(others)]) for word, others in sorted(pairs.items())]
    return NOTICE + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet", type=Path, default=WORDNET, help="folder of WordNet's data.* files")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.write_text(table(args.wordnet), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""The verifier's antonym table is WordNet's, as ``scripts/build_antonyms.py`` writes it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from optimizer.semantic.verifier_lexicon import ANTONYM_FORMS, ANTONYMS

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "build_antonyms.py"


def _build_module():
    spec = importlib.util.spec_from_file_location("build_antonyms", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_table_is_the_scripts_output() -> None:
    build = _build_module()
    if not (build.WORDNET / "data.adj").exists():
        # .ci/run installs Debian's wordnet-base, so this runs in CI.
        pytest.skip("WordNet is not installed here (apt-get install wordnet-base)")
    assert (ROOT / "optimizer" / "semantic" / "data" / "antonyms.tsv").read_text(encoding="utf-8") == build.table()


def test_the_table_holds_antonyms_both_ways_and_irregular_forms() -> None:
    assert "expensive" in ANTONYMS["cheap"] and "cheap" in ANTONYMS["expensive"]
    assert "sell" in ANTONYMS["buy"] and "borrower" in ANTONYMS["lender"]
    assert ANTONYM_FORMS["sold"] == "sell" and ANTONYM_FORMS["worse"] == "bad"
    # Nouns that are not people are left out ("question" / "answer" trade freely).
    assert "question" not in ANTONYMS and "answer" not in ANTONYMS


def test_an_adjectives_synonyms_and_satellites_share_its_antonyms() -> None:
    # "temporary" shares a synset with "impermanent"; "transient" is one of its satellites.
    assert "permanent" in ANTONYMS["temporary"] and "temporary" in ANTONYMS["permanent"]
    assert "permanent" in ANTONYMS["transient"]
    # Only adjectives: a verb's synonyms do not take its antonyms.
    assert "sell" not in ANTONYMS.get("purchase", ())

"""The grader (issue 18): one scorer, a careful grader's rules, the same verdict everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.check.run import matcher_for
from core.datasets import load_dataset
from core.probe import ProbeSettings, _prepare
from core.scoring import Scorer, is_correct, normalize_answer, scorer_for
from core.train.data import TrainItem, dev_matcher, fit_matcher, with_grading

PARIS = Scorer("key", ["Paris"], "What is the capital of France?")


@pytest.mark.parametrize(
    "answer, right, why",
    [
        ("Paris", True, "stated"),
        ("The capital of France is Paris.", True, "stated"),
        ("It is Paris, not Lyon.", True, "stated"),
        ("Not Paris, it is Lyon.", False, "negated"),
        ("It isn't Paris.", False, "negated"),
        ("Paris is not the capital; Lyon is.", False, "negated"),
        ("Either Lyon or Paris.", False, "candidate"),
        ("Maybe Paris?", False, "hedged"),
        ("I think it's Paris.", False, "hedged"),
        ("Paris Hilton", False, "longer name"),
        ("I don't know.", False, "does not know"),
        ("", False, "empty"),
        ("Lyon", False, "no key"),
    ],
)
def test_key_rules_read_negations_hedges_and_longer_names(answer, right, why):
    v = PARIS(answer)
    assert v.right is right and why in v.reason


def test_names_made_of_common_words_keep_their_sense():
    doors = Scorer("key", ["The Doors"], "Which band was fronted by Jim Morrison?")
    assert doors("The Doors.") and doors("It was The Doors.") and doors("the doors")
    assert not doors("Open the doors.")
    take = Scorer("key", ["Take That"], "Which boy band did Gary Barlow start out in?")
    assert take("Take That") and not take("I would take that one.")
    assert not Scorer("key", ["Virginia"], "Which state has Richmond as its capital?")("West Virginia")
    assert Scorer("key", ["George Washington"], "Who was the first US president?")("President George Washington")
    assert not Scorer("key", ["Hepatitis"], "What is inflammation of the liver?")("Hepatitis A")
    assert Scorer("exact", ["The The"])("The The") and not Scorer("exact", ["The The"])("The")


def test_a_name_made_of_common_words_must_stand_as_that_name():
    """A place, an interjection or an ordinary word is not the band or the book of that name."""
    europe = Scorer("key", ["Europe"], "Which Swedish band recorded 'The Final Countdown'?")
    assert europe("Europe") and europe("The band Europe.") and not europe("It was recorded in Europe.")
    air = Scorer("key", ["Air"], "Which French duo released 'Moon Safari'?")
    assert air("Air") and not air("Daft Punk, their music fills the air.")
    yes = Scorer("key", ["Yes"], "Which band recorded 'Roundabout'?")
    assert yes("The band was Yes.") and not yes("Yes, that was King Crimson.")
    it = Scorer("key", ["It"], "Which Stephen King novel features Pennywise?")
    assert it("It") and not it("It's 'Carrie'.")
    # a person's name after a place word is another name
    assert not Scorer("key", ["William McKinley", "McKinley"], "Who was the 25th US president?")("Mount McKinley")


def test_another_name_given_as_the_answer_is_wrong_even_beside_the_key():
    volga = Scorer("key", ["Volga"], "What is the longest river in Europe?")
    assert not volga("The longest river in Europe is the Danube; the Volga is shorter.")
    assert volga("The longest river in Europe is the Volga, which flows into the Caspian Sea.")
    jenner = Scorer("key", ["Edward Jenner"], "Who developed the smallpox vaccine?")
    assert not jenner("It was developed by Louis Pasteur, building on the ideas of Edward Jenner.")
    assert jenner("The smallpox vaccine was developed by Edward Jenner in 1796.")


def test_refusals_are_decided_wrong_without_asking_a_judge():
    for answer in ("idk", "I can't remember the name.", "No clue, sorry.", "I don't have that information."):
        v = PARIS(answer)
        assert not v.right and v.decided and "does not know" in v.reason, answer


def test_numbers_and_dates_compare_as_values():
    assert is_correct("12,000", ["12000"]) and is_correct("12 000", ["12,000"]) and is_correct("three", ["3"])
    assert not is_correct("2.5", ["25"]) and not is_correct("25", ["2.5"])
    tall = Scorer("key", ["1,000 metres"], "How tall is the tower in metres?")
    assert tall("1000") and tall("It is 1,000 metres tall.") and not tall("1000 feet") and not tall("100")
    date = Scorer("key", ["15 April 1912"], "On what date did the Titanic sink?")
    assert date("April 15, 1912") and date("1912-04-15") and not date("1912") and not date("16 April 1912")
    year = Scorer("key", ["April 15, 1912"], "In what year did the Titanic sink?")
    assert year("1912") and not year("1913")


def test_form_does_not_matter():
    assert is_correct("Sergey Brin and Larry Page", ["Larry Page and Sergey Brin"])
    assert is_correct("Antoine de Saint Exupery", ["Antoine de Saint-Exupéry"])
    assert is_correct("Ay Carmela", ["¡Ay, Carmela!"]) and is_correct("JRR Tolkien", ["J. R. R. Tolkien"])
    assert Scorer("key", ["Lisbon"], "What is the capital of Portugal?")("Lisbon's the capital.")
    assert normalize_answer("The The") == "the the" and normalize_answer("A") == "a"  # never emptied


def test_keys_are_the_answer_not_the_sentence(tmp_path: Path):
    rows = [
        {"question": "What year did the Titanic sink?", "answer": "The Titanic sank in 1912."},
        {"question": "How tall is Mount Everest in metres?", "answer": "Mount Everest is 8,849 metres tall."},
        {"question": "Which band recorded My Generation?", "answer": "The Who recorded My Generation."},
        {"question": "What is the capital of Australia?", "answer": "Sure! The capital of Australia is Canberra."},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    keys = [ex.keys for ex in load_dataset(path).examples]
    assert keys == [("1912",), ("8,849 metres",), ("The Who",), ("Canberra",)]


def test_early_stopping_the_probe_and_the_check_give_one_verdict_on_sentence_answers(tmp_path: Path):
    """The same answer gets the same verdict from the probe's scorer, early stopping's dev score
    (a plan item graded as its probe was) and the check."""
    rows = [
        {"question": "What is the capital of France?", "answer": "Paris is the capital of France."},
        {"question": "Who wrote The Hobbit?", "answer": "It was written by J. R. R. Tolkien."},
        {"question": "What year did the Titanic sink?", "answer": "The Titanic sank in 1912."},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples = {ex.id: ex for ex in load_dataset(path).examples}
    answers = [
        "Paris",
        "It's Paris.",
        "Not Paris, it is Lyon.",
        "Maybe Paris?",
        "Tolkien wrote it.",
        "J.R.R. Tolkien",
        "George Eliot",
        "1912",
        "It sank in 1913.",
        "The Titanic.",
    ]
    settings = ProbeSettings()
    for ex in examples.values():
        item = with_grading(
            [TrainItem(ex.id, ex.question, ex.answers[0], tuple(ex.answers), "HighlyKnown", "g")], examples, settings.match
        )[0]
        probe = _prepare(ex, [[]], {}, settings).matcher
        check = matcher_for(ex, settings)
        for a in answers:
            verdict = scorer_for(ex, "auto")(a).right
            assert probe(a).right == dev_matcher(item)(a) == check(a) == fit_matcher(item)(a) == verdict, (ex.question, a)
    # and the verdicts are a grader's, not exact match on the sentence
    paris = next(ex for ex in examples.values() if "France" in ex.question)
    assert dev_matcher(
        with_grading([TrainItem(paris.id, paris.question, paris.answers[0], paris.answers, "", "")], examples, "auto")[0]
    )("It's Paris.")


def test_a_country_named_by_its_common_name_or_acronym_is_right():
    usa = Scorer("key", ["United States of America"], "Which country is Clay Township located in?")
    assert usa("It is located in the United States.") and usa("USA") and usa("It's in the U.S.")
    assert not usa("Let us think: Canada.")  # "us" the pronoun is not the US
    assert not usa("It is in South America.") and not usa("Not the US, it's in Canada.")
    assert is_correct("the United States", ["United States of America"]) and is_correct("Burma", ["Myanmar"])
    assert not is_correct("us", ["United States of America"]) and not is_correct("China", ["Taiwan"])
    assert Scorer("key", ["United Kingdom"])("Britain, I'm certain.") and not Scorer("key", ["Ireland"])("Northern Ireland")
    # the probe's early stop knows the other names too: "US" is not cut off for "United States of America"
    from core.scoring import PrefixPruner

    assert not PrefixPruner(["United States of America"])("US") and not PrefixPruner(["Myanmar"])("Bur")


def test_the_scoring_benchmark_dev_cases_stay_graded_as_a_careful_grader_would():
    """A regression guard on the hand-written dev cases (bench/scoring_bench.py prints the classes)."""
    from bench.scoring_bench import graders, load_cases

    cases = load_cases("dev")
    grade = graders(with_old=False)["key"]
    wrong_right = sum(1 for c in cases if not c["right"] and grade(c)[0])
    right = sum(grade(c)[0] == c["right"] for c in cases)
    assert right / len(cases) >= 0.95
    assert wrong_right / sum(not c["right"] for c in cases) <= 0.03


def test_the_exact_pruner_never_stops_an_answer_the_scorer_would_accept():
    """Sampling stops early only where no continuation can be right, under the new folding too:
    initials that merge, hyphens, accents, numbers and conjunctions in any order."""
    import random

    from core.scoring import PrefixPruner

    aliases = ["J. R. R. Tolkien", "Saint-Exupéry", "1,000 metres", "Larry Page and Sergey Brin", "The Doors"]
    pruner, scorer = PrefixPruner(aliases), Scorer("exact", aliases)
    pieces = ["J", ".", " R", "R", " Tolkien", "Saint", "-", "Exup", "éry", "ery", " ", "1", ",000", "000", " metres"]
    pieces += ["Sergey", " Brin", " and", " Larry", " Page", "The", " Doors", "Lyon", "x"]
    rng = random.Random(4)
    accepted = 0
    for _ in range(4000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        if scorer(text).right:
            accepted += 1
            for cut in range(len(text) + 1):
                assert not pruner(text[:cut]), (text, text[:cut])
    assert accepted > 20
    assert PrefixPruner(["Paris"])("Lyon ") and not PrefixPruner(["Paris"])("Par")

"""Real team data (issue 11): sentence answers, chats with system turns and follow-ups, tasks,
code and long answers. Every row loads and is accounted for; probed rows carry an answer key."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from core.datasets import extract_key, load_dataset, read_preview
from core.datasets.keys import is_entity_shaped
from core.paths import sample_dataset
from core.scoring import normalize_answer

DATA = Path(__file__).parent / "data"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def paraphrases() -> list[dict]:
    """EntityQuestions dev facts (capital-of, country-of, birthplace, author, spouse, founder) with
    five sentence answers each, in three sets of wording (A, B and C; see the file)."""
    return [json.loads(line) for line in (DATA / "key_paraphrases.jsonl").read_text(encoding="utf-8").splitlines()]


def hits(question: str, golds: list[str], answer: str) -> bool:
    key = extract_key(question, answer)
    return key is not None and normalize_answer(key) in {normalize_answer(g) for g in golds}


# ----------------------------------------------------------------------------- answer keys


@pytest.mark.parametrize(
    "question, answer, key",
    [
        ("What is the capital of Marin County?", "San Rafael", "San Rafael"),
        ("What is the capital of Marin County?", "It's San Rafael.", "San Rafael"),
        ("What is the capital of Marin County?", "San Rafael is the capital of Marin County.", "San Rafael"),
        ("What is the capital of Marin County?", "The capital of Marin County is San Rafael.", "San Rafael"),
        ("What is the capital of Marin County?", "San Rafael is Marin County's capital.", "San Rafael"),
        (
            "What is the capital of Samos?",
            "Samos's capital is Vathy, which is also its largest administrative centre.",
            "Vathy",
        ),
        ("Which country is Lake Tahoe located in?", "Lake Tahoe is in the United States.", "United States"),
        ("Where was Ada Lovelace born?", "She was born in London.", "London"),
        ("Who founded Acme Corp?", "Acme Corp was founded by John Smith in 1920.", "John Smith"),
        ("When was Acme Corp founded?", "Acme Corp was founded in 1987.", "1987"),
        (
            "What is the capital of Gmina Lipnik?",
            "The capital of Gmina Lipnik is Lipnik, Opatów County.",
            "Lipnik, Opatów County",
        ),
        ("What is the capital of Grand Forks County?", "Grand Forks is the capital of Grand Forks County.", "Grand Forks"),
        (
            "What is the capital of arrondissement of Pontivy?",
            "Pontivy is the capital of the arrondissement of Pontivy.",
            "Pontivy",
        ),
        ("What is the largest mammal?", "The blue whale is the largest mammal.", "blue whale"),
        ("What do bees make?", "Bees make honey.", "honey"),
        ("Where was Bill Goodwin born?", "In Los Angeles.", "Los Angeles"),
        ("Who is the author of Luther?", "John Osborne, I believe.", "John Osborne"),
        ("What is the capital of Onawa County?", "Capital: Onawa.", "Onawa"),
    ],
)
def test_answer_key_from_sentence_answers(question: str, answer: str, key: str) -> None:
    assert extract_key(question, answer) == key


@pytest.mark.parametrize("wording", ["A", "B", "C"])
def test_extracted_keys_match_the_gold_entity_on_paraphrased_entityquestions_facts(wording: str) -> None:
    facts = [f for f in paraphrases() if f["set"] == wording]
    checked = [(f["question"], f["answers"], p) for f in facts for p in f["paraphrases"]]
    missed = [(q, p, extract_key(q, p)) for q, g, p in checked if not hits(q, g, p)]
    assert len(facts) == 40 and len(checked) == 200
    assert len(missed) <= 0.05 * len(checked), missed


def test_entity_answers_are_their_own_key() -> None:
    ds = load_dataset(sample_dataset())
    assert not ds.unprobed
    assert all(ex.key_source == "answer" and ex.keys == () and ex.entity_shaped for ex in ds.examples)
    for name in ("San Rafael", "Lipnik, Opatów County", "1987", "Ferdinand II of Aragon", "Carlos the Jackal", "blue whale"):
        assert is_entity_shaped(name), name
    for sentence in ("It's San Rafael.", "Written by Tom Robbins.", "Houston, I believe.", "Aaviku belongs to Estonia."):
        assert not is_entity_shaped(sentence), sentence


def test_sentence_answer_file_is_probed_with_extracted_keys(tmp_path: Path) -> None:
    facts = [f for f in paraphrases() if f["set"] == "B"]
    rows = [{"question": f["question"], "answer": f["paraphrases"][0], "gold": f["answers"]} for f in facts]
    ds = load_dataset(write_jsonl(tmp_path / "sentences.jsonl", rows))
    assert len(ds.examples) == 40 and not ds.unprobed
    assert {ex.key_source for ex in ds.examples} == {"extracted"}
    right = sum(normalize_answer(ex.keys[0]) in {normalize_answer(g) for g in ex.raw["gold"]} for ex in ds.examples if ex.keys)
    assert right >= 38
    assert all(ex.answer_keys == ex.keys for ex in ds.examples)


def test_key_column_wins_and_holds_aliases(tmp_path: Path) -> None:
    p = tmp_path / "keys.csv"
    with p.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer", "fact"])
        w.writerow(
            ["What is the capital of Samos?", "Samos's capital is Vathy, which is also its largest town.", "Vathy|Samos town"]
        )
        w.writerow(["Who wrote Dune?", "Frank Herbert wrote it in 1965, after six years of research.", "Frank Herbert"])
        w.writerow(["Where is Lake Tahoe?", "It is in the United States.", ""])
    ds = load_dataset(p, mapping={"key": "fact"})
    by_q = {ex.question: ex for ex in ds.examples}
    assert by_q["What is the capital of Samos?"].keys == ("Vathy", "Samos town")
    assert by_q["What is the capital of Samos?"].key_source == "column"
    assert by_q["Who wrote Dune?"].keys == ("Frank Herbert",)
    # an empty key cell: the key is extracted as without the column
    assert (by_q["Where is Lake Tahoe?"].keys, by_q["Where is Lake Tahoe?"].key_source) == (("United States",), "extracted")


def test_edited_key_reaches_the_example_and_can_probe_a_long_answer(tmp_path: Path) -> None:
    long_answer = " ".join(["Vathy is the capital and the main port, with a long history of trade."] * 4)
    rows = [
        {"question": "What is the capital of Samos?", "answer": long_answer},
        {"question": "Where was Ada Lovelace born?", "answer": "She was born in London."},
    ]
    p = write_jsonl(tmp_path / "edit.jsonl", rows)
    ds = load_dataset(p)
    assert [(e.line, e.reason) for e in ds.unprobed] == [(1, "long-form")]
    assert ds.examples[0].keys == ("London",)
    edited = load_dataset(p, key_overrides={1: "Vathy", 2: "London, England"})
    assert not edited.unprobed
    assert [(e.line, e.keys, e.key_source) for e in edited.examples] == [
        (1, ("Vathy",), "edited"),
        (2, ("London, England",), "edited"),
    ]
    assert edited.content_sha256 != ds.content_sha256  # a changed key is a different probe


# ----------------------------------------------------------------------------- chats


def sharegpt_rows() -> list[dict]:
    """Thirty conversations like a team's: a system turn, every third one with a follow-up, two
    without a final reply, one exact repeat."""
    facts = [f for f in paraphrases() if f["set"] == "A"][:27]
    rows: list[dict] = []
    for i, f in enumerate(facts):
        conv = [
            {"from": "system", "value": "You are a concise geography and history assistant."},
            {"from": "human", "value": f["question"]},
            {"from": "gpt", "value": f["paraphrases"][i % 5]},
        ]
        if i % 3 == 2:
            conv += [
                {"from": "human", "value": "Can you tell me more about it?"},
                {"from": "gpt", "value": "Sure, it is a lovely place."},
            ]
        rows.append({"id": f"c{i}", "conversations": conv})
    rows.append({"id": "c27", "conversations": [{"from": "human", "value": "What is the capital of Peru?"}]})
    rows.append(
        {
            "id": "c28",
            "conversations": [{"from": "human", "value": "What is the capital of Chile?"}, {"from": "gpt", "value": ""}],
        }
    )
    rows.append(dict(rows[0], id="c29"))  # same conversation under another id: not a repeat of the id
    return rows


def test_sharegpt_with_system_turns_and_follow_ups_loads_and_accounts_for_every_row(tmp_path: Path) -> None:
    rows = sharegpt_rows()
    ds = load_dataset(write_jsonl(tmp_path / "team_chats.jsonl", rows))  # no --skip-invalid
    assert ds.shape == "sharegpt" and not ds.problems
    assert len(ds.examples) + len(ds.unprobed) + len(ds.duplicates) + ds.problem_count == len(rows)
    assert ds.reason_counts() == {"multi-turn": 9, "no-answer": 2}
    assert len(ds.duplicates) == 1 and ds.duplicates[0] == (30, 1)  # the repeated question merged into row 1
    assert all(ex.system == "You are a concise geography and history assistant." for ex in ds.examples)
    follow_up = next(ex for ex in ds.unprobed if ex.reason == "multi-turn")
    assert follow_up.question == rows[2]["conversations"][1]["value"]  # the first question, shown and written back
    assert follow_up.answers == (rows[2]["conversations"][2]["value"],)
    assert [ex.id for ex in ds.unprobed if ex.reason == "no-answer"] == ["c27", "c28"]
    assert all(ex.status == "not-probed" for ex in ds.unprobed)
    assert {ex.key_source for ex in ds.examples} <= {"extracted", "answer"}
    assert "11 rows kept but not probed (9 multi-turn, 2 no-answer)" in ds.summary_line()


def test_openai_messages_system_turn_is_kept(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "system", "content": "Answer in one sentence."},
                {"role": "user", "content": "Who wrote Dune?"},
                {"role": "assistant", "content": "Dune was written by Frank Herbert."},
            ]
        }
    ]
    (ex,) = load_dataset(write_jsonl(tmp_path / "m.jsonl", rows)).examples
    assert (ex.system, ex.keys, ex.key_source) == ("Answer in one sentence.", ("Frank Herbert",), "extracted")


# ----------------------------------------------------------------------------- tasks, code, long answers


ALPACA = [
    ({"instruction": "Who wrote Hamlet?", "input": "", "output": "William Shakespeare"}, ""),
    ({"instruction": "Name the capital of France.", "input": "", "output": "Paris"}, ""),
    ({"instruction": "How many legs does a spider have?", "input": "", "output": "A spider has eight legs."}, ""),
    (
        {
            "instruction": "Rewrite the sentence in the passive voice.",
            "input": "The cat chased the mouse.",
            "output": "The mouse was chased by the cat.",
        },
        "task",
    ),
    (
        {"instruction": "Summarize the following text.", "input": "KnowMix probes datasets ...", "output": "It probes data."},
        "task",
    ),
    ({"instruction": "Classify the sentiment of this review.", "input": "Loved it!", "output": "positive"}, "task"),
    ({"instruction": "Translate to French: good morning", "input": "", "output": "Bonjour"}, "task"),
    ({"instruction": "Please write a haiku about autumn.", "input": "", "output": "Leaves fall softly down"}, "task"),
    ({"instruction": "Given the list below, sort it alphabetically.", "input": "pear, apple", "output": "apple, pear"}, "task"),
    (
        {"instruction": "Give me 3 ideas for a birthday party.", "input": "", "output": "A picnic, karaoke, a treasure hunt."},
        "task",
    ),
    (
        {"instruction": "Explain how to boil an egg.", "input": "", "output": "Boil water, add the egg, wait nine minutes."},
        "task",
    ),
    ({"instruction": "How do I reverse a list in Python?", "input": "", "output": "```python\nxs.reverse()\n```"}, "task"),
    ({"instruction": "What does this function return?", "input": "", "output": "def f():\n    return 1\n"}, "task"),
    (
        {
            "instruction": "Why is the sky blue?",
            "input": "",
            "output": "Sunlight is scattered by the molecules of the air. Blue light has a shorter wavelength, so it "
            "is scattered more than red light. That scattered blue light reaches our eyes from every direction of the "
            "sky, which is why it looks blue on a clear day.",
        },
        "long-form",
    ),
    (
        {
            "instruction": "What is the meaning of life?",
            "input": "",
            "output": "That depends on whom you ask and on what they value most.",
        },
        "long-form",
    ),
    ({"instruction": "Who painted the Mona Lisa?", "input": "", "output": ""}, "no-answer"),
]


def test_alpaca_tasks_code_and_long_answers_are_kept_with_their_reason(tmp_path: Path) -> None:
    ds = load_dataset(write_jsonl(tmp_path / "alpaca.jsonl", [r for r, _ in ALPACA]))
    got = {ex.line: ex.reason for ex in [*ds.examples, *ds.unprobed]}
    assert got == {i: reason for i, (_, reason) in enumerate(ALPACA, start=1)}
    assert len(ds.examples) + len(ds.unprobed) == len(ALPACA) and not ds.problems
    probed = {ex.question: ex for ex in ds.examples}
    assert probed["Who wrote Hamlet?"].key_source == "answer"
    assert probed["How many legs does a spider have?"].keys == ("eight",)


def test_not_probed_rows_reach_the_project_in_file_order(tmp_path: Path) -> None:
    from core.store import Project

    ds = load_dataset(write_jsonl(tmp_path / "alpaca.jsonl", [r for r, _ in ALPACA]))
    with Project(tmp_path / "p.knowmix", create=True) as p:
        dataset_id = p.add_dataset(ds, role="train")
        everything = p.examples(dataset_id, status=None)
        assert [ex.line for ex in everything] == list(range(1, len(ALPACA) + 1))
        assert len(p.examples(dataset_id)) == len(ds.examples)
        assert sum(p.unprobed_counts(dataset_id).values()) == len(ds.unprobed)
        assert everything[3].raw == ALPACA[3][0]  # written back as it came


# ----------------------------------------------------------------------------- preview


def test_preview_shows_key_source_status_and_reason_and_takes_edits(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "pv.jsonl", [r for r, _ in ALPACA[:4]] + [{"instruction": "", "output": "x"}])
    pv = read_preview(p, 10)
    assert [r["line"] for r in pv.rows] == [1, 2, 3, 4, 5]
    assert [(r["status"], r["reason"]) for r in pv.rows[:4]] == [
        ("probed", ""),
        ("probed", ""),
        ("probed", ""),
        ("not-probed", "task"),
    ]
    assert [(r["key"], r["key_source"]) for r in pv.rows[:3]] == [
        ("William Shakespeare", "answer"),
        ("Paris", "answer"),
        ("eight", "extracted"),
    ]
    assert pv.rows[4]["status"] == "problem" and "the question is empty" in pv.rows[4]["reason"]
    edited = read_preview(p, 10, key_overrides={3: "eight"})
    assert (edited.rows[2]["key"], edited.rows[2]["key_source"]) == ("eight", "edited")


# ----------------------------------------------------------------------------- the CLI


def test_cli_loads_a_chat_file_with_follow_ups_without_skip_invalid(tmp_path: Path, capsys) -> None:
    """What ``knowmix probe --data`` does with the file before the model runs (a probe of these
    rows with the built-in model takes minutes on a busy CPU, so the model is not run here)."""
    import argparse

    from core.cli import _load_data

    data = write_jsonl(tmp_path / "team_chats.jsonl", sharegpt_rows())
    ds = _load_data(str(data), argparse.Namespace(map=None, skip_invalid=False))
    err = capsys.readouterr().err
    assert "18 questions in 1 group from team_chats.jsonl" in err
    assert "11 rows kept but not probed (9 multi-turn, 2 no-answer)" in err
    assert len(ds.examples) == 18


# ----------------------------------------------------------------------------- the dataset page


def test_dataset_page_shows_keys_and_status_and_edited_keys_reach_the_project(qtbot, window, tmp_path: Path) -> None:
    from gui.pages.dataset import KEY_HEADER, STATUS_HEADER

    rows = [
        {"instruction": "Who wrote Hamlet?", "input": "", "output": "William Shakespeare"},
        {"instruction": "Where was Ada Lovelace born?", "input": "", "output": "She was born in London."},
        {"instruction": "Rewrite the sentence in the passive voice.", "input": "The cat ate.", "output": "It was eaten."},
        {"instruction": "What is the capital of Samos?", "input": "", "output": "Samos's capital is Vathy."},
    ]
    data = write_jsonl(tmp_path / "team.jsonl", rows)
    assert window.by_key["project"].open_path(tmp_path / "ds.knowmix", create=True)
    window.go("dataset")
    page = window.by_key["dataset"]
    page.open_file(str(data))
    qtbot.waitUntil(lambda: page.preview is not None and not page.ctx.runner.active(), timeout=10_000)
    headers = [page.table.horizontalHeaderItem(c).text() for c in range(page.table.columnCount())]
    key_col, status_col = headers.index(KEY_HEADER), headers.index(STATUS_HEADER)
    assert [page.table.item(r, key_col).text() for r in range(4)] == ["William Shakespeare", "London", "", "Vathy"]
    assert [page.table.item(r, status_col).text() for r in range(4)] == ["probed", "probed", "not probed: task", "probed"]
    assert "extracted by KnowMix" in page.table.item(1, key_col).toolTip()

    page.table.item(1, key_col).setText("London | City of London")  # the user edits the extracted key
    assert page.key_overrides == {2: "London | City of London"}
    page.use_button.click()
    qtbot.waitUntil(lambda: not page.ctx.runner.active() and page.message.kind != "", timeout=30_000)
    assert page.message.kind == "ok", page.message.text()
    assert page.counts.isVisible() and "3 probed; 1 kept but not probed" in page.counts.text() and "1 task" in page.counts.text()
    with window.ctx.project() as p:
        examples = p.examples(window.ctx.dataset_id)
    by_line = {ex.line: ex for ex in examples}
    assert (by_line[2].keys, by_line[2].key_source) == (("London", "City of London"), "edited")
    assert (by_line[4].keys, by_line[4].key_source) == (("Vathy",), "extracted")
    assert "1 kept but not probed" in page.current.text()

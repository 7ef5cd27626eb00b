"""Tests for core.datasets: formats, shapes, validation messages, duplicates, fingerprints.

Every error test asserts on the text a user would see: the file name, the line (or record) and
the field, because that is what lets them fix the file.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

from core.datasets import (
    Example,
    Problem,
    load_dataset,
    parse_mapping,
    read_preview,
)
from core.errors import DatasetError

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "resources" / "sample" / "entityquestions_sample.jsonl"
POOL = REPO / "resources" / "sample" / "entityquestions_pool.jsonl"

EQ_ROWS = [
    {"question": "Which country is Painblanc located in?", "answers": ["France"], "relation": "P17"},
    {"question": "What is the capital of Norway?", "answers": ["Oslo", "Christiania"], "relation": "P36"},
    {"question": "Which country is Grímsstaðir located in?", "answers": ["Iceland"], "relation": "P17"},
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def error_text(path: Path, **kwargs) -> str:
    with pytest.raises(DatasetError) as exc:
        load_dataset(path, **kwargs)
    return str(exc.value)


# ----------------------------------------------------------------------------- formats


def test_jsonl_entityquestions(tmp_path: Path) -> None:
    ds = load_dataset(write_jsonl(tmp_path / "eq.jsonl", EQ_ROWS))
    assert len(ds) == len(EQ_ROWS) == 3
    assert (ds.format, ds.shape) == ("jsonl", "question-answer")
    assert ds.mapping == {"question": "question", "answer": "answers", "group": "relation"}
    assert [e.question for e in ds.examples] == [r["question"] for r in EQ_ROWS]
    assert ds.examples[1].answers == ("Oslo", "Christiania")
    assert [e.line for e in ds.examples] == [1, 2, 3]
    assert ds.examples[0].raw == EQ_ROWS[0]
    assert list(ds.groups()) == ["P17", "P36"]
    assert len(ds.groups()["P17"]) == 2
    # "Oslo" and "Christiania" (its old name) share no word or initials: the rule cannot tell a
    # former name from a second answer, so the line counts the question as multi-answer
    assert ds.summary_line() == (
        "3 questions in 2 groups from eq.jsonl (JSONL, question-answer); "
        "1 question with several different true answers (probed; the plan can leave them out)"
    )


def test_ndjson_extension_and_crlf_and_bom_and_blank_lines(tmp_path: Path) -> None:
    body = "\r\n".join(json.dumps(r) for r in EQ_ROWS[:2]) + "\r\n\r\n"
    p = tmp_path / "eq.ndjson"
    p.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    ds = load_dataset(p)
    assert ds.format == "jsonl"
    assert [e.line for e in ds.examples] == [1, 2]
    assert ds.examples[0].question == EQ_ROWS[0]["question"]


def test_json_array_and_wrapped_object(tmp_path: Path) -> None:
    p = tmp_path / "eq.json"
    p.write_text(json.dumps(EQ_ROWS, indent=2), encoding="utf-8")
    ds = load_dataset(p)
    assert ds.format == "json"
    assert [e.line for e in ds.examples] == [1, 2, 3]  # record index
    q = tmp_path / "wrapped.json"
    q.write_text(json.dumps({"version": 2, "data": EQ_ROWS}), encoding="utf-8")
    assert [e.question for e in load_dataset(q).examples] == [e.question for e in ds.examples]


def test_json_extension_holding_json_lines(tmp_path: Path) -> None:
    ds = load_dataset(write_jsonl(tmp_path / "actually_lines.json", EQ_ROWS))
    assert ds.format == "jsonl"
    assert len(ds.examples) == 3


def test_csv_with_alias_separator_and_json_list(tmp_path: Path) -> None:
    p = write_csv(
        tmp_path / "qa.csv",
        ["question", "answer", "topic"],
        [
            ["What is the capital of Norway?", "Oslo|Christiania", "geo"],
            ["Who wrote Hamlet, the play?", '["William Shakespeare", "Shakespeare"]', "lit"],
            ["When was the Berlin Wall opened?", "1989", "history"],
        ],
    )
    ds = load_dataset(p)
    assert (ds.format, ds.shape) == ("csv", "question-answer")
    assert ds.examples[0].answers == ("Oslo", "Christiania")
    assert ds.examples[1].question == "Who wrote Hamlet, the play?"
    assert ds.examples[1].answers == ("William Shakespeare", "Shakespeare")
    assert [e.group for e in ds.examples] == ["geo", "lit", "history"]
    assert [e.line for e in ds.examples] == [2, 3, 4]  # header is line 1
    assert ds.examples[0].raw == {"question": "What is the capital of Norway?", "answer": "Oslo|Christiania", "topic": "geo"}


def test_csv_row_kept_for_export_reads_and_copies_like_the_row(tmp_path: Path) -> None:
    """A CSV row is kept in a compact read-only form; the export, pickling and JSON see the dict."""
    import copy
    import pickle

    from core.datasets import json_default

    p = write_csv(
        tmp_path / "qa.csv", ["question", "answer", "note"], [["Capital of Norway?", "Oslo"], ["Capital of Peru?", "Lima", "x"]]
    )
    raw0, raw1 = (e.raw for e in load_dataset(p).examples)
    assert raw0 == {"question": "Capital of Norway?", "answer": "Oslo", "note": None}  # a short row's missing cell
    assert (raw1["answer"], raw1.get("missing", "-"), list(raw1), len(raw1)) == ("Lima", "-", ["question", "answer", "note"], 3)
    with pytest.raises(KeyError):
        raw1["missing"]
    for copied in (pickle.loads(pickle.dumps(raw1)), copy.deepcopy(raw1), json.loads(json.dumps(raw1, default=json_default))):
        assert type(copied) is dict and copied == {"question": "Capital of Peru?", "answer": "Lima", "note": "x"}
    with pytest.raises(TypeError):
        raw1["answer"] = "Cusco"  # type: ignore[index]
    rows = [{"question": "Capital of Chile?", "answers": ["Santiago"], "meta": {"src": "atlas"}}]
    j = write_jsonl(tmp_path / "qa.jsonl", [rows[0], {"question": "Capital of Peru?", "answers": ["Lima"]}])
    jraw = load_dataset(j).examples[0].raw
    assert jraw == rows[0] and list(jraw) == ["question", "answers", "meta"]  # the row's own key order
    assert type(pickle.loads(pickle.dumps(jraw))) is dict


def test_jsonl_rows_with_hundreds_of_key_sets_load_as_written(tmp_path: Path) -> None:
    rows = [{"question": f"Capital number {i}?", "answers": [f"City {i}"], f"extra_{i}": i} for i in range(300)]
    ds = load_dataset(write_jsonl(tmp_path / "many.jsonl", rows))
    assert [dict(e.raw) for e in ds.examples] == rows


def test_csv_line_numbers_count_physical_lines_of_multiline_cells(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "ml.csv", ["question", "answer"], [["line one\nline two?", "a"], ["", "b"]])
    msg = error_text(p)
    assert "ml.csv line 4, field 'question': the question is empty" in msg


def test_tsv(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "qa.tsv", ["Question", "Answers", "Category"], [["Capital of France?", "Paris", "geo"]], "\t")
    ds = load_dataset(p)
    assert (ds.format, ds.shape) == ("tsv", "question-answer")
    assert ds.mapping == {"question": "Question", "answer": "Answers", "group": "Category"}
    assert ds.examples[0].answers == ("Paris",)
    tab = tmp_path / "qa.tab"
    tab.write_text("question\tanswer\nA?\tB\n", encoding="utf-8")
    assert load_dataset(tab).format == "tsv"


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "question": ["Which country is Painblanc located in?", "When was Mozart born?", None],
            "answers": [["France"], ["1756"], ["x"]],
            "relation": ["P17", "P569", "P17"],
            "year": [1.0, float("nan"), 3.0],
        }
    )
    p = tmp_path / "eq.parquet"
    pq.write_table(table, p)
    msg = error_text(p)
    assert "eq.parquet record 3, field 'question': the question is missing" in msg
    ds = load_dataset(p, skip_invalid=True)
    assert ds.format == "parquet"
    assert [e.line for e in ds.examples] == [1, 2]
    assert ds.examples[1].answers == ("1756",)
    assert ds.examples[0].raw == {
        "question": "Which country is Painblanc located in?",
        "answers": ["France"],
        "relation": "P17",
        "year": 1.0,
    }
    # A float column used as the answer: 1.0 -> "1", NaN -> missing.
    ds2 = load_dataset(p, mapping={"answer": "year"}, skip_invalid=True)
    assert ds2.shape == "custom"
    assert ds2.examples[0].answers == ("1",)
    # a missing answer is no problem: the row is kept, not probed
    assert [(e.line, e.reason) for e in ds2.unprobed] == [(2, "no-answer")]


def test_unknown_extension_is_sniffed(tmp_path: Path) -> None:
    lines = write_jsonl(tmp_path / "data.txt", EQ_ROWS)
    assert load_dataset(lines).format == "jsonl"
    arr = tmp_path / "data.dat"
    arr.write_text(json.dumps(EQ_ROWS), encoding="utf-8")
    assert load_dataset(arr).format == "json"
    tsv = tmp_path / "data"
    tsv.write_text("question\tanswer\nA?\tB\n", encoding="utf-8")
    assert load_dataset(tsv).format == "tsv"
    c = tmp_path / "data.out"
    c.write_text("question,answer\nA?,B\n", encoding="utf-8")
    assert load_dataset(c).format == "csv"


def test_unknown_format_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "notes.bin"
    p.write_text("just some words\nwithout structure\n", encoding="utf-8")
    msg = error_text(p)
    assert "notes.bin" in msg and ".jsonl" in msg and ".parquet" in msg and ".csv" in msg
    with pytest.raises(DatasetError, match="Unknown dataset format 'xml'"):
        load_dataset(p, fmt="xml")


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "rows.csv", EQ_ROWS)
    assert load_dataset(p, fmt="jsonl").format == "jsonl"


# ----------------------------------------------------------------------------- shapes


def test_alpaca_with_and_without_input(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Name the capital.", "input": "Country: Norway", "output": "Oslo"},
        {"instruction": "Who painted the Mona Lisa?", "input": "", "output": " Leonardo da Vinci "},
        {"instruction": "What is 6 times 7?", "output": 42},
    ]
    ds = load_dataset(write_jsonl(tmp_path / "alpaca.jsonl", rows))
    assert ds.shape == "alpaca"
    assert ds.mapping == {"question": "instruction", "answer": "output", "input": "input"}
    assert ds.examples[0].question == "Name the capital.\n\nCountry: Norway"
    assert ds.examples[1].question == "Who painted the Mona Lisa?"
    assert ds.examples[1].answers == ("Leonardo da Vinci",)
    assert ds.examples[2].answers == ("42",)
    assert {e.group for e in ds.examples} == {"all"}


def test_alpaca_without_input_column(tmp_path: Path) -> None:
    ds = load_dataset(write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Q?", "output": "A"}]))
    assert ds.shape == "alpaca" and "input" not in ds.mapping


@pytest.mark.parametrize("answer_key", ["completion", "response"])
def test_prompt_completion(tmp_path: Path, answer_key: str) -> None:
    rows = [{"prompt": "Capital of Italy?", answer_key: "Rome", "category": "geo"}]
    ds = load_dataset(write_jsonl(tmp_path / "pc.jsonl", rows))
    assert ds.shape == "prompt-completion"
    assert ds.examples[0].question == "Capital of Italy?"
    assert ds.examples[0].answers == ("Rome",)
    assert ds.examples[0].group == "geo"


def test_openai_messages(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Capital of Spain?"},
                {"role": "assistant", "content": "Madrid"},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Capital of Peru?"}]},
                {"role": "assistant", "content": "Lima"},
            ]
        },
    ]
    ds = load_dataset(write_jsonl(tmp_path / "chat.jsonl", rows))
    assert ds.shape == "openai-messages"
    assert [(e.question, e.answers) for e in ds.examples] == [("Capital of Spain?", ("Madrid",)), ("Capital of Peru?", ("Lima",))]


def test_sharegpt(tmp_path: Path) -> None:
    rows = [
        {
            "id": "c1",
            "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": "Who wrote Dune?"},
                {"from": "gpt", "value": "Frank Herbert"},
            ],
        }
    ]
    ds = load_dataset(write_jsonl(tmp_path / "sg.json", rows))
    assert ds.shape == "sharegpt"
    assert ds.examples[0].question == "Who wrote Dune?"
    assert ds.examples[0].answers == ("Frank Herbert",)
    assert ds.examples[0].id == "c1"


def test_multi_turn_conversation_is_kept_not_probed(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "system", "content": "You are a geography tutor."},
                {"role": "user", "content": "Capital of Chile?"},
                {"role": "assistant", "content": "Santiago"},
                {"role": "user", "content": "And its population?"},
                {"role": "assistant", "content": "About 7 million."},
            ]
        },
        {"messages": [{"role": "user", "content": "Capital of Peru?"}, {"role": "assistant", "content": "Lima"}]},
    ]
    ds = load_dataset(write_jsonl(tmp_path / "chat.jsonl", rows))  # no --skip-invalid needed
    assert [e.question for e in ds.examples] == ["Capital of Peru?"]
    (kept,) = ds.unprobed
    assert (kept.line, kept.status, kept.reason) == (1, "not-probed", "multi-turn")
    assert (kept.question, kept.answers, kept.system) == ("Capital of Chile?", ("Santiago",), "You are a geography tutor.")
    assert not ds.problems
    assert "1 row kept but not probed (1 multi-turn)" in ds.summary_line()


def test_conversation_without_final_assistant_turn_is_kept_without_answer(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": "Q?"}]},
        {"messages": [{"role": "user", "content": "Capital of Peru?"}, {"role": "assistant", "content": "Lima"}]},
    ]
    ds = load_dataset(write_jsonl(tmp_path / "c.jsonl", rows))
    assert [(e.line, e.question, e.answers, e.reason) for e in ds.unprobed] == [(1, "Q?", (), "no-answer")]
    no_user = write_jsonl(tmp_path / "n.jsonl", [{"messages": [{"role": "assistant", "content": "Hi"}]}, rows[1]])
    assert "n.jsonl line 1, field 'messages': the conversation has no user turn" in error_text(no_user)


def test_custom_mapping_override(tmp_path: Path) -> None:
    rows = [{"q_text": "Capital of Kenya?", "gold": ["Nairobi"], "domain": "geo", "key": 7}]
    p = write_jsonl(tmp_path / "custom.jsonl", rows)
    msg = error_text(p)
    assert msg == (
        "custom.jsonl: cannot tell which column holds the question and which the answer "
        "(columns: q_text, gold, domain, key). Use a column mapping, e.g. --map question=q_text,answer=gold"
    )
    mapping = parse_mapping("question=q_text, answer=gold, group=domain, id=key")
    ds = load_dataset(p, mapping=mapping)
    assert ds.shape == "custom"
    assert ds.mapping == {"question": "q_text", "answer": "gold", "group": "domain", "id": "key"}
    e = ds.examples[0]
    assert (e.question, e.answers, e.group, e.id) == ("Capital of Kenya?", ("Nairobi",), "geo", "7")


def test_mapping_overrides_detection(tmp_path: Path) -> None:
    rows = [{"question": "Q1?", "answers": ["A1"], "relation": "P1", "short": "S1", "topic": "t"}]
    p = write_jsonl(tmp_path / "m.jsonl", rows)
    ds = load_dataset(p, mapping={"answer": "short"})
    assert ds.shape == "custom" and ds.examples[0].answers == ("S1",) and ds.examples[0].group == "P1"
    ds = load_dataset(p, mapping={"group": "topic"})
    assert ds.shape == "question-answer" and ds.examples[0].group == "t"


def test_mapping_to_missing_column_lists_columns(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "m.jsonl", EQ_ROWS)
    msg = error_text(p, mapping={"question": "prompt"})
    assert "m.jsonl" in msg and "'prompt'" in msg and "columns: question, answers, relation" in msg


def test_parse_mapping() -> None:
    assert parse_mapping("question=prompt,answer=output,group=topic") == {
        "question": "prompt",
        "answer": "output",
        "group": "topic",
    }
    assert parse_mapping("answers=gold, input = ctx ") == {"answer": "gold", "input": "ctx"}
    assert parse_mapping("") == {}
    for bad, needle in [
        ("question", "role=column"),
        ("colour=red", "Unknown role 'colour'"),
        ("question=", "no column"),
        ("question=a,question=b", "twice"),
    ]:
        with pytest.raises(DatasetError, match=needle):
            parse_mapping(bad)


def test_group_detection_order(tmp_path: Path) -> None:
    rows = [{"question": "Q?", "answer": "A", "topic": "t", "category": "c", "group": "g"}]
    assert load_dataset(write_jsonl(tmp_path / "g.jsonl", rows)).examples[0].group == "g"
    rows = [{"question": "Q?", "answer": "A", "topic": "t", "category": "c"}]
    assert load_dataset(write_jsonl(tmp_path / "g2.jsonl", rows)).examples[0].group == "c"
    rows = [{"question": "Q?", "answer": "A"}]
    assert load_dataset(write_jsonl(tmp_path / "g3.jsonl", rows)).examples[0].group == "all"


# ----------------------------------------------------------------------------- ids


def test_ids_are_stable_hashes_of_group_and_question(tmp_path: Path) -> None:
    import hashlib

    a = load_dataset(write_jsonl(tmp_path / "a.jsonl", EQ_ROWS))
    reordered = [EQ_ROWS[2], {**EQ_ROWS[1], "answers": ["Oslo"]}, EQ_ROWS[0]]
    b = load_dataset(write_jsonl(tmp_path / "b.jsonl", reordered))
    assert {e.question: e.id for e in a.examples} == {e.question: e.id for e in b.examples}
    e = a.examples[0]
    assert e.id == hashlib.sha1(f"{e.group}\x00{e.question}".encode()).hexdigest()[:16]
    assert len({x.id for x in a.examples}) == 3


def test_explicit_ids_and_repeats(tmp_path: Path) -> None:
    rows = [{"_id": 5, "question": "Q1?", "answer": "A"}, {"_id": "x", "question": "Q2?", "answer": "B"}]
    ds = load_dataset(write_jsonl(tmp_path / "ids.jsonl", rows))
    assert [e.id for e in ds.examples] == ["5", "x"]
    rows.append({"_id": "x", "question": "Q3?", "answer": "C"})
    p = write_jsonl(tmp_path / "rep.jsonl", rows)
    msg = error_text(p)
    assert "rep.jsonl line 3, field '_id': the id 'x' is already used on line 2" in msg


# ----------------------------------------------------------------------------- duplicates


def test_duplicates_skipped_counted_and_answers_merged(tmp_path: Path) -> None:
    rows = [
        {"question": "What is the capital of Norway?", "answers": ["Oslo"], "relation": "P36"},
        {"question": "what is the  capital of norway? ", "answers": ["Christiania", "Oslo"], "relation": "P36"},
        {"question": "What is the capital of Norway?", "answers": ["Oslo"], "relation": "OTHER"},
        {"question": "What is the capital of Norway?", "answers": ["Oslo"], "relation": "P36"},
    ]
    ds = load_dataset(write_jsonl(tmp_path / "dup.jsonl", rows))
    assert len(ds.examples) == 2  # a different group is not a duplicate
    assert ds.duplicates == [(2, 1), (4, 1)]
    assert ds.examples[0].answers == ("Oslo", "Christiania")
    # line 2 added an answer: reported as a merge, not silently; line 4 repeats line 1 exactly
    assert ds.merged_duplicates == [(2, 1)]
    assert "; 2 duplicates skipped; 1 question appears more than once with different answers, merged" in ds.summary_line()
    assert ": line 1 and line 2;" in ds.summary_line()


def test_duplicates_with_different_answers_are_listed_and_become_multi_answer(tmp_path: Path) -> None:
    rows = [
        {"question": "Who is Martin Landau's child?", "answers": ["Juliet Landau"], "relation": "P40"},
        {"question": "Who is Allu Aravind's child?", "answers": ["Allu Arjun"], "relation": "P40"},
        {"question": "What is the capital of Norway?", "answers": ["Oslo"], "relation": "P36"},
        {"question": "Who is Martin Landau's child?", "answers": ["Susan Landau Finch"], "relation": "P40"},
        {"question": "Who is Allu Aravind's child?", "answers": ["allu arjun"], "relation": "P40"},  # same answer
        {"question": "Which country is Painblanc located in?", "answers": ["United States of America"], "relation": "P17"},
        {"question": "Which country is Painblanc located in?", "answers": ["USA"], "relation": "P17"},
    ]
    ds = load_dataset(write_jsonl(tmp_path / "dup.jsonl", rows))
    assert ds.duplicates == [(4, 1), (5, 2), (7, 6)]
    assert ds.merged_duplicates == [(4, 1), (7, 6)]  # line 5 only changes the case of line 2's answer
    line = ds.summary_line()
    assert "; 3 duplicates skipped; 2 questions appear more than once with different answers, merged" in line
    assert ": line 1 and line 4, line 6 and line 7;" in line
    by_q = {ex.question: ex for ex in ds.examples}
    # two children after the merge: multi-answer; two names of one country: not
    assert by_q["Who is Martin Landau's child?"].answers == ("Juliet Landau", "Susan Landau Finch")
    assert by_q["Who is Martin Landau's child?"].multi_answer
    assert not by_q["Which country is Painblanc located in?"].multi_answer
    assert not by_q["Who is Allu Aravind's child?"].multi_answer
    assert ds.multi_answer_count() == 1
    assert line.endswith("; 1 question with several different true answers (probed; the plan can leave them out)")


# ----------------------------------------------------------------------------- multi-answer questions

P40 = REPO.parent / "shared" / "data" / "entityquestions" / "train" / "P40.train.jsonl"


def test_multi_answer_rule_on_alias_lists() -> None:
    from core.datasets.multi import answer_groups, is_multi_answer

    aliases = [
        ["United States", "United States of America", "USA"],
        ["U.S.A.", "United States of America"],
        ["John F. Kennedy", "JFK"],
        ["John F. Kennedy", "John Kennedy"],  # an initial dropped
        ["J. R. R. Tolkien", "Tolkien"],  # initials dropped
        ["Dr. John Smith", "John Smith"],  # a title dropped
        ["Saint Kenelm", "Kenelm"],
        ["Alien (film)", "Alien"],  # a qualifier dropped
        ["Springfield, Illinois", "Springfield"],
        ["The Beatles", "Beatles"],
        ["Paris"],
        ["Oslo", "oslo", " OSLO. "],
    ]
    for answers in aliases:
        assert not is_multi_answer(answers), answers
    distinct = [
        ["Juliet Landau", "Susan Landau Finch"],
        ["Allu Arjun", "Allu Sirish"],
        ["United States", "USA", "Canada"],
    ]
    for answers in distinct:
        assert is_multi_answer(answers), answers
    assert answer_groups(["United States", "Canada", "USA", "United States of America"]) == [
        ["United States", "USA", "United States of America"],
        ["Canada"],
    ]


def test_one_answer_is_never_several_joined_through_a_shared_word() -> None:
    """Issue 20, item 6: the old rule joined answers when one held the other's words, and joined
    aliases of aliases, so different answers merged transitively. Aliases join only when one is the
    other with a title, initials or a qualifier dropped, never through a third answer."""
    from core.datasets.multi import answer_groups, is_multi_answer

    assert is_multi_answer(["Virginia", "West Virginia"])  # two states
    # two people sharing a surname are not joined through the surname alone
    assert answer_groups(["Landau", "Juliet Landau", "Susan Landau Finch"]) == [
        ["Landau"],
        ["Juliet Landau"],
        ["Susan Landau Finch"],
    ]
    # seven works sharing one word stay seven answers
    works = [
        "Godfather",
        *(f"The Godfather Part {n}" for n in ("II", "III")),
        "Godfather of Harlem",
        "Godfather Jr.",
        "Fairy Godfather",
        "Godfather Buried Alive",
    ]
    assert len(answer_groups(works)) == 7
    # two places with the same name and different qualifiers are two answers
    assert len(answer_groups(["Springfield, Illinois", "Springfield, Massachusetts"])) == 2


# The rule's known misses: string rules cannot tell them apart (documented in ``is_multi_answer``).
KNOWN_MISSES = [
    (["Paris", "Paris, Texas"], True),  # two places; the comma qualifier joins them
    (["J. Smith", "John Smith"], False),  # one person; an expanded initial is not seen
    (["United States", "USA"], False),  # one country; "USA" is the initials of the long form only
    (["Lloyd Wright", "Frank Lloyd Wright Jr."], False),  # one son, "Jr." is a qualifier the rule does not know
]


@pytest.mark.parametrize(("answers", "multi"), KNOWN_MISSES)
@pytest.mark.xfail(strict=True, reason="a known miss of the string rule (see core.datasets.multi.is_multi_answer)")
def test_known_misses_of_the_multi_answer_rule(answers: list[str], multi: bool) -> None:
    from core.datasets.multi import is_multi_answer

    assert is_multi_answer(answers) == multi


@pytest.mark.skipif(not P40.exists(), reason="needs ../shared/data/entityquestions")
def test_multi_answer_on_real_entityquestions_child_rows() -> None:
    """P40 (child) lists distinct children in one row: 1718 of its 8000 rows (21.5%) list more than
    one answer. 19 rows repeat a question; 17 of them with other answers, merged, which gives 2
    more questions with two answers. The rule calls all of those multi-answer: 'Lloyd Wright' and
    'John Lloyd Wright', and 'Louis Lully' and 'Jean-Louis Lully', two pairs of sons the old
    whole-word rule took for one name, are two answers each (issue 20, item 6)."""
    ds = load_dataset(P40)
    listed = [ex for ex in ds.examples if len(ex.answers) > 1]
    multi = [ex for ex in ds.examples if ex.multi_answer]
    assert len(ds.examples) == 7981 and len(ds.duplicates) == 19 and len(ds.merged_duplicates) == 17
    assert len(listed) == 1720
    assert len(multi) == 1720
    by_q = {ex.question: ex for ex in ds.examples}
    assert by_q["Who is Martin Landau's child?"].multi_answer
    assert by_q["Who is Frank Lloyd Wright's child?"].multi_answer
    assert all(not ex.multi_answer for ex in ds.examples if len(ex.answers) == 1)
    assert ds.multi_answer_count() == 1720
    assert "15 questions appear more than once with different answers, merged" in ds.summary_line()


# ----------------------------------------------------------------------------- validation


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(EQ_ROWS[0]) + "\n" + '{"question": "Q?" "answers": ["A"]}\n' + json.dumps(EQ_ROWS[1]) + "\n")
    msg = error_text(p)
    assert msg.startswith("bad.jsonl line 2: invalid JSON at column 19: Expecting ',' delimiter")
    assert "fix the file or choose to skip invalid rows (--skip-invalid)" in msg
    assert "more problem" not in msg


def test_row_not_an_object(tmp_path: Path) -> None:
    p = tmp_path / "arr.jsonl"
    p.write_text(json.dumps(EQ_ROWS[0]) + "\n" + '["Q?", "A"]\n')
    assert "arr.jsonl line 2: the row is a list, not a JSON object" in error_text(p)
    j = tmp_path / "arr.json"
    j.write_text(json.dumps([EQ_ROWS[0], "oops"]))
    assert "arr.json record 2: the row is a string, not a JSON object" in error_text(j)


def test_invalid_json_document(tmp_path: Path) -> None:
    p = tmp_path / "broken.json"
    p.write_text('[\n  {"question": "Q?", "answer": "A"},\n  {"question": \n]\n')
    msg = error_text(p)
    assert "broken.json line 4" in msg and "column" in msg and "invalid JSON" in msg


@pytest.mark.parametrize(
    "row, field, text",
    [
        ({"answers": ["A"]}, "question", "the question is missing"),
        ({"question": "   ", "answers": ["A"]}, "question", "the question is empty"),
        ({"question": None, "answers": ["A"]}, "question", "the question is missing"),
        ({"question": "Q?", "answers": [{"a": 1}]}, "answers", "an answer in the list is an object, expected text"),
        ({"question": ["Q?"], "answers": ["A"]}, "question", "the question is a list, expected text"),
    ],
)
def test_missing_or_empty_fields_name_file_line_field(tmp_path: Path, row: dict, field: str, text: str) -> None:
    p = write_jsonl(tmp_path / "train.jsonl", [EQ_ROWS[0], EQ_ROWS[1], row])
    msg = error_text(p)
    assert msg.startswith(f"train.jsonl line 3, field '{field}': {text}")


@pytest.mark.parametrize("answers", [None, [], ["", " "], "", "  "])
def test_missing_or_empty_answer_is_kept_without_a_probe(tmp_path: Path, answers: object) -> None:
    row: dict = {"question": "Q?"} if answers is None else {"question": "Q?", "answers": answers}
    ds = load_dataset(write_jsonl(tmp_path / "train.jsonl", [EQ_ROWS[0], EQ_ROWS[1], row]))
    assert len(ds.examples) == 2 and not ds.problems
    assert [(e.line, e.status, e.reason) for e in ds.unprobed] == [(3, "not-probed", "no-answer")]


def test_alpaca_empty_output_is_kept_without_a_probe(tmp_path: Path) -> None:
    rows = [{"instruction": "Q?", "input": "", "output": ""}, {"instruction": "Who wrote Dune?", "output": "Frank Herbert"}]
    ds = load_dataset(write_jsonl(tmp_path / "al.jsonl", rows))
    assert [e.reason for e in ds.unprobed] == ["no-answer"] and len(ds.examples) == 1


def test_first_problem_plus_count(tmp_path: Path) -> None:
    rows = [{"question": "", "answers": ["A"]}, {"question": ["Q2?"], "answers": ["A"]}, {"answers": ["A"]}, EQ_ROWS[0]]
    msg = error_text(write_jsonl(tmp_path / "many.jsonl", rows))
    assert msg.startswith("many.jsonl line 1, field 'question': the question is empty (and 2 more problems).")
    assert "--skip-invalid" in msg


def test_non_utf8_lines_are_reported_each(tmp_path: Path) -> None:
    good = json.dumps(EQ_ROWS[0]).encode() + b"\n"
    bad1 = b'{"question": "Caf\xe9?", "answers": ["A"]}\n'
    bad2 = b'{"question": "Q\xff", "answers": ["B"]}\n'
    p = tmp_path / "latin.jsonl"
    p.write_bytes(good + bad1 + good.replace(b"Painblanc", b"Paris") + bad2)
    msg = error_text(p)
    offset = len(good) + bad1.index(b"\xe9")
    assert msg.startswith(f"latin.jsonl line 2: not valid UTF-8: byte 0xE9 at byte offset {offset} of the file")
    assert "(and 1 more problem)" in msg
    ds = load_dataset(p, skip_invalid=True)
    assert len(ds.examples) == 2
    assert [(pr.line, "UTF-8" in pr.message) for pr in ds.problems] == [(2, True), (4, True)]


def test_file_with_no_parseable_row_reports_the_rows(tmp_path: Path) -> None:
    p = tmp_path / "latin1.jsonl"
    p.write_bytes('{"question": "Café?", "answers": ["Sí"]}\n{"question": "Thé?", "answers": ["Oui"]}\n'.encode("latin-1"))
    msg = error_text(p)
    assert msg.startswith("latin1.jsonl: no usable rows. latin1.jsonl line 1: not valid UTF-8: byte 0xE9")
    assert "(and 1 more problem)" in msg


def test_non_utf8_csv_row(tmp_path: Path) -> None:
    p = tmp_path / "latin.csv"
    p.write_bytes(b"question,answer\nQ1?,A\nQ2 caf\xe9?,B\nQ3?,C\n")
    msg = error_text(p)
    assert msg.startswith("latin.csv line 3: not valid UTF-8: byte 0xE9")
    ds = load_dataset(p, skip_invalid=True)
    assert [e.line for e in ds.examples] == [2, 4]


def test_utf16_file_is_read(tmp_path: Path) -> None:
    p = tmp_path / "excel.tsv"
    p.write_bytes("question\tanswer\nCafé?\tSí\n".encode("utf-16"))
    assert load_dataset(p).examples[0].answers == ("Sí",)


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    for name in ("empty.jsonl", "empty.csv", "empty.json"):
        p = tmp_path / name
        p.write_text("  \n")
        msg = error_text(p)
        assert name in msg and "empty" in msg
    h = tmp_path / "header.csv"
    h.write_text("question,answer\n")
    msg = error_text(h)
    assert "header.csv has only a header" in msg and "no data rows" in msg
    e = tmp_path / "none.json"
    e.write_text("[]")
    assert "none.json" in error_text(e)


def test_csv_row_with_too_many_cells(tmp_path: Path) -> None:
    p = tmp_path / "wide.csv"
    p.write_text("question,answer\nWhere is Paris, France?,Europe\nQ?,A,\n")
    msg = error_text(p)
    assert msg.startswith("wide.csv line 2: the row has 3 cells but the header names 2 columns")
    ds = load_dataset(p, skip_invalid=True)  # a trailing empty cell (line 3) is fine
    assert [e.line for e in ds.examples] == [3]


def test_csv_unclosed_quote_is_pointed_out(tmp_path: Path) -> None:
    p = tmp_path / "quote.csv"
    p.write_text('question,answer\nQ1?,A\n"Where is Paris?,France\nQ2?,B\n')
    msg = error_text(p)
    assert msg.startswith("quote.csv line 3: the row runs from line 3 to line 4")
    assert 'is a quote (") left open on line 3? To go on' in msg


def test_missing_path_and_directory(tmp_path: Path) -> None:
    msg = error_text(tmp_path / "nope.jsonl")
    assert "not found" in msg and str(tmp_path / "nope.jsonl") in msg
    msg = error_text(tmp_path)
    assert "is a folder" in msg and str(tmp_path) in msg


def test_skip_invalid_keeps_and_counts(tmp_path: Path) -> None:
    rows = [{"question": f"Q{i}?", "answers": [{"x": 1}] if i % 2 else ["A"]} for i in range(10)]
    ds = load_dataset(write_jsonl(tmp_path / "half.jsonl", rows), skip_invalid=True, max_problems=3)
    assert len(ds.examples) == 5
    assert ds.problem_count == 5 and len(ds.problems) == 3
    assert all(isinstance(p, Problem) and p.field == "answers" for p in ds.problems)
    assert (
        ds.problems[0].describe(tmp_path / "half.jsonl")
        == "half.jsonl line 2, field 'answers': an answer in the list is an object, expected text"
    )
    assert ds.summary_line().endswith("; 5 invalid rows skipped")


def test_skip_invalid_with_no_valid_rows_still_raises(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "allbad.jsonl", [{"question": "", "answers": ["A"]}, {"question": None, "answers": ["B"]}])
    msg = error_text(p, skip_invalid=True)
    assert "allbad.jsonl" in msg and "no usable rows" in msg and "line 1" in msg


def test_file_with_nothing_to_probe_says_why(tmp_path: Path) -> None:
    rows = [
        {"question": "Q?", "answers": []},
        {"question": "Rewrite this sentence politely: go away.", "answers": ["Please leave."]},
    ]
    msg = error_text(write_jsonl(tmp_path / "none.jsonl", rows))
    assert msg.startswith("none.jsonl: nothing to probe. All 2 rows load, but none is a factual question")
    assert "1 no answer to check" in msg and "1 a task rather than a fact" in msg and "--map key=" in msg


def test_error_exposes_problems_for_the_gui(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "x.jsonl", [{"question": "", "answer": "A"}, {"question": " ", "answer": "B"}])
    with pytest.raises(DatasetError) as exc:
        load_dataset(p)
    assert exc.value.problem_count == 2  # type: ignore[attr-defined]
    assert [pr.line for pr in exc.value.problems] == [1, 2]  # type: ignore[attr-defined]


def test_values_are_coerced(tmp_path: Path) -> None:
    rows = [{"question": "  When was X founded?  ", "answers": [1987, 1987.0, " 87 "], "relation": 17}]
    e = load_dataset(write_jsonl(tmp_path / "v.jsonl", rows)).examples[0]
    assert e.question == "When was X founded?"
    assert e.answers == ("1987", "87")
    assert e.group == "17"


# ----------------------------------------------------------------------------- fingerprints


def test_fingerprints(tmp_path: Path) -> None:
    compact = tmp_path / "a.json"
    compact.write_text(json.dumps(EQ_ROWS, separators=(",", ":")))
    pretty = tmp_path / "b.json"
    pretty.write_text(json.dumps(EQ_ROWS, indent=4))
    a, b = load_dataset(compact), load_dataset(pretty)
    assert a.file_sha256 != b.file_sha256
    assert a.content_sha256 == b.content_sha256
    import hashlib

    assert a.file_sha256 == hashlib.sha256(compact.read_bytes()).hexdigest()
    changed = [dict(EQ_ROWS[0], answers=["Frankreich"])] + EQ_ROWS[1:]
    c_path = tmp_path / "c.json"
    c_path.write_text(json.dumps(changed))
    assert load_dataset(c_path).content_sha256 != a.content_sha256
    # Same content as JSON Lines: same fingerprint, the format does not matter.
    assert load_dataset(write_jsonl(tmp_path / "d.jsonl", EQ_ROWS)).content_sha256 == a.content_sha256


# ----------------------------------------------------------------------------- sample and preview


def test_sample_file() -> None:
    ds = load_dataset(SAMPLE)
    assert len(ds.examples) == 600
    groups = ds.groups()
    assert sorted(groups) == sorted(["P131", "P136", "P17", "P19", "P26", "P264", "P36", "P40", "P495", "P69", "P740", "P800"])
    assert all(len(v) == 50 for v in groups.values())
    assert ds.duplicates == [] and ds.problems == []
    pool = load_dataset(POOL)
    assert len(pool.examples) == 300 and len(pool.groups()) == 12
    assert not {e.question for e in pool.examples} & {e.question for e in ds.examples}


def test_read_preview(tmp_path: Path) -> None:
    rows = [{"prompt": f"P{i}?", "completion": f"C{i}"} for i in range(100)]
    pv = read_preview(write_jsonl(tmp_path / "p.jsonl", rows), n=5)
    assert pv.format == "jsonl" and pv.shape == "prompt-completion" and len(pv.records) == 5
    assert pv.columns == ["prompt", "completion"]
    unknown = read_preview(write_jsonl(tmp_path / "u.jsonl", [{"a": 1, "b": 2}]))
    assert unknown.shape is None and "--map question=a,answer=b" in (unknown.message or "")
    c = write_csv(tmp_path / "c.csv", ["question", "answer"], [[f"Q{i}", "A"] for i in range(50)])
    pc = read_preview(c, n=3)
    assert [r["question"] for r in pc.records] == ["Q0", "Q1", "Q2"]


def test_example_is_hashable_and_raw_not_compared() -> None:
    a = Example("1", "Q", ("A",), "g", 1, {"x": 1})
    b = Example("1", "Q", ("A",), "g", 1, {"x": 2})
    assert a == b and len({a, b}) == 1


# ----------------------------------------------------------------------------- performance guard


def test_100k_rows_load_quickly(tmp_path: Path) -> None:
    p = tmp_path / "big.jsonl"
    with p.open("w", encoding="utf-8") as fh:
        for i in range(100_000):
            fh.write(
                json.dumps(
                    {
                        "question": f"Which country is place number {i} located in?",
                        "answers": [f"Country {i % 197}", f"C{i % 197}"],
                        "relation": f"P{i % 12}",
                    }
                )
                + "\n"
            )
    t0 = time.perf_counter()
    ds = load_dataset(p)
    elapsed = time.perf_counter() - t0
    assert len(ds.examples) == 100_000 and len(ds.groups()) == 12
    # A guard against a quadratic loop (minutes), not a timing: 3 s quiet, 12 s on a busy 2-core
    # machine; the speed itself is measured side by side by bench/load_bench.py.
    assert elapsed < 60, f"100k rows took {elapsed:.1f}s"

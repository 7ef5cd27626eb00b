"""Exemplar rules the paper did not have (issue 20, item 4): which exemplars a question may not see,
and a warning whenever a question gets fewer than ``shots`` of them."""

from __future__ import annotations

import json

from core.datasets import Example
from core.probe import ProbeRequest, ProbeSettings, run_probe
from core.results import result_rows
from core.scoring import normalize_answer
from core.store import Project
from tests.scripted import FakeDataset, ScriptedBackend


def _ex(i: int, question: str, answer: str, group: str = "G") -> Example:
    return Example(id=f"ex{i:03d}", question=question, answers=(answer,), group=group, line=i + 1, raw={})


def _probe(tmp_path, examples: list[Example], settings: ProbeSettings = ProbeSettings(samples_per_set=1)):
    project = Project(tmp_path / "p.knowmix")
    dataset_id = project.add_dataset(FakeDataset(examples))
    knowledge = {ex.question: (ex.answers[0], 0.5, 0.2) for ex in examples}
    out = run_probe(
        project,
        ProbeRequest(dataset_id=dataset_id, pool_dataset_id=None, model_spec="scripted", settings=settings),
        backend=ScriptedBackend(knowledge),
    )
    assert out.status == "finished"
    return out, {r["id"]: r for r in result_rows(project, out.run_id)}


def test_an_answer_made_of_common_words_still_gets_four_exemplars_in_every_set(tmp_path):
    """'The Who' folds to 'who', which every 'Who ...?' question holds: it used to reject every
    exemplar of its group, so the question was probed zero-shot in all ten sets."""
    examples = [_ex(i, f"Who performed the song number {i}?", f"Singer {i}") for i in range(12)]
    examples.append(_ex(99, "Who performed the song My Generation?", "The Who"))
    out, rows = _probe(tmp_path, examples)
    who = rows["ex099"]
    assert [len(shown) for shown in who["exemplar_ids"]] == [4] * 10
    assert not [s for s in who["exemplar_swaps"] if s["why"] != "self"]
    assert not any("fewer than" in note for note in out.notes.values())


def test_a_dominant_answer_is_shown_as_the_papers_random_draw_would_show_it_but_a_rare_one_is_hidden(tmp_path):
    """P495: 71% of the rows answer 'United States of America'. Such a question used to never see an
    exemplar with its own answer; a rare answer (2 rows of 30) still never shows in an exemplar."""
    examples = [_ex(i, f"Which country is film {i} from?", "United States of America") for i in range(21)]
    examples += [_ex(30 + i, f"Which country is film {30 + i} from?", c) for i, c in enumerate(["Mexico", "Mexico"])]
    examples += [_ex(40 + i, f"Which country is film {40 + i} from?", f"Country {i}") for i in range(7)]
    by_id = {ex.id: ex for ex in examples}
    _, rows = _probe(tmp_path, examples)
    usa_shown = 0
    for r in rows.values():
        mine = normalize_answer(r["answers"][0])
        shown = [normalize_answer(by_id[i].answers[0]) for s in r["exemplar_ids"] for i in s]
        assert all(len(s) == 4 for s in r["exemplar_ids"])
        if mine == "mexico":
            assert "mexico" not in shown, r["question"]
        if mine == "united states of america":
            usa_shown += shown.count(mine)
    n_usa = 21
    # the random draw: about 20 of the other 29 rows answer the same (each set of 4 shows 2.8 of them)
    assert usa_shown > n_usa * 10 * 4 * 0.5


def test_a_question_left_with_fewer_than_four_exemplars_is_named_in_the_runs_notes(tmp_path):
    """Every other question of the group names this one's answer, and the group is too small to
    borrow: its prompts are shorter than four shots, and the run's notes say so."""
    examples = [_ex(0, "Which company made the Zork game?", "Infocom")]
    examples += [_ex(i, f"Who worked at Infocom in year {i}?", f"Person {i}") for i in range(1, 5)]
    out, rows = _probe(tmp_path, examples)
    assert min(len(s) for s in rows["ex000"]["exemplar_ids"]) < 4
    note = out.notes["G"]
    assert "1 question of group 'G' gets fewer than 4 exemplars" in note and "--pool" in note
    # the note is stored with the run: the summary and the report read it back
    from core.summary import breakdown

    project = Project(tmp_path / "p.knowmix")
    assert "fewer than 4 exemplars" in json.dumps(breakdown(project, out.run_id).to_dict())

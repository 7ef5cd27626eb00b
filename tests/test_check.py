"""knowmix check: what training did to the model's knowledge, split by split.

The bookkeeping is tested with scripted models standing in for the base model and the trained one
(their answers are a pure function of the prompt, so the expected new errors and fixed questions
can be computed independently); tests/check_fixture.py builds the project, plan and run.
"""

from __future__ import annotations

import json

import pytest

from core.backends.base import GenRequest
from core.check import NOT_KNOWN, CheckModels, CheckSettings, load_check, plan_check, run_check
from core.datasets import Example
from core.jobs import CancelToken
from core.probe import qa_prompt
from tests.check_fixture import probed_project, trained_run
from tests.scripted import ScriptedBackend


@pytest.fixture
def trained(tmp_path):
    """A project with a finished probe, a natural-mix plan and a finished run with an adapter."""
    project, probe_id, w = probed_project(tmp_path / "p.knowmix", n=120)
    run_id = trained_run(project, probe_id)
    yield project, run_id, *w
    project.close()


def _zero_shot_right(knowledge: dict, examples) -> dict[str, bool]:
    backend = ScriptedBackend(knowledge)
    answers = backend.generate([GenRequest(qa_prompt(ex.question)) for ex in examples])
    return {ex.id: answers[i][0] == knowledge[ex.question][0] for i, ex in enumerate(examples)}


def test_new_errors_and_fixed_are_exactly_the_questions_that_changed(trained):
    project, run_id, examples, before, after = trained
    cp = plan_check(project, run_id)
    assert cp.questions["dev"] and cp.questions["train"]
    assert "questions (" in cp.cost_text() and "answers" in cp.cost_text()
    report = run_check(project, run_id, models=CheckModels(base=ScriptedBackend(before), adapter=ScriptedBackend(after)))
    assert report.status == "finished" and report.adapter == "best dev step 10"
    right_b, right_a = _zero_shot_right(before, examples), _zero_shot_right(after, examples)
    probe_cats = {r["example_id"]: r["category"] for r in project.probe_results(cp.probe_run.id)}
    knew = {i: c in ("HighlyKnown", "MaybeKnown") for i, c in probe_cats.items()}
    for name, split in report.splits.items():
        ids = [ex.id for ex in cp.questions[name]]
        assert split.n == len(ids) == sum(sum(row.values()) for row in split.transitions.values())
        # new errors by the answer: right before, wrong after; fixed: wrong before, right after
        assert {e["example_id"] for e in split.new_errors} == {i for i in ids if right_b[i] and not right_a[i]}
        assert {e["example_id"] for e in split.fixed} == {i for i in ids if right_a[i] and not right_b[i]}
        assert split.n_right_before == sum(right_b[i] for i in ids)
        assert split.n_known_before == sum(knew[i] for i in ids)
        # by the probe: known before, not known after (the same exemplar sets)
        lost = {e["example_id"] for e in split.probe_new_errors}
        assert lost == {
            e["example_id"] for e in split.probe_new_errors if e["category_after"] not in ("HighlyKnown", "MaybeKnown")
        }
        assert all(knew[i] for i in lost)
        assert split.em_before == pytest.approx(sum(right_b[i] for i in ids) / len(ids))
        assert split.em_after == pytest.approx(sum(right_a[i] for i in ids) / len(ids))
        # the rows of the transition matrix are the first probe's categories
        for cat, row in split.transitions.items():
            assert sum(row.values()) == sum(probe_cats[i] == cat for i in ids)
        # greedy only: after training P(T=0) = 0 is "not known at T=0", never Unknown
        assert "Unknown" not in {a for row in split.transitions.values() for a in row}
    dev = report.splits["dev"]
    assert any(dev.new_errors) or any(dev.fixed), "the scripted training changed nothing on dev: the test checks nothing"
    text = report.to_text()
    assert "By the answer" in text and "By the probe" in text and "before \\ after" in text
    stored = load_check(project, train_run_id=run_id)
    assert stored is not None and stored.to_dict()["splits"] == json.loads(json.dumps(report.to_dict()["splits"]))


def test_the_estimate_counts_each_exemplar_prompt_at_what_a_probe_prompt_took(trained):
    """A check asks every question's exemplar sets again: each such prompt costs about what one of
    the probe's took. Counted per answer instead (the probe's samples are nearly free), the Train
    step said "about 43 s" for a check of the starter sample that took 210 s."""
    project, run_id, *_ = trained
    cp = plan_check(project, run_id)
    prompts = sum(r["greedy_total"] for r in project.probe_results(cp.probe_run.id))
    assert any(r["sampled_total"] for r in project.probe_results(cp.probe_run.id)), "no samples: the test checks nothing"
    project.db.execute("UPDATE probe_runs SET seconds = ? WHERE id = ?", [prompts * 0.5, cp.probe_run.id])
    cp = plan_check(project, run_id)
    exemplar_prompts = cp.n * cp.probe_settings.n_sets
    assert cp.seconds is not None and cp.seconds >= 0.5 * exemplar_prompts
    assert cp.seconds <= 0.5 * (exemplar_prompts + 2 * cp.n) + 60


def test_the_train_sample_keeps_at_most_n_questions_per_category(trained):
    project, run_id, *_ = trained
    cp = plan_check(project, run_id, CheckSettings(train_per_category=3))
    probe_cats = {r["example_id"]: r["category"] for r in project.probe_results(cp.probe_run.id)}
    counts: dict[str, int] = {}
    for ex in cp.questions["train"]:
        counts[probe_cats[ex.id]] = counts.get(probe_cats[ex.id], 0) + 1
    assert counts and max(counts.values()) <= 3
    assert plan_check(project, run_id, CheckSettings(train_per_category=3)).questions["train"] == cp.questions["train"]


def test_a_cancelled_check_resumes_without_asking_again(trained):
    project, run_id, examples, before, after = trained
    token = CancelToken()
    seen = []

    def progress(p):
        seen.append(p.done)
        if len(seen) == 3:
            token.cancel()

    first = run_check(
        project,
        run_id,
        models=CheckModels(base=ScriptedBackend(before), adapter=ScriptedBackend(after)),
        cancel=token,
        progress=progress,
    )
    assert first.status == "cancelled"
    base, adapted = ScriptedBackend(before), ScriptedBackend(after)
    second = run_check(project, run_id, models=CheckModels(base=base, adapter=adapted))
    assert second.status == "finished"
    cp = plan_check(project, run_id)
    # the base model's answers saved before the cancel are not asked for again
    assert sum(r.n for r in base.calls) < cp.n
    fresh = run_check(
        project,
        run_id,
        CheckSettings(train_per_category=199),
        models=CheckModels(base=ScriptedBackend(before), adapter=ScriptedBackend(after)),
    )
    for name in second.splits:
        assert {e["example_id"] for e in second.splits[name].new_errors} == {
            e["example_id"] for e in fresh.splits[name].new_errors
        }


def test_with_samples_the_categories_after_training_are_the_papers_four(trained):
    project, run_id, examples, before, after = trained
    report = run_check(
        project,
        run_id,
        CheckSettings(full=True),
        models=CheckModels(base=ScriptedBackend(before), adapter=ScriptedBackend(after)),
    )
    after_cats = {a for s in report.splits.values() for row in s.transitions.values() for a in row}
    assert NOT_KNOWN not in after_cats and after_cats <= {"HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown"}


def test_the_ood_file_is_probed_with_the_base_model_and_then_with_the_adapter(tmp_path):
    """OOD questions have no first probe: the check probes them before training with the base model
    (exemplars drawn from the OOD file itself), then after, and counts their new errors."""
    project, probe_id, (examples, before, after) = probed_project(tmp_path / "p.knowmix", n=60)
    ood = [
        Example(id=f"o{i:02d}", question=f"Where is depot {i}?", answers=(f"Depot {i}",), group=f"H{i % 2}", line=i + 1, raw={})
        for i in range(12)
    ]
    before, after = dict(before), dict(after)
    for i, ex in enumerate(ood):
        # the base model knows every 3rd depot greedily; the "trained" one forgets all but the first
        before[ex.question] = (ex.answers[0], 1.0 if i % 3 == 0 else 0.0, 0.0)
        after[ex.question] = (ex.answers[0], 1.0 if i == 0 else 0.0, 0.0)
    run_id = trained_run(project, probe_id, ood=ood)
    cp = plan_check(project, run_id)
    assert [ex.id for ex in cp.questions["ood"]] == [ex.id for ex in ood]
    seen = []
    report = run_check(
        project, run_id, models=CheckModels(base=ScriptedBackend(before), adapter=ScriptedBackend(after)), progress=seen.append
    )
    # progress counts answers, as the cost shown before the check does (OOD questions are probed twice)
    assert seen[-1].unit == "answers" and seen[-1].done == seen[-1].total == cp.generations
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    split = report.splits["ood"]
    assert split.n == 12
    assert split.transitions == {"HighlyKnown": {"HighlyKnown": 1, NOT_KNOWN: 3}, NOT_KNOWN: {NOT_KNOWN: 8}}
    assert sorted(e["example_id"] for e in split.new_errors) == ["o03", "o06", "o09"] and not split.fixed
    assert split.em_before == pytest.approx(4 / 12) and split.em_after == pytest.approx(1 / 12)
    project.close()


class _Judging(ScriptedBackend):
    """A scripted model that also answers judge questions, always with ``verdict``."""

    def __init__(self, knowledge: dict, verdict: str) -> None:
        super().__init__(knowledge)
        self.verdict = verdict
        self.judged: list[GenRequest] = []

    def generate(self, requests):
        asked = [r for r in requests if "Answer to grade:" in r.prompt]
        if not asked:
            return super().generate(requests)
        self.judged.extend(asked)
        return [[self.verdict] * r.n for r in requests]


def test_in_judge_mode_the_check_asks_the_probes_judge_never_the_adapter(tmp_path):
    """A fine-tuned model grading its own answers is no judge: the re-probe's undecided answers go
    to the base model (the probe's judge), and the adapter, which would say yes, is never asked."""
    from core.probe import ProbeRequest, ProbeSettings, run_probe
    from core.store import Project
    from tests.check_fixture import world
    from tests.scripted import FakeDataset

    examples, before, after = world(60)
    project = Project(tmp_path / "p.knowmix")
    dataset_id = project.add_dataset(FakeDataset(examples))
    settings = ProbeSettings(n_sets=3, samples_per_set=2, preset="quick", match="judge")
    probe = run_probe(
        project,
        ProbeRequest(dataset_id=dataset_id, pool_dataset_id=None, model_spec="s", settings=settings),
        backend=_Judging(before, "no"),
    )
    run_id = trained_run(project, probe.run_id)
    base, adapter = _Judging(before, "no"), _Judging(after, "yes")
    report = run_check(project, run_id, models=CheckModels(base=base, adapter=adapter))
    assert report.status == "finished"
    assert base.judged and not adapter.judged
    project.close()


def _row(example_id: str, before: str, after: str, right_before: bool, right_after: bool) -> dict:
    return {
        "example_id": example_id,
        "category_before": before,
        "category_after": after,
        "right_before": int(right_before),
        "right_after": int(right_after),
        "answer_before": "a",
        "answer_after": "b",
    }


def test_new_errors_compare_the_answer_with_the_answer_and_the_probe_with_the_probe():
    """A MaybeKnown question the base model already answered wrongly alone, and still wrongly after,
    lost nothing: it is no new error (it was one when 'knew' came from the probe and 'after' from the
    answer). Each measure counts its own."""
    from core.check import split_check

    rows = [
        _row("mk_wrong_both", "MaybeKnown", "MaybeKnown", False, False),  # nothing changed
        _row("mk_probe_lost", "MaybeKnown", NOT_KNOWN, False, False),  # lost by the probe only
        _row("hk_answer_lost", "HighlyKnown", "HighlyKnown", True, False),  # lost by the answer only
        _row("u_fixed", "Unknown", NOT_KNOWN, False, True),  # fixed by the answer
    ]
    examples = {
        ("test", r["example_id"]): Example(
            id=r["example_id"], question=f"{r['example_id']}?", answers=("x",), group="G", line=1, raw={}
        )
        for r in rows
    }
    s = split_check("test", rows, examples, idk=False)
    assert [e["example_id"] for e in s.new_errors] == ["hk_answer_lost"]
    assert s.n_right_before == 1
    assert [e["example_id"] for e in s.probe_new_errors] == ["mk_probe_lost"]
    assert s.n_known_before == 3
    assert [e["example_id"] for e in s.fixed] == ["u_fixed"]
    assert s.new_errors_text().startswith("By the answer") and "1 of 1 test questions" in s.new_errors_text()
    assert "1 of 3 test questions known before training" in s.probe_new_errors_text()

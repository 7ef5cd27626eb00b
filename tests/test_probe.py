"""The SliCK probe on a scripted backend: categories, schedules, resume and cancel."""

from __future__ import annotations

import json
import random
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest

from core.datasets import Example
from core.errors import SettingsError
from core.jobs import CancelToken
from core.probe import (
    CATEGORIES,
    HOLDOUT_SIZE,
    ProbeJob,
    ProbeRequest,
    ProbeSettings,
    _prepare,
    answer_token_limit,
    build_prompt,
    categorize,
    draw_exemplar_sets,
    preset,
    probe_examples,
    run_probe,
)
from core.scoring import KeyPruner, PrefixPruner, Scorer, is_correct, normalize_answer
from core.store import Project
from core.summary import breakdown
from tests.scripted import FakeDataset, ScriptedBackend


def make_examples(n: int, groups: int = 3, seed: int = 0) -> tuple[list[Example], dict]:
    rng = random.Random(seed)
    examples, knowledge = [], {}
    profiles = [(1.0, 0.0), (0.0, 0.0), (0.0, 0.05), (0.5, 0.5), (0.0, 0.01), (0.2, 0.0), (0.95, 0.3)]
    for i in range(n):
        q = f"Question number {i}?"
        gold = f"Answer {i}"
        group = f"G{i % groups}"
        knowledge[q] = (gold, *profiles[rng.randrange(len(profiles))])
        examples.append(Example(id=f"ex{i:04d}", question=q, answers=(gold, f"alias {i}"), group=group, line=i + 1, raw={}))
    return examples, knowledge


def test_categories_follow_the_paper_rules():
    assert categorize(10, 10, 0) == "HighlyKnown"
    assert categorize(3, 10, 0) == "MaybeKnown"
    assert categorize(9, 10, 160) == "MaybeKnown"
    assert categorize(0, 10, 1) == "WeaklyKnown"
    assert categorize(0, 10, 0) == "Unknown"


def test_prompt_is_four_qa_pairs_then_the_question():
    ex = [Example(id=str(i), question=f"q{i}", answers=(f"a{i}", "x"), group="g", line=i, raw={}) for i in range(4)]
    assert build_prompt(ex, "Who?") == "Q: q0\nA: a0\n\nQ: q1\nA: a1\n\nQ: q2\nA: a2\n\nQ: q3\nA: a3\n\nQ: Who?\nA:"


def test_a_chat_rows_system_turn_comes_first_and_exemplars_keep_their_own_answer_style():
    ex = [Example(id=str(i), question=f"q{i}", answers=(f"It's a{i}.",), group="g", line=i, raw={}) for i in range(2)]
    prompt = build_prompt(ex, "Who?", system="You are terse.")
    assert prompt == "You are terse.\n\nQ: q0\nA: It's a0.\n\nQ: q1\nA: It's a1.\n\nQ: Who?\nA:"


def KeyMatcher(keys, question=""):
    return Scorer("key", keys, question).right


def AnswerMatcher(aliases):
    return Scorer("exact", aliases).right


def test_key_mode_finds_the_key_in_sentence_answers_as_whole_words():
    m = KeyMatcher(["San Rafael", "San Rafael, California"])
    assert m("It's San Rafael.")
    assert m("San Rafael is the capital of Marin County.")
    assert m("the answer is san rafael")
    assert not m("the answer is san rafael, i believe")  # hedged: not knowledge
    assert not m("San Rafaela.")  # not inside a longer word
    assert not m("Sacramento.\nSan Rafael")  # only the first line is the model's answer
    assert not KeyMatcher(["Paris"])("Parisian food")
    # a key that is also in the question counts only on its own, not where the answer repeats the question
    q = "What is the capital of the canton of Jonzac?"
    assert KeyMatcher(["Jonzac"], q)("It's Jonzac.")
    assert KeyMatcher(["Jonzac"], q)("The capital of the canton of Jonzac is Jonzac.")
    assert not KeyMatcher(["Jonzac"], q)("The capital of the Canton of Jonzac is Saintes.")
    assert not KeyPruner(["Jonzac"], q)("The capital of the canton of Jonzac, ")


def test_key_pruner_stops_only_answers_that_are_already_correct():
    rng = random.Random(2)
    keys = ["San Rafael", "U.S.", "Vathy"]
    pruner, matcher = KeyPruner(keys), KeyMatcher(keys)
    pieces = ["It's", " San", " Raf", "ael", "a", ".", ",", " is", " the", " capital", "U", "S", " Vathy", "\n", " ", " not"]
    stopped = 0
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        for cut in range(len(text) + 1):
            if pruner(text[:cut]):  # once it stops, the answer kept so far is graded right
                stopped += 1
                assert matcher(text[:cut]), (text, text[:cut])
    assert stopped > 100
    assert not pruner("It's San Rafael")  # "Rafael" may still grow into "Rafaela"
    assert not pruner("It's San Rafael, ")  # the sentence may still go on: "..., not Novato" is fine, "is not" is not
    assert not pruner("San Rafael is not")
    question = "Where is Jonzac Township?"
    qpruner, qmatcher = KeyPruner(["Jonzac"], question), KeyMatcher(["Jonzac"], question)
    assert not qpruner("It's Jonzac ") and not qmatcher("It's Jonzac Township")
    assert pruner("It's San Rafael. It")


def test_answer_length_follows_the_longest_gold_answer_within_a_cap():
    assert answer_token_limit(["San Rafael", "Wexford"], 24) == 24  # entity answers: the setting's 24
    sentence = "Samos's capital is Vathy, which is also its largest administrative centre."
    assert 24 < answer_token_limit([sentence], 24) < 96
    assert answer_token_limit(["x" * 2000], 24) == 96
    assert answer_token_limit(["x" * 2000], 200) == 200  # a higher setting wins


def test_auto_matching_is_exact_for_entity_answers_and_key_for_sentence_answers():
    pool = [Example(id=f"p{i}", question=f"q{i}", answers=(f"a{i}",), group="g", line=i, raw={}) for i in range(6)]
    by_id = {ex.id: ex for ex in pool}
    sets = [[f"p{i}" for i in range(5)]]
    entity = Example(id="e", question="Capital of Marin County?", answers=("San Rafael",), group="g", line=9, raw={})
    sentence = Example(
        id="s",
        question="Capital of Marin County?",
        answers=("The capital of Marin County is San Rafael, a city north of San Francisco.",),
        group="g",
        line=10,
        raw={},
        keys=("San Rafael",),
        key_source="extracted",
    )
    settings = ProbeSettings()
    w_entity, w_sentence = _prepare(entity, sets, by_id, settings), _prepare(sentence, sets, by_id, settings)
    assert (w_entity.mode, w_sentence.mode) == ("exact", "key")
    assert w_entity.matcher("San Rafael") and not w_entity.matcher("It's San Rafael.")
    assert w_sentence.matcher("It's San Rafael.") and not w_sentence.matcher("It's Novato.")
    assert w_sentence.max_tokens > w_entity.max_tokens == 24
    exact = _prepare(sentence, sets, by_id, ProbeSettings(match="exact"))
    assert not exact.matcher("It's San Rafael.")
    assert ProbeSettings(match="key").identity() != ProbeSettings().identity()
    assert "key match" in ProbeSettings(match="key").describe()
    assert '"scorer"' in ProbeSettings().identity()  # a change of grading rules is a new run
    assert preset("paper", match="key").preset == "paper"  # scoring is not budget
    with pytest.raises(SettingsError, match="match must be one of"):
        preset("paper", match="fuzzy")


def test_answer_matching_normalises_and_accepts_aliases():
    assert is_correct("The Beatles.", ["Beatles"])
    assert is_correct("  paris ", ["London", "Paris"])
    assert is_correct("U.S.", ["US"])
    assert not is_correct("Paris, France", ["Paris"])
    assert not is_correct("", ["Paris"])
    assert normalize_answer("An  Apple\nmore text") == "apple"


def test_pruner_never_stops_an_answer_that_could_still_be_correct():
    rng = random.Random(1)
    aliases = ["The Beatles", "Jean-Paul Sartre", "U.S.", "São Paulo", "New York City"]
    pruner = PrefixPruner(aliases)
    matcher = AnswerMatcher(aliases)
    pieces = [
        "The",
        " ",
        "Beat",
        "les",
        "Jean",
        "-",
        "Paul",
        " Sar",
        "tre",
        "U",
        ".",
        "S",
        "São",
        " Paulo",
        "New",
        " York",
        " City",
        ",",
        " the",
        " a",
        "x",
        "Paris",
        "  ",
    ]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        if matcher(text):  # a correct answer's every prefix must stay alive
            for cut in range(len(text) + 1):
                assert not pruner(text[:cut]), (text, text[:cut])
    assert pruner("London")
    assert not pruner("The Bea")
    assert not pruner("")


# Answers whose characters take several UTF-8 bytes, or a combining mark after the letter (NFD):
# a decoder shows a character still arriving as U+FFFD (torch's tokenizers) or drops it (llama.cpp).
ACCENTED = ["Kraków", "José Martí", "São Paulo", "Zürich", "Đorđe Balašević", "Nukâka Coster-Waldau"]


def accented_prefixes(alias: str):
    """Every byte prefix of the alias, NFC and NFD, decoded both ways."""
    for form in ("NFC", "NFD"):
        data = unicodedata.normalize(form, alias).encode()
        for i in range(1, len(data) + 1):
            for errors in ("replace", "ignore"):
                yield data[:i].decode("utf-8", errors=errors)


@pytest.mark.parametrize("alias", ACCENTED)
def test_pruner_keeps_an_answer_whose_next_character_is_still_arriving(alias):
    pruner = PrefixPruner([alias])
    for partial in accented_prefixes(alias):
        assert not pruner(partial), f"{partial!r} was stopped on its way to {alias!r}"
    assert not PrefixPruner(["Kraków"])("Krak\ufffd")
    assert not PrefixPruner(["José"])("Jose")  # the acute accent may still come as a combining mark
    assert not PrefixPruner(["Kraków"])("Krakow ")  # graders accept a name without its accents
    assert PrefixPruner(["Kraków"])("Krakau ")
    assert PrefixPruner(["Kraków"])("Berlin\ufffd")


def test_exemplar_sets_are_drawn_once_per_group_with_a_seed():
    examples, _ = make_examples(40)
    settings = ProbeSettings()
    a, notes = draw_exemplar_sets(examples, {e.group for e in examples}, settings)
    b, _ = draw_exemplar_sets(examples, {e.group for e in examples}, settings)
    assert a == b and not notes
    group_of = {e.id: e.group for e in examples}
    for group, sets in a.items():
        assert len(sets) == settings.n_sets
        for ids in sets:
            assert len(ids) == settings.shots + 1 and len(set(ids)) == len(ids)
            assert all(group_of[i] == group for i in ids)
    c, _ = draw_exemplar_sets(examples, {e.group for e in examples}, ProbeSettings(seed=7))
    assert c != a


def test_a_question_never_sees_itself_as_an_exemplar():
    examples, knowledge = make_examples(12, groups=1)
    backend = ScriptedBackend(knowledge)
    sets, _ = draw_exemplar_sets(examples, {"G0"}, ProbeSettings(n_sets=10))
    rows = probe_examples(backend, examples, examples, ProbeSettings(n_sets=10), sets)
    for row in rows:
        used = json.loads(row["exemplar_ids"])
        assert len(used) == 10
        assert all(len(ids) == 4 and row["example_id"] not in ids for ids in used)
    for req in backend.calls:
        question = req.prompt.rsplit("Q: ", 1)[1]
        assert req.prompt.count(question) == 1


def test_small_groups_borrow_exemplars_and_say_so():
    examples, _ = make_examples(12, groups=1)
    lonely = Example(id="lonely", question="Alone?", answers=("yes",), group="rare", line=99, raw={})
    sets, notes = draw_exemplar_sets(examples + [lonely], {"G0", "rare"}, ProbeSettings())
    assert "rare" in notes and "all groups" in notes["rare"]
    with pytest.raises(SettingsError, match="at least 5"):
        draw_exemplar_sets(examples[:3], {"G0"}, ProbeSettings())


def test_lazy_schedule_gives_exactly_the_full_schedules_categories_with_fewer_calls():
    examples, knowledge = make_examples(90)
    sets, _ = draw_exemplar_sets(examples, {e.group for e in examples}, ProbeSettings())
    lazy_backend, full_backend = ScriptedBackend(knowledge), ScriptedBackend(knowledge)
    lazy = probe_examples(lazy_backend, examples, examples, ProbeSettings(schedule="lazy"), sets)
    full = probe_examples(full_backend, examples, examples, ProbeSettings(schedule="full"), sets)
    lazy_cats = {r["example_id"]: r["category"] for r in lazy}
    full_cats = {r["example_id"]: r["category"] for r in full}
    assert lazy_cats == full_cats
    assert set(lazy_cats.values()) == set(CATEGORIES)  # the scripted data exercises every category
    assert lazy_backend.stats.answers < full_backend.stats.answers / 2
    for lz, fl in zip(sorted(lazy, key=lambda r: r["example_id"]), sorted(full, key=lambda r: r["example_id"])):
        assert lz["greedy_answers"] == fl["greedy_answers"] and lz["p_greedy"] == fl["p_greedy"]
        assert fl["sampled_total"] == 160 and fl["p_sampled"] is not None
        if lz["category"] in ("HighlyKnown", "MaybeKnown"):
            assert lz["sampled_total"] == 0  # a correct greedy answer means no samples are needed
        if lz["category"] == "Unknown":
            assert lz["sampled_total"] == 160 and lz["p_sampled"] == 0.0
        if lz["category"] in ("WeaklyKnown", "Unknown"):  # every sample, so P(T>0) is measured to the end
            assert lz["sampled_total"] == 160 and lz["p_sampled"] == fl["p_sampled"]
            assert lz["sampled_answers"] == fl["sampled_answers"]
        if lz["category"] == "WeaklyKnown":
            assert 0 < lz["p_sampled"] < 1


def test_batch_size_and_order_do_not_change_results():
    examples, knowledge = make_examples(30)
    sets, _ = draw_exemplar_sets(examples, {e.group for e in examples}, ProbeSettings())
    a = probe_examples(ScriptedBackend(knowledge), examples, examples, ProbeSettings(chunk_size=1), sets)
    b = probe_examples(ScriptedBackend(knowledge), list(reversed(examples)), examples, ProbeSettings(chunk_size=7), sets)
    key = lambda rows: {r["example_id"]: (r["category"], r["greedy_answers"], r["sampled_answers"]) for r in rows}
    assert key(a) == key(b)


def test_every_sample_has_its_own_seed_per_example_set_and_index():
    examples, knowledge = make_examples(6, groups=1)
    backend = ScriptedBackend({q: (g, 0.0, 0.0) for q, (g, _p, _s) in knowledge.items()})
    sets, _ = draw_exemplar_sets(examples, {"G0"}, ProbeSettings())
    probe_examples(backend, examples, examples, ProbeSettings(), sets)
    seeds = [s for req in backend.calls if not req.greedy for s in req.seeds]
    assert len(seeds) == 6 * 10 * 16 == len(set(seeds))
    sampled = [req for req in backend.calls if not req.greedy]
    assert all(req.temperature == 0.5 and req.top_k == 40 and req.n == 16 for req in sampled)


def test_cheaper_presets_say_so():
    assert ProbeSettings().is_paper_budget
    assert "paper's full budget" in ProbeSettings().describe()
    quick = preset("quick")
    assert not quick.is_paper_budget
    assert "CHEAPER than the paper" in quick.describe() and "Unknown" in quick.describe()
    assert not preset("paper", n_sets=5).is_paper_budget
    with pytest.raises(SettingsError, match="Unknown probe preset"):
        preset("turbo")
    with pytest.raises(SettingsError, match="exemplar sets"):
        preset("paper", n_sets=0)


def _project_with(tmp_path, examples):
    project = Project(tmp_path / "p.knowmix")
    dataset_id = project.add_dataset(FakeDataset(examples))
    return project, dataset_id


def test_run_probe_saves_results_and_resumes_without_redoing_work(tmp_path):
    examples, knowledge = make_examples(40)
    project, dataset_id = _project_with(tmp_path, examples)
    settings = ProbeSettings(chunk_size=5)

    token = CancelToken()
    saved = []

    def progress(p):
        if p.message.endswith("batch saved"):
            saved.append(p.done)
            if len(saved) == 3:
                token.cancel()

    first = run_probe(
        project,
        ProbeRequest(dataset_id=dataset_id, pool_dataset_id=None, model_spec="scripted", settings=settings),
        backend=ScriptedBackend(knowledge),
        progress=progress,
        cancel=token,
    )
    assert first.status == "cancelled" and first.n_done == saved[-1] == 14  # batches of 5, 5, 4 (group G0 has 14)
    assert project.probe_run(first.run_id).status == "cancelled"
    before = {r["example_id"]: r for r in project.probe_results(first.run_id)}
    assert len(before) == 14

    backend = ScriptedBackend(knowledge)
    second = run_probe(
        project,
        ProbeRequest(dataset_id=dataset_id, pool_dataset_id=None, model_spec="scripted", settings=settings),
        backend=backend,
    )
    assert second.run_id == first.run_id and second.status == "finished" and second.resumed_from == 14
    asked = {req.prompt.rsplit("Q: ", 1)[1].rsplit("\nA:", 1)[0] for req in backend.calls}
    assert not asked & {next(e.question for e in examples if e.id == i) for i in before}
    after = {r["example_id"]: r for r in project.probe_results(first.run_id)}
    assert len(after) == 40 and all(after[i] == before[i] for i in before)

    uninterrupted = probe_examples(
        ScriptedBackend(knowledge), examples, examples, settings, project.exemplar_sets(first.run_id)[0]
    )
    assert {r["example_id"]: r["category"] for r in uninterrupted} == {i: r["category"] for i, r in after.items()}

    third = run_probe(
        project,
        ProbeRequest(dataset_id=dataset_id, pool_dataset_id=None, model_spec="scripted", settings=settings),
        backend=ScriptedBackend(knowledge),
    )
    assert third.status == "already finished" and third.run_id == first.run_id

    b = breakdown(project)
    assert b.total == 40 and sum(b.to_dict()["overall"]["counts"].values()) == 40
    assert set(b.groups) == {"G0", "G1", "G2"}
    assert "HighlyKnown" in b.to_table() and "all" in b.to_table()
    project.close()


def test_other_settings_or_model_make_a_new_run(tmp_path):
    examples, knowledge = make_examples(10)
    project, dataset_id = _project_with(tmp_path, examples)
    a = run_probe(
        project,
        ProbeRequest(dataset_id=dataset_id, pool_dataset_id=None, model_spec="s", settings=preset("smoke")),
        backend=ScriptedBackend(knowledge),
    )
    b = run_probe(
        project,
        ProbeRequest(dataset_id=dataset_id, pool_dataset_id=None, model_spec="s", settings=preset("smoke", seed=3)),
        backend=ScriptedBackend(knowledge),
    )
    assert a.run_id != b.run_id and len(project.probe_runs()) == 2
    project.close()


def test_progress_reports_rate_and_eta(tmp_path):
    examples, knowledge = make_examples(12)
    events = []
    sets, _ = draw_exemplar_sets(examples, {e.group for e in examples}, ProbeSettings())
    probe_examples(
        ScriptedBackend(knowledge), examples, examples, ProbeSettings(chunk_size=4), sets, ProbeJob(progress=events.append)
    )
    assert events[0].done == 0 and events[-1].done == events[-1].total == 12
    done = [e.done for e in events]
    assert done == sorted(done)
    assert any(e.rate > 0 and e.eta_s is not None for e in events)


def test_a_dataset_without_groups_prints_one_row(tmp_path):
    examples, knowledge = make_examples(8, groups=1)
    examples = [Example(id=e.id, question=e.question, answers=e.answers, group="all", line=e.line, raw={}) for e in examples]
    project, dataset_id = _project_with(tmp_path, examples)
    run_probe(
        project,
        ProbeRequest(dataset_id=dataset_id, pool_dataset_id=None, model_spec="s", settings=preset("smoke")),
        backend=ScriptedBackend(knowledge),
    )
    table = breakdown(project).to_table()
    assert [line.split()[0] for line in table.splitlines()[2:]] == ["all"]
    project.close()


JUDGE_ASKS = "Answer to grade:"


def _graded(prompt: str) -> tuple[str, str]:
    """(gold, answer) of a judge prompt."""
    gold = prompt.split("Gold answer: ", 1)[1].split("\n", 1)[0]
    answer = prompt.split(JUDGE_ASKS + " ", 1)[1].split("\n", 1)[0]
    return gold, answer


class _YesJudge(ScriptedBackend):
    """A judge model that says yes to everything; it records what it was asked."""

    name = "judge"

    def __init__(self) -> None:
        super().__init__({})
        self.info = replace(self.info, name="judge", fingerprint="judge-v1")

    def generate(self, requests):
        self.calls.extend(requests)
        return [["yes"] * r.n for r in requests]


class _ParaphraseJudge(_YesJudge):
    """A discerning judge: no to another question's gold answer, yes to the gold itself and to the
    probed model's "wrong ..." answers (as if they were paraphrases the rules cannot see)."""

    def generate(self, requests):
        self.calls.extend(requests)
        out = []
        for r in requests:
            gold, answer = _graded(r.prompt)
            out.append(["yes" if answer == gold or answer.startswith("wrong") else "no"] * r.n)
        return out


class _NeverJudges(ScriptedBackend):
    """The probed model: answers as scripted, and says "no" when asked to judge."""

    def generate(self, requests):
        asked = [r for r in requests if JUDGE_ASKS in r.prompt]
        if not asked:
            return super().generate(requests)
        self.calls.extend(asked)
        return [["no"] * r.n for r in requests]


def test_another_model_can_judge_and_it_is_part_of_the_runs_identity(tmp_path):
    """--judge-model: the yes/no questions go to that model, never to the probed one."""
    examples, knowledge = make_examples(6)
    knowledge = {q: (gold, 0.0, 0.0) for q, (gold, _g, _s) in knowledge.items()}  # the probed model is always wrong
    project, dataset_id = _project_with(tmp_path, examples)
    probed, judge = _NeverJudges(knowledge), _ParaphraseJudge()
    base = dict(dataset_id=dataset_id, pool_dataset_id=None, model_spec="s")
    settings = preset("smoke", match="judge", judge_model=str(tmp_path / "judge.gguf"))
    assert settings.preset == "smoke" and "judge is another model: judge.gguf" in settings.describe()
    judged = run_probe(project, ProbeRequest(**base, settings=settings), backend=probed, judge_backend=judge)
    cats = {r["category"] for r in project.probe_results(judged.run_id)}
    assert cats == {"HighlyKnown"}  # every answer the rules could not decide was judged right by the other model
    assert judge.calls and all(JUDGE_ASKS in r.prompt for r in judge.calls)
    assert not any(JUDGE_ASKS in r.prompt for r in probed.calls)
    run = project.probe_run(judged.run_id)
    assert '"judge_fingerprint": "judge-v1"' in run.settings_json
    assert json.loads(run.judge_calibration)["false_yes"] == 0.0  # measured on the data, stored with the run
    # each distinct answer of a question is asked once
    asked = [_graded(r.prompt)[1] for r in judge.calls if _graded(r.prompt)[1].startswith("wrong")]
    assert len(asked) == len(set(asked))
    # the probed model as its own judge (it never says yes) is another run, with other categories
    own = run_probe(project, ProbeRequest(**base, settings=preset("smoke", match="judge")), backend=probed)
    assert own.run_id != judged.run_id
    assert any(JUDGE_ASKS in r.prompt for r in probed.calls)
    assert {r["category"] for r in project.probe_results(own.run_id)} == {"Unknown"}
    with pytest.raises(SettingsError, match="only with match 'judge'"):
        preset("smoke", judge_model="x.gguf")
    project.close()


def test_a_judge_that_says_yes_to_everything_is_refused_with_its_false_yes_rate(tmp_path):
    examples, knowledge = make_examples(12)
    knowledge = {q: (gold, 0.0, 0.0) for q, (gold, _g, _s) in knowledge.items()}
    project, dataset_id = _project_with(tmp_path, examples)
    statuses: list[str] = []
    settings = preset("smoke", match="judge", judge_model=str(tmp_path / "judge.gguf"))
    with pytest.raises(SettingsError, match=r"yes to 12 of 12 wrong answers \(false-yes 100%\)"):
        run_probe(
            project,
            ProbeRequest(dataset_id=dataset_id, pool_dataset_id=None, model_spec="s", settings=settings),
            backend=ScriptedBackend(knowledge),
            judge_backend=_YesJudge(),
            on_status=statuses.append,
        )
    assert any("false-yes 100%" in m for m in statuses)  # shown before the refusal
    assert not list(project.probe_results(project.probe_run().id))  # nothing was graded by it
    project.close()


def test_a_missing_judge_model_is_named_before_anything_is_written(tmp_path, capsys):
    from core.cli import main

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"Q{i}?", "answer": f"A{i}"}) + "\n" for i in range(8)))
    project = tmp_path / "p.knowmix"
    args = ["probe", "--data", str(data), "--project", str(project), "--preset", "smoke", "--match", "judge"]
    assert main([*args, "--judge-model", str(tmp_path / "nope.gguf")]) != 0
    err = capsys.readouterr().err
    assert "The judge model (--judge-model): Model not found" in err and "nope.gguf" in err
    assert not project.exists()


# -- exemplars: distinct sets, a held-out pool, nothing that gives the answer away ----------------


def test_a_groups_sets_are_distinct_and_use_the_pool_evenly():
    examples, _ = make_examples(20, groups=1)
    sets, notes = draw_exemplar_sets(examples, {"G0"}, ProbeSettings())
    shown = [frozenset(s[:4]) for s in sets["G0"]]
    assert len(set(shown)) == 10 and not notes
    uses = {ex.id: 0 for ex in examples}
    for s in sets["G0"]:
        assert len(set(s)) == 5
        for i in s:
            uses[i] += 1
    assert set(uses.values()) <= {2, 3}  # 50 places over 20 questions: each is used 2 or 3 times


def test_a_pool_too_small_for_ten_distinct_sets_is_named():
    examples, _ = make_examples(5, groups=1)
    sets, notes = draw_exemplar_sets(examples, {"G0"}, ProbeSettings())
    assert len({frozenset(s[:4]) for s in sets["G0"]}) == 5  # C(5, 4): every distinct set is used
    assert "only 5 distinct exemplar sets" in notes["G0"] and "--pool" in notes["G0"]


@pytest.mark.parametrize("n", [5, 6, 7, 8, 9])
def test_a_small_pool_gives_as_many_distinct_sets_as_it_can_on_every_seed(n):
    """Issue 20, item 5: the redeal gave 8-9 distinct sets of 10 on 140 of 200 seeds with 6 questions;
    enumerating the combinations gives min(10, C(n, 4)) on every seed, the note naming the true count."""
    import math

    examples, _ = make_examples(n, groups=1)
    want = min(10, math.comb(n, 4))
    for seed in range(200):
        sets, notes = draw_exemplar_sets(examples, {"G0"}, ProbeSettings(seed=seed))
        assert len(sets["G0"]) == 10
        assert len({frozenset(s[:4]) for s in sets["G0"]}) == want, seed
        assert all(len(set(s)) == 5 for s in sets["G0"])
        uses = {ex.id: sum(ex.id in s for s in sets["G0"]) for ex in examples}
        assert max(uses.values()) - min(uses.values()) <= 2  # as evenly as the pool allows
        if want < 10:
            assert f"only {want} distinct exemplar sets" in notes["G0"]
        else:
            assert "G0" not in notes


def test_large_groups_draw_exemplars_from_a_small_held_out_pool_and_say_it_is_probed_too():
    examples, knowledge = make_examples(450, groups=2)  # G0: 225 rows, G1: 225 rows
    settings = ProbeSettings(n_sets=3, samples_per_set=0)
    sets, notes = draw_exemplar_sets(examples, {"G0", "G1"}, settings, hold_out=True)
    for group in ("G0", "G1"):
        used = {i for s in sets[group] for i in s}
        assert len(used) <= HOLDOUT_SIZE
        assert f"{HOLDOUT_SIZE} of its 225 rows" in notes[group] and "probed too" in notes[group]
    same, _ = draw_exemplar_sets(examples, {"G0", "G1"}, settings, hold_out=True)
    assert same == sets  # seeded
    not_held, no_notes = draw_exemplar_sets(examples, {"G0", "G1"}, settings)
    assert not no_notes  # a pool file: its whole group is the pool
    rows = probe_examples(ScriptedBackend(knowledge), examples, examples, settings, sets, ProbeJob(hold_out=True))
    pool_ids = {i for s in sets["G0"] for i in s} | {i for s in sets["G1"] for i in s}
    assert len(rows) == 450 and pool_ids <= {r["example_id"] for r in rows}
    for r in rows:
        for shown in json.loads(r["exemplar_ids"]):
            assert len(shown) == 4 and set(shown) <= pool_ids and r["example_id"] not in shown


SPOUSES = Path(__file__).parent / "data" / "spouses" / "P26_spouse_pairs.jsonl"


def _spouse_questions(n: int = 40) -> list[dict]:
    """``n`` P26 (spouse) questions of the shipped train split whose answers are themselves the
    subjects of other questions in the set: pairs "A married to? B" / "B married to? A" (the first
    ``n`` of ``SPOUSES``, 20 pairs chosen from ``../shared/data/entityquestions/train/P26.train.jsonl``)."""
    rows = [json.loads(line) for line in SPOUSES.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) >= n and n % 2 == 0
    return rows[:n]


def test_no_exemplar_gives_a_spouse_questions_answer_away(tmp_path):
    """The issue's check: 40 spouse questions whose answers are subjects of other questions; with the
    dataset as its own pool, no exemplar shown for a question carries its answer, and the results
    list the exemplar ids and the swaps."""
    from core.datasets import load_dataset
    from core.results import result_rows
    from core.scoring import Mentions

    data = tmp_path / "spouses.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _spouse_questions()), encoding="utf-8")
    ds = load_dataset(data)
    project = Project(tmp_path / "p.knowmix")
    dataset_id = project.add_dataset(ds)
    knowledge = {ex.question: (ex.answers[0], 0.5, 0.2) for ex in ds.examples}
    outcome = run_probe(
        project,
        ProbeRequest(
            dataset_id=dataset_id,
            pool_dataset_id=None,
            model_spec="scripted",
            settings=ProbeSettings(n_sets=10, samples_per_set=1),
        ),
        backend=ScriptedBackend(knowledge),
    )
    assert outcome.status == "finished"
    by_id = {ex.id: ex for ex in ds.examples}
    rows = result_rows(project, outcome.run_id)
    swaps = 0
    for r in rows:
        mentions = Mentions(r["answers"])
        assert len(r["exemplar_ids"]) == 10
        for shown in r["exemplar_ids"]:
            assert len(shown) == 4 and r["id"] not in shown
            for i in shown:
                ex = by_id[i]
                assert not mentions(ex.question) and not any(mentions(a) for a in ex.answers), (r["question"], ex.question)
        for swap in r["exemplar_swaps"]:
            assert swap["why"] in ("self", "same-answer", "names-answer") and swap["by"] not in (None, swap["dropped"])
        swaps += len(r["exemplar_swaps"])
    # a spouse pair shows up as an exemplar of its partner's question in about 1 draw in 8
    assert any(s["why"] == "names-answer" for r in rows for s in r["exemplar_swaps"])
    assert swaps > 10
    summary = breakdown(project, outcome.run_id)  # the count and the reason reach the output
    leaks = summary.exemplar_swaps["names-answer"]
    assert leaks == sum(s["why"] == "names-answer" for r in rows for s in r["exemplar_swaps"])
    assert f"{leaks} because its question names this question's answer" in summary.headline()
    assert summary.to_dict()["exemplar_swaps"]["names-answer"] == leaks


def test_every_weakly_known_and_unknown_example_has_its_p_sampled_in_the_results_and_the_summary(tmp_path):
    from core.results import result_rows

    examples, knowledge = make_examples(60)
    project, dataset_id = _project_with(tmp_path, examples)
    out = run_probe(
        project,
        ProbeRequest(
            dataset_id=dataset_id,
            pool_dataset_id=None,
            model_spec="scripted",
            settings=ProbeSettings(n_sets=4, samples_per_set=8, preset="quick"),
        ),
        backend=ScriptedBackend(knowledge),
    )
    rows = result_rows(project, out.run_id)
    open_ = [r for r in rows if r["category"] in ("WeaklyKnown", "Unknown")]
    assert {r["category"] for r in open_} == {"WeaklyKnown", "Unknown"}
    assert all(r["p_sampled"] is not None for r in open_)
    assert all(r["p_sampled"] > 0 for r in open_ if r["category"] == "WeaklyKnown")
    summary = breakdown(project, out.run_id)
    n_weak = sum(r["category"] == "WeaklyKnown" for r in rows)
    assert summary.p_sampled["WeaklyKnown"][1] == n_weak and "WeaklyKnown" in summary.p_sampled_text()
    assert "Mean P(T>0)" in summary.headline()


def test_the_report_names_too_few_distinct_sets_and_the_replaced_exemplars(tmp_path):
    from core.report import write_report

    rows = _spouse_questions(6)  # 6 questions of one group: C(6, 4) = 15 sets, but 3 pairs give answers away
    data = tmp_path / "spouses.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows[:5]), encoding="utf-8")
    from core.datasets import load_dataset

    ds = load_dataset(data)
    project = Project(tmp_path / "p.knowmix")
    dataset_id = project.add_dataset(ds)
    knowledge = {ex.question: (ex.answers[0], 0.0, 0.2) for ex in ds.examples}
    out = run_probe(
        project,
        ProbeRequest(
            dataset_id=dataset_id,
            pool_dataset_id=None,
            model_spec="scripted",
            settings=ProbeSettings(n_sets=10, samples_per_set=2),
        ),
        backend=ScriptedBackend(knowledge),
    )
    html = write_report(tmp_path / "p.knowmix", tmp_path / "r.html").read_text(encoding="utf-8")
    assert "only 5 distinct exemplar sets" in html  # C(5, 4) = 5 < 10
    assert "Exemplars replaced" in html and "names this question&#39;s answer" in html
    assert "Mean P(T&gt;0)" in html
    assert breakdown(project, out.run_id).exemplar_notes

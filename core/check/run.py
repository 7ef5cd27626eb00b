"""Running a check: the base model, then the adapter, on the plan's test and dev splits, a fixed
sample of the training questions and the out-of-distribution file (see ``types`` for what is
measured).

Work is saved per batch in the project (``check_results``), so a killed or cancelled check resumes
where it stopped when it is run again with the same settings, like a probe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence

from ..backends.base import Backend, GenRequest
from ..categories import CATEGORIES, KNOWN
from ..datasets import Example
from ..errors import Cancelled, ModelCrashed, ProjectError
from ..formats import duration_words
from ..jobs import CancelToken, ProgressCallback, RateMeter, no_progress
from ..probe import ProbeJob, ProbeSettings, categorize, draw_exemplar_sets, probe_examples, qa_prompt, zero_shot_messages
from ..scoring import normalize_answer
from ..store import checks as _store
from ..store.records import ProbeRun, TrainRun
from .adapter_id import current_adapter, stale_words
from .estimate import pass_meter
from .models import CheckModels, _backend_words, _load, _load_judge
from .types import CHECK_SPLITS, NOT_KNOWN, CheckReport, CheckSettings, SplitCheck

BATCH = 16  # questions per saved batch


@dataclass
class CheckPlan:
    """What a check of one training run will ask, and roughly what it costs."""

    train_run: TrainRun
    plan: Any
    probe_run: ProbeRun
    probe_settings: ProbeSettings
    questions: dict[str, list[Example]]  # split -> examples, in file order
    before: dict[str, dict]  # example id -> the first probe's result (category, p_greedy)
    generations: int
    seconds: Optional[float]  # estimate from the first probe's speed; None when it has none

    @property
    def n(self) -> int:
        return sum(len(v) for v in self.questions.values())

    def cost_text(self) -> str:
        return _cost_words(self.questions, self.generations, self.seconds)


def plan_check(project: Any, train_run_id: Optional[int] = None, settings: Optional[CheckSettings] = None) -> CheckPlan:
    """Which questions a check of the run asks and its estimated cost, before anything is loaded."""
    from ..plan import load_plan
    from ..train.gguf_lora import exportable_run

    settings = settings or CheckSettings()
    settings.validate()
    row = exportable_run(project, train_run_id)
    if row.plan_id is None:
        raise ProjectError(f"Training run {row.id} has no plan, so there is nothing to compare it with.")
    plan = load_plan(project, row.plan_id)
    probe_run, probe_settings, questions, before = _questions(project, plan, settings)
    generations, seconds = _cost(project, probe_run, probe_settings, questions, settings)
    return CheckPlan(
        train_run=row,
        plan=plan,
        probe_run=probe_run,
        probe_settings=probe_settings,
        questions=questions,
        before=before,
        generations=generations,
        seconds=seconds,
    )


def plan_cost_text(project: Any, plan_id: int, settings: Optional[CheckSettings] = None) -> str:
    """``CheckPlan.cost_text()`` for a run not trained yet on ``plan_id`` (the Train step shows it
    before training). Reads the dataset: call it off the UI thread."""
    from ..plan import load_plan

    settings = settings or CheckSettings()
    probe_run, probe_settings, questions, _before = _questions(project, load_plan(project, plan_id), settings)
    generations, seconds = _cost(project, probe_run, probe_settings, questions, settings)
    return _cost_words(questions, generations, seconds)


def _questions(
    project: Any, plan: Any, settings: CheckSettings
) -> tuple[ProbeRun, ProbeSettings, dict[str, list[Example]], dict[str, dict]]:
    """The first probe's run and settings, the questions of each split, and the first probe's results."""
    from ..plan.sampling import tiebreak

    probe_run = project.probe_run(plan.probe_run_id)
    probe_settings = ProbeSettings.from_json(probe_run.settings_json)
    examples = {ex.id: ex for ex in project.examples(probe_run.dataset_id)}
    before = {r["example_id"]: r for r in project.probe_results(probe_run.id)}
    questions: dict[str, list[Example]] = {}
    for split in ("test", "dev"):
        questions[split] = [examples[e.example_id] for e in plan.examples if e.split == split and e.example_id in examples]
    train = [e for e in plan.examples if e.split == "train" and e.example_id in examples and e.example_id in before]
    sample: list[Example] = []
    for cat in CATEGORIES:
        of_cat = sorted((e for e in train if e.category == cat), key=lambda e: tiebreak(0, f"check|{e.example_id}"))
        sample += [examples[e.example_id] for e in of_cat[: settings.train_per_category]]
    questions["train"] = sorted(sample, key=lambda ex: ex.line)
    ood_id = getattr(plan.settings, "ood_dataset_id", None)
    questions["ood"] = project.examples(int(ood_id)) if ood_id is not None else []
    return probe_run, probe_settings, questions, before


def _cost(
    project: Any, probe_run: ProbeRun, probe_settings: ProbeSettings, questions: dict[str, list[Example]], settings: CheckSettings
) -> tuple[int, Optional[float]]:
    """Answers a check asks for, and seconds at the first probe's speed (None when it has none).

    Per question: the answer alone before and after, and the probe's greedy answers after (samples
    too with ``full``); an OOD question is also probed before training (it has no first probe). The
    time counts prompts at the first probe's seconds per prompt: the answer-alone prompts are shorter
    than an exemplar set's, and a LoRA makes the trained model's prompts slower (about 1.5x on
    llama.cpp), which roughly cancel (173 s estimated, 210 s taken on the starter sample)."""
    n_sets = probe_settings.n_sets
    probe_cost = n_sets + (n_sets * probe_settings.samples_per_set if settings.full else 0)
    n = sum(len(v) for v in questions.values())
    n_ood = len(questions.get("ood") or [])
    generations = n * (2 + probe_cost) + n_ood * probe_cost
    prompts = n * (2 + n_sets) + n_ood * n_sets
    per_prompt = _store.probe_seconds_per_prompt(project, probe_run.id)
    return generations, (prompts * per_prompt + 20 if per_prompt else None)  # + loading two models


def _cost_words(questions: dict[str, list[Example]], generations: int, seconds: Optional[float]) -> str:
    n = sum(len(v) for v in questions.values())
    parts = ", ".join(f"{len(v)} {k}" for k, v in questions.items() if v)
    about = f", about {duration_words(round(seconds))}" if seconds else ""
    return f"{n} questions ({parts}), {generations:,} answers{about}"


# -- the answers ---------------------------------------------------------------------------------------


def matcher_for(example: Example, settings: ProbeSettings) -> Callable[[str], bool]:
    """Right or wrong by the first probe's grading rules (``core.scoring``; in judge mode the rules
    alone grade the zero-shot answer, as they do the answers the judge is not asked about)."""
    return settings.scorer(example).right


def abstains(answer: str) -> bool:
    """An "I don't know" answer (the idk mix's target), however it is worded around."""
    from ..plan.mixes import IDK_ANSWER

    got, idk = normalize_answer(answer), normalize_answer(IDK_ANSWER)
    return got == idk or got.startswith(idk) or "dont know" in got


def zero_shot_answers(backend: Backend, examples: Sequence[Example], prompt_format: str, max_tokens: int) -> list[str]:
    """One greedy answer per question, asked alone in the run's training format."""
    if prompt_format == "chat":
        from ..backends.chat_sandbox import SandboxedTemplate

        # The model's own template, rendered in a child process with a time and size limit.
        with SandboxedTemplate.of(backend.info) as template:
            prompts = template.render_many([zero_shot_messages(ex.question) for ex in examples])
        reqs = [GenRequest(prompt, max_tokens=max_tokens, chat=True) for prompt in prompts]
    else:
        reqs = [GenRequest(qa_prompt(ex.question), max_tokens=max_tokens) for ex in examples]
    return [a[0] for a in backend.generate(reqs)]


# -- the job ---------------------------------------------------------------------------------------------


def run_check(
    project: Any,
    train_run_id: Optional[int] = None,
    settings: Optional[CheckSettings] = None,
    *,
    models: Optional[CheckModels] = None,
    progress: ProgressCallback = no_progress,
    cancel: Optional[CancelToken] = None,
    on_status: Callable[[str], None] = lambda _m: None,
) -> CheckReport:
    """Check a training run (the latest finished one when ``train_run_id`` is None); returns the report.

    Without backends in ``models`` the base model and then the model with the adapter are loaded here,
    each in a child process unless ``models.isolate`` is False. Tests pass both, already loaded."""
    models = models or CheckModels()
    cancel = cancel or CancelToken()
    settings = settings or CheckSettings()
    cp = plan_check(project, train_run_id, settings)
    run = cp.train_run
    run_id = run.id
    # the adapter asked is part of the identity: a resumed run's new adapter starts a new check
    ident = check_identity(settings, current_adapter(run))
    row = _store.find_check(project, run_id, ident)
    from ..train.model_match import other_model_words

    if row is not None and row["status"] == "finished":
        found = CheckReport.from_row(row)
        found.other_model = other_model_words(run, cp.probe_run)
        return found
    backend_words = _backend_words(run, settings, models.adapter)
    if row is None:
        check_id = _store.insert_check(
            project,
            {
                "train_run_id": run_id,
                "plan_id": cp.plan.id,
                "probe_run_id": cp.probe_run.id,
                "settings": ident,
                "backend": backend_words,
                "adapter": _adapter_words(run),
                "adapter_step": _adapter_step(run),
                "status": "running",
                "n_total": cp.n,
                "n_done": 0,
                "seconds": 0.0,
                "summary": "",
                "note": "",
            },
        )
        _store.save_results(project, _initial_rows(check_id, cp), check_id=check_id)
    else:
        check_id = int(row["id"])
        _store.update_check(project, check_id, status="running", note="")
    prior = float((row or {}).get("seconds") or 0.0)
    t0 = time.monotonic()
    try:
        _fill(project, check_id, cp, settings, models, progress, cancel, on_status)
    except Cancelled:
        _store.update_check(project, check_id, status="cancelled", seconds=prior + time.monotonic() - t0)
        return CheckReport.from_row(_store.check_row(project, check_id) or {})
    except BaseException as exc:
        try:
            _store.update_check(project, check_id, status="failed", note=str(exc)[:500], seconds=prior + time.monotonic() - t0)
        except Exception:
            pass
        if isinstance(exc, ModelCrashed):
            raise exc.retold(
                saved="Finished work is saved in the project.", resume="Run the same command again to resume the check."
            ) from None
        raise
    report = summarize(project, check_id, cp, settings)
    report.other_model = other_model_words(run, cp.probe_run)
    report.seconds = prior + time.monotonic() - t0
    _store.update_check(
        project,
        check_id,
        status="finished",
        seconds=report.seconds,
        finished_at=time.time(),
        summary=_summary_json(report),
        n_done=cp.n,
    )
    report.status = "finished"
    return report


def _summary_json(report: CheckReport) -> str:
    import json

    data = report.to_dict()
    return json.dumps({"mix": data["mix"], "splits": data["splits"]}, ensure_ascii=False)


def _initial_rows(check_id: int, cp: CheckPlan) -> list[dict]:
    rows = []
    for split, examples in cp.questions.items():
        for ex in examples:
            b = cp.before.get(ex.id) if split != "ood" else None
            rows.append(
                {
                    "check_id": check_id,
                    "split": split,
                    "example_id": ex.id,
                    "group_name": ex.group,
                    "category_before": (b or {}).get("category"),
                    "p_greedy_before": (b or {}).get("p_greedy"),
                }
            )
    return rows


def _fill(
    project: Any,
    check_id: int,
    cp: CheckPlan,
    settings: CheckSettings,
    models: CheckModels,
    progress: ProgressCallback,
    cancel: CancelToken,
    on_status: Callable[[str], None],
) -> None:
    """The two passes: the base model's answers (and the OOD questions' categories), then the adapter's.

    Both ask every question alone in the training format; the base pass probes only the OOD
    questions (the others have the first probe's category), the adapter pass probes them all."""
    stored = _store.result_rows(project, check_id)
    filled = {
        "before": sum(r["answer_before"] is not None for r in stored),
        "after": sum(r["answer_after"] is not None for r in stored),
    }
    asking = _Asking.of(project, cp, settings)
    base_backend, adapter_backend, isolate, n_threads = models.base, models.adapter, models.isolate, models.n_threads
    given_judge = base_backend if not cp.probe_settings.judge_model else None
    # progress in answers, not questions: a question costs one answer before training and
    # 1 + the probe's answers after, so a question count would give a wrong ETA in the second pass
    answers_done = sum(asking.cost(when, r["split"]) for r in stored for when in filled if r[f"answer_{when}"] is not None)
    meter = RateMeter(cp.generations, answers_done, unit="answers")
    for when, given in (("before", base_backend), ("after", adapter_backend)):
        # from the rows read above: the base pass fills only the *_before columns
        todo = [(r["split"], r["example_id"]) for r in stored if r[f"answer_{when}"] is None]
        if not todo:
            continue
        backend = given or _load(cp, settings if when == "after" else None, isolate, n_threads, on_status)
        judge = None
        if when == "after" and cp.probe_settings.match == "judge":
            # the probe's own judge (its judge model, else the base model), never the adapter:
            # a fine-tuned model grading its own answers is no judge
            try:
                judge = given_judge or _load_judge(cp, isolate, n_threads, on_status)
            except BaseException:
                if given is None:
                    backend.close()
                raise
        asking.judge = judge
        try:
            if settings.calibrate_s > 0 and meter.done == meter.start_done:
                on_status(f"Timing the model on this machine (about {settings.calibrate_s:.0f} s) for an estimate ...")
            meter = pass_meter(meter, backend, asking, [asking.by_id[k] for k in todo], settings.calibrate_s)
            if meter.prior_rate and meter.done == meter.start_done:
                progress(meter.update(answers_done, "estimated from the model's speed on this machine"))
            for chunk in _chunks(todo, BATCH):
                cancel.raise_if_cancelled("The check")
                rows = asking.rows(backend, chunk, when, check_id, cancel)
                filled[when] += len(rows)
                answers_done += sum(asking.cost(when, k[0]) for k in chunk)
                # n_done counts questions answered with the adapter: a check is done when all are
                _store.save_results(project, rows, check_id=check_id, n_done=filled["after"] if when == "after" else None)
                progress(meter.update(answers_done, "saved"))
        except ModelCrashed as exc:
            if when == "after":
                raise exc.retold(doing="checking with the adapter") from None
            raise
        finally:
            if given is None:
                backend.close()
            if judge is not None and given_judge is None:
                judge.close()


@dataclass
class _Asking:
    """How a check asks its questions: the run's training format, the first probe's exemplars and scoring."""

    cp: CheckPlan
    settings: CheckSettings
    by_id: dict[tuple[str, str], Example]
    prompt_format: str
    max_tokens: int
    probe_settings: ProbeSettings  # greedy only unless --full
    pool: list[Example]
    sets: dict[str, list[list[str]]]
    hold_out: bool
    ood_sets: dict[str, list[list[str]]]
    judge: Optional[Backend] = None  # judge mode: the probe's judge, for the answers the rules leave undecided

    @classmethod
    def of(cls, project: Any, cp: CheckPlan, settings: CheckSettings) -> "_Asking":
        from ..train.runs import run_settings

        train_settings = run_settings(cp.train_run)
        probe_s = cp.probe_settings if settings.full else replace(cp.probe_settings, samples_per_set=0)
        pool, sets, hold_out = _exemplars(project, cp)
        ood = cp.questions.get("ood") or []
        ood_sets = draw_exemplar_sets(ood, {ex.group for ex in ood}, probe_s, hold_out=True)[0] if ood else {}
        return cls(
            cp=cp,
            settings=settings,
            by_id={(split, ex.id): ex for split, exs in cp.questions.items() for ex in exs},
            prompt_format=train_settings.prompt_format,
            max_tokens=train_settings.max_new_tokens,
            probe_settings=probe_s,
            pool=pool,
            sets=sets,
            hold_out=hold_out,
            ood_sets=ood_sets,
        )

    def cost(self, when: str, split: str) -> int:
        """Answers asked for one question of ``split`` in the pass ``when`` (as ``_cost`` counts them)."""
        probed = when == "after" or split == "ood"
        return 1 + (self.probe_settings.n_sets * (1 + self.probe_settings.samples_per_set) if probed else 0)

    def rows(self, backend: Backend, chunk: list[tuple[str, str]], when: str, check_id: int, cancel: CancelToken) -> list[dict]:
        """The result rows of one batch, ``when`` "before" (the base model) or "after" (the adapter)."""
        exs = [self.by_id[k] for k in chunk]
        answers = zero_shot_answers(backend, exs, self.prompt_format, self.max_tokens)
        probed = self._probe(backend, [k for k in chunk if when == "after" or k[0] == "ood"], cancel)
        rows = []
        for k, ex, a in zip(chunk, exs, answers):
            row = {"check_id": check_id, "split": k[0], "example_id": k[1], f"answer_{when}": a}
            row[f"right_{when}"] = int(bool(matcher_for(ex, self.cp.probe_settings)(a)))
            r = probed.get(k)
            if r is not None:
                row[f"category_{when}"] = _category(r, self.settings.full)
                row[f"p_greedy_{when}"] = r["p_greedy"]
            if when == "after":
                row["p_sampled_after"] = r["p_sampled"] if r else None
                row["greedy_answers_after"] = r["greedy_answers"] if r else None
            rows.append(row)
        return rows

    def _probe(self, backend: Backend, keys: list[tuple[str, str]], cancel: CancelToken) -> dict[tuple[str, str], dict]:
        """The first probe's greedy answers (samples too with --full) for ``keys``, with the same exemplars."""
        results: dict[tuple[str, str], dict] = {}
        for split in dict.fromkeys(k[0] for k in keys):
            part = [self.by_id[k] for k in keys if k[0] == split]
            if split == "ood":
                ood = self.cp.questions["ood"]
                job = ProbeJob(cancel=cancel, hold_out=True, judge=self.judge)
                got = probe_examples(backend, part, ood, self.probe_settings, self.ood_sets, job)
            else:
                job = ProbeJob(cancel=cancel, hold_out=self.hold_out, judge=self.judge)
                got = probe_examples(backend, part, self.pool, self.probe_settings, self.sets, job)
            results.update({(split, r["example_id"]): r for r in got})
        return results


def _chunks(items: list, n: int) -> list[list]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def _category(result: dict, full: bool) -> str:
    """The category of a probe result; greedy-only: P(T=0) = 0 is NOT_KNOWN, not Unknown."""
    if not full and not result["greedy_correct"]:
        return NOT_KNOWN
    return categorize(result["greedy_correct"], result["greedy_total"], result["sampled_correct"])


def _exemplars(project: Any, cp: CheckPlan) -> tuple[list[Example], dict[str, list[list[str]]], bool]:
    """The first probe's pool and exemplar sets, so the check asks with the same prompts."""
    run = cp.probe_run
    sets, _ = project.exemplar_sets(run.id)
    pool_id = run.pool_dataset_id
    pool = project.examples(pool_id) if pool_id is not None else project.examples(int(run.dataset_id or 0))
    return pool, sets, pool_id is None


def _adapter_words(run: TrainRun) -> str:
    step = _adapter_step(run)
    return f"final step {step}" if run.keeps_final else f"best dev step {step}"


def _adapter_step(run: TrainRun) -> Optional[int]:
    return run.final_step if run.keeps_final else run.best_step


# -- the report -------------------------------------------------------------------------------------------------


def summarize(project: Any, check_id: int, cp: CheckPlan, settings: CheckSettings) -> CheckReport:
    """The per-split report from the stored results."""
    by_key = {(split, ex.id): ex for split, exs in cp.questions.items() for ex in exs}
    rows = _store.result_rows(project, check_id)
    idk = str(getattr(cp.plan.settings, "mix", "")) == "idk"
    splits: dict[str, SplitCheck] = {}
    for split in CHECK_SPLITS:
        mine = [r for r in rows if r["split"] == split and (split, r["example_id"]) in by_key]
        if mine:
            splits[split] = split_check(split, mine, by_key, idk)
    row = _store.check_row(project, check_id) or {}
    report = CheckReport.from_row({**row, "summary": ""})
    report.splits = splits
    report.mix = str(getattr(cp.plan.settings, "mix", ""))
    return report


def split_check(split: str, rows: Sequence[dict], examples: dict[tuple[str, str], Example], idk: bool) -> SplitCheck:
    """One split's counts. New errors compare like with like: the answer before with the answer
    after, the probe before with the probe after (``types`` says why)."""
    transitions: dict[str, dict[str, int]] = {}
    by_cat: dict[str, dict[str, Any]] = {}
    new_errors, fixed, probe_lost = [], [], []
    right_b = right_a = known_b = 0
    answered = answered_right = abstained = 0
    for r in rows:
        before, after = r["category_before"] or NOT_KNOWN, r["category_after"] or NOT_KNOWN
        transitions.setdefault(before, {}).setdefault(after, 0)
        transitions[before][after] += 1
        rb, ra = bool(r["right_before"]), bool(r["right_after"])
        knew = before in KNOWN  # the probe before training: a right greedy answer in at least one exemplar set
        right_b += rb
        right_a += ra
        known_b += knew
        c = by_cat.setdefault(before, {"n": 0, "before": 0, "after": 0})
        c["n"] += 1
        c["before"] += rb
        c["after"] += ra
        ex = examples[(split, r["example_id"])]
        item = {
            "example_id": ex.id,
            "question": ex.question,
            "answers": list(ex.answers),
            "category_before": before,
            "category_after": after,
            "answer_before": r["answer_before"],
            "answer_after": r["answer_after"],
        }
        if rb and not ra:
            new_errors.append(item)
        elif ra and not rb:
            fixed.append(item)
        if knew and after not in KNOWN:
            probe_lost.append(item)
        if idk:
            if abstains(r["answer_after"] or ""):
                abstained += 1
            else:
                answered += 1
                answered_right += ra
    n = len(rows)
    em_by_category = {
        cat: {"n": c["n"], "before": c["before"] / c["n"], "after": c["after"] / c["n"]} for cat, c in by_cat.items() if c["n"]
    }
    return SplitCheck(
        split=split,
        n=n,
        transitions=transitions,
        em_before=right_b / n if n else None,
        em_after=right_a / n if n else None,
        em_by_category=em_by_category,
        n_known_before=known_b,
        new_errors=new_errors,
        fixed=fixed,
        idk=idk,
        abstained=abstained / n if idk and n else None,
        answered_accuracy=answered_right / answered if idk and answered else None,
        n_right_before=right_b,
        probe_new_errors=probe_lost,
    )


def check_identity(settings: CheckSettings, adapter: dict) -> str:
    """The stored identity of a check: its settings (``CheckSettings.identity``) and the adapter it
    asks (step and weights hash), as canonical JSON."""
    import json

    return json.dumps({**json.loads(settings.identity()), "adapter": adapter}, sort_keys=True)


def load_check(project: Any, check_id: Optional[int] = None, train_run_id: Optional[int] = None) -> Optional[CheckReport]:
    """A stored check (the latest of the run, or of all), or None when there is none; marked stale
    when the run's adapter changed since."""
    row = _store.check_row(project, check_id, train_run_id)
    return _with_staleness(project, [row])[0] if row is not None else None


def list_checks(project: Any) -> list[CheckReport]:
    """Every stored check, oldest first; those of an adapter the run no longer has are marked stale."""
    return _with_staleness(project, _store.check_rows(project))


def _with_staleness(project: Any, rows: Sequence[dict]) -> list[CheckReport]:
    from ..train.model_match import run_other_model_words
    from ..train.runs import list_runs

    runs = {r.id: r for r in list_runs(project)}
    out = []
    for row in rows:
        report = CheckReport.from_row(row)
        run = runs.get(int(row["train_run_id"]))
        report.stale = stale_words(row, run)
        report.other_model = run_other_model_words(project, run)
        out.append(report)
    return out

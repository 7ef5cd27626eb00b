"""The offline HTML report: what a teammate sees when they open it, with no network.

Projects are built cheaply: the probe runs on the scripted backend (or its rows are written
straight to the store), plans are real, and a training run's metrics are inserted with the
``core.train.runs`` helpers instead of really training.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from core import __version__
from core.cli import main
from core.datasets import Example
from core.errors import ProjectError
from core.plan import PlanSettings, build_plan, save_plan
from core.probe import CATEGORIES, ProbeRequest, ProbeSettings, run_probe
from core.report import CATEGORY_COLORS, build_report, default_report_path, write_report
from core.store import Project
from core.train.data import items_from_plan
from core.train.runs import RunModel, create_run, update_run, write_metrics
from core.train.settings import TrainSettings
from tests.probed import ProbedModel, ProbeRow, seed_project
from tests.scripted import FakeDataset, ScriptedBackend

REPO = Path(__file__).resolve().parents[1]
P_GREEDY = {"HighlyKnown": 1.0, "MaybeKnown": 0.4, "WeaklyKnown": 0.0, "Unknown": 0.0}


# ----------------------------------------------------------------------------- helpers


def seeded_project(
    path: Path,
    spec: dict[tuple[str, str], int],
    *,
    status: str = "finished",
    done: int | None = None,
    probe_settings: ProbeSettings = ProbeSettings(),
    null_p_greedy: int = 0,
) -> tuple[Project, int]:
    """A project whose probe run gives exactly ``spec[(category, group)]`` results (rows written straight
    to the store by ``tests.probed.seed_project``, the ``probed_project`` fixture's builder). The first
    ``null_p_greedy`` results have no P(T=0)."""
    examples, cats = [], {}
    for (cat, group), n in spec.items():
        for i in range(n):
            ex_id = f"{cat[:2]}-{len(examples):05d}"
            q = f"{cat} question {i} of {group}?"
            examples.append(Example(ex_id, q, (f"answer {i}",), group, len(examples) + 1, {"question": q}))
            cats[ex_id] = cat
    random.Random(0).shuffle(examples)
    return seed_project(
        path,
        examples,
        cats,
        model=ProbedModel(name="tiny-model", fingerprint="fp-123"),
        row=ProbeRow(
            settings=probe_settings.identity(),
            preset=probe_settings.preset,
            status=status,
            seconds=12.0,
            finished_at=1.7e9 if status == "finished" else None,
        ),
        done=done,
        p_greedy=lambda k, cat: None if k < null_p_greedy else P_GREEDY[cat],
        dataset_path=str(path.parent / "facts.jsonl"),
    )


def add_train_run(project: Project, plan, *, metrics: bool = True, best_step: int = 20) -> int:
    train, dev = items_from_plan(plan)
    run_id, folder = create_run(
        project,
        plan_id=plan.id,
        settings=TrainSettings(epochs=4),
        train=train,
        dev=dev,
        model=RunModel("scripted", "tiny-model", "", "fp-123"),
    )
    if not metrics:
        return run_id
    rows = [{"name": "loss", "step": s, "epoch": s / 10, "value": 3.0 / s, "at": 0.0} for s in range(1, 41)]
    for e, dev_em in enumerate((0.25, 0.5, 0.45, 0.4), start=1):
        rows.append({"name": "dev_em", "step": 10 * e, "epoch": e, "value": dev_em, "at": 0.0})
        for k, cat in enumerate(CATEGORIES):
            rows.append({"name": f"fit/{cat}", "step": 10 * e, "epoch": e, "value": min(1.0, e / (k + 2)), "at": 0.0})
    write_metrics(project, run_id, rows)
    update_run(
        project,
        run_id,
        status="done",
        stop_reason="early_stop",
        best_step=best_step,
        best_epoch=best_step / 10,
        best_dev_em=0.5,
        fit_at_best=json.dumps({c: 0.5 for c in CATEGORIES}),
        adapter_dir=str(folder / "adapter"),
        seconds=75.0,
        step=40,
        epoch=4.0,
        total_steps=40,
    )
    return run_id


def add_convergence_run(project: Project, plan, *, status: str = "done") -> int:
    """A run trained to convergence (4 epochs, best dev exact match at epoch 2), recorded as the worker does:
    a finished run keeps the final adapter; a cancelled one never reached it and keeps the best so far."""
    train, dev = items_from_plan(plan)
    run_id, folder = create_run(
        project,
        plan_id=plan.id,
        settings=TrainSettings(epochs=4, stopping="convergence"),
        train=train,
        dev=dev,
        model=RunModel("scripted", "tiny-model", "", "fp-123"),
    )
    rows = [{"name": "loss", "step": s, "epoch": s / 10, "value": 3.0 / s, "at": 0.0} for s in range(1, 41)]
    for e, dev_em in enumerate((0.25, 0.5, 0.45, 0.4), start=1):
        rows.append({"name": "dev_em", "step": 10 * e, "epoch": e, "value": dev_em, "at": 0.0})
        rows += [{"name": f"fit/{cat}", "step": 10 * e, "epoch": e, "value": e / 4, "at": 0.0} for cat in CATEGORIES]
    write_metrics(project, run_id, rows)
    done, running = status == "done", status == "running"
    update_run(
        project,
        run_id,
        status=status,
        stop_reason="max_epochs" if done else None if running else "cancelled",
        best_step=20,
        best_epoch=2.0,
        best_dev_em=0.5,
        fit_at_best=json.dumps({c: 0.5 for c in CATEGORIES}),
        final_step=40 if done else None,
        final_epoch=4.0 if done else None,
        adapter_dir=None if running else str(folder / ("final-adapter" if done else "adapter")),
        seconds=75.0,
        step=40 if done else 30,
        epoch=4.0 if done else 3.0,
        total_steps=40,
    )
    return run_id


BALANCED = {(c, g): n for g in ("G0", "G1") for c, n in zip(CATEGORIES, (12, 9, 6, 15))}  # 42 per group


class _Checker(HTMLParser):
    """Checks that every opened element is closed in order (void elements aside) and collects tags."""

    VOID = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.titles: list[str] = []
        self._in_title = 0
        self._title_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "title":
            self._in_title += 1
            self._title_text = []

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag == "title":
            self._in_title -= 1
            self.titles.append("".join(self._title_text))

    def handle_data(self, data):
        if self._in_title:
            self._title_text.append(data)


def parse(text: str) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert not checker.errors, checker.errors[:5]
    assert checker.stack == [], checker.stack
    return checker


def assert_offline(text: str, checker: _Checker) -> None:
    for tag, attrs in checker.tags:
        for name in ("src", "href", "xlink:href", "action"):
            value = attrs.get(name) or ""
            assert not re.match(r"\s*(https?:)?//", value), f"<{tag} {name}={value!r}> reaches the network"
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "<script" not in text.lower() and "<link" not in text.lower() and "@import" not in text
    assert "url(" not in text


def section(text: str, name: str) -> str:
    start = text.index(f'<section id="{name}">')
    return text[start : text.index("</section>", start)]


def svgs(text: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", text, flags=re.S)


# ----------------------------------------------------------------------------- the full report


def test_full_report_of_a_scripted_probe_plan_and_training_run(tmp_path: Path) -> None:
    rng = random.Random(3)
    profiles = [(1.0, 0.0), (0.0, 0.0), (0.0, 0.3), (0.5, 0.5)]
    examples, knowledge = [], {}
    for i in range(48):
        q, gold = f"Question number {i}?", f"Answer {i}"
        knowledge[q] = (gold, *profiles[rng.randrange(len(profiles))])
        examples.append(Example(f"ex{i:03d}", q, (gold,), f"R{i % 3}", i + 1, {"question": q}))
    with Project(tmp_path / "team.knowmix") as project:
        dataset_id = project.add_dataset(FakeDataset(examples, path=str(tmp_path / "facts.jsonl")))
        out = run_probe(
            project,
            ProbeRequest(
                dataset_id=dataset_id, pool_dataset_id=None, model_spec="scripted", settings=ProbeSettings(chunk_size=8)
            ),
            backend=ScriptedBackend(knowledge),
        )
        assert out.status == "finished"
        plan = build_plan(project, None, PlanSettings(mix="natural"))
        save_plan(project, plan, name="first mix")
        train_id = add_train_run(project, plan)
        text = build_report(project)
        counts = project.category_counts(out.run_id)
        ds = project.dataset(dataset_id)

    checker = parse(text)
    assert_offline(text, checker)
    assert text.startswith("<!DOCTYPE html>")
    # header and footer
    assert "team.knowmix" in text and f"KnowMix {__version__}" in text and "Generated offline by KnowMix" in text
    # probe: model, backend, fingerprint, dataset identity, budget, status
    probe = section(text, "probe")
    for fragment in (
        "scripted-v1",
        "facts.jsonl",
        ds["file_sha256"],
        ds["content_sha256"],
        "the paper&#39;s full budget",
        "finished",
        "48 of 48",
        "n_sets",
    ):
        assert fragment in probe, fragment
    assert "Not the paper" not in probe
    # breakdown: every group's count of every category is in the table, and the "all" row
    breakdown = section(text, "breakdown")
    for group, by_cat in counts.items():
        row = re.search(rf"<tr><td>{group}</td>(.*?)</tr>", breakdown).group(1)
        cells = re.findall(r'<td class="n">([^<]*)</td>', row)
        assert [int(cells[2 * k]) for k in range(4)] == [by_cat.get(c, 0) for c in CATEGORIES]
        assert int(cells[-1]) == sum(by_cat.values())
    overall = {c: sum(g.get(c, 0) for g in counts.values()) for c in CATEGORIES}
    for c in CATEGORIES:
        if overall[c]:
            assert f"{c} {overall[c]} of 48" in breakdown  # the overall bar's tooltip
    for c, color in CATEGORY_COLORS.items():
        assert color in breakdown and c in breakdown
    # plan: name, mix, counts, explanation
    plan_html = section(text, "plan")
    assert "first mix" in plan_html and "natural mix" in plan_html and '<pre class="explain">' in plan_html
    assert "Why this mix" in plan_html and "&#34;I don&#39;t know&#34;" not in plan_html  # natural mix: nothing relabelled
    assert f'<td class="n">{plan.counts()["train"]["total"]}</td>' in plan_html
    # training: status, stop reason, best point and the three charts with the stopping line
    training = section(text, "training")
    assert f"<td>{train_id}</td>" in training and "EARLY_STOP" in training
    assert "epoch 2, step 20, dev exact match 50.0%" in training
    assert training.count('class="best"') == 3 and training.count('stroke-dasharray="5 4"') == 3
    assert "Stopping point: step 20 (epoch 2), best dev exact match 50.0%" in training
    assert len(svgs(training)) == 3 and training.count("<polyline") == 1 + 1 + 4
    assert len(svgs(text)) == 3 + 1 + 3  # breakdown (overall, groups, histogram), plan, training
    # every bar has a tooltip with its number
    assert all("<title>" in rect for rect in re.findall(r"<rect[^>]*>.*?</rect>", text, flags=re.S))
    assert "<rect" in text and not re.search(r"<rect[^>]*/>", text)


def test_svg_numbers_add_up(tmp_path: Path) -> None:
    project, run_id = seeded_project(tmp_path / "p.knowmix", BALANCED, null_p_greedy=5)
    with project:
        text = build_report(project)
    breakdown = section(text, "breakdown")
    overall_svg, groups_svg, hist_svg = svgs(breakdown)
    # the overall bar: segments tile the full width, in category order, sized by count
    widths = [float(w) for w in re.findall(r'<rect x="[^"]*" y="0" width="([^"]*)"', overall_svg)]
    assert len(widths) == 4 and abs(sum(widths) - 720) < 1
    assert abs(widths[0] - 720 * 24 / 84) < 0.2 and abs(widths[3] - 720 * 30 / 84) < 0.2
    assert "HighlyKnown 24 of 84 (28.6%)" in overall_svg
    # the histogram: counts per bin from the tooltips sum to the results that have a P(T=0)
    bins = [int(n) for n in re.findall(r"P\(T=0\) in \[[^\])]*[\])]: (\d+) questions?<", hist_svg)]
    assert len(bins) == 10 and sum(bins) == 84 - 5
    assert bins[4] > 0 and bins[9] > 0 and bins[0] > 0  # 0.4 (MaybeKnown), 1.0 (HighlyKnown), 0 (the rest)
    assert "5 questions have no P(T=0) recorded" in breakdown
    # the per-group chart: one row per group with its total
    assert groups_svg.count("<title>G0: 42 questions</title>") == 1 and "<title>G1: 42 questions</title>" in groups_svg
    # no negative or non-numeric geometry anywhere
    geometry = re.findall(r'\s(?:x|y|width|height|x1|x2|y1|y2|cx|cy)="([^"]*)"', text)
    assert len(geometry) > 100
    for attr in geometry:
        assert float(attr) >= 0, attr


def test_group_names_and_user_text_are_escaped(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    spec = {(c, g): 6 for c in CATEGORIES for g in (evil, 'A&B "quoted"')}
    project, run_id = seeded_project(tmp_path / "p.knowmix", spec)
    with project:
        plan = build_plan(project, None, PlanSettings())
        save_plan(project, plan, name="<b>bold</b> plan")
        text = build_report(project)
    assert "<script" not in text and "<b>bold" not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
    assert "A&amp;B &#34;quoted&#34;" in text and "&lt;b&gt;bold&lt;/b&gt; plan" in text
    parse(text)


def test_many_groups_get_one_bar_each(tmp_path: Path) -> None:
    spec = {(CATEGORIES[g % 4], f"relation-{g:02d}-with-a-rather-long-name"): 1 + g % 3 for g in range(60)}
    project, _ = seeded_project(tmp_path / "p.knowmix", spec)
    with project:
        text = build_report(project)
    groups_svg = svgs(section(text, "breakdown"))[1]
    for g in range(60):
        assert f"<title>relation-{g:02d}-with-a-rather-long-name</title>" in groups_svg  # full name on hover
    assert "relation-00-with-a-rather\u2026" in groups_svg  # shown shortened
    height = float(re.match(r'<svg width="[^"]*" height="([^"]*)"', groups_svg).group(1))
    assert 60 * 18 < height < 60 * 30
    parse(text)


def test_cheaper_budget_is_flagged(tmp_path: Path) -> None:
    project, _ = seeded_project(
        tmp_path / "p.knowmix", BALANCED, probe_settings=ProbeSettings(n_sets=2, samples_per_set=2, preset="smoke")
    )
    with project:
        probe = section(build_report(project), "probe")
    assert "Not the paper's budget." in probe and "CHEAPER than the paper" in probe


# ----------------------------------------------------------------------------- partial projects


def test_unfinished_probe_is_flagged_and_missing_steps_are_explained(tmp_path: Path) -> None:
    project, run_id = seeded_project(tmp_path / "p.knowmix", BALANCED, status="cancelled", done=30)
    with project:
        text = build_report(project)
    parse(text)
    assert "This probe is not finished: 30 of 84 questions probed (the run was cancelled)" in text
    assert "30 of 84" in section(text, "probe")
    plan = section(text, "plan")
    assert "No plan for probe run 1 yet" in plan and "the probe is not finished" in plan and "knowmix plan" in plan
    training = section(text, "training")
    assert "No training run yet" in training and "needs a plan first" in training and "<svg" not in training


def test_probe_with_zero_results_still_reports(tmp_path: Path) -> None:
    project, run_id = seeded_project(tmp_path / "p.knowmix", BALANCED, status="running", done=0)
    with project:
        text = build_report(project)
    parse(text)
    assert "0 of 84" in text and "still running" in text
    breakdown = section(text, "breakdown")
    assert "No question has been probed yet" in breakdown and "<svg" not in breakdown


def test_finished_probe_without_a_plan_says_which_step_makes_one(tmp_path: Path) -> None:
    project, _ = seeded_project(tmp_path / "p.knowmix", BALANCED)
    with project:
        text = build_report(project)
    assert "No plan for probe run 1 yet: make one from this probe with knowmix plan" in section(text, "plan")
    assert "This probe is not finished" not in text


def test_plan_without_training_run_and_training_run_without_metrics(tmp_path: Path) -> None:
    project, _ = seeded_project(tmp_path / "p.knowmix", BALANCED)
    with project:
        plan = build_plan(project, None, PlanSettings(mix="idk"))
        plan_id = save_plan(project, plan)
        text = build_report(project)
        assert f"No training run for plan {plan_id} yet: knowmix train --plan {plan_id}" in section(text, "training")
        plan_html = section(text, "plan")
        c = plan.counts()
        assert f"({c['relabelled']} Unknown relabelled &#34;I don&#39;t know&#34;)" in plan_html
        assert "Before and after" in plan_html and len(svgs(plan_html)) == 1

        run_id = add_train_run(project, plan, metrics=False)
        text = build_report(project)
    parse(text)
    training = section(text, "training")
    assert f"<td>{run_id}</td>" in training and "created" in training
    assert "No metrics recorded yet" in training and "<svg" not in training and "none yet" in training


def test_explicit_ids_follow_each_other_and_unknown_ids_are_errors(tmp_path: Path) -> None:
    project, first = seeded_project(tmp_path / "p.knowmix", BALANCED)
    with project:
        plan = build_plan(project, None, PlanSettings())
        plan_id = save_plan(project, plan)
        train_id = add_train_run(project, plan)
        second = project.create_probe_run(
            dataset_id=1,
            pool_dataset_id=None,
            model_spec="scripted",
            model_name="other-model",
            model_path="",
            model_fingerprint="fp-2",
            backend="scripted",
            preset="paper",
            settings=ProbeSettings().identity(),
            n_total=84,
        )
        latest = build_report(project)  # the newest probe run, which has no plan yet
        assert "other-model" in latest and f"No plan for probe run {second} yet" in latest
        by_train = build_report(project, train_run_id=train_id)  # the run's plan and that plan's probe run
        assert (
            "tiny-model" in section(by_train, "probe")
            and f"This report covers probe run {first}, plan {plan_id}, training run {train_id}" in by_train
        )
        mixed = build_report(project, probe_run_id=second, plan_id=plan_id)
        assert f"Plan {plan_id} was made from probe run {first}, not from probe run {second}" in mixed
        for kwargs, words in (
            ({"probe_run_id": 9}, "no probe run number 9"),
            ({"plan_id": 9}, "no plan number 9"),
            ({"train_run_id": 9}, "no training run number 9"),
        ):
            with pytest.raises(ProjectError, match=words):
                build_report(project, **kwargs)


# ----------------------------------------------------------------------------- writing and the CLI


def test_write_report_is_atomic_and_defaults_next_to_the_project(tmp_path: Path) -> None:
    project, _ = seeded_project(tmp_path / "team.knowmix", BALANCED)
    project.close()
    path = write_report(tmp_path / "team.knowmix", None)
    assert path == default_report_path(tmp_path / "team.knowmix") == tmp_path / "team-report.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    out = write_report(tmp_path / "team.knowmix", tmp_path / "sub" / "r.html")
    assert out.is_file() and sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["r.html"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    size = path.stat().st_size
    assert size < 100_000, size


def test_cli_report_writes_the_file_and_prints_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    project, _ = seeded_project(tmp_path / "team.knowmix", BALANCED)
    with project:
        save_plan(project, build_plan(project, None, PlanSettings()))
    monkeypatch.chdir(tmp_path)
    assert main(["report"]) == 0  # the project found in this folder, the default output name
    printed = capsys.readouterr().out.strip()
    assert printed == str(tmp_path / "team-report.html") and Path(printed).is_file()
    out = tmp_path / "shared" / "for-anna.html"
    assert main(["report", "--project", str(tmp_path / "team.knowmix"), "--run", "1", "--plan", "1", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "This report covers probe run 1, plan 1." in out.read_text(encoding="utf-8")


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_cli_report_without_a_probe_says_to_run_one(tmp_path: Path, capsys) -> None:
    Project(tmp_path / "empty.knowmix").close()
    code = main(["report", "--project", str(tmp_path / "empty.knowmix")])
    err = capsys.readouterr().err
    lines = _error_lines(err)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("knowmix: error:") and "no probe yet" in lines[0] and "knowmix probe" in lines[0]
    assert not (tmp_path / "empty-report.html").exists()

    code = main(["report", "--project", str(tmp_path / "nope.knowmix")])
    lines = _error_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1 and "nope.knowmix" in lines[0]
    assert not (tmp_path / "nope.knowmix").exists()  # a report never creates a project


def test_importing_the_report_loads_no_gui_and_no_heavy_library() -> None:
    code = (
        "import json, sys\nimport core.report\n"
        "bad = ('PySide6', 'gui', 'torch', 'transformers', 'llama_cpp', 'peft', 'numpy', 'matplotlib')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in bad)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_hundreds_of_groups_chart_the_largest_and_list_all(tmp_path: Path) -> None:
    spec = {("HighlyKnown", f"g{g}"): 1 + (g == 7) for g in range(120)}
    project, _ = seeded_project(tmp_path / "p.knowmix", spec)
    with project:
        breakdown = section(build_report(project), "breakdown")
    assert "The chart shows the 80 largest of 120 groups" in breakdown
    groups_svg = svgs(breakdown)[1]
    assert groups_svg.count(": 1 question</title>") + groups_svg.count(": 2 questions</title>") == 80
    assert "<title>g7: 2 questions</title>" in groups_svg  # the largest group is kept
    assert breakdown.count("<tr><td>g") == 120
    assert breakdown.index("<tr><td>g2</td>") < breakdown.index("<tr><td>g10</td>")  # natural order


# ----------------------------------------------------------------------------- the stopping point


def _kv(html: str, key: str) -> str:
    return re.search(rf"<tr><th>{re.escape(key)}</th><td>(.*?)</td></tr>", html).group(1)


def test_a_convergence_run_stops_at_its_final_epoch_and_keeps_the_final_adapter(tmp_path: Path) -> None:
    project, _ = seeded_project(tmp_path / "p.knowmix", BALANCED)
    with project:
        plan = build_plan(project, None, PlanSettings())
        save_plan(project, plan)
        run_id = add_convergence_run(project, plan)
        training = section(build_report(project, train_run_id=run_id), "training")
    # the final epoch (4, step 40, dev exact match 40%), not the best evaluation (epoch 2, step 20, 50%)
    assert _kv(training, "Stopping point") == "epoch 4, step 40, dev exact match 40.0% (the last step (trained to convergence))"
    assert _kv(training, "Best dev evaluation").startswith("epoch 2, step 20, dev exact match 50.0% (not kept")
    assert _kv(training, "Train fit at the stopping point") == ", ".join(f"{c} 100%" for c in CATEGORIES)
    assert _kv(training, "Adapter").endswith("final-adapter (from the last step)")
    assert "convergence); the adapter of the last step is kept" in _kv(training, "Stop reason")
    # the dashed line on every chart is at the last step
    lines = re.findall(r'<line x1="([^"]*)"[^>]*class="best"><title>([^<]*)</title>', training)
    assert len(lines) == 3 and len({x for x, _t in lines}) == 1
    assert all(t.startswith("Stopping point: step 40 (epoch 4), the last step") for _x, t in lines)
    assert "keeps the adapter of its last step (dashed line)" in training


def test_an_early_stop_run_and_a_cancelled_convergence_run_stop_at_the_best_evaluation(tmp_path: Path) -> None:
    project, _ = seeded_project(tmp_path / "p.knowmix", BALANCED)
    with project:
        plan = build_plan(project, None, PlanSettings())
        save_plan(project, plan)
        early = add_train_run(project, plan)
        cancelled = add_convergence_run(project, plan, status="cancelled")
        reports = {run_id: section(build_report(project, train_run_id=run_id), "training") for run_id in (early, cancelled)}
    for run_id, training in reports.items():
        assert _kv(training, "Stopping point").startswith("epoch 2, step 20, dev exact match 50.0% (the best dev exact match"), (
            run_id
        )
        assert _kv(training, "Adapter").endswith("/adapter (from the best evaluation)")
        assert "Best dev evaluation" not in training
    training = reports[early]
    lines = re.findall(r'class="best"><title>([^<]*)</title>', training)
    assert lines == ["Stopping point: step 20 (epoch 2), best dev exact match 50.0%"] * 3
    assert "The dashed line marks the stopping point (best dev exact match)." in training
    assert "training keeps the adapter of the best one (dashed line)" in training
    assert training.count(">stopping point</text>") == 3
    # a convergence run cancelled before its last step keeps the best adapter so far (core.train.runs.keeps_final_adapter)
    training = reports[cancelled]
    assert "this convergence run stopped before its last step" in _kv(training, "Stopping point")
    lines = re.findall(r'class="best"><title>([^<]*)</title>', training)
    assert all(t.startswith("Best dev step: step 20 (epoch 2), dev exact match 50.0%; kept because") for t in lines)
    assert len(lines) == 3 and training.count(">best dev step (kept)</text>") == 3
    assert "so it keeps the adapter of the best one so far (dashed line)" in training


def test_a_convergence_run_in_progress_marks_its_best_dev_step_not_a_stopping_point(tmp_path: Path) -> None:
    """While a convergence run trains, its best dev step is neither where it stops nor the adapter it
    keeps: the report says so (it used to call it "the stopping point" and say the best adapter is kept)."""
    project, _ = seeded_project(tmp_path / "p.knowmix", BALANCED)
    with project:
        plan = build_plan(project, None, PlanSettings())
        save_plan(project, plan)
        run_id = add_convergence_run(project, plan, status="running")
        training = section(build_report(project, train_run_id=run_id), "training")
    assert _kv(training, "Stopping point") == "not reached yet: this run trains to convergence and stops at step 40"
    assert _kv(training, "Best dev evaluation") == (
        "epoch 2, step 20, dev exact match 50.0% (best so far; not kept: a convergence run keeps its final adapter)"
    )
    lines = re.findall(r'class="best"><title>([^<]*)</title>', training)
    assert (
        lines
        == [
            "Best dev step so far: step 20 (epoch 2), dev exact match 50.0%; this run trains to convergence and keeps "
            "the final adapter, not this one"
        ]
        * 3
    )
    assert training.count(">best dev step</text>") == 3 and "stopping point</text>" not in training
    assert (
        "The dashed line marks the best dev step so far (step 20); this run trains to convergence and keeps the final adapter."
        in training
    )
    assert "this run trains to convergence and keeps the final adapter, not the best one (dashed line)" in training
    assert "training keeps the adapter of the best one" not in training


# ----------------------------------------------------------------------------- rows not probed


def test_the_data_section_counts_rows_probed_and_not_probed_by_reason(tmp_path: Path) -> None:
    from core.datasets import load_dataset
    from tests.test_plan import move_not_probed, scripted_probe_project, team_rows, write_rows

    ds = move_not_probed(load_dataset(write_rows(tmp_path / "team.jsonl", team_rows(), "jsonl")))
    project, _ = scripted_probe_project(tmp_path, ds)
    with project:
        save_plan(project, build_plan(project, settings=PlanSettings(dev_fraction=0.2)))
        text = build_report(project)
    status = _kv(section(text, "probe"), "Probe status")
    assert status.startswith("30 rows: 25 probed, 5 not probed")
    assert "1 multi-turn: a multi-turn conversation" in status and "2 task: a task rather than a fact" in status
    assert "1 long-form" in status and "1 no-answer" in status
    not_probed = _kv(section(text, "plan"), "Not probed")
    assert "All 30 rows:" in not_probed and "5 not probed" in not_probed and "kept as they are" in not_probed

    project, _ = seeded_project(tmp_path / "plain.knowmix", BALANCED)
    with project:
        text = build_report(project)
    assert _kv(section(text, "probe"), "Probe status").startswith("every row probed")


# ----------------------------------------------------------------------------- what training did (knowmix check)


def _check_rows(part: str, cls: str) -> list[list[str]]:
    """The cells of the rows of the section's ``<table class=cls>`` tables, markup stripped."""
    import html as _html

    rows = []
    for table in re.findall(rf'<table class="{cls}">(.*?)</table>', part, flags=re.S):
        for tr in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)[1:]:
            rows.append([_html.unescape(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr, flags=re.S)])
    return rows


def test_without_a_check_the_section_says_how_to_run_one(tmp_path: Path) -> None:
    from tests.check_fixture import probed_project, trained_run

    project, probe_id, _w = probed_project(tmp_path / "p.knowmix")
    with project:
        run_id = trained_run(project, probe_id)
        text = build_report(project)
    parse(text)
    part = section(text, "check")
    assert "What training did to the model" in part
    assert f"knowmix check --project {tmp_path / 'p.knowmix'} --run {run_id}" in part
    assert "<svg" not in part and "new error" not in part


def test_a_check_shows_each_split_its_transitions_and_the_questions_it_broke(tmp_path: Path) -> None:
    from core.check import load_check
    from core.report.checks import known_lost
    from tests.check_fixture import checked_project

    project, (run_id,), _w = checked_project(tmp_path / "p.knowmix")
    with project:
        report = load_check(project, train_run_id=run_id)
        text = build_report(project)
    checker = parse(text)
    assert_offline(text, checker)
    part = section(text, "check")
    # test first, then dev, then the training sample, each with its plain-words sentence
    heads = re.findall(r"<h3>(\w+) questions", part)
    assert heads[:2] == ["Test", "Dev"] and "Training" in heads
    for split in report.splits.values():
        assert split.new_errors_text() in part.replace("&#39;", "'")
    dev = max(report.splits.values(), key=lambda s: len(s.new_errors))
    assert dev.new_errors, "the scripted training broke no question: this test checks nothing"
    # every new-error question of every split is listed, with the answers before and after
    listed = _check_rows(part, "errors")
    assert len(listed) == sum(len(s.new_errors) for s in report.splits.values())
    for e in dev.new_errors:
        assert [e["question"], e["answers"][0], e["answer_before"], e["answer_after"]] in [r[:4] for r in listed]
    # the transition chart: one bar per category before; its segments' counts add up to the split's size
    charts = svgs(part)
    assert len(charts) == len(report.splits)
    for chart, split in zip(charts, [report.splits[k] for k in ("test", "dev", "train", "ood") if k in report.splits]):
        counts = [int(m) for m in re.findall(r"before, [^:]+ after: (\d+) of", chart)]
        assert sum(counts) == split.n
    assert "#9e9e9e" in part and "not known at T=0" in part  # greedy-only: the grey "not known" after
    assert "side by side" not in part  # one checked run: nothing to compare
    # the probe's count next to the answer's, each by its own measure, matching the transitions
    for split in report.splits.values():
        assert split.probe_new_errors_text() in part.replace("&#39;", "'")
        assert len(split.probe_new_errors) == known_lost(split)


def test_several_checked_runs_are_compared_side_by_side(tmp_path: Path) -> None:
    from tests.check_fixture import checked_project

    project, ids, _w = checked_project(tmp_path / "p.knowmix", runs=(("recommended", "early_stop"), ("natural", "convergence")))
    from core.check import load_check

    with project:
        checks = [load_check(project, train_run_id=i) for i in ids]
        text = build_report(project)
    parse(text)
    part = section(text, "check")
    assert "side by side" in part
    rows = {r[0]: r[1:] for r in _check_rows(part, "compare")}
    assert rows["Mix"] == ["recommended", "natural"]
    assert rows["Stopping rule"][0].startswith("early stop") and rows["Stopping rule"][1].startswith("convergence")
    assert rows["Adapter checked"] == ["best dev step 10", "final step 20"]
    tests = [c.splits["test"] for c in checks]
    assert rows["New errors by the answer (right before, wrong after)"] == [
        f"{len(t.new_errors)} of {t.n_right_before} ({100 * len(t.new_errors) / t.n_right_before:.1f}%)" for t in tests
    ]
    assert rows["New errors by the probe (known before -> not known after)"] == [
        f"{len(t.probe_new_errors)} of {t.n_known_before}" for t in tests
    ]
    assert rows["Exact match after"] == [f"{100 * t.em_after:.1f}%" for t in tests]
    # the report of the first run shows that run's check in detail, and still the comparison
    with Project(tmp_path / "p.knowmix", create=False) as again:
        first = section(build_report(again, train_run_id=ids[0]), "check")
    assert f"of training run {ids[0]}: mix recommended" in first and "side by side" in first


def test_the_check_and_the_report_say_known_and_each_split_in_the_same_words() -> None:
    """What "the model knew it" means (HighlyKnown or MaybeKnown) and each split's words have one
    home, core.categories: the check's text and the report's headings cannot drift apart (issue 22)."""
    import core.categories as categories
    import core.check.run as check_run
    import core.check.types as check_types
    import core.report.checks as report_checks

    assert check_run.KNOWN is report_checks.KNOWN is categories.KNOWN == ("HighlyKnown", "MaybeKnown")
    assert check_types.NOT_KNOWN is report_checks.NOT_KNOWN is categories.NOT_KNOWN
    assert report_checks.SPLIT_ORDER == check_types.CHECK_SPLITS == ("test", "dev", "train", "ood")
    for split, words in check_types.SPLIT_WORDS.items():
        assert report_checks.SPLIT_TITLES[split] == words[0].upper() + words[1:]
    assert report_checks.SPLIT_TITLES["test"] == "Test questions (held out: never trained on, never used to stop)"

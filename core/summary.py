"""The category breakdown of a probe run, overall and per group, as a table or JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from .categories import CATEGORIES
from .datasets.types import reasons_text
from .formats import percent
from .probe import ProbeSettings
from .store import results as _results
from .store.records import PROBE_CANCELLED, PROBE_FAILED, PROBE_RUNNING, ProbeRun


@dataclass
class Breakdown:
    run: ProbeRun
    overall: dict[str, int]
    groups: dict[str, dict[str, int]]
    settings: ProbeSettings
    # rows of the dataset kept without a probe, by reason (core.datasets.types.REASONS)
    not_probed: dict[str, int] = field(default_factory=dict)
    # probed questions that list two or more different true answers (core.datasets.multi), by category
    multi_answer: dict[str, int] = field(default_factory=dict)
    # exemplars replaced because they were the question itself or gave its answer away, by reason
    exemplar_swaps: dict[str, int] = field(default_factory=dict)
    # the exemplar draw's notes per group: a held-out pool, borrowed exemplars, too few distinct sets
    exemplar_notes: dict[str, str] = field(default_factory=dict)
    # {category: (mean P(T>0), examples measured)}: every WeaklyKnown and Unknown example has one
    p_sampled: dict[str, tuple[float, int]] = field(default_factory=dict)

    def exemplar_text(self) -> str:
        return exemplar_swaps_text(self.exemplar_swaps)

    def p_sampled_text(self) -> str:
        return p_sampled_text(self.p_sampled)

    def multi_answer_text(self) -> str:
        """'12 of them list several different true answers (9 HighlyKnown, 3 Unknown) ...', or '' when none."""
        n = sum(self.multi_answer.values())
        if not n:
            return ""
        by_cat = ", ".join(f"{self.multi_answer[c]} {c}" for c in CATEGORIES if self.multi_answer.get(c))
        return (
            f"{n} of them list{'s' if n == 1 else ''} several different true answers ({by_cat}): any of them counts as "
            "right; the paper removed such questions (a plan can leave them out: --multi-answer drop)."
        )

    def not_probed_text(self) -> str:
        """'16 rows not probed (12 multi-turn, 4 task)', or '' when every row was probed."""
        n = sum(self.not_probed.values())
        if not n:
            return ""
        why = reasons_text(self.not_probed)
        return f"{n} row{'s' if n != 1 else ''} not probed ({why}; kept as they are in the plan)"

    @property
    def total(self) -> int:
        return sum(self.overall.values())

    def to_dict(self) -> dict:
        def shares(counts: dict[str, int]) -> dict[str, float]:
            n = sum(counts.values())
            return {c: (counts.get(c, 0) / n if n else 0.0) for c in CATEGORIES}

        return {
            "run_id": self.run.id,
            "status": self.run.status,
            "model": self.run.model_name,
            "model_fingerprint": self.run.model_fingerprint,
            "backend": self.run.backend,
            "settings": self.run.settings,
            "budget": self.settings.describe(),
            "paper_budget": self.settings.is_paper_budget,
            "probed": self.total,
            "not_probed": dict(self.not_probed),
            "multi_answer": sum(self.multi_answer.values()),
            "multi_answer_by_category": {c: self.multi_answer.get(c, 0) for c in CATEGORIES},
            "exemplar_swaps": dict(self.exemplar_swaps),
            "exemplar_notes": dict(self.exemplar_notes),
            "p_sampled_mean": {c: {"mean": m, "n": n} for c, (m, n) in self.p_sampled.items()},
            "of": self.run.n_total,
            "overall": {"counts": {c: self.overall.get(c, 0) for c in CATEGORIES}, "shares": shares(self.overall)},
            "groups": {
                g: {"counts": {c: counts.get(c, 0) for c in CATEGORIES}, "shares": shares(counts)}
                for g, counts in sorted(self.groups.items())
            },
        }

    def to_table(self) -> str:
        head = f"{'group':<16}" + "".join(f"{c:>13}" for c in CATEGORIES) + f"{'total':>8}"
        lines = [head, "-" * len(head)]

        def row(name: str, counts: dict[str, int]) -> str:
            n = sum(counts.values())
            cells = "".join(f"{counts.get(c, 0):>6} {percent(counts.get(c, 0) / n if n else 0):>6}" for c in CATEGORIES)
            return f"{name[:16]:<16}{cells}{n:>8}"

        if len(self.groups) > 1:  # one group is the whole dataset: the "all" row says it
            for g, counts in sorted(self.groups.items()):
                lines.append(row(g, counts))
            lines.append("-" * len(head))
        lines.append(row("all", self.overall))
        return "\n".join(lines)

    def headline(self) -> str:
        status = self.run.status
        if status in (PROBE_RUNNING, PROBE_CANCELLED, PROBE_FAILED) and self.total < self.run.n_total:
            status = f"{status}; not finished: run the same probe command again to resume"
        done = (
            f"{self.total} of {self.run.n_total} questions probed"
            if self.total < self.run.n_total
            else f"{self.total} questions probed"
        )
        extra = self.not_probed_text()
        done += f"; {extra}" if extra else ""
        multi = " ".join(t for t in (self.multi_answer_text(), self.exemplar_text(), self.p_sampled_text()) if t)
        multi = f" {multi}" if multi else ""
        return (
            f"Probe run {self.run.id} ({status}): {done} with {self.run.model_name} via {self.run.backend}.{multi} "
            f"{self.settings.describe()}"
        )


def breakdown(project, run_id: Optional[int] = None) -> Breakdown:
    run = project.probe_run(run_id)
    groups = project.category_counts(run.id)
    overall: dict[str, int] = {}
    for counts in groups.values():
        for c, n in counts.items():
            overall[c] = overall.get(c, 0) + n
    settings = ProbeSettings.from_json(run.settings_json)
    not_probed = project.unprobed_counts(run.dataset_id) if run.dataset_id is not None else {}
    return Breakdown(
        run=run,
        overall=overall,
        groups=groups,
        settings=settings,
        not_probed=not_probed,
        multi_answer=multi_answer_counts(project, run),
        exemplar_swaps=_results.swap_counts(project, run.id),
        exemplar_notes=project.exemplar_sets(run.id)[1],
        p_sampled=_results.p_sampled_means(project, run.id),
    )


def multi_answer_counts(project, run: ProbeRun) -> dict[str, int]:
    """The probed questions of a run with several different true answers, by category."""
    counts: dict[str, int] = {}
    for cat in multi_answer_ids(project, run.id, run.dataset_id).values():
        if cat:
            counts[cat] = counts.get(cat, 0) + 1
    return counts


def multi_answer_ids(project, run_id: int, dataset_id: Optional[int]) -> dict[str, str]:
    """``{example_id: category}`` of probe run ``run_id``'s probed questions (of its dataset ``dataset_id``) that list two or more different true
    answers (``core.datasets.multi.is_multi_answer`` on each question's answer keys); the category
    is '' for a question the run has not probed yet."""
    from .datasets.multi import is_multi_answer
    from .store import results as _store

    if dataset_id is None:
        return {}
    out: dict[str, str] = {}
    for r in _store.every_row(project, int(run_id), int(dataset_id)):
        if r[5] != "probed":
            continue
        answers = json.loads(r[4] or "[]") or json.loads(r[3] or "[]")
        if len(answers) > 1 and is_multi_answer(answers):
            out[r[0]] = r[7] or ""
    return out


def exemplar_swaps_text(swaps: dict[str, int]) -> str:
    """'80 exemplars replaced so that none gives a question's answer away (40 because ...).', or ''
    (a question's own row, always replaced, is not counted: it is no news)."""
    from .probe import SWAP_REASONS

    leaks = {k: v for k, v in swaps.items() if k != "self"}
    if not leaks:
        return ""
    n = sum(leaks.values())
    why = ", ".join(f"{v} because {SWAP_REASONS.get(k, k)}" for k, v in sorted(leaks.items()))
    return f"{n} exemplar{'s' if n != 1 else ''} replaced so that none gives a question's answer away ({why})."


def p_sampled_text(p_sampled: dict[str, tuple[float, int]]) -> str:
    """'Mean P(T>0): WeaklyKnown 0.12 (30), Unknown 0 (50).', or '' when nothing was sampled."""
    parts = [f"{c} {p_sampled[c][0]:.2g} ({p_sampled[c][1]})" for c in ("WeaklyKnown", "Unknown") if c in p_sampled]
    return f"Mean P(T>0): {', '.join(parts)}." if parts else ""

"""Step 6: the training plan. The recommended mix by default, with every option of the plan; the
counts and shares before and after; the paper's evidence in plain words; and the memory a LoRA run
will need against what this machine has free."""

from __future__ import annotations

import html

from ..qt import Qt, QtWidgets
from .base import BLOCKED, DONE, READY, InlineMessage, Page

MIX_CHOICES = [
    ("recommended", "Recommended: drop Unknown"),
    ("idk", "“I don't know” for Unknown"),
    ("natural", "Natural: keep everything"),
    ("custom", "Custom: a share per category"),
]


def not_probed_words(counts: dict) -> str:
    """', 5 rows not probed kept as they are (1 multi-turn, 2 task, ...)' or '' when none."""
    np_ = counts.get("not_probed") or {}
    total = np_.get("total", 0)
    if not total:
        return ""
    from core.datasets import reasons_text

    why = reasons_text(np_.get("reasons") or {})
    kept, left = np_.get("kept", 0), np_.get("left_out", 0)
    how = "kept as they are" if not left else ("left out" if not kept else f"{kept} kept, {left} left out")
    return f", <b>{total}</b> row{'s' if total != 1 else ''} not probed, {how} ({html.escape(why)})"


def counts_table(counts: dict) -> str:
    from core.categories import CATEGORIES
    from core.formats import percent

    def cell(part: str, cat: str) -> str:
        p = counts[part]
        n = p["counts"].get(cat, 0)
        return f"<td align='right'>{n}</td><td align='right' style='color:gray'>{percent(p['shares'].get(cat, 0), 0)}</td>"

    head = (
        "<tr><th align='left'>Category</th><th colspan=2>Probed (before)</th><th colspan=2>Train (after)</th>"
        "<th colspan=2>Dev</th><th colspan=2>Test</th><th colspan=2>Dropped</th></tr>"
    )
    rows = [
        f"<tr><td>{c}</td>" + "".join(cell(part, c) for part in ("before", "train", "dev", "test", "dropped")) + "</tr>"
        for c in CATEGORIES
    ]
    total = (
        "<tr><td><b>Total</b></td>"
        + "".join(
            f"<td align='right'><b>{counts[part]['total']}</b></td><td></td>"
            for part in ("before", "train", "dev", "test", "dropped")
        )
        + "</tr>"
    )
    return f"<table cellspacing=0 cellpadding=3>{head}{''.join(rows)}{total}</table>"


class PlanPage(Page):
    title = "Plan"
    key = "plan"

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(ctx, parent)
        self.plan = None
        outer = QtWidgets.QVBoxLayout(self)
        outer.addWidget(
            self.heading(
                "Plan",
                "Which probed questions to train on, which to hold out for the dev split that picks the stopping "
                "point, and why: the defaults follow Gekhman et al. 2024.",
            )
        )
        split = QtWidgets.QHBoxLayout()
        outer.addLayout(split, 1)
        box = QtWidgets.QGroupBox("Options")
        form = QtWidgets.QFormLayout(box)
        self.mix = QtWidgets.QComboBox()
        self.mix.setObjectName("mixCombo")
        for value, label in MIX_CHOICES:
            self.mix.addItem(label, value)
        self.mix.currentIndexChanged.connect(self._mix_changed)
        self.mix.setToolTip(
            "Recommended: keep what the model knows (HighlyKnown, MaybeKnown), drop Unknown.\n"
            "“I don't know”: keep Unknown questions but train the answer “I don't know”.\n"
            "Natural: train on everything, as in the data.\nCustom: choose a share per category."
        )
        form.addRow("Mix:", self.mix)
        self.cap = QtWidgets.QSpinBox()
        self.cap.setRange(0, 10_000_000)
        self.cap.setToolTip("How many WeaklyKnown examples may stay in the training set (the paper: none).")
        form.addRow("WeaklyKnown cap:", self.cap)
        from core.categories import CATEGORIES
        from core.plan import RECOMMENDED_SHARES, PlanSettings

        defaults = PlanSettings()  # the form starts at the settings class's defaults, the custom shares at the recommended mix
        self.cap.setValue(defaults.weakly_known_cap)
        self.shares: dict[str, QtWidgets.QDoubleSpinBox] = {}
        for cat in CATEGORIES:
            spin = QtWidgets.QDoubleSpinBox()
            spin.setRange(0.0, 1.0)
            spin.setSingleStep(0.1)
            spin.setValue(RECOMMENDED_SHARES[cat])
            self.shares[cat] = spin
            form.addRow(f"Share of {cat}:", spin)
        self.dev_fraction = QtWidgets.QDoubleSpinBox()
        self.dev_fraction.setRange(0.01, 0.5)
        self.dev_fraction.setSingleStep(0.05)
        self.dev_fraction.setValue(defaults.dev_fraction)
        form.addRow("Dev split (fraction):", self.dev_fraction)
        self.dev_max = QtWidgets.QSpinBox()
        self.dev_max.setRange(4, 1_000_000)
        self.dev_max.setValue(defaults.dev_max)
        form.addRow("Dev split (at most):", self.dev_max)
        self.test_fraction = QtWidgets.QDoubleSpinBox()
        self.test_fraction.setRange(0.0, 0.5)
        self.test_fraction.setSingleStep(0.05)
        self.test_fraction.setValue(defaults.test_fraction)
        self.test_fraction.setToolTip(
            "Share of the probed questions held out for test, drawn before dev: never trained on, never used for "
            "stopping; knowmix check measures what training did on them. 0: no test split."
        )
        form.addRow("Test split (fraction, 0 = none):", self.test_fraction)
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(defaults.seed)
        form.addRow("Seed:", self.seed)
        self.drop_multi = QtWidgets.QCheckBox()
        self.drop_multi.setObjectName("dropMultiAnswer")
        self.drop_multi.setChecked(defaults.multi_answer == "drop")
        self.drop_multi.setToolTip(
            "Questions whose answers name two or more different things (e.g. two children of one person), not\n"
            "aliases of one answer: any of them counts as right. The paper removed such questions; KnowMix\n"
            "keeps them unless you tick this."
        )
        self._set_multi_count(0)
        form.addRow(self.drop_multi)
        ood_row = QtWidgets.QHBoxLayout()
        self.ood_edit = QtWidgets.QLineEdit()
        self.ood_edit.setObjectName("oodPath")
        self.ood_edit.setPlaceholderText("Optional: questions of other groups")
        self.ood_edit.setToolTip(
            "An out-of-distribution file: questions of groups (relations) your data does not have, as the paper's\n"
            "held-out relations. It is never trained on; the check re-asks it after training to show whether the\n"
            "fine-tune changed what the model knows outside your data."
        )
        ood_browse = QtWidgets.QPushButton("Browse…")
        ood_browse.clicked.connect(self._choose_ood)
        ood_row.addWidget(self.ood_edit, 1)
        ood_row.addWidget(ood_browse)
        form.addRow("Out-of-distribution file:", ood_row)
        self.build_button = QtWidgets.QPushButton("Make the plan")
        self.build_button.setObjectName("buildPlan")
        self.build_button.clicked.connect(self.build)
        form.addRow(self.build_button)
        box.setMaximumWidth(460)
        split.addWidget(box, 0)

        right = QtWidgets.QVBoxLayout()
        self.message = InlineMessage()
        right.addWidget(self.message)
        self.counts = QtWidgets.QLabel("")
        self.counts.setObjectName("planCounts")
        self.counts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right.addWidget(self.counts)
        self.memory = QtWidgets.QLabel("")
        self.memory.setObjectName("planMemory")
        self.memory.setWordWrap(True)
        right.addWidget(self.memory)
        self.explain = QtWidgets.QPlainTextEdit()
        self.explain.setObjectName("planExplain")
        self.explain.setReadOnly(True)
        from ..qt import QtGui

        # the explanation lines up its numbers in columns, as the CLI prints it
        self.explain.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        right.addWidget(self.explain, 1)
        self.next_button = QtWidgets.QPushButton("Next: train →")
        self.next_button.clicked.connect(lambda: self.ctx.window.go("train") if self.ctx.window else None)
        right.addWidget(self.next_button, 0, Qt.AlignmentFlag.AlignRight)
        split.addLayout(right, 1)
        self._mix_changed()

    # -- navigator ---------------------------------------------------------------------------------
    def watched_fields(self):
        return ("project_path", "probe_run_id", "plan_id")

    def step_state(self):
        if self.ctx.probe_run_id is None:
            return BLOCKED, "Probe first"
        if self.ctx.plan_id is not None:
            return DONE, f"Plan {self.ctx.plan_id}"
        from core.store import PROBE_FINISHED

        if self._probe_status() != PROBE_FINISHED:
            return BLOCKED, "The probe is not finished yet"
        return READY, "Make the training plan"

    def _probe_status(self) -> str:
        """The current probe run's status ("" when unreadable); the context keeps it while a job runs."""
        return self.ctx.probe_run_status() or ""

    def primary_action(self) -> None:
        if self.build_button.isEnabled():
            self.build()

    def _mix_changed(self) -> None:
        mix = self.mix.currentData()
        self.cap.setEnabled(mix in ("recommended", "idk"))
        for spin in self.shares.values():
            spin.setEnabled(mix == "custom")

    def settings(self):
        from core.plan import PlanSettings

        mix = self.mix.currentData()
        return PlanSettings(
            mix=mix,
            weakly_known_cap=self.cap.value(),
            shares={c: round(s.value(), 4) for c, s in self.shares.items()} if mix == "custom" else None,
            dev_fraction=round(self.dev_fraction.value(), 4),
            dev_max=self.dev_max.value(),
            test_fraction=round(self.test_fraction.value(), 4),
            seed=self.seed.value(),
            multi_answer="drop" if self.drop_multi.isChecked() else "keep",
        )

    def _choose_ood(self) -> None:
        from .dataset import DATA_FILTER

        start = str(self.ctx.settings.value("data/last_folder", ""))
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Out-of-distribution questions", start, DATA_FILTER)
        if path:
            self.ood_edit.setText(path)

    def _set_multi_count(self, n: int) -> None:
        self.drop_multi.setText(f"Leave out questions with several different true answers ({n})")
        self.drop_multi.setEnabled(n > 0 or self.drop_multi.isChecked())

    def _count_multi_answer(self) -> None:
        """The checkbox says how many probed questions of the current probe run it would leave out."""
        from core.errors import KnowMixError
        from core.summary import multi_answer_ids

        n = 0
        try:
            with self.ctx.project() as p:
                run = p.probe_run(self.ctx.probe_run_id)
                n = len(multi_answer_ids(p, run.id, run.dataset_id))
        except KnowMixError:
            pass
        self._set_multi_count(n)

    # -- view ------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        from core.plan import load_plan

        self.plan = None
        if self.ctx.probe_run_id is None:
            self.message.show_message("Probe the dataset first (step 4): the plan is made from the probe's categories.", "info")
            self.counts.setText("")
            self.memory.setText("")
            self.explain.setPlainText("")
            return
        self.message.clear_message()
        self._count_multi_answer()
        if self.ctx.plan_id is None:
            self.counts.setText(
                "No plan yet. The options on the left start at the paper's recommendation; click “Make the plan”."
            )
            self.memory.setText("")
            self.explain.setPlainText("")
            return
        with self.ctx.project() as p:
            plan = load_plan(p, self.ctx.plan_id)
            if plan.probe_run_id != self.ctx.probe_run_id:
                self.counts.setText("The last plan was made from another probe run; make a new one for this probe.")
                self.explain.setPlainText("")
                self.memory.setText("")
                return
            self.show_plan(p, plan)

    def show_plan(self, project, plan) -> None:
        from core.plan import plan_memory

        self.plan = plan
        s = plan.settings
        self.mix.setCurrentIndex(max(0, self.mix.findData(s.mix)))
        self.cap.setValue(s.weakly_known_cap)
        self.drop_multi.setChecked(s.multi_answer == "drop")
        self.test_fraction.setValue(s.test_fraction)
        self.ood_edit.setText(_ood_source(project, s.ood_dataset_id))
        c = plan.counts()
        relabel = f" ({c['relabelled']} Unknown answers relabelled “I don't know”)" if c["relabelled"] else ""
        self.counts.setText(
            f"<b>Plan {plan.id}</b>: <b>{c['train']['total']}</b> questions to train on{relabel}, "
            f"<b>{c['dev']['total']}</b> held out for dev, <b>{c['test']['total']}</b> for test"
            + (f" ({html.escape(c['test_skipped'])})" if c.get("test_skipped") else "")
            + f", <b>{c['dropped']['total']}</b> dropped"
            + not_probed_words(c)
            + ".<br>"
            + counts_table(c)
        )
        warnings = plan.warnings()
        if warnings:
            self.message.show_message("<br>".join(html.escape(w) for w in warnings), "warning")
            self.message.setTextFormat(Qt.TextFormat.RichText)
        # Against the GPU when the model was loaded on one (training uses it then), else RAM.
        info = self.ctx.model_info
        device = "cuda" if info is not None and str(info.device).startswith("cuda") else "cpu"
        est, warning, name = plan_memory(project, plan, device)
        if est is None:
            self.memory.setText(html.escape(name))
        else:
            from core.formats import format_gib
            from core.models import available_memory

            free = available_memory(device)
            where = "GPU memory" if device == "cuda" else "RAM"
            free_text = f"; {format_gib(free)} of {where} is free now" if free else ""
            verdict = (
                f"<span style='color:#b00020'><b>Too much:</b> {html.escape(warning)}</span>"
                if warning
                else "<span style='color:#2e7d32'><b>Fits.</b></span>"
            )
            self.memory.setText(
                f"<b>Memory</b> for a LoRA run on {html.escape(name)}: about "
                f"{format_gib(est.total)}{free_text}. {verdict}<br>"
                f"<span style='color:gray'>{html.escape(est.describe())}</span>"
            )
        self.explain.setPlainText(plan.explain())

    def update_actions(self) -> None:
        self.build_button.setEnabled(self.ctx.probe_run_id is not None and not self.ctx.runner.busy)
        self.next_button.setEnabled(self.ctx.plan_id is not None)

    # -- building ------------------------------------------------------------------------------------
    def build(self) -> None:
        try:
            settings = self.settings()
            settings.validate()
        except Exception as exc:  # noqa: BLE001
            self.message.show_message(str(exc), "error")
            return
        path, run_id = self.ctx.project_path, self.ctx.probe_run_id
        ood = self.ood_edit.text().strip()

        def job(p, _j):
            from core.plan import add_ood, build_plan, save_plan

            plan = build_plan(p, run_id, settings)
            if ood:
                add_ood(p, plan, ood)
            return save_plan(p, plan)

        self.project_op(
            "Making the plan",
            job,
            path=path,
            changes=lambda plan_id: {"plan_id": plan_id, "train_run_id": None},
            on_done=lambda _plan_id: self.refresh_now(),
            on_error=self._failed,
        )
        self.build_button.setEnabled(False)

    def _failed(self, exc: BaseException, tb: str) -> None:
        self.update_actions()
        self.report_error(exc, tb)


def _ood_source(project, dataset_id) -> str:
    """The file the plan's out-of-distribution dataset came from ('' when the plan has none)."""
    if dataset_id is None:
        return ""
    from core.errors import KnowMixError

    try:
        return str(project.dataset(dataset_id).get("path") or "")
    except KnowMixError:
        return ""

"""Step 4: probe. Choose the budget (the paper's by default), see how many model calls and roughly how
long it will take, start, pause (cancel) and resume; the breakdown fills in as batches are saved."""

from __future__ import annotations

import html
import time
from typing import Any, Optional

from core.jobs import Progress
from core.store import PROBE_CANCELLED, PROBE_FAILED, PROBE_FINISHED, PROBE_RUNNING, ProbeRun

from ..qt import Qt, QtWidgets
from .base import BLOCKED, DONE, READY, InlineMessage, Page, ProgressRow, fmt_seconds, scrolled

# Seconds per question at the paper's budget with the built-in model on one CPU thread of this kind of
# laptop (measured: 2.2 s/question over 400 questions with the lazy schedule). Only a first guess: once
# the project has a probe run with the same model, its own measured rate is used instead.
BASE_SECONDS_PER_QUESTION = 2.2
BASE_MODEL_BYTES = 93 * 1024**2
LIVE_REFRESH_S = 1.0  # the live counts are read (on the job's thread) at most this often


class LiveCounts:
    """On the probe job's thread: which run is being probed and its counts so far, sent to the page.

    The page used to read both from the project on the UI thread on every progress update (an
    SQLite open, PRAGMAs, a query: 100+ ms on a busy machine); the job has the project open
    anyway. The first progress update (the run exists by then) names the run (the dataset's
    latest, as the page used to take it); after that the counts are read at most every
    ``LIVE_REFRESH_S`` and when the last question is done, and only when a batch was saved.
    """

    def __init__(self, project: Any, dataset_id: int, send: Any) -> None:
        self.project, self.dataset_id, self.send = project, dataset_id, send
        self.run_id: Optional[int] = None
        self.status: Optional[str] = None
        self.done = -1
        self.last = 0.0

    def update(self, p: Progress) -> None:
        now = time.monotonic()
        if p.done == self.done or (now - self.last < LIVE_REFRESH_S and p.done != p.total):
            return
        try:
            if self.run_id is None:
                runs = [r for r in self.project.probe_runs() if r.dataset_id == self.dataset_id]
                if not runs:
                    return
                self.run_id, self.status = runs[-1].id, runs[-1].status
            counts = self.project.category_counts(self.run_id)
        except Exception:  # noqa: BLE001 - live counts are a nicety; the probe goes on
            return
        self.done, self.last = p.done, now
        self.send({"run": self.run_id, "status": self.status, "counts": counts})


def estimate(
    settings: Any, n_questions: int, model_bytes: Optional[int], measured_rate: Optional[float]
) -> tuple[int, int, float, str]:
    """(model calls at most, answers at most, seconds, where the time comes from)."""
    calls = n_questions * settings.n_sets * (2 if settings.samples_per_set else 1)
    answers = n_questions * settings.n_sets * (1 + settings.samples_per_set)
    budget = settings.n_sets * (1 + settings.samples_per_set) / (10 * 17)
    if measured_rate:
        per_q = measured_rate * budget
        source = "from this project's earlier probe with this model"
    else:
        scale = max(1.0, (model_bytes or BASE_MODEL_BYTES) / BASE_MODEL_BYTES)
        per_q = BASE_SECONDS_PER_QUESTION * budget * scale
        source = "a rough first guess for a laptop CPU; it is measured once the probe runs"
    return calls, answers, n_questions * per_q, source


class ProbePage(Page):
    title = "Probe"
    key = "probe"

    def __init__(self, ctx, parent=None) -> None:
        super().__init__(ctx, parent)
        self.job = None
        self._n_questions = 0
        self._rate: Optional[tuple[tuple, Optional[float]]] = None  # (project, model), measured rate
        outer = QtWidgets.QVBoxLayout(self)  # the page scrolls as a whole in a short window
        outer.setContentsMargins(0, 0, 0, 0)
        body = QtWidgets.QWidget()
        outer.addWidget(scrolled(body))
        lay = QtWidgets.QVBoxLayout(body)
        lay.addWidget(
            self.heading(
                "Probe",
                "Each question is asked with several sets of 4 example questions: once greedily and several times "
                "with sampling. How often the model gets it right decides its category (SliCK).",
            )
        )
        self.what = QtWidgets.QLabel("")
        self.what.setObjectName("probeWhat")
        self.what.setWordWrap(True)
        lay.addWidget(self.what)

        box = QtWidgets.QGroupBox("Budget")
        form = QtWidgets.QFormLayout(box)
        self.preset_combo = QtWidgets.QComboBox()
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.addItem("Paper (10 sets × 16 samples) — recommended", "paper")
        self.preset_combo.addItem("Quick (4 sets × 8 samples) — cheaper, less reliable", "quick")
        self.preset_combo.addItem("Smoke test (2 sets × 2 samples) — only to try the app", "smoke")
        self.preset_combo.currentIndexChanged.connect(self._preset_changed)
        form.addRow("Preset:", self.preset_combo)
        self.sets = QtWidgets.QSpinBox()
        self.sets.setRange(1, 50)
        self.samples = QtWidgets.QSpinBox()
        self.samples.setRange(0, 64)
        self.temperature = QtWidgets.QDoubleSpinBox()
        self.temperature.setRange(0.05, 2.0)
        self.temperature.setSingleStep(0.05)
        self.max_tokens = QtWidgets.QSpinBox()
        self.max_tokens.setRange(1, 256)
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        form.addRow("Exemplar sets per question:", self.sets)
        form.addRow("Samples per set:", self.samples)
        form.addRow("Sampling temperature:", self.temperature)
        form.addRow("Longest answer (tokens):", self.max_tokens)
        form.addRow("Seed:", self.seed)
        from core.probe import MATCH_LABEL

        self.match_combo = QtWidgets.QComboBox()
        self.match_combo.setObjectName("matchCombo")
        # its longest choice is a sentence: the combo may be narrower than it (the list shows it whole)
        self.match_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.match_combo.setMinimumContentsLength(30)
        for mode, label in MATCH_LABEL.items():
            self.match_combo.addItem(f"{mode}: {label}", mode)
        self.match_combo.setToolTip(
            "How an answer is scored. auto: the paper's exact match for short entity answers, the answer key for "
            "sentence answers (the key column of the Dataset step's preview)."
        )
        form.addRow("Answers are correct when:", self.match_combo)
        self.chat_template = QtWidgets.QCheckBox("Prompt with the model's chat template (exemplars as chat turns)")
        self.chat_template.setObjectName("chatTemplateCheck")
        form.addRow("", self.chat_template)
        for w in (self.sets, self.samples, self.max_tokens, self.seed):
            w.valueChanged.connect(self._update_estimate)
        self.temperature.valueChanged.connect(self._update_estimate)
        lay.addWidget(box)
        self.estimate_label = QtWidgets.QLabel("")
        self.estimate_label.setObjectName("probeEstimate")
        self.estimate_label.setWordWrap(True)
        lay.addWidget(self.estimate_label)

        row = QtWidgets.QHBoxLayout()
        self.start_button = QtWidgets.QPushButton("Start probe")
        self.start_button.setObjectName("startProbe")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QtWidgets.QPushButton("Pause / cancel")
        self.cancel_button.setObjectName("cancelProbe")
        self.cancel_button.setToolTip("Stops after the current batch. Finished questions are saved; Start again resumes.")
        self.cancel_button.clicked.connect(self.cancel)
        self.next_button = QtWidgets.QPushButton("See the breakdown →")
        self.next_button.clicked.connect(lambda: self.ctx.window.go("breakdown") if self.ctx.window else None)
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        row.addWidget(self.next_button)
        lay.addLayout(row)
        self.progress = ProgressRow()
        lay.addWidget(self.progress)
        self.message = InlineMessage()
        lay.addWidget(self.message)
        from ..charts import CategoryBars

        self.live_counts = QtWidgets.QLabel("")
        self.live_counts.setObjectName("liveCounts")
        lay.addWidget(self.live_counts)
        self.live_chart = CategoryBars()
        self.live_chart.setObjectName("liveChart")
        # The chart asks for a row's height per group: with many groups it scrolls in its own area
        # instead of making the page (and the window) taller than the screen.
        self.live_scroll = scrolled(self.live_chart)
        self.live_scroll.setObjectName("liveChartScroll")
        self.live_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.live_scroll.setMinimumHeight(150)
        lay.addWidget(self.live_scroll, 1)
        self._set_settings(self._preset("paper"))

    # -- settings ---------------------------------------------------------------------------------
    @staticmethod
    def _preset(name: str):
        from core.probe import PRESETS

        return PRESETS[name]

    def _set_settings(self, s: Any) -> None:
        self._syncing = True
        self.sets.setValue(s.n_sets)
        self.samples.setValue(s.samples_per_set)
        self.temperature.setValue(s.temperature)
        self.max_tokens.setValue(s.max_tokens)
        self.seed.setValue(s.seed)
        self._syncing = False
        self._update_estimate()

    def _preset_changed(self) -> None:
        self._set_settings(self._preset(self.preset_combo.currentData()))

    def settings(self):
        from core.probe import preset

        return preset(
            self.preset_combo.currentData(),
            n_sets=self.sets.value(),
            samples_per_set=self.samples.value(),
            temperature=round(self.temperature.value(), 3),
            max_tokens=self.max_tokens.value(),
            seed=self.seed.value(),
            match=self.match_combo.currentData(),
            chat_template=self.chat_template.isChecked(),
        )

    # -- navigator -----------------------------------------------------------------------------------
    def watched_fields(self):
        return ("project_path", "dataset_id", "pool_id", "probe_run_id", "model_spec", "model_info")

    def step_state(self):
        if self.ctx.project_path is None or self.ctx.dataset_id is None:
            return BLOCKED, "Add a dataset first"
        if self._run_status() == PROBE_FINISHED:
            return DONE, "The probe is finished"
        return READY, "Probe the dataset"

    def _run_status(self) -> Optional[str]:
        """The current run's status; the context keeps it while a job runs (no disk read per update)."""
        return self.ctx.probe_run_status()

    def primary_action(self) -> None:
        if self.start_button.isEnabled():
            self.start()

    # -- view ------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        if self.ctx.project_path is None or self.ctx.dataset_id is None:
            self.what.setText("Add a dataset to the project first (step 3).")
            self._n_questions = 0
            self._update_estimate()
            return
        with self.ctx.project() as p:  # one connection for everything the page shows
            d = p.dataset(self.ctx.dataset_id)
            pool = p.dataset(self.ctx.pool_id) if self.ctx.pool_id else None
            run = p.probe_run(self.ctx.probe_run_id) if self.ctx.probe_run_id else None
            groups = p.category_counts(run.id) if run is not None and run.dataset_id == self.ctx.dataset_id else None
            self._rate = (self._rate_key(), self._read_rate(p))
        self._n_questions = d["n_examples"]
        model = (
            self.ctx.model_info.name
            if self.ctx.model_info
            else ("the built-in SmolLM2-135M-Instruct" if self.ctx.model_spec == "default" else self.ctx.model_spec)
        )
        loaded = " (loaded)" if self.ctx.model_info else " (loads when the probe starts)"
        self.what.setText(
            f"Probing <b>{d['n_examples']}</b> questions of <b>{html.escape(d['name'])}</b> with "
            f"<b>{html.escape(model)}</b>{loaded}. Exemplars: {html.escape(pool['name'] if pool else 'the dataset itself')}."
        )
        if run is not None and groups is not None:
            self._show_run(run, groups)
        else:
            self.progress.reset("Not started.")
            self.live_counts.setText("")
            self.live_chart.set_rows([])
        self._update_estimate()

    def _show_run(self, run: ProbeRun, groups: dict[str, dict[str, int]]) -> None:
        """A run as read from the project: its progress and its counts (``Project.category_counts``)."""
        self.ctx.note_probe_run(run.id, status=run.status, has_results=any(any(g.values()) for g in groups.values()))
        self.progress.set_progress(Progress(run.n_done, run.n_total, 0.0, None, "", "questions"))
        status = run.status
        if status == PROBE_FINISHED:
            took = f" in {fmt_seconds(run.seconds)}" if run.seconds else ""
            self.progress.detail.setText(f"Finished{took}.")
        elif run.n_done < run.n_total:
            self.progress.detail.setText(f"Not finished ({status}): Start resumes from question {run.n_done + 1}.")
        self._show_counts(groups)

    def _rate_key(self) -> tuple:
        return (self.ctx.project_path, self.ctx.model_spec)

    def _measured_rate(self) -> Optional[float]:
        """Seconds per question at the paper budget from this project's runs with the same model.

        Read once per project and model (``refresh`` reads it with the rest, a finished probe
        forgets it), not on every change of a budget spin box."""
        if self.ctx.project_path is None:
            return None
        if self._rate is None or self._rate[0] != self._rate_key():
            try:
                with self.ctx.project() as p:
                    self._rate = (self._rate_key(), self._read_rate(p))
            except Exception:  # noqa: BLE001
                return None
        return self._rate[1]

    def _read_rate(self, p: Any) -> Optional[float]:
        from core.probe import ProbeSettings

        try:
            for run in reversed(p.probe_runs()):
                if run.model_spec == self.ctx.model_spec and run.seconds and run.n_done:
                    s = ProbeSettings.from_json(run.settings_json)
                    budget = s.n_sets * (1 + s.samples_per_set) / (10 * 17)
                    return run.seconds / run.n_done / max(budget, 1e-6)
        except Exception:  # noqa: BLE001
            return None
        return None

    def _update_estimate(self) -> None:
        if getattr(self, "_syncing", False):
            return
        try:
            s = self.settings()
        except Exception as exc:  # noqa: BLE001 - shown where the numbers are
            self.estimate_label.setText(str(exc))
            return
        if not self._n_questions:
            self.estimate_label.setText(s.describe())
            return
        size = self.ctx.model_info.file_size if self.ctx.model_info else None
        calls, answers, seconds, source = estimate(s, self._n_questions, size, self._measured_rate())
        warn = (
            ""
            if s.is_paper_budget
            else " <span style='color:#b26a00'><b>Cheaper than the paper:</b> the Unknown category is less reliable.</span>"
        )
        self.estimate_label.setText(
            f"At most {calls:,} model calls ({answers:,} answers); most questions need far fewer, because sampling stops "
            f"once a question is known. Estimated time: about {fmt_seconds(seconds)} ({source}).{warn}"
        )

    def _show_counts(self, groups: dict[str, dict[str, int]]) -> None:
        """The counts so far (``Project.category_counts``): the line of totals and the bars."""
        from core.categories import CATEGORIES

        overall = {c: sum(g.get(c, 0) for g in groups.values()) for c in CATEGORIES}
        n = sum(overall.values())
        self.live_counts.setText("  ·  ".join(f"{c}: {overall[c]}" for c in CATEGORIES) + f"  ·  probed: {n}")
        rows = [("All", overall)] + sorted(groups.items())[:12]
        self.live_chart.set_rows(rows)

    def update_actions(self) -> None:
        running = self.job is not None
        ready = self.ctx.project_path is not None and self.ctx.dataset_id is not None
        self.start_button.setEnabled(ready and not self.ctx.runner.busy)
        self.cancel_button.setEnabled(running)
        self.next_button.setEnabled(self.ctx.probe_run_id is not None and not running)
        for w in (
            self.preset_combo,
            self.sets,
            self.samples,
            self.temperature,
            self.max_tokens,
            self.seed,
            self.match_combo,
            self.chat_template,
        ):
            w.setEnabled(not running)
        status = self._run_status()
        resumable = status in (PROBE_CANCELLED, PROBE_FAILED, PROBE_RUNNING) and not running
        self.start_button.setText("Resume probe" if resumable else "Start probe")

    # -- the job --------------------------------------------------------------------------------------
    def start(self) -> None:
        from core.probe import check_pool_size

        try:
            settings = self.settings()
            with self.ctx.project() as p:
                pool_n = p.dataset(self.ctx.pool_id or self.ctx.dataset_id)["n_examples"]
            check_pool_size(pool_n, settings)
        except Exception as exc:  # noqa: BLE001
            self.ctx.show_error(exc)
            return
        ctx = self.ctx
        path, dataset_id, pool_id = ctx.project_path, ctx.dataset_id, ctx.pool_id
        if ctx.backend is not None and not getattr(ctx.backend, "alive", True):
            ctx.release_model()  # its process died (a crash, a kill): this probe loads a fresh one
        spec, backend_name, device, backend = ctx.model_spec, ctx.backend_name, ctx.device, ctx.backend
        self.message.clear_message()
        self.progress.set_busy("Starting …")

        def job(p, j):
            from core.probe import CALIBRATION_S, ProbeRequest, run_probe

            from .model import load_model

            nonlocal backend
            if backend is None:
                j.status(f"Loading the model ({spec}) …")
                backend = load_model(spec, backend_name, device)
                j.send_event({"loaded": backend})
            live = LiveCounts(p, dataset_id, j.send_event)

            def progress(pr: Progress) -> None:
                live.update(pr)
                j.progress(pr)

            return run_probe(
                p,
                # calibrate_s: an estimate from this machine before the first batch
                ProbeRequest(dataset_id, pool_id, spec, settings, calibrate_s=CALIBRATION_S),
                backend=backend,
                progress=progress,
                cancel=j.cancel,
                on_status=j.status,
            )

        self.job = self.project_op(
            "Probe",
            job,
            path=path,
            exclusive=True,
            on_done=self._done,
            on_error=self._failed,
            on_progress=self._progress,
            on_status=self._status,
            on_event=self._event,
            on_finally=self._finished,
        )
        self.update_actions()

    def _event(self, data: dict) -> None:
        if "loaded" in data:
            self.ctx.set(backend=data["loaded"], model_info=data["loaded"].info)
            if self.message.text().startswith("Loading"):
                self.message.clear_message()  # loaded: the bar and its line say what happens now
        if "run" in data:  # from LiveCounts: the run being probed and its counts so far
            run_id, groups = data["run"], data["counts"]
            self.ctx.note_probe_run(run_id, status=data.get("status"), has_results=bool(groups))
            if run_id != self.ctx.probe_run_id:
                # the run exists now: show it as it fills in (the page re-reads it, counts included)
                self.ctx.set(probe_run_id=run_id)
            else:
                self._show_counts(groups)

    def _status(self, message: str) -> None:
        self.progress.detail.setText(message)
        if message.startswith("Resuming") or message.startswith("Loading"):
            self.message.show_message(message, "info")

    def _progress(self, p: Progress) -> None:
        self.progress.set_progress(p)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.request_cancel()
            self.progress.detail.setText("Stopping after the current batch …")
            self.cancel_button.setEnabled(False)

    def _done(self, outcome) -> None:
        self._rate = None  # this run's speed counts from now on
        self.ctx.set(probe_run_id=outcome.run_id)
        notes = " ".join(f"Note: {n}." for n in outcome.notes.values())
        if outcome.status == PROBE_CANCELLED:
            self.message.show_message(
                f"Paused: {outcome.n_done} of {outcome.n_total} questions are probed and saved. Click Resume to go on. {notes}",
                "warning",
            )
        else:
            took = f" in {fmt_seconds(outcome.seconds)}" if outcome.seconds else ""
            again = " (it was already finished)" if outcome.status == "already finished" else ""
            self.message.show_message(
                f"Finished{again}: {outcome.n_done} questions probed{took}. See the breakdown (step 5). {notes}", "ok"
            )
        self._show_run_after(outcome.run_id)
        if self.ctx.window is not None:
            page = getattr(self.ctx.window, "by_key", {}).get("breakdown")
            if page is not None and hasattr(page, "reload"):
                page.reload()

    def _show_run_after(self, run_id: int) -> None:
        with self.ctx.project() as p:
            run, groups = p.probe_run(run_id), p.category_counts(run_id)
        self._show_run(run, groups)

    def _failed(self, exc: BaseException, tb: str) -> None:
        from core.errors import ModelCrashed

        from .model import app_wording

        self.progress.detail.setText("Stopped by an error; finished questions are saved.")
        self.ctx.forget_cached()  # the run's status is read afresh (the job noted none at its end)
        if isinstance(exc, ModelCrashed):
            self.ctx.release_model()  # the dead process is dropped; Resume loads the model again
            exc = app_wording(exc, "Press Resume probe to go on from there.")
        self.report_error(exc, tb)

    def _finished(self) -> None:
        self.job = None
        self.update_actions()
        self.state_changed.emit()

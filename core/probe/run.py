"""The job: a probe tied to a project. Find or create the run and claim it (``run_probe``), then
load what is needed and probe what is left (``ClaimedProbe.probe``), saving each batch."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..backends.base import Backend
from ..datasets import Example
from ..errors import Cancelled, ModelCrashed
from ..jobs import CancelToken, ProgressCallback, no_progress
from ..server_sessions import session_note, with_sessions
from ..store.records import PROBE_CANCELLED, PROBE_FAILED, PROBE_FINISHED, PROBE_RUNNING, ProbeRun
from .batches import ProbeJob, probe_examples
from .exemplars import draw_exemplar_sets, short_prompt_notes
from .loading import load_model_backend
from .settings import ProbeSettings


@dataclass
class ProbeOutcome:
    run_id: int
    status: str  # "finished" | "cancelled" | "already finished"
    n_total: int
    n_done: int
    resumed_from: int
    seconds: float
    settings: ProbeSettings
    model_name: str
    notes: dict[str, str]


@dataclass(frozen=True)
class ProbeRequest:
    """Which probe to run: the stored dataset (and pool; None = the dataset itself), the model and
    how to load it, and the budget. Together with the model's fingerprint it names the run."""

    dataset_id: int
    pool_dataset_id: Optional[int]
    model_spec: str
    settings: ProbeSettings
    backend_name: str = "auto"  # auto, llama.cpp or torch
    allow_pickle: bool = False
    backend_options: Optional[dict] = None  # e.g. {"n_threads": 4} (``loading.load_options``)
    isolate: bool = True  # load the model in a child process (a native crash ends only the child)
    calibrate_s: float = 0.0  # seconds to time the loaded model for an estimate before the first batch (``estimate``)


@dataclass
class ClaimedProbe:
    """A run this process has claimed, and everything probing it needs."""

    project: Any
    request: ProbeRequest
    run: Optional[ProbeRun]  # the stored run when resumed, None when just created
    run_id: int
    sets: dict[str, list[list[str]]]
    notes: dict[str, str]
    examples: list[Example]
    pool: list[Example]
    model_name: str
    backend_name: str  # the backend chosen for the model (not "auto")
    fingerprint: str
    ref: Any = None  # the model to load (None when ``backend`` is given)
    backend: Optional[Backend] = None
    judge_ref: Any = None
    judge_backend: Optional[Backend] = None
    judge_fp: str = ""
    progress: ProgressCallback = no_progress
    cancel: CancelToken = field(default_factory=CancelToken)
    on_status: Callable[[str], None] = lambda _m: None

    @property
    def settings(self) -> ProbeSettings:
        return self.request.settings

    def outcome(self, status: str, n_done: int, resumed_from: int, seconds: float) -> ProbeOutcome:
        return ProbeOutcome(
            self.run_id, status, len(self.examples), n_done, resumed_from, seconds, self.settings, self.model_name, self.notes
        )

    def probe(self) -> ProbeOutcome:
        """Load the model (and judge) unless given, probe the examples not done yet, save each batch."""
        project, run, run_id = self.project, self.run, self.run_id
        done_ids = project.done_example_ids(run_id)
        todo = [ex for ex in self.examples if ex.id not in done_ids]
        resumed_from = len(done_ids)
        prior_seconds = run.seconds if run is not None else 0.0
        if not todo:
            if run is None or run.status != PROBE_FINISHED:
                project.update_probe_run(run_id, status=PROBE_FINISHED, n_done=len(done_ids), finished_at=time.time())
            return self.outcome("already finished", len(done_ids), resumed_from, prior_seconds)
        if resumed_from:
            self.on_status(f"Resuming probe run {run_id}: {resumed_from} of {len(self.examples)} examples already done.")
        backend, judge_backend = self._load(resumed_from)
        own_backend, own_judge = self.backend is None, self.judge_backend is None and judge_backend is not None
        note = session_note(run.note if run is not None else "", backend.info.extra)
        project.update_probe_run(run_id, status=PROBE_RUNNING, note=note)
        t0 = time.monotonic()
        state = {"done": resumed_from}

        def save(rows: list[dict]) -> None:
            state["done"] += len(rows)
            project.save_probe_results(run_id, rows, n_done=state["done"], seconds=prior_seconds + time.monotonic() - t0)

        job = ProbeJob(
            run_id=run_id,
            on_results=save,
            progress=self.progress,
            cancel=self.cancel,
            already_done=resumed_from,
            total=len(self.examples),
            judge=judge_backend,
            hold_out=self.request.pool_dataset_id is None,
            calibrate_s=self.request.calibrate_s,
        )
        try:
            if self.settings.match == "judge":
                _calibrate_judge(self, judge_backend or backend)
            probe_examples(backend, todo, self.pool, self.settings, self.sets, job)
        except Cancelled:
            project.update_probe_run(run_id, status=PROBE_CANCELLED)
            return self.outcome(PROBE_CANCELLED, state["done"], resumed_from, prior_seconds + time.monotonic() - t0)
        except BaseException as exc:
            told = _crash_told(exc, state["done"], len(self.examples)) if isinstance(exc, ModelCrashed) else exc
            try:
                project.update_probe_run(run_id, status=PROBE_FAILED, note=with_sessions(note, str(told)[:500]))
            except Exception:
                pass
            if told is not exc:
                raise told from None
            raise
        finally:
            if own_backend:
                backend.close()
            if own_judge and judge_backend is not None:
                judge_backend.close()
        seconds = prior_seconds + time.monotonic() - t0
        project.update_probe_run(run_id, status=PROBE_FINISHED, finished_at=time.time(), seconds=seconds, n_done=state["done"])
        return self.outcome(PROBE_FINISHED, state["done"], resumed_from, seconds)

    def _load(self, resumed_from: int) -> tuple[Backend, Optional[Backend]]:
        """The probed model and the judge: the given ones, or loaded here (closed again on failure)."""
        req, total = self.request, len(self.examples)
        backend = self.backend
        if backend is None:
            self.on_status(f"Loading {self.model_name} ({self.backend_name}) ...")
            try:
                backend = load_model_backend(
                    self.ref, self.backend_name, self.fingerprint, req.allow_pickle, req.backend_options, req.isolate
                )
            except ModelCrashed as exc:
                raise _crash_told(exc, resumed_from, total) from None
        judge = self.judge_backend
        if judge is None and self.judge_ref is not None:
            from ..backends import backend_for

            self.on_status(f"Loading the judge model {self.judge_ref.display_name} ...")
            try:
                name = backend_for(self.judge_ref, "auto")
                judge = load_model_backend(
                    self.judge_ref, name, self.judge_fp, req.allow_pickle, req.backend_options, req.isolate
                )
            except BaseException as exc:
                if self.backend is None:
                    backend.close()
                if isinstance(exc, ModelCrashed):
                    raise _crash_told(exc, resumed_from, total) from None
                raise
        return backend, judge


def run_probe(
    project: Any,
    request: ProbeRequest,
    *,
    backend: Optional[Backend] = None,
    judge_backend: Optional[Backend] = None,
    progress: ProgressCallback = no_progress,
    cancel: Optional[CancelToken] = None,
    on_status: Callable[[str], None] = lambda _m: None,
) -> ProbeOutcome:
    """Start, or resume, the probe ``request`` asks for; results go to ``project``.

    With ``settings.judge_model`` the judge questions go to that model, loaded here like the probed
    one (or ``judge_backend``, already loaded, e.g. by a test).

    A run is identified by (dataset content, pool content, model fingerprint, settings): the same
    command after a crash, a kill or a cancel continues that run and skips finished examples.

    Without ``backend`` the model is loaded here, in a child process unless ``request.isolate`` is
    False: a native crash of llama.cpp or torch then ends only the child and arrives as
    ``ModelCrashed`` (the run is marked failed and resumes like after a kill). A ``backend`` passed
    in is used as it is (the app passes its own process backend; tests and the benchmark an
    in-process one).
    """
    from ..backends import backend_for
    from ..models import model_fingerprint, resolve_model

    settings = request.settings
    settings.validate()
    examples = project.examples(request.dataset_id)
    pool = project.examples(request.pool_dataset_id) if request.pool_dataset_id is not None else examples
    ref = None
    if backend is not None:
        fingerprint, model_name, model_path, bname = backend.info.fingerprint, backend.info.name, backend.info.path, backend.name
    else:
        ref = resolve_model(request.model_spec, allow_pickle=request.allow_pickle)
        on_status(f"Checking {ref.display_name} ...")
        fingerprint = model_fingerprint(ref)
        model_name, model_path, bname = ref.display_name, str(ref.path), backend_for(ref, request.backend_name)
    judge_ref = None
    judge_fp = ""
    if settings.judge_model:
        if judge_backend is not None:
            judge_fp = judge_backend.info.fingerprint
        else:
            judge_ref = resolve_model(settings.judge_model, allow_pickle=request.allow_pickle)
            judge_fp = model_fingerprint(judge_ref)
    ident = settings.identity(judge_fp)
    # a server's seed check is recorded per session in the run's note, not in its identity (it can flip);
    # runs made when it was in the identity are still found
    legacy = backend.info.extra.get("run_identity") if backend is not None else None
    where = {"dataset_id": request.dataset_id, "pool_dataset_id": request.pool_dataset_id, "model_fingerprint": fingerprint}
    # Find or create the run and claim it in one transaction: a second process probing the same
    # project then either waits for this to commit and finds the run claimed (a ProjectError that
    # says the project is in use), or claims a run whose owner was killed and resumes it.
    with project.transaction():
        run = project.find_probe_run(**where, settings=ident)
        if run is None and legacy:
            run = project.find_probe_run(**where, settings=_with(ident, legacy))
        if run is None:
            hold_out = request.pool_dataset_id is None
            sets, notes = draw_exemplar_sets(pool, {ex.group for ex in examples}, settings, hold_out=hold_out)
            for group, warn in short_prompt_notes(examples, pool, sets, settings, hold_out).items():
                notes[group] = f"{notes[group]}; {warn}" if group in notes else warn
            run_id = project.create_probe_run(
                **where,
                model_spec=str(request.model_spec),
                model_name=model_name,
                model_path=model_path,
                backend=bname,
                preset=settings.preset,
                settings=ident,
                n_total=len(examples),
            )
            project.save_exemplar_sets(run_id, sets, notes)
        else:
            run_id = run.id
            sets, notes = project.exemplar_sets(run_id)
        project.claim_probe_run(run_id)
    claim = ClaimedProbe(
        project=project,
        request=request,
        run=run,
        run_id=run_id,
        sets=sets,
        notes=notes,
        examples=examples,
        pool=pool,
        model_name=model_name,
        backend_name=bname,
        fingerprint=fingerprint,
        ref=ref,
        backend=backend,
        judge_ref=judge_ref,
        judge_backend=judge_backend,
        judge_fp=judge_fp,
        progress=progress,
        cancel=cancel or CancelToken(),
        on_status=on_status,
    )
    try:
        return claim.probe()
    finally:
        project.release_probe_run(run_id)


def _calibrate_judge(claim: ClaimedProbe, judge: Backend) -> None:
    """Measure the judge on the data before it grades anything (``core.scoring.judge``): stored with
    the run and shown; a judge above the false-yes limit is refused with its figure."""
    from ..scoring.judge import Calibration, calibrate

    stored = claim.run.judge_calibration if claim.run is not None else ""
    if stored:
        data = json.loads(stored)
        cal = Calibration(int(data["n_right"]), int(data["yes_right"]), int(data["n_wrong"]), int(data["yes_wrong"]))
    else:
        claim.on_status("Calibrating the judge on this dataset's own answers ...")
        cal = calibrate(judge, claim.examples, claim.settings.seed)
        claim.project.update_probe_run(claim.run_id, judge_calibration=json.dumps(cal.to_dict()))
    claim.on_status(f"Judge calibration: {cal.words()}.")
    cal.check()


def _crash_told(exc: ModelCrashed, done: int, total: int) -> ModelCrashed:
    """The crash as the CLI tells it: what is saved and how to go on (the app re-tells the last part)."""
    return exc.retold(
        saved=f"Finished work is saved in the project ({done} of {total} questions).",
        resume="Run the same command again to resume.",
    )


def _with(ident: str, extra: dict) -> str:
    return json.dumps({**json.loads(ident), **extra}, sort_keys=True)

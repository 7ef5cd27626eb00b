"""What the training worker reports, as typed events, with the one encoder and the one decoder.

The training loop emits these objects; the worker (``core.train.worker``) records them and sends
each as one JSON line on its stdout (``encode``); the parent (``core.train.runner``) reads the
lines back into the same classes (``decode``) and hands them to the CLI and the Train page.
Consumers dispatch on the class (``isinstance`` or ``match``), so a renamed field is a type
error in one place rather than a silent ``None`` in four.

The wire format is ``{"event": <name>, "run_id": <id>, ...fields}``, one object per line, the
same as the run folder's ``metrics.jsonl``; ``decode`` ignores fields it does not know, so lines
written by a newer worker still read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Mapping, Optional, TypeVar, Union

E = TypeVar("E", bound="TrainEvent")


@dataclass(frozen=True, kw_only=True)
class TrainEvent:
    """Every event names its run (set by the worker's recorder; None inside the loop)."""

    name: ClassVar[str] = ""
    omit_if_none: ClassVar[tuple[str, ...]] = ()  # fields left off the wire while None
    run_id: Optional[int] = None

    @classmethod
    def of(cls: type[E], data: Mapping[str, Any], **more: Any) -> E:
        """The event from a mapping, keeping only this class's fields (a record may carry more)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in {**data, **more}.items() if k in names})

    def with_run(self: E, run_id: int) -> E:
        """The same event, naming its run."""
        return type(self).of(self.to_dict(), run_id=run_id)

    def to_dict(self) -> dict[str, Any]:
        """The wire form: ``event`` and ``run_id`` first, then the fields in their order."""
        out: dict[str, Any] = {"event": self.name, "run_id": self.run_id}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "run_id" and not (value is None and f.name in self.omit_if_none):
                out[f.name] = value
        return out


@dataclass(frozen=True, kw_only=True)
class Resume(TrainEvent):
    """First line of a resumed session: where it picks up (no checkpoint: from the start)."""

    name: ClassVar[str] = "resume"
    from_step: int
    checkpoint: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class Start(TrainEvent):
    """What trains where, before the first step."""

    name: ClassVar[str] = "start"
    total_steps: int
    steps_per_epoch: int
    epochs: int
    start_step: int
    resumed: bool = False
    n_train: int = 0
    n_dev: int = 0
    device: str = ""
    dtype: str = ""
    threads: Optional[int] = None
    trainable_params: Optional[int] = None
    params: Optional[int] = None
    target_modules: Any = None
    fast_loss: Optional[bool] = None
    fit_sample: dict[str, int] = field(default_factory=dict)
    pid: Optional[int] = None


@dataclass(frozen=True, kw_only=True)
class Step(TrainEvent):
    """One optimizer step."""

    name: ClassVar[str] = "step"
    step: int
    epoch: float
    loss: float
    lr: Optional[float] = None
    tokens: Optional[int] = None
    tokens_per_s: Optional[float] = None


@dataclass(frozen=True, kw_only=True)
class Eval(TrainEvent):
    """One evaluation: dev exact match, train fit per category, and the best so far."""

    name: ClassVar[str] = "eval"
    step: int
    epoch: float
    dev_em: float
    dev_correct: Optional[int] = None
    dev_total: Optional[int] = None
    fit: dict[str, float] = field(default_factory=dict)
    fit_n: dict[str, int] = field(default_factory=dict)
    fit_all: Optional[float] = None
    dev_examples: list[dict] = field(default_factory=list)
    seconds: Optional[float] = None
    best: bool = False
    bad_evals: int = 0
    best_step: Optional[int] = None
    best_dev_em: Optional[float] = None


@dataclass(frozen=True, kw_only=True)
class Checkpoint(TrainEvent):
    """A checkpoint is saved: a kill from here on loses only the steps after it."""

    name: ClassVar[str] = "checkpoint"
    step: int
    epoch: float
    path: str


@dataclass(frozen=True, kw_only=True)
class Restored(TrainEvent):
    """Early stop: the best adapter is back in memory (for the merge)."""

    name: ClassVar[str] = "restored"
    step: int
    path: str


@dataclass(frozen=True, kw_only=True)
class Merged(TrainEvent):
    """The model with the adapter merged in is saved."""

    name: ClassVar[str] = "merged"
    path: str


@dataclass(frozen=True, kw_only=True)
class Done(TrainEvent):
    """The run ended normally: finished (``status`` "done") or cancelled; the last line."""

    name: ClassVar[str] = "done"
    status: str
    stop_reason: Optional[str] = None
    best_epoch: Optional[float] = None
    best_step: Optional[int] = None
    best_dev_em: Optional[float] = None
    fit_at_best: Optional[dict[str, float]] = None
    final_step: Optional[int] = None
    final_epoch: Optional[float] = None
    adapter_dir: Optional[str] = None
    final_adapter_dir: Optional[str] = None
    merged_dir: Optional[str] = None
    seconds: Optional[float] = None
    tokens: Optional[int] = None
    train_seconds: Optional[float] = None


@dataclass(frozen=True, kw_only=True)
class WorkerError(TrainEvent):
    """The run stopped on an error; the last line. ``kind`` "user": a ``KnowMixError`` (its class in
    ``error_type``); "bug": anything else, with its ``traceback``."""

    name: ClassVar[str] = "error"
    omit_if_none: ClassVar[tuple[str, ...]] = ("traceback",)
    message: str
    kind: str = "bug"
    error_type: str = ""
    traceback: Optional[str] = None


EVENT_TYPES: dict[str, type[TrainEvent]] = {
    cls.name: cls for cls in (Resume, Start, Step, Eval, Checkpoint, Restored, Merged, Done, WorkerError)
}
AnyEvent = Union[Resume, Start, Step, Eval, Checkpoint, Restored, Merged, Done, WorkerError]


def encode(event: TrainEvent) -> str:
    """The worker side: one event as one JSON line (without the newline)."""
    return json.dumps(event.to_dict(), default=str, ensure_ascii=False)


def decode(line: Union[str, Mapping[str, Any]]) -> Optional[TrainEvent]:
    """The parent side: one line of the worker's stdout (or a ``metrics.jsonl`` line, or its parsed
    object) as its event; None when it is not an event KnowMix knows (it should always be)."""
    if isinstance(line, str):
        try:
            data = json.loads(line)
        except ValueError:
            return None
    else:
        data = line
    if not isinstance(data, Mapping):
        return None
    cls = EVENT_TYPES.get(str(data.get("event")))
    if cls is None:
        return None
    try:
        return cls.of(data)
    except TypeError:  # a required field is missing: not an event this version can read
        return None


__all__ = [
    "TrainEvent",
    "Resume",
    "Start",
    "Step",
    "Eval",
    "Checkpoint",
    "Restored",
    "Merged",
    "Done",
    "WorkerError",
    "EVENT_TYPES",
    "AnyEvent",
    "encode",
    "decode",
]


# -- what a whole run ended with (not an event on the wire: ``train_loop`` returns it) ----------------------
@dataclass
class LoopResult:
    """What one ``train_loop`` call (``core.train.loop``) ended with; the worker writes it into the run's row."""

    status: str  # "done" | "cancelled"
    stop_reason: str  # "early_stop" | "max_epochs" | "cancelled"
    steps_per_epoch: int
    total_steps: int
    final_step: int
    final_epoch: float
    best: Optional[dict]  # the evaluation with the best dev exact match
    history: list[dict] = field(default_factory=list)  # every evaluation, in order
    adapter_dir: Optional[str] = None  # the run's result: best adapter (early stop) or final one (convergence)
    best_adapter_dir: Optional[str] = None
    final_adapter_dir: Optional[str] = None
    merged_dir: Optional[str] = None
    seconds: float = 0.0
    tokens: int = 0
    train_seconds: float = 0.0  # time in optimizer steps only (no eval, no checkpoints)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

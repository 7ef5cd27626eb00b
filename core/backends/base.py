"""The one interface every model backend implements.

The probe only ever asks for short answers to few-shot prompts, greedy or sampled, so the
interface is a batch of ``GenRequest`` in, a list of answer strings per request out. Sampling
semantics (top-k, temperature, one seeded uniform draw per token) live in ``sampling.py`` and
are shared by all backends, so a seed means the same thing whichever backend runs it and the
lazy probe schedule provably gives the same answers as the full one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from ..errors import SettingsError


@dataclass(frozen=True)
class GenRequest:
    """One prompt, answered ``n`` times.

    ``temperature == 0`` means greedy. With ``temperature > 0`` every answer has its own seed
    (``seeds[i]`` for answer ``i``), so an answer does not depend on which other answers were
    asked for in the same call or in what order.
    """

    prompt: str
    n: int = 1
    temperature: float = 0.0
    top_k: int = 0  # 0: the whole vocabulary
    seeds: tuple[int, ...] = ()
    max_tokens: int = 24
    stop: tuple[str, ...] = ("\n",)
    # Optional: a function of the answer so far that returns True when generating more of this
    # answer cannot matter to the caller (the probe: it can no longer be correct). Backends may
    # ignore it; the ones that honour it return the partial answer followed by "…".
    prune: Optional[Callable[[str], bool]] = field(default=None, compare=False)
    # The prompt is a rendered chat template (core.backends.chat): it carries its own special
    # tokens, BOS included, so the backend parses them and adds none.
    chat: bool = False

    def __post_init__(self) -> None:
        if self.n < 1:
            raise SettingsError(f"A generation request needs at least one answer (n={self.n}).")
        if self.temperature < 0:
            raise SettingsError(f"Temperature must be 0 (greedy) or more, not {self.temperature}.")
        if self.top_k < 0:
            raise SettingsError(f"top-k must be 0 (off) or more, not {self.top_k}.")
        if self.max_tokens < 1:
            raise SettingsError(f"max tokens must be at least 1, not {self.max_tokens}.")
        if self.temperature > 0 and len(self.seeds) != self.n:
            raise SettingsError(f"A sampled request needs one seed per answer ({self.n} answers, {len(self.seeds)} seeds).")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class GenStats:
    """What the model was asked to do; the benchmark prints these side by side."""

    requests: int = 0  # GenRequest objects answered
    answers: int = 0  # answer strings returned
    forward_calls: int = 0  # calls into the model's forward pass / llama_decode
    tokens_evaluated: int = 0  # tokens pushed through the model (prompt + generated)

    def reset(self) -> None:
        self.requests = self.answers = self.forward_calls = self.tokens_evaluated = 0


@dataclass
class ModelInfo:
    """What the UI and reports show about a loaded model."""

    name: str
    path: str
    backend: str
    device: str
    fingerprint: str
    file_size: int
    context_length: Optional[int] = None
    n_params: Optional[int] = None
    architecture: Optional[str] = None
    dtype: Optional[str] = None
    extra: dict = field(default_factory=dict)


class Backend(ABC):
    """A loaded model that answers prompts. Use as a context manager to free memory promptly."""

    name: str  # set by each class; ProcessBackend takes the name of the backend it loaded
    info: ModelInfo

    def __init__(self) -> None:
        self.stats = GenStats()

    @abstractmethod
    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        """Answer each request; result ``[i]`` holds ``requests[i].n`` strings, stop string removed."""

    def close(self) -> None:
        """Release the model; the default is to rely on garbage collection."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

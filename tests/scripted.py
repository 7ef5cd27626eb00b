"""A scripted model backend for probe tests: answers are a pure function of (prompt, seed).

Each question has a greedy accuracy and a sampling accuracy; whether a given answer is right is
decided by a hash of the prompt (and the sample's seed), so the same request always gets the
same answer, whatever the order or batching, as with a real backend.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from core.backends.base import Backend, GenRequest, ModelInfo
from core.datasets import content_fingerprint


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


class ScriptedBackend(Backend):
    name = "scripted"

    def __init__(self, knowledge: dict[str, tuple[str, float, float]]) -> None:
        """``knowledge[question] = (gold answer, P(greedy correct), P(sample correct))``."""
        super().__init__()
        self.knowledge = knowledge
        self.calls: list[GenRequest] = []
        self.info = ModelInfo(
            name="scripted", path="<scripted>", backend=self.name, device="cpu", fingerprint="scripted-v1", file_size=0
        )

    def _answer(self, prompt: str, seed: int | None) -> str:
        question = prompt.rsplit("Q: ", 1)[1].rsplit("\nA:", 1)[0]
        gold, p_greedy, p_sample = self.knowledge[question]
        if seed is None:
            ok = _unit(prompt, "greedy") < p_greedy
        else:
            ok = _unit(prompt, seed) < p_sample
        return gold if ok else f"wrong {_unit(prompt, seed):.3f}"

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        out = []
        for req in requests:
            self.calls.append(req)
            self.stats.requests += 1
            if req.greedy:
                answers = [self._answer(req.prompt, None)] * req.n
            else:
                answers = [self._answer(req.prompt, s) for s in req.seeds]
            self.stats.answers += len(answers)
            out.append(answers)
        return out


class FakeDataset:
    """What ``Project.add_dataset`` reads from a loaded dataset."""

    def __init__(self, examples, path="data.jsonl"):
        self.examples = examples
        self.path = path
        self.format = "jsonl"
        self.shape = "question-answer"
        self.mapping = {"question": "question", "answer": "answers", "group": "relation"}
        self.file_sha256 = "0" * 64
        self.content_sha256 = content_fingerprint(examples)
        self.duplicates = []
        self.problems = []

"""The probe's prompts, and the one home of the ``Q: <question>\nA:`` format and the chat rendering
that training, the GGUF export and the check use too (issue 22, item 3).

``qa_prompt`` is the zero-shot prompt the adapter is trained on and asked with; ``build_prompt`` the
few-shot probe prompt; ``chat_renderer`` and ``zero_shot_messages`` the same in a model's chat
template. ``PROMPT_FORMAT`` joins a probe run's identity, so prompts of another version never mix.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

from ..backends.base import Backend
from ..backends.chat import few_shot_messages
from ..backends.chat_sandbox import SandboxedTemplate
from ..datasets import Example

# qa-v4: qa-v3 with fewer exemplars replaced (``LeakCheck``): an exemplar with the same answer is shown
# when that answer is common in the group (at least COMMON_SHARE of its rows), and an answer made of
# function words ("The Who") no longer rejects every exemplar whose question holds them.
# qa-v3: qa-v2 with distinct exemplar sets, a held-out exemplar pool in large groups, no exemplar
# that gives the answer away, and every sample of examples without a correct greedy answer.
# qa-v2: a chat row's own system turn, then four "Q: <q>\nA: <a>" pairs separated by a blank line,
# then "Q: <q>\nA:"; the answer-length limit follows the answers (``answer_token_limit``) and the
# matching mode is part of the settings. (qa-v1: no system turn, 24 tokens, exact match.)
PROMPT_FORMAT = "qa-v4"
ANSWER_TOKENS_CAP = 96  # the longest answer-length limit the gold answers can ask for


def qa_prompt(question: str) -> str:
    """The zero-shot prompt: what training appends " {target}\n" to, what the check and the exported
    adapter (the Modelfile's template) ask."""
    return f"Q: {question}\nA:"


def zero_shot_messages(question: str, answer: Optional[str] = None) -> list[dict[str, str]]:
    """The zero-shot prompt as chat turns (for a model's chat template): the question as the user's
    turn, and with ``answer`` the assistant's reply (the text chat-format training learns)."""
    messages = [{"role": "user", "content": question}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def build_prompt(exemplars: Sequence[Example], question: str, system: str = "") -> str:
    """The few-shot prompt; each exemplar is shown with its own answer (the data's own style) and a
    chat row's system turn comes first."""
    head = f"{system.strip()}\n\n" if system and system.strip() else ""
    shots = "".join(f"Q: {ex.question}\nA: {ex.answers[0]}\n\n" for ex in exemplars)
    return f"{head}{shots}{qa_prompt(question)}"


def answer_token_limit(answers: Iterable[str], floor: int, cap: int = ANSWER_TOKENS_CAP) -> int:
    """Tokens to allow for an answer: what the longest gold answer needs (about 3.5 characters a
    token, with half again as much room and 8 tokens to spare), at least ``floor`` (the settings'
    max_tokens) and at most ``cap`` unless ``floor`` is higher."""
    longest = max((len(a) for a in answers), default=0)
    need = int(longest / 3.5 * 1.5 + 8 + 0.999)
    return max(floor, min(need, cap))


def chat_renderer(backend: Backend) -> Callable[[Sequence[Example], Example], str]:
    """Prompts in the model's chat template: the row's system turn, the exemplars as user/assistant
    turns (each with its own answer), the question as the last user turn.

    The template comes with the model and may loop or build gigabytes: it is rendered in its own
    child process with a time and a size limit (``SandboxedTemplate``), never in this one; that
    process ends when the returned function is dropped."""
    template = SandboxedTemplate.of(backend.info)

    def render(exemplars: Sequence[Example], example: Example) -> str:
        shots = [(ex.question, ex.answers[0]) for ex in exemplars]
        return template.render(few_shot_messages(example.system, shots, example.question))

    return render

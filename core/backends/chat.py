"""Render a conversation with a model's own chat template, as llama-cpp-python and transformers do.

The template is the model's (``tokenizer.chat_template`` in a GGUF's metadata, or the Hugging Face
tokenizer's ``chat_template``); backends put it, with the BOS and EOS token texts, in
``ModelInfo.extra``. It is rendered the way llama-cpp-python's ``Jinja2ChatFormatter`` renders it
(a sandboxed jinja2 environment with trim_blocks and lstrip_blocks, loop controls, a ``tojson``
that keeps non-ASCII text, ``raise_exception``, ``strftime_now``), with the generation prompt
added, so the model's answer is the assistant's next turn. The text holds the template's special
tokens: send it as ``GenRequest(chat=True)``. Generation stops at the end-of-turn token (an
end-of-generation token of the model).

jinja2 is imported here only, when a probe asks for the chat template. The app and the CLI never
use ``ChatTemplate`` themselves: a template comes with a downloaded model and may loop for ever or
build gigabytes, so they render through ``chat_sandbox.SandboxedTemplate``, which runs this class
in a child process with a time and a memory limit. Here, besides jinja2's sandbox, a prompt is
cut off at ``max_chars`` while it streams out, and ``*``, ``**`` and ``+`` refuse to build a string
or list (or a power) bigger than that.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping, Sequence

from ..errors import SettingsError


def template_of(info: Any) -> tuple[str, str, str, str]:
    """(template, BOS text, EOS text, model name) from a backend's ``ModelInfo``; a clear error
    when the model has no chat template."""
    extra: Mapping[str, Any] = getattr(info, "extra", None) or {}
    template = extra.get("chat_template")
    name = getattr(info, "name", "the model")
    if not isinstance(template, str) or not template.strip():
        raise SettingsError(
            f"{name} has no chat template (no tokenizer.chat_template in its files), so it cannot be probed with "
            "--chat-template. Probe it without that option (Q:/A: prompts)."
        )
    return template, str(extra.get("bos_token") or ""), str(extra.get("eos_token") or ""), name


class _TooBig(Exception):
    """A template built a value or a prompt over the size limit."""


def _sandbox_env(max_chars: int) -> Any:
    """jinja2's immutable sandbox, with ``*``, ``**`` and ``+`` that refuse oversized results."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Bounded(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**", "+"])

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, int) and abs(right) > 1024:
                raise _TooBig(f"a power of {right}")
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > max_chars:
                        raise _TooBig(f"a value of {len(seq) * n:,} items")
            if operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                if len(left) + len(right) > max_chars:
                    raise _TooBig(f"a value of {len(left) + len(right):,} items")
            return super().call_binop(context, operator, left, right)

    return Bounded(loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])


class ChatTemplate:
    """A model's chat template, compiled once: ``render(messages)`` gives the prompt text."""

    def __init__(
        self, template: str, bos_token: str = "", eos_token: str = "", model: str = "the model", *, max_chars: int = 1_000_000
    ) -> None:
        import jinja2

        self.max_chars = max_chars
        env = _sandbox_env(max_chars)
        env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )
        try:
            self._template = env.from_string(template)
        except jinja2.TemplateError as exc:
            raise SettingsError(f"The chat template of {model} cannot be read ({exc}). Probe without --chat-template.") from None
        self.bos_token, self.eos_token, self.model = bos_token, eos_token, model

    @classmethod
    def of(cls, info: Any) -> "ChatTemplate":
        """The template a backend's ``ModelInfo`` carries; a clear error when the model has none."""
        return cls(*template_of(info))

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        def raise_exception(message: str) -> None:
            raise ValueError(message)

        try:
            parts: list[str] = []
            size = 0
            for part in self._template.generate(
                messages=list(messages),
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                add_generation_prompt=True,
                raise_exception=raise_exception,
                strftime_now=lambda f: datetime.now().strftime(f),
            ):
                size += len(part)
                if size > self.max_chars:
                    raise _TooBig(f"a prompt of more than {self.max_chars:,} characters")
                parts.append(part)
            return "".join(parts)
        except MemoryError:
            raise  # the sandbox's process says so in its own words
        except _TooBig as exc:
            raise SettingsError(
                f"The chat template of {self.model} builds {exc} for one probe question, so it was stopped. "
                "Probe without --chat-template."
            ) from None
        except Exception as exc:  # a template's own raise_exception, or one that expects other fields
            raise SettingsError(
                f"The chat template of {self.model} refused this conversation ({exc}). Probe without --chat-template."
            ) from None


def few_shot_messages(system: str, shots: Sequence[tuple[str, str]], question: str) -> list[dict[str, str]]:
    """The probe's prompt as turns: the system turn (if any), each exemplar as a user question and
    an assistant answer, then the question as the last user turn."""
    messages = [{"role": "system", "content": system.strip()}] if system and system.strip() else []
    for q, a in shots:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    messages.append({"role": "user", "content": question})
    return messages

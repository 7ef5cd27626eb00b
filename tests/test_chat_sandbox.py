"""A GGUF's chat template is rendered in a child process with a time and a size limit (issue 19,
item 5): a template that loops for ever or builds gigabytes is one clear SettingsError within
seconds, and the calling (app) process goes on."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from core.backends.chat_sandbox import SandboxedTemplate
from core.errors import SettingsError
from core.probe import chat_renderer

PLAIN = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
FOREVER = (
    "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}{% endfor %}{% endfor %}{% endfor %}"
)
HUGE_OUTPUT = "{% for a in range(100000) %}{% for b in range(100000) %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}{% endfor %}"
HUGE_VALUE = "{{ 'x' * 100000 * 100000 }}"
DOUBLING = "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def _info(template: str) -> SimpleNamespace:
    return SimpleNamespace(name="hostile.gguf", extra={"chat_template": template, "bos_token": "<s>", "eos_token": "</s>"})


def test_a_plain_template_renders_in_the_child() -> None:
    with SandboxedTemplate.of(_info(PLAIN)) as t:
        assert t.render(MESSAGES) == "<|user|>What is the capital of France?\n<|assistant|>"
        assert t.render_many([MESSAGES, MESSAGES]) == [t.render(MESSAGES)] * 2
        assert t._proc is not None and t._proc.pid != os.getpid()


def test_a_template_that_loops_for_ever_is_stopped() -> None:
    t0 = time.monotonic()
    with pytest.raises(SettingsError, match="hostile.gguf did not finish within 2 s .*Probe without --chat-template"):
        with SandboxedTemplate.of(_info(FOREVER), timeout_s=2) as t:
            t.render(MESSAGES)
    assert time.monotonic() - t0 < 8


@pytest.mark.parametrize("template", [HUGE_OUTPUT, HUGE_VALUE, DOUBLING], ids=["output", "value", "doubling"])
def test_a_template_that_builds_gigabytes_is_stopped(template: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(SettingsError, match="hostile.gguf") as err:
        with SandboxedTemplate.of(_info(template), timeout_s=5) as t:
            t.render(MESSAGES)
    assert "Probe without --chat-template" in str(err.value)
    assert time.monotonic() - t0 < 10


def test_the_probe_renders_in_the_sandbox_not_in_this_process() -> None:
    backend = SimpleNamespace(info=_info(FOREVER))
    import core.backends.chat_sandbox as sandbox

    old = sandbox.RENDER_TIMEOUT_S
    sandbox.SandboxedTemplate.__init__.__kwdefaults__["timeout_s"] = 2
    try:
        render = chat_renderer(backend)  # type: ignore[arg-type]
        example = SimpleNamespace(system="", question="Q?")
        t0 = time.monotonic()
        with pytest.raises(SettingsError, match="did not finish"):
            render([], example)  # type: ignore[arg-type]
        assert time.monotonic() - t0 < 8
    finally:
        sandbox.SandboxedTemplate.__init__.__kwdefaults__["timeout_s"] = old


def test_the_check_renders_its_chat_prompts_in_the_sandbox() -> None:
    from core.check.run import zero_shot_answers

    seen: list = []

    class Backend:
        info = _info(PLAIN)

        def generate(self, reqs):  # noqa: ANN001 - a stand-in
            seen.extend(reqs)
            return [["Paris"] for _ in reqs]

    examples = [SimpleNamespace(question="What is the capital of France?"), SimpleNamespace(question="Q2?")]
    assert zero_shot_answers(Backend(), examples, "chat", 8) == ["Paris", "Paris"]  # type: ignore[arg-type]
    assert [r.prompt for r in seen] == [
        "<|user|>What is the capital of France?\n<|assistant|>",
        "<|user|>Q2?\n<|assistant|>",
    ]
    assert all(r.chat for r in seen)
    with pytest.raises(SettingsError, match="did not finish"):
        Backend.info = _info(FOREVER)
        import core.backends.chat_sandbox as sandbox

        sandbox.SandboxedTemplate.__init__.__kwdefaults__["timeout_s"] = 2
        try:
            zero_shot_answers(Backend(), examples, "chat", 8)  # type: ignore[arg-type]
        finally:
            sandbox.SandboxedTemplate.__init__.__kwdefaults__["timeout_s"] = sandbox.RENDER_TIMEOUT_S

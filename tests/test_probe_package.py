"""The probe as a package (issue 22, items 2 and 3): small modules and short signatures, and one home
for the rules the probe shares with training, the GGUF export, the check and the app.

Why these tests: the rules were written four times (the ``Q: ...\\nA:`` prompt), three times (the
backend-load options) and twice (which grading a matching mode means), and copies drift: a model
trained on one prompt and asked with another loses what it learned.
"""

from __future__ import annotations

import ast
from pathlib import Path

from core.datasets import Example
from core.probe import ProbeSettings, build_prompt, load_options, qa_prompt, zero_shot_messages
from core.scoring import scorer_for
from core.train.data import PromptFormat
from core.train.gguf_lora import modelfile_text

PACKAGE = Path(__file__).resolve().parents[1] / "core" / "probe"


def test_every_probe_module_is_under_600_lines_and_no_function_takes_more_than_8_parameters():
    modules = sorted(PACKAGE.glob("*.py"))
    assert {m.stem for m in modules} >= {"settings", "prompts", "exemplars", "dealing", "work", "batches", "loading", "run"}
    too_long = {m.name: n for m in modules if (n := len(m.read_text(encoding="utf-8").splitlines())) >= 600}
    assert not too_long
    wide = []
    for m in modules:
        for node in ast.walk(ast.parse(m.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
                n = len(names)
                if n > 8:
                    wide.append(f"{m.name}:{node.lineno} {node.name} ({n})")
    assert not wide


def _example(question: str, answer: str, **kw) -> Example:
    ident = "s" if kw else "e"
    return Example(id=ident, question=question, answers=(answer,), group="g", line=1, raw={}, **kw)


class _Tokenizer:
    chat_template = None


def test_training_the_export_and_the_probe_ask_in_one_prompt_format():
    q = "Where was Ada Lovelace born?"
    assert qa_prompt(q) == f"Q: {q}\nA:"
    assert PromptFormat(_Tokenizer(), "qa").prompt(q) == qa_prompt(q)  # what the adapter is trained on
    assert build_prompt([], q) == qa_prompt(q)  # the probe's prompt with no exemplars
    shots = [_example("Capital of France?", "Paris")]
    assert build_prompt(shots, q).endswith("\n\n" + qa_prompt(q))
    # the Modelfile asks Ollama in the trained format
    text = modelfile_text(Path("/m/base.gguf"), Path("/m/lora.gguf"), "qa", "run 1")
    assert f'TEMPLATE """{qa_prompt("{{ .Prompt }}")}"""' in text
    assert zero_shot_messages(q) == [{"role": "user", "content": q}]
    assert zero_shot_messages(q, "London")[-1] == {"role": "assistant", "content": "London"}


def test_the_probe_and_the_check_grade_with_the_rules_the_matching_mode_means():
    sentence = _example("What does a thermometer measure?", "It measures temperature", keys=("temperature",), key_source="column")
    entity = _example("Where was Ada Lovelace born?", "London")
    graded = {}
    for match in ("auto", "exact", "key", "judge"):
        settings = ProbeSettings(match=match)
        for ex in (sentence, entity):
            mine, rules = settings.scorer(ex), scorer_for(ex, match)
            for answer in ("temperature", "It measures temperature", "pressure", "London", "in London"):
                assert mine.right(answer) == rules.right(answer)
                graded[(match, ex.id, answer)] = mine.right(answer)
    # "auto" is exact for an entity answer and the key rules for a sentence answer
    assert graded[("auto", "s", "temperature")] and not graded[("exact", "s", "temperature")]
    assert graded[("auto", "e", "London")] == graded[("exact", "e", "London")]


def test_backend_load_options_are_one_rule():
    # llama.cpp: its prompt cache is keyed by the model's fingerprint, and a thread count when asked
    assert load_options("llama.cpp", "fp", n_threads=2, device="cuda") == {"fingerprint": "fp", "n_threads": 2}
    assert load_options("llama.cpp", "fp") == {"fingerprint": "fp"}
    # torch: a device, never a thread count or a fingerprint (it computes its own)
    assert load_options("torch", "fp", n_threads=2, device="cpu") == {"device": "cpu"}
    assert load_options("torch", extra={"adapter": "/a", "n_threads": 3}) == {"adapter": "/a"}
    assert load_options("llama.cpp", "d", n_threads=1, extra={"lora_path": "/l.gguf"}) == {
        "lora_path": "/l.gguf",
        "fingerprint": "d",
        "n_threads": 1,
    }


class _ChatTokenizer:
    """A tokenizer with a chat template that renders the turns it is given, to see which they are."""

    chat_template = "{{ messages }}"
    eos_token = "</s>"

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")


def test_chat_format_training_renders_the_turns_the_check_asks_with():
    q = "Where was Ada Lovelace born?"
    fmt = PromptFormat(_ChatTokenizer(), "chat")
    assert fmt.prompt(q) == _ChatTokenizer().apply_chat_template(zero_shot_messages(q), add_generation_prompt=True)
    assert fmt.prompt(q) == f"<user>{q}</user><assistant>"
    # the trained text is the assistant's turn the template writes after the question's turn
    full = _ChatTokenizer().apply_chat_template(zero_shot_messages(q, "London"))
    assert full == f"<user>{q}</user><assistant>London</assistant>"
    assert fmt.answer_text(q, "London") == "London</assistant>\n"

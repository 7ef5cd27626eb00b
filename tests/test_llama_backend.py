"""The llama.cpp backend on the built-in model: answers, seeds, prefix reuse, pruning."""

from __future__ import annotations

import pytest

from core.backends import load_backend
from core.backends.base import GenRequest
from core.scoring import PrefixPruner

PREFIX = (
    "Q: What is the capital of France?\nA: Paris\n\nQ: What is the capital of Italy?\nA: Rome\n\n"
    "Q: What is the capital of Spain?\nA: Madrid\n\nQ: What is the capital of Japan?\nA: Tokyo\n\n"
)
QUESTIONS = ["What is the capital of Germany?", "Where was Wolfgang Amadeus Mozart born?", "Who is Barack Obama married to?"]


@pytest.fixture(scope="module")
def backend():
    b = load_backend("default")
    yield b
    b.close()


def sampled(prompt: str, seeds=tuple(range(8)), **kw) -> GenRequest:
    return GenRequest(prompt, n=len(seeds), temperature=0.5, top_k=40, seeds=tuple(seeds), **kw)


def test_loads_the_built_in_model_and_answers_greedily(backend):
    assert backend.name == "llama.cpp"
    assert backend.info.name == "SmolLM2-135M-Instruct" and backend.info.dtype == "Q4_1"
    assert len(backend.info.fingerprint) == 64
    answers = backend.generate([GenRequest(PREFIX + "Q: What is the capital of Germany?\nA:")])
    assert answers == [["Berlin"]]


def test_answers_stop_at_a_newline_and_respect_max_tokens(backend):
    out = backend.generate([GenRequest(PREFIX + f"Q: {q}\nA:", max_tokens=3) for q in QUESTIONS])
    for (answer,) in out:
        assert "\n" not in answer and len(answer) < 40
    long = backend.generate([GenRequest("Write a long story about a dragon:", max_tokens=5, stop=())])[0][0]
    assert 0 < len(long.split()) <= 6


def test_a_seed_gives_the_same_answer_whatever_else_is_asked_or_cached(backend):
    prompts = [PREFIX + f"Q: {q}\nA:" for q in QUESTIONS]
    together = backend.generate([sampled(p) for p in prompts])
    backend.reset_cache()
    alone_reversed = [backend.generate([sampled(p)])[0] for p in reversed(prompts)][::-1]
    assert together == alone_reversed
    backend.reset_cache()
    subset = backend.generate([sampled(prompts[1], seeds=(5, 2))])[0]
    assert subset == [together[1][5], together[1][2]]
    greedy = backend.generate([GenRequest(p) for p in prompts])
    assert greedy == backend.generate([GenRequest(p) for p in prompts])


def test_a_prompt_gets_the_candidates_of_token_by_token_evaluation_whatever_the_cache_held(backend):
    """llama.cpp's numbers for a token depend on what else is in its pass (a long prompt in one pass
    differs from it token by token); the backend's passes are short enough that they do not, so a
    near-tie cannot turn on which prompt was asked before (core/backends/llama_backend.py)."""
    import numpy as np

    from core.backends.sampling import top_candidates

    llm = backend.llm
    long_prefix = PREFIX + "Q: What is the capital of Portugal?\nA: Lisbon\n\nQ: What is the capital of Greece?\nA: Athens\n\n"
    prompts = [long_prefix + f"Q: {q}\nA:" for q in QUESTIONS]
    assert all(len(backend._tokenize(p, 10_000)) >= 64 for p in prompts), "a prompt must need more than one pass"

    def token_by_token(prompt: str):
        llm.reset()
        for tok in backend._tokenize(prompt, 10_000).tolist():
            llm.eval([tok])
        return top_candidates(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy(), 40)

    want = [token_by_token(p) for p in prompts]
    histories = [[], [PREFIX + "Q: Who painted the Mona Lisa?\nA:"], [prompts[2], prompts[0]], ["Write a poem:"]]
    for history in histories:
        for prompt, (ids, logits) in zip(prompts, want):
            backend.reset_cache()
            for other in history:
                backend.generate([GenRequest(other, max_tokens=2)])
            backend.generate([GenRequest(prompt, max_tokens=1)])
            got_ids, got_logits = backend._tries.get(tuple(backend._tokenize(prompt, 10_000).tolist()), 40).nodes[()]
            assert np.array_equal(got_ids, ids) and np.array_equal(got_logits, logits), (history, prompt)


def test_shared_prefix_and_answer_trie_save_model_work(backend):
    backend.reset_cache()
    backend.stats.reset()
    backend.generate([GenRequest(PREFIX + "Q: What is the capital of Germany?\nA:")])
    first = backend.stats.tokens_evaluated
    backend.stats.reset()
    backend.generate([GenRequest(PREFIX + "Q: What is the capital of Austria?\nA:")])
    assert backend.stats.tokens_evaluated < first / 3  # only the new question and answer were evaluated
    backend.stats.reset()
    backend.generate([sampled(PREFIX + "Q: What is the capital of Austria?\nA:", seeds=tuple(range(16)))])
    assert backend.stats.answers == 16
    assert backend.stats.forward_calls < 16  # samples reuse the greedy path's cached tokens


def test_pruned_samples_are_marked_and_never_hide_a_correct_answer(backend):
    prompt = PREFIX + "Q: Where was Wolfgang Amadeus Mozart born?\nA:"
    seeds = tuple(range(16))
    backend.reset_cache()
    plain = backend.generate([sampled(prompt, seeds)])[0]
    backend.reset_cache()
    pruned = backend.generate([sampled(prompt, seeds, prune=PrefixPruner(["Salzburg"]))])[0]
    assert any(short.endswith("…") for short in pruned), "no sample was pruned, so this test checks nothing"
    for full, short in zip(plain, pruned):
        if short.endswith("…"):
            assert full.startswith(short[:-1].strip()) and full != "Salzburg"
        else:
            assert short == full


def test_the_pruner_keeps_answers_whose_character_is_split_between_tokens(backend):
    """The same cases as the torch backend's test: every token prefix of an accented answer, decoded
    as llama.cpp's backend decodes it, leaves the answer alive."""
    from test_probe import ACCENTED

    for alias in ACCENTED:
        pruner = PrefixPruner([alias])
        tokens = backend.llm.tokenize((" " + alias).encode(), add_bos=False, special=False)
        for i in range(1, len(tokens) + 1):
            partial = backend._detokenize(tokens[:i])
            assert not pruner(partial), f"{partial!r} was stopped on its way to {alias!r}"


def test_lazy_schedule_gives_the_full_schedules_categories_on_the_built_in_model(backend):
    """On llama.cpp (deterministic on a CPU) the lazy schedule's categories equal the full one's on
    10 sample questions, and P(T>0) of every example without a correct greedy answer is the same
    measured value. (On a GPU the two are equal in distribution, not bit for bit.)"""
    from core.datasets import load_dataset, take_balanced
    from core.paths import sample_dataset, sample_pool
    from core.probe import ProbeSettings, draw_exemplar_sets, probe_examples

    examples = take_balanced(load_dataset(sample_dataset()), 10).examples
    pool = load_dataset(sample_pool()).examples
    lazy_s = ProbeSettings(n_sets=2, samples_per_set=3, preset="test")
    full_s = ProbeSettings(n_sets=2, samples_per_set=3, preset="test", schedule="full")
    sets, _ = draw_exemplar_sets(pool, {ex.group for ex in examples}, lazy_s)
    backend.stats.answers = 0
    lazy = {r["example_id"]: r for r in probe_examples(backend, examples, pool, lazy_s, sets)}
    lazy_answers = backend.stats.answers
    full = {r["example_id"]: r for r in probe_examples(backend, examples, pool, full_s, sets)}
    assert len(lazy) == 10
    assert {i: r["category"] for i, r in lazy.items()} == {i: r["category"] for i, r in full.items()}
    open_ = [i for i, r in lazy.items() if r["greedy_correct"] == 0]
    assert open_, "every question had a correct greedy answer, so P(T>0) was not exercised"
    for i in open_:
        assert lazy[i]["p_sampled"] is not None and lazy[i]["p_sampled"] == full[i]["p_sampled"]
    assert lazy_answers < backend.stats.answers - lazy_answers or len(open_) == 10

"""The SliCK probe: which examples does the model already know?

For every question, the model answers N_ex random few-shot prompts (exemplars drawn once per
group from a pool), once greedily and several times at T=0.5 with top-k 40. P(T=0) is the
share of correct greedy answers, P(T>0) the share of correct samples, and the category follows
Gekhman et al. 2024 (see docs/ARCHITECTURE.md):

    HighlyKnown  P(T=0) = 1            MaybeKnown  0 < P(T=0) < 1
    WeaklyKnown  P(T=0) = 0, P(T>0) > 0  Unknown    P(T=0) = 0, P(T>0) = 0

The *lazy* schedule (the default) skips what cannot change the category: no samples once a
greedy answer is correct (the example is HighlyKnown or MaybeKnown whatever the samples say).
Examples with no correct greedy answer get every sample, so P(T>0) is measured to the end for
WeaklyKnown and Unknown ones. Each sample is seeded by (example, exemplar set, sample index), so
the lazy schedule gives exactly the categories of the full one on a deterministic backend (on a
GPU, equal in distribution); P(T>0) of Known examples is then not measured (stored as NULL).

Exemplars (``draw_exemplar_sets``): each group gets ``n_sets`` distinct sets, with the pool's
questions spread over them as evenly as it allows; when the dataset is its own pool, a large
group sets aside a small seeded pool (``HOLDOUT_SIZE`` rows), as the paper drew exemplars from
held-out data. For each question, an exemplar that is the question itself, whose question names
the question's answer, or whose answer names it while that answer is rare in the group, is replaced
(``LeakCheck``, ``_prepare``), and the swap is recorded; a question left with fewer than ``shots``
exemplars is named in the run's notes (``short_prompt_notes``).

The package (issue 22, item 2): ``settings`` (the budget, presets, the category rule, which grading
a matching mode means), ``prompts`` (the ``Q:/A:`` format and the chat rendering, for training and
the check too), ``exemplars`` (pools, sets, ``LeakCheck``) with ``dealing``, ``work`` (one
question's prompts and the scoring calls), ``batches`` (asking the model), ``loading`` (backend-load
options) and ``run`` (a probe tied to a project). Import from ``core.probe``, not its modules.
"""

from __future__ import annotations

from ..categories import CATEGORIES
from .batches import ProbeJob, probe_batch, probe_examples
from .estimate import CALIBRATION_S, Calibration, calibrate, seconds_per_answer
from .exemplars import (
    COMMON_SHARE,
    HOLDOUT_MIN_ROWS,
    HOLDOUT_SIZE,
    SWAP_REASONS,
    LeakCheck,
    check_pool_size,
    common_answers,
    draw_exemplar_sets,
    exemplar_pools,
    short_prompt_notes,
)
from .loading import load_model_backend, load_options
from .prompts import (
    ANSWER_TOKENS_CAP,
    PROMPT_FORMAT,
    answer_token_limit,
    build_prompt,
    chat_renderer,
    qa_prompt,
    zero_shot_messages,
)
from .run import ClaimedProbe, ProbeOutcome, ProbeRequest, run_probe
from .settings import MATCH_LABEL, PRESETS, ProbeSettings, categorize, preset, sample_seed
from .work import _prepare, score_answers

__all__ = [
    "ANSWER_TOKENS_CAP",
    "CALIBRATION_S",
    "CATEGORIES",
    "COMMON_SHARE",
    "Calibration",
    "HOLDOUT_MIN_ROWS",
    "HOLDOUT_SIZE",
    "MATCH_LABEL",
    "PRESETS",
    "PROMPT_FORMAT",
    "SWAP_REASONS",
    "ClaimedProbe",
    "LeakCheck",
    "ProbeJob",
    "ProbeOutcome",
    "ProbeRequest",
    "ProbeSettings",
    "_prepare",
    "answer_token_limit",
    "calibrate",
    "build_prompt",
    "categorize",
    "chat_renderer",
    "check_pool_size",
    "common_answers",
    "draw_exemplar_sets",
    "exemplar_pools",
    "load_model_backend",
    "load_options",
    "preset",
    "probe_batch",
    "probe_examples",
    "qa_prompt",
    "run_probe",
    "sample_seed",
    "seconds_per_answer",
    "score_answers",
    "short_prompt_notes",
    "zero_shot_messages",
]

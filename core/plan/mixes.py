"""The mixes: how many of each category's examples (outside the test and dev splits) a plan trains on.

Gekhman et al. 2024 found that examples the model does not know (SliCK ``Unknown``) are fitted
slowly and, once fitted, make it hallucinate more, while ``MaybeKnown`` examples are needed for
the best accuracy. The mixes follow that evidence (``PlanSettings.mix``), with one default that
goes beyond it: the recommended mix drops WeaklyKnown (``WEAKLY_KNOWN_DEFAULT``):

``recommended``  keep HighlyKnown and MaybeKnown, drop Unknown, keep WeaklyKnown only up to
                 ``weakly_known_cap`` examples (default 0).
``idk``          as recommended, but Unknown examples stay in with the answer "I don't know"
                 (the paper's IDK variant).
``natural``      keep everything (the data's own mix; ``weakly_known_cap`` is not used).
``custom``       keep ``shares[category]`` (0..1) of each category's examples; a category the
                 shares leave out follows the recommended mix.

When a mix keeps only part of a category (a WeaklyKnown cap, a custom share), the kept examples
are shared out over the groups in proportion to the group sizes (largest remainder) and sampled
with the seed within each group, so no group is favoured by file order, as the paper sampled
per relation. Applying a mix to the examples is ``core.plan.build`` (``mix_rule``, ``apply_mix``):
this module holds only the names, shares and words, so ``settings`` can check a mix's name without
a circle.
"""

from __future__ import annotations

MIXES = ("recommended", "idk", "natural", "custom")
IDK_ANSWER = "I don't know"
MIX_LABELS = {
    "recommended": "recommended mix (keep what the model knows, drop Unknown)",
    "idk": '"I don\'t know" mix (Unknown answers relabelled "I don\'t know")',
    "natural": "natural mix (everything, as in the data)",
    "custom": "custom mix (your share per category)",
}
# What the recommended mix keeps of each category; the custom mix falls back to it.
RECOMMENDED_SHARES = {"HighlyKnown": 1.0, "MaybeKnown": 1.0, "WeaklyKnown": 0.0, "Unknown": 0.0}
# The recommended mix keeps no WeaklyKnown example by default (``PlanSettings.weakly_known_cap`` = 0,
# ``RECOMMENDED_SHARES``). That is KnowMix's choice, not the paper's result: the paper's filtered
# training set (D_Known, Sec. 5) removed only Unknown examples and kept WeaklyKnown ones. Why KnowMix
# drops them, in the words the plan's explanation uses:
WEAKLY_KNOWN_DEFAULT = (
    "WeaklyKnown examples are left out (cap 0). This default goes beyond the paper's evidence: the paper's "
    "filtered training set (Unknown examples removed, its D_Known) kept WeaklyKnown examples in, and it was that set "
    "which matched the full mix at early stopping and beat it at convergence. KnowMix drops them because the paper's "
    "single-category runs put them closest to Unknown: trained on alone, WeaklyKnown gave the lowest test accuracy of "
    "the known categories (39.2 at the best dev epoch, versus 40.5 HighlyKnown and 43.6 MaybeKnown) and fell to 35.4 at "
    "convergence, the largest drop after Unknown; and the model answers them right only when sampling, never "
    "greedily. To follow the paper's filtered set instead, raise the WeaklyKnown cap (--weakly-known-cap) or use the "
    "custom mix with WeaklyKnown=1."
)

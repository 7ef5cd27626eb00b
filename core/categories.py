"""The SliCK categories of Gekhman et al. 2024: their order, and their colours.

One home, because the probe sorts answers into these names, the plan keeps and drops by them,
the summary, the report and the app list them, and every list must come in the same order (from
best known to unknown) with the same colours, or a chart and the table beside it disagree.
Plain data only: importing this module costs nothing.
"""

from __future__ import annotations

from typing import Iterable

# From best known to unknown: the order of every table, chart, legend and list.
CATEGORIES: tuple[str, ...] = ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown")

# The one palette of the categories (the report's SVG and the app's charts use these names).
CATEGORY_COLORS: dict[str, str] = {
    "HighlyKnown": "#2e7d32",
    "MaybeKnown": "#9ccc65",
    "WeaklyKnown": "#ffb300",
    "Unknown": "#c62828",
}
# Text drawn on top of a category's colour (dark on the light green and the amber).
TEXT_ON: dict[str, str] = {"HighlyKnown": "#ffffff", "MaybeKnown": "#1b1b1b", "WeaklyKnown": "#1b1b1b", "Unknown": "#ffffff"}

# What a check (``knowmix check``) compares before and after training; the check, the report and the
# app all read these, so "the model knew it" and each split's words mean the same everywhere.
KNOWN: tuple[str, ...] = ("HighlyKnown", "MaybeKnown")  # what "the model knew" means before training
# After training without samples, P(T=0) = 0 cannot tell WeaklyKnown from Unknown.
NOT_KNOWN = "NotKnown"
NOT_KNOWN_LABEL = "not known at T=0"
NOT_KNOWN_AFTER: tuple[str, ...] = ("WeaklyKnown", "Unknown", NOT_KNOWN)  # what "lost" means after training
CHECK_SPLITS: tuple[str, ...] = ("test", "dev", "train", "ood")  # in this order, test first
SPLIT_WORDS: dict[str, str] = {
    "test": "test questions (held out: never trained on, never used to stop)",
    "dev": "dev questions (used to pick the stopping point)",
    "train": "training questions (a fixed sample)",
    "ood": "out-of-distribution questions (other groups)",
}


def split_title(split: str) -> str:
    """A split's words as a heading ("Test questions (held out: ...)"); an unknown name as it is."""
    words = SPLIT_WORDS.get(split, split)
    return words[:1].upper() + words[1:]


def ordered_categories(names: Iterable[str]) -> list[str]:
    """``names`` in the categories' order, then any other names sorted (an old or hand-made record
    may carry a name KnowMix does not know; it is shown, last, rather than dropped)."""
    present = set(names)
    return [c for c in CATEGORIES if c in present] + sorted(c for c in present if c not in CATEGORIES)


__all__ = [
    "CATEGORIES",
    "CATEGORY_COLORS",
    "CHECK_SPLITS",
    "KNOWN",
    "NOT_KNOWN",
    "NOT_KNOWN_AFTER",
    "NOT_KNOWN_LABEL",
    "SPLIT_WORDS",
    "TEXT_ON",
    "ordered_categories",
    "split_title",
]

"""What a plan is made with: the mix, the WeaklyKnown cap or custom shares, the dev and test splits'
sizes, the out-of-distribution dataset, the seed.

The defaults follow the paper (the recommended mix drops Unknown, a dev split of 10% of the
probed questions, at most 500, and a test split of 10%, at most 1,000), except one that goes beyond its evidence: no WeaklyKnown examples
(``weakly_known_cap`` = 0; why: ``mixes.WEAKLY_KNOWN_DEFAULT``), where the paper's filtered set kept them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Optional

from ..categories import CATEGORIES
from ..errors import SettingsError
from .mixes import MIXES, RECOMMENDED_SHARES

NOT_PROBED_CHOICES = ("keep", "drop")
MULTI_ANSWER_CHOICES = ("keep", "drop")


@dataclass(frozen=True)
class PlanSettings:
    """How to turn a probe into a training mix and a dev split. Defaults follow the paper, except
    the WeaklyKnown cap of 0 (see ``mixes.WEAKLY_KNOWN_DEFAULT``)."""

    mix: str = "recommended"
    # max WeaklyKnown examples in the training set (recommended/idk mixes); 0 is KnowMix's choice, not the
    # paper's (its filtered set kept WeaklyKnown): mixes.WEAKLY_KNOWN_DEFAULT says why
    weakly_known_cap: int = 0
    shares: Optional[dict[str, float]] = None  # custom mix: share (0..1) of each category's examples to keep
    dev_fraction: float = 0.10
    dev_max: int = 500
    # The test split (drawn before dev, from all probed questions): never trained on, never used for
    # stopping; ``knowmix check`` measures on it what training did. 0 (either) turns it off.
    test_fraction: float = 0.10
    test_max: int = 1000
    # An out-of-distribution dataset in the project (role "ood": groups the plan does not have, as the
    # paper's held-out relations); not probed by the plan, ``knowmix check`` probes it.
    ood_dataset_id: Optional[int] = None
    seed: int = 0
    # Rows the probe could not check (multi-turn chats, long-form answers, tasks, no answer): "keep"
    # them in the training file as they are (they are not knowledge the probe could judge), or "drop".
    not_probed: str = "keep"
    # Probed questions that list two or more different true answers (core.datasets.multi): "keep" them
    # (probed, planned and trained like the others) or "drop" them before the dev split and the mix,
    # as the paper removed such questions from its data.
    multi_answer: str = "keep"

    def validate(self) -> None:
        """Raise ``SettingsError`` naming every setting that is out of range or contradicts another."""
        problems: list[str] = []
        if self.mix not in MIXES:
            problems.append(f"the mix must be one of {', '.join(MIXES)} (got {self.mix!r})")
        if not is_int(self.weakly_known_cap) or self.weakly_known_cap < 0:
            problems.append(f"the WeaklyKnown cap must be a whole number, 0 or more (got {self.weakly_known_cap!r})")
        if self.mix == "custom":
            if not self.shares:
                problems.append(
                    "the custom mix needs a share per category, e.g. HighlyKnown=1, MaybeKnown=1, WeaklyKnown=0.5, Unknown=0"
                )
            else:
                for cat, share in self.shares.items():
                    if cat not in CATEGORIES:
                        problems.append(f"'{cat}' is not a category (categories: {', '.join(CATEGORIES)})")
                    elif (
                        isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1 or math.isnan(share)
                    ):
                        problems.append(f"the share of {cat} must be a number from 0 to 1 (got {share!r})")
        elif self.shares:
            problems.append(
                f"shares per category are only used by the custom mix (the mix is {self.mix!r}); choose mix 'custom' or leave the shares out"
            )
        if (
            isinstance(self.dev_fraction, bool)
            or not isinstance(self.dev_fraction, (int, float))
            or not 0 < self.dev_fraction <= 0.5
        ):
            problems.append(f"the dev fraction must be above 0 and at most 0.5 (got {self.dev_fraction!r})")
        if not is_int(self.dev_max) or self.dev_max < len(CATEGORIES):
            problems.append(
                f"the dev split's maximum size must be at least {len(CATEGORIES)}, so every category can have a dev example "
                f"(got {self.dev_max!r})"
            )
        if (
            isinstance(self.test_fraction, bool)
            or not isinstance(self.test_fraction, (int, float))
            or not 0 <= self.test_fraction <= 0.5
        ):
            problems.append(f"the test fraction must be from 0 (no test split) to 0.5 (got {self.test_fraction!r})")
        elif self.test_fraction + (self.dev_fraction if isinstance(self.dev_fraction, (int, float)) else 0) > 0.8:
            problems.append(
                f"the test and dev fractions together must leave at least 20% to train on "
                f"(got {self.test_fraction!r} + {self.dev_fraction!r})"
            )
        if not is_int(self.test_max) or self.test_max < 0:
            problems.append(
                f"the test split's maximum size must be a whole number, 0 (no test split) or more (got {self.test_max!r})"
            )
        if self.ood_dataset_id is not None and not is_int(self.ood_dataset_id):
            problems.append(f"the out-of-distribution dataset must be a dataset id of the project (got {self.ood_dataset_id!r})")
        if self.not_probed not in NOT_PROBED_CHOICES:
            problems.append(f"rows that were not probed are either kept or dropped: 'keep' or 'drop' (got {self.not_probed!r})")
        if self.multi_answer not in MULTI_ANSWER_CHOICES:
            problems.append(
                f"questions with several different true answers are either kept or dropped: 'keep' or 'drop' "
                f"(got {self.multi_answer!r})"
            )
        if not is_int(self.seed):
            problems.append(f"the seed must be a whole number (got {self.seed!r})")
        if problems:
            raise SettingsError("Plan settings: " + "; ".join(problems) + ".")

    def share_of(self, category: str) -> float:
        """The custom mix's share for a category (a category left out follows the recommended mix)."""
        if self.shares and category in self.shares:
            return float(self.shares[category])
        return RECOMMENDED_SHARES[category]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PlanSettings":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def is_int(value: Any) -> bool:
    """A whole number, and not a bool (``True`` is an int to Python, never to a user)."""
    return isinstance(value, int) and not isinstance(value, bool)

"""When a run's steps change the learning rate and when they evaluate: pure arithmetic, no torch."""

from __future__ import annotations

from typing import Optional


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``; every step gets lr > 0."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


def eval_steps(total_steps: int, steps_per_epoch: int, every: Optional[int]) -> set[int]:
    """The steps after which to evaluate: every ``every`` steps (else every epoch), and always the last."""
    period = every or steps_per_epoch
    points = set(range(period, total_steps + 1, period))
    points.add(total_steps)
    return points

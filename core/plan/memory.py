"""The memory a default LoRA run on a plan's probed model needs (the Plan step and ``knowmix plan``).

The estimate itself is ``core.memory``, which training can use too; this module only finds the
plan's model (``persistence.probe_model_spec``) and its shape.
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import ModelError
from ..memory import MemoryEstimate, check_memory_fits, estimate_memory
from ..models import model_shape, resolve_model
from .persistence import probe_model_spec


def plan_memory(
    project: Any, plan: Any, device: str = "cpu", *, lora_rank: int = 16, batch_size: int = 8
) -> tuple[Optional[MemoryEstimate], Optional[str], str]:
    """The memory a default LoRA run on the plan's probed model needs, against the device's free
    memory now: (estimate or None, warning or None, model name or why there is no estimate)."""
    run = project.probe_run(plan.probe_run_id)
    try:
        ref = resolve_model(probe_model_spec(run) or "")
    except ModelError as exc:
        return None, None, f"Memory estimate skipped: {exc}"
    shape = model_shape(ref)
    est = estimate_memory(shape, lora_rank=lora_rank, batch_size=batch_size)
    return est, check_memory_fits(est, device), ref.display_name

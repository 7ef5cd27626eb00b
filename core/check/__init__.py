"""The check: what a fine-tune did to the model's knowledge (``knowmix check``).

The plan holds out test questions that never train and never decide the stopping point. After
training, the check asks the base model and the model with the run's adapter the same questions
(test, dev, a fixed sample of the training questions and, if the plan names one, an
out-of-distribution file) and reports, per split, the before -> after category transitions, exact
match before and after, the **new errors** (right before, wrong after: what the paper calls the
cost of learning new knowledge) and the questions **fixed**. ``types`` says what is measured and
``run`` how.
"""

from .models import CheckModels, gguf_lora_for
from .run import CheckPlan, list_checks, load_check, plan_check, plan_cost_text, run_check, split_check
from .types import CHECK_SPLITS, NOT_KNOWN, SPLIT_WORDS, CheckReport, CheckSettings, SplitCheck

__all__ = [
    "CheckModels",
    "CHECK_SPLITS",
    "NOT_KNOWN",
    "SPLIT_WORDS",
    "CheckPlan",
    "CheckReport",
    "CheckSettings",
    "SplitCheck",
    "gguf_lora_for",
    "list_checks",
    "load_check",
    "plan_check",
    "plan_cost_text",
    "run_check",
    "split_check",
]

"""The Train step's "Check what training did when it finishes" box and what that check will cost.

The cost (how many questions and answers the check asks) is worked out once per plan in a job,
since it reads the dataset; the box remembers its state in the app's settings.
"""

from __future__ import annotations

from typing import Any, Optional

from ..jobs import ProjectOp
from ..qt import QtWidgets


class CheckAfterRow(QtWidgets.QWidget):
    """The check-after box with its cost beside it (``show_cost`` fills the cost in)."""

    def __init__(self, ctx: Any, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.check_after = QtWidgets.QCheckBox("Check what training did when it finishes")
        self.check_after.setObjectName("checkAfterTraining")
        self.check_after.setToolTip(
            "Then the base model and the trained model answer the held-out test questions, the dev questions and a "
            "sample of the training questions: the Check step shows what training broke and what it fixed."
        )
        self.check_after.setChecked(ctx.settings.value("train/check_after", True, type=bool))
        self.check_after.toggled.connect(lambda on: ctx.settings.setValue("train/check_after", bool(on)))
        self.check_cost = QtWidgets.QLabel("")
        self.check_cost.setObjectName("checkAfterCost")
        self.check_cost.setWordWrap(True)
        row.addWidget(self.check_after)
        row.addWidget(self.check_cost, 1)
        self._costs: dict[tuple, str] = {}

    def show_cost(self) -> None:
        """The check's cost for the plan, worked out once per plan in a job (it reads the dataset)."""
        ctx = self.ctx
        key = (str(ctx.project_path), ctx.plan_id)
        if ctx.project_path is None or ctx.plan_id is None:
            self.check_cost.setText("")
            return
        if key in self._costs:
            self.check_cost.setText(f"({self._costs[key]})")
            return
        self._costs[key] = "working out the cost …"
        self.check_cost.setText(f"({self._costs[key]})")
        project_path, plan_id = ctx.project_path, ctx.plan_id

        def work(p: Any, _job: Any) -> str:
            from .check import check_cost_for_plan

            return check_cost_for_plan(p, int(plan_id))

        def shown(text: str) -> None:
            self._costs[key] = text
            if key == (str(ctx.project_path), ctx.plan_id):
                self.check_cost.setText(f"({text})")

        def failed(exc: BaseException, _tb: str) -> None:
            shown(f"cost unknown: {exc}")

        ProjectOp("Working out the check's cost", project_path, work).run_in(ctx.runner, on_done=shown, on_error=failed)

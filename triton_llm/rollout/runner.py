"""Run a :class:`~triton_llm.rollout.plan.RolloutPlan`: each step in order, stopping at the first failure."""

from __future__ import annotations

from collections.abc import Callable

from triton_llm.errors import RolloutError
from triton_llm.rollout.plan import Effects, RolloutPlan


def run_plan(plan: RolloutPlan, effects: Effects, *, say: Callable[[str], None] = print) -> None:
    """Execute every step of ``plan`` with ``effects``, announcing each with its number.

    Raises:
        RolloutError: a step failed; the message names the step, and the groups already updated keep
            serving the new key while the others keep the old one (run ``--undo`` or fix and re-run).
    """
    total = len(plan.steps)
    for number, step in enumerate(plan.steps, 1):
        say(f"[{number}/{total}] {step.describe()}")
        try:
            step(effects)
        except RolloutError as e:
            raise RolloutError(
                f"step {number}/{total} failed: {e.message}",
                key=plan.to_key,
                hint="groups below the partition still serve the old key; fix the cause and re-run the "
                "same command to resume, or `triton-llm rollout --undo` to return to "
                f"{plan.from_key[:12]}",
            ) from e

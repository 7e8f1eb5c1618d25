"""Replica-level rollout of a new engine key over the chart's LeaderWorkerSet groups.

:mod:`~triton_llm.rollout.plan` and :mod:`~triton_llm.rollout.readiness` are pure (LWS JSON in, steps
and verdicts out); :mod:`~triton_llm.rollout.cluster` holds the effects (Kubernetes API, ``helm``) and
:mod:`~triton_llm.rollout.runner` runs a plan with them.
"""

from triton_llm.rollout.plan import (
    ENGINE_KEY_ANNOTATION,
    PREVIOUS_KEY_ANNOTATION,
    AwaitGone,
    AwaitGroup,
    Effects,
    HelmUpgrade,
    LwsState,
    RolloutPlan,
    Smoke,
    lws_state,
    plan_rollout,
    plan_undo,
)
from triton_llm.rollout.readiness import group_problem, leader_name
from triton_llm.rollout.runner import run_plan

__all__ = [
    "ENGINE_KEY_ANNOTATION",
    "PREVIOUS_KEY_ANNOTATION",
    "AwaitGone",
    "AwaitGroup",
    "Effects",
    "HelmUpgrade",
    "LwsState",
    "RolloutPlan",
    "Smoke",
    "group_problem",
    "leader_name",
    "lws_state",
    "plan_rollout",
    "plan_undo",
    "run_plan",
]

"""Pure readiness rules of one group, on pods as the Kubernetes API returns them (JSON).

A group is ready for the next rollout step when it has exactly ``size`` pods, none of them terminating,
every one carrying the target engine key and the ``Ready`` condition ``True`` (the kubelet sets it from
the readiness probe: the leader's ``/v2/health/ready``, which Triton answers only once every rank loaded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from triton_llm.rollout.plan import ENGINE_KEY_ANNOTATION, LWS_WORKER_INDEX_LABEL


def _ready(pod: Mapping[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def group_problem(pods: Sequence[Mapping[str, Any]], *, group: int, size: int, key: str) -> str | None:
    """What keeps ``group`` from being ready on ``key``, or ``None`` when it is ready.

    Args:
        pods: the group's pods (``items`` of a pod list filtered by the LWS name and group-index labels).
        group: the group index (for messages); size: pods per group; key: the engine key it must serve.
    """
    if not pods:
        return f"group {group} has no pods yet"
    ordered = sorted(
        pods, key=lambda p: int((p["metadata"].get("labels") or {}).get(LWS_WORKER_INDEX_LABEL, 0))
    )
    for pod in ordered:
        meta = pod["metadata"]
        name = meta["name"]
        if meta.get("deletionTimestamp"):
            return f"pod {name} is terminating"
        served = (meta.get("annotations") or {}).get(ENGINE_KEY_ANNOTATION, "")
        if served != key:
            return f"pod {name} runs engine {served[:12] or '(none)'}, not {key[:12]}"
    if len(ordered) != size:
        return f"group {group} has {len(ordered)} of {size} pods"
    for pod in ordered:
        if not _ready(pod):
            phase = (pod.get("status") or {}).get("phase", "Unknown")
            return f"pod {pod['metadata']['name']} is not Ready (phase {phase})"
    return None


def leader_name(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The group's leader pod (worker index 0), or ``None`` when it does not exist."""
    for pod in pods:
        if (pod["metadata"].get("labels") or {}).get(LWS_WORKER_INDEX_LABEL) == "0":
            return str(pod["metadata"]["name"])
    return None

"""A group is ready only with all its pods, none terminating, every one Ready on the target key."""

from __future__ import annotations

from typing import Any

from triton_llm.rollout import group_problem, leader_name
from triton_llm.rollout.plan import ENGINE_KEY_ANNOTATION, LWS_WORKER_INDEX_LABEL

KEY = "b" * 64
OLD = "a" * 64


def pod(
    index: int, *, key: str = KEY, ready: bool = True, deleting: bool = False, phase: str = "Running"
) -> dict:
    name = "rel-lws-1" if index == 0 else f"rel-lws-1-{index}"
    meta: dict[str, Any] = {
        "name": name,
        "labels": {LWS_WORKER_INDEX_LABEL: str(index)},
        "annotations": {ENGINE_KEY_ANNOTATION: key},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-11-29T10:00:00Z"
    conditions = [
        {"type": "Initialized", "status": "True"},
        {"type": "Ready", "status": "True" if ready else "False"},
        {"type": "ContainersReady", "status": "True" if ready else "False"},
    ]
    return {"metadata": meta, "status": {"phase": phase, "conditions": conditions}}


def check(pods: list[dict], size: int = 3) -> str | None:
    return group_problem(pods, group=1, size=size, key=KEY)


def test_a_full_group_ready_on_the_key_is_ready() -> None:
    assert check([pod(0), pod(1), pod(2)]) is None
    assert check([pod(2), pod(0), pod(1)]) is None  # any order from the API


def test_no_pods_yet() -> None:
    assert check([]) == "group 1 has no pods yet"


def test_missing_workers() -> None:
    assert check([pod(0), pod(1)]) == "group 1 has 2 of 3 pods"


def test_a_pod_still_on_the_old_key_names_both_keys() -> None:
    assert (
        check([pod(0), pod(1, key=OLD), pod(2)]) == f"pod rel-lws-1-1 runs engine {OLD[:12]}, not {KEY[:12]}"
    )


def test_a_pod_without_the_annotation() -> None:
    p = pod(0)
    del p["metadata"]["annotations"]
    assert check([p, pod(1), pod(2)]) == f"pod rel-lws-1 runs engine (none), not {KEY[:12]}"


def test_a_terminating_pod_is_not_ready_even_with_the_key() -> None:
    assert check([pod(0, deleting=True), pod(1), pod(2)]) == "pod rel-lws-1 is terminating"


def test_a_pod_whose_probe_fails_is_not_ready() -> None:
    assert check([pod(0, ready=False, phase="Running"), pod(1), pod(2)]) == (
        "pod rel-lws-1 is not Ready (phase Running)"
    )


def test_a_pending_pod_without_conditions_is_not_ready() -> None:
    pending = {"metadata": pod(1)["metadata"], "status": {"phase": "Pending"}}
    assert check([pod(0), pending, pod(2)]) == "pod rel-lws-1-1 is not Ready (phase Pending)"


def test_leader_name_is_worker_index_zero() -> None:
    assert leader_name([pod(1), pod(0)]) == "rel-lws-1"
    assert leader_name([pod(1)]) is None

"""Rollout planning is pure: a LeaderWorkerSet's state and a key in, numbered steps out."""

from __future__ import annotations

import dataclasses

import pytest

from triton_llm.errors import UsageError
from triton_llm.rollout import (
    PREVIOUS_KEY_ANNOTATION,
    AwaitGone,
    AwaitGroup,
    HelmUpgrade,
    LwsState,
    Smoke,
    lws_state,
    plan_rollout,
    plan_undo,
)
from triton_llm.rollout.plan import ENGINE_KEY_ANNOTATION

OLD = "a" * 64
NEW = "b" * 64
OTHER = "c" * 64


def state(**over: object) -> LwsState:
    base = LwsState(
        name="llama-triton-llm-lws",
        namespace="llm",
        replicas=2,
        size=2,
        max_surge=1,
        max_unavailable=1,
        partition=0,
        key=OLD,
        previous_key="",
        http_port=8000,
    )
    return dataclasses.replace(base, **over)  # type: ignore[arg-type]


def plan(st: LwsState, key: str = NEW, **kw: object):
    return plan_rollout(st, key, release="llama", chart="./helm/triton-llm", **kw)  # type: ignore[arg-type]


def shape(p) -> list[tuple]:
    """Steps as comparable tuples: (kind, partition or group)."""
    out: list[tuple] = []
    for s in p.steps:
        if isinstance(s, HelmUpgrade):
            out.append(("upgrade", s.partition))
        elif isinstance(s, AwaitGroup):
            out.append(("ready", s.group))
        elif isinstance(s, Smoke):
            out.append(("smoke", s.group))
        elif isinstance(s, AwaitGone):
            out.append(("gone", s.first_group))
    return out


def test_two_groups_one_surge_gates_the_surge_group_then_each_group_from_the_top() -> None:
    p = plan(state())
    assert shape(p) == [
        ("upgrade", 2), ("ready", 2), ("smoke", 2),
        ("upgrade", 1), ("ready", 1), ("smoke", 1),
        ("upgrade", 0), ("ready", 0), ("smoke", 0),
        ("gone", 2),
    ]  # fmt: skip
    assert {s.key for s in p.steps if isinstance(s, HelmUpgrade | AwaitGroup)} == {NEW}
    assert {s.previous_key for s in p.steps if isinstance(s, HelmUpgrade)} == {OLD}
    assert (p.from_key, p.to_key, p.replicas, p.max_surge) == (OLD, NEW, 2, 1)


def test_one_group_one_surge_brings_up_a_second_group_before_the_only_one_is_replaced() -> None:
    assert shape(plan(state(replicas=1))) == [
        ("upgrade", 1), ("ready", 1), ("smoke", 1),
        ("upgrade", 0), ("ready", 0), ("smoke", 0),
        ("gone", 1),
    ]  # fmt: skip


def test_without_surge_each_group_is_replaced_in_place_and_nothing_waits_for_surge_removal() -> None:
    assert shape(plan(state(replicas=3, max_surge=0))) == [
        ("upgrade", 3),
        ("upgrade", 2), ("ready", 2), ("smoke", 2),
        ("upgrade", 1), ("ready", 1), ("smoke", 1),
        ("upgrade", 0), ("ready", 0), ("smoke", 0),
    ]  # fmt: skip


def test_surge_is_capped_at_replicas_as_the_controller_caps_it() -> None:
    p = plan(state(replicas=2, max_surge=5))
    assert p.max_surge == 2
    assert shape(p)[:5] == [("upgrade", 2), ("ready", 2), ("smoke", 2), ("ready", 3), ("smoke", 3)]
    assert {s.max_surge for s in p.steps if isinstance(s, HelmUpgrade)} == {2}


def test_max_surge_flag_overrides_the_release_value() -> None:
    p = plan(state(replicas=1, max_surge=0), max_surge=1)
    assert shape(p)[0:3] == [("upgrade", 1), ("ready", 1), ("smoke", 1)]
    assert {s.max_surge for s in p.steps if isinstance(s, HelmUpgrade)} == {1}


def test_one_group_without_surge_is_refused_unless_downtime_is_allowed() -> None:
    with pytest.raises(UsageError, match="one group and maxSurge=0") as e:
        plan(state(replicas=1, max_surge=0))
    assert e.value.field == "--max-surge"
    assert "--max-surge 1" in str(e.value)
    p = plan(state(replicas=1, max_surge=0), allow_downtime=True)
    assert shape(p) == [("upgrade", 1), ("upgrade", 0), ("ready", 0), ("smoke", 0)]


@pytest.mark.parametrize("bad", ["", "abc", "B" * 64, "b" * 63, "b" * 65, "g" * 64])
def test_a_key_that_is_not_a_full_engine_key_is_refused(bad: str) -> None:
    with pytest.raises(UsageError, match="not a full engine key") as e:
        plan(state(), bad)
    assert e.value.field == "--key"


def test_negative_surge_and_zero_replicas_are_refused() -> None:
    with pytest.raises(UsageError, match="--max-surge must be >= 0"):
        plan(state(), max_surge=-1)
    with pytest.raises(UsageError, match="no groups"):
        plan(state(replicas=0))


def test_the_key_already_served_everywhere_plans_nothing() -> None:
    p = plan(state(key=NEW, previous_key=OLD))
    assert p.steps == ()
    assert p.describe() == []


def test_an_interrupted_rollout_resumes_at_its_partition_and_rechecks_what_it_left() -> None:
    # Stopped after group 2 of 3 was replaced (partition 2): the template already has NEW.
    st = state(replicas=3, max_surge=1, partition=2, key=NEW, previous_key=OLD)
    p = plan(st)
    assert shape(p) == [
        ("upgrade", 2), ("ready", 3), ("smoke", 3), ("ready", 2), ("smoke", 2),
        ("upgrade", 1), ("ready", 1), ("smoke", 1),
        ("upgrade", 0), ("ready", 0), ("smoke", 0),
        ("gone", 3),
    ]  # fmt: skip
    # The key being replaced is still the one before the interrupted run, not NEW itself.
    assert {s.previous_key for s in p.steps if isinstance(s, HelmUpgrade)} == {OLD}


def test_resume_right_after_the_first_upgrade_gates_the_surge_groups_again() -> None:
    p = plan(state(replicas=2, partition=2, key=NEW, previous_key=OLD))
    assert shape(p)[:3] == [("upgrade", 2), ("ready", 2), ("smoke", 2)]


def test_undo_rolls_back_to_the_recorded_key_and_records_the_one_it_replaces() -> None:
    p = plan_undo(state(key=NEW, previous_key=OLD), release="llama", chart="c")
    assert (p.from_key, p.to_key) == (NEW, OLD)
    assert {s.key for s in p.steps if isinstance(s, HelmUpgrade)} == {OLD}
    assert {s.previous_key for s in p.steps if isinstance(s, HelmUpgrade)} == {NEW}
    assert shape(p) == shape(plan(state()))


def test_undo_of_an_interrupted_rollout_replaces_only_what_moved_and_gates_every_group() -> None:
    # A->B stopped at partition 1 of 2: group 1 (and the surge group) run B, group 0 still A.
    p = plan_undo(state(partition=1, key=NEW, previous_key=OLD), release="llama", chart="c")
    assert p.to_key == OLD
    assert shape(p) == [
        ("upgrade", 2), ("ready", 2), ("smoke", 2),
        ("upgrade", 1), ("ready", 1), ("smoke", 1),
        ("upgrade", 0), ("ready", 0), ("smoke", 0),
        ("gone", 2),
    ]  # fmt: skip


def test_undo_without_a_recorded_key_names_the_fix() -> None:
    with pytest.raises(UsageError, match="nothing to undo") as e:
        plan_undo(state(), release="llama", chart="c")
    assert PREVIOUS_KEY_ANNOTATION in str(e.value)
    assert "--key" in str(e.value)


def test_every_upgrade_reuses_the_release_values_and_sets_only_the_rollout_keys() -> None:
    p = plan(state())
    upgrade = p.steps[0]
    assert isinstance(upgrade, HelmUpgrade)
    assert upgrade.argv() == [
        "upgrade", "llama", "./helm/triton-llm", "--namespace", "llm", "--reuse-values",
        "--set-string", f"engine.key={NEW}", "--set-string", f"engine.previousKey={OLD}",
        "--set", "workload.lws.partition=2", "--set", "workload.lws.maxSurge=1",
    ]  # fmt: skip


def test_describe_numbers_every_step_and_names_what_each_waits_for() -> None:
    lines = plan(state(replicas=1), group_timeout=600).describe()
    assert lines[0].startswith("1. helm upgrade llama ./helm/triton-llm --namespace llm --reuse-values")
    assert (
        lines[1]
        == f"2. wait up to 600s until every pod of group 1 is Ready with {ENGINE_KEY_ANNOTATION}={NEW}"
    )
    assert lines[2].startswith("3. smoke-test group 1")
    assert lines[-1] == "7. wait up to 600s until the surge groups (index >= 1) are gone"
    assert len(lines) == 7


def _lws(**rolling: object) -> dict:
    return {
        "metadata": {"name": "x-lws", "namespace": "ns", "annotations": {PREVIOUS_KEY_ANNOTATION: OLD}},
        "spec": {
            "replicas": 4,
            "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdateConfiguration": rolling},
            "leaderWorkerTemplate": {
                "size": 3,
                "leaderTemplate": {
                    "metadata": {"annotations": {ENGINE_KEY_ANNOTATION: NEW}},
                    "spec": {
                        "containers": [{"name": "triton", "ports": [{"name": "http", "containerPort": 8100}]}]
                    },
                },
                "workerTemplate": {"spec": {"containers": [{"name": "rank-agent"}]}},
            },
        },
    }


def test_lws_state_reads_counts_percentages_and_keys_like_the_controller() -> None:
    st = lws_state(_lws(maxSurge="30%", maxUnavailable="30%", partition=2))
    # 30% of 4: surge rounds up (2), unavailable rounds down (1).
    assert (st.max_surge, st.max_unavailable, st.partition) == (2, 1, 2)
    assert (st.name, st.namespace, st.replicas, st.size, st.http_port) == ("x-lws", "ns", 4, 3, 8100)
    assert (st.key, st.previous_key) == (NEW, OLD)
    defaults = lws_state(_lws())
    assert (defaults.max_surge, defaults.max_unavailable, defaults.partition) == (0, 1, 0)


def test_lws_state_refuses_a_leaderworkerset_not_made_by_the_chart() -> None:
    obj = _lws()
    obj["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["metadata"] = {}
    with pytest.raises(UsageError, match=ENGINE_KEY_ANNOTATION):
        lws_state(obj)
    with pytest.raises(UsageError, match="neither a number nor a percentage"):
        lws_state(_lws(maxSurge="two"))

"""Pure planning of a replica-level rollout: the LeaderWorkerSet as it is, the target key -> steps.

The chart's LeaderWorkerSet updates groups through two settings (kubernetes-sigs/lws
``api/leaderworkerset/v1/leaderworkerset_types.go`` ``RollingUpdateConfiguration``, and
``pkg/controllers/leaderworkerset_controller.go`` ``rollingUpdateParameters``):

- ``partition``: only groups with an index >= partition are updated; the controller never goes below it
  (the StatefulSet partition is ``max(computed, lws partition)``);
- ``maxSurge``: during an update the controller runs ``replicas + maxSurge`` groups (maxSurge capped at
  replicas); the extra groups, indexed from ``replicas`` up, start on the new template and stay until the
  update is done *and* partition is back to 0.

So a rollout is: one ``helm upgrade`` that sets the new key with ``partition = replicas`` (no serving group
changes; surge groups come up on the new key and are gated), then one upgrade per group lowering the
partition by one (the old group is terminated, which drains it, and comes back on the new key; gated
before the next), and at partition 0 the controller removes the surge groups. Every gate is the group's
readiness (every pod Ready and running the new key) and a smoke prompt on its leader.

Nothing here talks to a cluster: :func:`lws_state` reads a LeaderWorkerSet's JSON, :func:`plan_rollout`
turns it into :class:`RolloutPlan` steps. Each step is callable with a :class:`Effects` implementation
(``triton_llm.rollout.cluster`` runs them for real) and prints itself with ``describe()``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from triton_llm.errors import UsageError
from triton_llm.store.keys import is_full_key

ENGINE_KEY_ANNOTATION = "triton-llm/engine-key"
"""Pod-template annotation (leader and workers) naming the engine key the pod serves."""

PREVIOUS_KEY_ANNOTATION = "triton-llm/previous-engine-key"
"""LeaderWorkerSet annotation: the key served before the last rollout (what ``--undo`` returns to)."""

LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
LWS_GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"

DEFAULT_GROUP_TIMEOUT = 3600.0
"""Seconds a gate waits for one group (a full engine pull plus the load on every pod)."""


@dataclass(frozen=True)
class LwsState:
    """What a rollout plan needs from the live LeaderWorkerSet."""

    name: str
    namespace: str
    replicas: int
    size: int
    max_surge: int
    max_unavailable: int
    partition: int
    key: str
    previous_key: str
    http_port: int


def _scaled(value: Any, total: int, *, round_up: bool, what: str) -> int:
    """An IntOrString (``3`` or ``"30%"``) as a number of groups, as the LWS controller scales it."""
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%") and text[:-1].isdigit():
        share = int(text[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    if text.isdigit():
        return int(text)
    raise UsageError(f"LeaderWorkerSet {what}={value!r} is neither a number nor a percentage", value=value)


def _http_port(template: Mapping[str, Any]) -> int:
    for c in (template.get("spec") or {}).get("containers", []):
        for p in c.get("ports", []):
            if p.get("name") == "http":
                return int(p["containerPort"])
    raise UsageError(
        "the LeaderWorkerSet's leader template has no container port named http (not our chart?)"
    )


def lws_state(obj: Mapping[str, Any]) -> LwsState:
    """Read a LeaderWorkerSet (its API JSON) into :class:`LwsState`.

    Raises:
        UsageError: the object lacks what the chart renders (engine-key annotation, http port).
    """
    meta = obj["metadata"]
    spec = obj["spec"]
    template = spec["leaderWorkerTemplate"]
    leader = template.get("leaderTemplate") or template["workerTemplate"]
    key = ((leader.get("metadata") or {}).get("annotations") or {}).get(ENGINE_KEY_ANNOTATION, "")
    if not key:
        raise UsageError(
            f"LeaderWorkerSet {meta['name']}: its leader template has no {ENGINE_KEY_ANNOTATION} annotation",
            hint="upgrade the release to a triton-llm chart that records it, then roll out",
        )
    replicas = int(spec.get("replicas", 1))
    rolling = (spec.get("rolloutStrategy") or {}).get("rollingUpdateConfiguration") or {}
    return LwsState(
        name=meta["name"],
        namespace=meta.get("namespace", ""),
        replicas=replicas,
        size=int(template.get("size", 1)),
        max_surge=_scaled(rolling.get("maxSurge", 0), replicas, round_up=True, what="maxSurge"),
        max_unavailable=_scaled(
            rolling.get("maxUnavailable", 1), replicas, round_up=False, what="maxUnavailable"
        ),
        partition=int(rolling.get("partition", 0)),
        key=key,
        previous_key=(meta.get("annotations") or {}).get(PREVIOUS_KEY_ANNOTATION, ""),
        http_port=_http_port(leader),
    )


class Effects(Protocol):
    """What running a plan needs from the world (``triton_llm.rollout.cluster.ClusterEffects``)."""

    def helm(self, argv: Sequence[str]) -> None:
        """Run helm with these arguments (after the binary); raise on failure."""

    def await_group(self, group: int, *, key: str, timeout: float) -> None:
        """Wait until every pod of ``group`` is Ready and serves ``key``; raise on timeout."""

    def smoke(self, group: int) -> str:
        """Send the smoke prompt to ``group``'s leader; the text it answered, or raise."""

    def await_gone(self, first_group: int, *, timeout: float) -> None:
        """Wait until no pod of a group indexed ``first_group`` or higher exists; raise on timeout."""


@dataclass(frozen=True)
class HelmUpgrade:
    """``helm upgrade`` of the release with the target key at one partition."""

    release: str
    namespace: str
    chart: str
    key: str
    previous_key: str
    partition: int
    max_surge: int
    kube_args: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        """helm's arguments (no binary); ``--reuse-values`` keeps every other value the release has."""
        return [
            "upgrade", self.release, self.chart, "--namespace", self.namespace, "--reuse-values",
            "--set-string", f"engine.key={self.key}",
            "--set-string", f"engine.previousKey={self.previous_key}",
            "--set", f"workload.lws.partition={self.partition}",
            "--set", f"workload.lws.maxSurge={self.max_surge}",
            *self.kube_args,
        ]  # fmt: skip

    def describe(self) -> str:
        return f"helm {' '.join(self.argv())}"

    def __call__(self, effects: Effects) -> None:
        effects.helm(self.argv())


@dataclass(frozen=True)
class AwaitGroup:
    """Gate: every pod of one group Ready and running the key (the LWS controller recreates it)."""

    group: int
    key: str
    timeout: float

    def describe(self) -> str:
        return (
            f"wait up to {self.timeout:.0f}s until every pod of group {self.group} is Ready with "
            f"{ENGINE_KEY_ANNOTATION}={self.key}"
        )

    def __call__(self, effects: Effects) -> None:
        effects.await_group(self.group, key=self.key, timeout=self.timeout)


@dataclass(frozen=True)
class Smoke:
    """Gate: a smoke prompt on the group's leader must answer with text."""

    group: int

    def describe(self) -> str:
        return f"smoke-test group {self.group}: a prompt through its leader's Triton must answer with text"

    def __call__(self, effects: Effects) -> None:
        effects.smoke(self.group)


@dataclass(frozen=True)
class AwaitGone:
    """Wait until the LWS controller removed the surge groups (after partition is back to 0)."""

    first_group: int
    timeout: float

    def describe(self) -> str:
        return f"wait up to {self.timeout:.0f}s until the surge groups (index >= {self.first_group}) are gone"

    def __call__(self, effects: Effects) -> None:
        effects.await_gone(self.first_group, timeout=self.timeout)


Step = HelmUpgrade | AwaitGroup | Smoke | AwaitGone


@dataclass(frozen=True)
class RolloutPlan:
    """The steps of one rollout, in order; ``steps`` is empty when the release already serves the key."""

    release: str
    namespace: str
    lws: str
    from_key: str
    to_key: str
    replicas: int
    max_surge: int
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def describe(self) -> list[str]:
        """One line per step, numbered: what ``--dry-run`` prints and what the runner announces."""
        return [f"{i}. {s.describe()}" for i, s in enumerate(self.steps, 1)]


def plan_rollout(
    state: LwsState,
    key: str,
    *,
    release: str,
    chart: str,
    max_surge: int | None = None,
    allow_downtime: bool = False,
    group_timeout: float = DEFAULT_GROUP_TIMEOUT,
    kube_args: Sequence[str] = (),
) -> RolloutPlan:
    """Plan the gated rollout of ``key`` over every group of the LeaderWorkerSet.

    Args:
        state: the live LeaderWorkerSet (:func:`lws_state`).
        key: the engine key to roll out (64 hex digits).
        release: Helm release name; chart: the chart reference ``helm upgrade`` is given.
        max_surge: extra groups during the rollout (default: the release's ``workload.lws.maxSurge``).
        allow_downtime: accept a rollout that leaves no group serving (one group, no surge).
        group_timeout: seconds each readiness gate waits.
        kube_args: helm's cluster flags (``--kubeconfig``, ``--kube-context``), the ones the API reads used.

    Returns:
        The plan. A rollout interrupted half-way (the template already has ``key``, partition > 0) is
        resumed from its partition; a release already serving ``key`` everywhere gets no steps.

    Raises:
        UsageError: a bad key or surge, no groups, or a rollout with downtime not allowed.
    """
    if not is_full_key(key):
        raise UsageError(
            f"--key {key!r} is not a full engine key (64 lowercase hex digits)",
            field="--key",
            value=key,
            hint="take it from `triton-llm engine build RECIPE --dry-run` or `triton-llm engine ls`",
        )
    surge = state.max_surge if max_surge is None else max_surge
    if surge < 0:
        raise UsageError(f"--max-surge must be >= 0 (got {surge})", field="--max-surge", value=surge)
    if state.replicas < 1:
        raise UsageError(f"LeaderWorkerSet {state.name} has no groups (replicas=0): nothing serves to roll")
    surge = min(surge, state.replicas)  # the controller caps maxSurge at replicas
    base = RolloutPlan(
        release=release,
        namespace=state.namespace,
        lws=state.name,
        from_key=state.key,
        to_key=key,
        replicas=state.replicas,
        max_surge=surge,
    )
    if state.key == key and state.partition == 0:
        return base
    if surge == 0 and state.replicas == 1 and not allow_downtime:
        raise UsageError(
            "one group and maxSurge=0: the only group must stop before its replacement starts, so "
            "requests fail meanwhile",
            field="--max-surge",
            value=0,
            hint="pass --max-surge 1 (needs free GPUs for one more group), or --allow-downtime",
        )
    resume = state.key == key
    previous = state.previous_key if resume else state.key

    def upgrade(partition: int) -> HelmUpgrade:
        return HelmUpgrade(
            release=release,
            namespace=state.namespace,
            chart=chart,
            key=key,
            previous_key=previous,
            partition=partition,
            max_surge=surge,
            kube_args=tuple(kube_args),
        )

    def gate(group: int) -> list[Step]:
        return [AwaitGroup(group=group, key=key, timeout=group_timeout), Smoke(group=group)]

    steps: list[Step] = []
    surge_groups = range(state.replicas, state.replicas + surge)
    start = min(state.partition, state.replicas) if resume else state.replicas
    if resume:
        # Re-apply the settings (a surge asked for now), then check what the interrupted run left.
        steps.append(upgrade(start))
        for g in [*surge_groups, *range(start, state.replicas)]:
            steps += gate(g)
    else:
        steps.append(upgrade(start))
        for g in surge_groups:
            steps += gate(g)
    for g in range(start - 1, -1, -1):
        steps.append(upgrade(g))
        steps += gate(g)
    if surge:
        steps.append(AwaitGone(first_group=state.replicas, timeout=group_timeout))
    return dataclasses.replace(base, steps=tuple(steps))


def plan_undo(
    state: LwsState,
    *,
    release: str,
    chart: str,
    max_surge: int | None = None,
    allow_downtime: bool = False,
    group_timeout: float = DEFAULT_GROUP_TIMEOUT,
    kube_args: Sequence[str] = (),
) -> RolloutPlan:
    """Plan the rollout back to the key the last rollout replaced (the LWS's previous-key annotation).

    The undo is a rollout like any other (same gates, no downtime), and records the key it replaces, so
    a second undo rolls forward again.

    Raises:
        UsageError: no previous key recorded (the release was never rolled out by ``triton-llm rollout``).
    """
    if not state.previous_key:
        raise UsageError(
            f"LeaderWorkerSet {state.name} records no previous key ({PREVIOUS_KEY_ANNOTATION}): "
            "nothing to undo",
            hint="roll out an explicit key with `triton-llm rollout --key KEY`",
        )
    return plan_rollout(
        state,
        state.previous_key,
        release=release,
        chart=chart,
        max_surge=max_surge,
        allow_downtime=allow_downtime,
        group_timeout=group_timeout,
        kube_args=kube_args,
    )

"""Fixtures of the rollout tests: the chart's real LeaderWorkerSet and pods, served by a stub API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy._kube import lws_group
from tests.helm._render import NAMESPACE, RELEASE, helm_template
from tests.helm._tools import ensure_tool
from tests.rollout._apiserver import ApiState, api_server, write_kubeconfig

OLD = "a" * 64
NEW = "b" * 64


@pytest.fixture(scope="session")
def helm() -> Path:
    return ensure_tool("helm")


def chart_lws(helm: Path, *, key: str, previous: str = "", replicas: int = 2, surge: int = 1,
              partition: int = 0) -> dict[str, Any]:  # fmt: skip
    """The LeaderWorkerSet the chart renders (tp=8 over 2 pods), as the API server would return it."""
    rendered = helm_template(
        helm,
        set_values={
            "engine.key": key,
            "engine.previousKey": previous,
            "engine.store": "s3://bucket/engines",
            "launcher.ssh.existingSecret": "group-key",
            "parallelism.tp": "8",
            "gpusPerNode": "4",
            "replicas": str(replicas),
            "workload.lws.maxSurge": str(surge),
            "workload.lws.partition": str(partition),
        },
        skip_tests=True,
    )
    lws = rendered.one("LeaderWorkerSet")
    lws["metadata"]["namespace"] = NAMESPACE
    return lws


def group_pod_json(lws: dict[str, Any], group: int, *, ready: bool = True) -> list[dict[str, Any]]:
    """The pods the LWS controller makes for ``group`` (tests/deploy/_kube.py), as API JSON with a status."""
    out = []
    for pod in lws_group(lws, namespace=NAMESPACE, group=group):
        status = "True" if ready else "False"
        out.append({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": pod.labels,
                         "annotations": pod.annotations},
            "spec": pod.spec,
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": status}]},
        })  # fmt: skip
    return out


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[ApiState, Path]]:
    """A running stub API server and a kubeconfig for it (context namespace: the chart tests' namespace)."""
    state = ApiState()
    with api_server(state) as url:
        yield state, write_kubeconfig(tmp_path / "kubeconfig", url, namespace=NAMESPACE)


__all__ = ["NEW", "OLD", "RELEASE", "chart_lws", "group_pod_json"]

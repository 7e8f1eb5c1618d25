"""The twin's Kubernetes/LWS rules on their own: they must fail for the same reasons a cluster would."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy._kube import (
    LWS_WORKER_INDEX,
    NotEmulated,
    assign_dns,
    container_env,
    lws_group,
    lws_headless_service,
)


def _lws(name: str = "rel-lws", size: int = 3) -> dict[str, Any]:
    spec = {
        "containers": [
            {"name": "c", "env": [{"name": "LWS_GROUP_SIZE", "value": "99"}, {"name": "X", "value": "1"}]}
        ]
    }
    return {
        "metadata": {"name": name},
        "spec": {
            "networkConfig": {"subdomainPolicy": "Shared"},
            "leaderWorkerTemplate": {
                "size": size,
                "leaderTemplate": {"metadata": {"labels": {"role": "leader"}}, "spec": spec},
                "workerTemplate": {"metadata": {"labels": {"role": "worker"}}, "spec": spec},
            },
        },
    }


def _service(name: str, selector: dict[str, str], *, headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": selector, "ports": [{"name": "p", "port": 80, "targetPort": 80}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"metadata": {"name": name}, "spec": spec}


def test_lws_pods_are_named_indexed_and_given_the_lws_variables_first() -> None:
    pods = lws_group(_lws(), namespace="ns", group=2)
    assert [p.name for p in pods] == ["rel-lws-2", "rel-lws-2-1", "rel-lws-2-2"]
    assert [p.labels[LWS_WORKER_INDEX] for p in pods] == ["0", "1", "2"]
    assert {p.subdomain for p in pods} == {"rel-lws"} and pods[1].hostname == "rel-lws-2-1"
    env = pods[1].spec["containers"][0]["env"]
    assert [e["name"] for e in env] == ["LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE", "LWS_WORKER_INDEX", "X"]
    assert env[0]["value"] == "rel-lws-2.rel-lws.ns" and env[1]["value"] == "3"


def test_the_controller_makes_no_headless_service_when_its_name_is_taken() -> None:
    lws = _lws()
    assert lws_headless_service(lws, [_service("other", {"a": "b"})]) is not None
    assert lws_headless_service(lws, [_service("rel-lws", {"a": "b"})]) is None


def test_pod_records_exist_only_under_a_headless_service_named_like_the_subdomain() -> None:
    lws = _lws()
    pods = lws_group(lws, namespace="ns")
    taken = [_service("rel-lws", {"role": "leader"})]  # a ClusterIP Service under the LWS's name
    assign_dns(pods, taken, namespace="ns")
    assert pods[1].dns_names == [] and pods[0].dns_names == ["rel-lws.ns.svc.cluster.local"]
    headless = lws_headless_service(lws, [])
    assert headless is not None
    assign_dns(pods, [headless], namespace="ns")
    assert pods[1].dns_names == ["rel-lws-0-1.rel-lws.ns.svc.cluster.local"]


def test_a_service_over_several_pods_or_another_port_is_not_emulated() -> None:
    pods = lws_group(_lws(), namespace="ns")
    with pytest.raises(NotEmulated, match="selects 3 pods"):
        assign_dns(pods, [_service("all", {"leaderworkerset.sigs.k8s.io/name": "rel-lws"})], namespace="ns")
    moved = _service("lead", {"role": "leader"})
    moved["spec"]["ports"][0]["targetPort"] = 8080
    with pytest.raises(NotEmulated, match="maps port 80"):
        assign_dns(pods, [moved], namespace="ns")


def test_env_resolves_fields_and_secret_refs_and_fails_on_a_missing_key() -> None:
    (pod,) = lws_group(_lws(size=1), namespace="ns")
    c = {
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope", "optional": True}}},
        ]
    }
    assert container_env(c, pod, secrets={"s": {"k": "v"}}) == {"POD": "rel-lws-0", "KEY": "v"}
    with pytest.raises(KeyError, match="no key k"):
        container_env(c, pod, secrets={"s": {}})

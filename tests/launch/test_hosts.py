"""Host discovery and rank placement: every mode and every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_llm.errors import LaunchError, UsageError
from triton_llm.launch.hosts import (
    Host,
    local_hosts,
    lws_hosts,
    parse_hostfile,
    place_ranks,
    read_hostfile,
    statefulset_hosts,
)


def test_local_has_one_slot_per_rank() -> None:
    assert local_hosts(3) == [Host("localhost", 3)]
    assert place_ranks(local_hosts(3), 3) == ["localhost"] * 3


def test_hostfile_syntax() -> None:
    text = "# comment\nnode-a slots=2  # trailing\n\nnode-b slots=1 max_slots=4\nnode-c\nnode-a slots=1\n"
    assert parse_hostfile(text) == [Host("node-a", 3), Host("node-b", 1), Host("node-c", 1)]


def test_hostfile_accepts_dash_spelling() -> None:
    assert parse_hostfile("10.0.0.1 slots=2 max-slots=2") == [Host("10.0.0.1", 2)]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("node-a cpus=2", "hosts:1: unknown token 'cpus=2'"),
        ("node-a\nnode-b slots=0", "hosts:2: slots must be a positive integer"),
        ("node-a slots=two", "slots must be a positive integer (got 'two')"),
        ("slots=2", "'slots=2' is not a host name"),
        ("# only comments\n\n", "no hosts listed"),
    ],
)
def test_hostfile_errors_name_the_line(text: str, needle: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_hostfile(text, source="hosts")
    assert needle in str(e.value)


def test_read_hostfile_missing(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        read_hostfile(tmp_path / "nope")


def test_placement_fills_hosts_in_order() -> None:
    hosts = [Host("a", 2), Host("b", 2), Host("c", 4)]
    assert place_ranks(hosts, 5) == ["a", "a", "b", "b", "c"]


def test_fewer_slots_than_ranks_names_counts() -> None:
    with pytest.raises(LaunchError) as e:
        place_ranks([Host("a", 1), Host("b", 1)], 3)
    assert "world size 3" in str(e.value) and "give 2" in str(e.value) and "a:1, b:1" in str(e.value)


LWS_ENV = {"LWS_LEADER_ADDRESS": "trt-0.trt.llm", "LWS_GROUP_SIZE": "3", "LWS_WORKER_INDEX": "0"}


def test_lws_worker_dns_names() -> None:
    hosts = lws_hosts(LWS_ENV, world_size=3)
    assert hosts == [Host("trt-0.trt.llm", 1), Host("trt-0-1.trt.llm", 1), Host("trt-0-2.trt.llm", 1)]


def test_lws_unique_subdomain_and_slots() -> None:
    env = {**LWS_ENV, "LWS_LEADER_ADDRESS": "trt-2.trt-2.llm", "LWS_GROUP_SIZE": "2"}
    hosts = lws_hosts(env, world_size=4)
    assert hosts == [Host("trt-2.trt-2.llm", 2), Host("trt-2-1.trt-2.llm", 2)]
    assert [h.slots for h in lws_hosts(env, world_size=4, slots_per_host=3)] == [3, 3]


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "LWS_LEADER_ADDRESS, LWS_GROUP_SIZE, LWS_WORKER_INDEX"),
        ({**LWS_ENV, "LWS_WORKER_INDEX": "2"}, "this pod has LWS_WORKER_INDEX=2"),
        ({**LWS_ENV, "LWS_GROUP_SIZE": "x"}, "LWS_GROUP_SIZE='x'"),
        ({**LWS_ENV, "LWS_LEADER_ADDRESS": "leader"}, "is not <pod>.<subdomain>.<namespace>"),
        ({**LWS_ENV, "LWS_GROUP_SIZE": "2"}, "world size 3 does not divide evenly over 2 LWS pods"),
    ],
)
def test_lws_errors(env: dict[str, str], needle: str) -> None:
    with pytest.raises(LaunchError) as e:
        lws_hosts(env, world_size=3)
    assert needle in str(e.value)


def test_statefulset_pod_dns_names() -> None:
    hosts = statefulset_hosts("trt", world_size=4, service="trt-hl", namespace="llm", replicas=2)
    assert hosts == [
        Host("trt-0.trt-hl.llm.svc.cluster.local", 2),
        Host("trt-1.trt-hl.llm.svc.cluster.local", 2),
    ]


def test_statefulset_defaults_one_rank_per_pod() -> None:
    hosts = statefulset_hosts("trt", world_size=3, cluster_domain="k8s.example")
    assert [h.name for h in hosts] == [f"trt-{i}.trt.default.svc.k8s.example" for i in range(3)]
    assert statefulset_hosts("trt", world_size=4, slots_per_host=2)[1].name.startswith("trt-1.")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": "Trt"}, "--statefulset 'Trt' is not a DNS label"),
        ({"name": "trt", "namespace": "a.b"}, "--namespace 'a.b'"),
        ({"name": "trt", "replicas": 2}, "world size 3 does not divide evenly over 2 StatefulSet pods"),
        ({"name": "trt", "replicas": 0}, "--replicas must be at least 1"),
    ],
)
def test_statefulset_errors(kwargs: dict, needle: str) -> None:
    with pytest.raises(LaunchError) as e:
        statefulset_hosts(world_size=3, **kwargs)
    assert needle in str(e.value)

"""Every bad value we promise to reject fails the render with a message naming the key to fix.

Schema problems (unknown keys, wrong types, enums) are caught by values.schema.json; cross-field rules by the
chart's validateValues helper, which reports all of them at once.
"""

from __future__ import annotations

import pytest

from tests.helm._render import HelmFailed, helm_template

# (case id, --set overrides on top of the minimal valid values, text the error must contain)
BAD_VALUES = [
    ("no engine key", {"engine.key": ""}, "engine.key: set the engine key"),
    ("engine key not hex", {"engine.key": "not-a-key"}, "/engine/key"),
    ("engine key a prefix", {"engine.key": "3f2a9c1d"}, "/engine/key"),
    ("engine store not s3", {"engine.store": "gs://bucket/x"}, "engine.store: set an s3://bucket/prefix URI"),
    (
        "tp not a multiple of gpusPerNode",
        {"parallelism.tp": "12"},
        "tp*pp=12 is not a multiple of gpusPerNode=8",
    ),
    ("tp*pp below one node", {"parallelism.tp": "2"}, "tp*pp=2 is not a multiple of gpusPerNode=8"),
    (
        "two network kinds at once",
        {"network.type": "macvlan", "network.macvlan.master": "ens1f0np0", "network.ipoib.master": "ibs1f0"},
        "network.ipoib is configured but network.type=macvlan",
    ),
    ("network type list", {"network.type": "{macvlan,ipoib}"}, "/network/type"),
    ("macvlan without master", {"network.type": "macvlan"}, "network.macvlan.master"),
    ("GID index without an RDMA network", {"network.nccl.ibGidIndex": "3"}, "network.nccl.ibHca/ibGidIndex"),
    (
        "deployment spanning nodes",
        {"workload.kind": "deployment", "parallelism.tp": "16"},
        "workload.kind: deployment runs one pod but tp*pp=16 needs 2 nodes",
    ),
    (
        "statefulset with two groups",
        {"workload.kind": "statefulset", "replicas": "2"},
        "replicas: workload.kind=statefulset serves exactly one group",
    ),
    (
        "autoscaling a statefulset",
        {"workload.kind": "statefulset", "autoscaling.enabled": "true"},
        "autoscaling.enabled: a StatefulSet group cannot be scaled",
    ),
    (
        "autoscaling without the recording rule",
        {"autoscaling.enabled": "true", "monitoring.enabled": "false"},
        "set monitoring.enabled and monitoring.prometheusRule.enabled",
    ),
    (
        "autoscaling min above max",
        {"autoscaling.enabled": "true", "autoscaling.minReplicas": "5"},
        "autoscaling.minReplicas=5 is above autoscaling.maxReplicas=4",
    ),
    (
        "startup budget below join timeout",
        {"parallelism.tp": "16", "probes.startup.failureThreshold": "10"},
        "budget periodSeconds*failureThreshold=100s must exceed launcher.joinTimeoutSeconds=1800s",
    ),
    (
        "nic cluster policy without version",
        {"network.nicClusterPolicy.enabled": "true", "network.nicClusterPolicy.ifNames": "{ens1f0}"},
        "network.nicClusterPolicy.rdmaSharedDevicePlugin.version",
    ),
    ("build without recipe", {"engine.build.enabled": "true"}, "engine.build.recipe"),
    (
        "build parallelism set twice",
        {
            "engine.build.enabled": "true",
            "engine.build.recipe": "x",
            "engine.build.set": "{parallelism.tp=4}",
        },
        'engine.build.set: "parallelism.tp=4" sets parallelism; set parallelism.tp/pp at the top level',
    ),
    (
        "ssh agent across pods without the key Secret",
        {"parallelism.tp": "16"},
        "launcher.ssh.existingSecret: the ssh agent needs the group's key in a Secret you create once",
    ),
    (
        "a GPU count in resources",
        {"resources.limits.nvidia\\.com/gpu": "4"},
        "resources.limits.nvidia.com/gpu: remove it; the chart gives every serving pod gpusPerNode=8 GPUs",
    ),
    (
        "the RDMA resource in resources",
        {
            "network.type": "macvlan",
            "network.macvlan.master": "ens1f0np0",
            "resources.requests.rdma/rdma_shared_device_a": "2",
        },
        "resources.requests.rdma/rdma_shared_device_a: remove it; the chart requests network.rdmaResource",
    ),
    (
        "keda without autoscaling",
        {"autoscaling.keda.enabled": "true"},
        "autoscaling.keda.enabled: KEDA scales only with autoscaling.enabled",
    ),
    (
        "inference pool without the frontend",
        {
            "inferencePool.enabled": "true",
            "inferencePool.endpointPicker.name": "epp",
            "inferencePool.httpRoute.gatewayName": "gw",
            "frontend.enabled": "false",
        },
        "inferencePool.enabled: the pool routes OpenAI requests to the leaders' frontend sidecar",
    ),
    (
        "inference pool without an endpoint picker",
        {"inferencePool.enabled": "true", "inferencePool.httpRoute.gatewayName": "gw"},
        "inferencePool.endpointPicker.name: name the Service of the endpoint picker",
    ),
    (
        "http route without a gateway",
        {"inferencePool.enabled": "true", "inferencePool.endpointPicker.name": "epp"},
        "inferencePool.httpRoute.gatewayName: name the Gateway",
    ),
    (
        "partition outside a LeaderWorkerSet",
        {
            "workload.kind": "statefulset",
            "workload.lws.partition": "1",
            "parallelism.tp": "16",
            "launcher.ssh.existingSecret": "k",
        },
        "workload.lws.partition: only a LeaderWorkerSet has a partition",
    ),
    ("previous key not a key", {"engine.previousKey": "abc"}, "/engine/previousKey"),
    ("negative partition", {"workload.lws.partition": "-1"}, "/workload/lws/partition"),
    ("keda failure mode typo", {"inferencePool.endpointPicker.failureMode": "Open"}, "failureMode"),
    ("misspelt key", {"parallelism.tensor": "8"}, "additional properties 'tensor' not allowed"),
    ("unknown workload kind", {"workload.kind": "daemonset"}, "/workload/kind"),
    ("plain credentials", {"engine.credentials.accessKey": "AKIA..."}, "additional properties 'accessKey'"),
    ("wrong agent", {"launcher.agent": "rsh"}, "/launcher/agent"),
    ("gpusPerNode zero", {"gpusPerNode": "0"}, "/gpusPerNode"),
]


@pytest.mark.parametrize(("case", "overrides", "message"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_bad_value_is_rejected_with_its_message(
    case: str, overrides, message: str, helm, base_values
) -> None:
    with pytest.raises(HelmFailed) as failed:
        helm_template(helm, set_values={**base_values, **overrides})
    assert message in failed.value.stderr, f"{case}: {failed.value.stderr}"


def test_the_minimal_values_render(helm, base_values) -> None:
    """The baseline the bad cases start from is itself valid, so each case fails for its own reason."""
    assert helm_template(helm, set_values=base_values).of_kind("LeaderWorkerSet")


def test_all_problems_are_reported_in_one_failure(helm) -> None:
    with pytest.raises(HelmFailed) as failed:
        helm_template(helm, set_values={"parallelism.tp": "12", "engine.store": "x"})
    err = failed.value.stderr
    assert "3 invalid value(s)" in err
    for key in ("engine.key", "engine.store", "parallelism"):
        assert f"  - {key}" in err, err

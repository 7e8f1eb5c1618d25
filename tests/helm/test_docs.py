"""docs/kubernetes.md's examples are real: the values file installs, the MPIJob is a valid MPIJob, and the
autoscaling names in the text match what the chart renders."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.helm._render import REPO_ROOT, container, helm_template, pod_specs
from tests.helm._schemas import BUILTIN_GROUPS, crd_validator

DOC = REPO_ROOT / "docs" / "kubernetes.md"


def _doc_files() -> dict[str, str]:
    """YAML blocks of the doc that start with `# file: NAME`."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    out = {}
    for block in blocks:
        first = block.splitlines()[0]
        if first.startswith("# file: "):
            out[first.removeprefix("# file: ").strip()] = block
    return out


@pytest.fixture(scope="module")
def roce_example(helm, tmp_path_factory: pytest.TempPathFactory):
    values = tmp_path_factory.mktemp("doc") / "roce-2x8-values.yaml"
    values.write_text(_doc_files()["roce-2x8-values.yaml"])
    return helm_template(helm, values_files=[Path(values)])


def test_the_worked_example_is_two_pods_of_eight_gpus_over_roce(roce_example, crd_schemas) -> None:
    lws = roce_example.one("LeaderWorkerSet")
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    leader = container(pod_specs(roce_example)["leader"])
    assert leader["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert roce_example.one("MacvlanNetwork")["spec"]["master"] == "ens1f0np0"
    for obj in roce_example.objects:
        if obj["apiVersion"] in BUILTIN_GROUPS:
            kubernetes_validate.validate(obj, "1.35.0", strict=True)
        else:
            assert not list(crd_validator(crd_schemas, obj).iter_errors(obj)), obj["kind"]


def test_the_nccl_mpijob_is_valid_and_uses_the_charts_network(roce_example, crd_schemas) -> None:
    job = yaml.safe_load(_doc_files()["nccl-allreduce-mpijob.yaml"])
    errors = [f"{list(e.path)}: {e.message}" for e in crd_validator(crd_schemas, job).iter_errors(job)]
    assert not errors, errors
    worker = job["spec"]["mpiReplicaSpecs"]["Worker"]
    network = roce_example.one("MacvlanNetwork")["metadata"]["name"].replace("rel-", "llama-", 1)
    assert worker["template"]["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] == network
    ranks = int(job["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]["command"][2])
    assert ranks == worker["replicas"] * job["spec"]["slotsPerWorker"]


def test_the_adapter_rule_in_the_doc_matches_the_recorded_series_and_hpa_metric(helm, base_values) -> None:
    rendered = helm_template(helm, set_values={**base_values, "autoscaling.enabled": "true"})
    record = rendered.one("PrometheusRule")["spec"]["groups"][0]["rules"][0]["record"]
    metric = rendered.one("HorizontalPodAutoscaler")["spec"]["metrics"][0]["pods"]["metric"]["name"]
    text = DOC.read_text()
    assert f"seriesQuery: '{record}{{" in text
    assert f'as: "{metric}"' in text

"""Every object the chart renders is valid Kubernetes: strict built-in schemas (1.30 and 1.35) and, for
custom resources, the upstream CRD's openAPIV3Schema with unknown fields rejected (as the API server's
structural pruning would silently drop them)."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.helm._schemas import BUILTIN_GROUPS, crd_validator
from tests.helm.conftest import CI_VALUES

# The installed kubernetes-validate ships schemas for 1.25 through 1.37, so both targets exist exactly.
KUBE_VERSIONS = ("1.30.0", "1.35.0")


def test_kubernetes_validate_ships_the_target_versions() -> None:
    for version in KUBE_VERSIONS:
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("values", CI_VALUES)
def test_every_builtin_object_passes_strict_kubernetes_schemas(values: str, render_ci) -> None:
    rendered = render_ci(values)
    builtin = [o for o in rendered.objects if o["apiVersion"] in BUILTIN_GROUPS]
    assert builtin, f"{values} rendered no built-in objects"
    for obj in builtin:
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{values}: {obj['kind']}/{obj['metadata']['name']} invalid for {version}: {e}")


@pytest.mark.parametrize("values", CI_VALUES)
def test_every_custom_resource_passes_its_upstream_crd_schema(values: str, render_ci, crd_schemas) -> None:
    rendered = render_ci(values)
    for obj in rendered.objects:
        if obj["apiVersion"] in BUILTIN_GROUPS:
            continue
        errors = sorted(crd_validator(crd_schemas, obj).iter_errors(obj), key=lambda e: list(e.path))
        assert not errors, f"{values}: {obj['kind']}/{obj['metadata']['name']}: " + "; ".join(
            f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
        )


def test_the_crd_check_rejects_an_unknown_field(crd_schemas) -> None:
    """The closed-schema check can fail: a misspelt LWS field is reported."""
    bad = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "x"},
        "spec": {"replicas": 1, "leaderWorkerTemplate": {"sise": 2, "workerTemplate": {}}},
    }
    errors = list(crd_validator(crd_schemas, bad).iter_errors(bad))
    assert any("sise" in e.message for e in errors), [e.message for e in errors]


def test_every_custom_resource_kind_is_covered_by_the_matrix(render_ci) -> None:
    kinds = set()
    for values in CI_VALUES:
        kinds |= {o["kind"] for o in render_ci(values).objects if o["apiVersion"] not in BUILTIN_GROUPS}
    expected = {"LeaderWorkerSet", "MacvlanNetwork", "IPoIBNetwork", "HostDeviceNetwork", "NicClusterPolicy"}
    expected |= {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    expected |= {"ScaledObject", "InferencePool", "HTTPRoute"}
    assert expected <= kinds, f"not rendered by any ci/ values file: {sorted(expected - kinds)}"

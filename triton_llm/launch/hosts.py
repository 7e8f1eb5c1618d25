"""Host discovery and rank placement (pure: inputs in, host lists out).

Four modes give an ordered list of :class:`Host` (the first one is where ``mpirun`` runs):

- local: this machine only, with as many slots as ranks;
- hostfile: Open MPI hostfile syntax (``name [slots=N] [max_slots=N]``, ``#`` comments);
- LeaderWorkerSet: ``LWS_LEADER_ADDRESS`` (``<lws>-<group>.<subdomain>.<ns>``), ``LWS_GROUP_SIZE``
  and ``LWS_WORKER_INDEX``; worker ``i`` is the pod ``<lws>-<group>-<i>`` in the same subdomain;
- StatefulSet: pods ``<name>-<i>.<service>.<namespace>.svc.<cluster-domain>``.

Ranks are placed by slot: host 0 gets ranks ``0..slots0-1``, and so on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from triton_llm.errors import LaunchPlanError, UsageError

_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.:\-]*[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class Host:
    """One host (node or pod) and how many ranks it may run."""

    name: str
    slots: int = 1


def local_hosts(world_size: int) -> list[Host]:
    """This machine only, with one slot per rank."""
    return [Host("localhost", world_size)]


def parse_hostfile(text: str, *, source: str = "<hostfile>") -> list[Host]:
    """Parse Open MPI hostfile syntax.

    Args:
        text: the file contents.
        source: the file name, for messages.

    Returns:
        Hosts in file order; a repeated name adds its slots to the first entry.

    Raises:
        UsageError: a line has an unknown token, a bad slot count, or no host at all; names the line.
    """
    hosts: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, *tokens = line.split()
        where = f"{source}:{lineno}"
        if not _HOSTNAME.match(name) or "=" in name:
            raise UsageError(f"{where}: {name!r} is not a host name", path=source, value=raw)
        slots = 1
        for token in tokens:
            key, sep, value = token.partition("=")
            key = key.replace("-", "_")
            if not sep or key not in ("slots", "max_slots"):
                raise UsageError(
                    f"{where}: unknown token {token!r} (expected slots=N or max_slots=N)",
                    path=source,
                    value=raw,
                )
            if not value.isdigit() or int(value) < 1:
                raise UsageError(f"{where}: {key} must be a positive integer (got {value!r})", path=source)
            if key == "slots":
                slots = int(value)
        hosts[name] = hosts.get(name, 0) + slots
    if not hosts:
        raise UsageError(f"{source}: no hosts listed", path=source)
    return [Host(n, s) for n, s in hosts.items()]


def read_hostfile(path: Path) -> list[Host]:
    """Read and parse a hostfile.

    Raises:
        UsageError: the file is missing or malformed.
    """
    if not path.is_file():
        raise UsageError(f"hostfile {path} does not exist", path=str(path))
    return parse_hostfile(path.read_text(), source=str(path))


def _even_slots(world_size: int, n_hosts: int, *, what: str) -> int:
    if world_size % n_hosts:
        raise LaunchPlanError(
            f"world size {world_size} does not divide evenly over {n_hosts} {what}",
            value=world_size,
            hint="make tp*pp a multiple of the group size, or pass --slots-per-host",
        )
    return world_size // n_hosts


def lws_hosts(
    environ: Mapping[str, str], *, world_size: int, slots_per_host: int | None = None
) -> list[Host]:
    """Hosts of a LeaderWorkerSet group, from the variables LWS injects into every pod.

    Args:
        environ: the environment (needs LWS_LEADER_ADDRESS, LWS_GROUP_SIZE, LWS_WORKER_INDEX).
        world_size: tp * pp.
        slots_per_host: ranks per pod; default world_size / group size.

    Raises:
        LaunchPlanError: a variable is missing or malformed, or this is not the leader pod (index 0).
    """
    missing = [k for k in ("LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE", "LWS_WORKER_INDEX") if not environ.get(k)]
    if missing:
        raise LaunchPlanError(
            f"--lws needs {', '.join(missing)} in the environment",
            hint="run inside a LeaderWorkerSet pod, or use --hostfile",
        )
    leader = environ["LWS_LEADER_ADDRESS"]
    size_raw, index_raw = environ["LWS_GROUP_SIZE"], environ["LWS_WORKER_INDEX"]
    if not size_raw.isdigit() or int(size_raw) < 1:
        raise LaunchPlanError(f"LWS_GROUP_SIZE={size_raw!r} is not a positive integer", value=size_raw)
    if index_raw != "0":
        raise LaunchPlanError(
            f"launch runs in the LWS leader pod (LWS_WORKER_INDEX=0); this pod has "
            f"LWS_WORKER_INDEX={index_raw}",
            value=index_raw,
            hint="worker pods run `triton-llm agent wait` or `triton-llm agent ssh`",
        )
    pod, dot, domain = leader.partition(".")
    if not dot or not pod or not domain:
        raise LaunchPlanError(
            f"LWS_LEADER_ADDRESS={leader!r} is not <pod>.<subdomain>.<namespace>", value=leader
        )
    size = int(size_raw)
    slots = slots_per_host or _even_slots(world_size, size, what="LWS pods")
    return [Host(leader, slots)] + [Host(f"{pod}-{i}.{domain}", slots) for i in range(1, size)]


def statefulset_hosts(
    name: str,
    *,
    world_size: int,
    service: str | None = None,
    namespace: str = "default",
    replicas: int | None = None,
    cluster_domain: str = "cluster.local",
    slots_per_host: int | None = None,
) -> list[Host]:
    """Pods of a StatefulSet behind a headless service: ``<name>-<i>.<service>.<ns>.svc.<domain>``.

    Args:
        name: the StatefulSet name.
        world_size: tp * pp.
        service: the headless service; default ``name``.
        namespace: the pods' namespace.
        replicas: number of pods; default world_size / slots_per_host (one rank per pod).
        cluster_domain: the cluster DNS domain.
        slots_per_host: ranks per pod; default world_size / replicas.

    Raises:
        LaunchPlanError: the names are not DNS labels, or ranks do not divide over the pods.
    """
    for label, value in (("--statefulset", name), ("--service", service or name), ("--namespace", namespace)):
        if not re.fullmatch(r"[a-z0-9]([a-z0-9\-]*[a-z0-9])?", value):
            raise LaunchPlanError(f"{label} {value!r} is not a DNS label", value=value)
    if replicas is None:
        replicas = world_size // slots_per_host if slots_per_host else world_size
    if replicas < 1:
        raise LaunchPlanError(f"--replicas must be at least 1 (got {replicas})", value=replicas)
    slots = slots_per_host or _even_slots(world_size, replicas, what="StatefulSet pods")
    domain = f"{service or name}.{namespace}.svc.{cluster_domain}"
    return [Host(f"{name}-{i}.{domain}", slots) for i in range(replicas)]


def place_ranks(hosts: Sequence[Host], world_size: int) -> list[str]:
    """The host of each rank, filling hosts in order up to their slots.

    Raises:
        LaunchPlanError: fewer slots than ranks; names the count and each host's slots.
    """
    total = sum(h.slots for h in hosts)
    if total < world_size:
        listing = ", ".join(f"{h.name}:{h.slots}" for h in hosts)
        raise LaunchPlanError(
            f"world size {world_size} (tp*pp) needs {world_size} slots but the hosts give {total} "
            f"({listing})",
            value=world_size,
            hint="add hosts or slots=N in the hostfile, or lower parallelism.tp/pp",
        )
    placement: list[str] = []
    for host in hosts:
        take = min(host.slots, world_size - len(placement))
        placement += [host.name] * take
    return placement

"""Turn a topology into an ``mpirun`` command and its environment (pure: no effects).

One MPMD ``mpirun`` starts one program per rank (``-n 1 argv0 : -n 1 argv1 : ...``); for serving
each program is a ``tritonserver`` in TensorRT-LLM's leader mode (argv from
:func:`triton_llm.launch.tritonserver.tritonserver_argv`). Every rank carries the group marker
``TRITONLLM_GROUP=<id>`` so the runner can find and end whatever a group leaves behind.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from triton_llm.engine.fingerprint import fingerprint
from triton_llm.errors import LaunchPlanError
from triton_llm.launch.agents import Agent
from triton_llm.launch.hosts import Host, place_ranks
from triton_llm.launch.transport import TransportSettings, transport_mpi_args
from triton_llm.launch.tritonserver import TritonInstall, tritonserver_argv

GROUP_ENV = "TRITONLLM_GROUP"
FORWARDED_PREFIXES = ("NCCL_", "UCX_", "OMP_")
FORWARDED_ENV = ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
_RANK_FILE = re.compile(r"^rank(\d+)\.(engine|safetensors|pt|bin)$")


@dataclass(frozen=True)
class LaunchPlan:
    """Everything the runner needs: the command, the variables to set, and where ranks go."""

    argv: list[str]
    env: dict[str, str]
    rank_hosts: list[str]
    group_id: str
    shm_prefix: str
    agent: Agent | None = None
    remote_hosts: list[str] = field(default_factory=list)
    mpi_shm_dir: str | None = None

    @property
    def world_size(self) -> int:
        return len(self.rank_hosts)

    def render(self) -> str:
        """The exact environment and command, as shell lines (for ``--dry-run``)."""
        lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(self.env.items())]
        return "\n".join([*lines, shlex.join(self.argv)])


def group_id_for(*parts: object) -> str:
    """A short id that is equal for equal inputs (so ``--dry-run`` output is reproducible)."""
    return "g" + fingerprint([str(p) for p in parts])[:10]


def shm_prefix_for(group_id: str) -> str:
    """The python-backend shared-memory prefix of a group; rank ``i`` uses ``<prefix><i>_``."""
    return f"tllm_{group_id}_r"


def _rank_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if _RANK_FILE.match(p.name)) if folder.is_dir() else []


def check_engine_ranks(engine_dir: Path, world_size: int, *, checkpoint_dir: Path | None = None) -> None:
    """Check that an engine was built for ``world_size`` ranks and has one rank file per rank.

    The engine's ``config.json`` mapping (``pretrained_config.mapping.tp_size * pp_size``) must equal
    ``world_size``. Rank files (``rank<i>.engine``, ``rank<i>.safetensors``, ...) must be numbered
    ``0..world_size-1``: in ``engine_dir``, or for a cpu engine that serves its checkpoint
    (``runtime.weights == "checkpoint"``) in ``checkpoint_dir`` when given.

    Raises:
        LaunchPlanError: the mapping or the rank files do not match tp*pp; names both.
    """
    import json

    config_path = engine_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    mapping = (config.get("pretrained_config") or {}).get("mapping") or {}
    if mapping:
        built = int(mapping.get("tp_size", 1)) * int(mapping.get("pp_size", 1))
        if built != world_size:
            raise LaunchPlanError(
                f"tp*pp = {world_size} ranks but engine {engine_dir} was built for {built} "
                f"(tp_size={mapping.get('tp_size', 1)}, pp_size={mapping.get('pp_size', 1)})",
                path=str(engine_dir),
                value=world_size,
                hint="rebuild the engine for this parallelism, or set parallelism.tp/pp to match the engine",
            )
    folder = engine_dir
    if (config.get("runtime") or {}).get("weights") == "checkpoint":
        if checkpoint_dir is None:
            return  # the rank files live in the checkpoint; the mapping check above covers the engine
        folder = checkpoint_dir
    found = _rank_files(folder)
    ranks = sorted(int(m.group(1)) for m in map(_RANK_FILE.match, found) if m)
    if ranks != list(range(world_size)):
        raise LaunchPlanError(
            f"tp*pp = {world_size} ranks but {folder} has {len(found)} rank file(s) "
            f"({', '.join(found) or 'none'})",
            path=str(folder),
            value=world_size,
            hint="rebuild the engine for this parallelism, or set parallelism.tp/pp to match the engine",
        )


def build_mpi_command(
    rank_argvs: Sequence[Sequence[str]],
    *,
    hosts: Sequence[Host],
    group_id: str,
    agent: Agent | None = None,
    transport: TransportSettings | None = None,
    forward_env: Sequence[str] = FORWARDED_ENV,
    mpi_shm_dir: str | None = None,
    yield_when_idle: bool = False,
    mpirun: str = "mpirun",
) -> list[str]:
    """The MPMD ``mpirun`` command line: one program per rank, placed on hosts by slot.

    Args:
        rank_argvs: the program of each rank, rank 0 first.
        hosts: candidate hosts in order; the first is where mpirun runs.
        group_id: the group marker exported to every rank.
        agent: how to reach remote hosts (needed when ranks leave the first host).
        transport: interface settings, passed as ``--mca``/``-x``.
        forward_env: variables exported to every rank (``-x NAME``) if set where mpirun runs.
        mpi_shm_dir: where Open MPI puts its shared-memory segments (``btl_vader_backing_directory``);
            a per-group directory lets cleanup remove segments that killed ranks leave behind.
        yield_when_idle: ranks yield the CPU while waiting in MPI (``mpi_yield_when_idle``); needed
            when a host runs more ranks than it has cores, or busy-polling ranks starve computing ones.
        mpirun: the mpirun executable; an absolute path when ranks leave the first host.

    Raises:
        LaunchPlanError: fewer slots than ranks, no ranks, or remote ranks without an agent or with a
            relative mpirun.
    """
    if not rank_argvs:
        raise LaunchPlanError("no ranks to launch")
    placement = place_ranks(hosts, len(rank_argvs))
    used = Counter(placement)
    host_arg = ",".join(f"{h.name}:{used[h.name]}" for h in hosts if used[h.name])
    argv = [mpirun, "--host", host_arg, "--bind-to", "none", "--tag-output"]
    if len(used) > 1:
        if agent is None:
            raise LaunchPlanError(f"ranks are placed on {len(used)} hosts but no remote agent is set")
        if not mpirun.startswith("/"):
            # Open MPI 4.x: an absolute mpirun path acts as --prefix, so the agent runs
            # `PATH=<prefix>/bin:$PATH ... <prefix>/bin/orted`; a bare `orted` needs it on the PATH of a
            # non-interactive ssh, which NVIDIA's images (HPC-X under /opt/hpcx) do not give.
            raise LaunchPlanError(
                f"ranks on other hosts need mpirun by absolute path (got {mpirun!r}): Open MPI starts the "
                "remote orted under the same prefix",
                value=mpirun,
                hint="pass the absolute path of mpirun (shutil.which('mpirun'))",
            )
        argv += [*agent.mca_args(), "--mca", "plm_rsh_no_tree_spawn", "1"]
        # Without it Open MPI passes the host's first label to the agent (orte_keep_fqdn_hostnames,
        # default false), and a pod's short name does not resolve: only <pod>.<subdomain>.<ns> does.
        argv += ["--mca", "orte_keep_fqdn_hostnames", "1"]
    if transport is not None:
        argv += transport_mpi_args(transport)[0]
    if mpi_shm_dir:
        argv += ["--mca", "btl_vader_backing_directory", mpi_shm_dir]
    if yield_when_idle:
        argv += ["--mca", "mpi_yield_when_idle", "1"]
    argv += ["-x", GROUP_ENV]
    for name in forward_env:
        if name != GROUP_ENV:
            argv += ["-x", name]
    for i, rank_argv in enumerate(rank_argvs):
        argv += ([":"] if i else []) + ["-n", "1", *rank_argv]
    return argv


def mpi_environment(
    environ: Mapping[str, str],
    *,
    group_id: str,
    transport: TransportSettings | None = None,
    library_path: Sequence[str] = (),
    is_root: bool = False,
    forward_env: Sequence[str] = FORWARDED_ENV,
) -> dict[str, str]:
    """Variables to set for ``mpirun`` (and so, through ``-x``, for every rank).

    Names in ``forward_env`` are included only when set (or, for LD_LIBRARY_PATH, when the
    install adds entries); pass the keys of the result to :func:`build_mpi_command` as ``forward_env``.
    """
    env = {GROUP_ENV: group_id}
    for name in forward_env:
        if environ.get(name):
            env[name] = environ[name]
    # NCCL/UCX/OpenMP tuning set on the leader (e.g. by the Helm chart) must reach remote ranks too.
    for name, value in sorted(environ.items()):
        if name.startswith(FORWARDED_PREFIXES) and value:
            env[name] = value
    if library_path:
        env["LD_LIBRARY_PATH"] = ":".join([*library_path, *filter(None, [environ.get("LD_LIBRARY_PATH")])])
    if transport is not None:
        env.update(transport_mpi_args(transport)[1])
    if is_root:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def plan_mpi(
    rank_argvs: Sequence[Sequence[str]],
    *,
    hosts: Sequence[Host],
    environ: Mapping[str, str],
    group_id: str,
    agent: Agent | None = None,
    transport: TransportSettings | None = None,
    library_path: Sequence[str] = (),
    is_root: bool = False,
    shm_prefix: str = "",
    local_cpus: int | None = None,
    yield_when_idle: bool | None = None,
    mpirun: str = "mpirun",
) -> LaunchPlan:
    """A complete plan for any per-rank programs (Triton ranks or plain MPI programs).

    ``local_cpus`` is this host's core count: when more ranks than that land here, ranks yield
    while they wait in MPI (``mpi_yield_when_idle``); ``yield_when_idle`` forces it on or off.

    With a ``shm_prefix``, Open MPI's shared-memory segments go to ``/dev/shm/<shm_prefix>mpi``
    (created by the runner on every host), so cleanup removes them with the python-backend regions.

    Raises:
        LaunchPlanError: as :func:`build_mpi_command`.
    """
    env = mpi_environment(
        environ, group_id=group_id, transport=transport, library_path=library_path, is_root=is_root
    )
    forward = [n for n in env if n in FORWARDED_ENV or n.startswith(FORWARDED_PREFIXES)]
    mpi_shm_dir = f"/dev/shm/{shm_prefix}mpi" if shm_prefix else None
    placement = place_ranks(hosts, len(rank_argvs))
    crowded = local_cpus is not None and placement.count(hosts[0].name) > local_cpus
    if yield_when_idle is not None:
        crowded = yield_when_idle
    if mpirun.startswith("/") and env.get("PATH"):
        # An absolute mpirun acts as --prefix, and Open MPI then puts <prefix>/bin first on every rank's
        # PATH, after -x. Triton's python stub finds its interpreter (and so the venv's packages) through
        # PATH, so with Debian's /usr prefix it got /usr/bin/python3 and no numpy: each rank resets PATH.
        rank_argvs = [["/usr/bin/env", f"PATH={env['PATH']}", *argv] for argv in rank_argvs]
    argv = build_mpi_command(
        rank_argvs,
        hosts=hosts,
        group_id=group_id,
        agent=agent,
        transport=transport,
        forward_env=forward,
        mpi_shm_dir=mpi_shm_dir,
        yield_when_idle=crowded,
        mpirun=mpirun,
    )
    remote = [h for h in dict.fromkeys(placement) if h != hosts[0].name]
    return LaunchPlan(
        argv=argv,
        env=env,
        rank_hosts=placement,
        group_id=group_id,
        shm_prefix=shm_prefix,
        agent=agent,
        remote_hosts=remote,
        mpi_shm_dir=mpi_shm_dir,
    )


def triton_rank_argvs(
    install: TritonInstall,
    *,
    model_repo: Path,
    world_size: int,
    shm_prefix: str,
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    log_verbose: int = 0,
    bind_address: str | None = None,
    exit_timeout: int | None = None,
) -> list[list[str]]:
    """One ``tritonserver`` argv per rank (rank 0 serves; ranks above 0 only load tensorrt_llm).

    ``bind_address`` (e.g. 127.0.0.1) restricts rank 0's endpoints; default: Triton's (all addresses).
    """
    extra: list[str] = []
    if bind_address:
        extra += [f"--{k}-address={bind_address}" for k in ("http", "grpc", "metrics")]
    if exit_timeout is not None:
        extra.append(f"--exit-timeout-secs={exit_timeout}")
    return [
        tritonserver_argv(
            install,
            model_repo=model_repo,
            rank=rank,
            world_size=world_size,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            log_verbose=log_verbose,
            shm_prefix=shm_prefix,
            extra=tuple(extra),
        )
        for rank in range(world_size)
    ]


def plan_triton_group(
    install: TritonInstall,
    *,
    model_repo: Path,
    tp: int,
    pp: int,
    hosts: Sequence[Host],
    environ: Mapping[str, str],
    agent: Agent | None = None,
    transport: TransportSettings | None = None,
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    log_verbose: int = 0,
    bind_address: str | None = None,
    exit_timeout: int | None = 10,
    is_root: bool = False,
    group_id: str | None = None,
    local_cpus: int | None = None,
    mpirun: str = "mpirun",
) -> LaunchPlan:
    """The plan for a Triton group of ``tp * pp`` ranks serving ``model_repo``.

    ``environ`` is the environment the servers need (:func:`~triton_llm.launch.tritonserver.server_env`);
    its PATH, LD_LIBRARY_PATH, PYTHONPATH and PYTHONHOME are exported to every rank.

    Raises:
        LaunchPlanError: fewer slots than ranks, or remote ranks without an agent.
    """
    world_size = tp * pp
    gid = group_id or group_id_for(model_repo, tp, pp, http_port, [(h.name, h.slots) for h in hosts])
    prefix = shm_prefix_for(gid)
    argvs = triton_rank_argvs(
        install,
        model_repo=model_repo,
        world_size=world_size,
        shm_prefix=prefix,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        log_verbose=log_verbose,
        bind_address=bind_address,
        exit_timeout=exit_timeout,
    )
    return plan_mpi(
        argvs,
        hosts=hosts,
        environ=environ,
        group_id=gid,
        agent=agent,
        transport=transport,
        library_path=install.library_path(),
        is_root=is_root,
        shm_prefix=prefix,
        local_cpus=local_cpus,
        mpirun=mpirun,
    )

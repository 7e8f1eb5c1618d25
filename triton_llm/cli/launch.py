"""``triton-llm launch``: start a tp*pp Triton group under mpirun; ``triton-llm agent``: remote agents."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from triton_llm.cli._common import add_recipe_flags, add_store_flags, settings_from_args
from triton_llm.errors import LaunchError, NotFoundError, ServeError, UsageError

if TYPE_CHECKING:
    from triton_llm.launch.prepare import PreparedRepository
    from triton_llm.settings import Settings

LAUNCH_EXAMPLES = """examples:
  # one host, 3 ranks (tp=3): build or restore the engine, render its repository, serve it
  triton-llm launch smollm2-135m --set parallelism.tp=3

  # validate the recipe as `engine build` does and print the exact mpirun command and environment
  triton-llm launch smollm2-135m --set parallelism.tp=3 --model-repo ./repo --dry-run

  # across hosts listed in an Open MPI hostfile, over ssh on port 2222
  triton-llm launch smollm2-135m --set parallelism.tp=3 --hostfile hosts.txt \\
      --agent ssh --ssh-port 2222 --ssh-key ~/.ssh/id_ed25519 --model-repo /models/repo

  # in the leader pod of a LeaderWorkerSet, reaching workers with kubectl exec
  triton-llm launch llama-3.1-70b-instruct --lws --agent kubectl --model-repo /models/repo

  # in pod 0 of a StatefulSet "trt" behind headless service "trt-headless"
  triton-llm launch smollm2-135m --set parallelism.tp=2 --statefulset trt --service trt-headless \\
      --namespace llm --replicas 2 --model-repo /models/repo \\
      --transport btl_tcp_if_include=eth0 --transport nccl_socket_ifname=eth0
"""

AGENT_EXAMPLES = """examples:
  triton-llm agent kubectl-exec trt-0-1.trt.llm hostname     run `hostname` in pod trt-0-1 (namespace llm)
  triton-llm agent wait                                      keep a worker pod alive (kubectl mode)
  triton-llm agent ssh --port 2222 --authorized-keys /etc/ssh-key/id.pub   run sshd (ssh mode)
  triton-llm agent ssh --port 2222 --private-key /etc/ssh-key/ssh-privatekey   (its public half may log in)
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``launch`` and ``agent`` commands."""
    p = sub.add_parser(
        "launch",
        help="start a tp*pp Triton group under mpirun (local, hostfile, LWS, StatefulSet)",
        description=(
            "Start one tritonserver per rank (world size = tp*pp) under one mpirun, wait for it, and "
            "return the group's exit code. If any rank dies the whole group exits non-zero and is "
            "cleaned up (ranks, python-backend stubs, /dev/shm regions). A recipe is validated exactly as "
            "`engine build` validates it; without --model-repo the engine is built or restored and its "
            "repository rendered first, as `serve` does."
        ),
        epilog=LAUNCH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", metavar="RECIPE|KEY", help="recipe name or YAML path, or an engine key")
    add_recipe_flags(p)
    add_store_flags(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--hostfile", type=Path, metavar="F", help="Open MPI hostfile (host slots=N per line)")
    mode.add_argument("--lws", action="store_true", help="LeaderWorkerSet group from LWS_* variables")
    mode.add_argument("--statefulset", metavar="NAME", help="pods NAME-0..N-1 of a StatefulSet")
    p.add_argument("--service", help="headless service of --statefulset (default: NAME)")
    p.add_argument("--namespace", help="namespace of --statefulset pods (default: $POD_NAMESPACE or default)")
    p.add_argument("--replicas", type=int, help="pods in --statefulset (default: one rank per pod)")
    p.add_argument(
        "--cluster-domain", default="cluster.local", help="cluster DNS domain (default: %(default)s)"
    )
    p.add_argument("--slots-per-host", type=int, help="ranks per pod in --lws/--statefulset mode")
    p.add_argument(
        "--agent",
        default="ssh",
        metavar="ssh|kubectl|PATH",
        help="how mpirun reaches other hosts: ssh, kubectl (exec into pods) or an executable "
        "called as <agent> <host> <command...> (default: ssh)",
    )
    p.add_argument("--ssh-port", type=int, metavar="N", help="ssh port of the workers (--agent ssh)")
    p.add_argument("--ssh-key", metavar="PATH", help="ssh private key (--agent ssh)")
    p.add_argument("--kubectl", default="kubectl", help="kubectl executable (--agent kubectl)")
    p.add_argument("--container", help="container to exec into (--agent kubectl)")
    p.add_argument(
        "--transport",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="transport setting, e.g. btl_tcp_if_include=eth0, nccl_socket_ifname=eth0, nccl_ib_hca=mlx5_0 "
        "(repeatable; overrides TRITON_LLM_TRANSPORT__* and the settings file)",
    )
    p.add_argument(
        "--model-repo",
        type=Path,
        metavar="DIR",
        help="existing Triton model repository to serve (default: build or restore the engine and render "
        "a fresh repository, as serve does)",
    )
    p.add_argument(
        "--engine-dir", type=Path, metavar="DIR", help="engine dir to check rank files against tp*pp"
    )
    p.add_argument("--http-port", type=int, default=8000, help="rank 0 HTTP port (default: %(default)s)")
    p.add_argument("--grpc-port", type=int, default=8001, help="rank 0 gRPC port (default: %(default)s)")
    p.add_argument(
        "--metrics-port", type=int, default=8002, help="rank 0 metrics port (default: %(default)s)"
    )
    p.add_argument("--log-verbose", type=int, default=0, help="tritonserver --log-verbose level")
    p.add_argument(
        "--bind-address",
        metavar="ADDR",
        help="address rank 0 serves on, e.g. 127.0.0.1 (default: all addresses)",
    )
    p.add_argument(
        "--join-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds to wait for every remote host to answer through the agent (default: %(default)s)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the exact environment and mpirun command")
    p.set_defaults(func=run_launch)

    a = sub.add_parser(
        "agent",
        help="remote-agent helpers for multi-host groups",
        description="Helpers mpirun and worker pods use to run ranks on other hosts.",
        epilog=AGENT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    asub = a.add_subparsers(dest="agent_command", metavar="AGENT", required=True)
    k = asub.add_parser(
        "kubectl-exec",
        help="rsh agent: run a command in a pod with kubectl exec",
        description="Called by mpirun as <agent> <host> <command...>; runs the command in the host's pod.",
        epilog="example:\n  triton-llm agent kubectl-exec trt-0-1.trt.llm hostname",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    k.add_argument("--kubectl", default="kubectl", help="kubectl executable (default: %(default)s)")
    k.add_argument("--container", help="container to exec into")
    k.add_argument("--dry-run", action="store_true", help="print the kubectl command instead of running it")
    k.add_argument("host", help="pod DNS name: pod.subdomain.namespace[...]")
    k.add_argument("command", nargs=argparse.REMAINDER, help="command to run in the pod")
    k.set_defaults(func=run_kubectl_exec)
    w = asub.add_parser(
        "wait",
        help="keep a worker pod alive until SIGTERM (kubectl mode)",
        description="Sleep until SIGTERM or SIGINT, then exit 0; ranks arrive through kubectl exec.",
        epilog="example:\n  triton-llm agent wait",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    w.set_defaults(func=run_wait)
    s = asub.add_parser(
        "ssh",
        help="run sshd in the foreground for the ssh mode (worker pods)",
        description="Generate host keys if missing, install an authorized key, and exec sshd -D on a port.",
        epilog="example:\n  triton-llm agent ssh --port 2222 --authorized-keys /etc/ssh-key/id.pub",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--port", type=int, default=2222, help="port sshd listens on (default: %(default)s)")
    keys = s.add_mutually_exclusive_group()
    keys.add_argument("--authorized-keys", type=Path, help="public key file allowed to log in")
    keys.add_argument(
        "--private-key",
        type=Path,
        metavar="PATH",
        help="allow the public half of this private key (e.g. the group's Secret) to log in",
    )
    s.add_argument("--sshd", default="/usr/sbin/sshd", help="sshd executable (default: %(default)s)")
    s.add_argument("--dry-run", action="store_true", help="print the sshd command instead of running it")
    s.set_defaults(func=run_ssh)


def _is_key(ref: str) -> bool:
    from triton_llm.store.keys import looks_like_key

    return looks_like_key(ref) and not Path(ref).exists()


def _key_parallelism(args: argparse.Namespace) -> tuple[int, int]:
    """tp and pp of an engine key from the engine's config.json (--engine-dir or the repository)."""
    import json

    engine_dir = args.engine_dir or (args.model_repo / "tensorrt_llm" / "1" if args.model_repo else None)
    config = engine_dir / "config.json" if engine_dir else None
    if config is None or not config.is_file():
        raise UsageError(
            f"engine key {args.recipe}: no engine config.json found",
            hint="pass --engine-dir DIR (the engine of that key), or leave out --dry-run to restore the "
            "engine and render its repository, or pass a recipe name",
        )
    mapping = json.loads(config.read_text()).get("pretrained_config", {}).get("mapping", {})
    return int(mapping.get("tp_size", 1)), int(mapping.get("pp_size", 1))


def _hosts(args: argparse.Namespace, world_size: int) -> list:
    from triton_llm.launch import hosts

    if args.hostfile:
        return hosts.read_hostfile(args.hostfile)
    if args.lws:
        return hosts.lws_hosts(os.environ, world_size=world_size, slots_per_host=args.slots_per_host)
    if args.statefulset:
        return hosts.statefulset_hosts(
            args.statefulset,
            world_size=world_size,
            service=args.service,
            namespace=args.namespace or os.environ.get("POD_NAMESPACE") or "default",
            replicas=args.replicas,
            cluster_domain=args.cluster_domain,
            slots_per_host=args.slots_per_host,
        )
    return hosts.local_hosts(world_size)


def run_launch(args: argparse.Namespace) -> int:
    from triton_llm.launch.agents import make_agent
    from triton_llm.launch.plan import check_engine_ranks, plan_triton_group
    from triton_llm.launch.transport import (
        check_transport,
        load_transport,
        local_interfaces,
        parse_transport_flags,
    )
    from triton_llm.launch.tritonserver import TritonInstall, ensure_python_backend, find_triton, server_env

    settings = settings_from_args(args)
    if args.model_repo is not None and not args.model_repo.is_dir():
        raise NotFoundError(
            f"--model-repo {args.model_repo} does not exist or is not a directory",
            path=str(args.model_repo),
            hint="render one with `triton-llm repo render`, or leave out --model-repo to render it from "
            "the recipe or engine key",
        )
    prepared: PreparedRepository | None = None
    if not _is_key(args.recipe):
        from triton_llm.engine.pipeline import plan_recipe

        # The validation `engine build` runs (metadata only): a recipe it rejects is rejected here.
        recipe = plan_recipe(
            args.recipe,
            settings=settings,
            overrides=args.overrides,
            backend=args.backend,
            allow_unresolved=True,
        ).recipe
        tp, pp = recipe.parallelism.tp, recipe.parallelism.pp
    elif args.overrides:
        raise UsageError(f"--set cannot change a built engine ({args.recipe}); pass a recipe instead")
    elif args.model_repo is None and args.engine_dir is None and not args.dry_run:
        prepared = _prepare(args, settings)  # the restored engine says tp and pp
        tp, pp = prepared.engine.recipe.parallelism.tp, prepared.engine.recipe.parallelism.pp
    else:
        tp, pp = _key_parallelism(args)
    world_size = tp * pp
    if args.engine_dir is not None:
        check_engine_ranks(args.engine_dir, world_size)
    hosts = _hosts(args, world_size)
    agent = make_agent(
        args.agent,
        ssh_port=args.ssh_port,
        ssh_key=args.ssh_key,
        kubectl=args.kubectl,
        container=args.container,
    )
    if agent.ssh_key and not args.dry_run:  # the dry run names the key as given
        import dataclasses

        from triton_llm.launch.agents import usable_private_key

        agent = dataclasses.replace(agent, ssh_key=str(usable_private_key(Path(agent.ssh_key))))
    transport = load_transport(parse_transport_flags(args.transport))
    check_transport(transport, interfaces=local_interfaces(), multi_host=len(hosts) > 1)
    model_repo = _model_repo(args, settings, prepared)
    try:
        install = find_triton()
    except ServeError:
        if not args.dry_run:
            raise
        root = Path("/opt/tritonserver")
        install = TritonInstall(binary=root / "bin/tritonserver", backend_dir=root / "backends", root=root)
    import shutil

    # Absolute: Open MPI then starts the remote orted under the same prefix (see build_mpi_command).
    mpirun = shutil.which("mpirun") or "mpirun"
    plan = plan_triton_group(
        install,
        model_repo=model_repo,
        tp=tp,
        pp=pp,
        hosts=hosts,
        environ=server_env(install, base=os.environ),
        agent=agent,
        transport=transport,
        bind_address=args.bind_address,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        log_verbose=args.log_verbose,
        is_root=os.geteuid() == 0,
        local_cpus=os.cpu_count(),
        mpirun=mpirun,
    )
    if args.dry_run:
        print(plan.render())
        return 0
    from triton_llm.launch.runner import run_group

    ensure_python_backend(install)
    return run_group(plan, environ=os.environ, join_timeout=args.join_timeout)


def _prepare(args: argparse.Namespace, settings: Settings) -> PreparedRepository:
    """Build or restore the engine and render its repository: serve's own step."""
    from triton_llm.launch.prepare import prepare_repository

    prepared = prepare_repository(
        args.recipe, settings=settings, overrides=args.overrides, backend=args.backend
    )
    print(f"model repository: {prepared.repo}", file=sys.stderr, flush=True)
    return prepared


def _model_repo(args: argparse.Namespace, settings: Settings, prepared: PreparedRepository | None) -> Path:
    """--model-repo, else the repository rendered for the recipe or key (only named in a dry run)."""
    if args.model_repo is not None:
        return Path(args.model_repo).absolute()
    if prepared is not None:
        return prepared.repo
    if args.dry_run:
        fresh = settings.cache_dir / "repos" / "<fresh>" / "model_repository"
        print(
            f"model repository: rendered at launch into a fresh directory under {fresh.parent.parent}",
            file=sys.stderr,
        )
        return fresh
    return _prepare(args, settings).repo


def run_kubectl_exec(args: argparse.Namespace) -> int:
    from triton_llm.launch.agents import kubectl_exec_argv

    argv = kubectl_exec_argv(args.host, args.command, kubectl=args.kubectl, container=args.container)
    if args.dry_run:
        import shlex

        print(shlex.join(argv))
        return 0
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        raise LaunchError(f"cannot run {argv[0]}: {e}", hint="install kubectl or pass --kubectl PATH") from e
    return 1  # pragma: no cover - exec does not return


def run_wait(args: argparse.Namespace) -> int:
    import signal

    def _stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("agent wait: worker ready; ranks arrive through kubectl exec", file=sys.stderr, flush=True)
    while True:
        signal.pause()


def run_ssh(args: argparse.Namespace) -> int:
    import shlex
    import subprocess

    from triton_llm.launch.agents import sshd_argv

    argv = sshd_argv(port=args.port, sshd=args.sshd)
    if args.dry_run:
        print(shlex.join(argv))
        return 0
    public_key = None
    if args.authorized_keys is not None:
        if not args.authorized_keys.is_file():
            raise UsageError(
                f"--authorized-keys {args.authorized_keys} does not exist", path=str(args.authorized_keys)
            )
        public_key = args.authorized_keys.read_text()
    elif args.private_key is not None:
        from triton_llm.launch.agents import usable_private_key

        # ssh-keygen refuses the key under the same permission rule as ssh: derive from a usable copy.
        derive = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(usable_private_key(args.private_key))],
            capture_output=True,
            text=True,
            check=False,
        )
        if derive.returncode != 0:
            raise LaunchError(f"ssh-keygen -y -f {args.private_key} failed: {derive.stderr.strip()}")
        public_key = derive.stdout
    if public_key is not None:
        ssh_dir = Path.home() / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        target = ssh_dir / "authorized_keys"
        target.write_text(public_key)
        target.chmod(0o600)
    if subprocess.run(["ssh-keygen", "-A"], check=False).returncode != 0:
        raise LaunchError("ssh-keygen -A failed to create host keys")
    Path("/run/sshd").mkdir(exist_ok=True)
    try:
        os.execv(argv[0], argv)
    except OSError as e:
        raise LaunchError(f"cannot run {argv[0]}: {e}", hint="install openssh-server in the image") from e
    return 1  # pragma: no cover

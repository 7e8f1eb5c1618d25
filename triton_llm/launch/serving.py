"""``serve``'s orchestration: ensure the engine, write its versioned repository, run Triton.

One owner for what ``triton-llm serve``, ``repo update`` and the tests run. A single server
starts with explicit model control (``--model-control-mode=explicit --load-model=*``: every
model of the repository at its loaded versions), which is what lets ``repo update`` load a
new version beside the serving one and unload the old one. While it runs, the server is
recorded in ``<cache dir>/servers/<pid>.json`` (URLs, repository, world size), so ``repo
update`` and ``repo rollback`` find it with no arguments.

A tp*pp > 1 group runs under the launcher as before: rank 0 loads every model, the other
ranks load ``tensorrt_llm`` only, with their endpoints off. Loading a new version would need
every rank to load it together (the CPU runtime's ranks meet in MPI collectives as they load),
and only rank 0 has a control endpoint, so a group is never hot-swapped: it is replaced at
the replica level (``triton-llm rollout``); its record says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from triton_llm.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from triton_llm.launch.prepare import PreparedRepository
    from triton_llm.settings import Settings

EXPLICIT_CONTROL = ("--model-control-mode=explicit", "--load-model=*")


@dataclass(frozen=True)
class ServerRecord:
    """A running server started by ``triton-llm serve``: how ``repo update`` reaches it."""

    pid: int
    grpc_url: str
    http_url: str
    repo: str
    world_size: int


def servers_dir(settings: Settings) -> Path:
    """Where running servers are recorded."""
    return settings.cache_dir / "servers"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def record_server(settings: Settings, record: ServerRecord) -> Path:
    """Record a running server (removed by :func:`forget_server`)."""
    path = servers_dir(settings) / f"{record.pid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.incomplete")
    tmp.write_text(json.dumps(asdict(record), indent=1) + "\n")
    tmp.replace(path)
    return path


def forget_server(settings: Settings, pid: int) -> None:
    """Remove a server's record."""
    (servers_dir(settings) / f"{pid}.json").unlink(missing_ok=True)


def running_servers(settings: Settings) -> list[ServerRecord]:
    """Servers recorded by ``serve`` whose process is still alive (stale records are removed)."""
    out = []
    folder = servers_dir(settings)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = ServerRecord(**json.loads(path.read_text()))
        if _alive(record.pid):
            out.append(record)
        else:
            path.unlink(missing_ok=True)
    return out


def find_server(settings: Settings, *, url: str | None = None) -> ServerRecord | None:
    """The ``serve`` server at ``url`` (gRPC or HTTP), or the only one running when ``url`` is None.

    Returns None when ``url`` names no recorded server.

    Raises:
        NotFoundError: no ``url`` and no server running.
        UsageError: no ``url`` and several servers running.
    """
    servers = running_servers(settings)
    if url is not None:
        bare = url.split("://", 1)[-1].rstrip("/")
        return next((s for s in servers if bare in (s.grpc_url, s.http_url)), None)
    if not servers:
        raise NotFoundError(
            "no server started by `triton-llm serve` is running",
            path=str(servers_dir(settings)),
            hint="start one with `triton-llm serve`, or pass --url URL --repo DIR for another server",
        )
    if len(servers) > 1:
        urls = ", ".join(s.grpc_url for s in servers)
        raise UsageError(f"{len(servers)} servers are running ({urls}): pass --url to choose one")
    return servers[0]


def serve(
    prepared: PreparedRepository,
    *,
    settings: Settings,
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    host: str = "127.0.0.1",
    log_verbose: int = 0,
    ready_timeout: float = 600.0,
    on_ready: Callable[[Any], None] | None = None,
) -> int:
    """Run Triton on a prepared repository in the foreground until SIGINT/SIGTERM.

    Returns:
        The server's (or group's) exit code.

    Raises:
        ServeError: the server did not become ready.
    """
    parallelism = prepared.engine.recipe.parallelism
    if parallelism.world_size > 1:
        return _serve_group(
            prepared.repo,
            environ=settings.environ,
            tp=parallelism.tp,
            pp=parallelism.pp,
            ports=(http_port, grpc_port, metrics_port),
            host=host,
            log_verbose=log_verbose,
        )
    from triton_llm.launch.tritonserver import TritonServer, run_foreground

    server = TritonServer(
        prepared.repo,
        environ=settings.environ,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        host=host,
        log_verbose=log_verbose,
        extra=EXPLICIT_CONTROL,
    )

    def _ready(server: TritonServer) -> None:
        assert server.proc is not None  # ready implies started
        record_server(
            settings,
            ServerRecord(
                pid=server.proc.pid,
                grpc_url=server.grpc_url,
                http_url=server.http_url,
                repo=str(prepared.repo),
                world_size=1,
            ),
        )
        if on_ready is not None:
            on_ready(server)

    try:
        return run_foreground(server, ready_timeout=ready_timeout, on_ready=_ready)
    finally:
        if server.proc is not None:
            forget_server(settings, server.proc.pid)


def _serve_group(
    repo: Path,
    *,
    environ: Mapping[str, str],
    tp: int,
    pp: int,
    ports: Iterable[int],
    host: str,
    log_verbose: int,
) -> int:
    """tp*pp > 1: one tritonserver per rank under mpirun (the launcher's single call site)."""
    from triton_llm.launch.hosts import local_hosts
    from triton_llm.launch.plan import plan_triton_group
    from triton_llm.launch.runner import run_group
    from triton_llm.launch.tritonserver import ensure_python_backend, find_triton, server_env

    http_port, grpc_port, metrics_port = ports
    install = find_triton()
    ensure_python_backend(install)
    plan = plan_triton_group(
        install,
        model_repo=repo,
        tp=tp,
        pp=pp,
        hosts=local_hosts(tp * pp),
        environ=server_env(install, base=environ),
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        log_verbose=log_verbose,
        bind_address=host,
        is_root=os.geteuid() == 0,
    )
    return run_group(plan, environ=environ)

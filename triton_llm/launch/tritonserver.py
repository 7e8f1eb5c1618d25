"""Find the Triton server and make its python backend usable.

On GPU images ``tritonserver`` lives in ``/opt/tritonserver``. On CPU machines it comes from
the ``nvidia-pytriton`` wheel (Triton 2.51), whose python backend needs the per-Python
``triton_python_backend_stub`` copied next to ``libtriton_python.so``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triton_llm.errors import ServeError


@dataclass(frozen=True)
class TritonInstall:
    """Where a Triton server and its backends live."""

    binary: Path
    backend_dir: Path
    root: Path

    @property
    def python_stub(self) -> Path:
        return self.backend_dir / "python" / "triton_python_backend_stub"

    def library_path(self) -> list[str]:
        """Extra LD_LIBRARY_PATH entries the server needs (bundled shared libraries)."""
        libs = self.root.parent.parent / "nvidia_pytriton.libs"
        return [str(libs)] if libs.is_dir() else []


def find_triton(explicit: Path | None = None) -> TritonInstall:
    """Locate ``tritonserver``: an explicit path, ``/opt/tritonserver``, or nvidia-pytriton.

    Raises:
        ServeError: no server found; says how to install one.
    """
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(explicit)
    candidates.append(Path("/opt/tritonserver"))
    spec = importlib.util.find_spec("pytriton")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "tritonserver")
    for root in candidates:
        binary = root / "bin" / "tritonserver"
        if binary.is_file():
            return TritonInstall(binary=binary, backend_dir=root / "backends", root=root)
    raise ServeError(
        "tritonserver not found",
        hint="run inside a Triton container, or `make setup` to install nvidia-pytriton==0.7.0",
    )


def ensure_python_backend(install: TritonInstall, *, python_version: str | None = None) -> bool:
    """Copy the stub for this Python next to ``libtriton_python.so``; True if it changed.

    Raises:
        ServeError: the bundle has no stub for this Python version.
    """
    version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    if install.python_stub.is_file() and os.access(install.python_stub, os.X_OK):
        return False
    source = install.root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not source.is_file():
        raise ServeError(
            f"no python backend stub for Python {version} in {install.root}",
            path=str(source),
            hint="use a Python version the Triton bundle ships a stub for (3.8-3.13)",
        )
    shutil.copy2(source, install.python_stub)
    install.python_stub.chmod(0o755)
    return True


def tritonserver_argv(
    install: TritonInstall,
    *,
    model_repo: Path,
    rank: int = 0,
    world_size: int = 1,
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    log_verbose: int = 0,
    shm_prefix: str = "prefix",
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The ``tritonserver`` command line for one rank, in TensorRT-LLM's leader mode.

    Rank 0 serves HTTP, gRPC and metrics and loads every model. Ranks above 0 load only
    ``tensorrt_llm`` with all endpoints off. Each rank gets its own python-backend
    shared-memory prefix (``{shm_prefix}{rank}_``) so ranks on one host never collide in
    ``/dev/shm``; give concurrent groups on one host distinct ``shm_prefix`` values.
    """
    argv = [
        str(install.binary),
        f"--model-repository={model_repo}",
        f"--backend-directory={install.backend_dir}",
        "--disable-auto-complete-config",
        f"--backend-config=python,shm-region-prefix-name={shm_prefix}{rank}_",
        f"--log-verbose={log_verbose}",
    ]
    if rank == 0:
        argv += [f"--http-port={http_port}", f"--grpc-port={grpc_port}", f"--metrics-port={metrics_port}"]
        # Time-to-first-token histogram (nv_inference_first_response_histogram_ms) for the chart's dashboard:
        # Triton 2.52+ exports it only with this key (core c815a13); 2.51 ignores the key.
        argv.append("--metrics-config=histogram_latencies=true")
    else:
        argv += [
            "--model-control-mode=explicit",
            "--load-model=tensorrt_llm",
            "--allow-http=false",
            "--allow-grpc=false",
            "--allow-metrics=false",
        ]
    return argv + list(extra)


# --- single-server runner -------------------------------------------------------------------


def server_env(install: TritonInstall, *, base: Mapping[str, str]) -> dict[str, str]:
    """The environment tritonserver and its python stubs need to run this venv's code, on top of
    ``base`` (the environment the settings were resolved from, ``Settings.environ``).

    The stub links ``libpython3.X``; it must load the same Python as this interpreter
    (PYTHONHOME, and its lib dir on LD_LIBRARY_PATH), see this venv's packages and the
    project (PYTHONPATH), and find this venv first on PATH. Bundled shared libraries of the
    pytriton wheel go on LD_LIBRARY_PATH too.
    """
    import sysconfig

    env = dict(base)
    home = Path(sys.base_prefix)
    libs = [*install.library_path()]
    if (home / "lib").is_dir() and any((home / "lib").glob("libpython3*.so*")):
        libs.insert(0, str(home / "lib"))
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*libs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
    project = str(Path(__file__).resolve().parents[2])
    site = sysconfig.get_paths()["purelib"]
    env["PYTHONPATH"] = os.pathsep.join([project, site, *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONHOME"] = str(home)
    env.pop("PYTHONSTARTUP", None)
    # Idle OpenMP threads must sleep, not spin: ranks and stubs share few cores on CPU hosts.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def shm_leftovers(prefix: str) -> list[Path]:
    """Python-backend shared-memory regions under /dev/shm that start with ``prefix``."""
    shm = Path("/dev/shm")
    return sorted(shm.glob(f"{prefix}*")) if shm.is_dir() else []


class TritonServer:
    """One tritonserver process on 127.0.0.1 with free (or given) ports.

    ``start()`` launches it in its own process group; ``wait_ready()`` polls
    ``/v2/health/ready``; ``stop()`` sends SIGTERM, then SIGKILL to the whole group after
    a grace period, so no server or python stub survives, and removes the group's
    ``/dev/shm`` regions (each server has its own ``shm_prefix``).
    """

    def __init__(
        self,
        model_repo: Path,
        *,
        environ: Mapping[str, str],
        install: TritonInstall | None = None,
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        log_path: Path | None = None,
        log_verbose: int = 0,
        host: str = "127.0.0.1",
        extra: tuple[str, ...] = (),
    ) -> None:
        import secrets

        self.model_repo = Path(model_repo)
        self.environ = environ
        self.install = install or find_triton()
        self.host = host
        self.http_port = http_port or free_port(host)
        self.grpc_port = grpc_port or free_port(host)
        self.metrics_port = metrics_port or free_port(host)
        self.log_path = log_path
        self.log_verbose = log_verbose
        self.shm_prefix = f"tllm{secrets.token_hex(4)}_"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def argv(self) -> list[str]:
        """The server's command line (tritonserver_argv, bound to ``host``)."""
        return tritonserver_argv(
            self.install,
            model_repo=self.model_repo,
            http_port=self.http_port,
            grpc_port=self.grpc_port,
            metrics_port=self.metrics_port,
            log_verbose=self.log_verbose,
            shm_prefix=self.shm_prefix,
            extra=(
                f"--http-address={self.host}",
                f"--grpc-address={self.host}",
                f"--metrics-address={self.host}",
                "--exit-timeout-secs=10",
                *self.extra,
            ),
        )

    def start(self) -> TritonServer:
        """Launch the server (does not wait for readiness)."""
        ensure_python_backend(self.install)
        out: Any = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.argv(),
                env=server_env(self.install, base=self.environ),
                stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
                start_new_session=True,
            )
        finally:
            if out is not None:
                out.close()
        return self

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server log (empty when logging to the terminal)."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def is_ready(self) -> bool:
        """True when /v2/health/ready answers 200."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Block until the server is ready.

        Raises:
            ServeError: the server exited or was not ready within ``timeout``; has the log tail.
        """
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                self.stop()
                raise ServeError(
                    f"tritonserver exited with code {code} before it was ready:\n{self.log_tail()}"
                )
            if self.is_ready():
                return
            time.sleep(0.25)
        self.stop()
        raise ServeError(f"tritonserver was not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def _group_alive(self, pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self, timeout: float = 30.0) -> int | None:
        """Stop the server and every process of its group; remove its /dev/shm regions.

        Returns:
            The server's exit code (None if it was never started).
        """
        import signal
        import time

        if self.proc is None:
            return None
        pgid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                self.proc.wait()
        deadline = time.monotonic() + 10
        while self._group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
            while self._group_alive(pgid) and time.monotonic() < deadline + 5:
                time.sleep(0.1)
        for path in shm_leftovers(self.shm_prefix):
            path.unlink(missing_ok=True)
        return self.proc.returncode

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_foreground(server: TritonServer, *, ready_timeout: float = 300.0, on_ready: Any = None) -> int:
    """Run ``server`` until it exits or SIGINT/SIGTERM arrives; forward the signal; clean up.

    Args:
        server: a server not yet started.
        ready_timeout: seconds to wait for readiness.
        on_ready: optional callback run once the server is ready (e.g. print the URLs).

    Returns:
        The server's exit code (0 after a clean stop on a signal).

    Raises:
        ServeError: the server did not become ready.
    """
    import signal
    import threading

    stop_requested = threading.Event()

    def _forward(signum: int, _frame: Any) -> None:
        stop_requested.set()
        if server.proc is not None and server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, _forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        server.wait_ready(ready_timeout)
        if on_ready is not None:
            on_ready(server)
        assert server.proc is not None  # started above
        while server.proc.poll() is None:
            try:
                server.proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
        code = server.stop()
        return 0 if stop_requested.is_set() and code in (0, -signal.SIGTERM) else int(code or 0)
    finally:
        server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)


def describe_triton(install: TritonInstall, *, environ: Mapping[str, str]) -> dict[str, Any]:
    """What ``triton-llm doctor`` reports about a Triton install.

    Versions come from ``TRITON_SERVER_VERSION`` and ``NVIDIA_TRITON_SERVER_VERSION``, which
    NVIDIA's Triton containers set, and from the ``nvidia-pytriton`` distribution otherwise.
    """
    import importlib.metadata

    try:
        pytriton: str | None = importlib.metadata.version("nvidia-pytriton")
    except importlib.metadata.PackageNotFoundError:
        pytriton = None
    backends = install.backend_dir
    return {
        "binary": str(install.binary),
        "backends": sorted(p.name for p in backends.iterdir() if p.is_dir()) if backends.is_dir() else [],
        "python_stub": install.python_stub.is_file() and os.access(install.python_stub, os.X_OK),
        "server_version": environ.get("TRITON_SERVER_VERSION"),
        "container_version": environ.get("NVIDIA_TRITON_SERVER_VERSION"),
        "nvidia_pytriton": pytriton,
    }

"""Find the Triton server and make its python backend usable.

On GPU images ``tritonserver`` lives in ``/opt/tritonserver``. On CPU machines it comes from
the ``nvidia-pytriton`` wheel (Triton 2.51), whose python backend needs the per-Python
``triton_python_backend_stub`` copied next to ``libtriton_python.so``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

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
    else:
        argv += [
            "--model-control-mode=explicit",
            "--load-model=tensorrt_llm",
            "--allow-http=false",
            "--allow-grpc=false",
            "--allow-metrics=false",
        ]
    return argv + list(extra)

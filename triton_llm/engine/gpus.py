"""GPU SKUs the recipes may target, and exact detection of this machine's GPU.

Engine cache keys include the SKU and SM because a TensorRT engine only runs on the
architecture it was built for. Each SKU is one product, named exactly as the NVIDIA driver
names it (what ``nvidia-smi --query-gpu=name`` prints). Detection looks the name up in this
table, never by substring ("NVIDIA L40S" is not an L4, "NVIDIA GH200 480GB" is not an H200),
and cross-checks the compute capability nvidia-smi reports against the SKU's SM. A GPU that
is not in the table is an error that names it and the table.

Sources of the product names (facts only):

* NVIDIA/open-gpu-kernel-modules ``README.md`` "Compatible GPUs" table, release 595.45.04
  (commit df1c9a3de2be4b130f4fc7680f7198193d8ac6ad): every SKU here except V100.
* NVIDIA/nvidia-installer ``misc.c`` (590.48.01, commit 00aaa9f9b4677d606a1897c5554d9c93e5870980,
  the device-id comments of ``nvpci_dev_is_vgpu_gsp``): "Tesla V100-SXM2-32GB".

``product_label`` is the ``nvidia.com/gpu.product`` node label GPU feature discovery derives
from the same name (NVIDIA/k8s-device-plugin ``internal/lm/resource.go`` ``sanitise``, commit
aaccdfd2dc80554d3b67474d027923ccde39cb50: drop characters outside ``[A-Za-z0-9-_. ]``, then join
the blank-separated fields with ``-``). The Helm chart uses it for node affinity.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from triton_llm.errors import IncompatibleError, RecipeError

NVIDIA_SMI_QUERY = ("nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader")


@dataclass(frozen=True)
class GpuSku:
    """One GPU product: its short name, SM version, exact driver product name and memory."""

    name: str
    sm: int
    product: str
    memory_gib: int

    @property
    def product_label(self) -> str:
        """The ``nvidia.com/gpu.product`` node label of this product."""
        return "-".join(re.sub(r"[^A-Za-z0-9\-_. ]", "", self.product).split())


_SKUS = [
    GpuSku("V100", 70, "Tesla V100-SXM2-32GB", 32),
    GpuSku("T4", 75, "Tesla T4", 16),
    GpuSku("A10G", 86, "NVIDIA A10G", 24),
    GpuSku("A100-40GB", 80, "NVIDIA A100-SXM4-40GB", 40),
    GpuSku("A100-80GB", 80, "NVIDIA A100-SXM4-80GB", 80),
    GpuSku("L4", 89, "NVIDIA L4", 24),
    GpuSku("L40S", 89, "NVIDIA L40S", 48),
    GpuSku("H100-PCIE", 90, "NVIDIA H100 PCIe", 80),
    GpuSku("H100-SXM", 90, "NVIDIA H100 80GB HBM3", 80),
    GpuSku("H200", 90, "NVIDIA H200", 141),
    GpuSku("GH200", 90, "NVIDIA GH200 480GB", 96),
    GpuSku("B200", 100, "NVIDIA B200", 180),
    GpuSku("GB200", 100, "NVIDIA GB200", 186),
]

GPU_SKUS: dict[str, GpuSku] = {s.name: s for s in _SKUS}
_BY_PRODUCT: dict[str, GpuSku] = {s.product: s for s in _SKUS}


def gpu_sku(name: str, *, field: str = "target.gpus") -> GpuSku:
    """Look up a SKU by name (case-insensitive).

    Raises:
        RecipeError: unknown name; the message lists the known ones.
    """
    for sku in _SKUS:
        if sku.name.lower() == name.lower():
            return sku
    raise RecipeError(
        f"{field}: unknown GPU {name!r} (rule: one of {', '.join(GPU_SKUS)})",
        field=field,
        value=name,
    )


def _table() -> str:
    return "; ".join(f"{s.product!r} -> {s.name} (SM {s.sm})" for s in _SKUS)


def sku_for_product(product: str, compute_cap: str) -> GpuSku:
    """The SKU of one ``nvidia-smi`` GPU: exact product name, compute capability cross-checked.

    Args:
        product: the ``name`` field, e.g. ``NVIDIA H100 80GB HBM3``.
        compute_cap: the ``compute_cap`` field, e.g. ``9.0``.

    Raises:
        IncompatibleError: the product is not in the table, or its compute capability is not
            the SKU's SM.
    """
    sku = _BY_PRODUCT.get(product.strip())
    if sku is None:
        raise IncompatibleError(
            f"unknown GPU {product.strip()!r}: not in triton_llm/engine/gpus.py (known: {_table()})",
            value=product.strip(),
            hint="add the exact nvidia-smi product name to the SKU table, with its source",
        )
    major, _, minor = compute_cap.strip().partition(".")
    if not (major.isdigit() and minor.isdigit()) or int(major) * 10 + int(minor) != sku.sm:
        raise IncompatibleError(
            f"GPU {sku.product!r} reports compute capability {compute_cap.strip()!r}, "
            f"but {sku.name} is SM {sku.sm} in triton_llm/engine/gpus.py",
            value=compute_cap.strip(),
        )
    return sku


def parse_nvidia_smi(output: str) -> GpuSku | None:
    """The SKU of the GPUs in ``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader`` output.

    Returns:
        The SKU, or None when the output lists no GPU.

    Raises:
        IncompatibleError: an unknown GPU, a compute capability that contradicts the table, or
            GPUs of different SKUs on one machine.
    """
    skus: list[GpuSku] = []
    for line in filter(str.strip, output.splitlines()):
        product, sep, cap = line.rpartition(",")
        if not sep:
            raise IncompatibleError(f"unexpected nvidia-smi output line {line!r} (want 'name, compute_cap')")
        skus.append(sku_for_product(product, cap))
    names = sorted({s.name for s in skus})
    if len(names) > 1:
        raise IncompatibleError(
            f"this machine mixes GPUs {', '.join(names)}: an engine is built for one SKU",
            hint="restrict the visible GPUs (CUDA_VISIBLE_DEVICES does not affect nvidia-smi; "
            "use the container runtime's GPU selection)",
        )
    return skus[0] if skus else None


def local_gpu() -> GpuSku | None:
    """The SKU of this machine's GPUs, from ``nvidia-smi`` on PATH (None without nvidia-smi).

    Raises:
        IncompatibleError: nvidia-smi fails, or see :func:`parse_nvidia_smi`.
    """
    if shutil.which(NVIDIA_SMI_QUERY[0]) is None:
        return None
    proc = subprocess.run(list(NVIDIA_SMI_QUERY), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise IncompatibleError(
            f"`{' '.join(NVIDIA_SMI_QUERY)}` failed (exit {proc.returncode}): "
            f"{detail[0] if detail else 'no output'}",
            hint="check the NVIDIA driver: nvidia-smi must list the GPUs with their compute_cap",
        )
    return parse_nvidia_smi(proc.stdout)

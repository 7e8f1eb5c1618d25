"""GPU SKUs the recipes may target, with their compute capability (SM).

Engine cache keys include the SKU and SM because a TensorRT engine only runs on the
architecture it was built for. ``nvidia.com/gpu.product`` is the label the NVIDIA GPU
feature discovery puts on nodes; the Helm chart uses it for node affinity.
"""

from __future__ import annotations

from dataclasses import dataclass

from triton_llm.errors import RecipeError


@dataclass(frozen=True)
class GpuSku:
    """One GPU model: its short name, SM version and node label value."""

    name: str
    sm: int
    product_label: str
    memory_gib: int


_SKUS = [
    GpuSku("V100", 70, "Tesla-V100-SXM2-32GB", 32),
    GpuSku("T4", 75, "Tesla-T4", 16),
    GpuSku("A10G", 86, "NVIDIA-A10G", 24),
    GpuSku("A100-40GB", 80, "NVIDIA-A100-SXM4-40GB", 40),
    GpuSku("A100-80GB", 80, "NVIDIA-A100-SXM4-80GB", 80),
    GpuSku("L4", 89, "NVIDIA-L4", 24),
    GpuSku("L40S", 89, "NVIDIA-L40S", 48),
    GpuSku("H100-PCIE", 90, "NVIDIA-H100-PCIe", 80),
    GpuSku("H100-SXM", 90, "NVIDIA-H100-80GB-HBM3", 80),
    GpuSku("H200", 90, "NVIDIA-H200", 141),
    GpuSku("GH200", 90, "NVIDIA-GH200-480GB", 96),
    GpuSku("B200", 100, "NVIDIA-B200", 180),
    GpuSku("GB200", 100, "NVIDIA-GB200", 186),
]

GPU_SKUS: dict[str, GpuSku] = {s.name: s for s in _SKUS}


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

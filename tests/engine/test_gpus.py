"""Exact GPU detection: a fake ``nvidia-smi`` on PATH answers as the real one does.

The product strings are the driver's own names (see the sources in triton_llm/engine/gpus.py);
each near miss below is a real product that must not be taken for a SKU it resembles.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_llm.engine.gpus import GPU_SKUS, NVIDIA_SMI_QUERY, local_gpu
from triton_llm.errors import IncompatibleError

# (nvidia-smi name, compute_cap) -> SKU, written out rather than derived from the table.
REAL_PRODUCTS = [
    ("Tesla V100-SXM2-32GB", "7.0", "V100"),
    ("Tesla T4", "7.5", "T4"),
    ("NVIDIA A10G", "8.6", "A10G"),
    ("NVIDIA A100-SXM4-40GB", "8.0", "A100-40GB"),
    ("NVIDIA A100-SXM4-80GB", "8.0", "A100-80GB"),
    ("NVIDIA L4", "8.9", "L4"),
    ("NVIDIA L40S", "8.9", "L40S"),
    ("NVIDIA H100 PCIe", "9.0", "H100-PCIE"),
    ("NVIDIA H100 80GB HBM3", "9.0", "H100-SXM"),
    ("NVIDIA H200", "9.0", "H200"),
    ("NVIDIA GH200 480GB", "9.0", "GH200"),
    ("NVIDIA B200", "10.0", "B200"),
    ("NVIDIA GB200", "10.0", "GB200"),
]

# Real products that are not in the table: each is an error, never its look-alike.
NEAR_MISSES = [
    ("NVIDIA L40", "8.9"),  # not L40S, not L4
    ("NVIDIA A10", "8.6"),  # not A10G
    ("NVIDIA A100 80GB PCIe", "8.0"),  # not the SXM4 A100-80GB
    ("NVIDIA A100-PCIE-40GB", "8.0"),
    ("NVIDIA H100 NVL", "9.0"),
    ("NVIDIA H100", "9.0"),
    ("NVIDIA H200 NVL", "9.0"),  # not H200 (SXM)
    ("NVIDIA GH200 120GB", "9.0"),
    ("NVIDIA GH200 144G HBM3e", "9.0"),
    ("NVIDIA GB300", "10.3"),  # not GB200
    ("NVIDIA B300 SXM6 AC", "10.3"),
    ("Tesla V100-SXM2-16GB", "7.0"),
    ("Tesla V100-PCIE-32GB", "7.0"),
]


@pytest.fixture
def fake_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Put an ``nvidia-smi`` on PATH that prints the given lines for the exact query we send."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nvidia-smi"

    def install(lines: list[str], *, exit_code: int = 0) -> None:
        body = "\n".join(lines)
        script.write_text(
            "#!/bin/sh\n"
            f'if [ "$*" != "{" ".join(NVIDIA_SMI_QUERY[1:])}" ]; then echo "bad query: $*" >&2; exit 9; fi\n'
            f"cat <<'EOF'\n{body}\nEOF\nexit {exit_code}\n"
        )
        script.chmod(0o755)

    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return install


@pytest.mark.parametrize(("product", "cap", "sku"), REAL_PRODUCTS)
def test_real_product_names_map_to_exactly_their_sku(fake_smi, product: str, cap: str, sku: str) -> None:
    fake_smi([f"{product}, {cap}", f"{product}, {cap}"])  # two GPUs of one SKU
    assert local_gpu() == GPU_SKUS[sku]


def test_every_sku_in_the_table_is_detected_from_its_product_name(fake_smi) -> None:
    assert {sku for _, _, sku in REAL_PRODUCTS} == set(GPU_SKUS)
    for sku in GPU_SKUS.values():
        fake_smi([f"{sku.product}, {sku.sm // 10}.{sku.sm % 10}"])
        assert local_gpu() == sku


@pytest.mark.parametrize(("product", "cap"), NEAR_MISSES)
def test_an_unknown_gpu_is_an_error_naming_it_and_the_table(fake_smi, product: str, cap: str) -> None:
    fake_smi([f"{product}, {cap}"])
    with pytest.raises(IncompatibleError) as err:
        local_gpu()
    message = str(err.value)
    assert f"unknown GPU {product!r}" in message
    assert "triton_llm/engine/gpus.py" in message and "'NVIDIA L40S' -> L40S (SM 89)" in message


def test_compute_capability_is_cross_checked(fake_smi) -> None:
    fake_smi(["NVIDIA L40S, 9.0"])
    with pytest.raises(IncompatibleError, match=r"'NVIDIA L40S' reports compute capability '9.0'.*SM 89"):
        local_gpu()


def test_mixed_gpus_are_an_error(fake_smi) -> None:
    fake_smi(["NVIDIA H100 80GB HBM3, 9.0", "NVIDIA H200, 9.0"])
    with pytest.raises(IncompatibleError, match="mixes GPUs H100-SXM, H200"):
        local_gpu()


def test_a_failing_nvidia_smi_is_an_error_not_no_gpu(fake_smi) -> None:
    fake_smi(["NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."], exit_code=9)
    with pytest.raises(IncompatibleError, match="failed \\(exit 9\\): NVIDIA-SMI has failed"):
        local_gpu()


def test_no_nvidia_smi_means_no_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert local_gpu() is None


def test_product_labels_follow_gpu_feature_discovery() -> None:
    assert GPU_SKUS["L40S"].product_label == "NVIDIA-L40S"
    assert GPU_SKUS["H100-SXM"].product_label == "NVIDIA-H100-80GB-HBM3"
    assert GPU_SKUS["GH200"].product_label == "NVIDIA-GH200-480GB"
    assert GPU_SKUS["V100"].product_label == "Tesla-V100-SXM2-32GB"

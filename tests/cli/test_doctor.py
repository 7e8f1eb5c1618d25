"""``triton-llm doctor --json``: the detected SKU, the Triton install and the toolchain, from a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _doctor(path: str, tmp_path: Path, *, pythonpath: Path | None = None) -> tuple[int, dict]:
    env = {"PATH": path, "HOME": str(tmp_path), "TRITON_LLM_CONFIG": str(tmp_path / "none.yaml")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    proc = subprocess.run(
        [sys.executable, "-m", "triton_llm.cli", "doctor", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _trtllm_site(root: Path) -> Path:
    """Distribution metadata of TensorRT-LLM 1.2.1, as pip leaves it on a GPU machine."""
    info = root / "tensorrt_llm-1.2.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tensorrt_llm\nVersion: 1.2.1\n")
    return root


@pytest.fixture
def smi_dir(tmp_path: Path):
    """A directory whose ``nvidia-smi`` prints the given line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    def answer(line: str) -> str:
        script = bin_dir / "nvidia-smi"
        script.write_text(f"#!/bin/sh\necho '{line}'\n")
        script.chmod(0o755)
        return f"{bin_dir}:/usr/bin:/bin"

    return answer


def test_reports_the_exact_sku(smi_dir, tmp_path: Path) -> None:
    code, report = _doctor(smi_dir("NVIDIA L40S, 8.9"), tmp_path)
    assert report["gpu"] == "L40S" and report["problems"] == [] and code == 0


def test_an_unknown_gpu_is_null_and_a_warning_without_tensorrt_llm(smi_dir, tmp_path: Path) -> None:
    code, report = _doctor(smi_dir("NVIDIA GH200 144G HBM3e, 9.0"), tmp_path)
    assert report["gpu"] is None and code == 0 and report["problems"] == []
    assert any("unknown GPU 'NVIDIA GH200 144G HBM3e'" in w for w in report["warnings"])


def test_an_unknown_gpu_is_a_problem_where_tensorrt_llm_is_installed(smi_dir, tmp_path: Path) -> None:
    site = _trtllm_site(tmp_path / "site")
    code, report = _doctor(smi_dir("NVIDIA GH200 144G HBM3e, 9.0"), tmp_path, pythonpath=site)
    assert report["gpu"] is None and code == 1
    assert any("unknown GPU 'NVIDIA GH200 144G HBM3e'" in p for p in report["problems"])
    assert "toolchain tensorrt: running not found, record 10.14.1.48" in report["problems"]


def test_without_a_gpu_reports_triton_and_the_toolchain(tmp_path: Path) -> None:
    code, report = _doctor("/usr/bin:/bin", tmp_path)
    assert report["gpu"] is None
    triton = report["triton"]
    assert Path(triton["binary"]).name == "tritonserver" and "python" in triton["backends"]
    assert triton["nvidia_pytriton"] == "0.7.0" and triton["python_stub"] is True
    toolchain = report["toolchain"]
    assert toolchain["record"] == {
        "tensorrt_llm": "1.2.1",
        "tensorrt": "10.14.1.48",
        "cuda": "13.0",
        "image": "nvcr.io/nvidia/tritonserver:26.07-trtllm-python-py3",
    }
    assert toolchain["running"]["tensorrt_llm"] is None
    assert code == 0  # no TensorRT-LLM here: the record is informational, not a problem

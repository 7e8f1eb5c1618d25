"""The GPU image runs exactly the CPU image's steps: every instruction after FROM is the same, only ARG
defaults differ. So building build/Dockerfile.cpu here (the deploy twin does) exercises
build/Dockerfile.trtllm.
"""

from __future__ import annotations

import re

from tests.deploy._twin import REPO_ROOT, podman


def _instructions_after_from(name: str) -> list[str]:
    text = (REPO_ROOT / "build" / name).read_text()
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    start = next(i for i, line in enumerate(lines) if line.startswith("FROM ")) + 1
    # An ARG's default is the only allowed difference.
    return [re.sub(r"^ARG (\w+)=.*$", r"ARG \1=...", line) for line in lines[start:]]


def test_gpu_image_steps_after_from_are_the_cpu_image_steps() -> None:
    cpu, gpu = _instructions_after_from("Dockerfile.cpu"), _instructions_after_from("Dockerfile.trtllm")
    assert len(cpu) > 10
    assert gpu == cpu


def test_cpu_image_pins_the_cpu_torch_build_and_no_download_urls() -> None:
    text = (REPO_ROOT / "build" / "Dockerfile.cpu").read_text()
    assert 'ARG TORCH_REQUIREMENT="torch==2.13.0+cpu"' in text
    assert "curl" not in text and "dl.k8s.io" not in text


def test_the_python_backend_stub_finds_every_library_in_the_cpu_image(cpu_image: str) -> None:
    # Debian's python3 links libpython statically; the Triton stub needs libpython3.11.so.1.0.
    script = (
        "stub=$(triton-llm doctor | sed -n 's/^tritonserver: //p' | sed 's/ (backends: .*)$//' "
        "| sed 's#/bin/tritonserver$##')"
        '/backends/python/triton_python_backend_stub; ldd "$stub"'
    )
    proc = podman("run", "--rm", cpu_image, "sh", "-c", script, timeout=300)
    assert "libpython3.11.so.1.0 =>" in proc.stdout
    assert "not found" not in proc.stdout, proc.stdout

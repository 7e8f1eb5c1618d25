"""`triton-llm demo` (what `make demo` runs), against the session's engine cache."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_demo_streams_a_coherent_answer_and_stops(cpu_engine, cpu_engine_cache):
    env = {**os.environ, "TRITON_LLM_CACHE_DIR": str(cpu_engine_cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "triton_llm.cli", "demo", "--max-tokens", "48"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    answer = out.stdout.split("machine learning.\n", 1)[1].split("TTFT", 1)[0]
    assert "GPU" in answer or "graphics" in answer.lower(), answer
    assert re.search(r"TTFT \d+ ms \| TPOT [\d.]+ ms \| \d+ tokens \| [\d.]+ tokens/s", out.stdout)
    assert out.stdout.rstrip().endswith("== server stopped")


def test_repo_render_cli_writes_a_fresh_repository(cpu_engine, cpu_engine_cache, tmp_path):
    env = {**os.environ, "TRITON_LLM_CACHE_DIR": str(cpu_engine_cache), "HF_HUB_OFFLINE": "1"}
    argv = [
        sys.executable,
        "-m",
        "triton_llm.cli",
        "repo",
        "render",
        cpu_engine.key[:12],
        "--out",
        str(tmp_path / "r"),
    ]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr
    config = (tmp_path / "r" / "tensorrt_llm" / "config.pbtxt").read_text()
    assert (
        f'string_value: "{cpu_engine.checkpoint_dir.resolve()}"' in config and 'backend: "python"' in config
    )
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 2 and "exists and is not empty" in again.stderr and "--force" in again.stderr
    forced = subprocess.run([*argv, "--force"], capture_output=True, text=True, timeout=300, env=env)
    assert forced.returncode == 0 and (tmp_path / "r" / "tensorrt_llm" / "config.pbtxt").read_text() == config

"""A cache hit decides fast: the work the real CLI does when every stage is already stored.

Each case runs ``triton-llm`` in a fresh process (``_trace_cli.py``) against the session's store
of the default recipe, and checks what it imported and listed, not how long it took (that is
measured in ``bench/cache_hit.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.s3 import free_port

TRACE = Path(__file__).with_name("_trace_cli.py")
# Heavy packages a cache hit has no use for: torch (a version string is metadata), transformers and
# gguf (the builtin GGUF's shape is read from its first kilobytes), safetensors (no weights).
NEVER_ON_A_HIT = ("torch", "transformers", "gguf", "safetensors")
HUB_CLIENT = ("huggingface_hub.file_download", "huggingface_hub.hf_api", "httpx2")
PLANNING = (
    "triton_llm.engine.plan",
    "triton_llm.engine.fetch",
    "triton_llm.engine.validate",
    "triton_llm.engine.model_info",
    "triton_llm.engine.backends",
)


def trace(tmp_path: Path, cache: Path, *args: str, stop_at_popen: bool = False, **env: str) -> dict[str, Any]:
    out = tmp_path / "trace.json"
    base = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    proc = subprocess.run(
        [sys.executable, str(TRACE), str(out), *(["--stop-at-popen"] if stop_at_popen else []), "--", *args],
        env={**base, "TRITON_LLM_CACHE_DIR": str(cache), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.is_file(), proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(out.read_text())
    result["stdout"], result["stderr"] = proc.stdout, proc.stderr
    return result


def loaded(result: dict[str, Any], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in result["modules"] if any(m == p or m.startswith(p + ".") for p in prefixes)]


def store_listings(result: dict[str, Any], cache: Path) -> list[str]:
    store = str(cache / "store")
    return [d for d in result["listed"] if d == store or d.startswith(store + os.sep)]


def test_offline_cache_hit_imports_no_torch_gguf_or_hub_client_and_lists_nothing(
    cpu_engine: Any, cpu_engine_cache: Path, tmp_path: Path
) -> None:
    hit = trace(tmp_path, cpu_engine_cache, "engine", "build", "smollm2-135m", HF_HUB_OFFLINE="1")
    assert hit["code"] == 0, hit["stderr"]
    assert f"engine: {cpu_engine.key} (cache hit)" in hit["stdout"]
    assert "checkpoint: " in hit["stdout"] and "(built)" not in hit["stdout"]
    assert loaded(hit, NEVER_ON_A_HIT + HUB_CLIENT) == []
    assert store_listings(hit, cpu_engine_cache) == []


def test_unreachable_hub_cache_hit_asks_the_hub_once_and_still_skips_the_heavy_work(
    cpu_engine: Any, cpu_engine_cache: Path, tmp_path: Path
) -> None:
    hit = trace(
        tmp_path,
        cpu_engine_cache,
        "engine",
        "build",
        "smollm2-135m",
        HF_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        HF_HOME=str(tmp_path / "hf"),
    )
    assert hit["code"] == 0, hit["stderr"]
    assert "hub unreachable" in hit["stderr"]
    assert f"engine: {cpu_engine.key} (cache hit)" in hit["stdout"]
    assert loaded(hit, NEVER_ON_A_HIT) == []
    assert store_listings(hit, cpu_engine_cache) == []


@pytest.mark.parametrize("ref", ["key", "prefix"])
def test_serve_by_engine_key_plans_nothing(
    cpu_engine: Any, cpu_engine_cache: Path, tmp_path: Path, ref: str
) -> None:
    key = cpu_engine.key if ref == "key" else cpu_engine.key[:12]
    served = trace(
        tmp_path,
        cpu_engine_cache,
        "serve",
        key,
        "--repo-dir",
        str(tmp_path / "repo"),
        "--openai-port",
        "0",  # the frontend sidecar would be the first process started
        stop_at_popen=True,
        HF_HUB_OFFLINE="1",
    )
    assert served["popen"] and Path(served["popen"][0]).name == "tritonserver", served["stderr"]
    assert (tmp_path / "repo" / "tensorrt_llm" / "config.pbtxt").is_file()
    assert loaded(served, PLANNING + NEVER_ON_A_HIT + HUB_CLIENT) == []

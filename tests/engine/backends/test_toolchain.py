"""trtllm keys come from one declared toolchain record; a builder is held to that record.

The builder is simulated honestly, from outside our code: fake distribution metadata for
``tensorrt_llm``/``tensorrt`` on PYTHONPATH (what pip leaves in site-packages), the environment
variables NVIDIA's Triton containers set, and stand-ins for the external tools on PATH
(``nvidia-smi`` reporting an H100, ``trtllm-build`` writing an engine directory). The checkpoint
entry is seeded in the store under the dry-run's checkpoint key, so the real pipeline goes
straight to the engine stage and publishes under whatever key it computes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from triton_llm.engine.backends.trtllm_facts import load_facts
from triton_llm.settings import load_settings
from triton_llm.store import open_store, publish, read_manifest

LLAMA_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_hidden_layers": 32,
    "max_position_embeddings": 131072,
    "vocab_size": 128256,
    "torch_dtype": "bfloat16",
}
BUILDER_ENV = {"CUDA_VERSION": "13.0.2.006", "NVIDIA_TRITON_SERVER_VERSION": "26.07"}
FAKE_TRTLLM_BUILD = """#!/bin/sh
out=""
while [ $# -gt 0 ]; do [ "$1" = "--output_dir" ] && out="$2"; shift; done
mkdir -p "$out"
echo '{"pretrained_config": {}, "build_config": {"max_batch_size": 64}}' > "$out/config.json"
echo engine > "$out/rank0.engine"
"""


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "triton_llm.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def _keys(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^stage (checkpoint|engine)\b.* key ([0-9a-f]{64})$", stdout, flags=re.M))


def _fake_site(root: Path, versions: dict[str, str]) -> Path:
    for name, version in versions.items():
        info = root / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "RECORD").write_text("")
    (root / "tensorrt_llm").mkdir(exist_ok=True)  # the package itself is importable on a builder
    (root / "tensorrt_llm" / "__init__.py").write_text("")
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, object]:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(LLAMA_8B_CONFIG))
    (model / "tokenizer.json").write_text("{}")
    recipe = tmp_path / "llama-8b-local.yaml"
    recipe.write_text(
        "name: llama-8b-local\n"
        f"model: {{local: {model}}}\n"
        "dtype: bfloat16\n"
        "quantization: {format: fp8, kv_cache_dtype: fp8}\n"
        "target: {gpus: [H100-SXM]}\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 9.0'\n")
    (bin_dir / "trtllm-build").write_text(FAKE_TRTLLM_BUILD)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "TRITON_LLM_CONFIG": str(tmp_path / "no-config.yaml"),
        "TRITON_LLM_STORE": f"file://{tmp_path / 'store'}",
        "HF_HUB_OFFLINE": "1",
    }
    return {"recipe": str(recipe), "bin": bin_dir, "env": env, "tmp": tmp_path}


def _dry_run_keys(ws: dict[str, object]) -> dict[str, str]:
    dry = _cli("engine", "build", str(ws["recipe"]), "--backend", "trtllm", "--dry-run", env=ws["env"])  # type: ignore[arg-type]
    assert dry.returncode == 0, dry.stderr
    keys = _keys(dry.stdout)
    assert set(keys) == {"checkpoint", "engine"}, dry.stdout
    return keys


def _seed_checkpoint(ws: dict[str, object], key: str) -> None:
    """A checkpoint entry under ``key``: what a previous builder run would have published."""
    tmp = Path(ws["tmp"])  # type: ignore[arg-type]
    src = tmp / "seed"
    (src / "tokenizer").mkdir(parents=True)
    (src / "config.json").write_text(json.dumps({"architecture": "LlamaForCausalLM"}))
    (src / "rank0.safetensors").write_bytes(b"\0" * 16)
    (src / "tokenizer" / "tokenizer.json").write_text("{}")
    settings = load_settings({}, environ={}, config_file=Path("/nonexistent"))
    store = open_store(ws["env"]["TRITON_LLM_STORE"], settings=settings)  # type: ignore[index]
    publish(
        store,
        src,
        stage="checkpoint",
        key=key,
        fingerprint_inputs={},
        versions={},
        transfer=settings.transfer,
    )


def _builder_env(ws: dict[str, object], site: Path, **extra: str) -> dict[str, str]:
    env = dict(ws["env"])  # type: ignore[call-overload]
    env.update(BUILDER_ENV)
    env.update(extra)
    env["PYTHONPATH"] = str(site)
    env["PATH"] = f"{ws['bin']}:{env['PATH']}"
    return env


def _engine_published(ws: dict[str, object], key: str) -> bool:
    settings = load_settings({}, environ={}, config_file=Path("/nonexistent"))
    store = open_store(ws["env"]["TRITON_LLM_STORE"], settings=settings)  # type: ignore[index]
    return read_manifest(store, stage="engine", key=key) is not None


def test_a_builder_publishes_the_engine_under_the_dry_run_key(workspace: dict[str, object]) -> None:
    keys = _dry_run_keys(workspace)
    _seed_checkpoint(workspace, keys["checkpoint"])
    record = load_facts()["toolchain"]
    site = _fake_site(
        Path(workspace["tmp"]) / "site",  # type: ignore[arg-type]
        {"tensorrt_llm": record["tensorrt_llm"], "tensorrt": record["tensorrt"]},
    )
    env = _builder_env(workspace, site)
    built = _cli("engine", "build", str(workspace["recipe"]), "--backend", "trtllm", env=env)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    assert f"checkpoint: {keys['checkpoint']} (cache hit)" in built.stdout
    assert f"engine H100-SXM: {keys['engine']} (built)" in built.stdout
    assert _engine_published(workspace, keys["engine"])


@pytest.mark.parametrize(
    ("dists", "extra_env", "needle"),
    [
        (
            {"tensorrt_llm": "1.2.1", "tensorrt": "10.13.0.35"},
            {},
            "tensorrt: running 10.13.0.35, record 10.14.1.48",
        ),
        (
            {"tensorrt_llm": "1.2.0", "tensorrt": "10.14.1.48"},
            {},
            "tensorrt_llm: running 1.2.0, record 1.2.1",
        ),
        (
            {"tensorrt_llm": "1.2.1", "tensorrt": "10.14.1.48", "tensorrt_cu12": "10.14.1.48"},
            {},
            "cuda: running 12, record 13",
        ),
        (
            {"tensorrt_llm": "1.2.1", "tensorrt": "10.14.1.48"},
            {"NVIDIA_TRITON_SERVER_VERSION": "26.05"},
            "container: running 26.05, record 26.07",
        ),
    ],
)
def test_a_builder_with_another_toolchain_refuses_to_publish(
    workspace: dict[str, object], dists: dict[str, str], extra_env: dict[str, str], needle: str
) -> None:
    keys = _dry_run_keys(workspace)
    _seed_checkpoint(workspace, keys["checkpoint"])
    site = _fake_site(Path(workspace["tmp"]) / "site", dists)  # type: ignore[arg-type]
    built = _cli(
        "engine",
        "build",
        str(workspace["recipe"]),
        "--backend",
        "trtllm",
        env=_builder_env(workspace, site, **extra_env),
    )
    assert built.returncode == 2, built.stdout[-2000:] + built.stderr[-2000:]
    assert needle in built.stderr and "trtllm_1_2_1.json" in built.stderr
    assert not _engine_published(workspace, keys["engine"])


def test_outside_a_triton_container_the_builder_is_refused(workspace: dict[str, object]) -> None:
    keys = _dry_run_keys(workspace)
    _seed_checkpoint(workspace, keys["checkpoint"])
    site = _fake_site(Path(workspace["tmp"]) / "site", {"tensorrt_llm": "1.2.1", "tensorrt": "10.14.1.48"})
    env = _builder_env(workspace, site)
    del env["NVIDIA_TRITON_SERVER_VERSION"]
    built = _cli("engine", "build", str(workspace["recipe"]), "--backend", "trtllm", env=env)
    assert built.returncode == 2 and "container: running not found, record 26.07" in built.stderr


def test_the_record_image_is_the_trtllm_dockerfile_base() -> None:
    text = (REPO_ROOT / "build" / "Dockerfile.trtllm").read_text()
    args = dict(re.findall(r"^ARG (BASE_IMAGE|BASE_TAG)=(\S+)$", text, flags=re.M))
    assert f"{args['BASE_IMAGE']}:{args['BASE_TAG']}" == load_facts()["toolchain"]["image"]

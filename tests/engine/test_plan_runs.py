"""The plan is what runs: ``--dry-run`` lists exactly the steps a real cpu build then executes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime._models import tiny_llama_dir

CLI = str(Path(sys.executable).parent / "triton-llm")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama folder with a tokenizer file: a build of it takes seconds."""
    folder = tiny_llama_dir(tmp_path_factory.mktemp("tiny-llama"))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "WordLevel"}}))
    (folder / "tokenizer_config.json").write_text("{}")
    return folder


STEP_PREFIXES = ("  $ ", "  call ", "  publish ")


def steps(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.startswith(STEP_PREFIXES)]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=600)


def test_dry_run_lists_exactly_the_steps_a_build_runs(tiny_model: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        f"name: tiny\nmodel:\n  local: {tiny_model}\ndtype: float32\nparallelism:\n  tp: 2\n"
        "build:\n  max_input_len: 64\n  max_seq_len: 128\n  max_num_tokens: 128\n"
    )
    planned = cli("engine", "build", str(recipe), "--dry-run")
    assert planned.returncode == 0, planned.stderr
    built = cli("engine", "build", str(recipe))
    assert built.returncode == 0, built.stderr
    assert steps(built.stdout) == steps(planned.stdout)
    names = [line.split("(", 1)[0].split("/", 1)[0] for line in steps(planned.stdout)]
    assert names == [
        "call triton_llm.engine.fetch.materialize",
        "call triton_llm.engine.steps.fresh_dir",
        "call triton_llm.engine.backends.cpu_convert.convert_checkpoint",
        "call triton_llm.engine.steps.copy_tokenizer",
        "publish checkpoint",
        "call triton_llm.engine.steps.fresh_dir",
        "call triton_llm.engine.backends.cpu_convert.write_engine_config",
        "call triton_llm.engine.backends.cpu.write_golden",
        "call triton_llm.engine.steps.copy_tokenizer",
        "call triton_llm.engine.steps.write_recipe",
        "publish engine",
    ]
    engine_key = built.stdout.split("engine: ", 1)[1].split(" ", 1)[0]
    pulled = cli("engine", "pull", engine_key, "--dest", str(tmp_path / "engine"))
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads((tmp_path / "engine" / "recipe.json").read_text())["name"] == "tiny"
    assert (tmp_path / "engine" / "tokenizer" / "tokenizer.json").is_file()
    again = cli("engine", "build", str(recipe))
    assert again.returncode == 0 and steps(again.stdout) == [], "a cache hit runs no step"

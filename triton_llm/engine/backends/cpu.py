"""The ``cpu`` build backend: a pure-Python reference that needs no GPU.

The checkpoint stage converts a Hugging Face Llama folder into TensorRT-LLM's checkpoint
layout (:mod:`triton_llm.engine.backends.cpu_convert`); the engine stage writes only a
``config.json`` (``pretrained_config`` + ``build_config`` as ``trtllm-build`` writes, plus
``backend: cpu`` and the checkpoint key): the CPU runtime (:mod:`triton_llm.runtime`) reads
the checkpoint's rank files directly.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from triton_llm._cpu_runtime import ARCHITECTURES
from triton_llm.engine.backends.base import Action, Call
from triton_llm.engine.backends.cpu_convert import (
    CONVERTER_VERSION,
    QUANT_ALGOS,
    convert_checkpoint,
    write_engine_config,
)
from triton_llm.engine.gpus import GpuSku
from triton_llm.engine.model_info import ModelInfo
from triton_llm.engine.recipe import Recipe
from triton_llm.errors import RecipeError

SUPPORTED_DTYPES = ("float32", "bfloat16", "float16")


def write_golden(**kwargs: Any) -> None:
    """Record the engine's golden answer (``triton_llm.repository.golden.write_golden``).

    The answer needs the serving side (the tokenizer's chat template and the CPU runtime), a layer
    above the build, so it is imported when the step runs; tests/engine/backends/test_cpu.py builds
    an engine and checks the recorded answer, so a rename there fails the tests.
    """
    importlib.import_module("triton_llm.repository.golden").write_golden(**kwargs)


class CpuBackend:
    """Build backend ``cpu``: TensorRT-LLM checkpoint layout, served by the CPU runtime."""

    name = "cpu"

    def toolchain_versions(self) -> dict[str, str]:
        """Only what changes the output bytes: the converter format and torch (quantization rounding).

        torch's version comes from its distribution metadata (the same string as
        ``torch.__version__``), so planning never imports torch.
        """
        torch_version = importlib.metadata.version("torch").split("+")[0]
        return {"cpu_backend": CONVERTER_VERSION, "torch": torch_version}

    def verify_toolchain(self) -> None:
        """Nothing to verify: :meth:`toolchain_versions` reads the running versions themselves."""

    def check(self, recipe: Recipe, model: ModelInfo, gpus: Sequence[GpuSku]) -> list[RecipeError]:
        """Everything the cpu converter and runtime cannot do for this recipe and model."""
        problems: list[RecipeError] = []
        q = recipe.quantization.format
        if q not in QUANT_ALGOS:
            problems.append(
                RecipeError(
                    f"quantization.format={q!r}: the cpu backend supports only "
                    f"{', '.join(QUANT_ALGOS)} (rule: other formats need TensorRT-LLM kernels); "
                    "use the trtllm backend on a GPU",
                    field="quantization.format",
                    value=q,
                )
            )
        if recipe.quantization.kv_cache_dtype != "auto":
            problems.append(
                RecipeError(
                    f"quantization.kv_cache_dtype={recipe.quantization.kv_cache_dtype!r}: the cpu runtime "
                    "keeps the KV cache in float32 (rule: only 'auto'); use the trtllm backend on a GPU",
                    field="quantization.kv_cache_dtype",
                    value=recipe.quantization.kv_cache_dtype,
                )
            )
        if model.architecture not in ARCHITECTURES:
            problems.append(
                RecipeError(
                    f"model architecture {model.architecture!r}: the cpu backend supports "
                    f"{', '.join(ARCHITECTURES)} (Llama family)",
                    field="model",
                    value=model.architecture,
                )
            )
        if recipe.dtype not in SUPPORTED_DTYPES:
            problems.append(
                RecipeError(
                    f"dtype={recipe.dtype!r}: the cpu backend supports {', '.join(SUPPORTED_DTYPES)}",
                    field="dtype",
                    value=recipe.dtype,
                )
            )
        pp = recipe.parallelism.pp
        if pp != 1:
            problems.append(
                RecipeError(
                    f"parallelism.pp={pp}: the cpu runtime has no pipeline parallelism (rule: pp=1); "
                    "use tensor parallelism (parallelism.tp) or the trtllm backend",
                    field="parallelism.pp",
                    value=pp,
                )
            )
        if recipe.build.max_beam_width != 1:
            problems.append(
                RecipeError(
                    f"build.max_beam_width={recipe.build.max_beam_width}: the cpu runtime does no "
                    "beam search (rule: 1)",
                    field="build.max_beam_width",
                    value=recipe.build.max_beam_width,
                )
            )
        return problems

    def plan_checkpoint(self, recipe: Recipe, *, model_dir: Path, out_dir: Path) -> list[Action]:
        """One in-process conversion step (see :func:`cpu_convert.convert_checkpoint`)."""
        kwargs: dict[str, Any] = {
            "model_dir": str(model_dir),
            "out_dir": str(out_dir),
            "dtype": recipe.dtype,
            "quant_format": recipe.quantization.format,
            "tp": recipe.parallelism.tp,
            "pp": recipe.parallelism.pp,
        }
        return [
            Call(
                f"convert {recipe.name} to a TensorRT-LLM checkpoint (cpu backend)",
                convert_checkpoint,
                kwargs,
            )
        ]

    def plan_engine(
        self,
        recipe: Recipe,
        *,
        checkpoint_dir: Path,
        out_dir: Path,
        gpu: GpuSku | None,
        checkpoint_key: str,
    ) -> list[Action]:
        """Write the engine ``config.json`` (the weights stay in the checkpoint), then the golden answer."""
        b = recipe.build
        build_config = {
            "max_batch_size": b.max_batch_size,
            "max_input_len": b.max_input_len,
            "max_seq_len": b.max_seq_len,
            "max_num_tokens": b.max_num_tokens,
            "max_beam_width": b.max_beam_width,
            "plugin_config": b.plugins.model_dump(mode="json"),
            **b.features.model_dump(mode="json"),
        }
        runtime = {"kv_cache": "contiguous-float32", "compute_dtype": "float32", "weights": "checkpoint"}
        return [
            Call(
                f"write the cpu engine config for {recipe.name}",
                write_engine_config,
                {
                    "checkpoint_dir": str(checkpoint_dir),
                    "out_dir": str(out_dir),
                    "build_config": build_config,
                    "checkpoint_key": checkpoint_key,
                    "runtime": runtime,
                },
            ),
            # The answer `repo update` compares a new version's smoke prompt with (its store entry holds it).
            Call(
                f"record the golden answer of {recipe.name} (greedy, fixed prompt)",
                write_golden,
                {
                    "checkpoint_dir": str(checkpoint_dir),
                    "out_dir": str(out_dir),
                    "chat_template": recipe.serving.chat_template,
                    "max_input_len": b.max_input_len,
                    "max_seq_len": b.max_seq_len,
                    "world_size": recipe.parallelism.world_size,
                },
            ),
        ]

"""Capability rules of the ``trtllm`` backend (TensorRT-LLM 1.2.1), as RecipeErrors.

Each message names the field, its value and the rule. GPU rules come from the 1.2.1
support matrix in ``trtllm_1_2_1.json`` (precisions per architecture: FP8 from SM89, FP4
from SM100, BF16/INT8/INT4 from SM80; W4A8 AWQ needs FP8 activations, so SM89); value
rules come from the ``choices`` of the tools' flags.
"""

from __future__ import annotations

from collections.abc import Sequence

from triton_llm.engine.backends.trtllm_facts import arch_for_sm, flag_choices, load_facts, min_sm_for
from triton_llm.engine.gpus import GpuSku
from triton_llm.engine.model_info import ModelInfo
from triton_llm.engine.recipe import Recipe
from triton_llm.errors import RecipeError

# recipe quantization.format -> quantize.py --qformat ("none" = full_prec, for a quantized KV cache)
QFORMAT = {
    "none": "full_prec",
    "fp8": "fp8",
    "int8_sq": "int8_sq",
    "int4_awq": "int4_awq",
    "w4a8_awq": "w4a8_awq",
    "int8_wo": "int8_wo",
    "int4_wo": "int4_wo",
    "nvfp4": "nvfp4",
}
CONVERT_FORMATS = ("none", "int8_wo", "int4_wo")  # convert_checkpoint.py handles these without calibration
WEIGHT_ONLY_PRECISION = {"int8_wo": "int8", "int4_wo": "int4"}
AWQ_FORMATS = ("int4_awq", "w4a8_awq")


def uses_modelopt(recipe: Recipe) -> bool:
    """True when the checkpoint comes from ModelOpt calibration (quantize.py)."""
    q = recipe.quantization
    return q.format not in CONVERT_FORMATS or q.kv_cache_dtype != "auto"


NO_GPU_MESSAGE = "target.gpus is empty: the trtllm backend needs a target GPU SKU"

# the support-matrix precisions each recipe value needs on the target GPU
DTYPE_PRECISION = {"float32": ("FP32",), "float16": ("FP16",), "bfloat16": ("BF16",)}
FORMAT_PRECISION: dict[str, tuple[str, ...]] = {
    "none": (),
    "fp8": ("FP8",),
    "int8_sq": ("INT8",),
    "int8_wo": ("INT8",),
    "int4_awq": ("INT4",),
    "int4_wo": ("INT4",),
    "w4a8_awq": ("INT4", "FP8"),  # "INT4 AWQ ... with FP8 activations require SM >= 89"
    "nvfp4": ("FP4",),
}
KV_PRECISION = {"auto": (), "fp8": ("FP8",), "int8": ("INT8",)}
# recipe plugin field -> trtllm-build flag
PLUGIN_FLAGS = {
    "gpt_attention_plugin": "--gpt_attention_plugin",
    "gemm_plugin": "--gemm_plugin",
    "nccl_plugin": "--nccl_plugin",
}
# gemm_plugin values that only make sense for a checkpoint quantized the same way
GEMM_PLUGIN_FORMAT = {"fp8": "fp8", "nvfp4": "nvfp4"}


def _gpu_rules(recipe: Recipe, gpu: GpuSku) -> list[RecipeError]:
    errors: list[RecipeError] = []
    row = arch_for_sm(gpu.sm)
    if row is None:
        listed = ", ".join(f"{r['arch']} (SM{'/'.join(map(str, r['sm']))})" for r in _matrix())
        errors.append(
            RecipeError(
                f"target.gpus={gpu.name!r}: SM{gpu.sm} is not in the TensorRT-LLM 1.2.1 support matrix "
                f"(rule: one of {listed})",
                field="target.gpus",
                value=gpu.name,
            )
        )
    wanted = [
        ("dtype", recipe.dtype, DTYPE_PRECISION[recipe.dtype]),
        ("quantization.format", recipe.quantization.format, FORMAT_PRECISION[recipe.quantization.format]),
        (
            "quantization.kv_cache_dtype",
            recipe.quantization.kv_cache_dtype,
            KV_PRECISION[recipe.quantization.kv_cache_dtype],
        ),
    ]
    for field, value, precisions in wanted:
        for precision in precisions:
            min_sm = min_sm_for(precision)
            ok = precision in row["precisions"] if row is not None else gpu.sm >= min_sm
            if not ok:
                errors.append(
                    RecipeError(
                        f"{field}={value!r} needs {precision} kernels, which TensorRT-LLM 1.2.1 has on "
                        f"SM >= {min_sm} (rule: support matrix); target GPU {gpu.name} is SM{gpu.sm}",
                        field=field,
                        value=value,
                    )
                )
    return errors


def _matrix() -> list[dict]:
    return load_facts()["hardware"]["precision_by_arch"]


def _value_rules(recipe: Recipe, model: ModelInfo) -> list[RecipeError]:
    errors: list[RecipeError] = []
    q = recipe.quantization
    for field, flag in PLUGIN_FLAGS.items():
        value = getattr(recipe.build.plugins, field)
        choices = flag_choices("trtllm-build", flag)
        if value not in choices:
            errors.append(
                RecipeError(
                    f"build.plugins.{field}={value!r}: trtllm-build 1.2.1 {flag} accepts "
                    f"{', '.join(choices)} (rule: 1.2.1 plugin choices)",
                    field=f"build.plugins.{field}",
                    value=value,
                )
            )
    gemm = recipe.build.plugins.gemm_plugin
    if gemm in GEMM_PLUGIN_FORMAT and q.format != GEMM_PLUGIN_FORMAT[gemm]:
        errors.append(
            RecipeError(
                f"build.plugins.gemm_plugin={gemm!r} needs a checkpoint quantized to "
                f"{GEMM_PLUGIN_FORMAT[gemm]} (rule: the {gemm} GEMM plugin reads that checkpoint's scales); "
                f"quantization.format is {q.format!r}",
                field="build.plugins.gemm_plugin",
                value=gemm,
            )
        )
    tool = "quantize.py" if uses_modelopt(recipe) else "convert_checkpoint.py"
    if uses_modelopt(recipe) and QFORMAT.get(q.format) not in flag_choices(tool, "--qformat"):
        errors.append(
            RecipeError(
                f"quantization.format={q.format!r}: quantize.py 1.2.1 --qformat accepts "
                f"{', '.join(flag_choices(tool, '--qformat'))} (rule: ModelOpt formats of 1.2.1)",
                field="quantization.format",
                value=q.format,
            )
        )
    precision = WEIGHT_ONLY_PRECISION.get(q.format)
    if not uses_modelopt(recipe) and precision is not None:
        choices = flag_choices(tool, "--weight_only_precision")
        if precision not in choices:
            errors.append(
                RecipeError(
                    f"quantization.format={q.format!r}: convert_checkpoint.py --weight_only_precision "
                    f"accepts {', '.join(choices)}",
                    field="quantization.format",
                    value=q.format,
                )
            )
    dtypes = flag_choices(tool, "--dtype")
    if recipe.dtype not in dtypes:
        errors.append(
            RecipeError(
                f"dtype={recipe.dtype!r}: {tool} 1.2.1 --dtype accepts {', '.join(dtypes)}",
                field="dtype",
                value=recipe.dtype,
            )
        )
    archs = load_facts()["hardware"]["llama_example_architectures"]
    if model.architecture not in archs:
        errors.append(
            RecipeError(
                f"model architecture {model.architecture!r}: the trtllm backend plans Llama-family "
                f"checkpoints (rule: one of {', '.join(archs)}, the architectures of 1.2.1's Llama example)",
                field="model",
                value=model.architecture,
            )
        )
    return errors


def check_recipe(recipe: Recipe, model: ModelInfo, gpus: Sequence[GpuSku]) -> list[RecipeError]:
    """Every trtllm capability problem of ``recipe`` for ``model`` on its target ``gpus`` (empty if none).

    The rules that do not depend on a GPU are checked once; the support matrix once per GPU.
    """
    errors = _value_rules(recipe, model)
    if not gpus:
        errors.insert(0, RecipeError(NO_GPU_MESSAGE, field="target.gpus", value=[]))
    for gpu in gpus:
        errors += _gpu_rules(recipe, gpu)
    return errors

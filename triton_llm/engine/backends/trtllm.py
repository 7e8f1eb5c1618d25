"""The ``trtllm`` build backend: TensorRT-LLM 1.2.1 on an NVIDIA GPU.

1.2.1 is the last release line that builds TensorRT engines (1.3 serves the PyTorch backend
instead), so everything version-specific stays here and in ``trtllm_1_2_1.json``:

* checkpoint: ModelOpt (``examples/quantization/quantize.py``) for calibrated formats and
  any quantized KV cache; the Llama ``convert_checkpoint.py`` for ``none``/``int8_wo``/
  ``int4_wo`` with a model-dtype KV cache. Both write the TensorRT-LLM checkpoint layout:
  ``config.json`` + ``rank{i}.safetensors`` for each of the tp*pp ranks.
* engine: ``trtllm-build`` with every limit, plugin and feature taken from the recipe.

Plans are pure: every argv is re-parsed against 1.2.1's flags before it is returned. The
example scripts are not in the wheel; in the Triton TRT-LLM container they live in
``/app/examples`` (``TRTLLM_EXAMPLES_DIR`` overrides). A missing folder fails when the plan
runs (first action), not when it is planned, so ``--dry-run`` works anywhere.

Cache keys: :meth:`TrtllmBackend.toolchain_versions` is the declared toolchain record of
``trtllm_1_2_1.json`` (TensorRT-LLM, TensorRT, the CUDA TensorRT was built against, and the
base image), never what happens to be installed, so ``--dry-run`` anywhere computes the keys
the builder publishes. Before a builder builds anything, :meth:`TrtllmBackend.verify_toolchain`
compares what it runs (distribution metadata and the container's environment, nothing
imported) with that record and refuses on any difference, naming both.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from triton_llm.engine.backends.base import Action, Call, Command
from triton_llm.engine.backends.trtllm_facts import argv_problems, load_facts
from triton_llm.engine.backends.trtllm_rules import (
    AWQ_FORMATS,
    QFORMAT,
    WEIGHT_ONLY_PRECISION,
    check_recipe,
    uses_modelopt,
)
from triton_llm.engine.backends.trtllm_verify import verify_checkpoint
from triton_llm.engine.gpus import GpuSku
from triton_llm.engine.model_info import ModelInfo
from triton_llm.engine.recipe import Recipe
from triton_llm.errors import BuildError, IncompatibleError, RecipeError

EXAMPLES_ENV = "TRTLLM_EXAMPLES_DIR"
QUANTIZE_SCRIPT = "quantization/quantize.py"
CONVERT_SCRIPT = "models/core/llama/convert_checkpoint.py"


def _on(flag: bool) -> str:
    return "enable" if flag else "disable"


def quantize_args(recipe: Recipe, *, model_dir: Path, out_dir: Path) -> list[str]:
    """``quantize.py`` arguments (without the program) for a ModelOpt checkpoint."""
    q = recipe.quantization
    cal = q.calibration
    args = [
        "--model_dir", str(model_dir),
        "--output_dir", str(out_dir),
        "--dtype", recipe.dtype,
        "--qformat", QFORMAT[q.format],
        "--calib_dataset", cal.dataset,
        "--calib_size", str(cal.size),
        "--batch_size", str(cal.batch_size),
        "--calib_max_seq_length", str(cal.max_seq_len),
        "--tokenizer_max_seq_length", str(cal.max_seq_len),
        "--tp_size", str(recipe.parallelism.tp),
        "--pp_size", str(recipe.parallelism.pp),
    ]  # fmt: skip
    if q.format in AWQ_FORMATS:
        args += ["--awq_block_size", str(q.group_size)]
    if q.kv_cache_dtype != "auto":
        args += ["--kv_cache_dtype", q.kv_cache_dtype]
    return args


def convert_args(recipe: Recipe, *, model_dir: Path, out_dir: Path) -> list[str]:
    """Llama ``convert_checkpoint.py`` arguments (without the program)."""
    args = [
        "--model_dir", str(model_dir),
        "--output_dir", str(out_dir),
        "--dtype", recipe.dtype,
        "--tp_size", str(recipe.parallelism.tp),
        "--pp_size", str(recipe.parallelism.pp),
    ]  # fmt: skip
    precision = WEIGHT_ONLY_PRECISION.get(recipe.quantization.format)
    if precision is not None:
        args += ["--use_weight_only", "--weight_only_precision", precision]
    return args


def build_args(recipe: Recipe, *, checkpoint_dir: Path, out_dir: Path) -> list[str]:
    """``trtllm-build`` arguments (without the program) for every rank of the checkpoint."""
    b = recipe.build
    p, f = b.plugins, b.features
    args = [
        "--checkpoint_dir", str(checkpoint_dir),
        "--output_dir", str(out_dir),
        "--max_batch_size", str(b.max_batch_size),
        "--max_input_len", str(b.max_input_len),
        "--max_seq_len", str(b.max_seq_len),
        "--max_num_tokens", str(b.max_num_tokens),
        "--max_beam_width", str(b.max_beam_width),
        "--kv_cache_type", "paged" if f.paged_kv_cache else "continuous",
        "--tokens_per_block", str(f.tokens_per_block),
        "--gpt_attention_plugin", p.gpt_attention_plugin,
        "--gemm_plugin", p.gemm_plugin,
        "--nccl_plugin", p.nccl_plugin,
        "--context_fmha", _on(f.context_fmha),
        "--use_paged_context_fmha", _on(f.use_paged_context_fmha),
        "--remove_input_padding", _on(f.remove_input_padding),
        "--use_fused_mlp", _on(f.use_fused_mlp),
        "--multiple_profiles", _on(f.multiple_profiles),
        "--reduce_fusion", _on(f.reduce_fusion),
        "--workers", str(recipe.parallelism.world_size),
    ]  # fmt: skip
    if f.gather_context_logits:
        args.append("--gather_context_logits")
    return args


def expected_quant_algo(recipe: Recipe) -> str | None:
    """The checkpoint's ``quantization.quant_algo``: exact for convert_checkpoint and ``none``,
    ``"any"`` (some 1.2.1 QuantAlgo) for ModelOpt formats, whose names ModelOpt's exporter picks.
    """
    q = recipe.quantization
    if q.format == "none":
        return None
    if not uses_modelopt(recipe):
        table = load_facts()["checkpoint_config"]["convert_checkpoint_weight_only_precision_to_quant_algo"]
        return table[WEIGHT_ONLY_PRECISION[q.format]]
    return "any"


def _checked(tool: str, args: list[str]) -> list[str]:
    problems = argv_problems(tool, args)
    if problems:  # a bug in this module, never a user error: fail loudly at plan time
        raise BuildError(f"planned {tool} arguments are not valid for TensorRT-LLM 1.2.1: {problems[0]}")
    return args


def require_examples(*, examples_dir: str, scripts: list[str]) -> None:
    """First step of a checkpoint plan: the TensorRT-LLM example scripts must exist.

    Raises:
        BuildError: a script is missing; says how to point at the examples folder.
    """
    missing = [s for s in scripts if not (Path(examples_dir) / s).is_file()]
    if missing:
        raise BuildError(
            f"TensorRT-LLM 1.2.1 example script(s) not found under {examples_dir}: {', '.join(missing)}",
            path=examples_dir,
            hint=f"run in the Triton TRT-LLM container (examples in /app/examples) or set {EXAMPLES_ENV} "
            "to the examples/ folder of the TensorRT-LLM v1.2.1 sources",
        )


class TrtllmBackend:
    """Build backend ``trtllm``: ModelOpt / convert_checkpoint, then ``trtllm-build``."""

    name = "trtllm"

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        python: str = "python3",
    ) -> None:
        """``environ``: the builder's environment (``Settings.environ``), read for the examples
        folder and the CUDA and container versions; empty when not given."""
        self.environ = dict(environ or {})
        facts = load_facts()
        self.examples_dir = Path(
            self.environ.get(EXAMPLES_ENV) or facts["toolchain"]["container_examples_dir"]
        )
        self.python = python

    def toolchain_versions(self) -> dict[str, str]:
        """The key fields of the declared toolchain record (the same on every machine).

        ``image`` is the base image tag, with ``@digest`` appended when the record knows it.
        """
        record = load_facts()["toolchain"]
        versions = {k: str(record[k]) for k in record["key_fields"]}
        if record.get("image_digest"):
            versions["image"] = f"{record['image']}@{record['image_digest']}"
        return versions

    def installed_toolchain(self) -> dict[str, str | None]:
        """What this machine runs, read without importing torch or tensorrt (None: not found).

        ``tensorrt_llm`` and ``tensorrt`` come from distribution metadata; ``cuda`` from a
        ``tensorrt-cuNN`` distribution's name, else ``CUDA_VERSION``; ``container`` from
        ``NVIDIA_TRITON_SERVER_VERSION`` (see ``builder_note`` in the facts file).
        """
        env_names = load_facts()["toolchain"]["builder_env"]
        dists: dict[str, str] = {}
        for dist in importlib.metadata.distributions():
            name = dist.metadata["Name"]
            if name:
                dists.setdefault(re.sub(r"[-_.]+", "_", name).lower(), dist.version)
        cuda_dists = [
            m for n in sorted(dists) if (m := re.fullmatch(r"tensorrt_cu(\d+)(_libs|_bindings)?", n))
        ]
        trt_cu = [v for n, v in sorted(dists.items()) if re.fullmatch(r"tensorrt_cu\d+", n)]
        cuda_major = cuda_dists[0].group(1) if cuda_dists else None
        trt = dists.get("tensorrt") or (trt_cu[0] if trt_cu else None)
        return {
            "tensorrt_llm": dists.get("tensorrt_llm"),
            "tensorrt": trt,
            "cuda": cuda_major or self.environ.get(env_names["cuda"]),
            "container": self.environ.get(env_names["container"]),
        }

    def toolchain_mismatches(self) -> list[str]:
        """Each difference between :meth:`installed_toolchain` and the record, named both ways."""
        record = load_facts()["toolchain"]
        running = self.installed_toolchain()
        container = record["image"].rsplit(":", 1)[-1].split("-", 1)[0]
        expected = {
            "tensorrt_llm": (record["tensorrt_llm"], running["tensorrt_llm"]),
            "tensorrt": (record["tensorrt"], running["tensorrt"]),
            "cuda": (record["cuda"].split(".")[0], (running["cuda"] or "").split(".")[0] or None),
            "container": (container, running["container"]),
        }
        return [
            f"{field}: running {have or 'not found'}, record {want}"
            for field, (want, have) in expected.items()
            if have != want
        ]

    def verify_toolchain(self) -> None:
        """Refuse to build (and so to publish) with a toolchain other than the record's.

        Raises:
            IncompatibleError: names every differing field, running and recorded.
        """
        problems = self.toolchain_mismatches()
        if problems:
            record = load_facts()["toolchain"]
            raise IncompatibleError(
                "this builder does not run the toolchain the cache keys are computed from "
                f"(trtllm_1_2_1.json, image {record['image']}): " + "; ".join(problems),
                hint="build in the record's image (build/Dockerfile.trtllm, the chart's engine-build Job), "
                "or update the record so dry-run and build keys change together",
            )

    def check(self, recipe: Recipe, model: ModelInfo, gpus: Sequence[GpuSku]) -> list[RecipeError]:
        """Capability problems for this recipe, model and target GPUs (see :mod:`trtllm_rules`)."""
        return check_recipe(recipe, model, gpus)

    def plan_checkpoint(self, recipe: Recipe, *, model_dir: Path, out_dir: Path) -> list[Action]:
        """Check the example scripts, run quantize.py or convert_checkpoint.py, verify the result."""
        if uses_modelopt(recipe):
            script, tool = QUANTIZE_SCRIPT, "quantize.py"
            args = quantize_args(recipe, model_dir=model_dir, out_dir=out_dir)
            what = f"ModelOpt quantize ({QFORMAT[recipe.quantization.format]})"
        else:
            script, tool = CONVERT_SCRIPT, "convert_checkpoint.py"
            args = convert_args(recipe, model_dir=model_dir, out_dir=out_dir)
            what = f"convert_checkpoint ({recipe.quantization.format})"
        ranks = recipe.parallelism.world_size
        return [
            Call(
                "check the TensorRT-LLM 1.2.1 example scripts are present",
                require_examples,
                {"examples_dir": str(self.examples_dir), "scripts": [script]},
            ),
            Command(
                f"{what}: TensorRT-LLM checkpoint with {ranks} rank file(s)",
                (self.python, str(self.examples_dir / script), *_checked(tool, args)),
            ),
            Call(
                "verify the checkpoint config.json and rank files against the recipe",
                verify_checkpoint,
                {
                    "checkpoint_dir": str(out_dir),
                    "tp": recipe.parallelism.tp,
                    "pp": recipe.parallelism.pp,
                    "dtype": recipe.dtype,
                    "quant_algo": expected_quant_algo(recipe),
                    "kv_cache_dtype": recipe.quantization.kv_cache_dtype,
                },
            ),
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
        """One ``trtllm-build`` run; it writes config.json + rank{i}.engine into out_dir."""
        args = _checked("trtllm-build", build_args(recipe, checkpoint_dir=checkpoint_dir, out_dir=out_dir))
        target = f" for {gpu.name} (SM{gpu.sm})" if gpu is not None else ""
        return [
            Command(
                f"trtllm-build: {recipe.parallelism.world_size} engine rank(s){target}",
                ("trtllm-build", *args),
            )
        ]

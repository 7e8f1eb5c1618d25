"""Render the model repository templates for one engine.

:func:`plan_parameters` (pure) turns an engine's ``config.json`` and the recipe's serving
settings into one parameter mapping per model; :func:`render_files` (pure) fills the
templates; :func:`render_repository` writes them into a fresh directory. A template
placeholder without a value and a value without a placeholder are both errors that name
the file, so a typo can never leave ``${...}`` in a served config.

GPU engines render ``tensorrt_llm`` with ``backend: "tensorrtllm"`` (TensorRT-LLM's C++
backend loads ``gpt_model_path``); cpu engines (``"backend": "cpu"`` in config.json)
render ``backend: "python"`` and get ``tensorrt_llm/1/model.py``, which serves
``checkpoint_dir`` with triton_llm.runtime. Every other model is identical on both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from triton_llm._package_data import TEMPLATES, data_dir
from triton_llm.engine.recipe import Serving
from triton_llm.engine.runtime_switches import (
    engine_features,
    inflight_batching_problems,
    runtime_switches,
    switch_problems,
)
from triton_llm.errors import ConfigError, IncompatibleError, NotFoundError

MODELS = ("preprocessing", "tensorrt_llm", "postprocessing", "ensemble", "tensorrt_llm_bls")
PYTHON_MODELS = ("preprocessing", "postprocessing", "tensorrt_llm_bls")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def template_dir() -> Path:
    """The ``model_repository/`` templates, shipped as package data (``triton_llm.model_repository``)."""
    return data_dir(TEMPLATES)


def _b(value: bool) -> str:
    return "true" if value else "false"


def is_cpu_engine(engine_config: Mapping[str, Any]) -> bool:
    """True for triton-llm's cpu engines (``"backend": "cpu"``); trtllm-build writes no backend key."""
    return engine_config.get("backend") == "cpu"


def tensorrt_llm_parameters(
    engine_config: Mapping[str, Any],
    *,
    serving: Serving,
    engine_dir: Path,
    tokenizer_dir: Path,
    checkpoint_dir: Path | None = None,
) -> dict[str, str]:
    """The ``tensorrt_llm`` model's ``parameters``: exactly the keys its backend reads.

    GPU: every key the TensorRT-LLM 1.2 ``tensorrtllm`` backend reads with no fallback (see
    ``tensorrtllm_backend_1_2.json``) plus the settings we choose instead of its silent
    defaults; runtime switches follow the engine's build features
    (:mod:`triton_llm.engine.runtime_switches`). CPU: what ``trtllm_cpu`` reads.

    Raises:
        IncompatibleError: a cpu engine without checkpoint_dir; a GPU engine inflight
            batching cannot load.
        ConfigError: a serving switch the engine cannot honour.
    """
    build = engine_config["build_config"]
    if is_cpu_engine(engine_config):
        if checkpoint_dir is None:
            raise IncompatibleError(
                "a cpu engine needs its checkpoint_dir to serve",
                path=str(engine_dir),
                key=engine_config.get("checkpoint_key"),
            )
        mapping = engine_config.get("pretrained_config", {}).get("mapping", {})
        world_size = int(
            mapping.get("world_size") or int(mapping.get("tp_size", 1)) * int(mapping.get("pp_size", 1))
        )
        return {
            "FORCE_CPU_ONLY_INPUT_TENSORS": "no",
            "checkpoint_dir": str(checkpoint_dir),
            "world_size": str(world_size),
            "cpu_threads": str(serving.threads),
            "max_batch_size": str(int(build["max_batch_size"])),
            "max_input_len": str(int(build["max_input_len"])),
            "max_seq_len": str(int(build["max_seq_len"])),
            "exclude_input_in_output": _b(serving.exclude_input_in_output),
        }
    features = engine_features(engine_config)
    missing = inflight_batching_problems(features)
    if missing:
        raise IncompatibleError(
            f"{engine_dir}/config.json: the engine was built without {' and '.join(missing)}; TensorRT-LLM's "
            f"inflight batching (gpt_model_type={serving.batching_strategy}) cannot load it",
            path=str(engine_dir),
            hint="rebuild the engine with a paged KV cache and packed input (trtllm-build's defaults)",
        )
    problems = switch_problems(features, serving)
    if problems:
        raise ConfigError(
            f"{engine_dir}: " + "; ".join(message for _, message in problems),
            path=str(engine_dir),
            field=problems[0][0].serving_field,
            value=True,
        )
    switches = runtime_switches(features, serving)
    return {
        "gpt_model_type": serving.batching_strategy,
        "gpt_model_path": str(engine_dir),
        "tokenizer_dir": str(tokenizer_dir),
        # Empty is the backend's own "guided decoding off" (a placeholder would be too).
        "xgrammar_tokenizer_info_path": "",
        "guided_decoding_backend": "",
        "max_beam_width": str(features["max_beam_width"]),
        "batch_scheduler_policy": serving.batch_scheduler_policy,
        "kv_cache_free_gpu_mem_fraction": repr(float(serving.kv_cache_free_gpu_mem_fraction)),
        "enable_kv_cache_reuse": _b(switches["enable_kv_cache_reuse"]),
        "enable_chunked_context": _b(switches["enable_chunked_context"]),
        "exclude_input_in_output": _b(serving.exclude_input_in_output),
        "cancellation_check_period_ms": str(serving.cancellation_check_period_ms),
        "stats_check_period_ms": str(serving.stats_check_period_ms),
    }


def format_parameters(params: Mapping[str, str]) -> str:
    """``parameters { ... }`` lines for a config.pbtxt, one per key, in order.

    Raises:
        ConfigError: a value with a control character (it cannot be a path or a setting).
    """
    lines = []
    for key, value in params.items():
        if any(ord(c) < 32 for c in value):
            raise ConfigError(f"parameter {key}: control character in {value!r}", field=key, value=value)
        quoted = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'parameters {{ key: "{key}", value: {{ string_value: "{quoted}" }} }}')
    return "\n".join(lines)


def plan_parameters(
    engine_config: Mapping[str, Any],
    *,
    serving: Serving,
    engine_dir: Path,
    tokenizer_dir: Path,
    checkpoint_dir: Path | None = None,
    engine_key: str = "",
) -> dict[str, dict[str, str]]:
    """Template parameters for each model, from the engine config and serving settings.

    ``engine_key`` is what postprocessing and the BLS return in every response's ``engine_key``
    (empty when the engine has no store key, e.g. ``repo render --engine-dir``).

    Raises:
        IncompatibleError: the engine config lacks build_config limits, a cpu engine has no
            checkpoint_dir, or a GPU engine inflight batching cannot load.
        ConfigError: serving settings that would break exact streaming, or a runtime switch
            the engine cannot honour.
    """
    build = engine_config.get("build_config")
    if not isinstance(build, Mapping) or "max_batch_size" not in build:
        raise IncompatibleError(
            f"{engine_dir}/config.json has no build_config.max_batch_size", path=str(engine_dir)
        )
    cpu = is_cpu_engine(engine_config)
    if serving.decoupled and serving.postprocessing_instances > 1:
        raise ConfigError(
            "serving.postprocessing_instances must be 1 with decoupled streaming: the streaming "
            "detokenizer keeps per-stream state in the postprocessing process",
            field="serving.postprocessing_instances",
            value=serving.postprocessing_instances,
        )
    llm = tensorrt_llm_parameters(
        engine_config,
        serving=serving,
        engine_dir=engine_dir,
        tokenizer_dir=tokenizer_dir,
        checkpoint_dir=checkpoint_dir,
    )
    batch = str(int(build["max_batch_size"]))
    max_input_len = str(int(build["max_input_len"]))
    max_seq_len = str(int(build["max_seq_len"]))
    tokenizer = str(tokenizer_dir)
    return {
        "preprocessing": {
            "triton_max_batch_size": batch,
            "tokenizer_dir": tokenizer,
            "add_special_tokens": "true",
            "chat_template": _b(serving.chat_template),
            "max_input_len": max_input_len,
            "max_seq_len": max_seq_len,
            "preprocessing_instance_count": str(serving.preprocessing_instances),
        },
        "tensorrt_llm": {
            "triton_backend": "python" if cpu else "tensorrtllm",
            "triton_max_batch_size": batch,
            "decoupled_mode": _b(serving.decoupled),
            "max_queue_delay_microseconds": str(serving.max_queue_delay_microseconds),
            "parameters": format_parameters(llm),
        },
        "postprocessing": {
            "triton_max_batch_size": batch,
            "tokenizer_dir": tokenizer,
            "skip_special_tokens": "true",
            "engine_key": engine_key,
            "postprocessing_instance_count": str(serving.postprocessing_instances),
        },
        "ensemble": {"triton_max_batch_size": batch},
        "tensorrt_llm_bls": {
            "triton_max_batch_size": batch,
            "decoupled_mode": _b(serving.decoupled),
            "tokenizer_dir": tokenizer,
            "skip_special_tokens": "true",
            "engine_key": engine_key,
            "bls_instance_count": "1",
        },
    }


def fill_template(text: str, params: Mapping[str, str], *, source: str) -> str:
    """Replace every ``${name}``; missing and unused parameters are errors naming ``source``.

    Raises:
        ConfigError: a placeholder has no value, or a parameter matches no placeholder.
    """
    used = set(_PLACEHOLDER.findall(text))
    missing = sorted(used - set(params))
    if missing:
        raise ConfigError(
            f"{source}: no value for placeholder(s) {', '.join('${' + m + '}' for m in missing)}",
            path=source,
            field=missing[0],
        )
    unknown = sorted(set(params) - used)
    if unknown:
        raise ConfigError(
            f"{source}: unknown template parameter(s) {', '.join(unknown)}", path=source, field=unknown[0]
        )
    return _PLACEHOLDER.sub(lambda m: params[m.group(1)], text)


def render_files(
    params: Mapping[str, Mapping[str, str]], *, templates: Path | None = None, cpu: bool
) -> dict[str, bytes]:
    """Relative path -> content of every file of the rendered repository (pure, sorted).

    Raises:
        ConfigError: see :func:`fill_template`; also a model without parameters.
    """
    root = templates or template_dir()
    files: dict[str, bytes] = {}
    for model in MODELS:
        if model not in params:
            raise ConfigError(f"no parameters for model {model}", field=model)
        source = root / model / "config.pbtxt"
        files[f"{model}/config.pbtxt"] = fill_template(
            source.read_text(), params[model], source=str(source)
        ).encode()
        if model in PYTHON_MODELS or (model == "tensorrt_llm" and cpu):
            files[f"{model}/1/model.py"] = (root / model / "1" / "model.py").read_bytes()
        else:
            files[f"{model}/1/.keep"] = b""
    extra = sorted(set(params) - set(MODELS))
    if extra:
        raise ConfigError(f"parameters for unknown model(s): {', '.join(extra)}", field=extra[0])
    return dict(sorted(files.items()))


def _looks_like(config: Any) -> str:
    if isinstance(config, dict) and ("architectures" in config or "model_type" in config):
        return (
            "it looks like a Hugging Face model config; build an engine from it first, "
            "e.g. with triton-llm engine build"
        )
    if isinstance(config, dict) and "architecture" in config and "mapping" in config:
        return "it looks like a TensorRT-LLM checkpoint config: run trtllm-build --checkpoint_dir on it first"
    return "point at the directory trtllm-build wrote (its --output_dir)"


def read_engine_config(engine_dir: Path) -> dict[str, Any]:
    """The engine's config.json: trtllm-build's (build_config + pretrained_config) or a cpu engine's.

    Raises:
        NotFoundError: no config.json in engine_dir.
        IncompatibleError: config.json is not valid JSON or not a TensorRT-LLM engine config.
    """
    path = engine_dir / "config.json"
    if not path.is_file():
        raise NotFoundError(f"{path} does not exist: not an engine directory", path=str(path))
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IncompatibleError(
            f"{path} is not a TensorRT-LLM engine config: not valid JSON ({e})", path=str(path)
        ) from e
    if not (
        isinstance(config, dict)
        and isinstance(config.get("build_config"), dict)
        and isinstance(config.get("pretrained_config"), dict)
    ):
        raise IncompatibleError(
            f"{path} is not a TensorRT-LLM engine config (no build_config and pretrained_config)",
            path=str(path),
            hint=_looks_like(config),
        )
    return config


def render_engine_files(
    engine_dir: Path,
    *,
    serving: Serving,
    tokenizer_dir: Path | None = None,
    checkpoint_dir: Path | None = None,
    engine_key: str = "",
) -> dict[str, bytes]:
    """Every file of the repository for the engine in ``engine_dir`` (see :func:`render_repository`).

    Raises:
        ConfigError, NotFoundError, IncompatibleError: see :func:`render_repository`.
    """
    engine_dir = engine_dir.resolve()
    config = read_engine_config(engine_dir)
    params = plan_parameters(
        config,
        serving=serving,
        engine_dir=engine_dir,
        tokenizer_dir=(tokenizer_dir or engine_dir / "tokenizer").resolve(),
        checkpoint_dir=checkpoint_dir.resolve() if checkpoint_dir is not None else None,
        engine_key=engine_key,
    )
    return render_files(params, cpu=is_cpu_engine(config))


def render_repository(
    engine_dir: Path,
    *,
    serving: Serving,
    out: Path,
    tokenizer_dir: Path | None = None,
    checkpoint_dir: Path | None = None,
    overwrite: bool = False,
    engine_key: str = "",
) -> Path:
    """Render the repository for the engine in ``engine_dir`` into a fresh ``out`` directory.

    Args:
        engine_dir: engine directory with config.json (and ``tokenizer/`` by default).
        serving: the recipe's serving settings.
        out: target directory; must not exist (or be empty) unless ``overwrite``.
        tokenizer_dir: defaults to ``engine_dir / "tokenizer"``.
        checkpoint_dir: the TensorRT-LLM checkpoint a cpu engine serves.
        overwrite: replace an existing ``out``.
        engine_key: the engine's store key, returned with every response (see :func:`plan_parameters`).

    Returns:
        ``out``.

    Raises:
        ConfigError: ``out`` exists and is not empty, or a template problem.
        NotFoundError, IncompatibleError: see :func:`read_engine_config`, :func:`plan_parameters`.
    """
    files = render_engine_files(
        engine_dir,
        serving=serving,
        tokenizer_dir=tokenizer_dir,
        checkpoint_dir=checkpoint_dir,
        engine_key=engine_key,
    )
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty", path=str(out), hint="pass --force to replace it")
    tmp = out.parent / f".{out.name}.incomplete-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, data in files.items():
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out)
    return out


class ServableEngine(Protocol):
    """An engine on local disk with what serving it needs: a restored
    :class:`~triton_llm.engine.local.LocalEngine` or a checked ``--engine-dir``."""

    @property
    def engine_dir(self) -> Path: ...

    @property
    def serving(self) -> Serving: ...

    @property
    def tokenizer_dir(self) -> Path: ...

    @property
    def checkpoint_dir(self) -> Path | None: ...


def engine_files(engine: ServableEngine, *, engine_key: str = "") -> dict[str, bytes]:
    """The repository files for ``engine`` (its serving settings, tokenizer and, for a cpu engine,
    checkpoint), by relative path: the one way an engine becomes a repository's contents, written
    as one directory by :func:`render_engine` or as a numbered version by ``repo update``.

    Raises:
        as :func:`render_engine_files`.
    """
    return render_engine_files(
        engine.engine_dir,
        serving=engine.serving,
        tokenizer_dir=engine.tokenizer_dir,
        checkpoint_dir=engine.checkpoint_dir,
        engine_key=engine_key,
    )


def render_engine(
    engine: ServableEngine, out: Path, *, overwrite: bool = False, engine_key: str = ""
) -> Path:
    """Render :func:`engine_files` into ``out``, a fresh directory (``repo render``, the tests and
    the benchmarks).

    Raises:
        as :func:`render_repository`.
    """
    return render_repository(
        engine.engine_dir,
        serving=engine.serving,
        out=out,
        tokenizer_dir=engine.tokenizer_dir,
        checkpoint_dir=engine.checkpoint_dir,
        overwrite=overwrite,
        engine_key=engine_key,
    )

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
from typing import Any

from triton_llm._package_data import TEMPLATES, data_dir
from triton_llm.engine.recipe import Serving
from triton_llm.errors import ConfigError, IncompatibleError, NotFoundError

MODELS = ("preprocessing", "tensorrt_llm", "postprocessing", "ensemble", "tensorrt_llm_bls")
PYTHON_MODELS = ("preprocessing", "postprocessing", "tensorrt_llm_bls")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def template_dir() -> Path:
    """The ``model_repository/`` templates, shipped as package data (``triton_llm.model_repository``)."""
    return data_dir(TEMPLATES)


def _b(value: bool) -> str:
    return "true" if value else "false"


def plan_parameters(
    engine_config: Mapping[str, Any],
    *,
    serving: Serving,
    engine_dir: Path,
    tokenizer_dir: Path,
    checkpoint_dir: Path | None = None,
) -> dict[str, dict[str, str]]:
    """Template parameters for each model, from the engine config and serving settings.

    Raises:
        IncompatibleError: the engine config lacks build_config limits, or a cpu engine has no
            checkpoint_dir.
        ConfigError: serving settings that would break exact streaming.
    """
    build = engine_config.get("build_config")
    if not isinstance(build, Mapping) or "max_batch_size" not in build:
        raise IncompatibleError(
            f"{engine_dir}/config.json has no build_config.max_batch_size", path=str(engine_dir)
        )
    cpu = engine_config.get("backend") == "cpu"
    if cpu and checkpoint_dir is None:
        raise IncompatibleError("a cpu engine needs its checkpoint_dir to serve", path=str(engine_dir))
    if serving.decoupled and serving.postprocessing_instances > 1:
        raise ConfigError(
            "serving.postprocessing_instances must be 1 with decoupled streaming: the streaming "
            "detokenizer keeps per-stream state in the postprocessing process",
            field="serving.postprocessing_instances",
            value=serving.postprocessing_instances,
        )
    mapping = engine_config.get("pretrained_config", {}).get("mapping", {})
    world_size = int(
        mapping.get("world_size") or int(mapping.get("tp_size", 1)) * int(mapping.get("pp_size", 1))
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
            "max_beam_width": str(int(build.get("max_beam_width", 1))),
            "batching_strategy": serving.batching_strategy,
            "engine_dir": str(engine_dir),
            "kv_cache_free_gpu_mem_fraction": repr(float(serving.kv_cache_free_gpu_mem_fraction)),
            "exclude_input_in_output": _b(serving.exclude_input_in_output),
            "checkpoint_dir": str(checkpoint_dir) if checkpoint_dir is not None else "",
            "max_input_len": max_input_len,
            "max_seq_len": max_seq_len,
            "cpu_threads": str(serving.threads),
            "world_size": str(world_size),
        },
        "postprocessing": {
            "triton_max_batch_size": batch,
            "tokenizer_dir": tokenizer,
            "skip_special_tokens": "true",
            "postprocessing_instance_count": str(serving.postprocessing_instances),
        },
        "ensemble": {"triton_max_batch_size": batch},
        "tensorrt_llm_bls": {
            "triton_max_batch_size": batch,
            "decoupled_mode": _b(serving.decoupled),
            "tokenizer_dir": tokenizer,
            "skip_special_tokens": "true",
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


def read_engine_config(engine_dir: Path) -> dict[str, Any]:
    """The engine's config.json.

    Raises:
        NotFoundError: no config.json in engine_dir.
    """
    path = engine_dir / "config.json"
    if not path.is_file():
        raise NotFoundError(f"{path} does not exist: not an engine directory", path=str(path))
    return json.loads(path.read_text())


def render_repository(
    engine_dir: Path,
    *,
    serving: Serving,
    out: Path,
    tokenizer_dir: Path | None = None,
    checkpoint_dir: Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Render the repository for the engine in ``engine_dir`` into a fresh ``out`` directory.

    Args:
        engine_dir: engine directory with config.json (and ``tokenizer/`` by default).
        serving: the recipe's serving settings.
        out: target directory; must not exist (or be empty) unless ``overwrite``.
        tokenizer_dir: defaults to ``engine_dir / "tokenizer"``.
        checkpoint_dir: the TensorRT-LLM checkpoint a cpu engine serves.
        overwrite: replace an existing ``out``.

    Returns:
        ``out``.

    Raises:
        ConfigError: ``out`` exists and is not empty, or a template problem.
        NotFoundError, IncompatibleError: see :func:`read_engine_config`, :func:`plan_parameters`.
    """
    engine_dir = engine_dir.resolve()
    config = read_engine_config(engine_dir)
    params = plan_parameters(
        config,
        serving=serving,
        engine_dir=engine_dir,
        tokenizer_dir=(tokenizer_dir or engine_dir / "tokenizer").resolve(),
        checkpoint_dir=checkpoint_dir.resolve() if checkpoint_dir is not None else None,
    )
    files = render_files(params, cpu=config.get("backend") == "cpu")
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

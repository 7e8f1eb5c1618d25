"""A versioned model repository: each engine key put into it becomes a numbered version.

Triton reads one ``config.pbtxt`` per model, not per version, so the layout is:

- ``preprocessing``, ``tensorrt_llm`` and ``postprocessing`` are *versioned*: version ``N`` of each
  is the directory ``<model>/<N>/`` with the model's ``model.py`` (python models) and a
  ``version.json`` that records the engine key and that version's own parameters (tokenizer,
  checkpoint, limits). The python models read their parameters from config.pbtxt overlaid with
  ``version.json`` (:func:`triton_llm.repository._pb.model_parameters`). The shared config.pbtxt
  changes only in ``version_policy`` (which versions are loaded), a field Triton ignores when it
  decides whether a loaded version must reload (facts: ``triton_model_updates.json``), so loading N+1
  never reloads N.
- ``ensemble`` and ``tensorrt_llm_bls`` are *routers* with one version: their config pins the
  version of every model they call (``model_version: N``). Switching traffic to N+1 rewrites and
  reloads the routers; a request holds the router and step models it started with until its last
  response (``triton_model_updates.json``), so no stream mixes versions.

``triton-llm-versions.json`` at the repository root (a file, which Triton never takes for a model)
records every version's engine key and the configs it was rendered with, which versions are
loaded, and which one serves. Functions named ``plan_*`` are pure; the others write files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from triton_llm.errors import IncompatibleError, NotFoundError

VERSIONED_MODELS = ("preprocessing", "tensorrt_llm", "postprocessing")
ROUTER_MODELS = ("ensemble", "tensorrt_llm_bls")
STATE_FILE = "triton-llm-versions.json"
VERSION_FILE = "version.json"
_PARAMETER = re.compile(
    r'^parameters \{ key: "(?P<key>[^"]+)", value: \{ string_value: "(?P<value>(?:[^"\\]|\\.)*)" \} \}$'
)
_POLICY = re.compile(r"^version_policy: .*$", re.MULTILINE)
_STEP_VERSION = re.compile(r"^(\s*)model_version: -?\d+$", re.MULTILINE)


class VersionRecord(BaseModel):
    """One version of the repository: the engine it serves and the configs rendered for it."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    engine_key: str
    created: str
    configs: dict[str, str] = Field(description="model -> config.pbtxt rendered for this engine")


class RepositoryState(BaseModel):
    """``triton-llm-versions.json``: versions, what is loaded and what serves."""

    model_config = ConfigDict(extra="forbid")

    format: int = 1
    versions: dict[int, VersionRecord] = Field(default_factory=dict)
    loaded: list[int] = Field(default_factory=list)
    serving: int | None = None
    history: list[int] = Field(default_factory=list, description="versions that served, oldest first")

    def record(self, version: int) -> VersionRecord:
        """The record of ``version``.

        Raises:
            NotFoundError: the repository has no such version.
        """
        if version not in self.versions:
            raise NotFoundError(f"the repository has no version {version}", value=version)
        return self.versions[version]

    def next_version(self) -> int:
        """The number the next engine put into the repository gets."""
        return max(self.versions, default=0) + 1

    def previous_serving(self) -> int | None:
        """The version that served before the current one (what ``rollback`` restores)."""
        earlier = [v for v in self.history if v != self.serving]
        return earlier[-1] if earlier else None


# --- pure planning ---------------------------------------------------------------------------


def parse_parameters(config: str) -> dict[str, str]:
    """The ``parameters`` lines of a config.pbtxt rendered by :mod:`triton_llm.repository.render`."""
    out: dict[str, str] = {}
    for line in config.splitlines():
        match = _PARAMETER.match(line.strip())
        if match:
            out[match["key"]] = re.sub(r"\\(.)", r"\1", match["value"])
    return out


def structure(config: str) -> str:
    """A config without comments, parameters and version policy: what versions of a model must share."""
    kept = [
        line
        for line in config.splitlines()
        if line.strip()
        and not line.lstrip().startswith("#")
        and not _PARAMETER.match(line.strip())
        and not _POLICY.match(line)
    ]
    return "\n".join(kept)


def with_version_policy(config: str, versions: list[int]) -> str:
    """``config`` loading exactly ``versions`` (``version_policy: { specific: ... }`` after ``name``)."""
    policy = (
        f"version_policy: {{ specific: {{ versions: [ {', '.join(str(v) for v in sorted(versions))} ] }} }}"
    )
    text = _POLICY.sub("", config).replace("\n\n\n", "\n\n")
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("name:")) + 1
    return "\n".join([*lines[:at], policy, *lines[at:]]) + "\n"


def routed(model: str, config: str, version: int) -> str:
    """A router's config calling ``version`` of every versioned model."""
    if model == "ensemble":
        return _STEP_VERSION.sub(lambda m: f"{m.group(1)}model_version: {version}", config)
    extra = "\n".join(
        f'parameters {{ key: "{name}_model_version", value: {{ string_value: "{version}" }} }}'
        for name in ("preprocessing", "tensorrt_llm")
    )
    lines = config.rstrip("\n").splitlines()
    at = max(i for i, line in enumerate(lines) if line.startswith("parameters ")) + 1
    return "\n".join([*lines[:at], extra, *lines[at:]]) + "\n"


def version_parameters(model: str, config: str, version: int) -> dict[str, str]:
    """What ``<model>/<version>/version.json`` overlays on the shared config's parameters."""
    params = parse_parameters(config)
    if model == "postprocessing":
        params["tensorrt_llm_model_version"] = str(version)  # its cancellations stop its own version
    return params


def plan_version(
    files: dict[str, bytes], *, version: int, engine_key: str, created: str
) -> tuple[dict[str, bytes], VersionRecord]:
    """The files of version ``version`` (its directories only) and its record.

    Args:
        files: a repository rendered for the engine (:func:`~triton_llm.repository.render.render_files`).
        version: the number it gets.
        engine_key: the engine's store key.
        created: UTC ISO-8601 time, recorded.
    """
    out: dict[str, bytes] = {}
    configs: dict[str, str] = {}
    for model in (*VERSIONED_MODELS, *ROUTER_MODELS):
        config = files[f"{model}/config.pbtxt"].decode()
        if model in ROUTER_MODELS:
            configs[model] = routed(model, config, version)
            continue
        configs[model] = config
        for rel, data in files.items():
            if rel.startswith(f"{model}/1/"):
                out[f"{model}/{version}/{rel[len(model) + 3 :]}"] = data
        record = {"engine_key": engine_key, "parameters": version_parameters(model, config, version)}
        out[f"{model}/{version}/{VERSION_FILE}"] = (
            json.dumps(record, indent=1, sort_keys=True) + "\n"
        ).encode()
    return out, VersionRecord(version=version, engine_key=engine_key, created=created, configs=configs)


def compatibility_problems(current: VersionRecord, new: VersionRecord) -> list[str]:
    """Why ``new`` cannot be loaded beside ``current`` in one server (empty when it can).

    Versions share each model's config.pbtxt, so everything but parameters must match; a
    TensorRT engine (``backend: "tensorrtllm"``) reads its engine path from the shared config, so
    it can never change in place.
    """
    problems = []
    for model in VERSIONED_MODELS:
        if structure(current.configs[model]) != structure(new.configs[model]):
            problems.append(
                f"{model}/config.pbtxt differs beyond its parameters (batch size, instances, decoupling "
                "or backend)"
            )
    if 'backend: "tensorrtllm"' in new.configs["tensorrt_llm"]:
        problems.append(
            "a TensorRT engine (backend tensorrtllm) reads its engine path from the shared config.pbtxt and "
            "needs a second engine and KV cache on the same GPUs: update GPU groups at the replica level "
            "(triton-llm rollout)"
        )
    return problems


def plan_configs(state: RepositoryState) -> dict[str, bytes]:
    """Every config.pbtxt for ``state``: versioned models load ``loaded``, routers call ``serving``.

    A versioned model's shared config is always the first version's (its parameters are
    overlaid per version, so the bytes Triton compares never change), except the GPU
    ``tensorrt_llm``, whose config (engine path) follows the serving version.
    """
    if state.serving is None or not state.loaded:
        raise NotFoundError("the repository has no serving version")
    base = state.record(min(state.versions))
    serving = state.record(state.serving)
    out = {}
    for model in VERSIONED_MODELS:
        config = base.configs[model]
        if 'backend: "tensorrtllm"' in serving.configs[model]:
            config = serving.configs[model]
        out[f"{model}/config.pbtxt"] = with_version_policy(config, state.loaded).encode()
    for model in ROUTER_MODELS:
        out[f"{model}/config.pbtxt"] = serving.configs[model].encode()
    return out


# --- effects ---------------------------------------------------------------------------------


def read_state(repo: Path) -> RepositoryState | None:
    """The repository's version state, or None for a repository that is not versioned."""
    path = repo / STATE_FILE
    if not path.is_file():
        return None
    return RepositoryState.model_validate_json(path.read_text())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.incomplete-{os.getpid()}")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(data)
    tmp.replace(path)


def write_state(repo: Path, state: RepositoryState) -> None:
    """Write ``triton-llm-versions.json`` atomically."""
    _write_atomic(repo / STATE_FILE, (state.model_dump_json(indent=1) + "\n").encode())


def write_configs(repo: Path, state: RepositoryState) -> list[str]:
    """Write the configs :func:`plan_configs` gives for ``state``; returns the models whose config changed."""
    changed = []
    for rel, data in plan_configs(state).items():
        path = repo / rel
        if not path.is_file() or path.read_bytes() != data:
            _write_atomic(path, data)
            changed.append(rel.split("/")[0])
    return changed


def add_version(
    repo: Path, files: dict[str, bytes], *, engine_key: str
) -> tuple[RepositoryState, VersionRecord]:
    """Write the next version's directories for an engine's rendered files; nothing loads it yet.

    A new repository gets version 1, serving and loaded, with its routers. Version directories
    are written under a temporary name and renamed, so a crash never leaves half a version.

    Raises:
        IncompatibleError: the engine cannot share the repository's configs (see
            :func:`compatibility_problems`).
    """
    state = read_state(repo)
    fresh = state is None
    if state is None:
        state = RepositoryState()
    version = state.next_version()
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    version_files, record = plan_version(files, version=version, engine_key=engine_key, created=created)
    if not fresh and state.serving is not None:
        problems = compatibility_problems(state.record(state.serving), record)
        if problems:
            raise IncompatibleError(
                f"engine {engine_key[:12]} cannot be loaded beside version {state.serving}: "
                + "; ".join(problems),
                key=engine_key,
                path=str(repo),
            )
    for model in VERSIONED_MODELS:
        final = repo / model / str(version)
        tmp = repo / model / f".{version}.incomplete-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)  # a version left by a crash before its record was written
        for rel, data in version_files.items():
            if rel.startswith(f"{model}/{version}/"):
                target = tmp / rel[len(f"{model}/{version}/") :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        _precompile(tmp)
        tmp.rename(final)
    state.versions[version] = record
    if fresh:
        for model in ROUTER_MODELS:
            for rel, data in files.items():
                if rel.startswith(f"{model}/1/"):
                    _write_atomic(repo / rel, data)
        state.loaded = [version]
        state.serving = version
        state.history = [version]
        write_configs(repo, state)
    write_state(repo, state)
    return state, record


def _precompile(version_dir: Path) -> None:
    """Write ``model.py``'s bytecode next to it now (unchecked hash: never rewritten).

    Otherwise the python backend's import writes ``__pycache__`` into the version directory as the
    version loads; Triton then sees the version modified and loads a second copy of it on the next
    load of the model (facts: ``triton_model_updates.json``). The stub runs this interpreter (same
    cache tag).
    """
    import importlib.util
    import py_compile

    source = version_dir / "model.py"
    if source.is_file():
        py_compile.compile(
            str(source),
            cfile=importlib.util.cache_from_source(str(source)),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )


def drop_version(repo: Path, state: RepositoryState, version: int) -> None:
    """Forget a version that never served (a refused update): its directories and record go."""
    for model in VERSIONED_MODELS:
        shutil.rmtree(repo / model / str(version), ignore_errors=True)
    state.versions.pop(version, None)
    state.loaded = [v for v in state.loaded if v != version]
    write_state(repo, state)

"""Model facts needed at plan time (heads, layers, positions), read without the weights.

Sources: a Hugging Face ``config.json`` (local file, or fetched alone from the hub), or the
metadata of a GGUF file (read up to the fields needed: no tokenizer arrays, no tensors).
Nothing here downloads weights.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from triton_llm.errors import BuildError, NotFoundError, RecipeError


@dataclass(frozen=True)
class ModelInfo:
    """Shape facts of a decoder-only transformer."""

    architecture: str
    num_attention_heads: int
    num_key_value_heads: int
    num_hidden_layers: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    head_dim: int

    @classmethod
    def from_hf_config(cls, config: dict[str, Any], *, source: str = "config.json") -> ModelInfo:
        """Read the facts from a Hugging Face ``config.json`` mapping.

        Raises:
            RecipeError: a required key is missing.
        """
        try:
            heads = int(config["num_attention_heads"])
            hidden = int(config["hidden_size"])
            archs = config.get("architectures") or [config.get("model_type", "unknown")]
            return cls(
                architecture=str(archs[0]),
                num_attention_heads=heads,
                num_key_value_heads=int(config.get("num_key_value_heads") or heads),
                num_hidden_layers=int(config["num_hidden_layers"]),
                hidden_size=hidden,
                intermediate_size=int(config["intermediate_size"]),
                vocab_size=int(config["vocab_size"]),
                max_position_embeddings=int(config["max_position_embeddings"]),
                head_dim=int(config.get("head_dim") or hidden // heads),
            )
        except KeyError as e:
            raise RecipeError(f"{source}: missing model key {e.args[0]!r}", path=source) from e


def tensor_parallel_problems(model: ModelInfo, tp: int) -> list[RecipeError]:
    """The one tensor-parallel split rule, for every backend and the converter: ``tp`` divides the
    attention heads and the MLP's intermediate size, and divides the KV heads or is a multiple of
    them (KV heads are then replicated, as TensorRT-LLM's ``dup_kv_weight`` does).

    Returns:
        One error per broken part of the rule (field ``parallelism.tp``); empty when it holds.
    """
    heads, kv, inter = model.num_attention_heads, model.num_key_value_heads, model.intermediate_size
    broken: list[str] = []
    if heads % tp:
        broken.append(
            f"must divide the model's {heads} attention heads "
            f"(rule: tp divides num_attention_heads={heads}; valid tp: {_divisors(heads)})"
        )
    if kv % tp and tp % kv:
        broken.append(
            f"must divide the model's {kv} KV heads, or be a multiple of it "
            f"(rule: KV heads split evenly or are replicated; num_key_value_heads={kv})"
        )
    if inter % tp:
        broken.append(
            f"must divide the model's MLP width (rule: tp divides intermediate_size={inter}; "
            f"valid tp: {_divisors(inter, upto=max(heads, kv))})"
        )
    return [RecipeError(f"parallelism.tp={tp}: {why}", field="parallelism.tp", value=tp) for why in broken]


def _divisors(n: int, *, upto: int | None = None) -> list[int]:
    return [d for d in range(1, min(n, upto or n) + 1) if n % d == 0]


def read_hf_config(model_dir: Path) -> dict[str, Any]:
    """Load ``config.json`` from a Hugging Face model folder.

    Raises:
        NotFoundError: the folder has no config.json.
    """
    path = model_dir / "config.json"
    if not path.is_file():
        raise NotFoundError(
            f"{model_dir} has no config.json; is it a Hugging Face checkpoint?", path=str(path)
        )
    return json.loads(path.read_text())


def model_info_from_dir(model_dir: Path) -> ModelInfo:
    """ModelInfo of a local Hugging Face model folder."""
    return ModelInfo.from_hf_config(read_hf_config(model_dir), source=str(model_dir / "config.json"))


# GGUF layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md, version 2 and 3): magic
# "GGUF", uint32 version, uint64 tensor count, uint64 key/value count, then key/value pairs (a
# uint64-length-prefixed UTF-8 key, a uint32 value type, the value), little-endian.
_GGUF_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
# ModelInfo field -> GGUF key suffix after "<architecture>."
_GGUF_FIELDS = {
    "num_attention_heads": "attention.head_count",
    "num_key_value_heads": "attention.head_count_kv",
    "num_hidden_layers": "block_count",
    "hidden_size": "embedding_length",
    "intermediate_size": "feed_forward_length",
    "vocab_size": "vocab_size",
    "max_position_embeddings": "context_length",
}
# GGUF "general.architecture" -> Hugging Face class, for the architectures the backends know.
_GGUF_ARCHITECTURES = {"llama": "LlamaForCausalLM"}


def _read_exact(f: IO[bytes], n: int, source: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise BuildError(f"{source}: GGUF metadata ends early", path=source)
    return data


def _gguf_value(f: IO[bytes], vtype: int, source: str, *, keep: bool) -> Any:
    """Read one value, or skip it (``keep=False``); an array gives its length, its items skipped."""
    if vtype in _GGUF_SCALARS:
        fmt = _GGUF_SCALARS[vtype]
        return struct.unpack(fmt, _read_exact(f, struct.calcsize(fmt), source))[0]
    if vtype == _GGUF_STRING:
        (n,) = struct.unpack("<Q", _read_exact(f, 8, source))
        if not keep:
            f.seek(n, 1)
            return None
        return _read_exact(f, n, source).decode("utf-8", "replace")
    if vtype == _GGUF_ARRAY:
        etype, count = struct.unpack("<IQ", _read_exact(f, 12, source))
        if etype in _GGUF_SCALARS:
            f.seek(count * struct.calcsize(_GGUF_SCALARS[etype]), 1)
        else:
            for _ in range(count):
                _gguf_value(f, etype, source, keep=False)
        return count
    raise BuildError(f"{source}: unknown GGUF value type {vtype}", path=source)


def read_gguf_metadata(f: IO[bytes], wanted: set[str], *, source: str = "GGUF") -> dict[str, Any]:
    """The GGUF key/values named in ``wanted`` plus ``general.architecture`` (an array gives its
    length), reading no further than the last of them.

    A ``{arch}.<suffix>`` name in ``wanted`` stands for the file's own architecture prefix.

    Raises:
        BuildError: not a GGUF file (version 2 or 3), or truncated metadata.
    """
    magic, version = struct.unpack("<4sI", _read_exact(f, 8, source))
    if magic != b"GGUF" or version not in (2, 3):
        raise BuildError(f"{source}: not a GGUF v2/v3 file (magic {magic!r}, version {version})", path=source)
    _, kv_count = struct.unpack("<QQ", _read_exact(f, 16, source))
    plain = {k for k in wanted if not k.startswith("{arch}.")} | {"general.architecture"}
    suffixes = {k.split(".", 1)[1] for k in wanted if k.startswith("{arch}.")}
    found: dict[str, Any] = {}

    def needed(key: str) -> bool:
        prefix, _, suffix = key.partition(".")
        arch = found.get("general.architecture")
        return key in plain or (suffix in suffixes and arch in (None, prefix))

    def complete() -> bool:
        arch = found.get("general.architecture")
        return plain <= found.keys() and all(f"{arch}.{s}" in found for s in suffixes)

    for _ in range(kv_count):
        if complete():
            break
        (n,) = struct.unpack("<Q", _read_exact(f, 8, source))
        key = _read_exact(f, n, source).decode("utf-8", "replace")
        (vtype,) = struct.unpack("<I", _read_exact(f, 4, source))
        keep = needed(key)
        value = _gguf_value(f, vtype, source, keep=keep)
        if keep:
            found[key] = value
    return found


def gguf_model_info(path: Path) -> ModelInfo:
    """ModelInfo from a GGUF file's metadata: the first few hundred bytes of a llama.cpp file,
    since the model's keys precede the tokenizer arrays (which are skipped, not parsed, if not).

    Raises:
        BuildError: a required key is missing, or the file is not GGUF.
    """
    wanted = {"general.architecture"} | {f"{{arch}}.{suffix}" for suffix in _GGUF_FIELDS.values()}
    with path.open("rb") as f:
        found = read_gguf_metadata(f, wanted, source=path.name)
    arch = str(found.get("general.architecture", ""))
    values: dict[str, int] = {}
    for name, suffix in _GGUF_FIELDS.items():
        if f"{arch}.{suffix}" not in found:
            raise BuildError(f"{path.name}: GGUF metadata has no {arch}.{suffix}", path=str(path))
        values[name] = int(found[f"{arch}.{suffix}"])
    return ModelInfo(
        architecture=_GGUF_ARCHITECTURES.get(arch, arch),
        head_dim=values["hidden_size"] // values["num_attention_heads"],
        **values,
    )

"""Model shape facts from GGUF metadata: the same values as the ``gguf`` package, reading only what
is needed."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import pytest

from triton_llm.engine.fetch import builtin_gguf
from triton_llm.engine.model_info import gguf_model_info, read_gguf_metadata
from triton_llm.errors import BuildError

FIELDS = {
    "num_attention_heads": "attention.head_count",
    "num_key_value_heads": "attention.head_count_kv",
    "num_hidden_layers": "block_count",
    "hidden_size": "embedding_length",
    "intermediate_size": "feed_forward_length",
    "vocab_size": "vocab_size",
    "max_position_embeddings": "context_length",
}
WANTED = {"general.architecture", *(f"{{arch}}.{s}" for s in FIELDS.values())}


class CountingReader(io.RawIOBase):
    """A read-only file that remembers the furthest byte it was asked for."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)
        self.furthest = 0

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.furthest = max(self.furthest, self.inner.tell())
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.inner.seek(offset, whence)

    def tell(self) -> int:
        return self.inner.tell()


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _gguf(pairs: list[tuple[str, str, Any]]) -> bytes:
    """A GGUF v3 header with these key/values (types: "u32", "str", "strs")."""
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(pairs))
    for key, kind, value in pairs:
        out += _string(key)
        if kind == "u32":
            out += struct.pack("<II", 4, value)
        elif kind == "str":
            out += struct.pack("<I", 8) + _string(value)
        else:
            out += struct.pack("<IIQ", 9, 8, len(value)) + b"".join(_string(v) for v in value)
    return out


def test_builtin_gguf_facts_match_the_gguf_package() -> None:
    from gguf import GGUFReader

    path = builtin_gguf("smollm2-135m-instruct")
    reader = GGUFReader(str(path))
    arch = reader.fields["general.architecture"].contents()
    info = gguf_model_info(path)
    for name, suffix in FIELDS.items():
        assert getattr(info, name) == int(reader.fields[f"{arch}.{suffix}"].contents()), name
    assert info.architecture == "LlamaForCausalLM"
    assert info.head_dim == info.hidden_size // info.num_attention_heads


def test_reading_stops_after_the_last_needed_key() -> None:
    data = builtin_gguf("smollm2-135m-instruct").read_bytes()[: 4 << 20]
    f = CountingReader(data)
    found = read_gguf_metadata(f, WANTED)
    assert found["general.architecture"] == "llama" and found["llama.block_count"] == 30
    assert f.furthest < 1024, "the tokenizer arrays (49152 tokens) and tensors must not be read"


def test_keys_before_the_architecture_and_after_skipped_arrays_are_found() -> None:
    pairs: list[tuple[str, str, Any]] = [
        ("llama.block_count", "u32", 2),
        ("tokenizer.ggml.tokens", "strs", ["<s>", "</s>", "hello"]),
        ("general.architecture", "str", "llama"),
        ("llama.attention.head_count", "u32", 4),
        ("llama.attention.head_count_kv", "u32", 2),
        ("llama.embedding_length", "u32", 64),
        ("llama.feed_forward_length", "u32", 128),
        ("llama.vocab_size", "u32", 100),
        ("llama.context_length", "u32", 256),
        ("general.name", "str", "never read"),
    ]
    data = _gguf(pairs)
    f = CountingReader(data)
    found = read_gguf_metadata(f, WANTED)
    assert found["llama.block_count"] == 2 and found["llama.context_length"] == 256
    assert f.furthest < data.index(b"general.name")


def test_missing_key_and_non_gguf_files_are_build_errors(tmp_path: Path) -> None:
    no_kv = tmp_path / "no-kv.gguf"
    no_kv.write_bytes(_gguf([("general.architecture", "str", "llama"), ("llama.block_count", "u32", 2)]))
    with pytest.raises(BuildError, match=r"no llama\.attention\.head_count"):
        gguf_model_info(no_kv)
    other = tmp_path / "model.safetensors"
    other.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(BuildError, match="not a GGUF"):
        gguf_model_info(other)

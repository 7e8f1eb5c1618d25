"""The S3 store fails during a pull (``triton-llm engine pull``, the real CLI, against moto).

What must hold, for a store that starts answering 500 and for one that becomes unreachable
(its listener closed, connections reset) after the pull has started:
- bounded retries: no request is sent more than ``transfer.retries + 1`` times, and the pull
  ends within a bounded time;
- a clear error: exit code 1 and one line that names the store's answer (InternalError) and the
  attempts made, or that it cannot be reached;
- nothing partial left in place: no ``*.incomplete`` file, every file under its final name has
  exactly the published bytes, and no marker says the entry is complete; the same pull succeeds
  once the store is back.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.s3 import forward, s3_env
from tests.store.conftest import SMALL_PARTS, make_tree, tree_bytes
from triton_llm.settings import Settings
from triton_llm.store import open_store, publish

KEY = "fa17" * 16
RETRIES = 2
MARKER = ".triton-llm-entry.json"


class FaultyStore:
    """A proxy in front of moto that passes the manifest, then fails data reads.

    ``mode`` "500": every later data GET gets 500 InternalError. ``mode`` "unreachable": the first
    data GET has its connection reset and the listener closes, so every retry is refused.
    """

    def __init__(self, upstream: str, mode: str) -> None:
        self.upstream, self.mode = upstream.rsplit("//", 1)[1], mode
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.failing = True
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                data_get = self.command == "GET" and "/data/" in self.path
                store.attempts[(self.path, self.headers.get("Range", ""))] += 1
                if data_get and store.failing and store.mode == "500":
                    body = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if data_get and store.failing and store.mode == "unreachable":
                    threading.Thread(target=store.close, daemon=True).start()
                    linger = struct.pack("ii", 1, 0)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.close_connection = True
                    self.connection.close()  # RST: the store vanished mid-pull
                    return
                host, port = store.upstream.split(":")
                forward(self, host, int(port))

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def published(s3_store_uri: str, tmp_path: Path) -> tuple[str, Path]:
    src = make_tree(tmp_path / "src", seed=13)
    store = open_store(s3_store_uri, settings=Settings(transfer=SMALL_PARTS))
    publish(store, src, stage="engine", key=KEY, fingerprint_inputs={}, versions={}, transfer=SMALL_PARTS)
    return s3_store_uri, src


@pytest.fixture(params=["500", "unreachable"])
def faulty(request: pytest.FixtureRequest, s3_endpoint: str) -> Iterator[FaultyStore]:
    proxy = FaultyStore(s3_endpoint, request.param)
    try:
        yield proxy
    finally:
        proxy.close()


def pull_cli(
    uri: str, endpoint: str, dest: Path, s3_endpoint: str, *, key: str = KEY
) -> subprocess.CompletedProcess[str]:
    """``triton-llm engine pull KEY`` in a fresh process, against ``endpoint``."""
    env = {
        **os.environ,
        **s3_env(s3_endpoint),
        "TRITON_LLM_TRANSFER__RETRIES": str(RETRIES),
        "TRITON_LLM_TRANSFER__RETRY_BACKOFF": "0.05",
        "TRITON_LLM_TRANSFER__PART_SIZE": str(SMALL_PARTS.part_size),
        "TRITON_LLM_TRANSFER__MULTIPART_THRESHOLD": str(SMALL_PARTS.multipart_threshold),
        "TRITON_LLM_PROGRESS": "off",
    }
    argv = [sys.executable, "-m", "triton_llm.cli", "engine", "pull", key, "--dest", str(dest)]
    argv += ["--store", uri, "--endpoint-url", endpoint]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


def assert_nothing_partial(dest: Path, src: Path) -> None:
    """No temp file, no marker, and every file present holds exactly its published bytes."""
    files = [p for p in dest.rglob("*") if p.is_file()] if dest.exists() else []
    assert not [p for p in files if p.name.endswith(".incomplete")], files
    assert not (dest / MARKER).exists(), "a failed pull left a completion marker"
    want = tree_bytes(src)
    for path, data in tree_bytes(dest).items():
        assert path in want and data == want[path], f"{path} is left partial or foreign in {dest}"


def test_a_failing_store_ends_the_pull_with_bounded_retries_a_clear_error_and_nothing_partial(
    published: tuple[str, Path], faulty: FaultyStore, s3_endpoint: str, tmp_path: Path
) -> None:
    uri, src = published
    dest = tmp_path / "dest"
    start = time.monotonic()
    done = pull_cli(uri, faulty.endpoint, dest, s3_endpoint)
    elapsed = time.monotonic() - start
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stdout + done.stderr
    assert lines and lines[0].startswith("error:"), done.stderr
    if faulty.mode == "500":
        assert "InternalError" in lines[0], lines
        assert f"after {RETRIES + 1} attempt" in lines[0], lines
    else:
        assert "ConnectionRefusedError" in lines[0] and f"after {RETRIES + 1} attempt" in lines[0], lines
    assert max(faulty.attempts.values()) <= RETRIES + 1, faulty.attempts
    assert elapsed < 30, elapsed
    assert_nothing_partial(dest, src)

    # the store comes back: the same pull restores the whole entry, verified
    faulty.close()
    again = pull_cli(uri, s3_endpoint, dest, s3_endpoint)
    assert again.returncode == 0, again.stdout + again.stderr
    assert tree_bytes(dest) == tree_bytes(src)

"""Error classification against real HTTP answers: 5xx/throttling retried, 4xx permanent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from triton_llm.errors import StoreError, TransientStoreError
from triton_llm.settings import Settings, TransferSettings
from triton_llm.store import open_store, read_manifest


class _Answer(BaseHTTPRequestHandler):
    status = 503
    code = "SlowDown"
    requests: list[str]

    def _reply(self) -> None:
        type(self).requests.append(self.path)
        body = f"<Error><Code>{self.code}</Code><Message>test answer</Message></Error>".encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = _reply

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def answering(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Answer]]:
    """A local HTTP server that gives every S3 request the same error answer."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    handler = type("Handler", (_Answer,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.endpoint = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def _store(endpoint: str):  # type: ignore[no-untyped-def]
    settings = Settings(s3_endpoint_url=endpoint, transfer=TransferSettings(retries=2))
    return open_store("s3://bkt/p", settings=settings, retry_backoff=0.01)


@pytest.mark.parametrize(
    ("status", "code"), [(503, "SlowDown"), (500, "InternalError"), (429, "TooManyRequests")]
)
def test_server_errors_are_retried_then_transient(answering: type[_Answer], status: int, code: str) -> None:
    answering.status, answering.code = status, code
    with pytest.raises(TransientStoreError, match=f"after 3 attempt.*{code}"):
        read_manifest(_store(answering.endpoint), stage="engine", key="k")  # type: ignore[attr-defined]
    assert len(answering.requests) == 3


@pytest.mark.parametrize(("status", "code", "hint"), [(403, "AccessDenied", "credentials chain"),
                                                      (403, "InvalidAccessKeyId", "credentials chain"),
                                                      (400, "InvalidArgument", "S3 endpoint")])  # fmt: skip
def test_client_errors_are_permanent_and_say_what_to_check(
    answering: type[_Answer], status: int, code: str, hint: str
) -> None:
    answering.status, answering.code = status, code
    with pytest.raises(StoreError, match=code) as err:
        read_manifest(_store(answering.endpoint), stage="engine", key="k")  # type: ignore[attr-defined]
    assert not err.value.retryable and hint in str(err.value)
    assert len(answering.requests) == 1

"""The frontend as a child process of another command (``triton-llm serve --openai-port``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from triton_llm.errors import ServeError
from triton_llm.frontend.config import FrontendConfig


def frontend_command(config: FrontendConfig) -> list[str]:
    """The ``triton-llm frontend`` argv that serves ``config`` (pure)."""
    return [
        sys.executable,
        "-m",
        "triton_llm.cli",
        "frontend",
        "--triton",
        config.triton_url,
        "--triton-model",
        config.triton_model,
        "--model-name",
        config.model_name,
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--max-inflight",
        str(config.max_inflight),
        "--timeout",
        str(config.timeout),
    ]


def local_address(host: str) -> str:
    """Where a process on this host connects to reach a server bound to ``host``."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _answers(url: str, model_name: str) -> bool:
    """True when the frontend (not some other listener on the port) lists ``model_name``."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return any(m.get("id") == model_name for m in json.loads(r.read()).get("data", []))
    except (OSError, ValueError, AttributeError):
        return False


@contextmanager
def frontend_process(config: FrontendConfig, *, ready_timeout: float = 60.0) -> Iterator[subprocess.Popen]:
    """Run the frontend for the duration of the block; it may start before Triton (it answers 503).

    Raises:
        ServeError: it exited or did not listen in time.
    """
    if config.port == 0:
        raise ServeError("the frontend sidecar needs a fixed port", field="port", value=0)
    proc = subprocess.Popen(frontend_command(config))
    try:
        deadline = time.monotonic() + ready_timeout
        host = local_address(config.host)
        url = f"http://{f'[{host}]' if ':' in host else host}:{config.port}/v1/models"
        while True:
            if proc.poll() is not None:
                raise ServeError(
                    f"the OpenAI frontend exited with code {proc.returncode} before listening on "
                    f"{config.host}:{config.port}",
                    hint="see its message above; choose another --openai-port, or 0 to disable it",
                )
            if _answers(url, config.model_name):
                break
            if time.monotonic() > deadline:
                raise ServeError(
                    f"the OpenAI frontend did not answer on {config.host}:{config.port} "
                    f"within {ready_timeout:.0f}s"
                )
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

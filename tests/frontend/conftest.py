"""A real ``triton-llm frontend`` process in front of the session's real Triton (tests/fixtures/triton.py)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MODEL = "smollm2-135m"


@dataclass(frozen=True)
class RunningFrontend:
    """A started frontend: its base URL (``http://host:port``), process and log."""

    url: str
    proc: subprocess.Popen
    log: Path

    def openai(self, **kwargs: Any) -> Any:
        """An ``openai.OpenAI`` client for it (no retries, so errors surface as they are)."""
        import openai

        return openai.OpenAI(
            base_url=f"{self.url}/v1", api_key="unused", **{"max_retries": 0, "timeout": 300, **kwargs}
        )


@contextmanager
def start_frontend(triton_url: str, workdir: Path, *flags: str) -> Iterator[RunningFrontend]:
    """Run ``triton-llm frontend --port 0`` until the block ends, then stop it with SIGINT."""
    log = workdir / f"frontend-{time.monotonic_ns()}.log"
    command = [sys.executable, "-m", "triton_llm.cli", "frontend", "--triton", triton_url, "--port", "0"]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*command, "--model-name", MODEL, *flags], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            found = re.search(r"openai frontend: (http://\S+)/v1", log.read_text())
            if found:
                break
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield RunningFrontend(found.group(1), proc, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def frontend(triton_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFrontend]:
    """The frontend for the session's Triton, serving the model as ``smollm2-135m``."""
    with start_frontend(triton_server.grpc_url, tmp_path_factory.mktemp("frontend")) as running:
        yield running
    assert running.proc.returncode == 0, running.log.read_text()

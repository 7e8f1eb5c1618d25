"""The OpenAI drivers against a real third-party OpenAI-compatible server: ``transformers serve``.

Hugging Face's own server (transformers[serving]) serves the demo model (the builtin
SmolLM2 GGUF, materialized as a Hugging Face folder) on the CPU, with streaming chat and
completions. Our own frontend (branch openai-frontend) is not merged yet; once it is, the
same drivers run against it (see bench/RESULTS.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.processes import stop
from triton_llm.cli import main
from triton_llm.launch.tritonserver import free_port

TOKENS = 8


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``transformers serve <demo model folder>`` on a free port; always stopped."""
    from triton_llm.engine.fetch import materialize_builtin

    root = tmp_path_factory.mktemp("openai")
    model = materialize_builtin("smollm2-135m-instruct", root / "model")
    port = free_port()
    serve = Path(sys.executable).parent / "transformers"
    log = (root / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            str(serve),
            "serve",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (root / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                    models = [m["id"] for m in json.load(r)["data"]]
                    break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "transformers serve was not ready in 300 s"
                time.sleep(0.5)
        yield {"url": url, "model": str(model), "models": models, "tokenizer": str(model)}
    finally:
        stop(proc, grace=30)
        log.close()


@pytest.mark.parametrize("protocol", ["openai-chat", "openai-completions"])
def test_openai_protocols(protocol: str, openai_server: dict[str, Any], tmp_path: Path) -> None:
    code = main(
        ["bench", "--protocol", protocol, "--url", openai_server["url"], "--model", openai_server["model"],
         "--tokenizer", openai_server["tokenizer"], "--input-tokens", "16", "--num-prompts", "4",
         "--max-tokens", str(TOKENS), "--concurrency", "2", "--requests", "4", "--out", str(tmp_path),
         "--no-plot"]
    )  # fmt: skip
    run = json.loads((tmp_path / "bench.json").read_text())
    summary = run["steps"][0]["summary"]
    assert code == 0, run["steps"][0]["requests"][0]["error_message"]
    assert summary["completed"] == 4 and summary["errors"] == {}
    for record in run["steps"][0]["requests"]:
        assert 1 <= record["output_tokens"] <= TOKENS
        assert record["ttft"] > 0 and record["e2e"] >= record["ttft"]
        assert record["chunks"], "no content deltas were timed"


def test_openai_unknown_model(openai_server: dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    args = ["--model", "no-such-model", "--tokenizer", openai_server["tokenizer"], "--requests", "1"]
    code = main(["bench", "--protocol", "openai-chat", "--url", openai_server["url"], *args])
    err = capsys.readouterr().err
    assert code == 2  # a model the server does not list is bad input
    assert "no-such-model" in err

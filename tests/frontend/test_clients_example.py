"""clients/openai_chat_stream.sh: curl streaming SSE from the frontend."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.frontend.conftest import MODEL

SCRIPT = Path(__file__).resolve().parents[2] / "clients/openai_chat_stream.sh"
PROMPT = "Say hi in Chinese and add an emoji."


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_curl_streams_the_same_answer_as_the_openai_client(frontend):
    with frontend.openai() as c:
        expected = c.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=40
        )
    out = run(f"{frontend.url}/v1", MODEL, PROMPT, "40")
    assert out.returncode == 0, out.stderr
    events = [line.removeprefix("data: ") for line in out.stdout.split("\n\n") if line]
    assert events[-1] == "[DONE]" and all(not e.startswith("data:") for e in events)
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"])
    assert text == expected.choices[0].message.content
    assert chunks[-1]["usage"] == expected.usage.model_dump(exclude_none=True)


def test_curl_example_reports_errors(frontend):
    out = run(f"{frontend.url}/v1", "no-such-model", PROMPT, "8")
    assert out.returncode == 22
    assert json.loads(out.stdout)["error"]["code"] == "model_not_found"

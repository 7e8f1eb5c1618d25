"""Bad ``triton-llm bench`` flags exit 2 with a message naming the flag, before any request."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_llm.cli import main

# A closed port: nothing may be sent anyway, every case fails on its flags first.
URL = ["--url", "127.0.0.1:9"]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--concurrency", "0"], "--concurrency"),
        (["--concurrency", "1,x"], "--concurrency"),
        (["--request-rate", "-2"], "--request-rate"),
        (["--concurrency", "1", "--request-rate", "1"], "--request-rate"),
        (["--requests", "0"], "--requests"),
        (["--duration", "abc"], "--duration"),
        (["--requests", "2", "--duration", "3"], "--duration"),
        (["--max-tokens", "uniform:9,2"], "--max-tokens"),
        (["--input-tokens", "normal:5"], "--input-tokens"),
        (["--slo", "ttft_p95=100ms"], "--slo"),
        (["--slo", "tpot_p99=1"], "--slo"),
        (["--protocol", "websocket"], "--protocol"),
        (["--extra-body", "[1, 2]"], "--extra-body"),
        (["--timeout", "0"], "--timeout"),
        (["--num-prompts", "-1"], "--num-prompts"),
    ],
)
def test_argparse_rejects(args: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["bench", *URL, *args])
    assert e.value.code == 2
    assert flag in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--extra-body", "{}"], "--extra-body"),  # grpc has no JSON body
        (["--protocol", "openai-chat", "--end-id", "3"], "--end-id"),
        (["--protocol", "openai-chat", "--chat-template"], "--chat-template"),
        (["--prompts", "p.jsonl", "--input-tokens", "5"], "--input-tokens"),
        (["--warmup", "-1"], "--warmup"),
        (["--prompts", "missing.jsonl"], "--prompts"),
        (["--prompts", "bad.jsonl"], "--prompts"),
    ],
)
def test_usage_errors(
    args: list[str],
    flag: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jsonl").write_text('{"text": "hi"}\n')
    (tmp_path / "bad.jsonl").write_text('{"text": "hi"}\n{"prompt": ""}\n')
    assert main(["bench", *URL, "--metrics-url", "none", *args]) == 2
    err = capsys.readouterr().err
    assert flag in err
    if "bad.jsonl" in args:
        assert "bad.jsonl:2" in err  # names the line


def test_unreachable_server_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.jsonl").write_text('{"text": "hi"}\n')
    code = main(["bench", *URL, "--prompts", str(tmp_path / "p.jsonl"), "--requests", "1", "--timeout", "5"])
    assert code == 1
    assert "127.0.0.1:9" in capsys.readouterr().err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--slo" in out and "Exit codes" in out

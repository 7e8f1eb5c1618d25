"""The frontend as serve's child process: its command, start-up failures, and clean stops."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from triton_llm.cli import build_parser
from triton_llm.errors import ServeError
from triton_llm.frontend import FrontendConfig, frontend_command, frontend_process, local_address
from triton_llm.launch.tritonserver import free_port


def test_the_command_is_what_the_cli_parses_back():
    config = FrontendConfig(
        triton_url="10.0.0.5:8001", model_name="m", host="0.0.0.0", port=9100, max_inflight=7, timeout=30
    )
    argv = frontend_command(config)
    assert argv[1:4] == ["-m", "triton_llm.cli", "frontend"]
    args = build_parser().parse_args(argv[3:])
    parsed = (args.triton, args.model_name, args.host, args.port, args.max_inflight, args.timeout)
    assert parsed == ("10.0.0.5:8001", "m", "0.0.0.0", 9100, 7, 30.0)
    assert args.triton_model == "ensemble"
    assert (local_address("0.0.0.0"), local_address("::"), local_address("10.1.2.3")) == (
        "127.0.0.1",
        "::1",
        "10.1.2.3",
    )


def test_runs_before_triton_and_stops_with_the_block():
    port = free_port()
    config = FrontendConfig(triton_url=f"127.0.0.1:{free_port()}", model_name="m", port=port)
    url = f"http://127.0.0.1:{port}/v1/models"
    with frontend_process(config) as proc, urllib.request.urlopen(url, timeout=30) as r:
        assert json.loads(r.read())["data"][0]["id"] == "m"
    assert proc.returncode == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_taken_port_is_a_loud_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = FrontendConfig(model_name="m", port=taken.getsockname()[1])
        with pytest.raises(ServeError, match="exited with code 1 before listening"), frontend_process(config):
            pass

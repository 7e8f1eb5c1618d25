"""``triton-llm launch`` and ``triton-llm agent``: dry-run output, bad input messages, agents."""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from triton_llm.cli import main

RECIPE = "smollm2-135m"


def _dry(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[list[str], dict[str, str]]:
    assert main(["launch", RECIPE, "--model-repo", "/models/repo", "--dry-run", *args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    env = dict(shlex.split(line)[1].split("=", 1) for line in lines[:-1])
    return shlex.split(lines[-1]), env


def test_local_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    argv, env = _dry(capsys, "--set", "parallelism.tp=3", "--bind-address", "127.0.0.1")
    assert argv[:3] == [shutil.which("mpirun"), "--host", "localhost:3"]  # absolute, as launch runs it
    assert argv.count("-n") == 3
    assert sum(a.startswith("--backend-config=python,shm-region-prefix-name=") for a in argv) == 3
    assert "--http-address=127.0.0.1" in argv
    assert "TRITONLLM_GROUP" in env and "PYTHONHOME" in env


def test_lws_dry_run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LWS_LEADER_ADDRESS", "trt-0.trt.llm")
    monkeypatch.setenv("LWS_GROUP_SIZE", "3")
    monkeypatch.setenv("LWS_WORKER_INDEX", "0")
    argv, _ = _dry(capsys, "--set", "parallelism.tp=3", "--lws", "--agent", "kubectl")
    assert argv[2] == "trt-0.trt.llm:1,trt-0-1.trt.llm:1,trt-0-2.trt.llm:1"
    agent = argv[argv.index("plm_rsh_agent") + 1]
    assert "agent kubectl-exec" in agent


def test_statefulset_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    argv, _ = _dry(
        capsys,
        *("--set", "parallelism.tp=2", "--statefulset", "trt", "--service", "hl", "--namespace", "llm"),
        *(
            "--ssh-port",
            "2222",
            "--transport",
            "allow_split_networks=true",
        ),
    )
    assert argv[2] == "trt-0.hl.llm.svc.cluster.local:1,trt-1.hl.llm.svc.cluster.local:1"
    assert "-p 2222" in argv[argv.index("plm_rsh_args") + 1]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "parallelism.tp=3", "--hostfile", "HOSTFILE"], "needs 3 slots but the hosts give 2"),
        (["--transport", "btl_tcp_if_include=nosuch7"], "'nosuch7'"),
        (["--transport", "nccl_ib_gid_index=3"], "transport.nccl_ib_hca"),
        (
            ["--set", "parallelism.tp=2", "--statefulset", "trt", "--transport", "btl_tcp_if_include=lo"],
            "loopback",
        ),
        (["--set", "parallelism.tp=2", "--engine-dir", "ENGINE"], "tp*pp = 2 ranks but"),
        (["--agent", "kubectl", "--ssh-key", "/k"], "only apply to --agent ssh"),
        (["--lws"], "--lws needs LWS_LEADER_ADDRESS"),
        (["--set", "parallelism.tpp=2"], "parallelism.tpp"),
    ],
)
def test_bad_input_exits_2_naming_the_mismatch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], needle: str
) -> None:
    hostfile = tmp_path / "hosts"
    hostfile.write_text("a slots=1\nb slots=1\n")
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "rank0.engine").write_bytes(b"x")
    args = [str(hostfile) if a == "HOSTFILE" else str(engine) if a == "ENGINE" else a for a in args]
    assert main(["launch", RECIPE, "--model-repo", "/m", "--dry-run", *args]) == 2
    assert needle in capsys.readouterr().err


def test_help_has_examples_and_every_flag_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["launch", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--lws --agent kubectl" in out
    for flag in (
        "--hostfile",
        "--statefulset",
        "--agent",
        "--ssh-port",
        "--ssh-key",
        "--join-timeout",
        "--dry-run",
    ):
        assert flag in out


def test_kubectl_exec_agent_runs_kubectl(tmp_path: Path) -> None:
    fake = tmp_path / "kubectl"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done\n')
    fake.chmod(0o755)
    cmd = [sys.executable, "-m", "triton_llm.cli", "agent", "kubectl-exec", "--kubectl", str(fake)]
    proc = subprocess.run(
        [*cmd, "trt-0-1.trt.llm", "orted", "-mca", "x", "1"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    args = [line.strip("[]") for line in proc.stdout.splitlines()]
    assert args == ["exec", "-i", "trt-0-1", "-n", "llm", "--", "sh", "-c", "orted -mca x 1"]


def test_agent_wait_exits_0_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "triton_llm.cli", "agent", "wait"], stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    assert "ready" in proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - start < 5
    proc.stderr.close()


def test_agent_ssh_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agent", "ssh", "--port", "2022", "--dry-run"]) == 0
    assert capsys.readouterr().out.split() == ["/usr/sbin/sshd", "-D", "-e", "-p", "2022"]

"""Remote agents: ssh options, kubectl exec, arbitrary executables."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from triton_llm.errors import UsageError
from triton_llm.launch.agents import kubectl_exec_argv, make_agent, pod_of_host, sshd_argv


def test_ssh_port_and_key_become_plm_rsh_args() -> None:
    agent = make_agent("ssh", ssh_port=2222, ssh_key="/keys/id")
    mca = agent.mca_args()
    assert mca[:4] == ["--mca", "plm_rsh_agent", "ssh", "--mca"]
    assert mca[4] == "plm_rsh_args"
    assert "-p 2222" in mca[5] and "-i /keys/id" in mca[5] and "BatchMode=yes" in mca[5]
    assert agent.argv()[0] == "ssh" and agent.argv()[-4:] == ["-p", "2222", "-i", "/keys/id"]


def test_kubectl_agent_calls_our_entry_point() -> None:
    agent = make_agent("kubectl", kubectl="/bin/kubectl", container="triton")
    assert agent.argv()[:5] == [sys.executable, "-m", "triton_llm.cli", "agent", "kubectl-exec"]
    assert agent.argv()[-4:] == ["--kubectl", "/bin/kubectl", "--container", "triton"]
    assert agent.mca_args()[2].startswith(sys.executable)


def test_executable_path_agent(tmp_path: Path) -> None:
    exe = tmp_path / "my agent"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    agent = make_agent(str(exe))
    assert agent.kind == "path" and agent.argv() == [str(exe)]
    assert agent.mca_args() == ["--mca", "plm_rsh_agent", f"'{exe}'"]


@pytest.mark.parametrize(
    ("spec", "kwargs", "needle"),
    [
        ("/nonexistent/agent", {}, "neither ssh, kubectl nor an executable file"),
        ("kubectl", {"ssh_port": 22}, "--ssh-port/--ssh-key only apply to --agent ssh"),
        ("ssh", {"ssh_port": 70000}, "--ssh-port 70000 is not a TCP port"),
    ],
)
def test_agent_errors(spec: str, kwargs: dict, needle: str) -> None:
    with pytest.raises(UsageError) as e:
        make_agent(spec, **kwargs)
    assert needle in str(e.value)


def test_non_executable_file_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "agent.sh"
    f.write_text("echo")
    with pytest.raises(UsageError, match="neither ssh"):
        make_agent(str(f))


def test_pod_of_host() -> None:
    assert pod_of_host("trt-0-1.trt.llm") == ("trt-0-1", "llm")
    assert pod_of_host("trt-1.trt-hl.llm.svc.cluster.local") == ("trt-1", "llm")
    assert pod_of_host("trt-1") == ("trt-1", None)


def test_kubectl_exec_argv_joins_the_command_for_sh() -> None:
    argv = kubectl_exec_argv("trt-0-2.trt.llm", ["orted", "-mca", "ess", "env"], container="c")
    assert argv == [
        "kubectl",
        "exec",
        "-i",
        "trt-0-2",
        "-n",
        "llm",
        "-c",
        "c",
        "--",
        "sh",
        "-c",
        "orted -mca ess env",
    ]
    with pytest.raises(UsageError, match="no command"):
        kubectl_exec_argv("trt-0-2.trt.llm", [])


def test_sshd_argv() -> None:
    assert sshd_argv(port=2222) == ["/usr/sbin/sshd", "-D", "-e", "-p", "2222"]
    assert sshd_argv(port=22, sshd="sshd", config=Path("/c"))[-2:] == ["-f", "/c"]

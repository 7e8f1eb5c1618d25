"""The mpirun plan: MPMD shape, per-rank Triton argv (leader mode), placement, environment."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from triton_llm.errors import LaunchError, LaunchPlanError
from triton_llm.launch.agents import make_agent
from triton_llm.launch.hosts import Host, local_hosts, statefulset_hosts
from triton_llm.launch.plan import (
    GROUP_ENV,
    build_mpi_command,
    check_engine_ranks,
    group_id_for,
    plan_mpi,
    plan_triton_group,
)
from triton_llm.launch.transport import TransportSettings
from triton_llm.launch.tritonserver import TritonInstall

INSTALL = TritonInstall(
    binary=Path("/opt/ts/bin/tritonserver"), backend_dir=Path("/opt/ts/backends"), root=Path("/opt/ts")
)


def _ranks(argv: list[str]) -> list[list[str]]:
    """Split an MPMD command into the per-rank programs (after each ``-n 1``)."""
    body = argv[argv.index("-n") :]
    out, cur = [], []
    for tok in [*body, ":"]:
        if tok == ":":
            assert cur[:2] == ["-n", "1"]
            out.append(cur[2:])
            cur = []
        else:
            cur.append(tok)
    return out


@pytest.mark.parametrize(("tp", "pp"), [(1, 1), (3, 1), (2, 2)])
def test_one_tritonserver_per_rank_in_leader_mode(tp: int, pp: int) -> None:
    plan = plan_triton_group(
        INSTALL, model_repo=Path("/repo"), tp=tp, pp=pp, hosts=local_hosts(tp * pp), environ={"PATH": "/bin"}
    )
    ranks = _ranks(plan.argv)
    assert len(ranks) == tp * pp == plan.world_size
    prefixes = set()
    for rank, argv in enumerate(ranks):
        assert argv[0] == "/opt/ts/bin/tritonserver"
        assert "--disable-auto-complete-config" in argv
        assert "--model-repository=/repo" in argv
        (shm,) = [a for a in argv if a.startswith("--backend-config=python,shm-region-prefix-name=")]
        assert shm.endswith(f"{plan.shm_prefix}{rank}_")
        prefixes.add(shm)
        if rank == 0:
            assert "--http-port=8000" in argv and "--grpc-port=8001" in argv and "--metrics-port=8002" in argv
            assert not any(a.startswith("--model-control-mode") for a in argv)
        else:
            assert "--model-control-mode=explicit" in argv and "--load-model=tensorrt_llm" in argv
            for off in ("--allow-http=false", "--allow-grpc=false", "--allow-metrics=false"):
                assert off in argv
    assert len(prefixes) == tp * pp


def test_local_command_shape() -> None:
    plan = plan_triton_group(INSTALL, model_repo=Path("/repo"), tp=3, pp=1, hosts=local_hosts(3), environ={})
    argv = plan.argv
    assert argv[:3] == ["mpirun", "--host", "localhost:3"]
    assert "--bind-to" in argv and argv[argv.index("--bind-to") + 1] == "none"
    assert "plm_rsh_agent" not in argv
    assert argv.count(":") == 2
    assert plan.remote_hosts == []
    assert plan.env[GROUP_ENV] == plan.group_id
    assert argv[argv.index("-x") : argv.index("-x") + 2] == ["-x", GROUP_ENV]


def test_group_id_is_reproducible_and_input_dependent() -> None:
    a = plan_triton_group(INSTALL, model_repo=Path("/repo"), tp=2, pp=1, hosts=local_hosts(2), environ={})
    b = plan_triton_group(INSTALL, model_repo=Path("/repo"), tp=2, pp=1, hosts=local_hosts(2), environ={})
    c = plan_triton_group(
        INSTALL, model_repo=Path("/repo"), tp=2, pp=1, hosts=local_hosts(2), environ={}, http_port=9000
    )
    assert a.argv == b.argv and a.group_id == b.group_id != c.group_id
    assert group_id_for("x") != group_id_for("y")


def test_multi_host_placement_agent_and_transport() -> None:
    hosts = statefulset_hosts("trt", world_size=4, replicas=2, namespace="llm")
    transport = TransportSettings(btl_tcp_if_include=("eth0",), nccl_socket_ifname="eth0")
    plan = plan_triton_group(
        INSTALL,
        model_repo=Path("/repo"),
        tp=2,
        pp=2,
        hosts=hosts,
        environ={"PATH": "/bin", "LD_LIBRARY_PATH": "/lib"},
        agent=make_agent("ssh", ssh_port=2222),
        transport=transport,
        is_root=True,
        mpirun="/opt/hpcx/ompi/bin/mpirun",
    )
    argv = plan.argv
    assert argv[0] == "/opt/hpcx/ompi/bin/mpirun"  # remote orted under the same prefix
    assert argv[2] == "trt-0.trt.llm.svc.cluster.local:2,trt-1.trt.llm.svc.cluster.local:2"
    assert plan.rank_hosts == [hosts[0].name] * 2 + [hosts[1].name] * 2
    assert plan.remote_hosts == [hosts[1].name]
    joined = shlex.join(argv)
    assert "--mca plm_rsh_agent ssh" in joined and "-p 2222" in joined
    assert "--mca plm_rsh_no_tree_spawn 1" in joined
    assert "--mca orte_keep_fqdn_hostnames 1" in joined  # pod names resolve only with their domain
    assert "--mca btl_tcp_if_include eth0" in joined and "-x NCCL_SOCKET_IFNAME" in joined
    assert plan.env["NCCL_SOCKET_IFNAME"] == "eth0"
    assert plan.env["OMPI_ALLOW_RUN_AS_ROOT"] == "1" and plan.env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] == "1"
    assert plan.env["PATH"] == "/bin" and plan.env["LD_LIBRARY_PATH"] == "/lib"
    for name in ("PATH", "LD_LIBRARY_PATH", GROUP_ENV):
        assert f"-x {name}" in joined
    assert "VIRTUAL_ENV" not in joined  # only variables that are set are exported


def test_library_path_is_prepended() -> None:
    plan = plan_mpi(
        [["a"]],
        hosts=local_hosts(1),
        environ={"LD_LIBRARY_PATH": "/old"},
        group_id="g1",
        library_path=["/new"],
    )
    assert plan.env["LD_LIBRARY_PATH"] == "/new:/old"
    assert "-x LD_LIBRARY_PATH" in shlex.join(plan.argv)


def test_only_used_hosts_are_listed() -> None:
    argv = build_mpi_command([["a"], ["b"]], hosts=[Host("x", 4), Host("y", 4)], group_id="g")
    assert argv[2] == "x:2"


def test_render_is_shell_lines() -> None:
    plan = plan_mpi([["prog", "a b"]], hosts=local_hosts(1), environ={"PATH": "/bin x"}, group_id="g1")
    lines = plan.render().splitlines()
    assert "export PATH='/bin x'" in lines and f"export {GROUP_ENV}=g1" in lines
    assert shlex.split(lines[-1]) == plan.argv


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"rank_argvs": []}, "no ranks"),
        (
            {"rank_argvs": [["a"]] * 3, "hosts": [Host("x", 1), Host("y", 1)]},
            "needs 3 slots but the hosts give 2",
        ),
        ({"rank_argvs": [["a"]] * 2, "hosts": [Host("x", 1), Host("y", 1)]}, "no remote agent"),
    ],
)
def test_bad_topologies(kwargs: dict, needle: str) -> None:
    kwargs.setdefault("hosts", local_hosts(1))
    with pytest.raises(LaunchError) as e:
        build_mpi_command(group_id="g", **kwargs)
    assert needle in str(e.value)


def test_engine_rank_files_must_match_tp_pp(tmp_path: Path) -> None:
    for i in range(2):
        (tmp_path / f"rank{i}.engine").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{}")
    check_engine_ranks(tmp_path, 2)
    with pytest.raises(LaunchError) as e:
        check_engine_ranks(tmp_path, 3)
    assert "tp*pp = 3 ranks" in str(e.value) and "2 rank file(s) (rank0.engine, rank1.engine)" in str(e.value)
    (tmp_path / "rank1.engine").unlink()
    (tmp_path / "rank2.engine").write_bytes(b"x")
    with pytest.raises(LaunchError, match=r"rank0\.engine, rank2\.engine"):
        check_engine_ranks(tmp_path, 2)
    with pytest.raises(LaunchError, match="none"):
        check_engine_ranks(tmp_path / "missing", 1)


def test_engine_mapping_must_match_tp_pp(tmp_path: Path) -> None:
    import json

    config = {
        "pretrained_config": {"mapping": {"tp_size": 3, "pp_size": 1}},
        "runtime": {"weights": "checkpoint"},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    check_engine_ranks(tmp_path, 3)  # a cpu engine: rank files live in the checkpoint
    with pytest.raises(LaunchError) as e:
        check_engine_ranks(tmp_path, 2)
    assert "tp*pp = 2 ranks" in str(e.value) and "built for 3 (tp_size=3, pp_size=1)" in str(e.value)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for i in range(3):
        (ckpt / f"rank{i}.safetensors").write_bytes(b"x")
    check_engine_ranks(tmp_path, 3, checkpoint_dir=ckpt)
    (ckpt / "rank2.safetensors").unlink()
    with pytest.raises(LaunchError, match=r"2 rank file\(s\) \(rank0\.safetensors, rank1\.safetensors\)"):
        check_engine_ranks(tmp_path, 3, checkpoint_dir=ckpt)


def test_ranks_yield_when_a_host_has_more_ranks_than_cores() -> None:
    crowded = plan_mpi([["a"]] * 3, hosts=local_hosts(3), environ={}, group_id="g", local_cpus=2)
    roomy = plan_mpi([["a"]] * 2, hosts=local_hosts(2), environ={}, group_id="g", local_cpus=2)
    assert "--mca mpi_yield_when_idle 1" in shlex.join(crowded.argv)
    assert "mpi_yield_when_idle" not in roomy.argv


def test_shm_prefix_gives_open_mpi_a_group_directory() -> None:
    plan = plan_mpi([["a"]], hosts=local_hosts(1), environ={}, group_id="g", shm_prefix="tllm_g_r")
    assert plan.mpi_shm_dir == "/dev/shm/tllm_g_rmpi"
    assert "--mca btl_vader_backing_directory /dev/shm/tllm_g_rmpi" in shlex.join(plan.argv)
    assert plan_mpi([["a"]], hosts=local_hosts(1), environ={}, group_id="g").mpi_shm_dir is None


def test_nccl_and_ucx_variables_reach_every_rank() -> None:
    environ = {"NCCL_DEBUG": "INFO", "UCX_TLS": "rc", "NCCL_EMPTY": "", "OTHER": "x"}
    plan = plan_mpi([["a"], ["b"]], hosts=local_hosts(2), environ=environ, group_id="g")
    assert plan.env["NCCL_DEBUG"] == "INFO" and plan.env["UCX_TLS"] == "rc"
    assert "NCCL_EMPTY" not in plan.env and "OTHER" not in plan.env
    forwarded = [plan.argv[i + 1] for i, arg in enumerate(plan.argv) if arg == "-x"]
    assert "NCCL_DEBUG" in forwarded and "UCX_TLS" in forwarded


def test_remote_ranks_need_an_absolute_mpirun_and_local_ones_do_not() -> None:
    hosts = statefulset_hosts("trt", world_size=2, replicas=2, namespace="llm")
    agent = make_agent("ssh", ssh_port=2222)
    with pytest.raises(LaunchPlanError, match="absolute path"):
        plan_mpi([["a"], ["b"]], hosts=hosts, environ={}, group_id="g", agent=agent, mpirun="mpirun")
    local = plan_mpi([["a"], ["b"]], hosts=local_hosts(2), environ={}, group_id="g", mpirun="mpirun")
    assert local.argv[0] == "mpirun" and "orte_keep_fqdn_hostnames" not in local.argv


def test_with_an_absolute_mpirun_every_rank_keeps_the_plans_path() -> None:
    # Open MPI's prefix puts /usr/bin first on the ranks' PATH; Triton's python stub takes its Python
    # (and so the venv) from PATH, so each rank program resets it.
    env = {"PATH": "/venv/bin:/usr/bin"}
    plan = plan_mpi(
        [["a", "1"], ["b"]], hosts=local_hosts(2), environ=env, group_id="g", mpirun="/usr/bin/mpirun"
    )
    joined = shlex.join(plan.argv)
    assert (
        "-n 1 /usr/bin/env PATH=/venv/bin:/usr/bin a 1 : -n 1 /usr/bin/env PATH=/venv/bin:/usr/bin b"
        in joined
    )
    relative = plan_mpi([["a"]], hosts=local_hosts(1), environ=env, group_id="g", mpirun="mpirun")
    assert relative.argv[-1:] == ["a"] and "/usr/bin/env" not in relative.argv


def test_rank_0_exports_the_first_response_histogram_the_dashboard_reads() -> None:
    """The dashboard's TTFT panels read nv_inference_first_response_histogram_ms, which Triton (2.52+)
    exports only with --metrics-config=histogram_latencies=true (core c815a13); 2.51 ignores the key."""
    plan = plan_triton_group(INSTALL, model_repo=Path("/repo"), tp=2, pp=1, hosts=local_hosts(2), environ={})
    rank0, rank1 = _ranks(plan.argv)
    assert "--metrics-config=histogram_latencies=true" in rank0
    assert not any(a.startswith("--metrics-config") for a in rank1)  # metrics are off there

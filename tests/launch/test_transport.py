"""Transport settings: resolution order, interface checks against this host, contradictions."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_llm.errors import ConfigError
from triton_llm.launch.transport import (
    TransportSettings,
    check_transport,
    load_transport,
    local_interfaces,
    parse_transport_flags,
    transport_mpi_args,
)

IFACES = ["lo", "eth0", "eth1", "ib0"]


def test_flags_beat_env_beat_file(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "transport:\n  btl_tcp_if_include: [eth1]\n  nccl_ib_hca: mlx5_0\n  ucx_net_devices: eth1\n"
    )
    env = {"TRITON_LLM_TRANSPORT__NCCL_IB_HCA": "mlx5_1", "TRITON_LLM_TRANSPORT__UCX_NET_DEVICES": "eth0"}
    s = load_transport({"ucx_net_devices": "mlx5_1:1"}, environ=env, config_file=cfg)
    assert s.btl_tcp_if_include == ("eth1",)
    assert s.nccl_ib_hca == "mlx5_1"
    assert s.ucx_net_devices == "mlx5_1:1"


def test_comma_lists_and_types(tmp_path: Path) -> None:
    env = {
        "TRITON_LLM_TRANSPORT__BTL_TCP_IF_INCLUDE": "eth0, eth1",
        "TRITON_LLM_TRANSPORT__NCCL_IB_GID_INDEX": "3",
    }
    s = load_transport(None, environ=env, config_file=tmp_path / "none.yaml")
    assert s.btl_tcp_if_include == ("eth0", "eth1") and s.nccl_ib_gid_index == 3


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"btl_tcp_if_includ": "eth0"}, "btl_tcp_if_includ"),
        ({"nccl_ib_gid_index": "three"}, "nccl_ib_gid_index='three'"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, flags: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_transport(flags, environ={}, config_file=tmp_path / "none.yaml")
    assert needle in str(e.value)


def test_bad_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("transport: [eth0]\n")
    with pytest.raises(ConfigError, match=r"transport.*valid dictionary"):
        load_transport(None, environ={}, config_file=cfg)


def test_parse_flags() -> None:
    assert parse_transport_flags(["a=b", " c = d "]) == {"a": "b", "c": "d"}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_transport_flags(["eth0"])


def test_interface_missing_on_this_host_is_named() -> None:
    real = local_interfaces()
    assert "lo" in real
    s = TransportSettings(btl_tcp_if_include=("lo", "nosuch9"))
    with pytest.raises(ConfigError) as e:
        check_transport(s, interfaces=real, multi_host=False)
    assert "'nosuch9'" in str(e.value) and "transport.btl_tcp_if_include" in str(e.value)
    check_transport(TransportSettings(btl_tcp_if_include=("lo",)), interfaces=real, multi_host=False)


@pytest.mark.parametrize(
    ("settings", "needles"),
    [
        ({"oob_tcp_if_include": ("eth9",)}, ["transport.oob_tcp_if_include", "'eth9'"]),
        ({"nccl_socket_ifname": "=eth2"}, ["transport.nccl_socket_ifname", "'eth2'"]),
        ({"nccl_socket_ifname": "wl"}, ["transport.nccl_socket_ifname", "'wl'"]),
        ({"ucx_net_devices": "mlx5_0:1,eth7"}, ["transport.ucx_net_devices", "'eth7'"]),
        ({"btl_tcp_if_include": ("lo",)}, ["loopback", "transport.btl_tcp_if_include"]),
        (
            {"btl_tcp_if_include": ("eth0",), "nccl_socket_ifname": "eth1"},
            ["transport.btl_tcp_if_include", "transport.nccl_socket_ifname", "different interfaces"],
        ),
        (
            {"btl_tcp_if_include": ("eth0",), "nccl_socket_ifname": "^eth0"},
            ["transport.btl_tcp_if_include", "transport.nccl_socket_ifname"],
        ),
        ({"nccl_ib_gid_index": 3}, ["transport.nccl_ib_gid_index", "transport.nccl_ib_hca"]),
        (
            {"nccl_ib_hca": "mlx5_0:1", "ucx_net_devices": "mlx5_1:1"},
            ["transport.ucx_net_devices", "transport.nccl_ib_hca", "different HCAs"],
        ),
    ],
)
def test_contradictions_and_missing_interfaces(settings: dict, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as e:
        check_transport(TransportSettings(**settings), interfaces=IFACES, multi_host=True)
    for needle in needles:
        assert needle in str(e.value)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"btl_tcp_if_include": ("eth0",), "oob_tcp_if_include": ("eth0",), "nccl_socket_ifname": "eth"},
        {"btl_tcp_if_include": ("eth0",), "nccl_socket_ifname": "eth1", "allow_split_networks": True},
        {"btl_tcp_if_include": ("10.0.0.0/8",), "nccl_socket_ifname": "^lo"},
        {"nccl_ib_hca": "mlx5_0:1", "nccl_ib_gid_index": 3, "ucx_net_devices": "mlx5_0:1"},
        {"nccl_socket_ifname": "=ib0", "ucx_net_devices": "all"},
    ],
)
def test_consistent_settings_pass(settings: dict) -> None:
    check_transport(TransportSettings(**settings), interfaces=IFACES, multi_host=True)


def test_mpi_args() -> None:
    s = TransportSettings(
        btl_tcp_if_include=("eth0", "eth1"),
        oob_tcp_if_include=("eth0",),
        nccl_socket_ifname="eth0",
        nccl_ib_hca="mlx5_0",
        nccl_ib_gid_index=3,
        ucx_net_devices="mlx5_0:1",
    )
    args, env = transport_mpi_args(s)
    assert args[:6] == ["--mca", "btl_tcp_if_include", "eth0,eth1", "--mca", "oob_tcp_if_include", "eth0"]
    assert env == {
        "NCCL_SOCKET_IFNAME": "eth0",
        "NCCL_IB_HCA": "mlx5_0",
        "NCCL_IB_GID_INDEX": "3",
        "UCX_NET_DEVICES": "mlx5_0:1",
    }
    assert args[6:] == [x for name in env for x in ("-x", name)]
    assert transport_mpi_args(TransportSettings()) == ([], {})

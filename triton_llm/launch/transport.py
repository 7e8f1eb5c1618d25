"""Network transport settings for an MPI group, and their consistency checks.

Resolved like every setting (flags > environment > settings file): flags are ``--transport
KEY=VALUE``, the environment is ``TRITON_LLM_TRANSPORT__<KEY>``, and the settings file has a
``transport:`` mapping. They become ``--mca`` and ``-x`` arguments of ``mpirun``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from triton_llm.errors import ConfigError
from triton_llm.settings import load_settings

ENV_PREFIX = "TRITON_LLM_TRANSPORT__"


class TransportSettings(BaseModel):
    """Which interfaces and devices MPI, NCCL and UCX use between hosts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    btl_tcp_if_include: tuple[str, ...] = Field(
        (), description="Open MPI data interfaces (btl_tcp_if_include)"
    )
    oob_tcp_if_include: tuple[str, ...] = Field(
        (), description="Open MPI control interfaces (oob_tcp_if_include)"
    )
    nccl_socket_ifname: str | None = Field(
        None, description="NCCL_SOCKET_IFNAME: prefix list, =exact or ^exclude"
    )
    nccl_ib_hca: str | None = Field(None, description="NCCL_IB_HCA: InfiniBand/RoCE devices, e.g. mlx5_0:1")
    nccl_ib_gid_index: int | None = Field(None, ge=0, description="NCCL_IB_GID_INDEX: RoCE GID index")
    ucx_net_devices: str | None = Field(None, description="UCX_NET_DEVICES: e.g. mlx5_0:1 or eth0")
    allow_split_networks: bool = Field(False, description="allow MPI and NCCL on different interfaces")

    @field_validator("btl_tcp_if_include", "oob_tcp_if_include", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return tuple(x.strip() for x in v.split(",") if x.strip()) if isinstance(v, str) else v


def load_transport(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> TransportSettings:
    """Resolve transport settings: flags > ``TRITON_LLM_TRANSPORT__*`` > settings file ``transport:``.

    Raises:
        ConfigError: unknown key or wrong type; names the key.
    """
    overrides = {"transport": dict(flags)} if flags else {}
    settings = load_settings(overrides, environ=environ, config_file=config_file)
    data = settings.transport
    try:
        return TransportSettings.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"invalid transport setting {key}={first.get('input')!r}: {first['msg']}",
            field=f"transport.{key}",
            value=first.get("input"),
            hint=f"set it with --transport {key}=..., {ENV_PREFIX}{key.upper()} or the settings file",
        ) from e


def parse_transport_flags(items: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings from ``--transport`` into a mapping.

    Raises:
        ConfigError: an item is not KEY=VALUE.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--transport {item!r}: expected KEY=VALUE, e.g. btl_tcp_if_include=eth0", value=item
            )
        out[key.strip()] = value.strip()
    return out


def local_interfaces() -> list[str]:
    """Names of this host's network interfaces."""
    return [name for _, name in socket.if_nameindex()]


def _nccl_selected(spec: str, interfaces: list[str]) -> tuple[set[str], list[str]]:
    """Interfaces NCCL_SOCKET_IFNAME selects on this host, and the names that match nothing."""
    exclude = spec.startswith("^")
    body = spec[1:] if exclude else spec
    exact = body.startswith("=")
    names = [n for n in (body[1:] if exact else body).split(",") if n]
    matched: set[str] = set()
    unmatched: list[str] = []
    for n in names:
        hits = {i for i in interfaces if (i == n if exact else i.startswith(n))}
        matched |= hits
        if not hits and not exclude:
            unmatched.append(n)
    return (set(interfaces) - matched if exclude else matched), unmatched


def check_transport(settings: TransportSettings, *, interfaces: list[str], multi_host: bool) -> None:
    """Check that named interfaces exist here and that the settings agree with each other.

    Args:
        settings: the resolved transport settings.
        interfaces: this host's interfaces (:func:`local_interfaces`).
        multi_host: ranks run on more than one host.

    Raises:
        ConfigError: an interface does not exist (names it and the key), or two keys contradict (names both).
    """
    have = set(interfaces)
    for key in ("btl_tcp_if_include", "oob_tcp_if_include"):
        for name in getattr(settings, key):
            if name not in have and "/" not in name:  # CIDR subnets are allowed by Open MPI
                raise ConfigError(
                    f"transport.{key} names interface {name!r}, which does not exist on this host "
                    f"(interfaces: {', '.join(sorted(have))})",
                    field=f"transport.{key}",
                    value=name,
                )
            if multi_host and name == "lo":
                raise ConfigError(
                    f"transport.{key} includes the loopback interface 'lo', which cannot reach other hosts",
                    field=f"transport.{key}",
                    value=name,
                )
    nccl: set[str] = set()
    if settings.nccl_socket_ifname:
        nccl, unmatched = _nccl_selected(settings.nccl_socket_ifname, interfaces)
        if unmatched:
            raise ConfigError(
                f"transport.nccl_socket_ifname names interface {unmatched[0]!r}, which does not exist on "
                f"this host (interfaces: {', '.join(sorted(have))})",
                field="transport.nccl_socket_ifname",
                value=unmatched[0],
            )
    btl = {n for n in settings.btl_tcp_if_include if "/" not in n}
    if btl and settings.nccl_socket_ifname and not (btl & nccl) and not settings.allow_split_networks:
        raise ConfigError(
            f"transport.btl_tcp_if_include ({', '.join(sorted(btl))}) and transport.nccl_socket_ifname "
            f"({settings.nccl_socket_ifname}) select different interfaces",
            field="transport.btl_tcp_if_include",
            value=settings.nccl_socket_ifname,
            hint="point both at the same network, or set transport.allow_split_networks=true if intended",
        )
    if settings.nccl_ib_gid_index is not None and not settings.nccl_ib_hca:
        raise ConfigError(
            "transport.nccl_ib_gid_index is set but transport.nccl_ib_hca is not: a RoCE GID index needs an "
            "IB HCA",
            field="transport.nccl_ib_gid_index",
            value=settings.nccl_ib_gid_index,
            hint="set transport.nccl_ib_hca (e.g. mlx5_0:1) or drop transport.nccl_ib_gid_index",
        )
    if settings.ucx_net_devices and settings.nccl_ib_hca and not settings.nccl_ib_hca.startswith("^"):
        hcas = {d.split(":")[0] for d in settings.nccl_ib_hca.lstrip("=").split(",")}
        ucx_ib = {d.split(":")[0] for d in settings.ucx_net_devices.split(",") if ":" in d}
        if ucx_ib and not (ucx_ib & hcas) and not settings.allow_split_networks:
            raise ConfigError(
                f"transport.ucx_net_devices ({settings.ucx_net_devices}) and transport.nccl_ib_hca "
                f"({settings.nccl_ib_hca}) name different HCAs",
                field="transport.ucx_net_devices",
                value=settings.ucx_net_devices,
                hint="use the same HCA for both, or set transport.allow_split_networks=true if intended",
            )
    for name in (d for d in (settings.ucx_net_devices or "").split(",") if d and ":" not in d and d != "all"):
        if name not in have:
            raise ConfigError(
                f"transport.ucx_net_devices names interface {name!r}, which does not exist on this host",
                field="transport.ucx_net_devices",
                value=name,
            )


def transport_mpi_args(settings: TransportSettings) -> tuple[list[str], dict[str, str]]:
    """``mpirun`` arguments and exported variables for the transport settings.

    Returns:
        (``--mca``/``-x`` arguments, the exported variables with their values).
    """
    args: list[str] = []
    env: dict[str, str] = {}
    for key in ("btl_tcp_if_include", "oob_tcp_if_include"):
        if getattr(settings, key):
            args += ["--mca", key, ",".join(getattr(settings, key))]
    for key in ("nccl_socket_ifname", "nccl_ib_hca", "nccl_ib_gid_index", "ucx_net_devices"):
        value = getattr(settings, key)
        if value is not None:
            env[key.upper()] = str(value)
    for name in env:
        args += ["-x", name]
    return args, env

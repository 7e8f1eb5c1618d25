"""How ``repo update`` finds its server, and the errors when it cannot (no server needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from triton_llm.errors import NotFoundError, UsageError
from triton_llm.launch.serving import ServerRecord, find_server, record_server
from triton_llm.launch.update import resolve_target
from triton_llm.settings import load_settings


@pytest.fixture
def settings(tmp_path: Path):
    return load_settings({"cache_dir": str(tmp_path / "cache")}, environ={}, config_file=Path("/none"))


def test_no_server_running_names_serve_and_the_flags(settings) -> None:
    with pytest.raises(NotFoundError, match=r"triton-llm serve.*--url URL --repo DIR"):
        resolve_target(settings, url=None, repo=None)


def test_the_server_serve_recorded_is_found_without_arguments(settings, tmp_path: Path) -> None:
    record = ServerRecord(os.getpid(), "127.0.0.1:18001", "127.0.0.1:18000", str(tmp_path / "repo"), 1)
    record_server(settings, record)
    assert resolve_target(settings, url=None, repo=None).repo == tmp_path / "repo"
    assert resolve_target(settings, url="127.0.0.1:18000", repo=None).grpc_url == "127.0.0.1:18001"
    with pytest.raises(UsageError, match="serves"):
        resolve_target(settings, url="127.0.0.1:18001", repo=tmp_path / "other")


def test_a_dead_servers_record_is_dropped(settings, tmp_path: Path) -> None:
    record_server(settings, ServerRecord(2**22 + 7, "127.0.0.1:1", "127.0.0.1:2", str(tmp_path), 1))
    assert find_server(settings, url="127.0.0.1:1") is None
    assert not list((settings.cache_dir / "servers").glob("*.json"))


def test_another_server_needs_its_repository(settings, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="pass --repo DIR"):
        resolve_target(settings, url="10.0.0.5:8001", repo=None)
    with pytest.raises(UsageError, match="pass its --url"):
        resolve_target(settings, url=None, repo=tmp_path)
    target = resolve_target(settings, url="10.0.0.5:8001", repo=tmp_path)
    assert (target.grpc_url, target.repo, target.world_size) == ("10.0.0.5:8001", tmp_path, 1)


def test_two_servers_need_a_url(settings, tmp_path: Path) -> None:
    for port in (1, 2):
        record_server(
            settings,
            ServerRecord(os.getppid() if port == 1 else os.getpid(), f"h:{port}", f"h:{port}0", "/r", 1),
        )
    with pytest.raises(UsageError, match="pass --url"):
        resolve_target(settings, url=None, repo=None)

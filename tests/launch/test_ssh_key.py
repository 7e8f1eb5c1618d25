"""The group's ssh key as Kubernetes mounts it: a Secret under fsGroup is root-owned and group-readable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from triton_llm.errors import UsageError
from triton_llm.launch.agents import ssh_rejects_key, usable_private_key


def _key(tmp_path: Path, mode: int) -> Path:
    key = tmp_path / "ssh-privatekey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    key.chmod(mode)
    return key


def test_openssh_checks_only_keys_the_user_owns() -> None:
    assert ssh_rejects_key(0o440, 0, uid=0)  # a Secret under fsGroup, read by root
    assert not ssh_rejects_key(0o440, 0, uid=1000)  # the same file read by uid 1000
    assert not ssh_rejects_key(0o400, 0, uid=0) and not ssh_rejects_key(0o600, 1000, uid=1000)


def test_a_group_readable_key_of_this_user_is_copied_privately_and_openssh_accepts_the_copy(
    tmp_path: Path,
) -> None:
    key = _key(tmp_path, 0o440)
    # the real OpenSSH refuses the mounted file for its owner ...
    refused = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0 and "bad permissions" in refused.stderr.lower()
    # ... and accepts the launcher's copy
    usable = usable_private_key(key, private_dir=tmp_path / "private")
    assert usable != key and (usable.stat().st_mode & 0o777) == 0o600
    assert (usable.parent.stat().st_mode & 0o777) == 0o700
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(usable)], capture_output=True, text=True, check=False
    )
    assert derived.returncode == 0 and derived.stdout == (tmp_path / "ssh-privatekey.pub").read_text()
    assert usable_private_key(key, private_dir=tmp_path / "private") == usable  # same path again


def test_an_acceptable_key_is_used_in_place(tmp_path: Path) -> None:
    key = _key(tmp_path, 0o400)
    assert usable_private_key(key) == key
    assert usable_private_key(key, uid=os.geteuid() + 1) == key  # not the owner: never checked


def test_missing_key_and_shared_private_dir_are_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot be read"):
        usable_private_key(tmp_path / "nope")
    key = _key(tmp_path, 0o640)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(UsageError, match="private directory"):
        usable_private_key(key, private_dir=shared)

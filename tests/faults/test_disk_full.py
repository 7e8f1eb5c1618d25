"""The disk fills up while pulling: a real tmpfs smaller than the entry (ENOSPC from the kernel).

What must hold: ``triton-llm engine pull`` exits 1 with one line that says the disk is full and
names the destination; no corrupt cache entry is left (no ``*.incomplete`` file, no file under
its final name that differs from the published bytes, no completion marker); and once there is
room, the same pull into the same directory restores the whole entry, verified.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.test_store_faults import assert_nothing_partial, pull_cli
from tests.store.conftest import SMALL_PARTS, make_tree, tree_bytes
from triton_llm.settings import Settings
from triton_llm.store import open_store, publish

KEY = "d15c" * 16
MiB = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs (the entry is ~12 MiB); unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_a_clear_error_and_leaves_no_corrupt_entry(
    s3_store_uri: str, s3_endpoint: str, small_disk: Path, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", seed=7)
    store = open_store(s3_store_uri, settings=Settings(transfer=SMALL_PARTS))
    publish(store, src, stage="engine", key=KEY, fingerprint_inputs={}, versions={}, transfer=SMALL_PARTS)
    dest = small_disk / "engine"

    done = pull_cli(s3_store_uri, s3_endpoint, dest, s3_endpoint, key=KEY)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(lines) <= 2 and lines[0].startswith("error:"), done.stderr
    assert "no space left" in lines[0].lower() and str(dest) in lines[0], lines
    assert_nothing_partial(dest, src)

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = pull_cli(s3_store_uri, s3_endpoint, dest, s3_endpoint, key=KEY)
    assert again.returncode == 0, again.stdout + again.stderr
    assert tree_bytes(dest) == tree_bytes(src)

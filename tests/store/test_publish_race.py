"""Two publisher processes racing on one key, and a publisher killed mid-upload."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.store.conftest import SMALL_PARTS, make_tree, tree_bytes
from triton_llm.errors import NotFoundError
from triton_llm.store import ObjectStore, list_entries, publish, read_manifest, restore

KEY = "5ace" * 16


def _spawn(store_uri: str, src: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store._publisher", store_uri, str(src), "engine", KEY, *extra],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_racing_make_exactly_one_entry(
    store: ObjectStore, store_uri: str, tmp_path: Path
) -> None:
    srcs = [make_tree(tmp_path / f"src{i}", seed=100 + i) for i in range(2)]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [_spawn(store_uri, src, "--hold-manifest", str(barrier)) for src in srcs]
    outs = []
    try:
        deadline = time.monotonic() + 120
        while len(list(barrier.glob("ready-*"))) < 2:  # both uploaded, both about to create the manifest
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.01)
        (barrier / "go").touch()
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:  # never leave a publisher waiting at the barrier
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()

    assert sorted(o["won"] for o in outs) == [False, True]
    winner = next(o for o in outs if o["won"])
    assert {o["digest"] for o in outs} == {winner["digest"]}  # the loser got the winner's manifest
    m = read_manifest(store, stage="engine", key=KEY)
    assert m is not None and m.digest() == winner["digest"]
    assert [e.key for e in list_entries(store)] == [KEY]
    # The loser removed its own upload: one data prefix is left.
    assert {o.key.split("/")[3] for o in store.list(f"engine/{KEY}/data/")} == {m.upload_id}

    restore(store, tmp_path / "dst", stage="engine", key=KEY, transfer=SMALL_PARTS)
    assert tree_bytes(tmp_path / "dst") == tree_bytes(Path(winner["src"]))


def test_killed_upload_leaves_no_entry_and_a_later_publish_works(
    store: ObjectStore, store_uri: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", seed=7)
    proc = _spawn(store_uri, src, "--die-after-parts", "2")
    proc.communicate(timeout=60)
    assert proc.returncode == -9  # SIGKILL, after 2 of 5 uploads, before any manifest

    assert read_manifest(store, stage="engine", key=KEY) is None
    assert list_entries(store) == []
    try:
        restore(store, tmp_path / "dst", stage="engine", key=KEY, transfer=SMALL_PARTS)
        raise AssertionError("restore of a killed upload must fail")
    except NotFoundError:
        pass

    result = publish(
        store, src, stage="engine", key=KEY, fingerprint_inputs={}, versions={}, transfer=SMALL_PARTS
    )
    assert result.won
    restore(store, tmp_path / "dst", stage="engine", key=KEY, transfer=SMALL_PARTS)
    assert tree_bytes(tmp_path / "dst") == tree_bytes(src)

"""The ``progress`` setting decides how long work reports, whether it comes from the settings file
or the environment (a setting nothing reads is a lie in the docs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from triton_llm.settings import TransferSettings, load_settings
from triton_llm.store import open_store, publish

CLI = str(Path(sys.executable).parent / "triton-llm")
KEY = "ab" * 32


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    src = tmp_path / "entry"
    src.mkdir()
    (src / "weights.bin").write_bytes(os.urandom(1 << 16))
    uri = (tmp_path / "store").as_uri()
    publish(
        open_store(uri, settings=load_settings({}, environ={}, config_file=tmp_path / "none.yaml")),
        src,
        stage="checkpoint",
        key=KEY,
        fingerprint_inputs={},
        versions={},
        transfer=TransferSettings(),
    )
    return uri


@pytest.mark.parametrize(("mode", "reported"), [("off", False), ("plain", True)])
def test_the_settings_file_progress_mode_is_what_a_pull_reports(
    store_uri: str, tmp_path: Path, mode: str, reported: bool
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"store: {store_uri}\nprogress: {mode}\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_LLM_PROGRESS"}
    env["TRITON_LLM_CONFIG"] = str(config)
    proc = subprocess.run(
        [CLI, "engine", "pull", KEY, "--dest", str(tmp_path / "dest")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (f"download checkpoint/{KEY[:12]}" in proc.stderr) is reported, proc.stderr

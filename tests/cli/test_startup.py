"""Start-up work: which modules a CLI invocation imports (asserted on ``sys.modules``, not on time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Nothing a command's feature needs may load before its arguments are parsed.
HEAVY = (
    "pydantic",
    "yaml",
    "botocore",
    "boto3",
    "urllib3",
    "torch",
    "numpy",
    "transformers",
    "gguf",
    "tritonclient",
    "grpc",
    "triton_llm.settings",
    "triton_llm.store",
    "triton_llm.engine",
    "triton_llm.runtime",
    "triton_llm.repository",
    "triton_llm.launch",
    "triton_llm.client",
)

_RUN = """
import json, sys
from triton_llm.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as e:
    code = e.code
json.dump({"code": code, "modules": sorted(sys.modules)}, open(sys.argv[1], "w"))
"""


def imported_by(
    argv: list[str], tmp_path: Path, *, env: dict[str, str] | None = None
) -> tuple[int, set[str]]:
    """Run ``triton-llm ARGV`` in a fresh interpreter; its exit code and every module it imported."""
    out = tmp_path / "modules.json"
    subprocess.run(
        [sys.executable, "-c", _RUN, str(out), *argv], check=False, capture_output=True, env=env, timeout=120
    )
    result = json.loads(out.read_text())
    return int(result["code"] or 0), set(result["modules"])


def heavy(modules: set[str]) -> list[str]:
    """The HEAVY packages (or their submodules) among ``modules``."""
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize(
    "argv", [["--version"], ["--help"], ["engine", "--help"], ["engine", "pull", "--help"], []]
)
def test_version_and_help_import_no_feature(argv: list[str], tmp_path: Path) -> None:
    code, modules = imported_by(argv, tmp_path)
    assert code in (0, 2)
    assert heavy(modules) == []


def test_a_command_imports_only_its_own_cli_module(tmp_path: Path) -> None:
    _, modules = imported_by(["stream", "--help"], tmp_path)
    cli_modules = {m for m in modules if m.startswith("triton_llm.cli.")}
    assert cli_modules <= {"triton_llm.cli._commands", "triton_llm.cli._common", "triton_llm.cli.stream"}


def test_the_registry_help_is_what_each_command_registers() -> None:
    from triton_llm.cli import build_parser
    from triton_llm.cli._commands import COMMANDS

    listed = build_parser([]).format_help()
    for name in COMMANDS:
        assert build_parser([name]).format_help() == listed, f"{name}: registry help differs from its module"
    assert build_parser().format_help() == listed


def test_a_pull_imports_neither_the_pipeline_nor_an_aws_sdk(
    s3_store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`engine pull` (first and no-op) loads settings and the store only: no boto3/botocore, no torch."""
    import os

    from tests.store.conftest import SMALL_PARTS, make_tree
    from triton_llm.settings import Settings
    from triton_llm.store import open_store, publish

    key = "cafe" * 16
    store = open_store(s3_store_uri, settings=Settings(transfer=SMALL_PARTS))
    publish(store, make_tree(tmp_path / "src", seed=1, big=1000), stage="engine", key=key,
            fingerprint_inputs={}, versions={}, transfer=SMALL_PARTS)  # fmt: skip
    env = {**os.environ, "TRITON_LLM_STORE": s3_store_uri}
    dest = str(tmp_path / "dest")
    for _ in range(2):  # a restore, then a no-op
        code, modules = imported_by(["engine", "pull", key, "--dest", dest], tmp_path, env=env)
        assert code == 0
        allowed = {"triton_llm.settings", "triton_llm.store"}
        assert [m for m in heavy(modules) if not any(m == a or m.startswith(a + ".") for a in allowed)] == []
    assert (tmp_path / "dest" / ".triton-llm-entry.json").is_file()


def test_a_file_store_pull_imports_no_pydantic(tmp_path: Path) -> None:
    """`engine pull KEY --dest DIR` from a file:// store (a restore, then the no-op pull that must
    take < 0.3 s) loads neither pydantic nor yaml: settings and manifests are plain dataclasses."""
    import os

    from tests.store.conftest import make_tree
    from triton_llm.settings import Settings, TransferSettings
    from triton_llm.store import open_store, publish

    key = "beef" * 16
    uri = (tmp_path / "store").as_uri()
    src = make_tree(tmp_path / "src", seed=2, big=1000)
    store = open_store(uri, settings=Settings())
    transfer = TransferSettings()
    publish(store, src, stage="checkpoint", key=key, fingerprint_inputs={}, versions={}, transfer=transfer)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRITON_LLM_")}
    env.update(TRITON_LLM_STORE=uri, TRITON_LLM_CONFIG=str(tmp_path / "no-config.yaml"))
    dest = str(tmp_path / "dest")
    for _ in range(2):  # a restore, then a no-op
        code, modules = imported_by(["engine", "pull", key, "--dest", dest], tmp_path, env=env)
        assert code == 0
        assert sorted(m for m in modules if m.split(".")[0] in ("pydantic", "pydantic_core")) == []
        allowed = {"triton_llm.settings", "triton_llm.store"}
        assert [m for m in heavy(modules) if not any(m == a or m.startswith(a + ".") for a in allowed)] == []
    assert (tmp_path / "dest" / ".triton-llm-entry.json").is_file()


def test_every_command_module_is_in_the_registry() -> None:
    import importlib
    import pkgutil

    import triton_llm.cli
    from triton_llm.cli._commands import COMMANDS

    modules = {
        f"triton_llm.cli.{m.name}"
        for m in pkgutil.iter_modules(triton_llm.cli.__path__)
        if not m.name.startswith("_")
    }
    with_register = {m for m in modules if hasattr(importlib.import_module(m), "register")}
    assert with_register == {module for module, _ in COMMANDS.values()}

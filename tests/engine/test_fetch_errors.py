"""Hub sources through the real CLI against a local server that answers like the hub.

Only an offline or unreachable hub may fall back to the recipe's builtin model; a missing repo
or revision, a gated repo and a refused token are errors that name their fix.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine._hub import FakeHub, HubRepo, fake_hub
from tests.fixtures.s3 import free_port

CLI = str(Path(sys.executable).parent / "triton-llm")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CONFIG = (
    b'{"architectures": ["LlamaForCausalLM"], "num_attention_heads": 4, "num_key_value_heads": 2,'
    b' "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "vocab_size": 100,'
    b' "max_position_embeddings": 256}'
)


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    def repo(**kw: object) -> HubRepo:
        return HubRepo(revisions={"main": COMMIT}, files={"config.json": CONFIG}, **kw)  # type: ignore[arg-type]

    with fake_hub(
        {
            "org/tiny": repo(),
            "org/gated": repo(gated=True),
            "org/forbidden": repo(forbidden=True),
            "org/down": repo(status=500),
        }
    ) as server:
        yield server


def dry_run(
    tmp_path: Path, endpoint: str, repo: str, *, revision: str = "main", fallback: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """``engine build RECIPE --dry-run`` for a recipe of ``repo``, online against ``endpoint``."""
    recipe = tmp_path / "hub.yaml"
    recipe.write_text(
        f"name: hub\nmodel:\n  hf: {repo}\n  revision: {revision}\n"
        + ("  offline_fallback: smollm2-135m-instruct\n" if fallback else "")
        + "dtype: float32\nbuild:\n  max_input_len: 64\n  max_seq_len: 128\n  max_num_tokens: 128\n"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
    full_env = {**base, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"), **env}
    return subprocess.run(
        [CLI, "engine", "build", str(recipe), "--dry-run"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_a_reachable_hub_pins_the_revision_to_its_commit(hub: FakeHub, tmp_path: Path) -> None:
    proc = dry_run(tmp_path, hub.url, "org/tiny")
    assert proc.returncode == 0, proc.stderr
    assert f'"commit": "{COMMIT}"' in proc.stdout and "builtin" not in proc.stdout


def test_offline_mode_resolves_from_the_local_hub_cache_without_asking(hub: FakeHub, tmp_path: Path) -> None:
    assert dry_run(tmp_path, hub.url, "org/tiny").returncode == 0
    seen = len(hub.requests)
    proc = dry_run(tmp_path, hub.url, "org/tiny", HF_HUB_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr
    assert f'"commit": "{COMMIT}"' in proc.stdout
    assert len(hub.requests) == seen, "offline mode must not contact the hub"


def test_missing_repo_is_an_error_not_a_fallback(hub: FakeHub, tmp_path: Path) -> None:
    proc = dry_run(tmp_path, hub.url, "org/missing")
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert "org/missing" in line and "model.hf" in line and "HF_TOKEN" in line
    assert "unreachable" not in proc.stderr + proc.stdout and "builtin" not in proc.stdout


def test_missing_revision_names_the_revision(hub: FakeHub, tmp_path: Path) -> None:
    proc = dry_run(tmp_path, hub.url, "org/tiny", revision="no-such-branch")
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert "no-such-branch" in line and "model.revision" in line
    assert "unreachable" not in proc.stderr + proc.stdout and "builtin" not in proc.stdout


def test_gated_repo_without_a_token_asks_for_hf_token(hub: FakeHub, tmp_path: Path) -> None:
    proc = dry_run(tmp_path, hub.url, "org/gated")
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert "org/gated" in line and "gated" in line and "HF_TOKEN" in line
    assert "builtin" not in proc.stdout


def test_gated_repo_with_an_unauthorized_token_says_to_request_access(hub: FakeHub, tmp_path: Path) -> None:
    proc = dry_run(tmp_path, hub.url, "org/gated", HF_TOKEN="hf_not_on_the_list")
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert "org/gated" in line and "request access" in line
    assert "builtin" not in proc.stdout


def test_forbidden_token_is_an_error_naming_hf_token(hub: FakeHub, tmp_path: Path) -> None:
    proc = dry_run(tmp_path, hub.url, "org/forbidden", HF_TOKEN="hf_read_nothing")
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert "403" in line and "HF_TOKEN" in line
    assert "builtin" not in proc.stdout


@pytest.mark.parametrize("where", ["refused", "hub-5xx"])
def test_unreachable_hub_falls_back_to_the_builtin_loudly(hub: FakeHub, tmp_path: Path, where: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}" if where == "refused" else hub.url
    proc = dry_run(tmp_path, endpoint, "org/down" if where == "hub-5xx" else "org/tiny")
    assert proc.returncode == 0, proc.stderr
    assert "source builtin" in proc.stdout
    assert "hub unreachable" in proc.stderr and "different weights" in proc.stderr


def test_unreachable_hub_without_fallback_says_so(tmp_path: Path) -> None:
    proc = dry_run(tmp_path, f"http://127.0.0.1:{free_port()}", "org/tiny", fallback=False)
    assert proc.returncode == 1, proc.stderr
    line = error_line(proc)
    assert "org/tiny" in line and "cannot reach" in line

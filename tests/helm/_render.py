"""Render the chart with a real ``helm`` and look at the objects it makes.

Every helper here runs the real binary; nothing emulates helm's template engine.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "triton-llm"
CI_DIR = CHART_DIR / "ci"
RELEASE = "rel"
NAMESPACE = "serving"
KUBE_VERSION = "1.30.0"


class HelmFailed(Exception):
    """helm exited non-zero; ``stderr`` holds its message."""

    def __init__(self, argv: Sequence[str], stderr: str) -> None:
        super().__init__(f"{' '.join(argv)} failed:\n{stderr}")
        self.stderr = stderr


@dataclass(frozen=True)
class Rendered:
    """The objects of one ``helm template`` run."""

    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Objects of one kind, in render order."""
        return [o for o in self.objects if o.get("kind") == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        """The single object of ``kind`` (and ``name``); fails if there are none or several."""
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        if len(found) != 1:
            names = [o["metadata"]["name"] for o in self.of_kind(kind)]
            raise LookupError(f"expected one {kind} {name or ''}, found {names}")
        return found[0]

    def kinds(self) -> set[str]:
        """Every kind rendered."""
        return {o["kind"] for o in self.objects}


def helm_template(
    helm: Path,
    *,
    values_files: Iterable[Path] = (),
    set_values: Mapping[str, str] | None = None,
    set_json: Mapping[str, str] | None = None,
    skip_tests: bool = False,
    kube_version: str = KUBE_VERSION,
) -> Rendered:
    """``helm template`` the chart and parse every document.

    Raises:
        HelmFailed: helm rejected the values (schema or validateValues) or the templates.
    """
    argv = [str(helm), "template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE]
    argv += ["--kube-version", kube_version]
    for f in values_files:
        argv += ["-f", str(f)]
    for k, v in (set_values or {}).items():
        argv += ["--set", f"{k}={v}"]
    for k, v in (set_json or {}).items():
        argv += ["--set-json", f"{k}={v}"]
    if skip_tests:
        argv.append("--skip-tests")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise HelmFailed(argv, proc.stderr)
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return Rendered(objects=docs)


def pod_specs(rendered: Rendered) -> dict[str, dict[str, Any]]:
    """Serving pod specs by role (leader, worker), from whichever workload kind was rendered."""
    out: dict[str, dict[str, Any]] = {}
    for lws in rendered.of_kind("LeaderWorkerSet"):
        tpl = lws["spec"]["leaderWorkerTemplate"]
        out["leader"] = tpl["leaderTemplate"]
        out["worker"] = tpl["workerTemplate"]
    for kind in ("Deployment", "StatefulSet"):
        for obj in rendered.of_kind(kind):
            role = obj["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            out[role] = obj["spec"]["template"]
    return out


SIDECARS = ("openai-frontend",)
"""Containers the chart adds next to the serving container (the leader's OpenAI frontend)."""


def container(pod: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    """The serving container of a pod template (the only one in ``containers`` besides the
    :data:`SIDECARS`), or one by name."""
    containers = [c for c in pod["spec"]["containers"] if c["name"] not in SIDECARS]
    if name is None:
        if len(containers) != 1:
            raise LookupError(f"expected one container, found {[c['name'] for c in containers]}")
        return containers[0]
    every = [*pod["spec"]["containers"], *pod["spec"].get("initContainers", [])]
    return next(c for c in every if c["name"] == name)


def plain_env(c: Mapping[str, Any], *, field_refs: Mapping[str, str] | None = None) -> dict[str, str]:
    """A container's env as the kubelet would set it: values, and downward-API fields from ``field_refs``."""
    env: dict[str, str] = {}
    for item in c.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif field_refs and "fieldRef" in item.get("valueFrom", {}):
            env[item["name"]] = field_refs[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env

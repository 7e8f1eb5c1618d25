"""No private name crosses a package: a module or name starting with ``_`` inside
``triton_llm.<package>`` is imported only from that package (the core modules directly under
``triton_llm``, such as ``_progress``, are shared by design)."""

from __future__ import annotations

import ast

from tests.conftest import REPO_ROOT


def _private(parts: list[str]) -> bool:
    return any(p.startswith("_") and not p.startswith("__") for p in parts)


def test_no_private_module_or_name_is_imported_from_another_package() -> None:
    crossings = []
    for path in sorted((REPO_ROOT / "triton_llm").rglob("*.py")):
        rel = path.relative_to(REPO_ROOT).with_suffix("").parts
        home = rel[1] if len(rel) > 2 else None  # the package a module belongs to
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("triton_llm."):
                continue
            parts = node.module.split(".")
            if len(parts) < 3 or parts[1] == home:
                continue  # a core module, or the importer's own package
            names = [alias.name for alias in node.names]
            if _private(parts[2:]) or _private(names):
                crossings.append(
                    f"{'/'.join(rel)}.py:{node.lineno}: from {node.module} import {', '.join(names)}"
                )
    assert crossings == []


def test_the_runtime_has_no_import_cycle_between_generator_and_parallel() -> None:
    """parallel is the communication layer the generator uses; it never reaches back into it."""
    source = (REPO_ROOT / "triton_llm" / "runtime" / "parallel.py").read_text()
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "triton_llm.runtime.generator" not in imported
    assert "._follow" not in source

"""Folders the package ships as data: the model repository templates and the recipes.

In a checkout they stay at the top level (``model_repository/``, ``engines/``) where users see
them; ``pyproject.toml`` maps them into the wheel as the packages ``triton_llm.model_repository``
and ``triton_llm.recipes``, and the editable install maps the same names to the checkout
folders. Both are read through :mod:`importlib.resources`, never relative to a source file.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from triton_llm.errors import NotFoundError

TEMPLATES = "triton_llm.model_repository"
RECIPES = "triton_llm.recipes"


def data_dir(package: str) -> Path:
    """The directory of a data package (``TEMPLATES`` or ``RECIPES``).

    Raises:
        NotFoundError: the package is missing or not installed as plain files (e.g. a zip).
    """
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise NotFoundError(
            f"package data {package} is not installed",
            value=package,
            hint="reinstall triton-llm from its wheel or with `pip install -e .` from a checkout",
        ) from exc
    if not isinstance(root, Path) or not root.is_dir():
        raise NotFoundError(
            f"package data {package} is not a directory on disk ({root})",
            value=package,
            hint="install triton-llm with pip (unpacked), not as a zip",
        )
    return root

"""What ``serve`` and ``launch`` do before Triton starts: ensure the engine, write its versioned repository.

The engine pipeline and the store are imported when :func:`prepare_repository` runs, so the
launcher's planning modules and the remote agents start without them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from triton_llm.engine.local import LocalEngine
    from triton_llm.settings import Settings


@dataclass(frozen=True)
class PreparedRepository:
    """A verified local engine and the model repository rendered for it."""

    engine: LocalEngine
    repo: Path


def fresh_repository_dir(settings: Settings, engine_key: str) -> Path:
    """A new, empty ``model_repository`` path under ``<cache dir>/repos`` for one engine."""
    base = settings.cache_dir / "repos"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{engine_key[:12]}-", dir=base)) / "model_repository"


def prepare_repository(
    ref: str,
    *,
    settings: Settings,
    overrides: Iterable[str] = (),
    backend: str | None = None,
    repo_dir: Path | None = None,
) -> PreparedRepository:
    """Build or restore the engine of a recipe or key, then write a versioned repository for it.

    The repository holds the engine as version 1 (:mod:`triton_llm.repository.versions`), so a
    server started on it can take updates (``triton-llm repo update``).

    Args:
        ref: a recipe name or YAML path, or an engine key.
        settings: store and cache settings.
        overrides: ``--set FIELD=VALUE`` recipe overrides.
        backend: build backend name (default: automatic).
        repo_dir: write here, replacing what is there (default: a fresh directory).

    Raises:
        NotFoundError, RecipeErrors, BuildError, IncompatibleError: see ``ensure_local_engine``;
        ConfigError: a template problem.
    """
    from triton_llm.engine.local import ensure_local_engine

    engine = ensure_local_engine(ref, settings=settings, overrides=overrides, backend=backend)
    repo = (repo_dir or fresh_repository_dir(settings, engine.key)).absolute()
    write_versioned_repository(engine, repo)
    return PreparedRepository(engine=engine, repo=repo)


def engine_files(engine: LocalEngine) -> dict[str, bytes]:
    """The repository files rendered for a local engine (its key returned with every response)."""
    from triton_llm.repository.render import engine_files as render_files

    return render_files(engine, engine_key=engine.key)


def write_versioned_repository(engine: LocalEngine, repo: Path) -> Path:
    """Write a fresh versioned repository with ``engine`` as version 1, replacing ``repo``."""
    import os
    import shutil

    from triton_llm.repository.versions import add_version

    files = engine_files(engine)
    tmp = repo.parent / f".{repo.name}.incomplete-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    add_version(tmp, files, engine_key=engine.key)
    if repo.exists():
        shutil.rmtree(repo)
    tmp.rename(repo)
    return repo

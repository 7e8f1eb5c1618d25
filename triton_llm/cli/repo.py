"""``triton-llm repo render``: render the Triton model repository for an engine."""

from __future__ import annotations

import argparse
from pathlib import Path

from triton_llm.cli._common import add_recipe_flags, add_store_flags, settings_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "repo",
        help="render the Triton model repository",
        description="Triton model repository commands.",
        epilog="example:\n  triton-llm repo render smollm2-135m --out ./model_repo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    repo_sub = p.add_subparsers(dest="repo_command", metavar="COMMAND", required=True)
    r = repo_sub.add_parser(
        "render",
        help="fill the model_repository templates for an engine",
        description=(
            "Build the engine if needed (recipe) or restore it (engine key), then render preprocessing, "
            "tensorrt_llm, postprocessing, ensemble and tensorrt_llm_bls into a fresh directory."
        ),
        epilog="examples:\n  triton-llm repo render smollm2-135m --out ./model_repo\n"
        "  triton-llm repo render f4ae660b9e5b --out /srv/repo --force",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("ref", metavar="RECIPE|KEY", help="recipe name or path, or an engine key")
    r.add_argument("--out", type=Path, required=True, help="output directory (must be new or empty)")
    r.add_argument("--force", action="store_true", help="replace a non-empty --out")
    add_recipe_flags(r)
    add_store_flags(r)
    r.set_defaults(func=run_render)


def run_render(args: argparse.Namespace) -> int:
    from triton_llm.engine.pipeline import ensure_local_engine
    from triton_llm.repository import render_repository

    engine = ensure_local_engine(
        args.ref, settings=settings_from_args(args), overrides=args.overrides, backend=args.backend
    )
    out = render_repository(
        engine.engine_dir,
        serving=engine.recipe.serving,
        out=args.out.absolute(),
        tokenizer_dir=engine.tokenizer_dir,
        checkpoint_dir=engine.checkpoint_dir,
        overwrite=args.force,
    )
    print(f"rendered {out} for engine {engine.key[:12]}")
    return 0

"""``triton-llm repo render``: render the Triton model repository for an engine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from triton_llm.cli._common import add_recipe_flags, add_store_flags, settings_from_args

if TYPE_CHECKING:
    from triton_llm.repository import ServableEngine


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
            "tensorrt_llm, postprocessing, ensemble and tensorrt_llm_bls into a fresh directory. "
            "With --engine-dir, render for a local engine directory instead (trtllm-build's --output_dir, "
            "or an engine from `engine pull`): no store is involved, the engine's config.json decides GPU "
            "(tensorrtllm backend) or CPU, and serving settings are the schema's defaults (or the engine's "
            "recipe.json) with --set serving.x=y overrides."
        ),
        epilog="examples:\n  triton-llm repo render smollm2-135m --out ./model_repo\n"
        "  triton-llm repo render KEY --out /srv/repo --force      (KEY: an engine key, see `engine ls`)\n"
        "  triton-llm repo render --engine-dir ./engine --tokenizer-dir ./Llama-3.1-8B-Instruct \\\n"
        "      --out ./repo --set serving.kv_cache_free_gpu_mem_fraction=0.85",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("ref", nargs="?", metavar="RECIPE|KEY", help="recipe name or path, or an engine key")
    r.add_argument("--out", type=Path, required=True, help="output directory (must be new or empty)")
    r.add_argument("--force", action="store_true", help="replace a non-empty --out")
    r.add_argument(
        "--engine-dir",
        type=Path,
        metavar="DIR",
        help="render for this local engine directory instead of a recipe or key (no store involved)",
    )
    r.add_argument(
        "--tokenizer-dir",
        type=Path,
        metavar="DIR",
        help="tokenizer for --engine-dir (default: ENGINE_DIR/tokenizer)",
    )
    r.add_argument(
        "--checkpoint-dir",
        type=Path,
        metavar="DIR",
        help="the TensorRT-LLM checkpoint a cpu --engine-dir serves (its config.json names the key)",
    )
    add_recipe_flags(r)
    add_store_flags(r)
    r.set_defaults(func=run_render)


def run_render(args: argparse.Namespace) -> int:
    from triton_llm.errors import UsageError
    from triton_llm.repository import render_engine

    if args.engine_dir is not None:
        if args.ref is not None:
            raise UsageError("pass a RECIPE|KEY or --engine-dir, not both")
        if args.backend is not None:
            raise UsageError(
                "--backend chooses a build backend; with --engine-dir the engine's config.json decides"
            )
        from triton_llm.repository.engine_dir import open_engine_dir

        local = open_engine_dir(
            args.engine_dir,
            tokenizer_dir=args.tokenizer_dir,
            checkpoint_dir=args.checkpoint_dir,
            overrides=args.overrides,
        )
        engine: ServableEngine = local
        label = f"the {local.backend} engine in {local.engine_dir}"
    else:
        if args.ref is None:
            raise UsageError("pass a RECIPE|KEY, or --engine-dir DIR for a local engine directory")
        if args.tokenizer_dir is not None or args.checkpoint_dir is not None:
            raise UsageError("--tokenizer-dir and --checkpoint-dir apply only with --engine-dir")
        from triton_llm.engine.local import ensure_local_engine

        restored = ensure_local_engine(
            args.ref, settings=settings_from_args(args), overrides=args.overrides, backend=args.backend
        )
        engine = restored
        label = f"engine {restored.key[:12]}"
    out = render_engine(engine, args.out.absolute(), overwrite=args.force)
    print(f"rendered {out} for {label}")
    return 0

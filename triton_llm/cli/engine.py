"""``triton-llm engine``: build, list, show and pull engines and checkpoints."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from triton_llm.cli._common import add_recipe_flags, add_store_flags, settings_from_args

if TYPE_CHECKING:
    from triton_llm.engine.plan import BuildPlan

# Features are imported inside each command, so `--help` and `engine pull` load only what they use.

BUILD_EXAMPLES = """examples:
  triton-llm engine build smollm2-135m
  triton-llm engine build smollm2-135m --set parallelism.tp=3 --set quantization.format=int8_wo
  triton-llm engine build llama-3.1-70b-instruct --backend trtllm --dry-run
  triton-llm engine build engines/my-model.yaml --store s3://models/triton-llm --endpoint-url http://minio:9000
"""


def register(sub: argparse._SubParsersAction) -> None:
    engine = sub.add_parser(
        "engine",
        help="build, list, show and pull engines",
        description="Build engines from recipes and manage the content-addressed engine cache.",
    )
    esub = engine.add_subparsers(dest="engine_command", metavar="SUBCOMMAND", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    p = esub.add_parser(
        "build",
        help="build a recipe (cache hits are skipped)",
        description="Fetch, convert/quantize and compile a recipe; publish checkpoint and engine "
        "to the store.",
        epilog=BUILD_EXAMPLES,
        formatter_class=raw,
    )
    p.add_argument("recipe", metavar="RECIPE", help="a recipe name in engines/ or a path to a YAML file")
    add_recipe_flags(p)
    add_store_flags(p)
    p.add_argument("--force", action="store_true", help="rebuild every stage even when the store has it")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print every stage with its key and every step a build runs (fetch, exact commands and "
        "calls, tokenizer copy, recipe.json, publish); run nothing",
    )
    p.set_defaults(func=run_build)

    p = esub.add_parser(
        "ls",
        help="list stored entries",
        description="List the checkpoints and engines in the store.",
        epilog="examples:\n  triton-llm engine ls\n  triton-llm engine ls --stage engine --json",
        formatter_class=raw,
    )
    p.add_argument("--stage", choices=["checkpoint", "engine"], help="only this stage")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--recipes", action="store_true", help="list the known recipes instead")
    add_store_flags(p)
    p.set_defaults(func=run_ls)

    p = esub.add_parser(
        "show",
        help="print an entry's manifest",
        description="Print the manifest of a stored entry (files, sizes, sha256, fingerprint inputs).",
        epilog="example:\n  triton-llm engine show 3f2a9c1d",
        formatter_class=raw,
    )
    p.add_argument("key", metavar="KEY", help="an entry key, or a unique prefix of at least 8 hex digits")
    add_store_flags(p)
    p.set_defaults(func=run_show)

    p = esub.add_parser(
        "pull",
        help="restore an entry into a directory, verified",
        description="Restore any stage's entry (checkpoint or engine) by key, verified; "
        "a no-op when DEST already matches.",
        epilog="example:\n  triton-llm engine pull 3f2a9c1d --dest /models/engine",
        formatter_class=raw,
    )
    p.add_argument("key", metavar="KEY", help="an entry key, or a unique prefix of at least 8 hex digits")
    p.add_argument("--dest", required=True, metavar="DIR", help="directory to restore into")
    add_store_flags(p)
    p.set_defaults(func=run_pull)


def _print_plan(plan: BuildPlan, store_uri: str) -> None:
    from triton_llm.engine.backends import step_line

    src = plan.source
    print(f"recipe {plan.recipe.name}: backend {plan.backend}, store {store_uri}")
    print(f"source {src.kind} {src.location}: {json.dumps(src.identity, sort_keys=True)[:200]}")
    for note in src.notes:
        print(f"note: {note}")
    print(
        "cache: stages already in the store are skipped (the fetch runs only when the checkpoint is "
        "built); an engine built on a stored checkpoint restores it first; built stages are published"
    )
    for stage in plan.stages:
        gpu = f" [{stage.gpu.name} sm{stage.gpu.sm}]" if stage.gpu else ""
        print(f"\nstage {stage.stage}{gpu}  key {stage.key}")
        print(f"  output {stage.out_dir}")
        for action in stage.actions:
            print(f"  # {action.description}")
            print(f"  {step_line(action)}")
        if stage.published:
            print(f"  {stage.publish_line(store_uri)}")


def run_build(args: argparse.Namespace) -> int:
    from triton_llm.engine.pipeline import build, plan_recipe
    from triton_llm.engine.recipe import load_recipe

    settings = settings_from_args(args)
    if args.dry_run:
        plan = plan_recipe(
            args.recipe,
            settings=settings,
            overrides=args.overrides,
            backend=args.backend,
            allow_unresolved=True,
        )
        _print_plan(plan, settings.store_uri())
        return 0
    recipe = load_recipe(args.recipe, overrides=args.overrides, extra_dir=settings.engines_dir)
    result = build(recipe, settings=settings, backend=args.backend, force=args.force)
    for outcome in result.outcomes:
        state = "cache hit" if outcome.cached else "built"
        gpu = f" {outcome.gpu}" if outcome.gpu else ""
        print(f"{outcome.stage}{gpu}: {outcome.key} ({state})")
    return 0


def run_ls(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.recipes:
        from triton_llm.engine.recipe import list_recipes

        for name, path in list_recipes(settings.engines_dir).items():
            print(f"{name:32} {path}")
        return 0
    from triton_llm.store import list_entries, open_store

    entries = list_entries(open_store(settings.store_uri(), settings=settings), stage=args.stage)
    if args.json:
        json.dump([m.to_dict(files=False) for m in entries], sys.stdout, indent=1)
        print()
        return 0
    print(f"{'STAGE':10} {'KEY':64} {'SIZE':>10} {'BACKEND':7} {'GPU':10} CREATED")
    for m in entries:
        gpu = (m.fingerprint_inputs.get("gpu") or {}).get("sku", "-")
        size = f"{m.total_size / (1 << 20):.1f}MiB"
        backend = m.fingerprint_inputs.get("backend", "-")
        print(f"{m.stage:10} {m.key:64} {size:>10} {backend:7} {gpu:10} {m.created}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from triton_llm.store import find_entry, open_store

    settings = settings_from_args(args)
    manifest = find_entry(open_store(settings.store_uri(), settings=settings), args.key)
    print(json.dumps(manifest.to_dict(), indent=1, sort_keys=True))
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from pathlib import Path

    from triton_llm.store import open_store, pull

    settings = settings_from_args(args)
    dest = Path(args.dest)
    store = open_store(settings.store_uri(), settings=settings)
    result = pull(store, args.key, dest, transfer=settings.transfer)
    m = result.manifest
    state = "already verified" if result.skipped else "restored and verified"
    print(f"{m.stage} {m.key} {state} in {dest}")
    return 0

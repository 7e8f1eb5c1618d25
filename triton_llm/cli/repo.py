"""``triton-llm repo``: render a model repository; update, roll back and sync a versioned one."""

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
        help="render, update, roll back and sync the Triton model repository",
        description="Triton model repository commands. A repository written by `serve` or `repo sync` is "
        "versioned: each engine key put into it is a numbered version (docs/updates.md).",
        epilog="examples:\n  triton-llm repo render smollm2-135m --out ./model_repo\n"
        "  triton-llm repo update --key 3f9a01c2b7d4      # the server `triton-llm serve` started\n"
        "  triton-llm repo rollback\n"
        "  triton-llm repo sync --key 3f9a01c2b7d4 --repo /models/repo",
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
    _register_updates(repo_sub)


def _target_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        metavar="HOST:PORT",
        help="gRPC address of the server (default: the one server `triton-llm serve` is running)",
    )
    p.add_argument(
        "--repo",
        type=Path,
        metavar="DIR",
        help="the versioned repository the --url server serves (only for a server not started by serve)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds to wait for the old version's streams to end after the switch (default: %(default)s)",
    )
    add_store_flags(p)


def _register_updates(repo_sub: argparse._SubParsersAction) -> None:
    u = repo_sub.add_parser(
        "update",
        help="hot-swap a running server to another engine key (new version, smoke gate, no lost request)",
        description=(
            "Restore and verify the engine KEY, write it as version N+1 of the server's repository, load it "
            "beside N, check the smoke prompt against the golden answer recorded when the engine was built, "
            "switch new requests to N+1, let streams on N finish and unload N. A corrupt, incompatible or "
            "failing N+1 is never promoted: N keeps serving and the command exits non-zero naming the "
            "reason. "
            "Single-rank servers only; tp*pp > 1 groups and GPUs are updated at the replica level."
        ),
        epilog="examples:\n  triton-llm repo update --key 3f9a01c2b7d4\n"
        "  triton-llm repo update --key 3f9a01c2b7d4 --url 10.0.0.5:8001 --repo /models/repo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    u.add_argument("--key", required=True, help="engine key to serve (from `triton-llm engine ls`)")
    _target_flags(u)
    u.set_defaults(func=run_update)
    b = repo_sub.add_parser(
        "rollback",
        help="hot-swap a running server back to the version that served before",
        description="The same steps as `repo update`, for the version that served before the current one "
        "(still in the repository): it is verified, loaded, smoke-checked, switched to; the current one is "
        "unloaded once its streams finish.",
        epilog="examples:\n  triton-llm repo rollback\n"
        "  triton-llm repo rollback --url 10.0.0.5:8001 --repo /models/repo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _target_flags(b)
    b.set_defaults(func=run_rollback)
    s = repo_sub.add_parser(
        "sync",
        help="converge a versioned repository to the given engine keys from the object store",
        description=(
            "Write the versions a repository must hold, each restored and verified from the store: --key "
            "KEY per version (1..n, the last one serving), or --from another replica's "
            "triton-llm-versions.json. Versions already there are kept; a repository whose versions "
            "diverged is an error. Run it before Triton starts on the repository (e.g. an init container); "
            "a running server changes version through `repo update`."
        ),
        epilog="examples:\n  triton-llm repo sync --key 3f9a01c2b7d4 --repo /models/repo\n"
        "  triton-llm repo sync --key 3f9a01c2b7d4 --key 8be1f0a9d2c3 --repo /models/repo\n"
        "  triton-llm repo sync --from /shared/triton-llm-versions.json --repo /models/repo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--key", action="append", default=[], help="engine key of the next version (repeatable)")
    s.add_argument("--from", dest="state_file", type=Path, metavar="FILE", help="a triton-llm-versions.json")
    s.add_argument("--repo", type=Path, required=True, metavar="DIR", help="the repository to write")
    add_store_flags(s)
    s.set_defaults(func=run_sync)


def _report(report: object) -> None:
    phases = "  ".join(f"{k} {v:.1f}s" for k, v in report.phases.items())  # type: ignore[attr-defined]
    print(
        f"serving version {report.new_version} (engine {report.engine_key[:12]}); "  # type: ignore[attr-defined]
        f"version {report.old_version} unloaded{'' if report.drained else ' once its streams end'}"  # type: ignore[attr-defined]
        f"  [{phases}]",
        flush=True,
    )


def run_update(args: argparse.Namespace) -> int:
    from triton_llm.launch.update import resolve_target, update

    settings = settings_from_args(args)
    target = resolve_target(settings, url=args.url, repo=args.repo)
    _report(update(target, args.key, settings=settings, drain_timeout=args.drain_timeout))
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from triton_llm.launch.update import resolve_target, rollback

    settings = settings_from_args(args)
    target = resolve_target(settings, url=args.url, repo=args.repo)
    _report(rollback(target, settings=settings, drain_timeout=args.drain_timeout))
    return 0


def run_sync(args: argparse.Namespace) -> int:
    from triton_llm.launch.update import desired_versions, sync

    versions, serving = desired_versions(keys=args.key, state_file=args.state_file)
    sync(args.repo, versions, serving, settings=settings_from_args(args))
    return 0


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
        engine_key = ""
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
        engine_key = restored.key
    out = render_engine(engine, args.out.absolute(), overwrite=args.force, engine_key=engine_key)
    print(f"rendered {out} for {label}")
    return 0

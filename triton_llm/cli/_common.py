"""Flags shared by several commands, and settings resolution from them."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from triton_llm.settings import Settings


def add_store_flags(p: argparse.ArgumentParser) -> None:
    """--store and --endpoint-url."""
    p.add_argument(
        "--store",
        metavar="URI",
        help="object store: s3://bucket/prefix or file:///dir (default: $TRITON_LLM_STORE, "
        "else file://<cache dir>/store)",
    )
    p.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / AWS)",
    )


def add_recipe_flags(p: argparse.ArgumentParser) -> None:
    """--set and --backend."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a recipe field, as helm --set does (repeatable), e.g. --set parallelism.tp=3",
    )
    p.add_argument(
        "--backend",
        choices=["trtllm", "cpu"],
        help="build backend (default: trtllm when a GPU and tensorrt_llm are present, else cpu)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings with flags taking precedence over environment and settings file; applies the
    ``progress`` setting to this process's progress reports."""
    from triton_llm._progress import set_progress_mode
    from triton_llm.settings import load_settings

    flags: dict[str, Any] = {}
    if getattr(args, "store", None):
        flags["store"] = args.store
    if getattr(args, "endpoint_url", None):
        flags["s3_endpoint_url"] = args.endpoint_url
    settings = load_settings(flags)
    set_progress_mode(settings.progress)
    return settings

"""``triton-llm doctor``: check (and with --fix, repair) the local serving setup."""

from __future__ import annotations

import argparse

from triton_llm.launch.tritonserver import ensure_python_backend, find_triton


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check the local Triton install",
        description="Check that tritonserver and its python backend are usable.",
        epilog="example:\n  triton-llm doctor --fix",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--fix", action="store_true", help="install the python backend stub if missing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    install = find_triton()
    print(f"tritonserver: {install.binary}")
    if args.fix:
        changed = ensure_python_backend(install)
        print(f"python backend stub: {'installed' if changed else 'present'} at {install.python_stub}")
    elif not install.python_stub.is_file():
        print("python backend stub: missing (run `triton-llm doctor --fix`)")
        return 1
    return 0

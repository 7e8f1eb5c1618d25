"""Command line: arguments and output only. Every command calls a feature package.

Exit codes: 0 ok, 1 the operation failed, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from triton_llm import __version__
from triton_llm.errors import TritonLLMError

EXAMPLES = """examples:
  triton-llm engine build smollm2-135m                 build the default engine on this machine
  triton-llm engine build llama-3.1-8b-instruct --backend trtllm --dry-run
  triton-llm serve smollm2-135m                        build if needed, then serve on Triton
  triton-llm stream "Tell me a joke" --max-tokens 64   stream from a running server
  triton-llm frontend --triton 127.0.0.1:8001          OpenAI-compatible API on :9000 (serve starts it too)
"""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (each command group registers its own subcommands)."""
    from triton_llm.cli import _commands

    parser = argparse.ArgumentParser(
        prog="triton-llm",
        description="From a Hugging Face checkpoint to multi-node Triton + TensorRT-LLM serving.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"triton-llm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _commands.REGISTRY:
        register(sub)
    return parser


class _UsageExit(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``triton-llm`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        return int(code or 0)
    except TritonLLMError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

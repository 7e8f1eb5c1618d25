"""Command line: arguments and output only. Every command calls a feature package.

Exit codes: 0 ok, 1 the operation failed, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import logging
import os
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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``argv``, only the command it names is imported and registered.

    Without ``argv`` every command registers (slower: imports every command module).
    """
    from triton_llm.cli._commands import register_commands

    parser = argparse.ArgumentParser(
        prog="triton-llm",
        description="From a Hugging Face checkpoint to multi-node Triton + TensorRT-LLM serving.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"triton-llm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_commands(sub, argv)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``triton-llm`` console script."""
    # We use no pydantic plugins; looking for them scans every installed distribution's entry
    # points, ~15% of a no-op `engine pull`. Set the variable yourself to load plugins anyway.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        code = args.func(args)
        return int(code or 0)
    except TritonLLMError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        # Permissions, a full disk, a path through a file: the OS's own words and the path, no traceback.
        if args.debug:
            raise
        where = f": {e.filename}" if e.filename else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

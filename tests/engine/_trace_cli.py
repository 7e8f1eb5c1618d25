"""Run the real ``triton-llm`` CLI in a fresh process and record the work it did.

Usage: ``python _trace_cli.py OUT.json [--stop-at-popen] -- ARGS...``. OUT.json gets the exit
code, every module imported (``sys.modules`` at the end) and every directory listed
(``os.scandir``/``os.listdir`` audit events). ``--stop-at-popen`` ends the process at its first
``subprocess.Popen`` (e.g. ``serve`` starting tritonserver) and records what happened before it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main() -> None:
    out, rest = sys.argv[1], sys.argv[2:]
    stop_at_popen = "--stop-at-popen" in rest[: rest.index("--")]
    argv = rest[rest.index("--") + 1 :]
    listed: list[str] = []

    def dump(code: int, popen: Any = None) -> None:
        with open(out, "w") as f:
            json.dump({"code": code, "modules": sorted(sys.modules), "listed": listed, "popen": popen}, f)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in ("os.scandir", "os.listdir"):
            listed.append(os.fsdecode(args[0]) if args[0] is not None else ".")
        elif event == "subprocess.Popen" and stop_at_popen:
            dump(0, popen=[os.fsdecode(a) for a in args[1]])
            sys.stdout.flush()
            os._exit(0)

    sys.addaudithook(hook)
    from triton_llm.cli import main as cli_main

    code = cli_main(argv)
    sys.stdout.flush()
    dump(code)
    sys.exit(code)


if __name__ == "__main__":
    main()

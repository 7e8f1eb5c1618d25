"""Run every benchmark in turn (``make bench``); each rewrites its section of bench/RESULTS.md.

``python -m bench NAME ...`` runs only the named ones (store_restore, runtime_decode, serving, tp_decode,
loadgen, frontend, update).
"""

from __future__ import annotations

import importlib
import inspect
import sys

BENCHMARKS = ("store_restore", "runtime_decode", "serving", "tp_decode", "loadgen", "frontend", "update")


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {BENCHMARKS}", file=sys.stderr)
        return 2
    for name in names:
        print(f"== bench.{name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        takes_argv = bool(inspect.signature(module.main).parameters)
        code = module.main([]) if takes_argv else module.main()
        if code:
            return int(code)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

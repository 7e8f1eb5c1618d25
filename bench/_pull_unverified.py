"""Bench only: ``triton-llm engine pull`` with the sha256 of the received bytes skipped.

``bench.store_restore`` runs it next to the real pull to show what verification costs on the
bench machine. It is not a mode of the product: it swaps the hash object that
``triton_llm.store.restore`` uses for one that does nothing and matches every digest.
Run: ``python -m bench._pull_unverified engine pull KEY --dest DIR``.
"""

from __future__ import annotations

import importlib
import sys
import types

from triton_llm.cli import main

# the module, not the function of the same name that triton_llm.store exports
restore = importlib.import_module("triton_llm.store.restore")


class _AnyDigest(str):
    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


class _NoHash:
    def update(self, data: object) -> None:
        pass

    def hexdigest(self) -> str:
        return _AnyDigest("")


if not hasattr(restore, "hashlib"):
    raise SystemExit("triton_llm.store.restore no longer hashes via its `hashlib` name: update this bench")
setattr(restore, "hashlib", types.SimpleNamespace(sha256=_NoHash))  # noqa: B010 - a module, typed

if __name__ == "__main__":
    sys.exit(main())

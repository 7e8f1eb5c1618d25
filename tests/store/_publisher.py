"""Run one publish in a separate process (for race and kill tests); prints the result as JSON.

Usage: python -m tests.store._publisher URI SRC STAGE KEY [--hold-manifest DIR] [--die-after-parts N]

``--hold-manifest DIR``: after uploading, write ``DIR/ready-<pid>`` and wait for ``DIR/go``
before the conditional manifest create, so two publishers really race on that create.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.store.conftest import SMALL_PARTS
from triton_llm.settings import Settings
from triton_llm.store import open_store, publish


class _Faults:
    """Delegates to the real store; can SIGKILL this process after ``n`` uploaded parts or files,
    or hold the manifest create at a barrier."""

    def __init__(self, store: Any, *, die_after: int, hold: Path | None) -> None:
        self._store, self._n, self._count, self._hold = store, die_after, 0, hold

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        if self._hold:
            (self._hold / f"ready-{os.getpid()}").touch()
            deadline = time.monotonic() + 300  # the test is gone: do not wait forever
            while not (self._hold / "go").exists():
                if time.monotonic() > deadline:
                    raise SystemExit("no go signal at the barrier")
                time.sleep(0.002)
        return bool(self._store.put_bytes(key, data, if_absent=if_absent))

    def _tick(self) -> None:
        self._count += 1
        if self._n and self._count >= self._n:
            os.kill(os.getpid(), signal.SIGKILL)

    def put_part(self, *args: Any, **kwargs: Any) -> str:
        etag = self._store.put_part(*args, **kwargs)
        self._tick()
        return str(etag)

    def put_file(self, *args: Any, **kwargs: Any) -> None:
        self._store.put_file(*args, **kwargs)
        self._tick()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("uri")
    ap.add_argument("src", type=Path)
    ap.add_argument("stage")
    ap.add_argument("key")
    ap.add_argument("--hold-manifest", type=Path)
    ap.add_argument("--die-after-parts", type=int, default=0)
    args = ap.parse_args()
    store: Any = open_store(args.uri, settings=Settings(transfer=SMALL_PARTS))
    store = _Faults(store, die_after=args.die_after_parts, hold=args.hold_manifest)
    result = publish(
        store,
        args.src,
        stage=args.stage,
        key=args.key,
        fingerprint_inputs={"src": str(args.src)},
        versions={},
        transfer=SMALL_PARTS,
    )
    print(json.dumps({"won": result.won, "digest": result.manifest.digest(), "src": str(args.src)}))


if __name__ == "__main__":
    main()

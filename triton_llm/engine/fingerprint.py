"""The one fingerprint function: sha256 over canonical JSON.

Canonical JSON = keys sorted, no insignificant whitespace, UTF-8, no NaN. Every cache key
in the project (checkpoint, engine) is ``fingerprint(inputs)`` of a documented mapping.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    """Serialize ``obj`` so that equal data always gives equal bytes."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def fingerprint(obj: Any) -> str:
    """Hex sha256 of :func:`canonical_json` of ``obj``."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()

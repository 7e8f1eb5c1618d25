"""What an entry key looks like: the one owner of the key pattern and of the entry stages.

Keys are ``fingerprint()`` outputs: 64 lowercase hex digits (sha256). Users may refer to an
entry by a unique prefix of at least :data:`MIN_PREFIX` digits; every command that accepts a
key (``engine pull/show``, ``serve``, ``launch``, ``repo render``) decides with
:func:`looks_like_key`. (The store layout itself accepts any plain name, see
:func:`triton_llm.store.manifest.check_stage_key`.)
"""

from __future__ import annotations

import re

KEY_LENGTH = 64
"""Hex digits in a full key (sha256)."""

MIN_PREFIX = 8
"""The shortest key prefix accepted where a key is expected."""

ENTRY_STAGES = ("checkpoint", "engine")
"""The stages the build pipeline publishes; a full key is looked up in these directly."""

_KEY_REF = re.compile(rf"^[0-9a-f]{{{MIN_PREFIX},{KEY_LENGTH}}}$")


def looks_like_key(ref: str) -> bool:
    """True for a full key or a key prefix of at least :data:`MIN_PREFIX` hex digits."""
    return bool(_KEY_REF.match(ref))


def is_full_key(ref: str) -> bool:
    """True for a complete key: exactly :data:`KEY_LENGTH` lowercase hex digits."""
    return len(ref) == KEY_LENGTH and looks_like_key(ref)

"""Write one section of bench/RESULTS.md, leaving the other sections as they are."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = (
    "# Benchmark results\n\n"
    "Each section is rewritten by the command it names. Ratios matter; absolute times are noisy.\n"
)


def write_section(name: str, body: str, *, path: Path = RESULTS) -> None:
    """Replace (or append) the section ``## name`` with ``body``."""
    text = path.read_text() if path.exists() else HEADER
    block = f"<!-- begin {name} -->\n## {name}\n\n{body.rstrip()}\n<!-- end {name} -->\n"
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->\n", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    path.write_text(text)

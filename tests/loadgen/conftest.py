"""A real Triton serving the null decoupled model (known timing) for the whole module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.loadgen._null import serve_null

TTFT_MS = 50.0
ITL_MS = 10.0


@pytest.fixture(scope="module")
def null_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Triton 2.51 with ``null_llm``: first token 50 ms after arrival, then one every 10 ms."""
    with serve_null(tmp_path_factory.mktemp("null"), ttft_ms=TTFT_MS, itl_ms=ITL_MS) as server:
        yield server

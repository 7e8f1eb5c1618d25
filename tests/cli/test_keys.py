"""Every command that takes an entry key recognizes it by the one rule in ``triton_llm.store.keys``."""

from __future__ import annotations

import pytest

from triton_llm.cli import main
from triton_llm.store.keys import is_full_key, looks_like_key


def test_key_rule_boundaries() -> None:
    assert looks_like_key("0123abcd") and looks_like_key("f" * 64)
    assert not looks_like_key("0123abc") and not looks_like_key("f" * 65)
    assert not looks_like_key("0123ABCD") and not looks_like_key("smollm2-135m")
    assert is_full_key("a" * 64) and not is_full_key("a" * 63)


def test_launch_treats_a_short_key_prefix_as_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    # 10 hex digits: a key prefix for `engine pull` and `serve`, so for `launch` too.
    assert main(["launch", "0123456789", "--dry-run"]) == 2
    assert "engine key 0123456789" in capsys.readouterr().err

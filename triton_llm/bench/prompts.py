"""Prompt sources: synthetic prompts of an exact token length, or a JSONL file; length distributions."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triton_llm.errors import NotFoundError, UsageError


@dataclass(frozen=True)
class LengthDist:
    """A token length: fixed, ``uniform:LO,HI`` (inclusive) or ``normal:MEAN,STD`` (rounded, >= 1)."""

    kind: str
    a: int
    b: float = 0.0

    def sample(self, rng: random.Random) -> int:
        if self.kind == "uniform":
            return rng.randint(self.a, int(self.b))
        if self.kind == "normal":
            return max(1, round(rng.gauss(self.a, self.b)))
        return self.a

    def __str__(self) -> str:
        return str(self.a) if self.kind == "fixed" else f"{self.kind}:{self.a},{self.b:g}"


def parse_length(text: str, *, flag: str) -> LengthDist:
    """``"128"``, ``"uniform:64,256"`` or ``"normal:128,16"``.

    Raises:
        UsageError: anything else, naming the flag.
    """
    bad = UsageError(
        f"{flag}: {text!r} is not a length: use N, uniform:LO,HI or normal:MEAN,STD (N, LO, MEAN >= 1)",
        field=flag,
        value=text,
    )
    m = re.fullmatch(r"\s*(?:(uniform|normal):)?\s*(\d+)\s*(?:,\s*(\d+(?:\.\d+)?))?\s*", text)
    if not m:
        raise bad
    kind, a, b = m.group(1) or "fixed", int(m.group(2)), m.group(3)
    if a < 1 or (kind == "fixed") != (b is None):
        raise bad
    if kind == "uniform" and float(b or 0) < a:
        raise bad
    return LengthDist(kind, a, float(b) if b is not None else 0.0)


@dataclass(frozen=True)
class Prompt:
    """One request's prompt text, its token count (None if unknown) and its output length."""

    text: str
    input_tokens: int | None
    max_tokens: int


def load_tokenizer(name_or_dir: str) -> Any:
    """A Hugging Face tokenizer from a local folder (or a hub name when online).

    Raises:
        UsageError: transformers is not installed, or the tokenizer cannot be loaded.
    """
    try:
        from transformers import AutoTokenizer
    except ImportError as e:
        raise UsageError("synthetic prompts need transformers", hint="pip install 'triton-llm[bench]'") from e
    try:
        return AutoTokenizer.from_pretrained(name_or_dir)
    except (OSError, ValueError) as e:
        raise UsageError(
            f"--tokenizer {name_or_dir!r}: cannot load a tokenizer: {e}".splitlines()[0],
            field="--tokenizer",
            value=name_or_dir,
        ) from e


def _count(tokenizer: Any, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False))


def word_tokens(tokenizer: Any) -> list[str]:
    """Vocabulary entries that decode to one space-led lowercase word, e.g. ``" house"``.

    Joined, such words re-encode to one token each in byte-level BPE and SentencePiece
    vocabularies, which makes exact prompt lengths cheap to hit.
    """
    words = []
    for token_id in range(min(len(tokenizer), 60000)):
        piece = tokenizer.decode([token_id])
        if re.fullmatch(r" [a-z]{3,9}", piece):
            words.append(piece)
    if len(words) < 100:
        raise UsageError(
            "the tokenizer has too few plain-word tokens to build synthetic prompts",
            hint="pass prompts with --prompts FILE.jsonl",
        )
    return words


def synthetic_text(tokenizer: Any, words: list[str], length: int, rng: random.Random) -> str:
    """Random words that the tokenizer encodes to exactly ``length`` tokens (special tokens excluded).

    Raises:
        UsageError: no exact fit was found (a tokenizer that merges across words).
    """
    chosen = [rng.choice(words) for _ in range(length)]
    for _ in range(4 * length + 8):
        text = "".join(chosen)  # keeps the first word's space: " house" is one token, "house" may not be
        n = _count(tokenizer, text)
        if n == length:
            return text
        if n > length and len(chosen) > 1:
            chosen.pop()
        else:
            chosen.append(rng.choice(words))
    raise UsageError(
        f"could not build a prompt of exactly {length} tokens with this tokenizer",
        hint="pass prompts with --prompts FILE.jsonl",
    )


def synthetic_prompts(
    tokenizer: Any, *, count: int, input_len: LengthDist, output_len: LengthDist, seed: int = 0
) -> list[Prompt]:
    """``count`` prompts of random words, each exactly as long as its sampled input length."""
    rng = random.Random(seed)
    words = word_tokens(tokenizer)
    prompts = []
    for _ in range(count):
        n = input_len.sample(rng)
        prompts.append(Prompt(synthetic_text(tokenizer, words, n, rng), n, output_len.sample(rng)))
    return prompts


def with_token_counts(prompts: list[Prompt], tokenizer: Any) -> list[Prompt]:
    """The prompts with ``input_tokens`` counted by ``tokenizer`` (special tokens excluded)."""
    return [dataclasses.replace(p, input_tokens=_count(tokenizer, p.text)) for p in prompts]


def jsonl_prompts(path: Path, *, output_len: LengthDist, seed: int = 0) -> list[Prompt]:
    """Prompts from a JSONL file: one object per line with ``text`` (or ``prompt``) and an
    optional ``max_tokens`` (else drawn from ``output_len``). Blank lines are skipped.

    Raises:
        NotFoundError: the file does not exist.
        UsageError: a line is not a JSON object with a non-empty string prompt; names the line.
    """
    if not path.is_file():
        raise NotFoundError(f"--prompts: no such file {path}", field="--prompts", path=str(path))
    rng = random.Random(seed)
    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"--prompts {path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{where}: not JSON ({e.msg})", field="--prompts", path=str(path)) from None
        text = obj.get("text", obj.get("prompt")) if isinstance(obj, dict) else None
        if not isinstance(text, str) or not text:
            raise UsageError(
                f'{where}: expected an object with a non-empty "text" string',
                field="--prompts",
                path=str(path),
            )
        max_tokens = obj.get("max_tokens")
        if max_tokens is None:
            max_tokens = output_len.sample(rng)
        elif not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise UsageError(f"{where}: max_tokens must be a whole number >= 1", field="--prompts")
        prompts.append(Prompt(text, None, max_tokens))
    if not prompts:
        raise UsageError(f"--prompts {path}: the file has no prompts", field="--prompts", path=str(path))
    return prompts

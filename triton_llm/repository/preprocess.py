"""Preprocessing: prompt text to token ids, with the checks that keep bad requests out.

Used by the ``preprocessing`` python-backend model (and the BLS model). The chat template
is applied here, on the server, when the recipe's ``serving.chat_template`` is on or the
request sets ``apply_chat_template`` (the per-request switch wins); a whole conversation
(the optional ``chat_messages`` input, e.g. from the OpenAI frontend) always goes through
it. Every rejected request raises :class:`RequestError` with a message meant for the client.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from triton_llm.errors import UsageError


class RequestError(UsageError):
    """A request the server rejects; the message goes back to the client as is."""


@dataclass(frozen=True)
class Prepared:
    """A tokenized request, ready for the ``tensorrt_llm`` model."""

    input_ids: np.ndarray  # int32 [n]
    output_len: int
    stop_words: np.ndarray  # int32 [2, k] in TensorRT-LLM's (ids, offsets) layout
    bad_words: np.ndarray
    end_id: int
    pad_id: int


def load_tokenizer(tokenizer_dir: str | Path) -> Any:
    """The Hugging Face tokenizer saved next to the engine."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


def words_to_list(words: Sequence[str], tokenizer: Any) -> np.ndarray:
    """Encode stop/bad words into TensorRT-LLM's ``[2, k]`` list: ids, then end offsets padded with -1."""
    ids: list[int] = []
    offsets: list[int] = []
    for word in words:
        if not word:
            continue
        ids.extend(tokenizer.encode(word, add_special_tokens=False))
        offsets.append(len(ids))
    if not ids:
        return np.array([[0], [-1]], dtype=np.int32)
    width = max(len(ids), len(offsets))
    out = np.full((2, width), -1, dtype=np.int32)
    out[0, :] = 0
    out[0, : len(ids)] = ids
    out[1, : len(offsets)] = offsets
    return out


def list_to_words(arr: np.ndarray) -> list[list[int]]:
    """Invert :func:`words_to_list`: a ``[2, k]`` array to token-id lists."""
    arr = np.asarray(arr).reshape(2, -1)
    words: list[list[int]] = []
    start = 0
    for end in arr[1]:
        if end < 0:
            break
        words.append([int(x) for x in arr[0, start:end]])
        start = int(end)
    return words


def parse_chat_messages(text: str) -> list[dict[str, str]]:
    """Decode the ``chat_messages`` input: a JSON array of ``{"role": str, "content": str}`` objects.

    Raises:
        RequestError: not JSON, not a non-empty array, or an element of another shape.
    """
    try:
        messages = json.loads(text)
    except ValueError as e:
        raise RequestError(f"chat_messages is not valid JSON: {e}") from None
    if not isinstance(messages, list) or not messages:
        raise RequestError("chat_messages must be a non-empty JSON array of {role, content} objects")
    for i, message in enumerate(messages):
        if (
            not isinstance(message, dict)
            or set(message) != {"role", "content"}
            or not all(isinstance(v, str) for v in message.values())
        ):
            raise RequestError(
                f"chat_messages[{i}] must be an object with string 'role' and 'content' only "
                f"(got {message!r})"
            )
    return messages


class Preprocessor:
    """Tokenizes prompts for one engine and enforces its limits."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        max_input_len: int,
        max_seq_len: int,
        chat_template: bool = False,
        add_special_tokens: bool = True,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_input_len = max_input_len
        self.max_seq_len = max_seq_len
        self.chat_template = chat_template
        self.add_special_tokens = add_special_tokens

    def encode(
        self, prompt: str, *, apply_chat_template: bool | None = None, chat_messages: str | None = None
    ) -> list[int]:
        """Token ids of ``prompt`` (through the chat template when it applies), or of a conversation.

        Args:
            prompt: the text; ignored when ``chat_messages`` is given.
            apply_chat_template: the per-request switch (None: the server's setting).
            chat_messages: a JSON conversation (see :func:`parse_chat_messages`), always templated.

        Raises:
            RequestError: the template is needed but missing or switched off, or it rejects the messages.
        """
        if chat_messages is not None:
            if apply_chat_template is False:
                raise RequestError("chat_messages needs the chat template: leave apply_chat_template unset")
            return self._template(parse_chat_messages(chat_messages), switch="chat_messages is")
        use_template = self.chat_template if apply_chat_template is None else apply_chat_template
        if use_template:
            return self._template([{"role": "user", "content": prompt}], switch="apply_chat_template is")
        return [int(i) for i in self.tokenizer.encode(prompt, add_special_tokens=self.add_special_tokens)]

    def _template(self, messages: list[dict[str, str]], *, switch: str) -> list[int]:
        """The tokenizer's own chat template with the generation prompt, tokenized."""
        from jinja2 import TemplateError

        if not getattr(self.tokenizer, "chat_template", None):
            raise RequestError(f"{switch} set but this model's tokenizer has no chat template")
        try:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        except TemplateError as e:
            raise RequestError(f"the model's chat template rejected the messages: {e}") from None
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def prepare(
        self,
        prompt: str,
        *,
        max_tokens: int,
        stop_words: Sequence[str] = (),
        bad_words: Sequence[str] = (),
        end_id: int | None = None,
        pad_id: int | None = None,
        apply_chat_template: bool | None = None,
        chat_messages: str | None = None,
    ) -> Prepared:
        """Tokenize and check one request (a prompt, or a conversation in ``chat_messages``).

        Raises:
            RequestError: empty prompt (or both a prompt and chat_messages), bad chat_messages,
                prompt above max_input_len, max_tokens <= 0 or beyond the engine's max_seq_len,
                or an end/pad id outside the vocabulary.
        """
        if chat_messages is not None and prompt:
            raise RequestError("send either text_input or chat_messages, not both (text_input must be empty)")
        if chat_messages is None and not prompt.strip():
            raise RequestError("text_input is empty: send a non-empty prompt")
        if max_tokens <= 0:
            raise RequestError(f"max_tokens must be at least 1 (got {max_tokens})")
        ids = self.encode(prompt, apply_chat_template=apply_chat_template, chat_messages=chat_messages)
        if len(ids) > self.max_input_len:
            raise RequestError(
                f"prompt is {len(ids)} tokens, above the engine's max_input_len of {self.max_input_len}"
            )
        room = self.max_seq_len - len(ids)
        if max_tokens > room:
            raise RequestError(
                f"max_tokens {max_tokens} is above the engine limit: the prompt has {len(ids)} tokens and "
                f"max_seq_len is {self.max_seq_len}, so at most {room} new tokens fit"
            )
        vocab = len(self.tokenizer)
        eos = end_id if end_id is not None else self.tokenizer.eos_token_id
        pad = pad_id if pad_id is not None else (self.tokenizer.pad_token_id or eos)
        for name, value in (("end_id", eos), ("pad_id", pad)):
            if value is None or not 0 <= int(value) < vocab:
                raise RequestError(f"{name} {value} is outside the vocabulary (0..{vocab - 1})")
        return Prepared(
            input_ids=np.asarray(ids, dtype=np.int32),
            output_len=int(max_tokens),
            stop_words=words_to_list(stop_words, self.tokenizer),
            bad_words=words_to_list(bad_words, self.tokenizer),
            end_id=int(eos),
            pad_id=int(pad),
        )

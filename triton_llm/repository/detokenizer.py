"""Exact streaming detokenization.

Decoding tokens one by one loses text: SentencePiece drops the leading space of a lone
token, and a multi-byte UTF-8 character (emoji, CJK) split over two tokens decodes to
U+FFFD twice. :class:`IncrementalDetokenizer` decodes a small window of recent tokens
instead, emits only the text that the window adds, and holds back text that ends in an
incomplete character until the next token completes it. The concatenation of every
piece it returns (including :meth:`IncrementalDetokenizer.flush`) equals
``decode(all_ids)``.

:class:`StreamStates` keeps one detokenizer per stream inside the postprocessing model,
keyed by the Triton request id; it is bounded, so streams that never signal their end
cannot leak memory. :func:`postprocess_text` is the postprocessing model's protocol.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

REPLACEMENT = "\ufffd"


class Decoder(Protocol):
    """The part of a Hugging Face tokenizer the detokenizer uses."""

    def decode(self, ids: Sequence[int], **kwargs: object) -> str: ...


def decode(tokenizer: Decoder, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
    """Full decode with the settings streaming uses (no space clean-up), so both agree."""
    return tokenizer.decode(
        list(ids), skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False
    )


class IncrementalDetokenizer:
    """Turns a growing token sequence into text pieces whose concatenation is exact."""

    def __init__(self, tokenizer: Decoder, *, skip_special_tokens: bool = True) -> None:
        self._tok = tokenizer
        self._skip = skip_special_tokens
        self.ids: list[int] = []
        self._prefix = 0  # start of the decode window
        self._read = 0  # tokens before this index are already emitted
        self._emitted: list[str] = []

    def _decode(self, ids: Sequence[int]) -> str:
        return decode(self._tok, ids, skip_special_tokens=self._skip)

    def push(self, new_ids: Sequence[int]) -> str:
        """Add tokens; return the newly complete text ('' while a character is incomplete)."""
        self.ids.extend(int(i) for i in new_ids)
        if len(self.ids) == self._read:
            return ""
        prefix_text = self._decode(self.ids[self._prefix : self._read])
        window_text = self._decode(self.ids[self._prefix :])
        if window_text.endswith(REPLACEMENT):
            return ""
        if window_text.startswith(prefix_text):
            piece = window_text[len(prefix_text) :]
        else:  # a tokenizer whose window decode is not prefix-stable: fall back to a full decode
            piece = self._decode(self.ids)[len("".join(self._emitted)) :]
        self._prefix, self._read = self._read, len(self.ids)
        self._emitted.append(piece)
        return piece

    def flush(self) -> str:
        """The held-back text at the end of the stream (may contain U+FFFD, as a full decode does)."""
        if len(self.ids) == self._read:
            return ""
        full = self._decode(self.ids)
        piece = full[len("".join(self._emitted)) :]
        self._read = len(self.ids)
        self._emitted.append(piece)
        return piece

    @property
    def text(self) -> str:
        """Everything emitted so far."""
        return "".join(self._emitted)


class StreamStates:
    """Detokenizers by stream id, least recently used evicted beyond ``max_streams``."""

    def __init__(self, tokenizer: Decoder, *, max_streams: int = 4096, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self._max = max_streams
        self._states: OrderedDict[str, IncrementalDetokenizer] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, key: object) -> bool:
        return key in self._states

    def get(self, stream_id: str) -> IncrementalDetokenizer:
        """The stream's detokenizer, created on first use."""
        state = self._states.get(stream_id)
        if state is None:
            state = IncrementalDetokenizer(self.tokenizer, skip_special_tokens=self.skip_special_tokens)
            self._states[stream_id] = state
            while len(self._states) > self._max:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(stream_id)
        return state

    def finish(self, stream_id: str) -> str:
        """Flush and forget a stream; '' for an unknown stream."""
        state = self._states.pop(stream_id, None)
        return state.flush() if state is not None else ""


def postprocess_text(states: StreamStates, key: str, ids: list[int], sequence_length: int) -> str:
    """The text of one ``tensorrt_llm`` response, exact across a stream.

    The protocol (the CPU ``tensorrt_llm`` model follows it; see trtllm_cpu.py): a stream
    opens with a response of no tokens and ``sequence_length == 0``, its responses carry
    the new tokens, and it closes with a response of no tokens and ``sequence_length > 0``
    (the total). Postprocessing keeps a detokenizer per request id between the two. Any
    other response (non-streaming, or a backend that does not open streams) decodes on
    its own. Without a request id (``key == ''``) streams cannot be told apart, so each
    response decodes on its own too.

    Args:
        states: the detokenizers of open streams.
        key: the Triton request id ('' when the client set none).
        ids: this response's tokens.
        sequence_length: the response's ``sequence_length``.

    Returns:
        The text piece for this response.
    """
    if not ids and sequence_length == 0:
        if key:
            states.finish(key)
            states.get(key)
        return ""
    if key and key in states:
        if not ids:
            return states.finish(key)
        return states.get(key).push(ids)
    return decode(states.tokenizer, ids, skip_special_tokens=states.skip_special_tokens)

"""Exact streaming detokenization.

Decoding tokens one by one loses text: SentencePiece drops the leading space of a lone
token, and a multi-byte UTF-8 character (emoji, CJK) split over two tokens decodes to
U+FFFD twice. :class:`IncrementalDetokenizer` decodes a small window of recent tokens
instead, emits only the text that the window adds, and holds back an incomplete character
at the end until a later token completes it.

The rule every path follows (postprocessing streamed or not, the BLS): the text of a token
sequence is its full decode without trailing U+FFFD. However the sequence is split into
pushes, the pieces concatenate to that text. A generation cut inside a multi-byte character
(by its token limit) therefore ends without the replacement characters: a stream cannot
know that no token will complete the character, and the one-shot text must equal it.

:class:`StreamStates` keeps one detokenizer per stream inside the postprocessing model,
keyed by :func:`triton_llm.repository.cancel.stream_key`; it is bounded (least recently used
streams are dropped), because a stream's last response does not say that it is the last.
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


def complete_text(text: str) -> str:
    """``text`` without the replacement characters an unfinished last character decodes to."""
    return text.rstrip(REPLACEMENT)


class IncrementalDetokenizer:
    """Turns a growing token sequence into text pieces whose concatenation is exact.

    Only the tokens of the current window are kept (the last settled token onwards), so a
    long-lived stream holds a few ids, not its history.
    """

    def __init__(self, tokenizer: Decoder, *, skip_special_tokens: bool = True) -> None:
        self._tok = tokenizer
        self._skip = skip_special_tokens
        self._window: list[int] = []  # tokens from the window start
        self._read = 0  # tokens of the window whose text is settled
        self._pending = ""  # text emitted beyond the settled part (the window ends mid-character)
        self._emitted: list[str] = []
        self.count = 0  # tokens pushed so far

    def _decode(self, ids: Sequence[int]) -> str:
        return decode(self._tok, ids, skip_special_tokens=self._skip)

    def push(self, new_ids: Sequence[int]) -> str:
        """Add tokens; return the newly complete text ('' while a character is incomplete)."""
        new_ids = [int(i) for i in new_ids]
        if not new_ids:
            return ""
        self.count += len(new_ids)
        self._window.extend(new_ids)
        prefix_text = self._decode(self._window[: self._read])
        window_text = self._decode(self._window)
        if window_text.startswith(prefix_text):
            new = window_text[len(prefix_text) :]
        else:  # a tokenizer whose window decode is not prefix-stable: skip the common part
            common = 0
            while common < min(len(prefix_text), len(window_text)) and (
                prefix_text[common] == window_text[common]
            ):
                common += 1
            new = window_text[common:]
        complete = complete_text(new)
        piece = complete[len(self._pending) :] if complete.startswith(self._pending) else ""
        if len(complete) < len(new):  # ends inside a character: keep the window open
            self._pending += piece
        else:  # settle: the window restarts at the tokens just read
            self._window = self._window[self._read :]
            self._read = len(self._window)
            self._pending = ""
        self._emitted.append(piece)
        return piece

    @property
    def text(self) -> str:
        """Everything emitted so far."""
        return "".join(self._emitted)


class StreamStates:
    """Detokenizers by stream key, least recently used dropped beyond ``max_streams``."""

    def __init__(self, tokenizer: Decoder, *, max_streams: int = 4096, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self._max = max_streams
        self._states: OrderedDict[str, IncrementalDetokenizer] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, key: object) -> bool:
        return key in self._states

    def get(self, key: str) -> IncrementalDetokenizer:
        """The stream's detokenizer, created on first use."""
        state = self._states.get(key)
        if state is None:
            state = IncrementalDetokenizer(self.tokenizer, skip_special_tokens=self.skip_special_tokens)
            self._states[key] = state
            while len(self._states) > self._max:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(key)
        return state

    def forget(self, key: str) -> None:
        """Drop a stream's state (unknown keys are ignored)."""
        self._states.pop(key, None)


def postprocess_text(states: StreamStates, key: str, ids: list[int]) -> str:
    """The text of one ``tensorrt_llm`` response, exact across a stream.

    ``tensorrt_llm`` responds as TensorRT-LLM 1.2's backend does: each streamed response
    carries only its new tokens, a non-streamed one all of them, and none says whether more
    follow. With a stream key, the response continues that stream's detokenizer (a
    non-streamed answer is a stream of one response). Without one (no request id and no
    ``arrival_time_ns``), responses cannot be told apart and each decodes on its own.

    Args:
        states: the detokenizers of the streams seen so far.
        key: the stream key ('' when there is none).
        ids: this response's tokens.

    Returns:
        The text piece for this response.
    """
    if not key:
        return decode(states.tokenizer, ids, skip_special_tokens=states.skip_special_tokens)
    return states.get(key).push(ids)

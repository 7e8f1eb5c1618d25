"""OpenAI ``stop`` sequences on streamed text: cut before the first match, hold back partial matches."""

from __future__ import annotations

from collections.abc import Iterable


class StopMatcher:
    """Feeds streamed pieces and releases only text that cannot be part of a stop sequence.

    Generation stops as soon as any stop sequence is complete, and the text is returned up
    to (not including) that sequence. Pieces arrive in arbitrary splits, so a suffix that
    could still grow into a stop sequence is held back until the next piece (or
    :meth:`flush` at the end) decides; the result never depends on the split.
    """

    def __init__(self, stops: Iterable[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._held = ""
        self.matched = False

    def feed(self, piece: str) -> str:
        """The text that is safe to emit after ``piece``; sets :attr:`matched` on a stop sequence."""
        if not self.stops:
            return piece
        text = self._held + piece
        # The stop sequence completed first (smallest end) wins, as if generation stopped right there;
        # of two completing together the longer one, which starts earlier, decides the cut.
        found = [(i + len(s), i) for i, s in ((text.find(s), s) for s in self.stops) if i >= 0]
        if found:
            self._held = ""
            self.matched = True
            return text[: min(found)[1]]
        keep = max((self._partial(text, s) for s in self.stops), default=0)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        """The held-back text once the stream has ended without a match."""
        out, self._held = self._held, ""
        return out

    @staticmethod
    def _partial(text: str, stop: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of ``stop``."""
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                return k
        return 0

"""Progress reporting: tqdm bars on a terminal, plain log lines otherwise.

Long work (stages, transfers) reports through :func:`progress`; callers never check for a
TTY themselves. The mode is the ``progress`` setting (``TRITON_LLM_PROGRESS=plain|bar|off``, or
``progress:`` in the settings file), which the CLI applies once at start-up with
:func:`set_progress_mode`; ``auto`` (the default) means bars on a terminal, plain lines otherwise.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Protocol


class ProgressBar(Protocol):
    def update(self, n: int) -> None: ...


MODES = ("auto", "bar", "plain", "off")
_mode_setting = "auto"


def set_progress_mode(mode: str) -> None:
    """Use ``mode`` (one of :data:`MODES`, from ``Settings.progress``) for every later progress report.

    Raises:
        ValueError: an unknown mode.
    """
    global _mode_setting
    if mode not in MODES:
        raise ValueError(f"progress mode {mode!r} is not one of {', '.join(MODES)}")
    _mode_setting = mode


def _mode(stream: IO[str]) -> str:
    if _mode_setting != "auto":
        return _mode_setting
    return "bar" if stream.isatty() else "plain"


def _human(n: float, unit: str) -> str:
    if unit != "B":
        return f"{n:.0f} {unit}"
    for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or suffix == "TiB":
            return f"{n:.1f} {suffix}" if suffix != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} TiB"


class _PlainBar:
    """Prints a start line, a line every ``interval`` seconds, and a done line."""

    def __init__(self, desc: str, total: int | None, unit: str, stream: IO[str], interval: float) -> None:
        self.desc, self.total, self.unit, self.stream, self.interval = desc, total, unit, stream, interval
        self.n = 0
        self.start = self.last = time.monotonic()
        self.lock = threading.Lock()
        total_s = f" ({_human(total, unit)})" if total else ""
        print(f"{desc}: started{total_s}", file=stream, flush=True)

    def update(self, n: int) -> None:
        with self.lock:
            self.n += n
            now = time.monotonic()
            if now - self.last >= self.interval:
                self.last = now
                self._line("")

    def _line(self, prefix: str) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.n / elapsed
        pct = f" {100 * self.n / self.total:.0f}%" if self.total else ""
        eta = ""
        if self.total and rate > 0 and self.n < self.total:
            eta = f", eta {(self.total - self.n) / rate:.0f}s"
        rate_unit = "B" if self.unit == "B" else self.unit
        print(
            f"{self.desc}: {prefix}{_human(self.n, self.unit)}{pct} at {_human(rate, rate_unit)}/s{eta}",
            file=self.stream,
            flush=True,
        )

    def close(self, *, failed: bool = False) -> None:
        self._line("failed after " if failed else "done, ")


class _NullBar:
    def update(self, n: int) -> None:
        pass


@contextmanager
def progress(
    desc: str,
    *,
    total: int | None = None,
    unit: str = "B",
    stream: IO[str] | None = None,
    interval: float = 5.0,
) -> Iterator[ProgressBar]:
    """A thread-safe progress bar; ``update(n)`` adds ``n`` units of work done."""
    out = stream or sys.stderr
    mode = _mode(out)
    if mode == "off":
        yield _NullBar()
        return
    if mode == "plain":
        bar = _PlainBar(desc, total, unit, out, interval)
        try:
            yield bar
        except BaseException:
            bar.close(failed=True)
            raise
        bar.close()
        return
    from tqdm import tqdm

    with tqdm(
        total=total, desc=desc, unit=unit, unit_scale=unit == "B", unit_divisor=1024, file=out, leave=True
    ) as bar:
        lock = threading.Lock()

        class _Bar:
            def update(self, n: int) -> None:
                with lock:
                    bar.update(n)

        yield _Bar()

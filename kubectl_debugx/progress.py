"""Progress of a long transfer on stderr: one line refreshed in place on a terminal, a plain line every few
seconds otherwise (a log file or CI output must not fill with carriage returns). Nothing for the first second:
a quick copy says only its summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from kubectl_debugx.talk import human_size

QUIET_START = 1.0  # seconds before the first line
TTY_EVERY = 0.5
PLAIN_EVERY = 5.0


def line(done: int, total: int | None, elapsed: float) -> str:
    """`12.6 MB of 20.9 MB (60%), 8.4 MB/s`; without a known total `12.6 MB, 8.4 MB/s`."""
    rate = done / elapsed if elapsed > 0 else 0.0
    head = human_size(done)
    if total:
        head += f" of {human_size(total)} ({min(100, done * 100 // total)}%)"
    return f"{head}, {human_size(int(rate))}/s"


class Progress:
    """`describe(elapsed)` replaces the bytes line when a command counts more than bytes (capture: packets)."""

    def __init__(self, what: str, total: int | None, *, stream: TextIO | None = None, quiet: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 describe: Callable[[float], str] | None = None) -> None:
        self.what = what
        self.describe = describe
        self.total = total
        self.done = 0
        self._stream = stream or sys.stderr
        self._quiet = quiet
        self._clock = clock
        self._start = clock()
        self._next = self._start + QUIET_START
        self._tty = self._stream.isatty()
        self._drawn = False  # a line refreshed in place is on the terminal

    def add(self, count: int) -> None:
        self.done += count
        self.tick()

    def tick(self) -> None:
        """Show the line if it is due (also while nothing arrives: the rate then falls)."""
        now = self._clock()
        if self._quiet or now < self._next:
            return
        self._next = now + (TTY_EVERY if self._tty else PLAIN_EVERY)
        elapsed = now - self._start
        text = f"{self.what}: {self.describe(elapsed) if self.describe else line(self.done, self.total, elapsed)}"
        if self._tty:
            self._stream.write(f"\r{text}\x1b[K")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
        self._drawn = self._tty

    def clear(self) -> None:
        """Erase the refreshed line (before another line of talk; the next tick draws it again)."""
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False

    def finish(self) -> None:
        """Clear the refreshed line, so that the summary that follows starts on a clean line."""
        self.clear()

"""The local terminal during an interactive shell: raw mode, its size, and SIGWINCH.

In raw mode every key is a byte for the remote terminal: Ctrl-C (0x03) and Ctrl-Z (0x1a) reach the remote
shell, whose terminal turns them into SIGINT/SIGTSTP for its foreground job, as `kubectl exec -it` and ssh do;
our process gets no signal from them. The saved mode is put back when the block ends, however it ends (an
error, Ctrl-C or SIGTERM sent by `kill`, which raise through it: remote/streamrun.stop_signals_raise).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any


def size(fd: int) -> tuple[int, int]:
    """(columns, rows) of the terminal `fd`; (0, 0) when it has none (the remote side then keeps its own)."""
    try:
        got = os.get_terminal_size(fd)
    except OSError:
        return 0, 0
    return got.columns, got.lines


@contextlib.contextmanager
def raw(fd: int) -> Iterator[None]:
    """`fd`'s terminal in raw mode for the block, its mode restored after it."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        # TCSADRAIN: what we wrote reaches the screen first; what was typed meanwhile is not thrown away
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def on_resize(wake_fd: int) -> Iterator[None]:
    """SIGWINCH writes a byte to `wake_fd` (non-blocking), which wakes the relay's select() (kube/execinput.py):
    the handler itself does nothing else, so a resize never interrupts a frame being written."""

    def handler(_signum: int, _frame: Any) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(wake_fd, b"w")

    previous = signal.signal(signal.SIGWINCH, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)

"""Where streamed data goes: a file (created only when the first byte arrives) or stdout."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


class PipeClosed(Exception):
    """The reader of our stdout went away (for example `| head` or a closed Wireshark)."""


class ByteSink:
    """Unbuffered writes so a pipe reader (tshark, Wireshark) sees each packet as it arrives.

    A file is opened on the first write, so a run that fails before producing data leaves nothing behind
    and an existing file replaced with --force survives until there is something to replace it with.
    """

    def __init__(self, path: str, *, opener: Callable[[], int] | None = None) -> None:
        """`opener` gives the fd to write to (ours to close) instead of opening `path`, which then only names
        it: the stdin of a program started on the first byte (remote/viewers.py)."""
        self.path = path
        self.opener = opener
        self.fd: int | None = None
        self.written = 0

    @property
    def display(self) -> str:
        return "stdout" if self.path == "-" and not self.opener else self.path

    def _open(self) -> int:
        if self.fd is None:
            if self.opener:
                self.fd = self.opener()
            elif self.path == "-":
                self.fd = sys.stdout.fileno()
            else:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        return self.fd

    def write(self, data: bytes | memoryview) -> None:
        """Write now (for data that arrives alone)."""
        if data:
            self.writev([data])

    def writev(self, parts: list[bytes | memoryview]) -> None:
        """Write several buffers with as few system calls as the kernel allows."""
        fd = self._open()
        views = [memoryview(p) for p in parts if p]
        try:
            while views:
                n = os.writev(fd, views[:1024])  # IOV_MAX
                self.written += n
                while views and n >= len(views[0]):
                    n -= len(views[0])
                    views.pop(0)
                if n:
                    views[0] = views[0][n:]
        except BrokenPipeError:
            raise PipeClosed() from None
        finally:
            for view in views:
                view.release()

    def close(self) -> None:
        if self.fd is not None and (self.path != "-" or self.opener):
            os.close(self.fd)
        self.fd = None


class WholeLines:
    """A ByteSink that receives whole lines only: the start of a line is held until its newline arrives, so
    the output ends on a whole line even if we are killed (-9) mid-line (bench/reliability checks it);
    close() writes a last unterminated line, then closes the sink."""

    def __init__(self, sink: ByteSink) -> None:
        self.sink = sink
        self.tail = bytearray()

    def write(self, data: bytes | memoryview) -> int:
        """Write what ends with a newline, hold the rest; the number of newlines written."""
        chunk = bytes(data)
        end = chunk.rfind(b"\n") + 1
        if not end:
            self.tail += chunk
            return 0
        self.sink.writev([bytes(self.tail), chunk[:end]])
        self.tail[:] = chunk[end:]
        return chunk.count(b"\n")

    def close(self, flush: bool = True) -> None:
        try:
            if self.tail and flush:
                self.sink.write(bytes(self.tail))
        finally:
            self.tail.clear()
            self.sink.close()

"""Where streamed data goes: a file (created only when the first byte arrives) or stdout."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

_IOV_MAX = 1024  # the most buffers one writev takes (Linux and macOS)


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
        """Write several buffers with as few system calls as the kernel allows: the parts as they are, up to
        IOV_MAX (1024) a call; only a short write (a pipe's reader slower than us) slices what is left.
        Capture hands one part per packet, so no object is made per part on the usual path."""
        fd = self._open()
        try:
            for first in range(0, len(parts), _IOV_MAX):
                chunk = parts[first:first + _IOV_MAX]
                n = os.writev(fd, chunk)
                self.written += n
                if n < sum(map(len, chunk)):
                    self._rest(fd, chunk, n)
        except BrokenPipeError:
            raise PipeClosed() from None

    def _rest(self, fd: int, parts: list[bytes | memoryview], done: int) -> None:
        """After a short write of `done` bytes of `parts`: the rest, sliced as views released at the end."""
        views = [memoryview(p) for p in parts]
        try:
            while views:
                while views and done >= len(views[0]):
                    done -= len(views[0])
                    views.pop(0).release()
                if views and done:
                    head = views[0]
                    views[0] = head[done:]
                    head.release()
                    done = 0
                if views:
                    done = os.writev(fd, views)
                    self.written += done
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

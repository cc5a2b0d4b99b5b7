"""What we send on an exec stream: the loop that relays the user's input while the output is read (the shell,
commands/shell/, the one exec whose stdin carries the user's bytes), and the writer of a stream we make (cp's
upload).

Channels (docs/kubernetes-facts.md, "Exec WebSocket"): 0 stdin, 4 resize (`{"Width": W, "Height": H}`, as
kubectl's TerminalSize), 255 close (v5 only: `[255, 0]` closes the command's stdin, which then reads EOF; v4 has
no way to end stdin but closing the whole stream).

Frames are written here, not by websocket-client's send(): the socket is non-blocking while an ExecReader reads
it, and websocket-client then sends part of a frame and raises, which would corrupt the stream. A frame is
written whole, waiting for the socket to take the rest.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import ssl
from collections.abc import Callable
from typing import Any

from kubectl_debugx.kube.execstream import CLOSE, RESIZE, STDIN, ExecReader

SEND_TIMEOUT = 30.0  # seconds a frame may wait for the socket to take it: a server that reads nothing is gone
READ_SIZE = 64 * 1024


class SendFailed(Exception):
    """The frame could not be written: the connection is gone (the reader then sees the stream's end)."""


# XOR with each byte value: bytes.translate() masks a quarter of the payload at a time. websocket-client's mask
# (big-integer XOR over array copies) built frames at 300 MB/s here, the ceiling of cp's upload; this at 670 MB/s.
_XOR = [bytes(i ^ k for i in range(256)) for k in range(256)]


def frame(channel: int, data: bytes | bytearray | memoryview, mask: bytes,
          into: bytearray | None = None) -> bytearray | memoryview:
    """The masked binary WebSocket frame of `channel` + `data` (RFC 6455 §5.2; a client masks every frame with a
    random 4-byte key), built without concatenating the payload first; in `into` when given and large enough (a
    view of its start is returned): a fresh 1 MiB bytearray per frame cost cp's upload 0.35 s of system time
    per 300 MB in page faults."""
    n = len(data) + 1
    if n < 126:
        head = bytes((0x82, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x82, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x82, 0xFF)) + n.to_bytes(8, "big")
    start = len(head) + 4
    end = start + n
    out = into if into is not None and len(into) >= end else bytearray(end)
    out[: start - 4] = head
    out[start - 4: start] = mask
    out[start] = channel ^ mask[0]
    body = bytes(data)
    for i in range(4):  # data byte j is payload byte j + 1: masked by mask[(j + 1) % 4]
        out[start + 1 + i:end:4] = body[i::4].translate(_XOR[mask[(i + 1) % 4]])
    return out if len(out) == end else memoryview(out)[:end]


class StreamEnded(Exception):
    """The exec's stream ended while its stdin was being written (the command failed or was stopped): its
    outcome says why."""


def send(conn: Any, channel: int, data: bytes | bytearray | memoryview, reader: ExecReader | None = None,
         into: bytearray | None = None) -> None:
    """One binary message `channel` + `data`, written whole (its frame built in `into`, see frame). With
    `reader`, the stream is read whenever the socket takes no more (what the command says meanwhile is
    delivered, and a server blocked writing to us never blocks us both); StreamEnded once it has ended."""
    view = memoryview(frame(channel, data, os.urandom(4), into))
    sock = conn.ws.sock
    watch = [sock] if reader is not None else []
    while view:
        try:
            n = sock.send(view)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            n = 0
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                n = 0
            else:
                raise SendFailed(str(e)) from None
        if n:
            view = view[n:]
            continue
        readable, writable, _ = select.select(watch, [sock], [], SEND_TIMEOUT)
        if readable and reader is not None:
            reader.read()
            if reader.outcome is not None:
                raise StreamEnded
        elif not writable:
            raise SendFailed(f"the API server took no data for {SEND_TIMEOUT:g}s")


class StdinWriter:
    """The exec's stdin written from the calling thread, no pipe or thread between (issue 24: cp's upload
    went through a pipe to the relay: two copies of every byte, 0.4 s of 1.4 s of client CPU per 300 MB on the
    lab). Small writes (tar headers) are gathered into frames of up to `size` bytes; one at least `size / 4`
    goes out as its own frame (a file's data: framing copies it anyway). The stream is read while the socket
    takes no more (see send)."""

    def __init__(self, conn: Any, reader: ExecReader, size: int) -> None:
        self.conn, self.reader, self.size = conn, reader, size
        self.pending = bytearray()
        self.frames = bytearray(size + 16)  # every frame is built here: a frame's header is at most 14 bytes

    def write(self, data: bytes | memoryview) -> None:
        if self.reader.outcome is not None:
            raise StreamEnded
        if len(data) >= self.size // 4:
            self.flush()
            send(self.conn, STDIN, data, self.reader, self.frames)
            return
        self.pending += data
        if len(self.pending) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            data, self.pending = self.pending, bytearray()
            send(self.conn, STDIN, data, self.reader, self.frames)


def send_stdin(conn: Any, data: bytes) -> None:
    send(conn, STDIN, data)


def close_stdin(conn: Any) -> bool:
    """End the command's stdin (it reads EOF); False when the protocol cannot (v4: only closing the stream)."""
    if conn.protocol != "v5.channel.k8s.io":
        return False
    send(conn, CLOSE, bytes((STDIN,)))
    return True


def resize_message(width: int, height: int) -> bytes:
    """The terminal size as the API server's TerminalSize (Go field names, no spaces: kubectl's encoding)."""
    return json.dumps({"Width": width, "Height": height}, separators=(",", ":")).encode()


def send_resize(conn: Any, width: int, height: int) -> None:
    send(conn, RESIZE, resize_message(width, height))


def relay(reader: ExecReader, conn: Any, stdin_fd: int | None, *, end_stdin: bool, wake_fd: int | None = None,
          on_wake: Callable[[], None] | None = None, on_stdin_end: Callable[[bool], None] | None = None) -> None:
    """Read the stream until it ends while `stdin_fd`'s bytes go to the command's stdin as they come (a key
    pressed is sent at once: no batching, no tick). At EOF of stdin_fd the command's stdin is closed when
    `end_stdin` (a pipe's end; a terminal has none), and `on_stdin_end(closed)` is told whether it could be.
    `wake_fd` (a self-pipe written by signal handlers: SIGWINCH) wakes the loop, which drains it and calls
    `on_wake`. Signal handlers that raise (Ctrl-C, SIGTERM) end the loop with their exception."""
    watching = stdin_fd is not None
    while reader.outcome is None:
        # Try first: SSL may hold decrypted bytes that select() cannot see (kubernetes-client/python#2414).
        if reader.read():
            continue
        fds = [reader.sock]
        if watching and stdin_fd is not None:
            fds.append(stdin_fd)
        if wake_fd is not None:
            fds.append(wake_fd)
        ready = select.select(fds, [], [])[0]
        if wake_fd is not None and wake_fd in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_fd, 4096)
            if on_wake is not None:
                on_wake()
        if watching and stdin_fd is not None and stdin_fd in ready:
            try:
                data = os.read(stdin_fd, READ_SIZE)
            except OSError as e:  # a terminal that went away (EIO): its end
                if e.errno not in (errno.EIO, errno.EBADF):
                    raise
                data = b""
            try:
                if data:
                    send_stdin(conn, data)
                    continue
                watching = False
                closed = close_stdin(conn) if end_stdin else False
                if on_stdin_end is not None:
                    on_stdin_end(closed)
            except SendFailed:
                watching = False  # the reader sees the connection's end next

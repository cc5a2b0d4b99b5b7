"""Binary-safe reading of an exec WebSocket (channel protocol v5, v4 or the legacy one).

We read raw frames ourselves: the official client decodes to text unless told otherwise and keeps a copy of
all output in memory (research/tech.md §2). Channel 1 bytes go to the caller's sink as they arrive.
"""

from __future__ import annotations

import json
import re
import select
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


@dataclass(frozen=True)
class ExecOutcome:
    """How a remote command ended. exit_code is None when it did not end by itself with a status
    (the stream was cut, or the server reported an error such as an unknown command)."""

    exit_code: int | None
    message: str = ""
    reason: str = ""
    cut: bool = False


def parse_status(protocol: str, payload: bytes) -> ExecOutcome:
    """The channel-3 payload as an outcome. v4/v5 send a metav1 Status; the legacy protocol plain text."""
    text = payload.decode("utf-8", "replace").strip()
    if not protocol:
        if not text:
            return ExecOutcome(0)
        match = re.search(r"exit code (\d+)\s*$", text)
        return ExecOutcome(int(match.group(1)) if match else None, text, "NonZeroExitCode" if match else "")
    if not text:
        return ExecOutcome(None, "the exec stream ended without an exit status", cut=True)
    try:
        status: dict[str, Any] = json.loads(text)
    except ValueError:
        return ExecOutcome(None, text)
    if status.get("status") == "Success":
        return ExecOutcome(0)
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or "")
    if reason == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).isdigit():
                return ExecOutcome(int(cause["message"]), message, reason)
    return ExecOutcome(None, message, reason)


OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RECV_SIZE = 256 * 1024


class StreamClosed(Exception):
    """The server closed the WebSocket (close frame) or the connection."""


class FrameReader:
    """Server-to-client WebSocket frames straight from the socket.

    websocket-client reads a frame in 16 KiB pieces and copies it several times; at hundreds of MB/s that
    is most of the CPU. Here payloads are handed out as views of one receive buffer (valid only during the
    callback). Server frames are never masked (RFC 6455 §5.1).
    """

    def __init__(self, sock: Any, pong: Callable[[bytes], None]) -> None:
        self.sock = sock
        self.pong = pong
        self.buf = bytearray()
        self.chunk = bytearray(RECV_SIZE)
        self.message = bytearray()  # a fragmented message being reassembled (rare)
        self.message_opcode = 0

    def read(self, on_message: Callable[[int, memoryview], None]) -> bool:
        """Receive what is available (the socket is non-blocking) and deliver every complete message.
        Returns False when nothing was available; raises StreamClosed at the end of the stream."""
        received = 0
        with memoryview(self.chunk) as chunk:
            while received < len(self.chunk):
                try:
                    n = self.sock.recv_into(chunk[received:])
                except (ssl.SSLWantReadError, BlockingIOError):
                    break
                if n == 0:
                    if received:
                        break
                    raise StreamClosed("connection closed")
                received += n
            if not received:
                return False
            self.buf += chunk[:received]
        view = memoryview(self.buf)
        pos = 0
        try:
            while True:
                parsed = self._frame(view, pos)
                if parsed is None:
                    break
                fin, opcode, start, end = parsed
                pos = end
                if opcode == OP_CLOSE:
                    raise StreamClosed("close frame")
                with view[start:end] as payload:
                    self._deliver(fin, opcode, payload, on_message)
        finally:
            try:
                view.release()
                del self.buf[:pos]
            except BufferError:
                # A callback raised while holding a view (its traceback keeps it alive): leave that buffer
                # to the exception and go on with a copy, so the original error is what surfaces.
                self.buf = bytearray(self.buf[pos:])
        return True

    def _deliver(self, fin: bool, opcode: int, payload: memoryview,
                 on_message: Callable[[int, memoryview], None]) -> None:
        if opcode == OP_PING:
            self.pong(bytes(payload))
        elif opcode == OP_PONG:
            pass
        elif opcode == OP_CONT or not fin:
            if opcode != OP_CONT:
                self.message_opcode = opcode
            self.message += payload
            if fin:
                on_message(self.message_opcode, memoryview(bytes(self.message)))
                self.message = bytearray()
        else:
            on_message(opcode, payload)

    @staticmethod
    def _frame(view: memoryview, pos: int) -> tuple[bool, int, int, int] | None:
        available = len(view) - pos
        if available < 2:
            return None
        b0, b1 = view[pos], view[pos + 1]
        length = b1 & 0x7F
        header = 2
        if length == 126:
            header = 4
            if available < header:
                return None
            length = int.from_bytes(view[pos + 2:pos + 4], "big")
        elif length == 127:
            header = 10
            if available < header:
                return None
            length = int.from_bytes(view[pos + 2:pos + 10], "big")
        if b1 & 0x80:
            raise ValueError("the server sent a masked frame")
        if available < header + length:
            return None
        return bool(b0 & 0x80), b0 & 0x0F, pos + header, pos + header + length


def pump(
    conn: Any,
    on_stdout: Callable[[memoryview], None],
    on_stderr: Callable[[bytes], None],
    tick: Callable[[], None] | None = None,
    tick_interval: float = 0.2,
) -> ExecOutcome:
    """Read frames until the server closes the stream; returns how the command ended.

    `tick` runs at least every `tick_interval` seconds, between frames, so the caller can act on a deadline
    or a signal (for example by stopping the remote process) while the stream keeps being drained.
    """
    from websocket import WebSocketException

    ws = conn.ws
    ws.sock.setblocking(False)  # read whatever has arrived in one go; select() only when nothing has
    reader = FrameReader(ws.sock, ws.pong)
    status = bytearray()
    next_tick = time.monotonic() + tick_interval

    def on_message(opcode: int, data: memoryview) -> None:
        if not data or opcode not in (OP_BINARY, OP_TEXT):
            return
        channel = data[0]
        if channel == STDOUT:
            if len(data) > 1:
                on_stdout(data[1:])
        elif channel == STDERR:
            on_stderr(bytes(data[1:]))
        elif channel == STATUS:
            status.extend(data[1:])

    try:
        while True:
            if tick is not None and time.monotonic() >= next_tick:
                tick()
                next_tick = time.monotonic() + tick_interval
            # Try first: SSL may hold decrypted bytes that select() cannot see (kubernetes-client/python#2414).
            if not reader.read(on_message):
                select.select([reader.sock], [], [], tick_interval if tick else None)
    except StreamClosed:
        pass
    except (WebSocketException, OSError, ssl.SSLError, ValueError):
        outcome = parse_status(conn.protocol, bytes(status)) if status else None
        if outcome is not None and outcome.exit_code is not None:
            return outcome
        return ExecOutcome(None, "the connection to the API server was cut", cut=True)
    if not status and conn.protocol:
        return ExecOutcome(None, "the exec stream ended without an exit status", cut=True)
    return parse_status(conn.protocol, bytes(status))


def run_to_end(conn: Any) -> tuple[bytes, bytes, ExecOutcome]:
    """Run a short command to completion, collecting its (small) output."""
    out = bytearray()
    err = bytearray()
    outcome = pump(conn, out.extend, err.extend)
    return bytes(out), bytes(err), outcome

"""Binary-safe reading of an exec WebSocket (channel protocol v5, v4 or the legacy one).

We read raw frames ourselves: the official client decodes to text unless told otherwise and keeps a copy of
all output in memory (docs/kubernetes-facts.md, "Exec WebSocket"). Channel 1 bytes go to the caller's sink as
they arrive.
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


def _receiver(sock: Any) -> Callable[[memoryview], int]:
    """`sock.recv_into` without its two Python layers on a TLS socket: the OpenSSL object's own read, as
    SSLSocket.read calls it (a ragged EOF read as the end, as there). TLS hands over one record per read, and
    the API server sends an exec's output as records of ~5 KB on average: 213,000 reads per GB in capture's
    bench on the lab, where those layers were a tenth of the client's CPU."""
    raw = getattr(sock, "_sslobj", None)
    read = getattr(raw, "read", None)
    if read is None or not getattr(sock, "suppress_ragged_eofs", True):
        return sock.recv_into

    def recv_into(buffer: memoryview) -> int:
        try:
            return read(len(buffer), buffer)
        except ssl.SSLEOFError:
            return 0

    return recv_into


class FrameReader:
    """Server-to-client WebSocket frames straight from the socket.

    websocket-client reads a frame in 16 KiB pieces and copies it several times; at hundreds of MB/s that
    is most of the CPU. Here the socket fills one buffer in place and payloads are handed out as views of it
    (valid only during the callback). Server frames are never masked (RFC 6455 §5.1).
    """

    def __init__(self, sock: Any, pong: Callable[[bytes], None]) -> None:
        self.sock = sock
        self.pong = pong
        self._recv_into = _receiver(sock)
        self.buf = bytearray(RECV_SIZE)
        self.fill = 0  # bytes of buf holding received data
        self.received = 0  # bytes received in all (pump_many's gathering reads it)
        self.message = bytearray()  # a fragmented message being reassembled (rare)
        self.message_opcode = 0

    def read(self, on_message: Callable[[int, memoryview], None],
             on_batch_end: Callable[[], None] | None = None) -> bool:
        """Receive what is available (the socket is non-blocking) and deliver every complete message, then
        call on_batch_end (views handed out are still valid there). Returns False when nothing was
        available; raises StreamClosed at the end of the stream."""
        before = self.fill
        with memoryview(self.buf) as space:
            while self.fill < len(self.buf):
                try:
                    n = self._recv_into(space[self.fill:])
                except (ssl.SSLWantReadError, BlockingIOError):
                    break
                if n == 0:
                    if self.fill > before:
                        break
                    raise StreamClosed("connection closed")
                self.fill += n
                self.received += n
        if self.fill == before:
            return False
        view = memoryview(self.buf)
        pos = 0
        try:
            while True:
                parsed = self._frame(view, pos, self.fill)
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
                if on_batch_end is not None:
                    on_batch_end()  # also when the batch ended with a close frame
            finally:
                self._compact(view, pos)
        return True

    def _compact(self, view: memoryview, pos: int) -> None:
        """Move the unparsed tail to the front; grow the buffer when one frame is larger than it."""
        rest = self.fill - pos
        needed = self._frame_length(view, pos, self.fill) if rest else 0
        try:
            view.release()
            if pos:
                self.buf[:rest] = self.buf[pos:self.fill]
        except BufferError:
            # A callback raised while holding a view (its traceback keeps it alive): leave that buffer
            # to the exception and go on with a copy, so the original error is what surfaces.
            self.buf = bytearray(self.buf[pos:self.fill]) + bytearray(RECV_SIZE)
        self.fill = rest
        if needed > len(self.buf):
            self.buf += bytearray(needed - len(self.buf))

    @staticmethod
    def _frame_length(view: memoryview, pos: int, fill: int) -> int:
        """Header plus payload length of the frame at pos, when its header is complete; else 0."""
        available = fill - pos
        if available < 2:
            return 0
        length = view[pos + 1] & 0x7F
        if length == 126:
            return 4 + int.from_bytes(view[pos + 2:pos + 4], "big") if available >= 4 else 0
        if length == 127:
            return 10 + int.from_bytes(view[pos + 2:pos + 10], "big") if available >= 10 else 0
        return 2 + length

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
    def _frame(view: memoryview, pos: int, fill: int) -> tuple[bool, int, int, int] | None:
        available = fill - pos
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


class ExecReader:
    """One exec stream read without blocking: stdout and stderr to the callbacks as frames arrive, the status
    kept; `outcome` is set once the stream has ended. Many of them are read by one loop (:func:`pump_many`)."""

    def __init__(
        self,
        conn: Any,
        on_stdout: Callable[[memoryview], None],
        on_stderr: Callable[[bytes], None],
        on_batch_end: Callable[[], None] | None = None,
    ) -> None:
        ws = conn.ws
        ws.sock.setblocking(False)  # read whatever has arrived in one go; select() only when nothing has
        self.protocol = conn.protocol
        self.frames = FrameReader(ws.sock, ws.pong)
        self.on_stdout = on_stdout
        self.on_stderr = on_stderr
        self.on_batch_end = on_batch_end
        self.status = bytearray()
        self.outcome: ExecOutcome | None = None
        self.heard_at = time.monotonic()  # when the stream last brought anything (or was opened)

    @property
    def sock(self) -> Any:
        return self.frames.sock

    def _on_message(self, opcode: int, data: memoryview) -> None:
        if not data or opcode not in (OP_BINARY, OP_TEXT):
            return
        channel = data[0]
        if channel == STDOUT:
            if len(data) > 1:
                self.on_stdout(data[1:])
        elif channel == STDERR:
            self.on_stderr(bytes(data[1:]))
        elif channel == STATUS:
            self.status.extend(data[1:])

    def read(self) -> bool:
        """Deliver what has arrived; False when nothing had. Sets `outcome` at the end of the stream."""
        from websocket import WebSocketException

        try:
            got = self.frames.read(self._on_message, self.on_batch_end)
            if got:
                self.heard_at = time.monotonic()
            return got
        except StreamClosed:
            if not self.status and self.protocol:
                self.outcome = ExecOutcome(None, "the exec stream ended without an exit status", cut=True)
            else:
                self.outcome = parse_status(self.protocol, bytes(self.status))
        except (WebSocketException, OSError, ssl.SSLError, ValueError):
            outcome = parse_status(self.protocol, bytes(self.status)) if self.status else None
            if outcome is None or outcome.exit_code is None:
                outcome = ExecOutcome(None, "the connection to the API server was cut", cut=True)
            self.outcome = outcome
        return True


# Gathering (`gather`): a stream that trickles (a capture of ordinary traffic: the API server sends a frame of
# a few KiB per tcpdump write) made the loop take every frame on its own: 3,000 rounds a second for 22 MB/s,
# each with its select, its failed read and its batch's work (bench/capture_fanout's profile: more CPU there
# than in the packets). A round that brought less than GATHER_BYTES waits `gather` seconds before the next,
# so the next one takes what came meanwhile in one go; a full stream (a round of GATHER_BYTES or more) never
# waits.
GATHER_BYTES = 64 * 1024


def pump_many(readers: list[ExecReader], tick: Callable[[], None] | None = None, tick_interval: float = 0.2,
              more: Callable[[], bool] | None = None, gather: float = 0.0) -> None:
    """Read every stream until all have ended, in this one thread: each read takes what has arrived, and
    select() waits only when no stream had anything.

    `tick` runs at least every `tick_interval` seconds, between frames, so the caller can act on a deadline
    or a signal (for example by stopping the remote processes) while the streams keep being drained. A reader
    added to `readers` by a callback is read from the next round on; while `more()` says more may come, the
    loop waits for them even when no stream is live. `gather`: see GATHER_BYTES (0: none, every frame at once).
    """
    next_tick = time.monotonic() + tick_interval
    while True:
        live = [r for r in readers if r.outcome is None]
        if not live and (more is None or not more()):
            return
        if tick is not None and time.monotonic() >= next_tick:
            tick()
            next_tick = time.monotonic() + tick_interval
        progressed = False
        before = sum(r.frames.received for r in live) if gather else 0
        for reader in live:
            # Try first: SSL may hold decrypted bytes that select() cannot see (kubernetes-client/python#2414).
            progressed = reader.read() or progressed
        if not progressed:
            select.select([r.sock for r in live], [], [], tick_interval if tick else None)
        elif gather and sum(r.frames.received for r in live) - before < GATHER_BYTES:
            time.sleep(gather)


def pump(
    conn: Any,
    on_stdout: Callable[[memoryview], None],
    on_stderr: Callable[[bytes], None],
    tick: Callable[[], None] | None = None,
    tick_interval: float = 0.2,
    on_batch_end: Callable[[], None] | None = None,
    gather: float = 0.0,
) -> ExecOutcome:
    """Read frames until the server closes the stream; returns how the command ended.

    `tick` runs at least every `tick_interval` seconds, between frames, so the caller can act on a deadline
    or a signal (for example by stopping the remote process) while the stream keeps being drained.
    `on_batch_end` runs after each batch of frames that arrived together, while the views given to
    on_stdout are still valid: a sink can write them in one system call. `gather`: see GATHER_BYTES.
    """
    reader = ExecReader(conn, on_stdout, on_stderr, on_batch_end)
    pump_many([reader], tick, tick_interval, gather=gather)
    assert reader.outcome is not None
    return reader.outcome


class _Overdue(Exception):
    pass


def run_to_end(conn: Any, timeout: float | None = None) -> tuple[bytes, bytes, ExecOutcome]:
    """Run a short command to completion, collecting its (small) output; with `timeout`, give up after that
    many seconds with an outcome that says so (the caller closes the stream)."""
    out = bytearray()
    err = bytearray()
    deadline = None if timeout is None else time.monotonic() + timeout

    def tick() -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise _Overdue

    try:
        outcome = pump(conn, out.extend, err.extend, tick if deadline is not None else None)
    except _Overdue:
        outcome = ExecOutcome(None, f"no end within {timeout:g}s", cut=True)
    return bytes(out), bytes(err), outcome


def await_output(conn: Any, marker: bytes, timeout: float) -> ExecOutcome | None:
    """Read until stdout holds `marker` (None: the command runs and said it) or the stream ends (its outcome),
    for at most `timeout` seconds (then an outcome that says so). The stream stays open on success. Why: an
    exec into a container that does not run (yet) is, on v5, an upgraded stream that at once ends with a
    channel-3 error (recordings 25-exec-into-exited-*-v5v4), so an open exec proves nothing by itself."""
    out = bytearray()
    reader = ExecReader(conn, out.extend, lambda _data: None)
    deadline = time.monotonic() + timeout
    while marker not in out:
        if reader.outcome is not None:
            return reader.outcome
        left = deadline - time.monotonic()
        if left <= 0:
            return ExecOutcome(None, f"no {marker.decode(errors='replace').strip()!r} within {timeout:g}s", cut=True)
        if not reader.read():
            select.select([reader.sock], [], [], min(left, 0.2))
    return None

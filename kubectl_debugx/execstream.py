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
    from websocket import ABNF, WebSocketException

    ws = conn.ws
    sock = ws.sock
    status = bytearray()
    next_tick = time.monotonic() + tick_interval
    try:
        while True:
            if tick is not None and time.monotonic() >= next_tick:
                tick()
                next_tick = time.monotonic() + tick_interval
            # SSL may hold decrypted bytes that select() cannot see (kubernetes-client/python#2414).
            if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                readable, _, _ = select.select([sock], [], [], tick_interval if tick else None)
                if not readable:
                    continue
            opcode, frame = ws.recv_data_frame(True)
            if opcode == ABNF.OPCODE_CLOSE:
                break
            data = frame.data
            if not data or opcode not in (ABNF.OPCODE_BINARY, ABNF.OPCODE_TEXT):
                continue
            if isinstance(data, str):
                data = data.encode("utf-8")
            channel = data[0]
            if channel == STDOUT:
                if len(data) > 1:
                    on_stdout(memoryview(data)[1:])
            elif channel == STDERR:
                on_stderr(bytes(data[1:]))
            elif channel == STATUS:
                status += data[1:]
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

"""kube/execinput.StdinWriter: a stream we make (cp's upload) written from the calling thread."""

from __future__ import annotations

import socket
import threading

import pytest

from kubectl_debugx.kube import execinput
from kubectl_debugx.kube.execstream import ExecReader


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        class WS:
            pass

        self.ws = WS()
        self.ws.sock = sock  # type: ignore[attr-defined]
        self.ws.pong = lambda _data: None  # type: ignore[attr-defined]
        self.protocol = "v5.channel.k8s.io"


def _payloads(data: bytes) -> list[bytes]:
    """Client frames (masked, any length) as their payloads."""
    out = []
    while data:
        length, pos = data[1] & 0x7F, 2
        if length == 126:
            length, pos = int.from_bytes(data[2:4], "big"), 4
        elif length == 127:
            length, pos = int.from_bytes(data[2:10], "big"), 10
        mask = data[pos:pos + 4] * (length // 4 + 1)
        body = data[pos + 4:pos + 4 + length]
        out.append((int.from_bytes(body, "little") ^ int.from_bytes(mask[:length], "little")).to_bytes(length,
                                                                                                       "little"))
        data = data[pos + 4 + length:]
    return out


def test_small_writes_are_gathered_a_large_one_is_its_own_frame():
    ours, theirs = socket.socketpair()
    conn = _Conn(ours)
    writer = execinput.StdinWriter(conn, ExecReader(conn, lambda _d: None, lambda _d: None), 1 << 20)
    big = bytes(range(256)) * 1200  # 300 KiB: at least a quarter of a frame
    got = bytearray()

    def server() -> None:
        while len(got) < (8 + 1537) + (14 + 1 + len(big)) + (6 + 11):  # each frame: its header, mask, channel
            got.extend(theirs.recv(1 << 20))

    thread = threading.Thread(target=server, daemon=True)
    thread.start()
    for _ in range(3):
        writer.write(b"h" * 512)  # a tar header
    writer.write(memoryview(big))
    writer.write(b"z" * 10)
    writer.flush()
    thread.join(10)
    assert _payloads(bytes(got)) == [b"\x00" + b"h" * 1536, b"\x00" + big, b"\x00" + b"z" * 10]


def test_a_writer_the_socket_takes_nothing_from_reads_the_stream_and_ends_with_it():
    """The command failed while we send (tar: no space left): the server reads no more, says so and ends the
    stream; the writer, blocked, reads it (stderr delivered, outcome set) and raises StreamEnded, never
    hanging on a socket that takes nothing."""
    ours, theirs = socket.socketpair()
    conn = _Conn(ours)
    errors: list[bytes] = []
    reader = ExecReader(conn, lambda _d: None, errors.append)
    writer = execinput.StdinWriter(conn, reader, 1 << 20)
    status = b'\x03{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode",' \
             b'"message":"2"}]}}'
    theirs.sendall(bytes((0x82, 10)) + b"\x02tar: full" + bytes((0x82, 126)) + len(status).to_bytes(2, "big")
                   + status + b"\x88\x00")
    with pytest.raises(execinput.StreamEnded):
        for _ in range(64):  # 64 MiB: far more than the socket's buffers hold
            writer.write(bytes(1 << 20))
    assert (errors, reader.outcome.exit_code if reader.outcome else None) == ([b"tar: full"], 2)
    with pytest.raises(execinput.StreamEnded):
        writer.write(b"more")  # nothing is written once the stream has ended
    theirs.close()
    ours.close()

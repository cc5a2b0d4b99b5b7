"""kube/execinput: frames sent on an exec stream, the relay of the user's input (the shell), and StdinWriter, a
stream we make (cp's upload) written from the calling thread."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from kubectl_debugx.kube import execinput
from kubectl_debugx.kube.execstream import ExecReader


class _Conn:
    def __init__(self, sock: socket.socket, protocol: str = "v5.channel.k8s.io") -> None:
        class WS:
            pass

        self.ws = WS()
        self.ws.sock = sock  # type: ignore[attr-defined]
        self.ws.pong = lambda _data: None  # type: ignore[attr-defined]
        self.protocol = protocol


def _frames(data: bytes) -> list[bytes]:
    """Client frames (masked) as their payloads."""
    out = []
    while data:
        length, pos = data[1] & 0x7F, 2
        if length == 126:
            length, pos = int.from_bytes(data[2:4], "big"), 4
        elif length == 127:
            length, pos = int.from_bytes(data[2:10], "big"), 10
        mask = data[pos:pos + 4]
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data[pos + 4:pos + 4 + length]))
        out.append(payload)
        data = data[pos + 4 + length:]
    return out


def _server_frame(payload: bytes, opcode: int = 2) -> bytes:
    return bytes((0x80 | opcode, len(payload))) + payload


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
    assert _frames(bytes(got)) == [b"\x00" + b"h" * 1536, b"\x00" + big, b"\x00" + b"z" * 10]


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


def test_frames_sent_whole_stdin_its_end_and_the_terminal_size():
    ours, theirs = socket.socketpair()
    conn = _Conn(ours)
    execinput.send_stdin(conn, b"ls\r")
    execinput.send_resize(conn, 100, 30)
    assert execinput.close_stdin(conn) is True
    theirs.setblocking(False)
    assert _frames(theirs.recv(65536)) == [b"\x00ls\r", b'\x04{"Width":100,"Height":30}', b"\xff\x00"]
    assert execinput.close_stdin(_Conn(ours, "v4.channel.k8s.io")) is False  # v4 cannot: nothing is sent
    with pytest.raises(BlockingIOError):
        theirs.recv(1)


def test_relay_sends_stdin_closes_it_at_eof_and_reads_to_the_end():
    ours, theirs = socket.socketpair()
    conn = _Conn(ours)
    out: list[bytes] = []
    reader = ExecReader(conn, lambda data: out.append(bytes(data)), lambda _data: None)
    r, w = os.pipe()
    os.write(w, b"hi")
    os.close(w)
    ends: list[bool] = []
    got = b""

    def server() -> None:
        nonlocal got
        while b"\xff\x00" not in b"".join(_frames(got)):
            got += theirs.recv(65536)
        theirs.sendall(_server_frame(b"\x01hi") + _server_frame(b'\x03{"status":"Success"}') + b"\x88\x00")

    thread = threading.Thread(target=server)
    thread.start()
    execinput.relay(reader, conn, r, end_stdin=True, on_stdin_end=ends.append)
    thread.join()
    os.close(r)
    assert _frames(got) == [b"\x00hi", b"\xff\x00"]
    assert (out, ends, reader.outcome.exit_code if reader.outcome else None) == ([b"hi"], [True], 0)

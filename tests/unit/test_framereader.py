import socket

import pytest

from kubectl_debugx.kube.execstream import OP_BINARY, FrameReader, StreamClosed


def frame(payload: bytes, opcode: int = OP_BINARY, fin: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + n.to_bytes(2, "big")
    else:
        head += bytes([127]) + n.to_bytes(8, "big")
    return head + payload


def read_all(data: bytes) -> list[tuple[int, bytes]]:
    a, b = socket.socketpair()
    a.sendall(data)
    a.close()
    b.setblocking(False)
    got: list[tuple[int, bytes]] = []
    reader = FrameReader(b, lambda _p: None)
    with pytest.raises(StreamClosed):
        while True:
            reader.read(lambda op, view: got.append((op, bytes(view))))
    b.close()
    return got


def test_frames_of_every_length_encoding_and_fragments():
    big = bytes(range(256)) * 300  # 76800 bytes: 8-byte length
    mid = b"m" * 1000  # 2-byte length
    data = frame(b"\x01a") + frame(mid) + frame(big) + frame(b"\x01fr", fin=False) + frame(b"ag", opcode=0)
    assert read_all(data) == [(OP_BINARY, b"\x01a"), (OP_BINARY, mid), (OP_BINARY, big), (OP_BINARY, b"\x01frag")]


def test_a_raising_callback_surfaces_its_own_error():
    a, b = socket.socketpair()
    a.sendall(frame(b"\x01x") + frame(b"\x01y"))
    b.setblocking(False)
    reader = FrameReader(b, lambda _p: None)

    def boom(_op: int, view: memoryview) -> None:
        held = view[1:]  # noqa: F841 - a view alive in the traceback, as a real callback may leave one
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        reader.read(boom)
    a.close()
    b.close()

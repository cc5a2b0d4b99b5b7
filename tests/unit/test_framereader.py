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


class _Ws:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def pong(self, _payload: bytes) -> None:
        pass


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.ws = _Ws(sock)
        self.protocol = "v5.channel.k8s.io"


def test_one_loop_reads_every_stream_to_its_own_outcome():
    """pump_many: several exec streams in this one thread, each frame to its own callbacks, each outcome its
    own (an exit status, a stream cut without one); the tick runs while they are read."""
    import json
    import threading
    import time

    from kubectl_debugx.kube.execstream import ExecOutcome, ExecReader, pump_many

    pairs = [socket.socketpair() for _ in range(3)]
    out: list[list[bytes]] = [[], [], []]
    err: list[list[bytes]] = [[], [], []]
    # stdout views are valid only during the callback: keep copies
    def keep(i: int):
        return lambda view: out[i].append(bytes(view))

    readers = [ExecReader(_Conn(b), keep(i), err[i].append) for i, (_, b) in enumerate(pairs)]
    success = json.dumps({"metadata": {}, "status": "Success"}).encode()

    def feed() -> None:
        for i, (a, _) in enumerate(pairs):  # interleaved: one frame of each stream in turn
            a.sendall(frame(b"\x01" + f"first {i}".encode()))
        time.sleep(0.05)
        pairs[1][0].sendall(frame(b"\x02oops") + frame(b"\x03" + success) + frame(b"", opcode=0x8))
        pairs[0][0].sendall(frame(b"\x01second 0") + frame(b"\x03" + success) + frame(b"", opcode=0x8))
        pairs[2][0].close()  # no status: cut
        pairs[1][0].close()
        pairs[0][0].close()

    ticks: list[float] = []
    feeder = threading.Thread(target=feed)
    feeder.start()
    pump_many(readers, lambda: ticks.append(time.monotonic()), 0.01)
    feeder.join()
    assert out == [[b"first 0", b"second 0"], [b"first 1"], [b"first 2"]]
    assert err == [[], [b"oops"], []]
    assert [r.outcome for r in readers] == [
        ExecOutcome(0), ExecOutcome(0), ExecOutcome(None, "the exec stream ended without an exit status", cut=True)]
    assert ticks
    for _, b in pairs:
        b.close()


@pytest.mark.parametrize("gather", [0.0, 0.02])
def test_gather_takes_a_trickling_stream_in_few_batches_and_every_byte_in_order(gather: float):
    """pump_many(gather=): a stream of small frames 1 ms apart (a capture of ordinary traffic) is read in a
    few batches, not one per frame; nothing is lost or reordered. (Without gather it is about one batch per
    frame here, but a starved reader may merge some, so only the data is checked then.)"""
    import threading
    import time

    from kubectl_debugx.kube.execstream import ExecReader, pump_many

    a, b = socket.socketpair()
    out: list[bytes] = []
    batches: list[int] = []
    reader = ExecReader(_Conn(b), lambda view: out.append(bytes(view)), lambda _e: None,
                        lambda: batches.append(len(out)))

    def feed() -> None:
        for i in range(200):
            a.sendall(frame(b"\x01" + i.to_bytes(2, "big") * 500))
            time.sleep(0.001)
        a.close()

    feeder = threading.Thread(target=feed)
    feeder.start()
    pump_many([reader], gather=gather)
    feeder.join()
    b.close()
    assert out == [i.to_bytes(2, "big") * 500 for i in range(200)]
    if gather:
        assert len(batches) <= 50  # 200 frames over >= 0.2 s, a batch at most every 20 ms (and the close)

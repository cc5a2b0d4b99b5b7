import json

from kubectl_debugx.kube.execstream import ExecOutcome, parse_status

V5_EXIT3 = {
    "metadata": {}, "status": "Failure",
    "message": "command terminated with non-zero exit code: command terminated with exit code 3",
    "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
}


def test_statuses_as_recorded():
    assert parse_status("v5.channel.k8s.io", json.dumps(V5_EXIT3).encode()) == ExecOutcome(
        3, V5_EXIT3["message"], "NonZeroExitCode"
    )
    assert parse_status("v4.channel.k8s.io", b'{"metadata":{},"status":"Success"}') == ExecOutcome(0)
    internal = {"metadata": {}, "status": "Failure", "message": "Internal error occurred: exec failed",
                "reason": "InternalError", "code": 500}
    assert parse_status("v5.channel.k8s.io", json.dumps(internal).encode()) == ExecOutcome(
        None, "Internal error occurred: exec failed", "InternalError"
    )


def test_legacy_protocol_text():
    text = b"command terminated with non-zero exit code: error executing command [sh], exit code 3"
    assert parse_status("", text) == ExecOutcome(3, text.decode(), "NonZeroExitCode")
    assert parse_status("", b"") == ExecOutcome(0)


def test_empty_status_on_a_channel_protocol_means_cut():
    assert parse_status("v4.channel.k8s.io", b"") == ExecOutcome(
        None, "the exec stream ended without an exit status", cut=True
    )


def test_abort_wakes_the_thread_reading_the_connection_and_writes_nothing_to_it():
    """ExecConnection.abort from another thread: the reader's blocked recv returns at once, and nothing is
    written on the connection (no close frame: a write through the OpenSSL object another thread reads with
    is what segfaulted CI)."""
    import socket
    import threading

    from kubectl_debugx.kube.api import ExecConnection

    ours, peer = socket.socketpair()

    class Ws:
        sock = ours

        def close(self, timeout: float = 0) -> None:
            raise AssertionError("close() called across threads")

    conn = ExecConnection(Ws(), "v5.channel.k8s.io")
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(ours.recv(10)))
    reader.start()
    reader.join(0.2)
    assert reader.is_alive()  # blocked: the test can fail
    conn.abort()
    reader.join(5)
    assert (reader.is_alive(), got, peer.recv(10)) == (False, [b""], b"")
    ours.close()
    peer.close()


def test_frame_reader_over_tls_reads_records_in_place_and_a_ragged_eof_as_the_end(tmp_path):
    """The TLS socket's OpenSSL object read directly (execstream._receiver): frames split across records
    and reads arrive whole, in order; the peer's socket closed without close_notify is the stream's end."""
    import socket
    import ssl
    import threading

    import pytest

    from kubectl_debugx.kube.execstream import FrameReader, StreamClosed, _receiver
    from tests.cluster.pki import make_pki

    pki = make_pki(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.cert_file, pki.key_file)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    listener = socket.create_server(("127.0.0.1", 0))
    payloads = [bytes([1]) + bytes([i % 251]) * (i * 997 % 70000) for i in range(40)]

    def serve() -> None:
        raw, _ = listener.accept()
        with server_ctx.wrap_socket(raw, server_side=True) as tls:
            for p in payloads:  # a binary frame, 64-bit length, written in pieces of odd sizes
                frame = bytes((0x82, 127)) + len(p).to_bytes(8, "big") + p
                for i in range(0, len(frame), 3001):
                    tls.sendall(frame[i:i + 3001])
            socket.socket.shutdown(tls, socket.SHUT_RDWR)  # no close_notify: a ragged EOF

    thread = threading.Thread(target=serve)
    thread.start()
    sock = client_ctx.wrap_socket(socket.create_connection(listener.getsockname()), server_hostname="127.0.0.1")
    try:
        assert _receiver(sock) is not sock.recv_into  # the OpenSSL object's own read
        sock.setblocking(False)
        reader = FrameReader(sock, lambda _b: None)
        got: list[bytes] = []
        import select

        with pytest.raises(StreamClosed):
            while True:
                if not reader.read(lambda _op, data: got.append(bytes(data))):
                    select.select([sock], [], [], 5)
        assert got == payloads
    finally:
        sock.close()
        thread.join(10)
        listener.close()

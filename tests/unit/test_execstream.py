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

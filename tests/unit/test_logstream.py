"""The log stream of a followed container: the request kube/podlog.py makes and what reading it gives and
raises; wakeup.py's use of it (a container that wrote is woken, a refused stream said once, an ended one opened
again)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import urllib3

from kubectl_debugx.commands.nodelogs.wakeup import Wakeups
from kubectl_debugx.errors import Unreachable
from kubectl_debugx.kube.apierrors import api_error
from kubectl_debugx.kube.podlog import LogStream, log_query, open_log_stream


class Answer:
    """A streamed urllib3 answer: ``chunks`` one per read1, then b"" (or the error given)."""

    def __init__(self, chunks: list[bytes], error: Exception | None = None) -> None:
        self.chunks, self.error, self.closed = list(chunks), error, False

    def read1(self, amt: int, decode_content: bool = True) -> bytes:
        assert (amt, decode_content) == (1 << 16, False)
        if self.chunks:
            return self.chunks.pop(0)
        if self.error is not None:
            raise self.error
        return b""

    def close(self) -> None:
        self.closed = True


class Requests:
    host = "https://127.0.0.1:6443"

    def __init__(self, answer: Any) -> None:
        self.answer, self.asked = answer, []

    def request(self, method: str, path: str, query: Any = None, *, accept: str = "", stream: bool = False,
                read_timeout: float | None = None, extra_headers: Any = None) -> Any:
        self.asked.append((method, path, query, accept, stream, read_timeout, extra_headers))
        return self.answer


def test_the_request_is_kubectl_logs_f():
    api = Requests(Answer([]))
    open_log_stream(api, "ns 1", "web-0", "nginx")
    assert api.asked == [("GET", "/api/v1/namespaces/ns%201/pods/web-0/log",
                          {"container": "nginx", "follow": "true", "tailLines": "0"}, "*/*", True, None,
                          {"Connection": "close"})]
    assert log_query("c", None, True) == {"container": "c", "follow": "true", "timestamps": "true"}


def test_reads_give_what_came_then_the_end_and_a_cut_is_unreachable():
    stream = LogStream(Answer([b"a\n", b"b\nc"], urllib3.exceptions.ProtocolError("Connection broken")),
                       "https://127.0.0.1:6443", "ns/web-0/nginx")
    assert [stream.read(), stream.read()] == [b"a\n", b"b\nc"]
    with pytest.raises(Unreachable) as e:
        stream.read()
    assert str(e.value) == ("cannot reach the API server at https://127.0.0.1:6443: the log stream of ns/web-0/nginx "
                            "broke off (Connection broken)")
    assert LogStream(Answer([]), "h", "w").read() == b""


class StreamsKube:
    """follow_log answers from a script: each entry is a LogStream-like answer or an error to raise."""

    def __init__(self, script: list[Any]) -> None:
        self.script, self.opened = script, threading.Semaphore(0)

    def follow_log(self, namespace: str, pod: str, container: str, tail_lines: int | None = 0) -> Any:
        assert (namespace, pod, container, tail_lines) == ("ns", "web-0", "nginx", 0)
        self.opened.release()
        step = self.script.pop(0) if self.script else api_error(400, b"container is waiting to start")
        if isinstance(step, Exception):
            raise step
        return step


def wait_woken(wakeups: Wakeups, key: int) -> None:
    deadline = time.monotonic() + 5
    while key not in wakeups.wait(0.1):
        assert time.monotonic() < deadline


def test_a_container_that_wrote_is_woken_and_an_ended_stream_is_opened_again():
    first, second = LogStream(Answer([b"line\n"]), "h", "w"), LogStream(Answer([b"more\n"]), "h", "w")
    kube = StreamsKube([first, second])
    wakeups = Wakeups(kube, lambda message: pytest.fail(message))  # type: ignore[arg-type]
    wakeups.add(3, "ns", "web-0", "nginx")
    wait_woken(wakeups, 3)
    assert kube.opened.acquire(timeout=5) and kube.opened.acquire(timeout=5)  # opened again after the end
    wait_woken(wakeups, 3)
    wakeups.close()
    assert first.response.closed and second.response.closed


def test_a_refused_stream_is_said_once_and_left_to_the_polls():
    said: list[str] = []
    kube = StreamsKube([api_error(403, b'{"kind":"Status","code":403,"message":"pods \\"web-0\\" is forbidden: '
                                      b'cannot get resource \\"pods/log\\""}')] * 2)
    wakeups = Wakeups(kube, said.append)  # type: ignore[arg-type]
    wakeups.add(0, "ns", "web-0", "nginx")
    wakeups.add(1, "ns", "web-0", "nginx")
    deadline = time.monotonic() + 5
    while any(t.name == "log-stream web-0/nginx" for t in threading.enumerate()):  # both gave up
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert said == ['the log stream (pods/log) cannot be had (pods "web-0" is forbidden: cannot get resource '
                    '"pods/log"): new lines are read every poll instead']
    assert wakeups.wait(0) == set()
    wakeups.close()


def test_news_takes_what_queued_below_tls_and_the_servers_close_is_the_end(tmp_path):
    """news() over a real TLS connection: the first records (a line each, as a kubelet sends them) are news,
    taken from the socket as ciphertext without being decrypted; once the server closed the connection
    (Connection: close, the answer ended), False."""
    import socket
    import ssl

    from tests.cluster.pki import make_pki

    pki = make_pki(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.cert_file, pki.key_file)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    listener = socket.create_server(("127.0.0.1", 0))
    lines = threading.Event()

    def serve() -> None:
        raw, _ = listener.accept()
        with server_ctx.wrap_socket(raw, server_side=True) as tls:
            for i in range(1000):
                tls.sendall(b"1a\r\n" + f"line {i:04}".encode() + b"\n" * 16 + b"\r\n")
            lines.set()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    sock = client_ctx.wrap_socket(socket.create_connection(listener.getsockname()), server_hostname="127.0.0.1")

    class Response:
        class connection:  # noqa: N801 - urllib3's attribute
            pass

        def close(self) -> None:
            pass

    answer = Response()
    answer.connection.sock = sock  # type: ignore[attr-defined]
    stream = LogStream(answer, "h", "w")
    assert stream.news() is True
    assert lines.wait(5)
    while stream.news():  # every record queued, then the close: at most a recv per 64 KiB, never one per line
        pass
    assert stream.news() is False
    thread.join(5)
    sock.close()


def test_an_answer_that_said_connection_close_is_found_read_and_closed_through_urllib3():
    """A real urllib3 answer from a server that ends the connection with the answer (Connection: close, as the
    API server does when asked): http.client hands the socket to the answer's reader, and news() and close()
    still find it (kube/podlog._socket_of); a close() from another thread wakes a news() blocked on it."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    release, go = threading.Event(), threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
        go.wait(10)  # a line written once the answer began
        conn.sendall(b"6\r\nline1\n\r\n")
        release.wait(10)
        conn.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    host, port = listener.getsockname()
    response = urllib3.PoolManager().request("GET", f"http://{host}:{port}/log", preload_content=False)
    assert response.connection is None or response.connection.sock is None  # handed to the answer's reader
    stream = LogStream(response, "h", "w")
    go.set()
    assert stream.news() is True  # line1's chunk
    blocked = threading.Thread(target=stream.news, daemon=True)
    blocked.start()
    time.sleep(0.2)  # let it block in recv (what is asserted is that close() ends it, not this pause)
    stream.close()
    blocked.join(5)
    assert not blocked.is_alive()
    release.set()
    thread.join(5)

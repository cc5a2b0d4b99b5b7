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
                read_timeout: float | None = None) -> Any:
        self.asked.append((method, path, query, accept, stream, read_timeout))
        return self.answer


def test_the_request_is_kubectl_logs_f():
    api = Requests(Answer([]))
    open_log_stream(api, "ns 1", "web-0", "nginx")
    assert api.asked == [("GET", "/api/v1/namespaces/ns%201/pods/web-0/log",
                          {"container": "nginx", "follow": "true", "tailLines": "0"}, "*/*", True, None)]
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

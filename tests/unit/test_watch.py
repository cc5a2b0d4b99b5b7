"""Watches (kubectl_debugx/kube/watch.py): every way a watch's read fails ends as the error a request raises for
the same cause, whichever watch read it (Kube.watch_pod, waiting on one pod; Kube.watch_pods, following a
selector); 410 Gone is WatchExpired for the one and a fresh start for the other. A plain request whose body is
cut while it arrives maps the same way."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from kubectl_debugx.errors import ExitCode, NotReady, Unreachable
from kubectl_debugx.kube import pods
from kubectl_debugx.kube.apierrors import ApiServerError
from kubectl_debugx.kube.client import Kube
from kubectl_debugx.kube.config import KubeFlags
from kubectl_debugx.kube.watch import WatchExpired

from .test_kube_errors import kubeconfig, no_cluster_env  # noqa: F401 - the fixture, used by name

HOST = "https://10.0.0.1:6443"
PENDING = {"metadata": {"name": "web", "resourceVersion": "8"}, "status": {"phase": "Pending"}}
RUNNING = {"metadata": {"name": "web", "resourceVersion": "9"}, "status": {"phase": "Running"}}
EXPIRED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "too old resource version: 7 (42)", "reason": "Expired", "code": 410}
TIMEOUT = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "etcdserver: request timed out", "code": 500}


def line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


class FakeResponse:
    """A urllib3 HTTPResponse as a watch reads it: the chunks of stream(), then `error` if any."""

    def __init__(self, chunks: list[bytes], error: BaseException | None = None) -> None:
        self.chunks = chunks
        self.error = error
        self.calls: list[str] = []

    def stream(self, amt: int, decode_content: bool = True) -> Iterator[bytes]:
        yield from self.chunks
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.calls.append("close")

    def release_conn(self) -> None:
        self.calls.append("release_conn")


def fake_kube(responses: list[FakeResponse]) -> tuple[Kube, list[tuple[str, str, dict[str, Any], bool, float]]]:
    """A Kube whose requests answer the responses in turn; the requests made, as (method, path, query, stream,
    read_timeout with the time left taken out)."""
    kube = object.__new__(Kube)
    kube.host = HOST
    sent: list[tuple[str, str, dict[str, Any], bool, float]] = []

    def request(method: str, path: str, query: dict[str, Any] | None = None, *, stream: bool = False,
                read_timeout: float | None = None) -> FakeResponse:
        query = dict(query or {})
        slack = int((read_timeout or 0) - query.get("timeoutSeconds", 0))  # watch_pod's: the time left + 5
        if query.get("fieldSelector"):
            query["timeoutSeconds"] = "T"  # the time left, which the test's own pace decides
        sent.append((method, path, query, stream, slack))
        return responses.pop(0)

    kube.request = request  # type: ignore[method-assign]
    return kube, sent


# The two watches, as their callers use them; both read through kube/watch.py.
def watch_pods(kube: Kube) -> Iterator[tuple[str, dict[str, Any]]]:
    return kube.watch_pods("shop", "app=web", "7", 60)


def watch_pod(kube: Kube) -> Iterator[tuple[str, dict[str, Any]]]:
    return kube.watch_pod("shop", "web", "7", time.monotonic() + 30)


PODS_QUERY = {"watch": "true", "labelSelector": "app=web", "resourceVersion": "7", "timeoutSeconds": 60,
              "allowWatchBookmarks": "true"}
POD_QUERY = {"watch": "true", "fieldSelector": "metadata.name=web", "resourceVersion": "7", "timeoutSeconds": "T",
             "allowWatchBookmarks": "false"}
BOTH = pytest.mark.parametrize(("open_watch", "query", "slack"),
                               [(watch_pods, PODS_QUERY, 30), (watch_pod, POD_QUERY, 5)],
                               ids=["watch_pods", "watch_pod"])


def read(events: Iterator[tuple[str, dict[str, Any]]]) -> tuple[list[tuple[str, dict[str, Any]]], Exception | None]:
    """The events a watch gave, and the error it ended with (None when it ended by itself)."""
    seen: list[tuple[str, dict[str, Any]]] = []
    try:
        for event in events:
            seen.append(event)
    except Exception as e:  # noqa: BLE001 - the test looks at it
        return seen, e
    return seen, None


def outcome(error: Exception | None) -> tuple[type, int, str] | None:
    return None if error is None else (type(error), int(getattr(error, "code", -1)), str(error))


CUT = ("cannot reach the API server at https://10.0.0.1:6443: the watch of /api/v1/namespaces/shop/pods broke off "
       "({})")


@BOTH
@pytest.mark.parametrize(
    ("error", "cause"),
    [(ProtocolError("Connection broken: IncompleteRead(0 bytes read, 2 more expected)",
                    http.client.IncompleteRead(b"", 2)), "IncompleteRead(0 bytes read, 2 more expected)"),
     (ProtocolError("Response ended prematurely"), "Response ended prematurely"),
     (ConnectionResetError(104, "Connection reset by peer"), "[Errno 104] Connection reset by peer"),
     (ReadTimeoutError(None, "/api/v1/namespaces/shop/pods", "Read timed out."), "Read timed out.")],
    ids=["ProtocolError-IncompleteRead", "ProtocolError-premature", "OSError", "ReadTimeoutError"],
)
def test_a_connection_cut_while_reading_is_unreachable(open_watch, query, slack, error, cause) -> None:
    # the first event split across two chunks, as a stream may arrive
    first = line("ADDED", PENDING)
    response = FakeResponse([first[:10], first[10:]], error)
    kube, sent = fake_kube([response])
    events, end = read(open_watch(kube))
    assert (events, outcome(end), sent, response.calls) == (
        [("ADDED", PENDING)],
        (Unreachable, ExitCode.UNREACHABLE, CUT.format(cause)),
        [("GET", "/api/v1/namespaces/shop/pods", query, True, slack)],
        ["close", "release_conn"],  # a half-read connection is not reused
    )


@BOTH
def test_an_error_event_is_the_api_error_of_its_status(open_watch, query, slack) -> None:
    response = FakeResponse([line("ADDED", PENDING), line("ERROR", TIMEOUT)])
    kube, sent = fake_kube([response])
    events, end = read(open_watch(kube))
    assert (events, outcome(end), sent, response.calls) == (
        [("ADDED", PENDING)],
        (ApiServerError, ExitCode.NOT_READY, "etcdserver: request timed out"),
        [("GET", "/api/v1/namespaces/shop/pods", query, True, slack)],
        ["close", "release_conn"],
    )
    assert isinstance(end, NotReady) and end.status == 500 and end.body == TIMEOUT  # type: ignore[union-attr]


@BOTH
@pytest.mark.parametrize(
    ("chunks", "excerpt"),
    [([line("ADDED", PENDING), line("MODIFIED", RUNNING)[:40]],  # cut mid-event, then the stream ends cleanly
      repr(line("MODIFIED", RUNNING)[:40])),
     ([line("ADDED", PENDING), b"<html>502 Bad Gateway</html>\n"], repr(b"<html>502 Bad Gateway</html>")),
     ([line("ADDED", PENDING), b'["ADDED"]\n'], repr(b'["ADDED"]')),
     ([line("ADDED", PENDING), b'{"type": "ADDED", "object": "web"}\n'],
      repr(b'{"type": "ADDED", "object": "web"}')),
     ([line("ADDED", PENDING), b"\xff\xfe" * 40 + b"\n"], repr(b"\xff\xfe" * 30 + b"..."))],
    ids=["truncated", "html", "not-an-object", "object-not-an-object", "not-utf8"],
)
def test_a_line_that_is_not_a_json_event_is_a_cut_stream(open_watch, query, slack, chunks, excerpt) -> None:
    response = FakeResponse(chunks)
    kube, sent = fake_kube([response])
    events, end = read(open_watch(kube))
    assert (events, outcome(end), sent, response.calls) == (
        [("ADDED", PENDING)],
        (Unreachable, ExitCode.UNREACHABLE, CUT.format(f"not a JSON event: {excerpt}")),
        [("GET", "/api/v1/namespaces/shop/pods", query, True, slack)],
        ["close", "release_conn"],
    )


def test_410_gone_is_watch_expired_for_watch_pods() -> None:
    response = FakeResponse([line("ADDED", PENDING), line("ERROR", EXPIRED)])
    kube, sent = fake_kube([response])
    events, end = read(watch_pods(kube))
    assert (events, outcome(end), sent, response.calls) == (
        [("ADDED", PENDING)],
        (WatchExpired, -1, "too old resource version: 7 (42)"),
        [("GET", "/api/v1/namespaces/shop/pods", PODS_QUERY, True, 30)],
        ["close", "release_conn"],
    )


def test_410_gone_starts_watch_pod_again_from_the_current_state() -> None:
    expired = FakeResponse([line("ERROR", EXPIRED)])
    fresh = FakeResponse([line("ADDED", RUNNING)])
    kube, sent = fake_kube([expired, fresh])
    events = kube.watch_pod("shop", "web", "7", time.monotonic() + 30)
    assert next(events) == ("ADDED", RUNNING)
    events.close()
    assert (sent, expired.calls, fresh.calls) == (
        [("GET", "/api/v1/namespaces/shop/pods", POD_QUERY, True, 5),
         ("GET", "/api/v1/namespaces/shop/pods", {**POD_QUERY, "resourceVersion": ""}, True, 5)],
        ["close", "release_conn"],
        ["close", "release_conn"],  # closed by us before its end: not reused either
    )


def test_watch_pod_resumes_from_the_last_version_seen_until_the_deadline() -> None:
    first = FakeResponse([line("ADDED", PENDING)])  # the server ends this watch (its timeoutSeconds)
    second = FakeResponse([line("MODIFIED", RUNNING)])
    kube, sent = fake_kube([first, second])
    events = kube.watch_pod("shop", "web", "7", time.monotonic() + 30)
    assert [next(events), next(events)] == [("ADDED", PENDING), ("MODIFIED", RUNNING)]
    events.close()
    assert (sent, first.calls) == (
        [("GET", "/api/v1/namespaces/shop/pods", POD_QUERY, True, 5),
         ("GET", "/api/v1/namespaces/shop/pods", {**POD_QUERY, "resourceVersion": "8"}, True, 5)],
        ["release_conn"],  # read to its end: the connection is reused
    )
    assert list(kube.watch_pod("shop", "web", "9", time.monotonic() - 1)) == []  # deadline passed: no request
    assert len(sent) == 2


def test_watch_pods_asks_at_once_and_reads_to_the_end() -> None:
    response = FakeResponse([line("ADDED", PENDING), line("BOOKMARK", {"metadata": {"resourceVersion": "12"}})])
    kube, sent = fake_kube([response])
    events = kube.watch_pods(None, "", "7", 60)
    assert sent == [("GET", "/api/v1/pods", {**PODS_QUERY, "labelSelector": None}, True, 30)]
    assert (read(events), response.calls) == (
        ([("ADDED", PENDING), ("BOOKMARK", {"metadata": {"resourceVersion": "12"}})], None), ["release_conn"])


# --- through a socket: what urllib3 really raises when the API server goes while a pod is waited for ---------


class CutServer(BaseHTTPRequestHandler):
    """A watch of pod web that sends one event (Pending), then loses its connection mid-stream; a GET of the pod
    whose body stops short of its Content-Length the same way."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if "watch=true" not in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "400")
            self.end_headers()
            self.wfile.write(json.dumps(PENDING).encode()[:20])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        data = line("ADDED", PENDING)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) + b"40\r\n{\"type\":")  # a chunk cut short
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


@pytest.fixture
def cut_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), CutServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_waiting_for_a_pod_whose_watch_is_cut_is_unreachable(no_cluster_env, cut_server) -> None:  # noqa: F811
    kube = Kube(KubeFlags(kubeconfig=str(kubeconfig(no_cluster_env / "config", server=cut_server))))
    with pytest.raises(Unreachable) as e:
        pods.wait_for_pod(kube, "shop", PENDING, 10, lambda pod: pod["status"]["phase"] == "Running",
                          lambda: AssertionError("not deleted"))
    assert (e.value.code, str(e.value).split(" (", 1)[0]) == (
        ExitCode.UNREACHABLE,
        f"cannot reach the API server at {cut_server}: the watch of /api/v1/namespaces/shop/pods broke off")


def test_a_plain_answer_cut_short_is_unreachable(no_cluster_env, cut_server) -> None:  # noqa: F811
    kube = Kube(KubeFlags(kubeconfig=str(kubeconfig(no_cluster_env / "config", server=cut_server))))
    with pytest.raises(Unreachable) as e:
        kube.get_pod("shop", "web")
    assert (e.value.code, str(e.value)) == (
        ExitCode.UNREACHABLE,
        f"cannot reach the API server at {cut_server}: the answer to GET /api/v1/namespaces/shop/pods/web broke off "
        "(IncompleteRead(20 bytes read, 380 more expected))")

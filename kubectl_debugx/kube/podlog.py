"""The streamed log of one container (``GET pods/NAME/log?follow=true``): plain bytes as the kubelet sends them.

``kubectl logs -f`` holds one such request: the kubelet watches the live file (fsnotify) and sends each line
within milliseconds of its write, where reading the files through the node proxy has to poll. The request is
made at once (its errors raise as every request's do: ApiError by status, Unreachable without an answer);
reading it can then fail like a watch's (kube/watch.py): a cut connection is Unreachable. The server ends the
answer when the container ends (or the pod goes): :meth:`LogStream.read` returns b"".

Memory is bounded: each read returns what arrived, at most ``CHUNK`` bytes.

nodelogs --follow wants only the news that bytes came (:meth:`LogStream.news`), never the bytes: it reads
them below TLS, as the ciphertext the socket holds, in one ``recv`` of whatever has queued, never decrypted or
parsed (lab, 50,000 lines: reading them through TLS and http.client's chunk parser, a kubelet chunk per line,
cost 0.5 s of the follower's 0.61 s of CPU, where kubectl logs -f used 0.32 s for everything). Such a
connection can never be read as TLS again: the request asks ``Connection: close``, so the server ends it with the
answer (the container ended) and it is never handed back to the pool.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from contextlib import suppress
from typing import Any, Protocol
from urllib.parse import quote

from kubectl_debugx.kube.apierrors import unreachable

CHUNK = 1 << 16
NEWS = 1 << 16  # bytes taken from the socket at most per news(): what queued since the last


class Requester(Protocol):
    host: str

    def request(self, method: str, path: str, query: Mapping[str, Any] | None = None, *, accept: str = ...,
                stream: bool = False, read_timeout: float | None = None,
                extra_headers: Mapping[str, str] | None = None) -> Any: ...


def log_query(container: str, tail_lines: int | None, timestamps: bool) -> dict[str, str]:
    """The query of a followed log (what kubectl logs -f -c CONTAINER [--tail N] [--timestamps] sends)."""
    query = {"container": container, "follow": "true"}
    if tail_lines is not None:
        query["tailLines"] = str(tail_lines)
    if timestamps:
        query["timestamps"] = "true"
    return query


class LogStream:
    """One open ``pods/log?follow=true`` answer."""

    def __init__(self, response: Any, host: str, what: str) -> None:
        self.response = response
        self.host = host
        self.what = what

    def read(self) -> bytes:
        """The next bytes that arrived (at most CHUNK); b"" when the server ended the answer."""
        from http.client import HTTPException

        import urllib3

        try:
            # read1: what one read of the socket gave (a line as soon as it came), not CHUNK bytes waited for
            return bytes(self.response.read1(CHUNK, decode_content=False))
        except (urllib3.exceptions.HTTPError, HTTPException, OSError, ValueError) as e:
            # http.client's chunk parsing raises IncompleteRead or ValueError on a cut inside a chunk's size line
            raise unreachable(self.host, e, during=f"the log stream of {self.what} broke off") from None

    def news(self) -> bool:
        """Wait until bytes came (True) or the server ended the answer (False); the bytes are not read as TLS
        (see above): whatever has queued is taken from the socket in one go. An answer without a socket of its
        own (a test's) is read."""
        sock = _socket_of(self.response)
        if sock is None:
            return bool(self.read())
        try:
            return bool(socket.socket.recv(sock, NEWS))  # the socket's own recv, not SSLSocket's: no decryption
        except OSError as e:
            raise unreachable(self.host, e, during=f"the log stream of {self.what} broke off") from None

    def close(self) -> None:
        """End the answer; a read blocked in another thread returns (b"" or an error) at once."""
        sock = _socket_of(self.response)
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # close() alone does not wake a recv() blocked elsewhere
        with suppress(Exception):
            self.response.close()


def _socket_of(response: Any) -> socket.socket | None:
    """The answer's socket: its connection's while it holds it; after an answer that said `Connection: close`,
    http.client has handed the socket to the answer's own reader (HTTPConnection.getresponse closes the
    connection object, urllib3's sets its sock to None), where it is the reader's raw SocketIO's."""
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is None:
        sock = getattr(getattr(getattr(getattr(response, "_fp", None), "fp", None), "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def open_log_stream(api: Requester, namespace: str, pod: str, container: str, tail_lines: int | None = 0,
                    timestamps: bool = False, read_timeout: float | None = None) -> LogStream:
    """Start following the log of ``container`` of ``pod``. ``read_timeout`` bounds each wait for more bytes
    (None: a quiet container may send nothing for hours); the answer's start is bounded by --request-timeout
    like every request's. The connection is the answer's alone (``Connection: close``: see news())."""
    path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/log"
    response = api.request("GET", path, log_query(container, tail_lines, timestamps), accept="*/*", stream=True,
                           read_timeout=read_timeout, extra_headers={"Connection": "close"})
    return LogStream(response, api.host, f"{namespace}/{pod}/{container}")

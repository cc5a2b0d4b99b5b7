"""The streamed log of one container (``GET pods/NAME/log?follow=true``): plain bytes as the kubelet sends them.

``kubectl logs -f`` holds one such request: the kubelet watches the live file (fsnotify) and sends each line
within milliseconds of its write, where reading the files through the node proxy has to poll. The request is
made at once (its errors raise as every request's do: ApiError by status, Unreachable without an answer);
reading it can then fail like a watch's (kube/watch.py): a cut connection is Unreachable. The server ends the
answer when the container ends (or the pod goes): :meth:`LogStream.read` returns b"".

Memory is bounded: each read returns what arrived, at most ``CHUNK`` bytes.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from contextlib import suppress
from typing import Any, Protocol
from urllib.parse import quote

from kubectl_debugx.kube.apierrors import unreachable

CHUNK = 1 << 16


class Requester(Protocol):
    host: str

    def request(self, method: str, path: str, query: Mapping[str, Any] | None = None, *, accept: str = ...,
                stream: bool = False, read_timeout: float | None = None) -> Any: ...


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

    def close(self) -> None:
        """End the answer; a read blocked in another thread returns (b"" or an error) at once."""
        sock = getattr(getattr(self.response, "connection", None), "sock", None)
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # close() alone does not wake a recv() blocked elsewhere
        with suppress(Exception):
            self.response.close()


def open_log_stream(api: Requester, namespace: str, pod: str, container: str, tail_lines: int | None = 0,
                    timestamps: bool = False, read_timeout: float | None = None) -> LogStream:
    """Start following the log of ``container`` of ``pod``. ``read_timeout`` bounds each wait for more bytes
    (None: a quiet container may send nothing for hours); the answer's start is bounded by --request-timeout
    like every request's."""
    path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/log"
    response = api.request("GET", path, log_query(container, tail_lines, timestamps), accept="*/*", stream=True,
                           read_timeout=read_timeout)
    return LogStream(response, api.host, f"{namespace}/{pod}/{container}")

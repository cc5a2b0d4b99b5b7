"""Watches of the API server: the one implementation behind every watch we open (Kube.watch_pod and
Kube.watch_pods are thin wrappers over it).

A watch is a GET with watch=true whose body is one JSON event per line, {"type": ..., "object": ...}, until the
server ends it (timeoutSeconds). Reading it can fail after the answer began, where a plain request has already
succeeded: the connection is cut mid-stream (urllib3's ProtocolError, an OSError, a read timeout), the last
line is cut mid-event (not JSON), or the server sends an ERROR event whose object is a Status. Each becomes
the error a request raises for the same cause (kube/apierrors.py): Unreachable for a lost connection, the
ApiError of the Status's code for an ERROR event. 410 Gone (the resourceVersion asked for is compacted away)
is WatchExpired, which the caller answers by listing or watching again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Iterator, Mapping
from typing import Any, Protocol

from kubectl_debugx.kube.apierrors import api_error, unreachable

Events = Generator[tuple[str, dict[str, Any]], None, None]


class WatchExpired(Exception):
    """A watch's resourceVersion is older than the server keeps (410 Gone, reason Expired): list again."""


class Requester(Protocol):
    """What a watch needs of the connection (kube.client.Kube): its plain request, and its host for messages."""

    host: str

    def request(self, method: str, path: str, query: Mapping[str, Any] | None = None, *, stream: bool = False,
                read_timeout: float | None = None) -> Any: ...


def watch(api: Requester, path: str, selector: Mapping[str, str | None], resource_version: str, timeout: int,
          read_timeout: float, bookmarks: bool = False) -> Events:
    """One watch of the collection at `path` (its objects matching `selector`: a fieldSelector or labelSelector)
    from `resource_version`, as (type, object) events until the server ends it, at `timeout` seconds or earlier.

    The request is made now, so its errors raise here; the read's raise from the events (module docstring).
    `read_timeout` bounds the wait for each chunk: longer than `timeout`, as a quiet watch sends nothing."""
    query = {"watch": "true", **selector, "resourceVersion": resource_version, "timeoutSeconds": timeout,
             "allowWatchBookmarks": "true" if bookmarks else "false"}
    response = api.request("GET", path, query, stream=True, read_timeout=read_timeout)
    return _events(response, api.host, path)


def watch_until(api: Requester, path: str, selector: Mapping[str, str | None], resource_version: str,
                deadline: float) -> Events:
    """(type, object) events from `resource_version` until `deadline` (a monotonic time), over as many watches
    as that takes: one the server ends is resumed from the last resourceVersion seen, and one whose version is
    too old (410) starts again from the current state (resourceVersion "": an ADDED event per object)."""
    while (remaining := deadline - time.monotonic()) > 0:
        # The server ends the watch at timeoutSeconds; 5 s more is for that end to arrive.
        events = watch(api, path, selector, resource_version, max(1, int(remaining)), remaining + 5)
        try:
            for kind, obj in events:
                resource_version = (obj.get("metadata") or {}).get("resourceVersion", resource_version)
                yield kind, obj
        except WatchExpired:
            resource_version = ""
        finally:
            events.close()  # our caller may stop early: the connection goes now, not when collected


def _events(response: Any, host: str, path: str) -> Events:
    import http.client

    import urllib3

    finished = False
    try:
        for line in _lines(response):
            event = _event(line, host, path)
            kind = str(event.get("type") or "")
            obj = event.get("object") or {}
            if kind == "ERROR":
                code = obj.get("code")
                if code == 410:
                    raise WatchExpired(str(obj.get("message") or "resource version too old"))
                raise api_error(code if isinstance(code, int) else 500, json.dumps(obj).encode(), path)
            yield kind, obj
        finished = True
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as e:
        raise unreachable(host, e, during=f"the watch of {path} broke off") from None
    finally:
        if not finished:
            response.close()  # a half-read stream must not go back to the pool with its connection
        response.release_conn()


def _lines(response: Any) -> Iterator[bytes]:
    """The body's lines as they arrive; a last one without its newline too (it may be whole)."""
    buffer = b""
    for chunk in response.stream(65536, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def _event(line: bytes, host: str, path: str) -> dict[str, Any]:
    """One line as an event; a line that is not a JSON object is a stream cut mid-event (or garbled): lost,
    like a cut connection."""
    try:
        event = json.loads(line)
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        event = None
    if not isinstance(event, dict) or not isinstance(event.get("object") or {}, dict):
        excerpt = line[:60] + (b"..." if len(line) > 60 else b"")
        raise unreachable(host, f"not a JSON event: {excerpt!r}", during=f"the watch of {path} broke off")
    return event

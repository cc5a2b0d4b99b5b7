"""What the commands use of a cluster connection (KubeApi: kube/client.Kube, or a test's fake of it) and the open
exec stream it hands out; kube/client.py re-exports both, so callers import them from there."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from typing import Any, Protocol


class KubeApi(Protocol):
    """What the commands use of a cluster connection: Kube, or a test's fake of it."""

    namespace: str

    def version(self) -> dict[str, Any]: ...

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]: ...

    def list_pods(self, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]: ...

    def get_object(self, prefix: str, resource: str, namespace: str, name: str) -> dict[str, Any]: ...

    def get_node(self, name: str) -> dict[str, Any]: ...

    def list_objects(self, prefix: str, resource: str, namespace: str | None, label_selector: str | None = None
                     ) -> list[dict[str, Any]]: ...

    def create_object(self, prefix: str, resource: str, namespace: str, body: Mapping[str, Any],
                      dry_run: bool = False) -> dict[str, Any]: ...

    def delete_object(self, prefix: str, resource: str, namespace: str, name: str) -> dict[str, Any]: ...

    def patch_object(self, prefix: str, resource: str, namespace: str, name: str,
                     patch: Mapping[str, Any]) -> dict[str, Any]: ...

    def add_ephemeral_container(
        self, namespace: str, pod: str, patch: Mapping[str, Any], dry_run: bool = False
    ) -> dict[str, Any]: ...

    def create_pod(self, namespace: str, pod: Mapping[str, Any], dry_run: bool = False) -> dict[str, Any]: ...

    def delete_pod(self, namespace: str, name: str, grace_seconds: int = 0) -> dict[str, Any]: ...

    def can_i(self, verb: str, resource: str, namespace: str, subresource: str = "", group: str = ""
              ) -> bool | None: ...

    def can_i_all(self, reviews: Sequence[tuple[str, ...]]) -> list[bool | None]: ...

    def get_namespace(self, name: str) -> dict[str, Any]: ...

    def watch_pod(
        self, namespace: str, name: str, resource_version: str, deadline: float
    ) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def list_pods_at(self, namespace: str | None, label_selector: str | None = None
                     ) -> tuple[list[dict[str, Any]], str]: ...

    def watch_pods(
        self, namespace: str | None, label_selector: str, resource_version: str, timeout: int
    ) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def open_exec(
        self, namespace: str, pod: str, container: str, command: list[str], stdin: bool = False,
        tty: bool = False,
    ) -> ExecConnection: ...

    def exec_connection(
        self, namespace: str, pod: str, container: str, command: list[str], stdin: bool = False
    ) -> AbstractContextManager[ExecConnection]: ...

    def node_proxy_get(
        self, node: str, path: str, read_timeout: float | None = None, byte_range: str | None = None
    ) -> Any: ...

    def node_proxy_read(self, node: str, path: str, byte_range: str, read_timeout: float) -> tuple[int, bytes]: ...

    def wait_pod_gone(self, namespace: str, name: str, uid: str | None, deadline: float) -> bool: ...

    def follow_log(self, namespace: str, pod: str, container: str, tail_lines: int | None = 0) -> Any: ...


@dataclass
class ExecConnection:
    ws: Any  # websocket.WebSocket
    protocol: str

    def close(self) -> None:
        # Closing a broken socket must never mask the real outcome.
        with suppress(Exception):
            self.ws.close(timeout=1)

    def abort(self) -> None:
        """From a thread other than the one reading it: end the TCP connection under the reader, which then sees
        the stream's end and closes it itself. Never close() across threads: that writes a close frame through
        the same OpenSSL object another thread is reading with, the GIL released by both, which is not safe
        (CI: `cp` hit by Ctrl-C while its digest thread read, exit 139, a segfault). The server sees the
        connection end as on a client's death: the tool's tether ends the tool."""
        sock = getattr(self.ws, "sock", None)
        if sock is not None:
            with suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the fd's, never SSLSocket.shutdown's unwrap



"""The base of the tests' fake clusters: a KubeApi whose every call fails the test unless a fake answers it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, NoReturn

from kubectl_debugx.kube.client import ExecConnection


def _unexpected(call: str) -> NoReturn:
    raise AssertionError(f"unexpected API call: {call}")


class UnusedKube:
    """Conforms to kubectl_debugx.kube.client.KubeApi; subclasses override the calls their test expects."""

    namespace: str = "default"

    def version(self) -> dict[str, Any]:
        _unexpected("version")

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        _unexpected("get_pod")

    def list_pods(self, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        _unexpected("list_pods")

    def list_pods_at(self, namespace: str | None, label_selector: str | None = None
                     ) -> tuple[list[dict[str, Any]], str]:
        return self.list_pods(namespace, label_selector), ""  # fakes answer list_pods; no version

    def watch_pods(
        self, namespace: str | None, label_selector: str, resource_version: str, timeout: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        _unexpected("watch_pods")

    def get_object(self, prefix: str, resource: str, namespace: str, name: str) -> dict[str, Any]:
        _unexpected("get_object")

    def get_node(self, name: str) -> dict[str, Any]:
        _unexpected("get_node")

    def list_objects(self, prefix: str, resource: str, namespace: str | None, label_selector: str | None = None
                     ) -> list[dict[str, Any]]:
        _unexpected(f"list_objects {resource}")

    def create_object(self, prefix: str, resource: str, namespace: str, body: Mapping[str, Any],
                      dry_run: bool = False) -> dict[str, Any]:
        _unexpected(f"create_object {resource}")

    def delete_object(self, prefix: str, resource: str, namespace: str, name: str) -> dict[str, Any]:
        _unexpected(f"delete_object {resource}")

    def patch_object(self, prefix: str, resource: str, namespace: str, name: str,
                     patch: Mapping[str, Any]) -> dict[str, Any]:
        _unexpected(f"patch_object {resource}")

    def add_ephemeral_container(
        self, namespace: str, pod: str, patch: Mapping[str, Any], dry_run: bool = False
    ) -> dict[str, Any]:
        _unexpected("add_ephemeral_container")

    def create_pod(self, namespace: str, pod: Mapping[str, Any], dry_run: bool = False) -> dict[str, Any]:
        _unexpected("create_pod")

    def delete_pod(self, namespace: str, name: str, grace_seconds: int = 0) -> dict[str, Any]:
        _unexpected("delete_pod")

    def can_i(self, verb: str, resource: str, namespace: str, subresource: str = "", group: str = "") -> bool | None:
        return True  # a fake cluster allows everything unless a test says otherwise

    def can_i_all(self, reviews: Sequence[tuple[str, ...]]) -> list[bool | None]:
        return [self.can_i(*r) for r in reviews]

    def get_namespace(self, name: str) -> dict[str, Any]:
        _unexpected("get_namespace")

    def watch_pod(
        self, namespace: str, name: str, resource_version: str, deadline: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        _unexpected("watch_pod")

    def open_exec(
        self, namespace: str, pod: str, container: str, command: list[str], stdin: bool = False,
        tty: bool = False,
    ) -> ExecConnection:
        _unexpected("open_exec")

    def exec_connection(
        self, namespace: str, pod: str, container: str, command: list[str], stdin: bool = False
    ) -> AbstractContextManager[ExecConnection]:
        _unexpected("exec_connection")

    def node_proxy_get(
        self, node: str, path: str, read_timeout: float | None = None, byte_range: str | None = None
    ) -> Any:
        _unexpected("node_proxy_get")

    def node_proxy_read(self, node: str, path: str, byte_range: str, read_timeout: float) -> tuple[int, bytes]:
        _unexpected("node_proxy_read")

    def wait_pod_gone(self, namespace: str, name: str, uid: str | None, deadline: float) -> bool:
        _unexpected("wait_pod_gone")

    def follow_log(self, namespace: str, pod: str, container: str, tail_lines: int | None = 0) -> Any:
        _unexpected("follow_log")

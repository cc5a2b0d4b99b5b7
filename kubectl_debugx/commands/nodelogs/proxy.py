"""Reading the node's /var/log/pods through the API server's node proxy (``--via proxy``).

The kubelet's ``/logs/`` handler is Go's http.FileServer over /var/log: directories come back as an HTML
listing (:func:`listing.parse_listing`), files as their raw bytes (``.gz`` as ``application/gzip`` without
Content-Encoding). It needs get on nodes/proxy and creates nothing. Docker's rotated files are not reachable
this way (the kubelet's ``/logs/`` serves /var/log and nothing else).

A source answers the questions of the nodelogs workflow, whichever way it reads (see also :mod:`.pod`):
``list_dir(*parts)`` (entries of ``/var/log/pods/PARTS``, None when it does not exist), ``fetch(dest,
pod_dir, containers)`` (copy ``/var/log/pods/POD_DIR/CONTAINER/*`` to ``dest/POD_DIR/...`` byte for byte,
never writing outside ``dest``) and ``fetch_docker(dest, ids)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import quote

from kubectl_debugx.commands.nodelogs.listing import Entry, parse_listing
from kubectl_debugx.errors import Forbidden
from kubectl_debugx.formats import logtree
from kubectl_debugx.formats.logfiles import Skipped
from kubectl_debugx.formats.logtree import ExtractedFile, ExtractReport
from kubectl_debugx.formats.safetree import SafeTree
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import KubeApi


def proxy_path(*parts: str, directory: bool = False) -> str:
    """The node-proxy path of /var/log/pods/PARTS (each part percent-encoded)."""
    path = "logs/pods/" + "/".join(quote(part, safe="") for part in parts)
    if directory and not path.endswith("/"):
        path += "/"
    return path


class ProxySource:
    """The node's /var/log/pods through ``/api/v1/nodes/NODE/proxy/logs/pods/``."""

    via = "proxy"

    def __init__(self, kube: KubeApi, node: str) -> None:
        self.kube = kube
        self.node = node
        self.notes: list[str] = []

    def where(self) -> str:
        return f"the node proxy of {self.node}"

    def _get(self, path: str) -> Any:
        try:
            return self.kube.node_proxy_get(self.node, path)
        except ApiError as e:
            if e.status == 403:
                raise Forbidden(f"{e.args[0]} (--via proxy needs get on nodes/proxy; --via pod reads the "
                                "files from a node pod instead)") from None
            raise

    def handler_available(self) -> bool:
        """Whether the kubelet serves /logs/pods/ (enableSystemLogHandler, on by default)."""
        try:
            response = self._get(proxy_path(directory=True))
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        # Read the (small) listing: a connection returned to the pool with unread bytes breaks the next
        # request on it (http.client's ResponseNotReady).
        try:
            response.read(decode_content=False)
        finally:
            response.release_conn()
        return True

    def list_dir(self, *parts: str) -> list[Entry] | None:
        try:
            response = self._get(proxy_path(*parts, directory=True))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        try:
            content_type = response.headers.get("content-type", "")
            body = response.read(decode_content=False)
        finally:
            response.release_conn()
        if not content_type.startswith("text/html"):
            return None  # a file, not a directory
        entries, refused = parse_listing(body.decode("utf-8", "replace"))
        self.notes.extend(f"ignored listing entry {href!r} in /var/log/pods/{'/'.join(parts)}"
                          for href in refused)
        return entries

    def fetch(
        self, dest: Path, pod_dir: str, containers: Sequence[str], whole: bool = False, docker: bool = False
    ) -> ExtractReport:
        """Copy each container's directory, file by file. Docker's 0.log symlinks come as their target's
        content: the kubelet's file server follows them."""
        files: list[ExtractedFile] = []
        directories: list[str] = []
        skipped: list[Skipped] = []
        with logtree.log_tree(dest) as tree:
            for container in containers:
                seen: set[str] = set()
                # A second listing picks up what rotation renamed or compressed while we copied.
                for _ in range(2):
                    entries = self.list_dir(pod_dir, container)
                    if entries is None:
                        break
                    if not seen:
                        tree.makedirs((pod_dir, container), f"{pod_dir}/{container}")
                        directories.append(f"{pod_dir}/{container}")
                    fresh = [e for e in entries if e.name not in seen]
                    if not fresh:
                        break
                    for entry in fresh:
                        seen.add(entry.name)
                        rel = f"{pod_dir}/{container}/{entry.name}"
                        if entry.is_dir:
                            skipped.append(Skipped(rel, "a directory inside a container log directory"))
                            continue
                        size = self._fetch_file(tree, (pod_dir, container, entry.name))
                        if size is None:
                            skipped.append(Skipped(rel, "gone before it could be copied (rotated away)"))
                        else:
                            files.append(ExtractedFile(rel, size))
        return ExtractReport(tuple(files), tuple(directories), tuple(skipped))

    def _fetch_file(self, tree: SafeTree, parts: tuple[str, str, str]) -> int | None:
        member = "/".join(parts)
        try:
            response = self._get(proxy_path(*parts))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        try:
            mtime = _last_modified(response.headers.get("last-modified"))
            return tree.write_file(parts, cast(IO[bytes], _RawBody(response)), member, 0o640, mtime=mtime)
        except BaseException:
            response.close()  # unread bytes must not go back to the pool with the connection
            raise
        finally:
            response.release_conn()

    def fetch_docker(self, dest: Path, ids: Sequence[str]) -> ExtractReport:
        if ids:
            self.notes.append("through the node proxy only each Docker container's current log file comes "
                              "(as N.log); its rotated -json.log.N files need --via pod")
        return ExtractReport((), (), ())


class _RawBody:
    """The response body exactly as sent: urllib3 would otherwise undo a Content-Encoding."""

    def __init__(self, response: Any) -> None:
        self.response = response

    def read(self, size: int = -1) -> bytes:
        return bytes(self.response.read(None if size < 0 else size, decode_content=False))


def _last_modified(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None

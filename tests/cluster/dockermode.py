"""The test cluster's Docker mode (``DEBUGX_TEST_RUNTIME=docker``): a node whose runtime is dockerd behind
cri-dockerd, as recorded in recordings/30-docker-* (dockerd 20.10.24, cri-dockerd 0.3.15, json-file
``max-size=1m max-file=3``).

Stdlib-only: the shim (containers.py, a separate process) imports this file by path to write the json-file
lines, the kubelet and the API server use the rest. What differs from the CRI mode, each from a recording:

* container IDs ``docker://<64 hex>``, image IDs ``docker://sha256:...``, ``status.image`` as the pod names it
  (``nginx:1.22``, not normalised: 30-docker-a01, b07); the node's ``containerRuntimeVersion``
  ``docker://20.10.24+dfsg1`` (30-docker-00-get-node-vm);
* ``/var/log/pods/NS_POD_UID/CONTAINER/N.log`` is an absolute symlink to
  ``/var/lib/docker/containers/ID/ID-json.log`` (30-docker-b02, b08; dirs 0710, the file 0640: b04);
* json-file lines ``{"log":"...\\n","stream":"stdout","time":"<UTC RFC3339Nano>"}`` (30-docker-b04, c04);
* Docker rotates by size itself: before a write, a file at or past max-size is renamed to ``.1`` (``.1`` to
  ``.2``, ..., the oldest beyond max-file removed) and a new one opened (30-docker-c15: ``.2`` 1000060 bytes,
  ``.1`` 1000152: a line past 1 MB, decimal); the kubelet never rotates (30-docker-c18);
* ``/.dockerenv`` in every container's root (30-docker-a04).

Max size and file count: ``DEBUGX_TEST_DOCKER_MAX_SIZE`` (bytes, default 1000000) and
``DEBUGX_TEST_DOCKER_MAX_FILE`` (default 3), smaller for tests that want many rotations.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

RUNTIME_ENV = "DEBUGX_TEST_RUNTIME"
VERSION = "20.10.24+dfsg1"  # 30-docker-00-versions
MAX_SIZE = 1_000_000  # "1m" (units.FromHumanSize: decimal), 30-docker-00-docker-info
MAX_FILE = 3
MAX_MESSAGE = 16 * 1024  # dockerd splits longer lines into partial messages (log without "\n")
CONTAINERS = ("var", "lib", "docker", "containers")
FILE_MODE = 0o640


def runtime() -> str:
    """The runtime the test cluster emulates: "containerd" (default) or "docker"."""
    value = os.environ.get(RUNTIME_ENV, "containerd") or "containerd"
    if value not in ("containerd", "docker"):
        raise ValueError(f"{RUNTIME_ENV}: containerd or docker, got {value!r}")
    return value


def limits() -> tuple[int, int]:
    return (int(os.environ.get("DEBUGX_TEST_DOCKER_MAX_SIZE") or MAX_SIZE),
            int(os.environ.get("DEBUGX_TEST_DOCKER_MAX_FILE") or MAX_FILE))


def runtime_version(mode: str) -> str:
    return f"docker://{VERSION}" if mode == "docker" else "containerd://1.7.0"


# ---------------------------------------------------------------------------------------------------------
# Writing (in the shim process)


def timestamp(ns: int | None = None) -> str:
    """Go's time.Time.UTC().Format(RFC3339Nano): trailing zeros of the fraction dropped, always Z."""
    ns = time.time_ns() if ns is None else ns
    sec, frac = divmod(ns, 1_000_000_000)
    out = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return out + ("." + f"{frac:09d}".rstrip("0") if frac else "") + "Z"


def encode(text: bytes, stream: str, ts: str) -> bytes:
    """One json-file line as dockerd writes it (Go's JSON: <, > and & escaped, invalid UTF-8 as U+FFFD)."""
    body = json.dumps({"log": text.decode("utf-8", "replace"), "stream": stream, "time": ts},
                      ensure_ascii=False, separators=(",", ":"))
    body = body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return body.encode() + b"\n"


class JsonFile:
    """Docker's ID-json.log, rotated by size before a write (daemon/logger/loggerutils LogFile)."""

    def __init__(self, path: str, max_size: int = MAX_SIZE, max_file: int = MAX_FILE) -> None:
        self.path, self.max_size, self.max_file = path, max_size, max_file
        self.fd = self._open(os.O_APPEND)
        self.size = os.fstat(self.fd).st_size

    def _open(self, flags: int) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | flags, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        return fd

    def write(self, line: bytes) -> None:
        if self.max_size > 0 and self.size >= self.max_size:
            self.rotate()
        view = memoryview(line)
        while view:
            view = view[os.write(self.fd, view):]
        self.size += len(line)

    def rotate(self) -> None:
        """``.N-1`` -> ``.N`` ... ``.1`` -> ``.2`` (the oldest goes), live -> ``.1``, a new live file."""
        if self.max_file > 1:
            for i in range(self.max_file - 1, 1, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(f"{self.path}.{i - 1}", f"{self.path}.{i}")
            os.rename(self.path, f"{self.path}.1")
            fd = self._open(os.O_TRUNC)
        else:
            fd = self._open(os.O_TRUNC)
        os.dup2(fd, self.fd, inheritable=False)
        os.close(fd)
        self.size = 0

    reopen = rotate  # the kubelet's ReopenContainerLog switch (rotate_logs) asks dockerd for a rotation here

    def close(self) -> None:
        os.close(self.fd)


class JsonWriter:
    """Raw stdout/stderr bytes -> json-file lines, one write (and one rotation check) per line."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._pending: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    def feed(self, stream: str, data: bytes) -> None:
        buf = self._pending[stream]
        buf += data
        ts = timestamp()
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            pos = start
            while nl + 1 - pos > MAX_MESSAGE:
                self._write(encode(bytes(buf[pos:pos + MAX_MESSAGE]), stream, ts))
                pos += MAX_MESSAGE
            self._write(encode(bytes(buf[pos:nl + 1]), stream, ts))
            start = nl + 1
        while len(buf) - start > MAX_MESSAGE:
            self._write(encode(bytes(buf[start:start + MAX_MESSAGE]), stream, ts))
            start += MAX_MESSAGE
        del buf[:start]

    def close_stream(self, stream: str) -> None:
        buf = self._pending[stream]
        if buf:
            self._write(encode(bytes(buf), stream, timestamp()))
            buf.clear()


# ---------------------------------------------------------------------------------------------------------
# Layout (in the kubelet)


def container_dir(node_root: Path, cid: str) -> Path:
    return Path(node_root).joinpath(*CONTAINERS, cid.split("://", 1)[-1])


def create_log(node_root: Path, link: Path, cid: str) -> Path:
    """Docker's ID-json.log (empty) and the kubelet's N.log symlink to it (absolute, as the node sees it)."""
    base = Path(node_root).joinpath(*CONTAINERS)
    for i in range(1, len(CONTAINERS) + 1):
        d = Path(node_root).joinpath(*CONTAINERS[:i])
        if not d.is_dir():
            d.mkdir()
            os.chmod(d, 0o710 if d == base else 0o711)
    d = container_dir(node_root, cid)
    d.mkdir()
    os.chmod(d, 0o710)
    name = d.name + "-json.log"
    fd = os.open(d / name, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    os.symlink("/" + "/".join(CONTAINERS) + f"/{d.name}/{name}", link)
    return d / name


def resolve_link(node_root: Path, link: Path) -> Path:
    """Where N.log's absolute link points, inside the node's root (the link names a path as the node sees it)."""
    try:
        target = os.readlink(link)
    except OSError:
        return link
    return Path(node_root).joinpath(target.lstrip("/")) if target.startswith("/") else link.parent / target


def remove_container(node_root: Path, cid: str) -> None:
    """docker rm: the container's directory and its json logs go (30-docker-c07: run 1's 0.log target gone)."""
    shutil.rmtree(container_dir(node_root, cid), ignore_errors=True)


def to_cri(record: bytes) -> bytes:
    """A json-file line as the CRI record the kubelet's log reader turns it into (for pods/log)."""
    try:
        obj = json.loads(record)
        text = obj["log"].encode()
        partial = not text.endswith(b"\n")
        return b" ".join((obj["time"].encode(), obj["stream"].encode(), b"P" if partial else b"F",
                          text.removesuffix(b"\n")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return record

"""Container log files the way containerd writes them and the kubelet rotates them.

Stdlib-only: the shim helper (containers.py, a separate process) imports this file by path to write the CRI
records, and the kubelet uses the layout and rotation functions. Facts from tests/cluster/recordings/logs/
(summarised in docs/kubernetes-facts.md):

* ``/var/log/pods/NS_POD_UID/CONTAINER/RESTART.log``: dirs 0755 (``/var/log/pods`` 0750), files 0640;
* records ``<RFC3339Nano, local offset> <stdout|stderr> <P|F> <content>\\n``; a line is cut into 16384-byte P
  records plus an F record with the rest (exactly 16384 gives one F); text without a newline waits for the
  newline and is written as a P record when the stream ends;
* rotation: delete the oldest rotated files so one remains, gzip each remaining plain rotated file through
  ``.tmp`` to ``.gz``, then rename ``N.log`` to ``N.log.YYYYMMDD-HHMMSS`` (local time) and have the writer
  reopen ``N.log``;
* ``/var/log/containers/POD_NS_CONTAINER-ID.log`` -> ``/var/log/pods/NS_POD_UID/CONTAINER/N.log`` (absolute,
  as the node sees it).
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

MAX_LINE = 16384  # containerd's default max_container_log_line_size
FILE_MODE = 0o640


# ---------------------------------------------------------------------------------------------------------
# Writing (in the shim process)


def timestamp(ns: int | None = None) -> str:
    """RFC3339Nano as Go prints it in the local zone: trailing zeros of the fraction dropped, 'Z' for UTC."""
    ns = time.time_ns() if ns is None else ns
    sec, frac = divmod(ns, 1_000_000_000)
    tm = time.localtime(sec)
    out = time.strftime("%Y-%m-%dT%H:%M:%S", tm)
    if frac:
        out += "." + f"{frac:09d}".rstrip("0")
    off = tm.tm_gmtoff or 0
    if off == 0:
        return out + "Z"
    sign = "+" if off > 0 else "-"
    off = abs(off)
    return f"{out}{sign}{off // 3600:02d}:{off % 3600 // 60:02d}"


class CriLogFile:
    """The open N.log (O_APPEND, 0640); reopen() is the ReopenContainerLog of the CRI after a rotation."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = self._open()

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # umask must not change the recorded mode
        return fd

    def reopen(self) -> None:
        fd = self._open()
        os.dup2(fd, self.fd, inheritable=False)  # atomic swap: a write goes either to the old or the new file
        os.close(fd)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def close(self) -> None:
        os.close(self.fd)


class CriWriter:
    """Turns raw stdout/stderr bytes into CRI records; bytes of one stream keep their order, never decoded."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._pending: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    @staticmethod
    def _record(ts: bytes, stream: bytes, tag: bytes, content: bytes | bytearray) -> bytes:
        return b"".join((ts, b" ", stream, b" ", tag, b" ", content, b"\n"))

    def feed(self, stream: str, data: bytes) -> None:
        buf = self._pending[stream]
        buf += data
        ts = timestamp().encode()
        sname = stream.encode()
        out: list[bytes] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            pos = start
            while nl - pos > MAX_LINE:
                out.append(self._record(ts, sname, b"P", buf[pos:pos + MAX_LINE]))
                pos += MAX_LINE
            out.append(self._record(ts, sname, b"F", buf[pos:nl]))
            start = nl + 1
        # an unterminated line is held back, but never more than one record's worth
        while len(buf) - start > MAX_LINE:
            out.append(self._record(ts, sname, b"P", buf[start:start + MAX_LINE]))
            start += MAX_LINE
        del buf[:start]
        if out:
            self._write(b"".join(out))

    def close_stream(self, stream: str) -> None:
        """End of a stream: pending text without a newline becomes a P record (as containerd does at exit)."""
        buf = self._pending[stream]
        if buf:
            self._write(self._record(timestamp().encode(), stream.encode(), b"P", bytes(buf)))
            buf.clear()


# ---------------------------------------------------------------------------------------------------------
# Layout (in the kubelet)


class PodLogLayout:
    """Paths under node_root/var/log for one node."""

    def __init__(self, node_root: Path) -> None:
        self.node_root = Path(node_root)
        self.pods = self.node_root / "var" / "log" / "pods"
        self.containers = self.node_root / "var" / "log" / "containers"

    def ensure_base(self, fix_modes: bool = False) -> None:
        for d, mode in ((self.node_root / "var", 0o755), (self.node_root / "var" / "log", 0o755),
                        (self.pods, 0o750), (self.containers, 0o755)):
            if not d.is_dir():
                d.mkdir(parents=True, exist_ok=True)
                os.chmod(d, mode)
            elif fix_modes:
                os.chmod(d, mode)  # whoever made node_root used its umask; a node has these modes

    @staticmethod
    def pod_dir_name(namespace: str, name: str, uid: str) -> str:
        return f"{namespace}_{name}_{uid}"

    def pod_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.pods / self.pod_dir_name(namespace, name, uid)

    def container_dir(self, namespace: str, name: str, uid: str, container: str) -> Path:
        return self.pod_dir(namespace, name, uid) / container

    def create_log(self, namespace: str, name: str, uid: str, container: str, restart: int) -> Path:
        """Make the dirs and an empty N.log (the kubelet creates the file before the container starts)."""
        self.ensure_base()
        pod = self.pod_dir(namespace, name, uid)
        ctr = pod / container
        for d in (pod, ctr):
            if not d.is_dir():
                d.mkdir(exist_ok=True)
                os.chmod(d, 0o755)
        path = ctr / f"{restart}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        os.close(fd)
        return path

    def symlink_path(self, namespace: str, name: str, container: str, container_id: str) -> Path:
        cid = container_id.split("://", 1)[-1]
        return self.containers / f"{name}_{namespace}_{container}-{cid}.log"

    def node_view(self, path: Path) -> str:
        """The absolute path as the node sees it (node_root is the node's '/')."""
        return "/" + str(Path(path).relative_to(self.node_root))

    def link(self, namespace: str, name: str, container: str, container_id: str, log: Path) -> Path:
        self.ensure_base()
        link = self.symlink_path(namespace, name, container, container_id)
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.symlink(self.node_view(log), link)
        return link

    def remove_instance(self, log: Path, link: Path | None) -> None:
        """Remove a dead instance's N.log, its rotated files and its symlink (container removal)."""
        for p in [str(log)] + glob.glob(glob.escape(str(log)) + ".*"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
        if link is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)

    def remove_pod(self, namespace: str, name: str, uid: str) -> None:
        shutil.rmtree(self.pod_dir(namespace, name, uid), ignore_errors=True)


def rotate(log: Path, reopen: Callable[[], None], max_files: int = 3) -> Path:
    """One kubelet rotation of the live file log (N.log); returns the new rotated name.

    Order as straced in 12-rotation-syscalls-strace: remove excess rotated files, gzip the remaining plain
    ones (.tmp then rename to .gz, then unlink the plain file), rename N.log, ask the writer to reopen."""
    log = Path(log)
    rotated = sorted(p for p in glob.glob(glob.escape(str(log)) + ".*") if not p.endswith(".tmp"))
    keep = max(max_files - 2, 0)
    for p in rotated[:max(len(rotated) - keep, 0)]:
        os.unlink(p)
    for p in rotated[max(len(rotated) - keep, 0):]:
        if not p.endswith(".gz"):
            _compress(p)
    # The name carries the local second of the rename; never overwrite a file from the same second.
    while True:
        name = Path(f"{log}.{time.strftime('%Y%m%d-%H%M%S')}")
        if not name.exists() and not Path(str(name) + ".gz").exists():
            break
        time.sleep(0.05)
    os.rename(log, name)
    reopen()
    return name


def _compress(path: str) -> None:
    tmp = path + ".tmp"
    mode = os.stat(path).st_mode & 0o777
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.fchmod(fd, mode)
        with open(path, "rb") as src, os.fdopen(fd, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz:
            # level 6, no name, mtime 0: header 1f8b08000000000000ff like Go's compress/gzip
            shutil.copyfileobj(src, gz, 1 << 20)
        os.rename(tmp, path + ".gz")
        os.unlink(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)

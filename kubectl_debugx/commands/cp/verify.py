"""The end-to-end check of cp: the sha256 of every regular file, computed in the debug container, against the
digest of the bytes written here (formats/tarcopy.py computes it while writing).

The remote digests are computed *while* tar streams (RemoteSums, a thread with its own exec): sha256sum
reads the files from the node's page cache at about the speed tar does, so computed afterwards it would add
half again to the copy of a large file (measured: 200 MB, tar 1.8 s, then sha256sum 1.3 s). Files tar sent
that the concurrent pass did not cover (created meanwhile, or the pass was stopped) are summed afterwards.
Every sha256sum runs as a RemoteProcess (tethered: if we die or stop, it dies too), and one that fails (not in
the image, killed) is that error, not a digest missing. find and sha256sum exit 1 when some file could not be
read: what they did read counts, and tar says which file it could not read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kubectl_debugx.commands.cp.procroot import proc_root, sha256_argv
from kubectl_debugx.errors import RemoteFailed
from kubectl_debugx.formats import tarcopy
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.process import RemoteProcess, output_of

SUM_TOOL = "sha256sum"
BATCH = 200  # names per sha256sum: far below ARG_MAX for any path length the kernel allows


def find_argv(base: str) -> list[str]:
    """Every regular file below base, NUL-separated (names may hold newlines)."""
    return ["find", base, "-type", "f", "-print0"]


def listed(out: bytes, base: str) -> list[str]:
    """find -print0 output -> names relative to base."""
    prefix = base.rstrip("/") + "/"
    names = out.decode("utf-8", "surrogateescape").split("\0")
    return [n[len(prefix):] for n in names if n.startswith(prefix)]


class RemoteSums:
    """sha256 of the item's regular files, computed in the debug container in a thread of its own."""

    def __init__(self, kube: KubeApi, target: Target, ec: str, pid: int, parts: list[str], kind: str,
                 image: str) -> None:
        self.kube, self.target, self.ec, self.pid, self.parts, self.kind = kube, target, ec, pid, parts, kind
        self.image = image
        self.base = proc_root(pid) + ("/" + "/".join(parts) if parts else "")
        self.sums: dict[str, str] = {}
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._running: RemoteProcess | None = None
        self._thread = threading.Thread(target=self._run, name="cp-sums", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _exec(self, argv: list[str], background: bool = True) -> bytes:
        """Run argv to its end; in the background pass, registered so that stop() can end it."""
        process = RemoteProcess(self.kube, self.target, self.ec, argv[0], argv, "KILL")
        if background:
            with self._lock:
                if self._stopped.is_set():
                    return b""
                self._running = process
        try:
            return output_of(process, self.image, ok=(0, 1))
        finally:
            if background:
                with self._lock:
                    self._running = None

    def digests(self, names: list[str]) -> dict[str, str]:
        """sha256 of these files now (in the calling thread)."""
        out = self._exec(sha256_argv(self.pid, self.parts, names), background=False)
        return tarcopy.parse_sha256sum(out.decode("utf-8", "surrogateescape"), self.base)

    def _run(self) -> None:
        try:
            if self.kind == "D":
                names = listed(self._exec(find_argv(self.base)), self.base)
            else:  # a file; a symlink item is copied as a link, with nothing to sum
                names = [""] if self.kind == "F" else []
            for start in range(0, len(names), BATCH):
                if self._stopped.is_set():
                    return
                out = self._exec(sha256_argv(self.pid, self.parts, names[start:start + BATCH]))
                if not self._stopped.is_set():
                    self.sums.update(tarcopy.parse_sha256sum(out.decode("utf-8", "surrogateescape"), self.base))
        except Exception:  # noqa: BLE001 - whatever is missing is summed afterwards, in the main thread
            return

    def stop(self, warn: Callable[[str], None]) -> None:
        """Interrupted: end the exec's connection under the thread reading it (never close it from here:
        ExecConnection.abort), its tether kills sha256sum at once; make sure it ended."""
        self._stopped.set()
        with self._lock:
            running = self._running
        if running is not None:
            running.abort()
            running.make_sure_stopped(warn)
        self._thread.join(10)

    def wait(self) -> dict[str, str]:
        self._thread.join()
        return self.sums


def verify(kube: KubeApi, target: Target, ec: str, pid: int, parts: list[str], report: tarcopy.CopyReport,
           sums: RemoteSums) -> int:
    """Check every file written against its remote digest; those the concurrent pass lacks are summed now."""
    remote = dict(sums.wait())
    missing = sorted(name for name in report.files if name not in remote)
    for start in range(0, len(missing), BATCH):
        remote.update(sums.digests(missing[start:start + BATCH]))
    for name in sorted(report.files):
        if remote.get(name) != report.files[name]:
            shown = "/" + "/".join([*parts, name] if name else parts)
            got = remote.get(name)
            raise RemoteFailed(f"sha256 mismatch for {shown}: {report.files[name]} written here, "
                               + (f"{got} in the container" if got else "none computed in the container")
                               + " (was it changed during the copy?)")
    return len(report.files)


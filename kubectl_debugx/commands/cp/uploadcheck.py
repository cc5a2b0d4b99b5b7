"""The upload's check (cp LOCAL TARGET:/path, commands/cp/upload.py): the sha256 of every file as written in the
temporary folder, against the digest of the bytes sent (formats/tarsend.py computes it while sending).

A file above tarsend.RANGE is checked range by range, and for local files (whose names and sizes are known before
anything is sent) *while tar writes them*: RangeCheck runs uploadplan.RANGE_SCRIPT in a thread with its own exec
beside tar's, each range read back as soon as tar has written it. Measured on the lab (containerd, 300 MB, before
this): the pass after the transfer took 1.44 s of a 6.6 s copy, `kubectl cp` 3.95 s in all; run beside it, what
is left after tar's end is the last range or two. A stream from stdin (names known only as they come) and the
smaller files are summed after tar's end, 200 names per exec.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from kubectl_debugx.commands.cp import uploadplan as plan
from kubectl_debugx.errors import RemoteFailed
from kubectl_debugx.formats import tarcopy, tarsend
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.execstream import ExecOutcome, run_to_end
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.process import RemoteProcess

NO_DD = 127
# After tar's end every range is written: what is left is summing the last ones. This long without an answer
# (a file changed under us, a container starved of CPU) is a digest missing, said as a mismatch.
AFTER_TAR_S = 30.0
AFTER_TAR_BYTES_PER_S = 20 << 20


def big_files(entries: Sequence[tarsend.Entry]) -> list[tuple[str, int]]:
    """(name, size) of the local files tarsend sends range by range, in the order sent."""
    return [(e.name, e.size) for e in entries if e.kind == "F" and e.size > tarsend.RANGE]


class RangeCheck:
    """RANGE_SCRIPT (waiting) over the larger files, in a thread of its own, beside tar."""

    def __init__(self, kube: KubeApi, target: Target, ec: str, temp: str, files: list[tuple[str, int]]) -> None:
        self.files = files
        self.process = RemoteProcess(kube, target, ec, "sh", plan.ranges_argv(temp, files, tarsend.RANGE >> 20,
                                                                              wait=True), "KILL")
        self.result: tuple[bytes, bytes, ExecOutcome] | None = None
        self._stopped = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="cp-check", daemon=True)

    def start(self) -> RangeCheck:
        self._thread.start()
        return self

    def _run(self) -> None:
        with self._lock:  # stop() waits for the exec to be open, then ends it
            if self._stopped:
                return
            try:
                conn = self.process.open()
            except Exception:  # noqa: BLE001 - no answer: the ranges are summed after tar's end
                return
        try:
            self.result = run_to_end(conn)
        except Exception:  # noqa: BLE001 - idem
            return
        finally:
            conn.close()

    def stop(self, warn: Callable[[str], None]) -> None:
        """Tar failed or the copy was stopped: end the exec under the thread reading it (ExecConnection.abort),
        its tether kills the script; make sure it ended."""
        with self._lock:
            self._stopped = True
        self.process.abort()
        self.process.make_sure_stopped(warn)
        self._thread.join(10)

    def wait(self, warn: Callable[[str], None]) -> tuple[bytes, bytes, ExecOutcome] | None:
        """Its answer once tar has ended well; None when there is none (then everything is summed again)."""
        total = sum(size for _name, size in self.files)
        self._thread.join(AFTER_TAR_S + total / AFTER_TAR_BYTES_PER_S)
        if self._thread.is_alive():
            self.stop(warn)
            return None
        return self.result


def verify(report: tarsend.SendReport, temp: str, run: Callable[[list[str]], tuple[bytes, bytes, ExecOutcome]],
           beside: RangeCheck | None, warn: Callable[[str], None]) -> int:
    """Every file sent, checked: the smaller ones summed now, the larger ones by `beside` (its answer) or now.
    `run` runs a short command to its end in the debug container. Returns the number of files checked."""
    names = sorted(report.files)
    remote: dict[str, str] = {}
    for start in range(0, len(names), plan.BATCH):
        out, _err, _outcome = run(plan.sha256_argv(temp, names[start:start + plan.BATCH]))
        remote.update(tarcopy.parse_sha256sum(out.decode("utf-8", "surrogateescape"), temp))
    for name in names:
        if remote.get(name) != report.files[name]:
            mismatch(name, report.files[name], remote.get(name))
    big = [(name, report.sizes[name]) for name in report.ranges]
    answer = beside.wait(warn) if beside is not None and beside.files == big else None
    # no answer, or no stat (126), or it failed (killed, cut): summed again below, where a failure is said
    if answer is not None and answer[2].exit_code == 0:
        _compare(report, big, plan.parse_ranges(answer[0].decode("utf-8", "replace")))
        return len(names) + len(big)
    for start in range(0, len(big), plan.BATCH):
        batch = big[start:start + plan.BATCH]
        out, err, outcome = run(plan.ranges_argv(temp, batch, tarsend.RANGE >> 20))
        if outcome.exit_code == NO_DD:
            lines = err.decode(errors="replace").strip().splitlines()
            raise RemoteFailed(f"cannot check the copy in the container: {lines[-1] if lines else 'dd: not found'}"
                               " (the debug image needs dd; choose one that has it with --image); nothing "
                               "written under a final name")
        _compare(report, batch, plan.parse_ranges(out.decode("utf-8", "replace")))
    return len(names) + len(big)


def _compare(report: tarsend.SendReport, files: Sequence[tuple[str, int]], got: dict[tuple[int, int], str]) -> None:
    for i, (name, _size) in enumerate(files):
        for k, want in enumerate(report.ranges[name]):
            if got.get((i, k)) != want:
                mismatch(f"{name} (its bytes from {k * tarsend.RANGE} on)", want, got.get((i, k)))


def mismatch(name: str, sent: str, got: str | None) -> None:
    raise RemoteFailed(f"sha256 mismatch for {name}: {sent} sent, "
                       + (f"{got} written in the container" if got else "none computed in the container")
                       + "; nothing written under a final name")

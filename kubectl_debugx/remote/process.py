"""One tool we start in a debug container, whoever starts it (capture's tcpdump, trace's strace, cp's tar,
sha256sum and find, the tools of pods that join a --follow, nodelogs' tar in the node pod): its run id, the PID
record and the stdin tether (specs.tethered_command), the exec, a signal by a second exec, and the
make-sure-it-stopped at the end; and for gc, the tools an earlier run left (their records) and their stop.

Why one piece: the tether only works when the exec is opened with stdin and kept open (the client's death
reaches the remote side only as EOF on stdin: recordings round 2, 23-tether-*), and a tool is only ever
signalled by the PID it recorded (a reused PID has another start time: specs.PID_GLOB). Every caller got one of
those details wrong once when each built its own exec.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubectl_debugx.errors import RemoteFailed
from kubectl_debugx.kube.client import ExecConnection, KubeApi
from kubectl_debugx.kube.execstream import ExecOutcome, run_to_end
from kubectl_debugx.remote import ephemeral, specs
from kubectl_debugx.remote.ephemeral import Target


@dataclass
class RemoteProcess:
    kube: KubeApi
    target: Target
    container: str  # the debug container it runs in
    tool: str  # the name it runs as (/proc/PID/comm): what signals check before they are sent
    argv: list[str]
    eof_signal: str = "TERM"  # what the tether sends when the exec's stdin ends (we closed it or died)
    run_id: str = field(default_factory=lambda: specs.random_suffix(10))
    conn: ExecConnection | None = None  # the open exec: from then on the tool may be running

    def command(self) -> list[str]:
        return specs.tethered_command(self.run_id, self.tool, self.argv, self.eof_signal)

    def open(self) -> ExecConnection:
        """Open the exec, stdin kept open and never written (the tether)."""
        self.conn = self.kube.open_exec(self.target.namespace, self.target.pod_name, self.container,
                                        self.command(), stdin=True)
        return self.conn

    def close(self) -> None:
        """Close the exec: the tether ends the tool with eof_signal."""
        if self.conn is not None:
            self.conn.close()

    def signal(self, signal: str) -> None:
        ephemeral.signal_tool(self.kube, self.target, self.container, self.run_id, self.tool, signal)

    def make_sure_stopped(self, warn: Callable[[str], None]) -> None:
        """If it was started (its exec opened), make sure it no longer runs and its PID record is gone."""
        if self.conn is not None:
            ephemeral.make_sure_stopped(self.kube, self.target, self.container, self.run_id, self.tool, warn)

    def run_to_end(self) -> tuple[bytes, bytes, ExecOutcome]:
        """Open, read everything, close: (stdout, stderr, outcome)."""
        conn = self.open()
        try:
            return run_to_end(conn)
        finally:
            conn.close()


def output_of(process: RemoteProcess, image: str, ok: tuple[int, ...] = (0,)) -> bytes:
    """stdout of a process run to its end, which must end with a code in `ok`: a tool that failed otherwise
    (missing from the image, killed, the stream cut) is one clear error, not an empty answer read as 'nothing
    there'."""
    out, err, outcome = process.run_to_end()
    if outcome.exit_code not in ok:
        said = err.decode(errors="replace").strip().splitlines()
        raise RemoteFailed(ephemeral.tool_failure(process.tool, outcome.exit_code, outcome.message,
                                                  said[-1] if said else "", image))
    return out


def _short_exec(kube: KubeApi, namespace: str, pod: str, container: str, command: list[str]) -> str:
    with kube.exec_connection(namespace, pod, container, command) as conn:
        out, err, outcome = run_to_end(conn)
    if outcome.exit_code != 0:
        said = err.decode("utf-8", "replace").strip()
        raise RemoteFailed(f"{pod}/{container}: {said or outcome.message or f'exit code {outcome.exit_code}'}")
    return out.decode("utf-8", "replace")


def running_tools(kube: KubeApi, namespace: str, pod: str, container: str) -> list[tuple[str, int, str]]:
    """(run id, pid, tool) of each tool our PID records name that still runs in the container (gc)."""
    found = []
    for line in _short_exec(kube, namespace, pod, container, specs.list_tools_command()).splitlines():
        run_id, pid, tool = (line.split(" ", 2) + ["", ""])[:3]
        if specs.RUN_ID.fullmatch(run_id) and pid.isdigit():
            found.append((run_id, int(pid), tool))
    return found


def stop_tools(kube: KubeApi, namespace: str, pod: str, container: str, run_ids: list[str]) -> dict[str, str]:
    """Stop the tools of these run ids by their records (gc): run id -> what became of it."""
    said = _short_exec(kube, namespace, pod, container, specs.stop_tools_command(run_ids))
    return dict(line.split(" ", 1) for line in said.splitlines() if " " in line)


def end_idle(kube: KubeApi, namespace: str, pod: str, container: str, wait: float = 10.0) -> bool:
    """End the idle debug container's bounded sleep (gc --stop-idle): whether the container ended. Its main
    process ending ends the container, and at times this very exec with it before it answers (exit 137: seen
    in a CI run of the test cluster), so the pod's status has the last word."""
    try:
        if "ended " in _short_exec(kube, namespace, pod, container, specs.end_sleep_command()):
            return True
    except RemoteFailed:
        pass
    deadline = time.monotonic() + wait
    while True:
        status = kube.get_pod(namespace, pod).get("status") or {}
        state = next((s.get("state") or {} for s in status.get("ephemeralContainerStatuses") or []
                      if s.get("name") == container), {})
        if "terminated" in state:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)

"""One tool we start in a debug container, whoever starts it (capture's tcpdump, trace's strace, cp's tar,
sha256sum and find, the tools of pods that join a --follow, nodelogs' tar in the node pod, the shell): its run id,
the PID record and the stdin tether (specs.tethered_command), the exec, a signal by a second exec, and the
make-sure-it-stopped at the end; and for gc, the tools an earlier run left (their records) and their stop.

A tool whose stdin is the user's (`user_stdin`: the shell, with or without a terminal) is tethered apart
(remote/tether.py): its exec carries the user's bytes, a second exec beside it is the tether, and the stop at
the end takes the recorded process with everything below it.

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
from kubectl_debugx.kube.execstream import ExecOutcome, await_output, run_to_end
from kubectl_debugx.remote import ephemeral, specs, tether
from kubectl_debugx.remote.ephemeral import Target


@dataclass
class RemoteProcess:
    kube: KubeApi
    target: Target
    container: str  # the debug container it runs in
    tool: str  # the name it runs as (in the PID record and in what is said of it)
    argv: list[str]
    eof_signal: str = "TERM"  # what the tether sends when the exec's stdin ends (we closed it or died)
    run_id: str = field(default_factory=lambda: specs.random_suffix(10))
    conn: ExecConnection | None = None  # the open exec: from then on the tool may be running
    user_stdin: bool = False  # the exec's stdin is the user's: tethered apart (remote/tether.py)
    tty: bool = False  # with user_stdin: the tool gets a terminal
    tether_conn: ExecConnection | None = None  # the tether apart's exec
    tether_then: list[str] | None = None  # tethered apart: what the tether runs once it stopped the tool

    def command(self) -> list[str]:
        if self.user_stdin:
            return tether.recorded_command(self.run_id, self.tool, self.argv)
        return specs.tethered_command(self.run_id, self.tool, self.argv, self.eof_signal)

    def open(self) -> ExecConnection:
        """Open the exec, stdin kept open and never written (the tether); or, for a tool whose stdin is the
        user's, the tether's exec first (so that no moment exists where the tool runs untethered), then the
        tool's, its stdin (and terminal) the user's."""
        ns, pod = self.target.namespace, self.target.pod_name
        if self.user_stdin:
            self.tether_conn = self.kube.open_exec(ns, pod, self.container,
                                                   tether.tether_command(self.run_id, self.tether_then), stdin=True)
            try:
                self.conn = self.kube.open_exec(ns, pod, self.container, self.command(), stdin=True, tty=self.tty)
            except BaseException:
                self.tether_conn.close()  # its tether then waits for a record that never comes, and ends
                raise
            return self.conn
        self.conn = self.kube.open_exec(ns, pod, self.container, self.command(), stdin=True)
        return self.conn

    def close(self, tether: bool = True) -> None:
        """Close the exec: the tether ends the tool with eof_signal (tethered apart: what is left of it, and
        runs tether_then; `tether=False` keeps the tether apart open, for a caller whose work in the container
        goes on after the tool, as cp's upload after its tar, until a last close())."""
        if self.conn is not None:
            self.conn.close()
        if self.tether_conn is not None and tether:
            self.tether_conn.close()

    def abort(self) -> None:
        """From a thread other than the one reading the exec: end its connection (ExecConnection.abort); the
        reading thread closes it, the tether ends the tool."""
        if self.conn is not None:
            self.conn.abort()

    def signal(self, signal: str) -> None:
        ephemeral.signal_tool(self.kube, self.target, self.container, self.run_id, self.tool, signal)

    def stop_tree(self) -> str:
        """Tethered apart: stop the recorded process and everything below it now (second exec); `stopped`,
        or `gone` when it had ended."""
        with self.kube.exec_connection(self.target.namespace, self.target.pod_name, self.container,
                                       tether.stop_command(self.run_id)) as conn:
            out, _err, _outcome = run_to_end(conn)
        return out.decode(errors="replace").strip()

    def make_sure_stopped(self, warn: Callable[[str], None]) -> None:
        """If it was started (its exec opened), make sure it no longer runs and its PID record is gone."""
        if self.conn is None:
            return
        if not self.user_stdin:
            ephemeral.make_sure_stopped(self.kube, self.target, self.container, self.run_id, self.tool, warn)
            return
        try:
            self.stop_tree()
        except Exception as e:  # noqa: BLE001 - report, but never hide the outcome of the run itself
            if getattr(e, "status", None) == 404:
                return  # the pod is gone, and every process of it with it
            warn(f"could not confirm that {self.tool} stopped in {self.target.pod_name}/{self.container}: {e}; "
                 "its tether stops it when this connection closes, the container's TTL at the latest")

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


def short_exec(kube: KubeApi, namespace: str, pod: str, container: str, command: list[str]) -> str:
    with kube.exec_connection(namespace, pod, container, command) as conn:
        out, err, outcome = run_to_end(conn)
    if outcome.exit_code != 0:
        said = err.decode("utf-8", "replace").strip()
        raise RemoteFailed(f"{pod}/{container}: {said or outcome.message or f'exit code {outcome.exit_code}'}")
    return out.decode("utf-8", "replace")


def node_seconds(kube: KubeApi, target: Target, container: str) -> int:
    """The node's clock (Unix seconds) as the debug container reads it now: the clock packet timestamps come
    from, which the client's may differ from by seconds."""
    said = short_exec(kube, target.namespace, target.pod_name, container, ["date", "+%s"]).strip()
    if not said.isdigit():
        raise RemoteFailed(f"{target.pod_name}/{container}: date printed {said[:40]!r}")
    return int(said)


def running_tools(kube: KubeApi, namespace: str, pod: str, container: str) -> list[tuple[str, int, str]]:
    """(run id, pid, tool) of each tool our PID records name that still runs in the container (gc)."""
    found = []
    for line in short_exec(kube, namespace, pod, container, specs.list_tools_command()).splitlines():
        run_id, pid, tool = (line.split(" ", 2) + ["", ""])[:3]
        if specs.RUN_ID.fullmatch(run_id) and pid.isdigit():
            found.append((run_id, int(pid), tool))
    return found


def stop_tools(kube: KubeApi, namespace: str, pod: str, container: str, run_ids: list[str]) -> dict[str, str]:
    """Stop the tools of these run ids by their records (gc): run id -> what became of it."""
    said = short_exec(kube, namespace, pod, container, specs.stop_tools_command(run_ids))
    return dict(line.split(" ", 1) for line in said.splitlines() if " " in line)


ENDED_WAIT_S = 3.0  # for `ended PID`: sh builtins and one kill, in a container known to run


def end_idle(kube: KubeApi, namespace: str, pod: str, container: str, wait: float = 10.0) -> bool:
    """End the idle debug container's bounded sleep (gc --stop-idle): whether the container ended. Its main
    process ending ends the container, and at times this very exec with it before it answers (exit 137: seen
    in a CI run of the test cluster); under cri-dockerd the exec's stream then stays open, silent, for good
    (recordings 40-docker-exec-stream-*; lab, Docker mode: gc --stop-idle hung 120 s). So the answer is awaited
    (never the stream's end), at most ENDED_WAIT_S, and the pod's status has the last word."""
    with kube.exec_connection(namespace, pod, container, specs.end_sleep_command()) as conn:
        if await_output(conn, b"ended ", ENDED_WAIT_S) is None:
            return True
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

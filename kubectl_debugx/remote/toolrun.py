"""The one loop every remote tool run goes through, for one pod and many: each pod's tool started by exec in its
debug container (remote/process.RemoteProcess), every stream read by ONE loop (kube.execstream.pump_many: no
thread or process per pod) under one stop model (remote/streamrun.stop_ticker), pods that join (--follow) read
by the same loop, and whatever happens every tool made sure to be stopped. Then each pod's outcome: how it ended,
why it failed, and the exit code across pods.

`run_tool` is this loop for one pod, with the one pod's outcome (capture into pcap, trace into a file, cp's tar).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Protocol

from kubectl_debugx.errors import DebugxError, ExitCode, NotFound, RemoteFailed
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import ExecConnection, KubeApi
from kubectl_debugx.kube.execstream import ExecOutcome, ExecReader, pump_many
from kubectl_debugx.remote import access, ephemeral
from kubectl_debugx.remote.containers import each
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.process import RemoteProcess
from kubectl_debugx.remote.streamrun import (
    TICK_INTERVAL,
    Grace,
    StopState,
    ToolStderr,
    catch_stop_signals,
    stop_ticker,
)
from kubectl_debugx.talk import Talk

DELETED = "the pod was deleted"  # failure()'s word for a pod that went away (a rollout replaced it)


@dataclass
class PodTool:
    """One pod's tool run: what it runs, where its output goes, and how it ended."""

    target: Target
    ec: str
    argv: list[str]
    on_stdout: Callable[[memoryview], None]
    stderr: ToolStderr
    process: RemoteProcess | None = None  # made by run_tools (or a joiner, already open)
    reader: ExecReader | None = None
    open_error: Exception | None = None  # the exec never opened: why (the API server's answer, a connection)
    outcome: ExecOutcome | None = None
    ended_at: float | None = None
    reported: bool = False
    checked_at: float = 0.0  # when its pod was last looked up because its stream was silent (SILENT_CHECK_S)

    @property
    def name(self) -> str:
        return self.target.pod_name


class JoinSource(Protocol):
    """Pods joining a running fan-out (remote/following.Joins, --follow), as run_tools' loop sees them."""

    def adopt(self) -> list[tuple[PodTool, ExecConnection]]: ...

    def open(self) -> bool: ...

    def close(self) -> None: ...


def pod_gone(kube: KubeApi, target: Target) -> bool:
    """The pod was deleted (or is being deleted): what a 137 from every exec means (recordings/28-*)."""
    try:
        pod = kube.get_pod(target.namespace, target.pod_name)
    except ApiError as e:
        return e.status == 404
    except DebugxError:
        return False
    same = (pod.get("metadata") or {}).get("uid") == (target.pod.get("metadata") or {}).get("uid")
    return not same or bool((pod.get("metadata") or {}).get("deletionTimestamp"))


# A pod deleted under a running tool: on containerd every exec stream of the pod ends (exit 137, recordings/28-*);
# under cri-dockerd the streams stay open and silent after the pod is gone (lab, Docker mode, v1.33, 2026-12-07:
# `capture deploy/web --follow` through a rollout never ended, and signalling the gone pods' tcpdump got 404). A
# stream silent this long has its pod checked with one GET; a pod that is gone ends its stream here, as
# containerd's runtime would have, with the same exit code.
SILENT_CHECK_S = 5.0
POD_GONE = ExecOutcome(137, "the pod was deleted")


def run_tools(
    kube: KubeApi, pods: list[PodTool], tool: str, state: StopState, *, duration: float | None,
    limit_reached: Callable[[], bool],
    talk: Talk, on_end: Callable[[PodTool], None], on_batch_end: Callable[[], None] | None = None,
    on_tick: Callable[[], None] | None = None, grace: Grace | None = None,
    eof_signal: str = "TERM", joins: JoinSource | None = None, command: str = "", gather: float = 0.0,
) -> float:
    """Run each pod's tool by exec in its debug container, all streams read by one loop, until every one has
    ended; whatever happens, make sure no tool is left running. `on_end` is called once per pod as soon as its
    stream ends (within a tick), `on_tick` every tick. `state` records why we stopped; `gather`: see
    kube/execstream.GATHER_BYTES. Returns the elapsed time."""
    started = time.monotonic()
    deadline = started + duration if duration else None

    def end_gone(pod: PodTool) -> None:
        """Its pod is gone: its stream ends now, as it would on containerd (SILENT_CHECK_S)."""
        assert pod.reader is not None and pod.process is not None
        pod.reader.outcome = POD_GONE
        pod.process.close()

    def stop_remote(signal: str) -> None:
        for pod in pods:
            if pod.reader is not None and pod.reader.outcome is None and pod.process is not None:
                try:
                    pod.process.signal(signal)
                except NotFound:
                    end_gone(pod)  # the pod is gone, and its tool with it
                except DebugxError as e:
                    talk.warn(f"could not signal {tool} in pod {pod.name}: {e}")

    def check_silent() -> None:
        now = time.monotonic()
        for pod in pods:
            stream = pod.reader
            if stream is None or stream.outcome is not None:
                continue
            if now - max(stream.heard_at, pod.checked_at) < SILENT_CHECK_S:
                continue
            pod.checked_at = now
            if pod_gone(kube, pod.target):
                end_gone(pod)

    def reader(pod: PodTool, conn: ExecConnection) -> ExecReader:
        pod.reader = ExecReader(conn, pod.on_stdout, pod.stderr.feed, on_batch_end)
        return pod.reader

    stop_tick = stop_ticker(stop_remote, deadline, limit_reached, state, talk.say, grace)

    def report() -> None:
        for pod in pods:
            if not pod.reported and (pod.outcome is not None or (pod.reader and pod.reader.outcome)):
                pod.outcome = pod.outcome or (pod.reader.outcome if pod.reader else None)
                pod.ended_at = time.monotonic()
                pod.reported = True
                on_end(pod)

    readers: list[ExecReader] = []

    def tick() -> None:
        stop_tick()
        check_silent()
        if joins is not None:
            if state.reason:
                joins.close()  # no pod joins a capture that is stopping
            for pod, conn in joins.adopt():  # set up by a worker thread: from now on read by this loop
                pods.append(pod)
                connections.callback(conn.close)
                readers.append(reader(pod, conn))
        report()
        if on_tick is not None:
            on_tick()

    try:
        with catch_stop_signals(state), ExitStack() as connections:
            refused: list[tuple[PodTool, ApiError]] = []

            def start(pod: PodTool) -> ExecConnection | None:
                pod.process = RemoteProcess(kube, pod.target, pod.ec, tool, pod.argv, eof_signal)
                try:
                    return pod.process.open()
                except ApiError as e:
                    pod.open_error = e
                    if e.status == 403 and command:
                        refused.append((pod, e))
                    pod.outcome = ExecOutcome(None, str(e), cut=True)
                    return None
                except DebugxError as e:
                    pod.open_error = e
                    pod.outcome = ExecOutcome(None, str(e), cut=True)
                    return None

            for pod, conn in zip(pods, each(start, pods), strict=True):
                if conn is not None:
                    connections.callback(conn.close)
                    reader(pod, conn)
            if refused:
                # RBAC refuses the exec (a reused container and no pods/exec): as for one pod,
                # exit 4 naming every missing permission; the tools that did start are stopped below
                pod, error = refused[0]
                where = f" in pod {pod.name}" if len(pods) > 1 else ""
                raise access.refusal(kube, pod.target.namespace, command, pod.name, access.NEEDS[command],
                                     error.args[0], f"{tool} never started{where}")
            readers += [p.reader for p in pods if p.reader is not None]
            pump_many(readers, tick, TICK_INTERVAL, more=joins.open if joins is not None else None, gather=gather)
            report()
    finally:
        if joins is not None:
            joins.close()
        for pod in pods:
            pod.stderr.finish()
            if pod.reader is not None and pod.process is not None:
                pod.process.make_sure_stopped(talk.warn)
    return time.monotonic() - started


@dataclass(frozen=True)
class ToolRun:
    outcome: ExecOutcome
    state: StopState
    elapsed: float


def run_tool(
    kube: KubeApi, target: Target, ec: str, tool: str, argv: list[str], *,
    on_stdout: Callable[[memoryview], None], stderr: ToolStderr, duration: float | None,
    limit_reached: Callable[[], bool], talk: Talk, close: Callable[[], None],
    on_batch_end: Callable[[], None] | None = None, grace: Grace | None = None,
    eof_signal: str = "TERM", command: str, gather: float = 0.0,
) -> ToolRun:
    """run_tools of one pod: its outcome, and whatever happens the output closed (`close`) after the tool is
    made sure to be stopped; if we die, the tether sends the tool `eof_signal` (specs.tethered_command). An exec
    that never opened started nothing: refused (403), it names every permission `command` (a key of
    access.NEEDS) lacks; any other refusal is the API server's error, as for any request."""
    pod = PodTool(target, ec, argv, on_stdout, stderr)
    state = StopState()
    try:
        elapsed = run_tools(kube, [pod], tool, state, duration=duration, limit_reached=limit_reached, talk=talk,
                            on_end=lambda _pod: None, on_batch_end=on_batch_end, grace=grace,
                            eof_signal=eof_signal, command=command, gather=gather)
    finally:
        close()
    if pod.open_error is not None:
        raise pod.open_error
    assert pod.outcome is not None
    return ToolRun(pod.outcome, state, elapsed)


def cut_error(run: ToolRun, output: str, what: str) -> RemoteFailed | None:
    """The stream was cut: what the output holds is valid, and the error says how much."""
    if run.outcome.cut:
        return RemoteFailed(f"{run.outcome.message}; {output} holds the {what} received before that")
    return None


def tool_error(run: ToolRun, tool: str, said: str, image: str) -> RemoteFailed | None:
    """The tool failed: it ended with a non-zero code (or none) without being asked to stop."""
    if not run.state.reason and run.outcome.exit_code != 0:
        return RemoteFailed(ephemeral.tool_failure(tool, run.outcome.exit_code, run.outcome.message, said, image))
    return None


def failure(kube: KubeApi, pod: PodTool, state: StopState, tool: str, said: str, image: str) -> str:
    """Why a pod's run failed, in a few words; '' when it did not (it ended by itself or when asked)."""
    outcome = pod.outcome or ExecOutcome(None, "never started", cut=True)
    if outcome.exit_code == 0:
        return ""
    if state.reason and outcome.exit_code is not None:
        return ""  # asked to stop: tcpdump and strace end by the signal
    if (outcome.exit_code == 137 or outcome.cut) and pod_gone(kube, pod.target):
        return DELETED
    if outcome.cut:
        return outcome.message
    return ephemeral.tool_failure(tool, outcome.exit_code, outcome.message, said, image)


def exit_code(state: StopState, errors: dict[str, str], what: str, kept: str, warn: Callable[[str], None]) -> int:
    """The outcome across pods (`errors`: pod -> why it failed, '' when it did not): every pod failed -> the
    error (6); a signal -> 130/143; some failed -> 9 (PARTIAL) with a warning saying what `kept` holds; else 0.
    With --follow too: Ctrl-C is 130 as for every other run of ours and for `kubectl logs -f` (a runbook tells
    a user's stop from a finished --duration by the code)."""
    failed = {pod: why for pod, why in errors.items() if why}
    if failed and len(failed) == len(errors) and not state.reason:
        pod, why = next(iter(failed.items()))
        raise RemoteFailed(f"the {what} failed in every pod ({pod}: {why})")
    if state.reason in ("SIGINT", "SIGTERM"):
        return int(state.exit_code)
    if failed:
        warn(f"{len(failed)} of {len(errors)} pods failed; {kept}")
        return int(ExitCode.PARTIAL)
    return 0

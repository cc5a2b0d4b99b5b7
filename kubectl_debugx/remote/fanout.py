"""The one workflow of remote/session.py across several pods (a workload or a selector): the same steps, each
done for every pod before the next one starts, so that the all-or-nothing parts stay all or nothing.

    targets (container checked in every pod) -> profile per namespace + dry-run admission of EVERY pod
    -> add all debug containers, then wait for them together -> one exec per pod, all read by ONE loop
    (kube.execstream.pump_many: no thread or process per pod) under one stop model -> per-pod outcomes

A pod that fails once its tool runs (deleted, stream cut, tool error) ends alone: its `on_end` says why and
the others go on. Stopping (Ctrl-C, SIGTERM, --duration, a limit) asks every tool still running at once, after
the same grace as one pod (remote/streamrun.stop_ticker).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

from kubectl_debugx.errors import DebugxError, ExitCode, NotFound, RemoteFailed
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import ExecConnection, KubeApi
from kubectl_debugx.kube.execstream import ExecOutcome, ExecReader, pump_many
from kubectl_debugx.kube.workloads import Resolution, TargetRef, check_max_pods, resolve
from kubectl_debugx.remote import access, ephemeral, session, specs
from kubectl_debugx.remote.containers import each
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.process import RemoteProcess
from kubectl_debugx.remote.streamrun import (
    TICK_INTERVAL,
    StopState,
    ToolStderr,
    catch_stop_signals,
    stop_ticker,
)
from kubectl_debugx.talk import Talk

DELETED = "the pod was deleted"  # failure()'s word for a pod that went away (a rollout replaced it)


def resolve_pods(kube: KubeApi, ref: TargetRef, max_pods: int, say: Callable[[str], None],
                 follow: bool = False) -> Resolution:
    """The running pods of the target, the skipped ones said, refused when more than --max-pods. Following,
    none is fine: the run waits for the first (a Deployment scaled to 0, pods still Pending)."""
    resolution = resolve(kube, kube.namespace, ref, empty_ok=follow)
    for line in resolution.skip_lines():
        say(line)
    check_max_pods(resolution, max_pods)
    if not resolution.pods:
        say(f"No pod of {ref.display} is running yet: waiting for pods to join (--follow); Ctrl-C to stop")
    return resolution


def prefixed(say: Callable[[str], None], pod: str) -> Callable[[str], None]:
    """A pod's tool talk, its lines prefixed with the pod's name."""
    return lambda line: say(f"{pod}: {line}")


def dry_run_all(talk: Talk, pods: list[Target], chosen: list[session.Candidate]) -> int:
    """What a real run would add (or reuse) on each pod, as YAML documents; nothing is created."""
    for i, (target, candidate) in enumerate(zip(pods, chosen, strict=True)):
        if i:
            talk.out("---\n")
        session.dry_run(talk, candidate, target)
    return 0


def targets(resolution: Resolution, container: str | None, say: Callable[[str], None]) -> list[Target]:
    """Every running pod of the resolution with the container to target, picked as `kubectl exec` does;
    a -c missing from any pod stops everything before anything is created."""
    out = []
    for pod in resolution.pods:
        names = [c["name"] for c in pod["spec"]["containers"]]
        name = pod["metadata"]["name"]
        chosen = container or specs.default_container(pod)
        if chosen not in names:
            raise NotFound(f'container "{chosen}" not found in pod "{name}" (containers: {", ".join(names)})')
        out.append(Target(pod["metadata"]["namespace"], pod, chosen))
    if container is None:
        many = {", ".join(c["name"] for c in t.pod["spec"]["containers"]) for t in out
                if len(t.pod["spec"]["containers"]) > 1}
        for listing in sorted(many):
            say(f'Defaulted container "{out[0].container}" out of: {listing}')
    return out


class Admission:
    """The profile is chosen once per namespace (its Pod Security level is the namespace's), on its first pod,
    with every missing permission named at once; every other pod's container is then checked by a dry run with
    that profile. Shared by the first pods and those that join later (--follow): a namespace already decided
    is not asked again."""

    def __init__(self, kube: KubeApi, command: str, choose: Callable[[Target], session.Candidate], image: str,
                 custom: Any, ttl: int, duration: float | None, hint: str) -> None:
        self.kube, self.command, self.choose, self.hint = kube, command, choose, hint
        self.image, self.custom, self.ttl, self.duration = image, custom, ttl, duration
        self.chosen: dict[str, session.Candidate] = {}
        self.firsts: dict[str, Target] = {}
        self.lock = threading.Lock()

    def decide(self, target: Target) -> session.Candidate:
        """The namespace's choice (made on this pod when it is the namespace's first)."""
        with self.lock:
            if target.namespace not in self.chosen:
                chosen = self.choose(target)
                session.check_access(self.kube, target, self.command, chosen)
                self.chosen[target.namespace], self.firsts[target.namespace] = chosen, target
            return self.chosen[target.namespace]

    def check(self, target: Target) -> session.Candidate:
        first = self.decide(target)
        if target is self.firsts[target.namespace]:
            return first
        candidate = session.admitted(self.kube, target, self.command, session.candidate(
            self.kube, target, first.profile, self.image, self.custom, self.ttl, self.duration), self.hint)
        return session.Candidate(candidate.profile, candidate.container, [], None, candidate.reuse)


def admit_all(admission: Admission, pods: list[Target]) -> list[session.Candidate]:
    """Admission (above) of every pod; any refusal raises before anything is created on any pod."""
    for target in pods:
        admission.decide(target)
    return each(admission.check, pods)


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
    outcome: ExecOutcome | None = None
    ended_at: float | None = None
    reported: bool = False

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


def run_tools(
    kube: KubeApi, pods: list[PodTool], tool: str, state: StopState, *, duration: float | None,
    limit_reached: Callable[[], bool],
    talk: Talk, on_end: Callable[[PodTool], None], on_batch_end: Callable[[], None] | None = None,
    on_tick: Callable[[], None] | None = None, grace: float = 0.0, grace_note: str = "",
    eof_signal: str = "TERM", joins: JoinSource | None = None, command: str = "",
) -> float:
    """Run each pod's tool by exec in its debug container, all streams read by one loop, until every one has
    ended; whatever happens, make sure no tool is left running. `on_end` is called once per pod as soon as its
    stream ends (within a tick), `on_tick` every tick. `state` records why we stopped. Returns the elapsed time."""
    started = time.monotonic()
    deadline = started + duration if duration else None

    def stop_remote(signal: str) -> None:
        for pod in pods:
            if pod.reader is not None and pod.reader.outcome is None and pod.process is not None:
                try:
                    pod.process.signal(signal)
                except DebugxError as e:
                    talk.warn(f"could not signal {tool} in pod {pod.name}: {e}")

    stop_tick = stop_ticker(stop_remote, deadline, limit_reached, state, talk.say, grace, grace_note)

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
        if joins is not None:
            if state.reason:
                joins.close()  # no pod joins a capture that is stopping
            for pod, conn in joins.adopt():  # set up by a worker thread: from now on read by this loop
                pods.append(pod)
                connections.callback(conn.close)
                pod.reader = ExecReader(conn, pod.on_stdout, pod.stderr.feed, on_batch_end)
                readers.append(pod.reader)
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
                    if e.status == 403 and command:
                        refused.append((pod, e))
                    pod.outcome = ExecOutcome(None, str(e), cut=True)
                    return None
                except DebugxError as e:
                    pod.outcome = ExecOutcome(None, str(e), cut=True)
                    return None

            for pod, conn in zip(pods, each(start, pods), strict=True):
                if conn is not None:
                    connections.callback(conn.close)
                    pod.reader = ExecReader(conn, pod.on_stdout, pod.stderr.feed, on_batch_end)
            if refused:
                # RBAC refuses the exec (a reused container and no pods/exec): as for one pod (session.run_tool),
                # exit 4 naming every missing permission; the tools that did start are stopped below
                pod, error = refused[0]
                raise access.refusal(kube, pod.target.namespace, command, pod.name, access.NEEDS[command],
                                     error.args[0], f"{tool} never started in pod {pod.name}")
            readers += [p.reader for p in pods if p.reader is not None]
            pump_many(readers, tick, TICK_INTERVAL, more=joins.open if joins is not None else None)
            report()
    finally:
        if joins is not None:
            joins.close()
        for pod in pods:
            pod.stderr.finish()
            if pod.reader is not None and pod.process is not None:
                pod.process.make_sure_stopped(talk.warn)
    return time.monotonic() - started


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

"""--follow: pods of a workload that start running while a tool runs join it (capture, trace).

After the first pods are set up, a watch of the target's pods (kube/podwatch.py, from the first list's
resourceVersion) reports each pod that starts running; it joins through Joins (the same admission as
the first pods, the debug container added and the exec opened by a worker thread, then read by the one loop).
A joiner is refused, with a line, while --max-pods pods are worked on at once. A pod that goes away ends its
stream (the command says so); during a rollout that is what is expected, not a failure.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubectl_debugx.errors import DebugxError
from kubectl_debugx.kube.client import ExecConnection, KubeApi
from kubectl_debugx.kube.podwatch import PodWatch, pod_key
from kubectl_debugx.kube.workloads import Resolution, TargetRef
from kubectl_debugx.remote import ephemeral, fanout, session, toolrun
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.process import RemoteProcess
from kubectl_debugx.remote.streamrun import StopState
from kubectl_debugx.talk import Talk, plural


def times(joined_at: float | None, left_at: float | None) -> dict[str, str | None]:
    """A pod entry's joinedAt / leftAt (summary.py POD_SPECIFIC), RFC 3339 UTC like the API's timestamps."""
    def stamp(t: float | None) -> str | None:
        return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    return {"joinedAt": stamp(joined_at), "leftAt": stamp(left_at)}


@dataclass
class Joining:
    """A pod that joins a running fan-out, set up by Joins: its debug container runs and its exec is open."""

    target: Target
    ec: str
    candidate: session.Candidate
    argv: list[str]
    process: RemoteProcess  # its exec open


class Joins:
    """Pods that join a running fan-out (--follow). Everything that can block runs off the loop, in a worker
    thread per pod: the admission of the pod with its namespace's profile (fanout.Admission), the debug container
    added and waited for, the tool's argv (`argv_for`, which may ask the pod), the exec opened. The loop then
    adopts it (run_tools' tick calls `adopt`, which turns each into a PodTool with `make_tool`). A pod whose
    setup fails is reported to `on_failed` (in the worker thread) and never joins.

    `watching` says whether more pods may still come (the watch runs); with nothing live and nothing
    to come the loop ends."""

    def __init__(self, kube: KubeApi, admission: fanout.Admission, tool: str, eof_signal: str, duration: float | None,
                 argv_for: Callable[[Target, str], list[str]], make_tool: Callable[[Joining], toolrun.PodTool],
                 on_failed: Callable[[Target, str], None], say: Callable[[str], None],
                 watching: Callable[[], bool], leave: Callable[[str], None] = lambda _what: None) -> None:
        self.kube, self.admission, self.tool, self.eof_signal = kube, admission, tool, eof_signal
        self.duration, self.argv_for, self.make_tool, self.on_failed = duration, argv_for, make_tool, on_failed
        self.say, self.watching, self.leave = say, watching, leave
        self.ready: queue.Queue[Joining] = queue.Queue()
        self.pending: set[str] = set()  # pod names being set up
        self.lock = threading.Lock()
        self.closed = False

    def join(self, target: Target) -> None:
        with self.lock:
            if self.closed:
                return
            self.pending.add(target.pod_name)
        threading.Thread(target=self._setup, args=(target,), name=f"debugx-join-{target.pod_name}",
                         daemon=True).start()

    def _setup(self, target: Target) -> None:
        try:
            new_namespace = target.namespace not in self.admission.chosen
            candidate = self.admission.check(target)
            if new_namespace:
                self.say(f"Using profile {candidate.profile} in namespace {target.namespace}")
            ec, patched = ephemeral.add_or_reuse(self.kube, target, candidate.container,
                                                 session.min_life(self.duration), self.say)
            # said as the run ends, as for the first pods (containers.start_all): it stays from now on
            left = session.seconds_left(target.pod, ec, time.time()) if patched is None else None
            self.leave(session.stays_line(ec, target.pod_name, left if left is not None else
                                          session.ttl_of(candidate.container), time.time()))
            if patched is not None:
                ephemeral.wait_running(self.kube, target.namespace, patched, ec, str(candidate.container["image"]))
            argv = self.argv_for(target, ec)
            process = RemoteProcess(self.kube, target, ec, self.tool, argv, self.eof_signal)
            with self.lock:
                if self.closed:
                    return  # stopping: nothing was started in the pod
            process.open()
            with self.lock:
                if not self.closed:
                    self.ready.put(Joining(target, ec, candidate, argv, process))
                    return
            process.close()  # stopped meanwhile: the tether's EOF ends the tool
            process.make_sure_stopped(lambda _line: None)
        except DebugxError as e:
            self.on_failed(target, toolrun.DELETED if toolrun.pod_gone(self.kube, target) else str(e))
        finally:
            with self.lock:
                self.pending.discard(target.pod_name)

    def adopt(self) -> list[tuple[toolrun.PodTool, ExecConnection]]:
        out: list[tuple[toolrun.PodTool, ExecConnection]] = []
        while True:
            try:
                joining = self.ready.get_nowait()
            except queue.Empty:
                return out
            assert joining.process.conn is not None
            out.append((self.make_tool(joining), joining.process.conn))

    def open(self) -> bool:
        """More pods may come: the watch runs or a pod is being set up (and we are not stopping)."""
        with self.lock:
            return not self.closed and (bool(self.pending) or not self.ready.empty() or self.watching())

    def close(self) -> None:
        """No more joins; a pod set up but not adopted yet is stopped (its tether ends the tool)."""
        with self.lock:
            self.closed = True
        while True:
            try:
                joining = self.ready.get_nowait()
            except queue.Empty:
                return
            joining.process.close()
            joining.process.make_sure_stopped(lambda _line: None)


class Follow:
    """The watch and the joins of one --follow run."""

    def __init__(self, kube: KubeApi, ref: TargetRef, resolution: Resolution, admission: fanout.Admission,
                 container: str | None, max_pods: int, talk: Talk) -> None:
        self.kube, self.ref, self.resolution, self.admission = kube, ref, resolution, admission
        self.container, self.max_pods, self.talk = container, max_pods, talk
        self.joins: Joins | None = None
        self.watch: PodWatch | None = None
        self.live: Callable[[], int] = lambda: 0
        self.failed: dict[str, str] = {}  # pod -> why it could not join
        self.waiting: dict[str, dict[str, Any]] = {}  # running pods kept out by --max-pods, in arrival order
        self.lock = threading.Lock()

    def start(self, tool: str, eof_signal: str, duration: float | None, argv_for: Callable[[Any, str], list[str]],
              make_tool: Callable[[Joining], toolrun.PodTool], live: Callable[[], int]) -> Joins:
        """Start watching; `live` counts the pods whose tool still runs (for --max-pods)."""
        self.live = live
        self.joins = Joins(self.kube, self.admission, tool, eof_signal, duration, argv_for, make_tool,
                                  self._failed, self.talk.say, lambda: self.watch is not None and self.watch.alive,
                                  self.talk.leave)
        namespace = None if self.ref.all_namespaces else self.kube.namespace
        self.watch = PodWatch(self.kube, namespace, self.resolution.selector, self.resolution.version,
                              [*self.resolution.pods, *self.resolution.skipped_pods], self._join, self._leave,
                              self.talk.say, self.talk.warn, self.ref.display)
        self.watch.start()
        return self.joins

    def left(self, pod: toolrun.PodTool, state: StopState) -> bool:
        """A pod's tool ended because the pod goes away (deleted, being deleted): it left, which is no failure
        when following. Its tool may end before the pod is gone (strace ends with its tracee, exit 0), or be
        killed with it (tcpdump: 137, recordings/28-*); either way the pod, not the tool, tells."""
        if pod.outcome is toolrun.POD_GONE:
            return True  # found gone while it ran (a stop may have come after): it left before the stop
        return not state.reason and toolrun.pod_gone(self.kube, pod.target)

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        if self.joins is not None:
            self.joins.close()

    def ended(self) -> None:
        """A pod's tool ended (the loop's on_end): a pod kept out by --max-pods may join now."""
        with self.lock:
            waiting = list(self.waiting.values())
            self.waiting.clear()
        for pod in waiting:
            self._join(pod)

    def _leave(self, pod: dict[str, Any]) -> None:
        with self.lock:
            self.waiting.pop(pod_key(pod), None)

    def _join(self, pod: dict[str, Any]) -> None:
        assert self.joins is not None
        meta = pod["metadata"]
        label = f"{meta.get('namespace')}/{meta['name']}"
        with self.lock:
            busy = self.live() + len(self.joins.pending)
            if busy >= self.max_pods:
                if pod_key(pod) not in self.waiting:
                    self.talk.say(f"Pod {label} is running but does not join: --max-pods {self.max_pods} reached "
                                  f"({plural(busy, 'pod')} at once); it joins when one leaves")
                self.waiting[pod_key(pod)] = pod
                return
        try:
            [target] = fanout.targets(Resolution(self.ref, self.resolution.selector, pods=[pod]), self.container,
                                      lambda _line: None)
        except DebugxError as e:
            self._failed_target(label, str(e))
            return
        self.talk.say(f"Pod {label} is running: joining")
        self.joins.join(target)

    def _failed(self, target: Any, why: str) -> None:
        self._failed_target(f"{target.namespace}/{target.pod_name}", why)

    def _failed_target(self, label: str, why: str) -> None:
        if why == toolrun.DELETED:
            self.talk.say(f"Pod {label} went away before it could join")
            return
        self.failed[label] = why
        self.talk.warn(f"pod {label} could not join: {why}")

"""--follow: pods of a workload that start running while a tool runs join it (capture, trace).

After the first pods are set up, a watch of the target's pods (kube/podwatch.py, from the first list's
resourceVersion) reports each pod that starts running; it joins through fanout.Joins (the same admission as
the first pods, the debug container added and the exec opened by a worker thread, then read by the one loop).
A joiner is refused, with a line, while --max-pods pods are worked on at once. A pod that goes away ends its
stream (the command says so); during a rollout that is what is expected, not a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubectl_debugx.errors import DebugxError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.podwatch import PodWatch
from kubectl_debugx.kube.workloads import Resolution, TargetRef
from kubectl_debugx.remote import fanout
from kubectl_debugx.talk import Talk


def times(joined_at: float | None, left_at: float | None) -> dict[str, str | None]:
    """A pod entry's joinedAt / leftAt (summary.py POD_SPECIFIC), RFC 3339 UTC like the API's timestamps."""
    def stamp(t: float | None) -> str | None:
        return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    return {"joinedAt": stamp(joined_at), "leftAt": stamp(left_at)}


class Follow:
    """The watch and the joins of one --follow run."""

    def __init__(self, kube: KubeApi, ref: TargetRef, resolution: Resolution, admission: fanout.Admission,
                 container: str | None, max_pods: int, talk: Talk) -> None:
        self.kube, self.ref, self.resolution, self.admission = kube, ref, resolution, admission
        self.container, self.max_pods, self.talk = container, max_pods, talk
        self.joins: fanout.Joins | None = None
        self.watch: PodWatch | None = None
        self.live: Callable[[], int] = lambda: 0
        self.failed: dict[str, str] = {}  # pod -> why it could not join

    def start(self, tool: str, eof_signal: str, duration: float | None, argv_for: Callable[[Any, str], list[str]],
              make_tool: Callable[[fanout.Joining], fanout.PodTool], live: Callable[[], int]) -> fanout.Joins:
        """Start watching; `live` counts the pods whose tool still runs (for --max-pods)."""
        self.live = live
        self.joins = fanout.Joins(self.kube, self.admission, tool, eof_signal, duration, argv_for, make_tool,
                                  self._failed, self.talk.say, lambda: self.watch is not None and self.watch.alive)
        namespace = None if self.ref.all_namespaces else self.kube.namespace
        self.watch = PodWatch(self.kube, namespace, self.resolution.selector, self.resolution.version,
                              [*self.resolution.pods, *self.resolution.skipped_pods], self._join, lambda _pod: None,
                              self.talk.say, self.talk.warn, self.ref.display)
        self.watch.start()
        return self.joins

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        if self.joins is not None:
            self.joins.close()

    def _join(self, pod: dict[str, Any]) -> None:
        assert self.joins is not None
        meta = pod["metadata"]
        label = f"{meta.get('namespace')}/{meta['name']}"
        busy = self.live() + len(self.joins.pending)
        if busy >= self.max_pods:
            self.talk.say(f"Pod {label} is running but does not join: {busy} pods are captured already "
                          f"(--max-pods {self.max_pods})")
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
        if why == fanout.DELETED:
            self.talk.say(f"Pod {label} went away before it could join")
            return
        self.failed[label] = why
        self.talk.warn(f"pod {label} could not join: {why}")

"""Following the pods of a selector while a command runs (capture --follow, trace --follow): one watch from
the list's resourceVersion, in a thread of its own, that reports each pod as it starts running and as it goes.

The watch ends now and then (the server's timeout, a restart, a proxy): it resumes from the last
resourceVersion seen, so no event is lost. A resourceVersion the server no longer keeps gives 410 Gone: we
list again and diff the new list against what we knew (a pod missing from it is gone; one new or changed is
reported as the watch would have). While the API server cannot be reached we retry with a backoff (one line
when it starts failing, one when it is back); the commands' streams of the pods already joined go on meanwhile.

A rollout as a real API server shows it (recordings/21-watch-pods-app-web-rollout-restart): a new pod ADDED
Pending, MODIFIED until Running and Ready; an old pod MODIFIED with a deletionTimestamp while still Running,
then Succeeded, then DELETED. A pod *joins* when it is Running without a deletionTimestamp (workloads.pod_state)
and *leaves* when it gets a deletionTimestamp, stops running or is deleted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubectl_debugx.errors import DebugxError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.watch import WatchExpired
from kubectl_debugx.kube.workloads import pod_state

WATCH_TIMEOUT = 290  # seconds a watch asks for; kubectl's informers use 5-10 min, the server ends it then
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds between attempts while the API server fails; then 8 s each
GIVE_UP_AFTER = 300.0  # seconds of failing in a row after which we stop following (the joined pods go on)


def pod_key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


class PodWatch:
    """Calls on_join(pod) once for every pod that runs and was not in `known` (uid -> pod, the pods the
    command started with), and on_leave(pod) once for a pod (known or joined) that stops running or goes.
    Both run in the watch thread: they must only hand work over. say/warn give its lines."""

    def __init__(self, kube: KubeApi, namespace: str | None, selector: str, resource_version: str,
                 known: list[dict[str, Any]], on_join: Callable[[dict[str, Any]], None],
                 on_leave: Callable[[dict[str, Any]], None], say: Callable[[str], None],
                 warn: Callable[[str], None], what: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.selector = selector
        self.version = resource_version
        self.on_join = on_join
        self.on_leave = on_leave
        self.say = say
        self.warn = warn
        self.what = what
        self.running: dict[str, dict[str, Any]] = {pod_key(p): p for p in known if not pod_state(p)}
        self.seen: dict[str, dict[str, Any]] = {pod_key(p): p for p in known}
        self.relists = 0  # lists after 410 Gone
        self.resumes = 0  # watches the server ended, resumed from the last resourceVersion
        self.connects = 0  # watch requests the server accepted
        self.stopped = threading.Event()
        self.gave_up = False
        self.thread = threading.Thread(target=self._run, name="debugx-podwatch", daemon=True)

    def start(self) -> PodWatch:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def _run(self) -> None:
        failing_since: float | None = None
        attempt = 0
        while not self.stopped.is_set():
            try:
                if not self.version:
                    self._relist()
                events = self.kube.watch_pods(self.namespace, self.selector, self.version, WATCH_TIMEOUT)
                self.connects += 1
                if failing_since is not None:
                    self.say(f"Watching the pods of {self.what} again")
                    failing_since, attempt = None, 0
                for kind, pod in events:
                    self._event(kind, pod)
                    if self.stopped.is_set():
                        return
                self.resumes += 1  # the server ended the watch: resume where it ended
            except WatchExpired:
                self.version = ""  # too old: list again (and diff) on the next round
            except DebugxError as e:
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                    self.warn(f"cannot watch the pods of {self.what} ({e}); retrying, the pods joined so far "
                              "go on")
                elif now - failing_since > GIVE_UP_AFTER:
                    self.gave_up = True
                    self.warn(f"stopped following {self.what}: the API server failed for "
                              f"{GIVE_UP_AFTER:.0f}s; the pods joined so far go on")
                    return
                self.stopped.wait(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                attempt += 1

    def _relist(self) -> None:
        """After 410 Gone: the pods as they are now; what the missed events would have said, said now."""
        pods, version = self.kube.list_pods_at(self.namespace, self.selector)
        self.relists += 1
        now = {pod_key(p): p for p in pods}
        for key in list(self.seen):
            if key not in now:
                self._state("DELETED", self.seen[key])
        for pod in pods:
            self._state("MODIFIED", pod)
        self.version = version  # the list's, not its pods' (older: they would be 410 again)

    def _event(self, kind: str, pod: dict[str, Any]) -> None:
        """A watch event: its resourceVersion is where a resumed watch starts (a BOOKMARK carries only that)."""
        version = (pod.get("metadata") or {}).get("resourceVersion")
        if version:
            self.version = str(version)
        if kind != "BOOKMARK":
            self._state(kind, pod)

    def _state(self, kind: str, pod: dict[str, Any]) -> None:
        if not pod.get("metadata", {}).get("name"):
            return
        key = pod_key(pod)
        runs = kind != "DELETED" and not pod_state(pod)
        if kind == "DELETED":
            self.seen.pop(key, None)
        else:
            self.seen[key] = pod
        if runs and key not in self.running:
            self.running[key] = pod
            self.on_join(pod)
        elif not runs and key in self.running:
            self.on_leave(self.running.pop(key))

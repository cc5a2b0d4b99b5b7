"""nodelogs --follow: every new line of every followed container, live on stdout, like stern.

Each line is prefixed ``POD/CONTAINER`` (``#RESTART`` once the container restarted), padded to the longest
prefix so far as stern aligns them, and carries the text as ``kubectl logs`` prints it (with ``--timestamps``:
the decoded files' format, ``TIMESTAMP [stderr] text``). First the last ``--tail`` lines of each container's
live file (default 10, as ``tail -f``; -1 all, 0 none), then new lines as the node writes them, through
rotations and restarts (formats/logfollow.py decides what to read).

It reads through the node proxy: one ``Range: bytes=OFFSET-`` read of the file being followed (the kubelet's
/logs/ is Go's http.FileServer, which honours ranges) and one listing of its container directory, at once when
the container's ``pods/log?follow=true`` stream (the one ``kubectl logs -f`` holds) says it wrote
(wakeup.py), and every ``POLL_INTERVAL`` anyway. Creating nothing, it has nothing to clean up. On Docker
nodes the file being followed is rotated by Docker outside /var/log (formats/dockerfollow.py): with ``--via
pod`` a node pod reads the rest of it (followpod.py, deleted when following ends), otherwise one line says what
could not be read.

A lost connection (API server restarted, kubelet unreachable through it) is said once on stderr; polls go on
every second up to ``RETRY_MAX`` and each file resumes at the offset after its last whole line, so nothing is
repeated and nothing is skipped (unless rotation removed a file meanwhile, which is said).

Stops: Ctrl-C (exit 130) and SIGTERM (143) as capture does, ``--duration`` (0), stdout closed (0), every
followed directory gone (0).
"""

from __future__ import annotations

import dataclasses
import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubectl_debugx.errors import ExitCode, Forbidden, NotFound, NotReady, Unreachable, UsageError
from kubectl_debugx.formats.dockerfollow import DockerFollower
from kubectl_debugx.formats.logfollow import ContainerFollower
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.podwatch import PodWatch
from kubectl_debugx.kube.workloads import TargetRef
from kubectl_debugx.remote import fanout
from kubectl_debugx.remote.sinks import ByteSink, PipeClosed
from kubectl_debugx.remote.streamrun import StopRequested, stop_signals_raise
from kubectl_debugx.talk import Talk, plural

from .followpod import NodePods
from .printer import Printer
from .proxy import ProxySource, proxy_path
from .target import LogTarget, NodeLogsOptions, resolve, select_containers, target_from
from .wakeup import Wakeups

POLL_INTERVAL = 0.5  # seconds from one poll's start to the next: a line waits this long at most, plus one request
# seconds between two polls of one container that its stream woke: each poll is two requests through the node
# proxy (~2-3 ms of client CPU each), and a container writing lines as fast as it can woke a poll as soon as the
# last one ended (lab, bench/nodelogs_follow: 50,000 lines; woken polls made most of the follower's CPU)
WAKE_GAP = 0.1
READ_TIMEOUT = 10.0  # one listing or read through the proxy; a stalled one counts as a lost connection
RETRY_MAX = 5.0  # seconds between two tries while the connection is lost (1, 2, 4, 5, 5, ...)
DEFAULT_TAIL = 10
DOCKER_HINT = "nodelogs --follow --via pod reads them through a node pod"


@dataclass(frozen=True)
class FollowOptions:
    tail: int = DEFAULT_TAIL
    timestamps: bool = False
    duration: float | None = None
    since: datetime | None = None


def check(via: str, output_dir: str | None, raw: bool, merge: bool, tail: int, json_summary: bool = False) -> None:
    """What --follow cannot be combined with, said before the cluster is asked anything."""
    if json_summary:
        raise UsageError("--summary json cannot be used with --follow: stdout carries the lines")
    for given, flag, why in ((output_dir not in (None, "-"), "-o/--output", "it prints the lines on stdout "
                              "(redirect it to keep them); -o copies the files once"),
                             (raw, "--raw", "it prints decoded lines"),
                             (merge, "--merge", "it already interleaves every pod's lines as they come")):
        if given:
            raise UsageError(f"--follow cannot be used with {flag}: {why}")
    if tail < -1:
        raise UsageError(f"--tail: must be -1 (all), 0 or more, got {tail}")


class ProxyReader:
    """One container directory through the node proxy (formats.logfollow.Reader)."""

    def __init__(self, source: ProxySource, pod_dir: str, container: str) -> None:
        self.source = source
        self.parts = (pod_dir, container)

    def listing(self) -> list[str] | None:
        entries = self.source.list_dir(*self.parts)
        return None if entries is None else [e.name for e in entries if not e.is_dir]

    def read(self, name: str, offset: int, length: int | None = None) -> bytes | None:
        byte_range = f"{offset}-" if length is None else f"{offset}-{offset + length - 1}"
        try:
            status, body = self.source.kube.node_proxy_read(
                self.source.node, proxy_path(*self.parts, name), byte_range, READ_TIMEOUT)
        except ApiError as e:
            if e.status == 404:
                return None  # renamed or removed meanwhile
            if e.status == 416:
                return b""  # Go's ServeContent: no byte at that offset yet
            if e.status == 403:
                raise Forbidden(f"{e.args[0]} (--follow needs get on nodes/proxy)") from None
            raise
        if status == 200:  # a server that ignored Range sent it all
            body = body[offset:] if length is None else body[offset:offset + length]
        return body


@dataclass
class Followed:
    pod: str
    container: str
    follower: ContainerFollower
    said_end: bool = False


@dataclass
class Follow:
    """Every followed container, polled by one loop. ``between_polls`` runs in that loop after each poll: where
    the watch of a workload's pods hands over the pods that appeared (:meth:`join`)."""

    kube: KubeApi
    talk: Talk
    opts: FollowOptions
    printer: Printer
    selection: NodeLogsOptions | None = None  # -c / --all-containers / default container, for pods that join
    followed: list[Followed] = field(default_factory=list)
    reconnects: int = 0
    between_polls: Callable[[Follow], None] | None = None
    node_pods: NodePods | None = None  # --via pod: what reads Docker's rotated files
    wakeups: Wakeups | None = None  # each container's log stream: read its files as soon as it wrote

    def join(self, pod: Mapping[str, Any]) -> list[str]:
        """Follow a pod that appeared after the start (a pod object, Running): all its lines so far, then new
        ones, its containers chosen as at the start. Returns the containers followed."""
        meta = pod["metadata"]
        target = target_from(meta["namespace"], meta["name"], pod, None, None)
        selection, _ = select_containers(target, dataclasses.replace(self.selection or NodeLogsOptions(pod=""),
                                                                     pod=meta["name"]))
        return self.add_pod(target, selection, tail=-1)

    def add_pod(self, target: LogTarget, selection: tuple[str, ...] | None, tail: int | None = None) -> list[str]:
        """Start following one pod's containers (their last --tail lines, or ``tail``, printed at the next
        flush). Returns the containers followed."""
        from . import containers_on_node, find_pod_dir

        source = ProxySource(self.kube, target.node)
        pod_dir, _ = find_pod_dir(source, target)
        started = []
        for container in containers_on_node(source, target, pod_dir, selection, self.talk):
            note = self._noter(target.pod, container)
            reader, emit = ProxyReader(source, pod_dir, container), self.printer.emitter(target.pod, container)
            follower: ContainerFollower
            if target.runtime == "docker":
                files = None if self.node_pods is None else self.node_pods.files(target.node, target.pod, pod_dir,
                                                                                  container)
                follower = DockerFollower(reader, emit, note, files, DOCKER_HINT)
            else:
                follower = ContainerFollower(reader, emit, note)
            if follower.start(self.opts.tail if tail is None else tail):
                follower.emit_block = self.printer.block_emitter(target.pod, container)  # after start: its --tail
                if self.wakeups is not None:
                    self.wakeups.add(len(self.followed), target.namespace, target.pod, container)
                self.followed.append(Followed(target.pod, container, follower))
                started.append(container)
            else:
                self.talk.warn(f"{target.pod}/{container}: no live log file (N.log) in /var/log/pods/{pod_dir}/"
                               f"{container}/ yet: not followed")
        return started

    def _noter(self, pod: str, container: str) -> Callable[[str], None]:
        return lambda message: self.talk.warn(f"{pod}/{container}: {message}")

    def run(self, deadline: float | None) -> str:
        """Poll until a stop; returns what stopped it (a STOPPED_BY value, or "" when every directory went).

        Every container is polled every POLL_INTERVAL; one whose log stream brought bytes meanwhile is polled
        at once (wakeup.py)."""
        lost_at: float | None = None
        wait = 1.0
        next_full = 0.0
        woken: set[int] = set()
        held: set[int] = set()  # woken, to be polled once WAKE_GAP has passed since their last woken poll
        woken_at: dict[int, float] = {}
        while True:
            started = time.monotonic()
            if deadline is not None and started >= deadline:
                return "--duration"
            full = started >= next_full
            try:
                for key, one in enumerate(self.followed):
                    if not full and (key not in woken or one.follower.ended):
                        continue
                    one.follower.poll()
                    held.discard(key)
                    if key in woken:
                        woken_at[key] = started
                    if one.follower.ended and not one.said_end:
                        one.said_end = True
                        self.talk.say(f"{one.pod}/{one.container}: {one.follower.ended}: no longer followed")
                        if self.wakeups is not None:
                            self.wakeups.drop(key)
            except (Unreachable, ApiError) as e:
                if isinstance(e, ApiError) and 400 <= e.status < 500 and e.status not in (408, 429):
                    raise
                self.printer.flush()  # lines delivered before the failure are past their offsets: print them
                if lost_at is None:
                    lost_at = started
                    self.talk.say(f"Lost the connection ({e}): retrying; every file resumes after its last "
                                  "whole line")
                time.sleep(_until(deadline, wait))
                wait = min(wait * 2, RETRY_MAX)
                next_full = 0.0  # every container again: the failed poll may have skipped some
                continue
            if full:
                next_full = started + POLL_INTERVAL
            if self.between_polls is not None:
                self.between_polls(self)
            self.printer.flush()
            if lost_at is not None:
                self.reconnects += 1
                self.talk.say(f"Reconnected after {time.monotonic() - lost_at:.1f}s: resumed where each file "
                              "stopped")
                lost_at, wait = None, 1.0
            if all(one.follower.ended for one in self.followed):
                return ""
            pause = _until(deadline, next_full - time.monotonic())
            if self.wakeups is None:
                time.sleep(pause)
            else:
                woken = self._woken(pause, held, woken_at)

    def _woken(self, pause: float, held: set[int], woken_at: dict[int, float]) -> set[int]:
        """The containers to poll now because their stream woke them, each at most once per WAKE_GAP (a line
        after a quiet spell at once, a burst in batches); waits up to `pause` for one."""
        assert self.wakeups is not None
        end = time.monotonic() + pause

        def due_at(key: int) -> float:
            return woken_at.get(key, -WAKE_GAP) + WAKE_GAP  # never woken before: at once

        while True:
            now = time.monotonic()
            due = {key for key in held if now >= due_at(key)}
            if due or now >= end:
                held -= due
                return due
            held |= self.wakeups.wait(min([end, *map(due_at, held)]) - now)

    def stop(self) -> None:
        for one in self.followed:
            one.follower.stop()
        self.printer.flush()


def _until(deadline: float | None, seconds: float) -> float:
    if deadline is not None:
        seconds = min(seconds, deadline - time.monotonic())
    return max(0.0, seconds)


def follow(kube: KubeApi, talk: Talk, opts: FollowOptions, selection: NodeLogsOptions,
           start: Callable[[Follow], list[tuple[str, list[str]]]], what: str) -> int:
    """The --follow run: ``start`` adds the pods (their node proxies checked); then one loop until a stop."""
    if kube.can_i("get", "nodes", "", "proxy") is False:
        raise Forbidden("--follow reads through the node proxy and needs get on nodes/proxy (cluster-wide), "
                        "which is not allowed; without --follow, nodelogs can copy the files through a node pod")
    began = time.monotonic()
    run = Follow(kube, talk, opts, Printer(ByteSink("-"), opts), selection,
                 node_pods=NodePods(kube, selection, talk) if selection.via == "pod" else None,
                 wakeups=Wakeups(kube, talk.warn))
    stopped_by = ""
    code = int(ExitCode.OK)
    try:
        with stop_signals_raise():
            try:
                pods = start(run)
                run.printer.flush()  # every pod's --tail lines, aligned together
                if not run.followed:
                    raise NotFound(f"no container log file to follow for {what}")
                count = sum(len(containers) for _, containers in pods)
                if len({one.container for one in run.followed}) == 1:
                    talk.record(container=run.followed[0].container)
                talk.say(f"Following {plural(count, 'container')} of {plural(len(pods), 'pod')} through the node "
                         f"proxy (at once on each log stream's news, every {POLL_INTERVAL:g}s at least); Ctrl-C to "
                         "stop")
                deadline = None if opts.duration is None else time.monotonic() + opts.duration
                stopped_by = run.run(deadline)
                run.stop()
            except StopRequested as stop:
                stopped_by, code = str(stop), int(stop.exit_code)
                run.stop()
    except PipeClosed:
        stopped_by = "reader-gone"
    finally:
        if run.wakeups is not None:
            run.wakeups.close()
        if run.node_pods is not None:
            run.node_pods.close()
    talk.record(via="proxy", linesWritten=run.printer.lines, reconnects=run.reconnects, stoppedBy=stopped_by or None,
                durationSeconds=round(time.monotonic() - began, 3), output="-")
    why = {"": "every followed log directory is gone", "reader-gone": "stdout was closed"}.get(stopped_by, stopped_by)
    talk.say(f"Stopped ({why}) after {plural(run.printer.lines, 'line')}"
             + (f" and {plural(run.reconnects, 'reconnect')}" if run.reconnects else ""))
    return code


def run_one(kube: KubeApi, opts: NodeLogsOptions, fopts: FollowOptions, talk: Talk) -> int:
    """--follow of one pod (-c, --all-containers or the default container, as without --follow)."""

    def start(run: Follow) -> list[tuple[str, list[str]]]:
        target = resolve(kube, opts, kube.namespace)
        selection, note = select_containers(target, opts)
        if note:
            talk.say(note)
        talk.record(node=target.node, uid=target.uid)
        return [(target.pod, run.add_pod(target, selection))]

    return follow(kube, talk, fopts, opts, start, f"pod {opts.pod}")


def run_many(
    kube: KubeApi, opts: NodeLogsOptions, ref: TargetRef, max_pods: int, fopts: FollowOptions, talk: Talk
) -> int:
    """--follow of the running pods of a workload or selector, and of every pod of it that starts running
    later (a rollout, a scale-up, a replaced pod): the same pod watch as capture --follow (kube/podwatch.py,
    which resumes and re-lists on 410), each joiner followed from its first line so that nothing it wrote
    before we saw it is missed. A pod that goes away ends when its log directory goes (said on stderr)."""
    joined: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
    watches: list[PodWatch] = []

    def start(run: Follow) -> list[tuple[str, list[str]]]:
        resolution = fanout.resolve_pods(kube, ref, max_pods, talk.say)
        started = []
        for pod in resolution.pods:
            meta = pod["metadata"]
            one = dataclasses.replace(opts, pod=meta["name"])
            try:
                target = resolve(kube, one, meta["namespace"])
                selection, _ = select_containers(target, one)
                started.append((one.pod, run.add_pod(target, selection)))
            except (NotFound, NotReady) as e:
                talk.warn(f"pod {one.pod}: {e}; the other pods are followed")
        namespace = None if ref.all_namespaces else kube.namespace
        watches.append(PodWatch(kube, namespace, resolution.selector, resolution.version,
                                [*resolution.pods, *resolution.skipped_pods], joined.put, lambda _pod: None,
                                talk.say, talk.warn, ref.display).start())
        run.between_polls = join_new
        return started

    def join_new(run: Follow) -> None:
        """In the poll loop: the pods the watch saw start running since the last poll."""
        while not joined.empty():
            pod = joined.get()
            name = pod["metadata"]["name"]
            if name in {one.pod for one in run.followed if not one.follower.ended}:
                continue
            try:
                containers = run.join(pod)
            except (NotFound, NotReady) as e:
                talk.warn(f"pod {name} is running but cannot be followed: {e}")
                continue
            talk.say(f"Pod {name} is running: following {', '.join(containers) or 'no container yet'}")

    try:
        return follow(kube, talk, fopts, opts, start, ref.display)
    finally:
        for watch in watches:
            watch.stop()

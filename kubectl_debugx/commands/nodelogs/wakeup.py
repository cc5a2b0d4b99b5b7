"""nodelogs --follow: when to read. One ``pods/log?follow=true`` per followed container (what ``kubectl logs -f``
holds), read by a thread of its own; its bytes are not printed, nor even decrypted (kube/podlog.LogStream.news),
they only say "this container wrote": the follow loop then reads that container's files at once (follow.py)
instead of at its next poll.

Why the stream only wakes and the files stay what is printed: ``pods/log`` has no byte offset to start from,
does not say which stream (stdout, stderr) a line came from (``--timestamps`` prints ``[stderr]``), and a
kubelet that reopens a rotated file may skip what the runtime wrote to the old one between its last read and
the rename; the files, read from the offset after the last whole line and checked against the listing
(formats/logfollow.py), give every line exactly once through rotations and restarts. So a line reaches stdout
one stream chunk plus one read and one listing through the node proxy after it was written (the kubelet sends
it within milliseconds: fsnotify), where polling alone made it wait up to POLL_INTERVAL.

A stream that ends (the container ended or restarted, the connection went) is opened again after a pause; one
that cannot be had (pods/log forbidden, an old server) leaves that container to the polls, said once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kubectl_debugx.errors import DebugxError, Unauthorized
from kubectl_debugx.kube.apierrors import ApiForbidden
from kubectl_debugx.kube.client import KubeApi

REOPEN_MIN = 0.5  # seconds before a stream that ended is opened again (a restart: the new instance's 0.log ...)
REOPEN_MAX = 5.0
NEWS_GAP = 0.005  # seconds between two looks at a stream's news: a kubelet sends a chunk per line it read


class Wakeups:
    """The log streams of one --follow run, each keyed by the index of its container in Follow.followed."""

    def __init__(self, kube: KubeApi, note: Callable[[str], None]) -> None:
        self.kube = kube
        self.note = note  # said once, when pods/log cannot be streamed
        self.cond = threading.Condition()
        self.woken: set[int] = set()
        self.stops: dict[int, threading.Event] = {}
        self.streams: dict[int, Any] = {}  # kube.podlog.LogStream
        self.refused = False

    def add(self, key: int, namespace: str, pod: str, container: str) -> None:
        stop = self.stops[key] = threading.Event()
        threading.Thread(target=self._run, args=(key, namespace, pod, container, stop), daemon=True,
                         name=f"log-stream {pod}/{container}").start()

    def wait(self, timeout: float) -> set[int]:
        """The containers that wrote since the last call, waiting up to ``timeout`` seconds for one."""
        with self.cond:
            if not self.woken and timeout > 0:
                self.cond.wait(timeout)
            woken, self.woken = self.woken, set()
        return woken

    def drop(self, key: int) -> None:
        stop = self.stops.pop(key, None)
        if stop is not None:
            stop.set()
        stream = self.streams.pop(key, None)
        if stream is not None:
            stream.close()

    def close(self) -> None:
        for key in list(self.stops):
            self.drop(key)

    def _wake(self, key: int) -> None:
        with self.cond:
            self.woken.add(key)
            self.cond.notify()

    def _run(self, key: int, namespace: str, pod: str, container: str, stop: threading.Event) -> None:
        pause = REOPEN_MIN
        while not stop.is_set():
            try:
                stream = self.kube.follow_log(namespace, pod, container, tail_lines=0)
            except (ApiForbidden, Unauthorized) as e:
                self._refused(f"{e}")
                return
            except DebugxError:
                # 400: waiting to start (a restart's back-off); 404: the pod went (its follower ends and drops
                # this); unreachable: the polls say so and retry on their own
                stop.wait(pause)
                pause = min(pause * 2, REOPEN_MAX)
                continue
            self.streams[key] = stream
            if stop.is_set():  # dropped while it was being opened
                stream.close()
                return
            try:
                while stream.news():
                    self._wake(key)
                    pause = REOPEN_MIN
                    # the follow loop polls at once; what comes meanwhile is one more news, taken in one go
                    stop.wait(NEWS_GAP)
            except DebugxError:
                pass  # cut: opened again below
            except Exception:
                if not stop.is_set():
                    raise
                return  # whatever a read does when close() shuts its socket from this thread's back
            finally:
                stream.close()
                self.streams.pop(key, None)
            self._wake(key)  # the container ended or restarted, or the connection went: read the files now
            stop.wait(pause)
            pause = min(pause * 2, REOPEN_MAX)

    def _refused(self, why: str) -> None:
        with self.cond:
            said, self.refused = self.refused, True
        if not said:
            self.note(f"the log stream (pods/log) cannot be had ({why}): new lines are read every poll instead")

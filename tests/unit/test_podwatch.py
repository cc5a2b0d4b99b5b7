"""kube/podwatch.PodWatch against a scripted API: the watch resumes from the last resourceVersion seen, lists
again after 410 Gone (reporting what the missed events would have), retries while the API server is
unreachable with one line each way, and reports a pod's join and leave exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from kubectl_debugx.errors import Unreachable
from kubectl_debugx.kube import podwatch
from kubectl_debugx.kube.podwatch import PodWatch
from kubectl_debugx.kube.watch import WatchExpired

from .fakekube import UnusedKube


def pod(name: str, rv: int, phase: str = "Running", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "shop", "uid": f"uid-{name}", "resourceVersion": str(rv)}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T08:38:09Z"
    return {"metadata": meta, "status": {"phase": phase}}


class ScriptedKube(UnusedKube):
    """Each watch_pods call takes the next step: a list of events (then the server ends the watch), or an
    exception raised when the request is made (WatchExpired raised while reading, as the client does)."""

    def __init__(self, steps: list[Any], listing: tuple[list[dict[str, Any]], str] = ([], "")) -> None:
        self.steps = steps
        self.listing = listing
        self.watches: list[str] = []  # the resourceVersion of each watch request
        self.lists = 0
        self.done = threading.Event()

    def watch_pods(self, namespace: str | None, label_selector: str, resource_version: str, timeout: int
                   ) -> Iterator[tuple[str, dict[str, Any]]]:
        assert (namespace, label_selector) == ("shop", "app=web")
        self.watches.append(resource_version)
        if not self.steps:
            self.done.set()
            threading.Event().wait(5)
            return iter(())
        step = self.steps.pop(0)
        if isinstance(step, Unreachable):
            raise step

        def events() -> Iterator[tuple[str, dict[str, Any]]]:
            if isinstance(step, WatchExpired):
                raise step
            yield from step
        return events()

    def list_pods_at(self, namespace: str | None, label_selector: str | None = None
                     ) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        return self.listing


def run(kube: ScriptedKube, known: list[dict[str, Any]]) -> tuple[PodWatch, list[str]]:
    said: list[str] = []
    watch = PodWatch(kube, "shop", "app=web", "10", known, lambda p: said.append(f"join {p['metadata']['name']}"),
                     lambda p: said.append(f"leave {p['metadata']['name']}"), lambda s: said.append(f"say {s}"),
                     lambda s: said.append(f"warn {s}"), "deploy/web")
    watch.start()
    assert kube.done.wait(5), "the script did not run to its end"
    watch.stop()
    return watch, said


def test_a_rollout_joins_each_new_pod_once_and_each_old_one_leaves_once() -> None:
    """The recorded sequence (21-watch-pods-app-web-rollout-restart): new pod Pending, then Running; old pod
    deleting while still Running, then Succeeded, then DELETED. The watch ends (server timeout) and resumes
    from the last resourceVersion."""
    old = pod("web-old", 5)
    kube = ScriptedKube([
        [("ADDED", pod("web-new", 11, "Pending")), ("MODIFIED", pod("web-new", 12)),
         ("MODIFIED", pod("web-old", 13, deleting=True))],
        [("MODIFIED", pod("web-old", 14, "Succeeded", deleting=True)), ("DELETED", pod("web-old", 15, "Succeeded",
                                                                                          deleting=True)),
         ("BOOKMARK", {"metadata": {"resourceVersion": "20"}})],
    ])
    watch, said = run(kube, [old])
    assert said == ["join web-new", "leave web-old"]
    assert kube.watches == ["10", "13", "20"]
    assert (watch.resumes, watch.relists, kube.lists) == (2, 0, 0)


def test_410_gone_lists_again_and_reports_the_difference() -> None:
    """What happened while the history was lost: web-a deleted, web-b started; web-c was Pending and now runs.
    The next watch starts from the list's resourceVersion, not from its pods' older ones."""
    a, c = pod("web-a", 5), pod("web-c", 6, "Pending")
    kube = ScriptedKube([WatchExpired("too old resource version: 10 (40)")],
                        ([pod("web-b", 30), pod("web-c", 31)], "40"))
    watch, said = run(kube, [a, c])
    assert said == ["leave web-a", "join web-b", "join web-c"]
    assert kube.watches == ["10", "40"]
    assert (watch.relists, kube.lists) == (1, 1)


def test_an_unreachable_api_server_is_retried_with_one_line_each_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(podwatch, "BACKOFF", (0.01, 0.02))
    kube = ScriptedKube([Unreachable("cannot reach the API server at https://x: Connection refused")] * 3
                        + [[("ADDED", pod("web-new", 11))]])
    watch, said = run(kube, [])
    assert said == [
        "warn cannot watch the pods of deploy/web (cannot reach the API server at https://x: Connection refused); "
        "retrying, the pods joined so far go on",
        "say Watching the pods of deploy/web again",
        "join web-new",
    ]
    assert kube.watches == ["10", "10", "10", "10", "11"]
    assert not watch.gave_up


def test_it_gives_up_after_failing_for_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(podwatch, "BACKOFF", (0.01,))
    monkeypatch.setattr(podwatch, "GIVE_UP_AFTER", 0.05)
    kube = ScriptedKube([Unreachable("cannot reach the API server at https://x: timed out")] * 1000)
    said: list[str] = []
    watch = PodWatch(kube, "shop", "app=web", "10", [], lambda p: None, lambda p: None, said.append, said.append,
                     "deploy/web")
    watch.start()
    watch.thread.join(5)
    assert watch.gave_up and not watch.alive
    assert said[-1] == ("stopped following deploy/web: the API server failed for 0s; the pods joined so far go on")

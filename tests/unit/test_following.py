"""--follow's decisions that need no cluster: the exit code of a followed run, a target with no running pod yet,
and --max-pods as a bound on the pods worked on at once (a pod kept out joins when one leaves)."""

from __future__ import annotations

from typing import Any

from kubectl_debugx.kube.workloads import parse_target, resolve
from kubectl_debugx.remote import following
from kubectl_debugx.remote.streamrun import StopState
from kubectl_debugx.remote.toolrun import exit_code
from kubectl_debugx.talk import Talk

from .fakekube import UnusedKube
from .test_workloads import FakeKube, pod


def test_a_followed_run_ended_by_the_user_exits_as_every_run_does() -> None:
    warned: list[str] = []
    assert exit_code(StopState(reason="SIGINT"), {"a": "", "b": ""}, "capture", "x", warned.append) == 130
    assert exit_code(StopState(reason="SIGTERM"), {"a": "", "b": ""}, "capture", "x", warned.append) == 143
    assert exit_code(StopState(reason="SIGINT"), {}, "capture", "x", warned.append) == 130  # nobody came
    assert exit_code(StopState(), {"a": "tcpdump failed", "b": ""}, "capture", "x", warned.append) == 9


def test_with_follow_no_running_pod_is_no_error() -> None:
    deploy = {"spec": {"selector": {"matchLabels": {"app": "web"}}}}
    kube = FakeKube({("deployments", "web"): deploy}, [pod("web-a", "Pending")])
    result = resolve(kube, "shop", parse_target("deploy/web"), empty_ok=True)
    assert (result.pods, result.skipped) == ([], [("shop/web-a", "not running (phase Pending)")])
    assert [p["metadata"]["name"] for p in result.skipped_pods] == ["web-a"]


class StubJoins:
    def __init__(self) -> None:
        self.pending: set[str] = set()
        self.joined: list[str] = []

    def join(self, target: Any) -> None:
        self.joined.append(target.pod_name)


def test_max_pods_bounds_the_pods_at_once_and_a_pod_kept_out_joins_when_one_leaves() -> None:
    said: list[str] = []
    talk = Talk(quiet=False)
    talk.say = said.append  # type: ignore[method-assign,assignment]
    resolution = resolve(FakeKube({("deployments", "web"): {"spec": {"selector": {"matchLabels": {"app": "web"}}}}},
                                  [pod("web-a")]), "shop", parse_target("deploy/web"))
    follow = following.Follow(UnusedKube(), parse_target("deploy/web"), resolution, None,  # type: ignore[arg-type]
                              None, 2, talk)
    joins = StubJoins()
    follow.joins = joins  # type: ignore[assignment]
    live = ["web-a"]
    follow.live = lambda: len(live)
    follow._join(pod("web-b"))
    joins.pending.add("web-b")
    follow._join(pod("web-c"))
    follow._join(pod("web-c"))  # a second event of the same pod: said once
    assert joins.joined == ["web-b"]
    assert said == ["Pod shop/web-b is running: joining",
                    "Pod shop/web-c is running but does not join: --max-pods 2 reached (2 pods at once); it joins "
                    "when one leaves"]
    joins.pending.clear()
    live.append("web-b")
    follow.ended()  # nothing left: still 2 at once
    assert joins.joined == ["web-b"]
    live.remove("web-a")
    follow.ended()
    assert joins.joined == ["web-b", "web-c"]
    follow._leave(pod("web-c"))
    assert follow.waiting == {}

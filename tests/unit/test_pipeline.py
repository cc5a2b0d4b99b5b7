"""The pipeline of N >= 1 pods (remote/fanout.py): a bare POD is a target of one pod, resolved, checked and admitted
by the same steps as a workload's pods."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubectl_debugx.errors import NotFound, NotReady
from kubectl_debugx.kube.workloads import TargetRef
from kubectl_debugx.remote import fanout, session
from kubectl_debugx.remote.ephemeral import Target
from tests.unit.fakekube import UnusedKube


def pod(name: str, phase: str = "Running", containers: tuple[str, ...] = ("app",)) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": c, "image": "nginx"} for c in containers], "nodeName": "n1"},
            "status": {"phase": phase}}


class Pods(UnusedKube):
    """Pods by name and by the selector app=web; admits every dry run; grants every permission."""

    namespace = "shop"

    def __init__(self, *pods: dict[str, Any]) -> None:
        self.pods = {p["metadata"]["name"]: p for p in pods}
        self.calls: list[tuple[str, ...]] = []

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(("get", namespace, name))
        return copy.deepcopy(self.pods[name])

    def get_object(self, prefix: str, resource: str, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(("get", resource, name))
        return {"spec": {"selector": {"matchLabels": {"app": "web"}}}}

    def list_pods(self, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        self.calls.append(("list", str(namespace), str(label_selector)))
        return [copy.deepcopy(p) for p in self.pods.values()]

    def add_ephemeral_container(self, namespace: str, pod: str, patch: Any, dry_run: bool = False) -> Any:
        self.calls.append(("dry-run" if dry_run else "patch", pod))
        return copy.deepcopy(self.pods[pod])

    def can_i_all(self, reviews: Any) -> list[bool | None]:
        self.calls.append(("reviews", str(len(list(reviews)))))
        return [True for _ in reviews]


def admission(kube: Pods) -> fanout.Admission:
    def choose(target: Target) -> session.Candidate:
        return session.candidate(kube, target, "netadmin", "img", None, 600, None)

    return fanout.Admission(kube, "capture", choose, "img", None, 600, None, "hint")


def test_a_bare_pod_is_a_target_of_one_pod_through_the_same_steps():
    kube = Pods(pod("web", containers=("app", "sidecar")))
    said: list[str] = []
    resolution = fanout.resolve_pods(kube, TargetRef("pod", "web"), 1, said.append)
    admitted = fanout.admit(resolution, None, admission(kube), said.append)
    assert admitted.pods == [Target("shop", kube.pods["web"], "app")]
    assert [(c.profile, c.refusal, c.reuse) for c in admitted.chosen] == [("netadmin", None, None)]
    assert said == ['Defaulted container "app" out of: app, sidecar']
    # one GET, the namespace's choice (its dry run and one batch of reviews); nothing patched for real
    assert kube.calls == [("get", "shop", "web"), ("dry-run", "web"), ("reviews", "4")]


def test_a_workload_decides_once_per_namespace_and_dry_runs_every_pod():
    kube = Pods(pod("web-a"), pod("web-b"), pod("web-c", phase="Pending"))
    said: list[str] = []
    resolution = fanout.resolve_pods(kube, TargetRef("deployment", "web"), 5, said.append)
    admitted = fanout.admit(resolution, "app", admission(kube), said.append)
    assert [t.pod_name for t in admitted.pods] == ["web-a", "web-b"]
    assert [(c.profile, c.notes, c.refusal) for c in admitted.chosen] == [("netadmin", [], None)] * 2
    assert said == ["Skipping pod shop/web-c: not running (phase Pending)"]
    assert kube.calls == [("get", "deployments", "web"), ("list", "shop", "app=web"), ("dry-run", "web-a"),
                          ("reviews", "4"), ("dry-run", "web-b")]


def test_a_container_missing_from_one_pod_stops_before_anything_is_asked():
    kube = Pods(pod("web-a", containers=("app",)), pod("web-b", containers=("other",)))
    resolution = fanout.resolve_pods(kube, TargetRef("deployment", "web"), 5, lambda _line: None)
    with pytest.raises(NotFound, match=r'^container "app" not found in pod "web-b" \(containers: other\)$'):
        fanout.admit(resolution, "app", admission(kube), lambda _line: None)
    assert ("dry-run", "web-a") not in kube.calls


def test_one_target_says_why_a_pod_cannot_be_debugged():
    kube = Pods(pod("web", phase="Pending"))
    with pytest.raises(NotReady, match=r'^pod "web" is not running \(phase Pending\); nothing to debug yet$'):
        fanout.one_target(kube, "shop", "web", None, lambda _line: None)
    assert fanout.one_target(Pods(pod("web")), "shop", "web", None, lambda _line: None) == Target(
        "shop", pod("web"), "app")

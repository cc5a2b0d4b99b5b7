"""The test cluster's Deployment and ReplicaSet controller (tests/cluster/workloads.py) driven by the real kubectl,
and the product's pod watch (kubectl_debugx/kube/podwatch.py) through the API server's watch fault switches.

The controller's rollout is also replayed against the recording by test_contract.py (21-*); here: scaling up
and down (`kubectl scale`, the scale subresource), a deleted pod replaced, an image change rolled out to a new
ReplicaSet at the next revision. The watch tests need the fault switches and skip on a real cluster.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any

import pytest

from kubectl_debugx.kube.client import Kube
from kubectl_debugx.kube.config import KubeFlags
from kubectl_debugx.kube.podwatch import PodWatch

pytestmark = pytest.mark.e2e


def _deployment(e2e, namespace: str, replicas: int) -> None:
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"terminationGracePeriodSeconds": 5,
                                       "containers": [{"name": "main", "image": e2e.image,
                                                       "command": ["sleep", "600"]}]}}},
    }
    e2e.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def _get(e2e, namespace: str, *what: str) -> Any:
    return json.loads(e2e.kubectl("get", "-n", namespace, *what, "-o", "json").stdout)


def _running(e2e, namespace: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in _get(e2e, namespace, "pods", "-l", "app=web")["items"]
                  if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"))


def _until(check, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _pods_exactly(e2e, namespace: str, n: int) -> list[str] | None:
    """The names of the web pods when exactly n exist, all Running and none being deleted."""
    items = _get(e2e, namespace, "pods", "-l", "app=web")["items"]
    running = _running(e2e, namespace)
    return running if len(items) == n and len(running) == n else None


def test_scale_up_and_down_and_a_deleted_pod_replaced(e2e, namespace) -> None:
    _deployment(e2e, namespace, 1)
    [first] = _until(lambda: _pods_exactly(e2e, namespace, 1), "1 pod")
    e2e.kubectl("scale", "-n", namespace, "deploy/web", "--replicas=3")
    three = _until(lambda: _pods_exactly(e2e, namespace, 3), "3 pods after scale up")
    assert first in three
    [rs] = _get(e2e, namespace, "replicasets", "-l", "app=web")["items"]
    assert rs["spec"]["replicas"] == 3
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "3"
    victim = three[0]
    e2e.kubectl("delete", "pod", "-n", namespace, victim, "--wait=false")
    replaced = _until(lambda: (lambda r: r if r and victim not in r else None)(_pods_exactly(e2e, namespace, 3)),
                      "the deleted pod replaced")
    assert len(set(replaced) - set(three)) == 1
    e2e.kubectl("scale", "-n", namespace, "deploy/web", "--replicas=1")
    _until(lambda: _pods_exactly(e2e, namespace, 1), "1 pod after scale down")
    status = _get(e2e, namespace, "deploy/web")["status"]
    assert (status["replicas"], status["readyReplicas"], status["updatedReplicas"]) == (1, 1, 1), status


def test_a_template_change_rolls_out_to_a_new_replicaset(e2e, namespace) -> None:
    _deployment(e2e, namespace, 2)
    old = _until(lambda: _pods_exactly(e2e, namespace, 2), "2 pods")
    e2e.kubectl("set", "env", "-n", namespace, "deploy/web", "ROLLED=1")
    new = _until(lambda: (lambda r: r if r and not set(r) & set(old) else None)(_pods_exactly(e2e, namespace, 2)),
                 "2 new pods, the old ones gone", timeout=90)
    rss = {rs["metadata"]["name"]: rs for rs in _get(e2e, namespace, "replicasets", "-l", "app=web")["items"]}
    revisions = sorted((rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"], rs["spec"]["replicas"],
                        name) for name, rs in rss.items())
    assert [(r, n) for r, n, _ in revisions] == [("1", 0), ("2", 2)], revisions
    new_rs = revisions[-1][2]
    assert all(p.startswith(new_rs + "-") for p in new), (new, new_rs)
    assert new_rs == f"web-{rss[new_rs]['metadata']['labels']['pod-template-hash']}"
    deploy = _get(e2e, namespace, "deploy/web")
    assert deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert deploy["status"]["observedGeneration"] == deploy["metadata"]["generation"] == 2
    env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "ROLLED", "value": "1"}]


def test_a_watch_from_creation_sees_the_replicas_become_available(e2e, namespace) -> None:
    """What `kubectl rollout status` needs: the status the controller writes arrives as watch events. The test
    cluster once computed status only on GET, and a watch begun before the pods were ready waited forever."""
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"terminationGracePeriodSeconds": 0,
                                               "containers": [{"name": "main", "image": e2e.image,
                                                               "command": ["sleep", "600"]}]}}}}
    created = json.loads(e2e.kubectl("create", "-n", namespace, "-f", "-", "-o", "json",
                                     input=json.dumps(manifest)).stdout)
    rv = created["metadata"]["resourceVersion"]
    path = (f"/apis/apps/v1/namespaces/{namespace}/deployments?watch=1&fieldSelector=metadata.name%3Dweb"
            f"&resourceVersion={rv}&timeoutSeconds=90")
    argv = ["kubectl", "--kubeconfig", str(e2e.kubeconfig), "--context", e2e.context, "get", "--raw", path]
    watch = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert watch.stdout is not None
        seen = []
        for line in watch.stdout:
            status = json.loads(line)["object"].get("status") or {}
            seen.append(status.get("availableReplicas"))
            if status.get("availableReplicas") == 2 and status.get("updatedReplicas") == 2:
                break
        else:
            pytest.fail(f"the watch ended without a status of 2 available replicas: {seen}")
    finally:
        watch.kill()
        watch.wait()


class _Recorder:
    def __init__(self) -> None:
        self.joined: list[str] = []
        self.left: list[str] = []
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def join(self, pod: dict) -> None:
        with self.lock:
            self.joined.append(pod["metadata"]["name"])

    def leave(self, pod: dict) -> None:
        with self.lock:
            self.left.append(pod["metadata"]["name"])


@pytest.fixture
def watched(e2e, namespace):
    """Deployment web (1 pod) and the product's PodWatch of app=web from the list's resourceVersion."""
    if e2e.cluster is None:
        pytest.skip("needs the test cluster's watch fault switches")
    _deployment(e2e, namespace, 1)
    _until(lambda: _pods_exactly(e2e, namespace, 1), "1 pod")
    kube = Kube(KubeFlags(kubeconfig=str(e2e.kubeconfig), context=e2e.context))
    pods, version = kube.list_pods_at(namespace, "app=web")
    recorder = _Recorder()
    watch = PodWatch(kube, namespace, "app=web", version, pods, recorder.join, recorder.leave,
                     recorder.lines.append, recorder.lines.append, "deploy/web").start()
    yield namespace, pods, watch, recorder
    watch.stop()
    e2e.cluster.apiserver.watch_expired_before = 0
    e2e.cluster.set_watches_refused(False)


def test_a_dropped_watch_resumes_from_the_last_resource_version(e2e, watched) -> None:
    """The server ends the watch; the watch resumes where it was: the pods made meanwhile join once each."""
    namespace, pods, watch, recorder = watched
    _until(lambda: watch.connects == 1, "the watch")
    e2e.cluster.drop_watches()
    _until(lambda: watch.resumes == 1 and watch.connects == 2, "the watch resumed")
    e2e.kubectl("scale", "-n", namespace, "deploy/web", "--replicas=3")
    running = _until(lambda: _pods_exactly(e2e, namespace, 3), "3 pods")
    _until(lambda: len(recorder.joined) == 2, "2 pods joined")
    assert sorted(recorder.joined) == sorted(set(running) - {pods[0]["metadata"]["name"]})
    assert watch.relists == 0 and recorder.left == []


def test_410_gone_lists_again_and_reports_what_the_missed_events_would_have(e2e, watched) -> None:
    """While watches fail (503) the pods change; then the history the watch would resume from is gone (410
    Expired): it lists again, and the diff reports the pod deleted and the pods added meanwhile, once each; a
    line when the watch starts failing, one when it is back."""
    namespace, pods, watch, recorder = watched
    [first] = [p["metadata"]["name"] for p in pods]
    _until(lambda: watch.connects == 1, "the watch")
    e2e.cluster.set_watches_refused(True)
    e2e.cluster.drop_watches()
    _until(lambda: any("cannot watch the pods of deploy/web" in line for line in recorder.lines), "the line")
    e2e.kubectl("scale", "-n", namespace, "deploy/web", "--replicas=2")
    e2e.kubectl("delete", "pod", "-n", namespace, first, "--wait=false")
    running = _until(lambda: _pods_exactly(e2e, namespace, 2), "2 pods, the first one replaced")
    assert recorder.joined == [] and recorder.left == []  # nothing seen while watches fail
    e2e.cluster.expire_watch_history()
    e2e.cluster.set_watches_refused(False)
    _until(lambda: len(recorder.joined) >= 2 and first in recorder.left, "the joins and the leave")
    assert watch.relists == 1
    assert sorted(recorder.joined) == sorted(running), recorder.joined
    assert recorder.left == [first]
    _until(lambda: any("Watching the pods of deploy/web again" in line for line in recorder.lines), "back")

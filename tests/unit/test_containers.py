"""The one start path of debug containers (remote/containers.py), for one pod and many: what stays is said for
every pod on every way out."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from kubectl_debugx.errors import NotReady
from kubectl_debugx.remote import containers, session
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.streamrun import StopRequested
from kubectl_debugx.talk import Talk
from tests.unit.fakekube import UnusedKube


def pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": "1"},
            "spec": {"containers": [{"name": "app"}]}, "status": {}}


def candidate(name: str) -> session.Candidate:
    return session.Candidate("general", {"name": name, "image": "img", "command": ["sleep", "600"]}, [], None)


def stays(ec: str, pod_name: str) -> str:
    return (f"ephemeral container {ec} stays in pod {pod_name} (ephemeral containers cannot be removed); no tool "
            "runs in it, and it sleeps at most until its TTL if it ever starts")


class Pods(UnusedKube):
    """Adds each container; its wait ends as `outcomes` says for that pod (None: it runs at once)."""

    def __init__(self, outcomes: dict[str, BaseException | None]) -> None:
        self.outcomes = outcomes
        self.added: list[str] = []

    def add_ephemeral_container(self, namespace: str, pod_name: str, patch: Any, dry_run: bool = False) -> Any:
        [container] = patch["spec"]["ephemeralContainers"]
        self.added.append(pod_name)
        running = self.outcomes[pod_name] is None
        state = {"running": {"startedAt": "2026-12-07T00:00:00Z"}} if running else {"waiting": {}}
        return {**pod(pod_name), "status": {"ephemeralContainerStatuses": [
            {"name": container["name"], "state": state}]}}

    def watch_pod(self, namespace: str, name: str, rv: str, deadline: float) -> Any:
        outcome = self.outcomes[name]
        assert outcome is not None
        raise outcome
        yield  # pragma: no cover


NAMES = ["web-1", "web-2", "web-3"]


def start(kube: Pods, talk: Talk) -> list[str]:
    return containers.start_all(kube, [Target("ns", pod(n), "app") for n in NAMES],
                                [candidate(f"debugx-{i}") for i in range(3)], None, talk)


def test_every_pods_container_is_said_to_stay_once_all_run(capsys):
    talk = Talk()
    assert start(Pods(dict.fromkeys(NAMES)), talk) == ["debugx-0", "debugx-1", "debugx-2"]
    assert [line.split(": idle")[0] for line in talk.left] == [
        f"ephemeral container debugx-{i} stays in pod {n} (ephemeral containers cannot be removed)"
        for i, n in enumerate(NAMES)]
    said = capsys.readouterr().err.splitlines()
    assert said[0] == "Using profile general"  # then the adds, in the order their patches go out
    assert sorted(said[1:]) == [f"Adding ephemeral container debugx-{i} (image img) to pod {n}"
                                for i, n in enumerate(NAMES)]


@pytest.mark.parametrize(("outcome", "code", "word"), [
    (KeyboardInterrupt(), 130, "interrupted"), (StopRequested(signal.SIGTERM), 143, "terminated"),
    (NotReady('debug container debugx-1 cannot start: image "img": ErrImagePull'), 5,
     'debug container debugx-1 cannot start: image "img": ErrImagePull')])
def test_a_start_that_does_not_finish_names_every_container_that_stays(outcome, code, word):
    kube = Pods({"web-1": None, "web-2": outcome, "web-3": None})
    talk = Talk(quiet=True)
    with pytest.raises(Exception) as e:
        start(kube, talk)
    assert kube.added == NAMES  # every patch went out before the waits
    assert (int(e.value.code), str(e.value)) == (
        code, "; ".join([word, *[stays(f"debugx-{i}", n) for i, n in enumerate(NAMES)]]))
    assert talk.left == []  # said once, in the error line


def test_each_keeps_order_and_raises_the_first_error_once_all_ended():
    done: list[int] = []

    def fn(i: int) -> int:
        done.append(i)
        if i in (3, 5):
            raise ValueError(i)
        return i * 10

    assert containers.each(lambda i: i * 10, list(range(20))) == [i * 10 for i in range(20)]
    with pytest.raises(ValueError) as e:
        containers.each(fn, list(range(20)))
    assert e.value.args == (3,) and sorted(done) == list(range(20))

"""Waiting for the debug container: watch, or polling where watching is not allowed; stuck states end it."""

import json

import pytest

from kubectl_debugx.errors import NotReady
from kubectl_debugx.kube.apierrors import api_error
from kubectl_debugx.remote import ephemeral
from tests.unit.fakekube import UnusedKube


def pod_with(state: dict) -> dict:
    return {"metadata": {"name": "web", "resourceVersion": "7"},
            "status": {"ephemeralContainerStatuses": [{"name": "debugx-b", "state": state}]}}


class NoWatchKube(UnusedKube):
    """A user who may get pods but not watch them."""

    def __init__(self, states: list[dict]) -> None:
        self.states = states
        self.gets = 0

    def watch_pod(self, namespace, name, rv, deadline):
        raise api_error(403, json.dumps({"message": 'pods is forbidden: cannot watch resource "pods"'}))
        yield  # pragma: no cover - a generator that fails on first use, as the real one does

    def get_pod(self, namespace, name):
        self.gets += 1
        return pod_with(self.states.pop(0))


def test_polls_when_watch_is_forbidden(monkeypatch):
    monkeypatch.setattr(ephemeral.time, "sleep", lambda _s: None)
    kube = NoWatchKube([{"waiting": {"reason": "ContainerCreating"}}, {"running": {"startedAt": "x"}}])
    ephemeral.wait_running(kube, "ns", pod_with({}), "debugx-b", "img")
    assert kube.gets == 2


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"waiting": {"reason": "ErrImagePull", "message": "pull failed"}},
         'debug container debugx-b cannot start: image "img": ErrImagePull: pull failed'),
        ({"terminated": {"reason": "Error", "exitCode": 1}},
         "debug container debugx-b ended before it could be used (Error)"),
        ({"terminated": {"exitCode": 127, "message": "no sleep "}},
         "debug container debugx-b ended before it could be used (exit code 127: no sleep)"),
    ],
)
def test_states_that_will_not_clear_end_the_wait(monkeypatch, state, message):
    monkeypatch.setattr(ephemeral.time, "sleep", lambda _s: None)
    with pytest.raises(NotReady) as e:
        ephemeral.wait_running(NoWatchKube([state]), "ns", pod_with({}), "debugx-b", "img")
    assert str(e.value) == message

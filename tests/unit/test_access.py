"""Permissions asked in one batch, every missing one named at once, and the Role that grants them."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from typing import Any

import pytest
import yaml

from kubectl_debugx.errors import Forbidden, NotReady
from kubectl_debugx.kube.apierrors import api_error
from kubectl_debugx.remote import access, containers, session, specs, toolrun
from kubectl_debugx.remote.access import Permission
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.streamrun import StopRequested, StopState, ToolStderr
from kubectl_debugx.talk import Talk
from tests.unit.fakekube import UnusedKube
from tests.unit.test_nodelogs import FakeConn

RBAC = ('pods "web" is forbidden: User "u" cannot patch resource "pods/ephemeralcontainers" in API group "" in '
        'the namespace "ns"')


class Reviews(UnusedKube):
    """Denies what `denied` holds, remembers every batch."""

    def __init__(self, denied: set[tuple[str, str, str]] = frozenset(), unanswered: bool = False) -> None:
        self.denied = denied
        self.unanswered = unanswered
        self.batches: list[list[tuple[str, str, str, str]]] = []

    def can_i_all(self, reviews: Any) -> list[bool | None]:
        self.batches.append(list(reviews))
        return [None if self.unanswered else (v, r, s) not in self.denied for v, r, _, s, *_ in reviews]


def test_role_objects_grant_exactly_what_is_missing():
    lacking = [Permission("patch", "pods", "ephemeralcontainers"), Permission("get", "pods", "exec"),
               Permission("create", "pods", "exec"), access.NODES_PROXY]
    assert access.role_objects(lacking, "shop") == [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "debugx-user", "namespace": "shop"},
         "rules": [{"apiGroups": [""], "resources": ["pods/ephemeralcontainers"], "verbs": ["patch"]},
                   {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "debugx-user"},
         "rules": [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}]},
    ]
    assert list(yaml.safe_load_all(access.role_yaml(lacking, "shop"))) == access.role_objects(lacking, "shop")


def test_one_batch_with_cluster_scoped_reviews_asked_without_namespace():
    kube = Reviews({("get", "nodes", "proxy"), ("delete", "pods", "")})
    needs = [*access.NEEDS["nodelogs --via proxy"], *access.NEEDS["nodelogs --via pod"]]
    answers = access.review(kube, "ns", needs)
    assert kube.batches == [[("get", "pods", "ns", ""), ("get", "nodes", "", "proxy"), ("create", "pods", "ns", ""),
                             ("get", "pods", "ns", "exec"), ("create", "pods", "ns", "exec"),
                             ("delete", "pods", "ns", "")]]
    assert access.missing(answers) == [access.NODES_PROXY, Permission("delete", "pods")]


def test_a_refusal_names_every_missing_permission_after_the_servers_words():
    kube = Reviews({("patch", "pods", "ephemeralcontainers"), ("get", "pods", "exec"), ("create", "pods", "exec")})
    error = access.refusal(kube, "ns", "capture", "web", access.NEEDS["capture"], RBAC)
    assert isinstance(error, Forbidden)
    assert str(error) == (f"{RBAC}; capture needs patch pods/ephemeralcontainers, get and create pods/exec in "
                          "namespace ns, which you may not; nothing was created. `kubectl debugx doctor web -n ns "
                          "--for capture` prints a Role that grants them")


def test_a_refusal_without_answers_is_the_servers_words():
    error = access.refusal(Reviews(unanswered=True), "ns", "capture", "web", access.NEEDS["capture"], RBAC)
    assert str(error) == f"{RBAC}; nothing was created"


def pod(ephemeral: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app"}],
                                                  "ephemeralContainers": ephemeral or []},
            "status": {"phase": "Running"}}


def test_check_access_before_anything_is_created_and_no_patch_needed_for_a_reused_container():
    kube = Reviews({("get", "pods", "exec"), ("create", "pods", "exec"), ("patch", "pods", "ephemeralcontainers")})
    target = Target("ns", pod(), "app")
    fresh = session.Candidate("netadmin", {"name": "debugx-a"}, [], None)
    with pytest.raises(Forbidden) as e:
        session.check_access(kube, target, "capture", fresh)
    assert str(e.value).startswith("capture needs patch pods/ephemeralcontainers, get and create pods/exec in "
                                   "namespace ns, which you may not; nothing was created.")
    reused = session.Candidate("netadmin", {"name": "debugx-a"}, [], None, reuse="debugx-old")
    with pytest.raises(Forbidden) as e:
        session.check_access(kube, target, "capture", reused)
    assert str(e.value).startswith("capture needs get and create pods/exec in namespace ns")
    assert ("patch", "pods", "ns", "ephemeralcontainers") not in kube.batches[-1]


class ExecRefused(Reviews):
    def open_exec(self, namespace: str, pod: str, container: str, command: list[str], stdin: bool = False) -> Any:
        raise api_error(403, json.dumps({"message": 'pods "web" is forbidden: cannot get resource "pods/exec"'}))


class Quiet(ToolStderr):
    def _line(self, line: str) -> None:
        pass


def test_an_exec_that_never_opened_is_not_stopped_and_names_what_is_missing(capsys):
    kube = ExecRefused({("get", "pods", "exec"), ("create", "pods", "exec")})
    closed = []
    with pytest.raises(Forbidden) as e:
        toolrun.run_tool(kube, Target("ns", pod(), "app"), "debugx-old", "tcpdump", ["tcpdump"],
                         on_stdout=lambda _d: None, stderr=Quiet(), duration=None, limit_reached=lambda: False,
                         talk=Talk(), close=lambda: closed.append(1), command="capture")
    assert str(e.value) == ('pods "web" is forbidden: cannot get resource "pods/exec"; capture needs get and '
                            "create pods/exec in namespace ns, which you may not; tcpdump never started. `kubectl "
                            "debugx doctor web -n ns --for capture` prints a Role that grants them")
    assert closed == [1]
    assert capsys.readouterr().err == ""  # no "could not confirm that tcpdump stopped"


class ExecsRefused(ExecRefused):
    def open_exec(self, namespace: str, pod: str, container: str, command: list[str], stdin: bool = False) -> Any:
        raise api_error(403, json.dumps({"message": f'pods "{pod}" is forbidden: cannot get resource "pods/exec"'}))


def test_an_exec_refused_across_pods_is_exit_4_naming_what_is_missing_as_for_one_pod(capsys):
    kube = ExecsRefused({("get", "pods", "exec"), ("create", "pods", "exec")})
    tools = [toolrun.PodTool(Target("ns", {**pod(), "metadata": {"name": name}}, "app"), "debugx-old", ["tcpdump"],
                            lambda _d: None, Quiet()) for name in ("web-1", "web-2")]
    with pytest.raises(Forbidden) as e:
        toolrun.run_tools(kube, tools, "tcpdump", StopState(), duration=None, limit_reached=lambda: False,
                         talk=Talk(), on_end=lambda _p: None, command="capture")
    assert e.value.code == 4
    assert str(e.value) == ('pods "web-1" is forbidden: cannot get resource "pods/exec"; capture needs get and '
                            "create pods/exec in namespace ns, which you may not; tcpdump never started in pod "
                            "web-1. `kubectl debugx doctor web-1 -n ns --for capture` prints a Role that grants "
                            "them")
    assert capsys.readouterr().err == ""  # nothing to stop: no tool started


class Interrupted(UnusedKube):
    """Adds the container, then the wait is interrupted (Ctrl-C) or ends in an image pull error."""

    def __init__(self, outcome: BaseException) -> None:
        self.outcome = outcome

    def add_ephemeral_container(self, namespace: str, pod: str, patch: Any, dry_run: bool = False) -> Any:
        return {"metadata": {"name": "web", "resourceVersion": "1"}, "status": {}}

    def watch_pod(self, namespace: str, name: str, rv: str, deadline: float) -> Any:
        raise self.outcome
        yield  # pragma: no cover


NEW = session.Candidate("general", {"name": "debugx-new", "image": "x", "command": ["sleep", "60"]}, [], None)
STAYS = ("ephemeral container debugx-new stays in pod web (ephemeral containers cannot be removed); no tool "
         "runs in it, and it sleeps at most until its TTL if it ever starts")


@pytest.mark.parametrize(
    ("outcome", "code", "message"),
    [(KeyboardInterrupt(), 130, f"interrupted; {STAYS}"),
     (StopRequested(signal.SIGTERM), 143, f"terminated; {STAYS}"),
     (NotReady('debug container debugx-new cannot start: image "x": ErrImagePull'), 5,
      f'debug container debugx-new cannot start: image "x": ErrImagePull; {STAYS}')],
)
def test_a_container_added_but_not_running_is_said_to_stay(outcome, code, message):
    kube = Interrupted(outcome)
    with pytest.raises(Exception) as e:
        containers.start(kube, Target("ns", pod(), "app"), NEW, None, Talk(quiet=True))
    assert (int(e.value.code), str(e.value)) == (code, message)


def test_what_stays_is_said_once_even_when_quiet(capsys):
    talk = Talk(quiet=True)
    talk.leave("ephemeral container debugx-a stays in pod web")
    talk.said_left()
    talk.said_left()
    assert capsys.readouterr().err == "Left in the cluster: ephemeral container debugx-a stays in pod web\n"


def test_stays_line():
    assert session.stays_line("debugx-a", "web", 3600, 0) == (
        "ephemeral container debugx-a stays in pod web (ephemeral containers cannot be removed): idle, it ends "
        "with its TTL at about 01:00 UTC")


def test_seconds_left_of_a_running_container():
    running = {"metadata": {"name": "web"},
               "spec": {"ephemeralContainers": [{"name": "debugx-a", "command": ["sleep", "600"]}]},
               "status": {"ephemeralContainerStatuses": [
                   {"name": "debugx-a", "state": {"running": {"startedAt": "1970-01-01T00:01:40Z"}}}]}}
    assert session.seconds_left(running, "debugx-a", 200.0) == 500.0
    assert session.seconds_left(running, "debugx-b", 200.0) is None




class InterruptedWhileAdding(UnusedKube):
    """Ctrl-C arrives while the patch is on its way; the API server did (or did not) apply it."""

    def __init__(self, applied: bool) -> None:
        self.applied = applied

    def add_ephemeral_container(self, namespace: str, pod: str, patch: Any, dry_run: bool = False) -> Any:
        raise KeyboardInterrupt

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return pod([{"name": "debugx-new"}] if self.applied else [])


@pytest.mark.parametrize(("applied", "message"), [(True, f"interrupted; {STAYS}"), (False, "interrupted")])
def test_interrupted_while_adding_says_whether_the_container_stays(applied, message):
    with pytest.raises(Exception) as e:
        containers.start(InterruptedWhileAdding(applied), Target("ns", pod(), "app"), NEW, None, Talk(quiet=True))
    assert (int(e.value.code), str(e.value)) == (130, message)


class PodGone(Reviews):
    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status

    def exec_connection(self, namespace: str, pod: str, container: str, command: list[str]) -> Any:
        raise api_error(self.status, json.dumps({"message": f'pods "{pod}" not found'}))


def test_a_tool_in_a_pod_that_is_gone_is_not_warned_about():
    """A rollout deleted the pod: its processes went with it, so nothing is left to confirm (it warned once)."""
    from kubectl_debugx.remote import ephemeral

    said: list[str] = []
    ephemeral.make_sure_stopped(PodGone(404), Target("ns", pod(), "app"), "debugx-old", "r1", "tcpdump", said.append)
    assert said == []
    ephemeral.make_sure_stopped(PodGone(500), Target("ns", pod(), "app"), "debugx-old", "r1", "tcpdump", said.append)
    assert said == ['could not confirm that tcpdump stopped in web/debugx-old: pods "web" not found; it ends with '
                    "the container's TTL at the latest"]


class EndsWithItsContainer(Reviews):
    """The exec that ends the sleep: killed with its container (137: containerd) before it answers, or left open
    and silent for good (cri-dockerd: recordings 40-docker-exec-stream-*), or answering `ended PID` and then
    left open; the pod then says Terminated."""

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self.gets = 0
        self.conn = conn

    @contextlib.contextmanager
    def exec_connection(self, namespace: str, pod: str, container: str, command: list[str]) -> Any:
        assert command == specs.end_sleep_command()
        try:
            yield self.conn
        finally:
            self.conn.close()

    def get_pod(self, namespace: str, name: str) -> Any:
        self.gets += 1
        state = {"running": {}} if self.gets < 2 else {"terminated": {"exitCode": 143}}
        return {"status": {"ephemeralContainerStatuses": [{"name": "debugx-old", "state": state}]}}


@pytest.mark.parametrize(("conn", "gets"), [
    (lambda: FakeConn(status={"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode", "details": {
        "causes": [{"reason": "ExitCode", "message": "137"}]}, "message": "command terminated with exit code 137"}),
     2),
    (lambda: FakeConn(endless=True), 2),
    (lambda: FakeConn(b"ended 7\n", endless=True), 0),
], ids=["killed-with-it", "silent-for-good", "answered-then-silent"])
def test_an_idle_container_ended_with_the_exec_that_ended_it_counts_as_ended(monkeypatch, conn, gets):
    from kubectl_debugx.remote import process

    monkeypatch.setattr(process, "ENDED_WAIT_S", 0.3)
    kube = EndsWithItsContainer(conn())
    started = time.monotonic()
    assert process.end_idle(kube, "ns", "web", "debugx-old", wait=5) is True
    assert kube.gets == gets
    assert kube.conn.closed and time.monotonic() - started < 3

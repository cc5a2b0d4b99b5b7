"""Targets (kube/workloads.py) and the pure pieces of the commands across pods."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_debugx import summary as schema
from kubectl_debugx.commands import capture_names, capture_pods, trace_pods
from kubectl_debugx.commands.capture import TcpdumpTalk
from kubectl_debugx.errors import Forbidden, NotFound, NotReady, UsageError
from kubectl_debugx.formats.traceprocs import Selection
from kubectl_debugx.kube.workloads import (
    Resolution,
    TargetRef,
    check_max_pods,
    did_you_mean,
    meant,
    parse_target,
    resolve,
    selector_string,
)
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.sinks import ByteSink

from .fakekube import UnusedKube


def test_targets_as_kubectl_spells_them() -> None:
    assert parse_target("web") == TargetRef("pod", "web")
    assert [parse_target(t) for t in ("pod/web", "po/web", "pods/web")] == [TargetRef("pod", "web")] * 3
    assert [parse_target(t).kind for t in ("deploy/w", "deployment/w", "rs/w", "replicaset/w", "sts/w",
                                          "statefulset/w", "ds/w", "daemonset/w", "job/w", "svc/w",
                                          "service/w", "Deploy/w")] == [
        "deployment", "deployment", "replicaset", "replicaset", "statefulset", "statefulset", "daemonset",
        "daemonset", "job", "service", "service", "deployment"]
    assert parse_target(None, "app=web") == TargetRef(None, selector="app=web")
    assert parse_target(None, "app in (web,db)", True) == TargetRef(None, selector="app in (web,db)",
                                                                    all_namespaces=True)
    assert [parse_target(t).display for t in ("web", "deployment/web", "svc/db")] == ["web", "deploy/web", "svc/db"]
    assert parse_target(None, "app=web", True).display == "-l app=web -A"
    assert [parse_target(t).file_stem for t in ("web", "sts/db")] == ["web", "sts-db"]


def test_targets_as_kubectl_get_o_name_prints_them() -> None:
    assert [parse_target(t) for t in ("deployment.apps/web", "statefulset.apps/web", "daemonset.apps/web",
                                      "replicaset.apps/web", "job.batch/web", "service/web", "pod/web",
                                      "deployment.v1.apps/web", "deploy.apps/web", "pods.v1/web")] == [
        TargetRef("deployment", "web"), TargetRef("statefulset", "web"), TargetRef("daemonset", "web"),
        TargetRef("replicaset", "web"), TargetRef("job", "web"), TargetRef("service", "web"),
        TargetRef("pod", "web"), TargetRef("deployment", "web"), TargetRef("deployment", "web"),
        TargetRef("pod", "web")]


@pytest.mark.parametrize(("target", "selector", "all_ns", "message"), [
    ("cronjob/x", None, False, "cannot target 'cronjob'"),
    ("deployment.batch/web", None, False, "'deployment.batch': deployment is in API group 'apps', not 'batch': "
     "deployment.apps/NAME"),
    ("job.apps/x", None, False, "job is in API group 'batch', not 'apps'"),
    ("service.apps/x", None, False, "service is in API group 'core', not 'apps': service/NAME"),
    ("deploy/", None, False, "the name is missing"),
    ("web", "app=web", False, "either a target (web) or -l"),
    ("web", None, True, "-A/--all-namespaces needs -l"),
    (None, None, False, "a target is needed"),
    (None, " ", False, "-l/--selector: empty selector"),
])
def test_bad_targets_say_what_to_type(target: str | None, selector: str | None, all_ns: bool, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_target(target, selector, all_ns)


class MeantKube(UnusedKube):
    """Knows some objects by (resource, name); anything else is not found, `secret` ones are forbidden."""

    def __init__(self, known: set[tuple[str, str]]) -> None:
        self.known = known
        self.calls: list[tuple[str, str, str]] = []

    def get_object(self, prefix: str, resource: str, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append((resource, namespace, name))
        if (resource, name) in self.known:
            return {"metadata": {"name": name}}
        if name == "secret":
            raise Forbidden(f'{resource} "{name}" is forbidden')
        raise NotFound(f'{resource} "{name}" not found')


def test_a_missing_pod_names_what_of_that_name_exists() -> None:
    kube = MeantKube({("deployments", "web"), ("services", "web"), ("statefulsets", "db")})
    assert meant(kube, "shop", "web") == ["deploy/web", "svc/web"]
    assert kube.calls == [("deployments", "shop", "web"), ("statefulsets", "shop", "web"),
                          ("daemonsets", "shop", "web"), ("services", "shop", "web")]
    assert meant(kube, "shop", "db") == ["sts/db"]
    assert meant(kube, "shop", "secret") == []  # not allowed to look: no suggestion
    line = 'pods "web" not found in namespace "shop"'
    assert did_you_mean(line, ["deploy/web", "svc/web"]) == line + "; did you mean deploy/web or svc/web?"
    assert did_you_mean(line, ["deploy/web", "sts/web", "svc/web"]) == (
        line + "; did you mean deploy/web, sts/web or svc/web?")
    assert did_you_mean(line, ["ds/web"]) == line + "; did you mean ds/web?"
    assert did_you_mean(line, []) == line


def test_selector_string_takes_both_forms() -> None:
    assert selector_string({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["web", "api"]},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "canary", "operator": "DoesNotExist"}, {"key": "team", "operator": "Exists"}]}) == (
        "a=1,b=2,tier in (web,api),env notin (dev),!canary,team")
    assert selector_string(None) == ""


def pod(name: str, phase: str = "Running", ns: str = "shop", deleting: bool = False, ip: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"uid-{name}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T08:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": "node-1", "containers": [{"name": "nginx"}]},
            "status": {"phase": phase, "podIP": ip or None}}


class FakeKube(UnusedKube):
    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]], pods: list[dict[str, Any]]) -> None:
        self.objects = objects
        self.pods = pods
        self.calls: list[tuple[Any, ...]] = []

    def get_object(self, prefix: str, resource: str, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(("get", prefix, resource, namespace, name))
        return self.objects[(resource, name)]

    def list_pods(self, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        self.calls.append(("list", namespace, label_selector))
        return self.pods


def test_a_deployment_resolves_through_its_selector_skipping_what_does_not_run() -> None:
    deploy = {"spec": {"selector": {"matchLabels": {"app": "web"}}}}
    kube = FakeKube({("deployments", "web"): deploy},
                    [pod("web-b"), pod("web-a"), pod("web-c", "Pending"), pod("web-d", deleting=True),
                     pod("web-e", "Succeeded")])
    result = resolve(kube, "shop", parse_target("deploy/web"))
    assert kube.calls == [("get", "/apis/apps/v1", "deployments", "shop", "web"), ("list", "shop", "app=web")]
    assert [p["metadata"]["name"] for p in result.pods] == ["web-a", "web-b"]
    assert result.skipped == [("shop/web-c", "not running (phase Pending)"), ("shop/web-d", "being deleted"),
                              ("shop/web-e", "not running (phase Succeeded)")]
    assert result.skip_lines()[0] == "Skipping pod shop/web-c: not running (phase Pending)"
    assert (result.selector, result.service) == ("app=web", None)


def test_a_service_resolves_through_its_selector_map_and_is_kept_for_its_ip() -> None:
    svc = {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"selector": {"tier": "fe", "app": "web"}}}
    kube = FakeKube({("services", "web"): svc}, [pod("web-a")])
    result = resolve(kube, "shop", parse_target("svc/web"))
    assert kube.calls[-1] == ("list", "shop", "app=web,tier=fe")
    assert result.service is svc


def test_selector_across_namespaces_and_the_empty_cases() -> None:
    kube = FakeKube({}, [pod("a", ns="y"), pod("a", ns="x")])
    result = resolve(kube, "shop", parse_target(None, "app=web", True))
    assert kube.calls == [("list", None, "app=web")]
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in result.pods] == [("x", "a"), ("y", "a")]
    with pytest.raises(NotFound, match="no pods match -l app=web"):
        resolve(FakeKube({}, []), "shop", parse_target(None, "app=web"))
    with pytest.raises(NotReady, match="none of the 1 pods of -l app=web in namespace shop is running"):
        resolve(FakeKube({}, [pod("a", "Pending")]), "shop", parse_target(None, "app=web"))
    with pytest.raises(NotFound, match="has no selector"):
        resolve(FakeKube({("services", "ext"): {"spec": {}}}, []), "shop", parse_target("svc/ext"))


def test_max_pods_refuses_in_one_line_saying_how_many() -> None:
    result = Resolution(parse_target("deploy/web"), "app=web", pods=[pod(f"w{i}") for i in range(12)])
    check_max_pods(result, 12)
    with pytest.raises(UsageError) as e:
        check_max_pods(result, 10)
    assert str(e.value) == ("deploy/web matches 12 running pods, more than --max-pods 10: raise --max-pods or "
                            "narrow the selector")


def test_name_resolution_records_pods_and_the_service() -> None:
    pods = [pod("web-a", ip="10.0.0.1"), pod("web-b", ip="10.0.0.2"), pod("web-c")]
    pods[1]["status"]["podIPs"] = [{"ip": "10.0.0.2"}, {"ip": "fd00::2"}]
    svc = {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIPs": ["10.96.0.10"]}}
    result = Resolution(parse_target("svc/web"), "app=web", pods=pods, service=svc)
    assert capture_names.name_records(result) == [
        ("10.0.0.1", ["web-a"]), ("10.0.0.2", ["web-b"]), ("fd00::2", ["web-b"]),
        ("10.96.0.10", ["web.shop.svc"])]


def test_pcapng_for_several_pods_and_for_a_pcapng_file() -> None:
    assert [capture_pods.wants_pcapng(p, n) for p, n in (("a.pcap", 1), ("-", 1), ("a.pcapng", 1), ("-", 2),
                                                          ("a.pcap", 3))] == [False, False, True, True, True]


def test_pod_record_fits_the_summary_schema() -> None:
    talk = TcpdumpTalk(lambda _: None)
    talk.counts = {"captured": 7, "dropped by kernel": 0, "received by filter": 7}
    capture = capture_pods.PodCapture(Target("shop", pod("web-a", ip="10.0.0.1"), "nginx"), "debugx-abcde",
                                      "netadmin", talk, written=7)
    capture.reader.interface = 0  # its tcpdump's pcap header came: interface 0
    record = capture_pods.pod_record(capture)
    assert record == {"namespace": "shop", "pod": "web-a", "node": "node-1", "podIP": "10.0.0.1",
                      "container": "nginx", "debugContainer": "debugx-abcde", "profile": "netadmin",
                      "interfaceId": 0, "packetsWritten": 7, "packetsCaptured": 7, "droppedByKernel": 0,
                      "error": None, "joinedAt": None, "leftAt": None}
    summary = {**schema.new("capture"), "pods": [record]}
    assert schema.check("capture", summary) == []
    assert schema.check("capture", {**summary, "pods": [{**record, "extra": 1}]}) == ["pod: unknown key 'extra'"]


def test_trace_lines_are_prefixed_pod_slash_pid_and_aligned() -> None:
    trace = trace_pods.PodTrace(Target("shop", pod("web-a"), "nginx"), "debugx-x", "general", {},
                                Selection((), "the main process"), None, None, ByteSink("-"),  # type: ignore[arg-type]
                                "web-a/")
    trace.selection = Selection((), "")
    out = trace_pods.prefixed_lines(trace, b"31    12:00:00.1 accept4(6, ...) = 7\n12:00:01.0 epoll_wa", 16)
    assert out == [b"web-a/31         12:00:00.1 accept4(6, ...) = 7\n"]
    assert trace.partial == b"12:00:01.0 epoll_wa"
    assert trace_pods.prefixed_lines(trace, b"it(...)\n", 16) == [b"web-a/?          12:00:01.0 epoll_wait(...)\n"]


def test_exit_code_across_pods() -> None:
    from kubectl_debugx.errors import RemoteFailed
    from kubectl_debugx.remote.streamrun import StopState
    from kubectl_debugx.remote.toolrun import exit_code

    warned: list[str] = []
    assert exit_code(StopState(), {"a": "", "b": ""}, "capture", "x", warned.append) == 0
    assert exit_code(StopState(), {"a": "the pod was deleted", "b": ""}, "capture", "out.pcapng holds the rest",
                     warned.append) == 9
    assert warned == ["1 of 2 pods failed; out.pcapng holds the rest"]
    assert exit_code(StopState(reason="SIGINT"), {"a": "cut", "b": ""}, "capture", "x", warned.append) == 130
    assert exit_code(StopState(reason="SIGTERM"), {"a": "cut", "b": "cut"}, "capture", "x", warned.append) == 143
    with pytest.raises(RemoteFailed, match=r"^the trace failed in every pod \(a: cut\)$"):
        exit_code(StopState(), {"a": "cut", "b": "gone"}, "trace", "x", warned.append)


def test_peer_records_name_the_other_pods_and_services_of_the_namespace() -> None:
    from tests.unit.fakekube import UnusedKube

    class Namespace(UnusedKube):
        def list_pods(self, namespace, label_selector=None):
            assert (namespace, label_selector) == ("shop", None)
            client = pod("client", ip="10.0.0.9")
            done = pod("old", ip="10.0.0.8")
            done["status"]["phase"] = "Succeeded"
            node = pod("agent", ip="192.168.1.5")
            node["spec"]["hostNetwork"] = True
            return [pod("web-a", ip="10.0.0.1"), client, done, node]

        def list_objects(self, prefix, resource, namespace, label_selector=None):
            assert (prefix, resource, namespace) == ("/api/v1", "services", "shop")
            return [{"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIPs": ["10.96.0.20"]}},
                    {"metadata": {"name": "headless", "namespace": "shop"}, "spec": {"clusterIPs": ["None"]}}]

    result = Resolution(parse_target("deploy/web"), "app=web", pods=[pod("web-a", ip="10.0.0.1")])
    assert capture_names.peer_records(Namespace(), result) == [("10.0.0.9", ["client"]),
                                                               ("10.96.0.20", ["db.shop.svc"])]


def test_peer_records_are_fewer_when_a_list_is_refused() -> None:
    from kubectl_debugx.errors import Forbidden
    from tests.unit.fakekube import UnusedKube

    class Refusing(UnusedKube):
        def list_pods(self, namespace, label_selector=None):
            raise Forbidden('pods is forbidden: User "u" cannot list resource "pods"')

        def list_objects(self, prefix, resource, namespace, label_selector=None):
            raise Forbidden('services is forbidden: User "u" cannot list resource "services"')

    result = Resolution(parse_target("deploy/web"), "app=web", pods=[pod("web-a", ip="10.0.0.1")])
    assert capture_names.peer_records(Refusing(), result) == []

"""doctor: its pure checks, and a whole run against a fake cluster (what it asks, what it prints, its code)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubectl_debugx import summary as schema
from kubectl_debugx.commands import doctor
from kubectl_debugx.commands.doctor import checks
from kubectl_debugx.commands.doctor.checks import Row
from kubectl_debugx.errors import UsageError
from kubectl_debugx.kube.apierrors import api_error
from kubectl_debugx.talk import Talk
from tests.unit.fakekube import UnusedKube


@pytest.mark.parametrize(
    ("image", "names", "present"),
    [("nginx:1.27", ["docker.io/library/nginx:1.27"], True),
     ("nicolaka/netshoot:v0.13", ["docker.io/nicolaka/netshoot@sha256:ab", "docker.io/nicolaka/netshoot:v0.13"],
      True),
     ("nicolaka/netshoot", ["docker.io/nicolaka/netshoot:latest"], True),
     ("localhost:5000/debug:v1", ["localhost:5000/debug:v1"], True),
     ("registry.k8s.io/pause:3.9", ["registry.k8s.io/pause:3.10"], False),
     ("busybox@sha256:ab", ["docker.io/library/busybox@sha256:ab"], True),
     ("nginx:1.27", [], False)],
)
def test_image_on_node(image, names, present):
    assert checks.image_on_node(image, {"status": {"images": [{"names": names, "sizeBytes": 1}]}}) is present


def test_pod_security_level():
    assert checks.pod_security_level(None) == (
        "", "cannot get the namespace: the dry runs below still show what Pod Security admits")
    assert checks.pod_security_level({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "v1.33"}}}
    ) == ("restricted", "pod-security.kubernetes.io/enforce=restricted (version v1.33)")
    assert checks.pod_security_level({"metadata": {}})[0] == "privileged"


def test_user_row_says_uid_and_run_as_non_root():
    pod = {"spec": {"securityContext": {"runAsUser": 1000, "runAsNonRoot": True},
                    "containers": [{"name": "app", "securityContext": {"runAsUser": 1001}}]}}
    assert checks.user_row(pod, "app") == checks.Row(
        "container app runs as", checks.INFO,
        "uid 1001; runAsNonRoot; capture and trace run their debug container as root (runAsUser: 0) for its "
        "capabilities to be effective")
    reported = {"spec": {"containers": [{"name": "app"}]},
                "status": {"containerStatuses": [{"name": "app", "user": {"linux": {"uid": 0, "gid": 0}}}]}}
    assert checks.user_row(reported, "app") == checks.Row("container app runs as", checks.INFO, "uid 0")
    assert checks.user_row({"spec": {"containers": [{"name": "app"}]}}, "app") == checks.Row(
        "container app runs as", checks.INFO, "the image's USER (not in the pod spec)")


def test_table():
    assert checks.table([Row("may get pods", "ok", "needed by capture"), Row("capture can run", "no", "")]) == (
        "CHECK             RESULT   DETAIL\n"
        "may get pods      ok       needed by capture\n"
        "capture can run   no\n")


def test_parse_for():
    assert doctor.parse_for(None) == ("capture", "trace", "nodelogs", "cp", "shell")
    assert doctor.parse_for(["trace,capture", "trace"]) == ("trace", "capture")
    with pytest.raises(UsageError) as e:
        doctor.parse_for(["tcpdump"])
    assert str(e.value) == "--for: unknown command tcpdump; choose among capture, trace, nodelogs, cp, shell"


POD = {"metadata": {"name": "web", "namespace": "ns"},
       "spec": {"nodeName": "vm", "containers": [{"name": "app"}]},
       "status": {"phase": "Running"}}
PSA = {"message": 'pods "web" is forbidden: violates PodSecurity "restricted:latest": unrestricted capabilities',
       "reason": "Forbidden"}


class Cluster(UnusedKube):
    """A limited user in a restricted namespace: may get pods only; every write would fail the test."""

    namespace = "ns"

    def __init__(self, allowed: set[tuple[str, str, str]], psa: bool = False) -> None:
        self.allowed = allowed
        self.psa = psa
        self.batches: list[int] = []
        self.dry_runs = 0

    def can_i_all(self, reviews: Any) -> list[bool | None]:
        self.batches.append(len(reviews))
        return [(v, r, s) in self.allowed for v, r, _, s, *_ in reviews]

    def can_i(self, verb: str, resource: str, namespace: str, subresource: str = "", group: str = "") -> bool | None:
        return (verb, resource, subresource) in self.allowed

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return json.loads(json.dumps(POD))

    def get_namespace(self, name: str) -> dict[str, Any]:
        return {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}

    def get_node(self, name: str) -> dict[str, Any]:
        return {"status": {"nodeInfo": {"containerRuntimeVersion": "containerd://1.6.20"}, "images": []}}

    def add_ephemeral_container(self, namespace: str, pod: str, patch: Any, dry_run: bool = False) -> Any:
        assert dry_run, "doctor must create nothing"
        self.dry_runs += 1
        if ("patch", "pods", "ephemeralcontainers") not in self.allowed:
            raise api_error(403, json.dumps({"message": 'pods "web" is forbidden: User "u" cannot patch resource '
                                             '"pods/ephemeralcontainers"', "reason": "Forbidden"}))
        if self.psa:
            raise api_error(403, json.dumps(PSA))
        return {}

    def create_pod(self, namespace: str, pod: Any, dry_run: bool = False) -> Any:
        assert dry_run, "doctor must create nothing"
        return pod

    def create_object(self, prefix: str, resource: str, namespace: str, body: Any, dry_run: bool = False) -> Any:
        assert dry_run and (prefix, resource) == ("/apis/batch/v1", "jobs"), "doctor must create nothing"
        self.dry_runs += 1
        return body


def test_limited_user_every_missing_permission_in_the_summary(capsys):
    kube = Cluster({("get", "pods", "")})
    talk = Talk(json_summary=True, command="doctor")
    code = doctor.run(kube, doctor.DoctorOptions(pod="web"), talk)
    assert code == 4
    assert kube.batches[0] == 11  # every permission of every command, in the first batch
    summary = talk.summary
    assert schema.check("doctor", {**summary, "exitCode": code}) == []
    assert summary["missingPermissions"] == ["patch pods/ephemeralcontainers", "get pods/exec", "create pods/exec",
                                             "create pods", "delete pods", "list pods", "create jobs", "patch jobs",
                                             "delete jobs"]
    assert [(c["command"], c["canRun"], c["exitCode"]) for c in summary["commands"]] == [
        ("capture", False, 4), ("trace", False, 4), ("nodelogs", False, 4), ("cp", False, 4),
        ("shell", False, 4)]
    assert summary["role"] == (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: debugx-user\n  namespace: ns\n"
        "rules:\n- apiGroups:\n  - ''\n  resources:\n  - pods/ephemeralcontainers\n  verbs:\n  - patch\n"
        "- apiGroups:\n  - ''\n  resources:\n  - pods/exec\n  verbs:\n  - create\n  - get\n"
        "- apiGroups:\n  - ''\n  resources:\n  - pods\n  verbs:\n  - create\n  - delete\n  - list\n"
        "- apiGroups:\n  - batch\n  resources:\n  - jobs\n  verbs:\n  - create\n  - delete\n  - patch\n")
    out, err = capsys.readouterr()
    assert out == ""  # the JSON summary is printed by the command line, the table went to stderr
    assert "may patch pods/ephemeralcontainers   no" in err


def test_restricted_namespace_capture_cannot_run_and_the_table_says_why(capsys):
    everything = {("get", "pods", ""), ("patch", "pods", "ephemeralcontainers"), ("get", "pods", "exec"),
                  ("create", "pods", "exec"), ("get", "nodes", "proxy"), ("create", "pods", ""),
                  ("delete", "pods", "")}
    kube = Cluster(everything, psa=True)
    code = doctor.run(kube, doctor.DoctorOptions(pod="web", commands=("capture", "nodelogs")), Talk())
    assert code == 4
    out = capsys.readouterr().out
    lines = {line.split("   ")[0].strip(): line for line in out.splitlines()}
    assert "restricted: pod-security.kubernetes.io/enforce=restricted" in lines["namespace ns Pod Security"]
    assert "containerd://1.6.20: grants NET_RAW by default" in lines["node vm runtime"]
    assert "Pod Security refuses every profile that can capture" in lines["capture can run"]
    assert " no " in lines["capture can run"]
    assert "through the node proxy" in lines["nodelogs can run"] and " ok " in lines["nodelogs can run"]
    assert "# What is missing" not in out
    assert kube.dry_runs == 2  # netadmin, then baseline (containerd grants NET_RAW): the command's own choice


NODE_POD = {("get", "pods", ""), ("create", "pods", ""), ("get", "pods", "exec"), ("create", "pods", "exec"),
            ("delete", "pods", "")}


@pytest.mark.parametrize(("allowed", "how", "why", "dry_runs"), [
    (NODE_POD | {("list", "pods", ""), ("create", "jobs", ""), ("patch", "jobs", ""), ("delete", "jobs", "")},
     "a node pod run as a Job",
     "Running the node pod as a Job (ttlSecondsAfterFinished 0): Kubernetes deletes it once it ends, even if this "
     "run is killed", 1),
    (NODE_POD | {("list", "pods", "")}, "a plain node pod",
     "Not allowed to create, patch and delete jobs in namespace ns: the node pod is a plain pod, which stays "
     "(finished) until `kubectl debugx gc` if this run is killed", 0),
])
def test_nodelogs_verdict_says_whether_the_node_pod_runs_as_a_job(allowed, how, why, dry_runs):
    kube = Cluster(allowed)
    talk = Talk(json_summary=True, command="doctor")
    assert doctor.run(kube, doctor.DoctorOptions(pod="web", commands=("nodelogs",)), talk) == 0
    [verdict] = talk.summary["commands"]
    assert verdict["detail"] == (f"through {how} in namespace ns (profile baseline: the dry run admits it); get "
                                 f"nodes/proxy is not allowed. {why}")
    assert kube.dry_runs == dry_runs  # the Job's dry run, only when it may be created

"""nodelogs (target, listing, proxy, pod, report): node pod spec, listings, path planning, option checks,
the workflow on a fake API.

Shapes follow tests/cluster/recordings (10-nodeproxy-*, logs/4*-nodeproxy-*, 02-get-pod-nginx-running).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import signal
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from kubectl_debugx.commands import nodelogs
from kubectl_debugx.commands.nodelogs import (
    ContainerInfo,
    ContainerPlan,
    InstancePlan,
    LogTarget,
    NodeLogsOptions,
    listing,
    nodejob,
    proxy,
)
from kubectl_debugx.commands.nodelogs import pod as nodepod
from kubectl_debugx.commands.nodelogs.listing import Entry
from kubectl_debugx.errors import (
    DebugxError,
    ExitCode,
    Forbidden,
    Interrupted,
    NotFound,
    NotReady,
    OutputError,
    UsageError,
)
from kubectl_debugx.formats.crilog import DecodeReport, FileReport
from kubectl_debugx.formats.logfiles import Instance, Skipped
from kubectl_debugx.formats.logtree import ExtractedFile, ExtractReport
from kubectl_debugx.kube.apierrors import ApiError, api_error
from kubectl_debugx.kube.execstream import ExecOutcome, await_output, run_to_end
from kubectl_debugx.remote import specs, streamrun
from kubectl_debugx.talk import Talk
from tests.unit.fakekube import UnusedKube

UID = "484712bf-52da-42ea-9517-ffefec800273"
POD_DIR = f"rec_nginx_{UID}"
CID0 = "7bd633cfe345319d5959961d9d9c46f0b58425f2cdf677fa6178b778b191804c"
CID1 = "1f8e255a9416ebe6d6a527de4fcf2ec5bd9bfe90d1c46080402772497a8cb488"

# Bodies exactly as recorded from a real kubelet through the API server's node proxy.
PODS_LISTING = (
    '<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n'
    '<a href="rec-baseline_nginx_fef345a3-dc5a-4f2d-a29b-51a6e54d9a01/">'
    "rec-baseline_nginx_fef345a3-dc5a-4f2d-a29b-51a6e54d9a01/</a>\n"
    '<a href="rec-restricted_app_a8877fb5-6d7e-461c-824d-1564ab4cbf33/">'
    "rec-restricted_app_a8877fb5-6d7e-461c-824d-1564ab4cbf33/</a>\n"
    f'<a href="{POD_DIR}/">{POD_DIR}/</a>\n'
    '<a href="rec_node-debugger-vm-rec01_47f5ad79-6e17-44eb-9977-4aa77ddc22b7/">'
    "rec_node-debugger-vm-rec01_47f5ad79-6e17-44eb-9977-4aa77ddc22b7/</a>\n"
    "</pre>\n"
)
OUT_DIR_LISTING = (
    '<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n'
    '<a href="0.log">0.log</a>\n<a href="0.log.20261127-071935.gz">0.log.20261127-071935.gz</a>\n'
    '<a href="0.log.20261127-071950">0.log.20261127-071950</a>\n</pre>\n'
)


# ---------------------------------------------------------------------------------------------- node pod


# Ends by itself 30 s after its start unless a lease was taken, at TERM (from the lease), or after 1800 s.
# as sent: every $ doubled, so that the kubelet's $(VAR)/$$ expansion gives the shell what we wrote
NODE_POD_MAIN = ["sh", "-c", "echo $$$$ > /tmp/debugx-node.pid || exit; trap 'kill $$! 2>/dev/null; exit 0' TERM; "
                                "sleep 3 & wait $$!; [ -e /tmp/debugx-node.lease ] || exit 0; sleep 1800 & wait $$!"]


def test_node_pod_spec_is_least_privilege_by_default():
    pod = nodepod.node_pod_spec("debugx-nodelogs-abcde", "kube-system", "vm", "img:1", docker=False,
                                profile="baseline", custom=None)
    assert pod == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "debugx-nodelogs-abcde",
            "namespace": "kube-system",
            "labels": {"app.kubernetes.io/managed-by": "kubectl-debugx"},
        },
        "spec": {
            "nodeName": "vm",
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 1860,
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [
                {
                    "name": "debugger",
                    "image": "img:1",
                    "command": NODE_POD_MAIN,
                    "volumeMounts": [
                        {"name": "pod-logs", "mountPath": "/host/var/log/pods", "readOnly": True},
                    ],
                    "terminationMessagePolicy": "File",
                }
            ],
            "volumes": [{"name": "pod-logs", "hostPath": {"path": "/var/log/pods", "type": "Directory"}}],
        },
    }


def test_node_job_runs_the_node_pod_once_and_is_deleted_as_soon_as_it_finished():
    pod = nodepod.node_pod_spec("debugx-nodelogs-abcde", "kube-system", "vm", "img:1", docker=False,
                                profile="baseline", custom=None)
    labels = {"app.kubernetes.io/managed-by": "kubectl-debugx"}
    assert specs.node_job(pod) == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "debugx-nodelogs-abcde", "namespace": "kube-system", "labels": labels},
        "spec": {
            "completions": 1,
            "parallelism": 1,
            "backoffLimit": 0,
            "activeDeadlineSeconds": 1860,
            "ttlSecondsAfterFinished": 0,
            "template": {"metadata": {"labels": labels}, "spec": pod["spec"]},
        },
    }
    assert pod["spec"]["restartPolicy"] == "Never"  # the only policies a Job takes: Never or OnFailure


def test_node_pod_spec_on_docker_also_mounts_dockers_log_directory_read_only():
    pod = nodepod.node_pod_spec("p", "ns", "vm", "img", docker=True, profile="baseline", custom=None)
    assert pod["spec"]["volumes"] == [
        {"name": "docker-containers", "hostPath": {"path": "/var/lib/docker/containers", "type": "Directory"}},
        {"name": "pod-logs", "hostPath": {"path": "/var/log/pods", "type": "Directory"}},
    ]
    assert pod["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "docker-containers", "mountPath": "/host/var/lib/docker/containers", "readOnly": True},
        {"name": "pod-logs", "mountPath": "/host/var/log/pods", "readOnly": True},
    ]


def test_node_pod_spec_honours_profile_and_custom():
    custom = {"securityContext": {"runAsUser": 0}, "env": [{"name": "A", "value": "1"}]}
    pod = nodepod.node_pod_spec("p", "ns", "vm", "img", docker=False, profile="sysadmin", custom=custom)
    spec = pod["spec"]
    assert (spec["hostPID"], spec["hostNetwork"], spec["hostIPC"]) == (True, True, True)
    assert spec["containers"][0]["securityContext"] == {"privileged": True, "runAsUser": 0}
    assert spec["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    assert spec["containers"][0]["command"] == NODE_POD_MAIN


def test_node_pod_name_is_prefixed_and_random():
    name = nodepod.node_pod_name()
    assert name.startswith("debugx-nodelogs-") and len(name) == len("debugx-nodelogs-") + 5


def pod_status(phase: str, state: dict, **extra: Any) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": phase, "containerStatuses": [{"name": "debugger", "state": state}], **extra}}


def test_node_pod_state_running_and_waiting():
    assert nodepod._node_pod_state(pod_status("Running", {"running": {}}), "img") == "running"
    waiting = pod_status("Pending", {"waiting": {"reason": "ContainerCreating"}})
    assert nodepod._node_pod_state(waiting, "img") == "ContainerCreating"
    assert nodepod._node_pod_state({"metadata": {"name": "p"}, "status": {"phase": "Pending"}}, "img") == "Pending"


def test_node_pod_state_image_that_cannot_be_pulled_is_one_clear_error():
    never = pod_status("Pending", {"waiting": {
        "reason": "ErrImageNeverPull",
        "message": 'Container image "localhost/nosuch:v1" is not present with pull policy of Never'}})
    with pytest.raises(NotReady) as e:
        nodepod._node_pod_state(never, "localhost/nosuch:v1")
    assert str(e.value) == ('node pod p cannot start: image "localhost/nosuch:v1": ErrImageNeverPull: '
                            'Container image "localhost/nosuch:v1" is not present with pull policy of Never')


def test_node_pod_state_ended_pod():
    failed = pod_status("Failed", {}, reason="DeadlineExceeded", message="Pod was active too long")
    with pytest.raises(NotReady, match=r"^node pod p ended before it could be used "
                                       r"\(DeadlineExceeded: Pod was active too long\)$"):
        nodepod._node_pod_state(failed, "img")


# ---------------------------------------------------------------------------------------------- listings


def test_parse_recorded_pods_listing():
    entries, refused = listing.parse_listing(PODS_LISTING)
    assert entries == [
        Entry("rec-baseline_nginx_fef345a3-dc5a-4f2d-a29b-51a6e54d9a01", True),
        Entry("rec-restricted_app_a8877fb5-6d7e-461c-824d-1564ab4cbf33", True),
        Entry(POD_DIR, True),
        Entry("rec_node-debugger-vm-rec01_47f5ad79-6e17-44eb-9977-4aa77ddc22b7", True),
    ]
    assert refused == []


def test_parse_recorded_container_listing_during_rotation():
    assert listing.parse_listing(OUT_DIR_LISTING) == (
        [Entry("0.log", False), Entry("0.log.20261127-071935.gz", False), Entry("0.log.20261127-071950", False)],
        [],
    )


def test_parse_listing_undoes_gos_escaping_and_refuses_anything_but_plain_names():
    body = (
        '<pre>\n<a href="./ab:c.log">ab:c.log</a>\n<a href="sp%20ace">sp ace</a>\n'
        '<a href="amp&amp;x">amp&amp;x</a>\n<a href="../etc/">../etc/</a>\n<a href="a/b">a/b</a>\n'
        '<a href="a%2Fb">a/b</a>\n<a href="/abs">/abs</a>\n<a href="x?y">x?y</a>\n<a href="..">..</a>\n'
        '<a href="back%5Cslash">b</a>\n</pre>\n'
    )
    assert listing.parse_listing(body) == (
        [Entry("ab:c.log", False), Entry("sp ace", False), Entry("amp&x", False)],
        ["../etc/", "a/b", "a%2Fb", "/abs", "x?y", "..", "back%5Cslash"],
    )


def test_parse_ls_output():
    out = f"{POD_DIR}/\n0.log\n0.log.20261127-071935.gz\n../x\n\n"
    assert listing.parse_ls(out) == (
        [Entry(POD_DIR, True), Entry("0.log", False), Entry("0.log.20261127-071935.gz", False)],
        ["../x"],
    )


def test_proxy_paths_are_percent_encoded_per_component():
    assert proxy.proxy_path(directory=True) == "logs/pods/"
    assert proxy.proxy_path(POD_DIR, "nginx", directory=True) == f"logs/pods/{POD_DIR}/nginx/"
    assert proxy.proxy_path(POD_DIR, "nginx", "0.log") == f"logs/pods/{POD_DIR}/nginx/0.log"
    assert proxy.proxy_path("a b", "x:y", "c/d") == "logs/pods/a%20b/x%3Ay/c%2Fd"


def test_match_pod_dirs_finds_only_that_pod():
    entries = [Entry(f"rec_nginx_{UID}", True), Entry("rec_nginx_0ther", True), Entry("rec_nginx2_x", True),
               Entry("rec2_nginx_y", True), Entry("rec_nginx_file", False), Entry("rec_nginx_", True)]
    assert nodelogs.match_pod_dirs(entries, "rec", "nginx") == ["0ther", UID]


# ---------------------------------------------------------------------------------------------- the pod


def make_pod(**overrides: Any) -> dict:
    pod = {
        "metadata": {"name": "nginx", "namespace": "rec", "uid": UID},
        "spec": {
            "nodeName": "vm",
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "nginx"}, {"name": "side"}],
            "ephemeralContainers": [{"name": "debugx-aaaaa"}],
        },
        "status": {
            "phase": "Running",
            "initContainerStatuses": [{"name": "init", "restartCount": 0,
                                       "containerID": f"containerd://{CID0}"}],
            "containerStatuses": [
                {"name": "nginx", "restartCount": 1, "containerID": f"containerd://{CID1}",
                 "lastState": {"terminated": {"containerID": f"containerd://{CID0}"}}},
                {"name": "side", "restartCount": 0},
            ],
            "ephemeralContainerStatuses": [{"name": "debugx-aaaaa", "restartCount": 0}],
        },
    }
    pod.update(overrides)
    return pod


def test_pod_containers_include_init_and_ephemeral_with_restarts_and_ids():
    assert nodelogs.pod_containers(make_pod()) == (
        ContainerInfo("init", "init", 0, {CID0: 0}),
        ContainerInfo("nginx", "container", 1, {CID1: 1, CID0: 0}),
        ContainerInfo("side", "container", 0, {}),
        ContainerInfo("debugx-aaaaa", "ephemeral", 0, {}),
    )
    assert nodelogs.pod_runtime(make_pod()) == "containerd"


def test_static_pod_uses_the_mirror_annotation():
    pod = make_pod(metadata={"name": "etcd-vm", "namespace": "kube-system", "uid": "mirror-uid",
                             "annotations": {"kubernetes.io/config.mirror": "0123456789abcdef0123456789abcdef"}})
    assert nodelogs.pod_uid(pod) == ("0123456789abcdef0123456789abcdef", True)
    assert nodelogs.pod_uid(make_pod()) == (UID, False)


def test_target_of_a_running_pod():
    target = nodelogs.target_from("rec", "nginx", make_pod(), None, None)
    assert target == LogTarget("rec", "nginx", "vm", UID, nodelogs.pod_containers(make_pod()), "containerd",
                               "nginx", False)
    assert target.pod_dir() == POD_DIR


def test_target_of_a_gone_pod_needs_the_node():
    with pytest.raises(NotFound) as e:
        nodelogs.target_from("rec", "nginx", None, None, None)
    assert str(e.value) == ('pods "nginx" not found in namespace "rec"; for the files of a pod that no longer '
                            "exists give --node NODE (and --uid UID if you know it)")
    assert nodelogs.target_from("rec", "nginx", None, "vm", None) == LogTarget("rec", "nginx", "vm", None)
    assert nodelogs.target_from("rec", "nginx", None, "vm", "u1") == LogTarget("rec", "nginx", "vm", "u1")


def test_target_of_an_earlier_incarnation_is_read_from_the_node():
    assert nodelogs.target_from("rec", "nginx", make_pod(), None, "old") == LogTarget(
        "rec", "nginx", "vm", "old", runtime="containerd")
    assert nodelogs.target_from("rec", "nginx", make_pod(), "other", None) == LogTarget(
        "rec", "nginx", "other", None)


def test_target_of_an_unscheduled_pod():
    pod = make_pod(spec={"containers": [{"name": "nginx"}]}, status={"phase": "Pending"})
    with pytest.raises(NotReady, match='^pod "nginx" is not scheduled to a node yet, so it has no log files$'):
        nodelogs.target_from("rec", "nginx", pod, None, None)


def test_container_selection_like_kubectl_logs():
    target = nodelogs.target_from("rec", "nginx", make_pod(), None, None)
    assert nodelogs.select_containers(target, NodeLogsOptions("nginx")) == (
        ("nginx",),
        'Defaulted container "nginx" out of: init (init), nginx, side, debugx-aaaaa (ephemeral); '
        "use --all-containers for every one",
    )
    assert nodelogs.select_containers(target, NodeLogsOptions("nginx", all_containers=True)) == (None, "")
    assert nodelogs.select_containers(target, NodeLogsOptions("nginx", container="init")) == (("init",), "")
    with pytest.raises(NotFound) as e:
        nodelogs.select_containers(target, NodeLogsOptions("nginx", container="nosuch"))
    assert str(e.value) == ('container "nosuch" not found in pod "nginx" '
                            "(containers: init, nginx, side, debugx-aaaaa)")
    gone = LogTarget("rec", "nginx", "vm", None)
    assert nodelogs.select_containers(gone, NodeLogsOptions("nginx")) == (None, "")
    assert nodelogs.select_containers(gone, NodeLogsOptions("nginx", container="x")) == (("x",), "")


# ---------------------------------------------------------------------------------------------- planning


def test_plan_orders_restarts_and_rotations_and_names_decoded_files():
    files = [
        f"{POD_DIR}/out/1.log",
        f"{POD_DIR}/out/0.log",
        f"{POD_DIR}/out/1.log.20261127-071950",
        f"{POD_DIR}/out/1.log.20261127-071935.gz",
        f"{POD_DIR}/out/1.log.20261127-071838.gz.tmp",
        f"{POD_DIR}/quiet/0.log",
    ]
    assert nodelogs.plan_container("vm", POD_DIR, "out", files, {}) == ContainerPlan(
        "out",
        (
            InstancePlan("out", Instance(0, None, ("0.log",)), (f"vm/{POD_DIR}/out/0.log",), "out_0.txt"),
            InstancePlan(
                "out",
                Instance(1, None, ("1.log.20261127-071935.gz", "1.log.20261127-071950", "1.log")),
                (f"vm/{POD_DIR}/out/1.log.20261127-071935.gz", f"vm/{POD_DIR}/out/1.log.20261127-071950",
                 f"vm/{POD_DIR}/out/1.log"),
                "out_1.txt",
            ),
        ),
        (Skipped("1.log.20261127-071838.gz.tmp", "kubelet's temporary gzip output"),),
    )


def test_plan_of_docker_files_maps_ids_to_restarts():
    files = [
        f"docker/containers/{CID0}/{CID0}-json.log",
        f"docker/containers/{CID1}/{CID1}-json.log.1",
        f"docker/containers/{CID1}/{CID1}-json.log",
        f"docker/containers/{'f' * 64}/{'f' * 64}-json.log",  # another container's
    ]
    plan = nodelogs.plan_container("vm", POD_DIR, "nginx", files, {CID0: 0, CID1: 1})
    assert plan == ContainerPlan(
        "nginx",
        (
            InstancePlan("nginx", Instance(0, CID0, (f"{CID0}-json.log",)),
                         (f"vm/docker/containers/{CID0}/{CID0}-json.log",), "nginx_0.txt"),
            InstancePlan("nginx", Instance(1, CID1, (f"{CID1}-json.log.1", f"{CID1}-json.log")),
                         (f"vm/docker/containers/{CID1}/{CID1}-json.log.1",
                          f"vm/docker/containers/{CID1}/{CID1}-json.log"), "nginx_1.txt"),
        ),
    )


# ---------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"via": "ssh"}, "--via: must be one of auto, proxy, pod, got 'ssh'"),
        ({"profile": "root"}, "--profile: unknown profile 'root'; choose auto (= baseline) or one of legacy, "
                              "general, baseline, netadmin, restricted, sysadmin"),
        ({"container": "a", "all_containers": True}, "-c/--container and --all-containers cannot be used together"),
        ({"since_seconds": 5.0, "since_time": datetime(2026, 1, 1, tzinfo=timezone.utc)},
         "--since and --since-time cannot be used together"),
        ({"pod": "Bad_Pod"}, "invalid pod name 'Bad_Pod'"),
        ({"container": "a/b"}, "-c/--container: invalid container name 'a/b'"),
        ({"node": "../etc"}, "--node: invalid node name '../etc'"),
        ({"uid": "a_b"}, "--uid: invalid pod UID 'a_b' (a UUID, or a static pod's config hash)"),
        ({"pod_namespace": "Kube System"}, "--pod-namespace: invalid namespace name 'Kube System'"),
    ],
)
def test_validate_names_the_flag(overrides, message):
    opts = NodeLogsOptions(**{"pod": "nginx", **overrides})
    with pytest.raises(UsageError) as e:
        nodelogs.validate(opts)
    assert str(e.value) == message
    assert e.value.code == ExitCode.USAGE


def test_validate_accepts_a_full_set():
    nodelogs.validate(NodeLogsOptions("etcd-vm.example", container="c-1", since_seconds=60, node="vm.example",
                                      uid=UID, pod_namespace="kube-system", via="pod", profile="sysadmin"))


def test_since_time_and_since_limit():
    assert nodelogs.parse_since_time("2026-11-27T12:56:00+05:30") == datetime(
        2026, 11, 27, 12, 56, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    with pytest.raises(UsageError, match="^--since-time: invalid time '1h'; use RFC3339"):
        nodelogs.parse_since_time("1h")
    now = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
    assert nodelogs.since_limit(NodeLogsOptions("p", since_seconds=90), now) == now - timedelta(seconds=90)
    assert nodelogs.since_limit(NodeLogsOptions("p"), now) is None


def test_output_dir_checks(tmp_path):
    nodelogs.check_output_dir(tmp_path / "new")
    nodelogs.check_output_dir(tmp_path)  # exists, empty
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError) as e:
        nodelogs.check_output_dir(tmp_path)
    assert str(e.value) == f"output directory {tmp_path} exists and is not empty; choose another with -o"
    assert e.value.code == ExitCode.OUTPUT
    with pytest.raises(OutputError, match="exists and is not a directory"):
        nodelogs.check_output_dir(tmp_path / "f")


def test_human_size():
    assert [nodelogs.human_size(n) for n in (0, 1023, 1024, 7319, 5 * 1024**2)] == [
        "0 B", "1023 B", "1.0 KiB", "7.1 KiB", "5.0 MiB"]


# ---------------------------------------------------------------------------------------------- fake API


class FakeResponse:
    def __init__(self, body: bytes, content_type: str, mtime: float = 1795763990.0) -> None:
        self.body = body
        self.headers = {"content-type": content_type, "last-modified": formatdate(mtime, usegmt=True)}
        self.released = False

    def read(self, amt: int | None = None, decode_content: bool = True) -> bytes:
        assert decode_content is False
        if amt is None:
            data, self.body = self.body, b""
        else:
            data, self.body = self.body[:amt], self.body[amt:]
        return data

    def release_conn(self) -> None:
        self.released = True


class FakeKube(UnusedKube):
    """The calls nodelogs makes, answered from a dict tree standing for the node's /var/log/pods."""

    def __init__(self, tree: dict, pod: dict | None = None, allowed: dict | None = None) -> None:
        self.namespace = "rec"
        self.tree = tree
        self.pod = pod
        self.allowed = allowed or {}
        self.calls: list[tuple] = []

    def get_pod(self, namespace: str, name: str) -> dict:
        self.calls.append(("get_pod", namespace, name))
        if self.pod is None or name != self.pod["metadata"]["name"]:
            raise api_error(404, json.dumps({"message": f'pods "{name}" not found', "reason": "NotFound"}))
        return self.pod

    def get_node(self, name: str) -> dict:
        if name != "vm":
            raise api_error(404, json.dumps({"message": f'nodes "{name}" not found'}))
        return {"status": {"nodeInfo": {"containerRuntimeVersion": "containerd://1.6.20"}}}

    def can_i(self, verb: str, resource: str, namespace: str, subresource: str = "", group: str = "") -> bool | None:
        return self.allowed.get((verb, resource, subresource), True)

    def node_proxy_get(self, node: str, path: str, read_timeout: float | None = None) -> FakeResponse:
        self.calls.append(("proxy", node, path))
        from urllib.parse import unquote

        parts = [unquote(p) for p in path.removeprefix("logs/pods/").split("/") if p]
        node_dir: Any = self.tree
        for part in parts:
            if not isinstance(node_dir, dict) or part not in node_dir:
                raise api_error(404, b"404 page not found\n")
            node_dir = node_dir[part]
        if isinstance(node_dir, dict):
            body = "".join(f'<a href="{n}{"/" if isinstance(v, dict) else ""}">{n}</a>\n'
                           for n, v in sorted(node_dir.items()))
            return FakeResponse(f"<pre>\n{body}</pre>\n".encode(), "text/html; charset=utf-8")
        return FakeResponse(node_dir, "text/plain; charset=utf-8")


def cri(ts: str, stream: str, tag: str, text: str) -> bytes:
    return f"2026-11-27T07:{ts}Z {stream} {tag} {text}\n".encode()


def node_tree() -> dict:
    rotated = cri("19:30.1", "stdout", "F", "one") + cri("19:30.2", "stdout", "P", "tw")
    live0 = cri("19:31.0", "stdout", "F", "o") + cri("19:31.1", "stderr", "F", "oops")
    return {
        POD_DIR: {
            "nginx": {
                "0.log.20261127-071930.gz": gzip.compress(rotated, mtime=0),
                "0.log": live0,
                "1.log": cri("19:40.0", "stdout", "F", "restarted"),
            },
            "side": {"0.log": b"not a log line\n"},
        },
        "other_pod_x": {"c": {"0.log": b""}},
    }


def opts_for(tmp_path: Path, **overrides: Any) -> NodeLogsOptions:
    return NodeLogsOptions(**{"pod": "nginx", "output_dir": str(tmp_path / "out"), "via": "proxy", **overrides})


def test_run_through_the_proxy_copies_byte_for_byte_and_decodes(tmp_path, capsys):
    kube = FakeKube(node_tree(), make_pod())
    talk = Talk(json_summary=True, command="nodelogs")
    assert nodelogs.run(kube, opts_for(tmp_path, all_containers=True), talk) == ExitCode.OK
    out = tmp_path / "out"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "nginx_0.txt",
        "nginx_1.txt",
        "side_0.txt",
        f"vm/{POD_DIR}/nginx/0.log",
        f"vm/{POD_DIR}/nginx/0.log.20261127-071930.gz",
        f"vm/{POD_DIR}/nginx/1.log",
        f"vm/{POD_DIR}/side/0.log",
    ]
    for name, data in node_tree()[POD_DIR]["nginx"].items():
        assert (out / "vm" / POD_DIR / "nginx" / name).read_bytes() == data
    assert (out / "nginx_0.txt").read_text() == (
        "2026-11-27T07:19:30.1Z one\n"
        "2026-11-27T07:19:30.2Z two\n"  # the P piece of the rotated file joined with the live file's F
        "2026-11-27T07:19:31.1Z [stderr] oops\n"
    )
    assert (out / "nginx_1.txt").read_text() == "2026-11-27T07:19:40.0Z restarted\n"
    assert (out / "side_0.txt").read_text() == "[malformed 0.log:1] not a log line\n"
    summary = talk.summary
    assert summary["via"] == "proxy" and summary["nodePod"] is None and summary["filesWritten"] == 4
    assert summary["containers"][0]["instances"][0] == {
        "restart": 0, "containerID": None, "decoded": "nginx_0.txt", "lines": 3, "stderrLines": 1,
        "unterminatedLines": 0, "malformedLines": 0, "linesBeforeSince": 0,
        "files": [
            {"path": f"vm/{POD_DIR}/nginx/0.log.20261127-071930.gz",
             "size": len(node_tree()[POD_DIR]["nginx"]["0.log.20261127-071930.gz"]), "records": 2,
             "note": "", "error": ""},
            {"path": f"vm/{POD_DIR}/nginx/0.log", "size": len(node_tree()[POD_DIR]["nginx"]["0.log"]),
             "records": 2, "note": "", "error": ""},
        ],
    }
    err = capsys.readouterr().err
    assert "nginx restart 0: 2 files" in err and "3 lines (1 stderr) -> nginx_0.txt" in err
    assert ("proxy", "vm", f"logs/pods/{POD_DIR}/side/") in kube.calls  # every container was listed


def test_run_raw_counts_lines_without_decoding(tmp_path):
    kube = FakeKube(node_tree(), make_pod())
    talk = Talk(quiet=True)
    nodelogs.run(kube, opts_for(tmp_path, raw=True, container="nginx"), talk)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["vm"]
    assert [i["lines"] for i in talk.summary["containers"][0]["instances"]] == [3, 1]
    assert [i["decoded"] for i in talk.summary["containers"][0]["instances"]] == [None, None]


def test_run_since_filters_decoded_lines(tmp_path):
    kube = FakeKube(node_tree(), make_pod())
    talk = Talk(quiet=True)
    since = datetime(2026, 11, 27, 7, 19, 31, tzinfo=timezone.utc)
    nodelogs.run(kube, opts_for(tmp_path, since_time=since), talk)
    assert (tmp_path / "out" / "nginx_0.txt").read_text() == "2026-11-27T07:19:31.1Z [stderr] oops\n"
    assert talk.summary["containers"][0]["instances"][0]["linesBeforeSince"] == 2


def test_run_finds_the_directory_of_a_gone_pod(tmp_path):
    kube = FakeKube(node_tree(), pod=None)
    talk = Talk(quiet=True)
    nodelogs.run(kube, opts_for(tmp_path, node="vm"), talk)
    assert talk.summary["uid"] == UID
    assert [c["name"] for c in talk.summary["containers"]] == ["nginx", "side"]


def test_run_without_a_log_directory_says_what_it_looked_for_and_leaves_nothing(tmp_path):
    kube = FakeKube({"x": {}}, make_pod())
    with pytest.raises(NotFound) as e:
        nodelogs.run(kube, opts_for(tmp_path), Talk(quiet=True))
    assert str(e.value) == (f"no log directory for pod rec/nginx on node vm (the node proxy of vm): looked for "
                            f"/var/log/pods/{POD_DIR}/")
    assert e.value.code == ExitCode.NOT_FOUND
    assert not (tmp_path / "out").exists()


def test_run_for_a_container_without_a_directory(tmp_path):
    kube = FakeKube(node_tree(), make_pod())
    with pytest.raises(NotFound) as e:
        nodelogs.run(kube, opts_for(tmp_path, container="init"), Talk(quiet=True))
    assert str(e.value) == (f"no log files for container(s) init on node vm (the node proxy of vm): looked for "
                            f"/var/log/pods/{POD_DIR}/init/")
    assert not (tmp_path / "out").exists()


def test_run_search_with_several_incarnations_asks_for_uid(tmp_path):
    tree = node_tree()
    tree["rec_nginx_second"] = {"nginx": {"0.log": b""}}
    kube = FakeKube(tree, pod=None)
    with pytest.raises(UsageError) as e:
        nodelogs.run(kube, opts_for(tmp_path, node="vm"), Talk(quiet=True))
    assert str(e.value) == (f"several log directories of pod rec/nginx on node vm (the node proxy of vm) "
                            f"(UIDs {UID}, second); choose one with --uid")


def test_run_unknown_node(tmp_path):
    kube = FakeKube(node_tree(), pod=None)
    with pytest.raises(NotFound, match='^node "nosuch" not found$'):
        nodelogs.run(kube, opts_for(tmp_path, node="nosuch"), Talk(quiet=True))


def test_proxy_refusal_names_the_permission():
    class Refusing(FakeKube):
        def node_proxy_get(self, node: str, path: str, read_timeout: float | None = None) -> FakeResponse:
            raise api_error(403, json.dumps({"message": 'nodes "vm" is forbidden: User "u" cannot get '
                                             'resource "nodes/proxy" in API group "" at the cluster scope'}))

    with pytest.raises(Forbidden) as e:
        proxy.ProxySource(Refusing({}), "vm").list_dir()
    assert str(e.value) == ('nodes "vm" is forbidden: User "u" cannot get resource "nodes/proxy" in API group "" '
                            "at the cluster scope (--via proxy needs get on nodes/proxy; --via pod reads the "
                            "files from a node pod instead)")


def test_proxy_fetch_skips_files_rotated_away_and_picks_up_new_ones(tmp_path):
    class Rotating(FakeKube):
        listed = 0

        def node_proxy_get(self, node: str, path: str, read_timeout: float | None = None) -> FakeResponse:
            if path.endswith("/c/"):
                self.listed += 1
                if self.listed == 2:  # between the two listings the kubelet compressed 0.log.TS
                    del self.tree["p"]["c"]["0.log.20261127-071950"]
                    self.tree["p"]["c"]["0.log.20261127-071950.gz"] = b"\x1f\x8bgz"
            elif path.endswith("0.log.20261127-071950"):
                raise api_error(404, b"404 page not found\n")
            return super().node_proxy_get(node, path, read_timeout)

    kube = Rotating({"p": {"c": {"0.log": b"live", "0.log.20261127-071950": b"old"}}})
    report = proxy.ProxySource(kube, "vm").fetch(tmp_path, "p", ["c"])
    assert report == ExtractReport(
        (ExtractedFile("p/c/0.log", 4), ExtractedFile("p/c/0.log.20261127-071950.gz", 4)),
        ("p/c",),
        (Skipped("p/c/0.log.20261127-071950", "gone before it could be copied (rotated away)"),),
    )


# ---------------------------------------------------------------------------------------------- node pod


@pytest.fixture(autouse=True)
def _leases_say_leased(monkeypatch):
    """The fakes' lease objects have no stream: as far as take_lease can tell, each says LEASED at once (the
    word itself is tested on real frames below, test_the_lease_is_taken_once_it_says_so...)."""
    monkeypatch.setattr(nodepod, "await_output", lambda _conn, _marker, _timeout: None)


class PodKube(FakeKube):
    """Enough of the API for the node pod's life: create, look at it (its states in turn, the last one for
    good), take the lease (refused as by a real server while the container does not run), delete, confirm."""

    def __init__(self, watch_events: list, delete_error: ApiError | None = None, gone: bool = True) -> None:
        super().__init__({}, make_pod())
        self.watch_events = watch_events
        self.delete_error = delete_error
        self.gone = gone
        self.seen: dict | None = None  # the node pod as last looked at

    def get_pod(self, namespace: str, name: str) -> dict:
        if not name.startswith("debugx-nodelogs-"):
            return super().get_pod(namespace, name)
        self.calls.append(("get_pod", namespace, name))
        event = self.watch_events.pop(0) if len(self.watch_events) > 1 else self.watch_events[0]
        if isinstance(event, BaseException):
            raise event
        self.seen = event[1]
        return event[1]

    def create_pod(self, namespace: str, pod: Mapping[str, Any], dry_run: bool = False) -> dict:
        self.calls.append(("create", namespace, pod["metadata"]["name"], dry_run))
        created = json.loads(json.dumps(pod))
        created["metadata"].update(uid="node-pod-uid", resourceVersion="1")
        created["status"] = {"phase": "Pending"}
        return created

    def watch_pod(self, namespace: str, name: str, rv: str, deadline: float):
        for event in self.watch_events:
            if isinstance(event, BaseException):
                raise event
            yield event

    def delete_pod(self, namespace: str, name: str, grace_seconds: int = 0) -> dict:
        self.calls.append(("delete", namespace, name))
        if self.delete_error:
            raise self.delete_error
        return {}

    def wait_pod_gone(self, namespace: str, name: str, uid: str | None, deadline: float) -> bool:
        self.calls.append(("wait_gone", namespace, name, uid))
        return self.gone

    def open_exec(self, namespace: str, pod: str, container: str, command: list[str], stdin: bool = False) -> Any:
        """Only the lease is expected here: an exec with stdin, held until the pod is deleted."""
        assert (container, command, stdin) == ("debugger", specs.node_pod_lease(), True)
        statuses = ((self.seen or {}).get("status") or {}).get("containerStatuses") or [{}]
        if "running" not in (statuses[0].get("state") or {}):
            raise api_error(500, json.dumps({"message": 'container not found ("debugger")'}))
        self.calls.append(("lease", namespace, pod))
        calls = self.calls

        class Lease:
            def close(self) -> None:
                calls.append(("lease closed", namespace, pod))

        return Lease()


SPEC = nodepod.node_pod_spec("debugx-nodelogs-abcde", "kube-system", "vm", "img", docker=False,
                             profile="baseline", custom=None)


def running_event() -> tuple[str, dict]:
    pod = json.loads(json.dumps(SPEC))
    pod["status"] = {"phase": "Running", "containerStatuses": [{"name": "debugger", "state": {"running": {}}}]}
    return "MODIFIED", pod


def lifecycle(kube: PodKube) -> list[tuple]:
    return [c for c in kube.calls if c[0] in ("create", "lease", "delete", "wait_gone", "lease closed")]


def test_node_pod_session_deletes_and_confirms_after_success():
    kube = PodKube([running_event()])
    said: list[str] = []
    with nodepod.node_pod_session(kube, SPEC, 5, said.append, said.append) as source:
        assert source.where() == "node pod kube-system/debugx-nodelogs-abcde"
    assert lifecycle(kube) == [
        ("create", "kube-system", "debugx-nodelogs-abcde", False),
        ("lease", "kube-system", "debugx-nodelogs-abcde"),
        ("delete", "kube-system", "debugx-nodelogs-abcde"),
        ("wait_gone", "kube-system", "debugx-nodelogs-abcde", "node-pod-uid"),
        ("lease closed", "kube-system", "debugx-nodelogs-abcde"),
    ]
    assert said[-1] == "Deleted node pod kube-system/debugx-nodelogs-abcde"


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("boom"),
        streamrun.StopRequested(signal.SIGINT),
        streamrun.StopRequested(signal.SIGTERM),
    ],
)
def test_node_pod_session_deletes_on_every_way_out(failure):
    kube = PodKube([running_event()])
    with pytest.raises(type(failure)), \
            nodepod.node_pod_session(kube, SPEC, 5, print, print):
        raise failure
    assert [c[0] for c in lifecycle(kube)] == ["create", "lease", "delete", "wait_gone", "lease closed"]


def test_node_pod_that_never_starts_is_deleted_with_one_clear_error():
    stuck = json.loads(json.dumps(SPEC))
    stuck["status"] = {"phase": "Pending", "containerStatuses": [
        {"name": "debugger", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off"}}}]}
    kube = PodKube([("MODIFIED", stuck)])
    with pytest.raises(NotReady) as e, \
            nodepod.node_pod_session(kube, SPEC, 5, print, print):
        pass
    assert str(e.value) == 'node pod debugx-nodelogs-abcde cannot start: image "img": ImagePullBackOff: Back-off'
    assert [c[0] for c in lifecycle(kube)] == ["create", "delete", "wait_gone"]


def test_node_pod_deadline_passes():
    pending = json.loads(json.dumps(SPEC))
    pending["status"] = {"phase": "Pending", "containerStatuses": [
        {"name": "debugger", "state": {"waiting": {"reason": "ContainerCreating"}}}]}
    kube = PodKube([("MODIFIED", pending)])
    with pytest.raises(NotReady) as e, \
            nodepod.node_pod_session(kube, SPEC, 1, print, print):
        pass
    assert str(e.value) == ("node pod kube-system/debugx-nodelogs-abcde did not start on node vm within 1s "
                            "(last state: ContainerCreating); is the node Ready and the image pullable?")


def test_failed_deletion_tells_the_exact_command():
    refused = api_error(403, json.dumps({"message": "pods is forbidden"}))
    kube = PodKube([running_event()], delete_error=refused)
    warned: list[str] = []
    with nodepod.node_pod_session(kube, SPEC, 5, print, warned.append):
        pass
    assert warned == ["could not delete node pod kube-system/debugx-nodelogs-abcde: pods is forbidden; delete it "
                      "with: kubectl delete pod -n kube-system debugx-nodelogs-abcde"]


def test_deletion_not_confirmed_tells_the_exact_command():
    kube = PodKube([running_event()], gone=False)
    warned: list[str] = []
    with nodepod.node_pod_session(kube, SPEC, 5, print, warned.append):
        pass
    assert warned == ["node pod kube-system/debugx-nodelogs-abcde still exists 60s after its deletion; delete it "
                      "with: kubectl delete pod -n kube-system debugx-nodelogs-abcde"]


def test_preflight_pod_security_refusal_names_the_alternatives():
    class Baseline(PodKube):
        def create_pod(self, namespace: str, pod: Mapping[str, Any], dry_run: bool = False) -> dict:
            self.calls.append(("create", namespace, pod["metadata"]["name"], dry_run))
            raise api_error(403, json.dumps({"message": (
                'pods "debugx-nodelogs-abcde" is forbidden: violates PodSecurity "baseline:latest": '
                'hostPath volumes (volume "pod-logs")')}))

    kube = Baseline([])
    with pytest.raises(Forbidden) as e:
        nodepod.preflight(kube, SPEC, "rec", "web")
    assert str(e.value) == (
        'Pod Security in namespace rec refuses the node pod, which mounts host directories (violates PodSecurity '
        '"baseline:latest": hostPath volumes (volume "pod-logs")); nothing was created. Use --pod-namespace with '
        "a namespace whose Pod Security level is privileged (e.g. kube-system), or --via proxy (needs get on "
        "nodes/proxy)")
    assert kube.calls == [("create", "rec", "debugx-nodelogs-abcde", True)]


@pytest.mark.parametrize(
    ("denied", "what"),
    [({("create", "pods", "")}, "create pods"), ({("get", "pods", "exec")}, "get pods/exec"),
     ({("delete", "pods", "")}, "delete pods"),
     ({("create", "pods", ""), ("get", "pods", "exec"), ("create", "pods", "exec"), ("delete", "pods", "")},
      "create and delete pods, get and create pods/exec")],
)
def test_preflight_rbac_refusal_names_every_missing_permission(denied, what):
    kube = PodKube([])
    kube.allowed = dict.fromkeys(denied, False)
    with pytest.raises(Forbidden) as e:
        nodepod.preflight(kube, SPEC, "rec", "web")
    assert str(e.value) == (f"nodelogs --via pod needs {what} in namespace rec, which you may not; nothing was "
                            "created. Use --pod-namespace with a namespace where you may, or --via proxy. "
                            "`kubectl debugx doctor web -n rec --for nodelogs` prints a Role that grants them")
    assert not [c for c in kube.calls if c[0] == "create"]


JOB_POD = "debugx-nodelogs-abcde-x7k2p"


class JobKube(PodKube):
    """The node pod as a Job: created, its pod found by the Job's uid, deleted with the Job."""

    def __init__(self, watch_events: list, pods_after: int = 0, job_dry_run_error: ApiError | None = None) -> None:
        super().__init__(watch_events)
        self.pods_after = pods_after  # how many lists find no pod yet
        self.job_dry_run_error = job_dry_run_error
        self.start_timeout = 5

    def patch_object(self, prefix: str, resource: str, namespace: str, name: str,
                     patch: Mapping[str, Any]) -> dict:
        self.calls.append(("patch " + resource, namespace, name, dict(patch)))
        return {}

    def create_object(self, prefix: str, resource: str, namespace: str, body: Mapping[str, Any],
                      dry_run: bool = False) -> dict:
        self.calls.append(("create " + resource, namespace, body["metadata"]["name"], dry_run))
        # the dry run as the Job is; the real one with its short deadline until the lease (start timeout + 30 s)
        deadline = None if dry_run else self.start_timeout + nodejob.START_MARGIN
        assert (prefix, body) == ("/apis/batch/v1", specs.node_job(SPEC, deadline))
        if dry_run and self.job_dry_run_error:
            raise self.job_dry_run_error
        return {**json.loads(json.dumps(body)), "metadata": {**body["metadata"], "uid": "job-uid"}}

    def list_pods(self, namespace: str | None, label_selector: str | None = None) -> list[dict]:
        self.calls.append(("list pods", namespace, label_selector))
        if self.pods_after:
            self.pods_after -= 1
            return []
        pod = json.loads(json.dumps(SPEC))
        pod["metadata"].update(name=JOB_POD, uid="job-pod-uid", resourceVersion="2")
        pod["status"] = {"phase": "Pending"}
        return [pod]

    def delete_object(self, prefix: str, resource: str, namespace: str, name: str) -> dict:
        self.calls.append(("delete " + resource, namespace, name))
        return {}


def test_preflight_chooses_a_job_when_allowed_after_one_batch_of_reviews_and_both_dry_runs():
    kube = JobKube([])
    route = nodepod.preflight(kube, SPEC, "kube-system", "web")
    assert route == nodepod.Route(True, "Running the node pod as a Job (ttlSecondsAfterFinished 0): Kubernetes "
                                        "deletes it once it ends, even if this run is killed")
    assert kube.calls == [("create", "kube-system", "debugx-nodelogs-abcde", True),
                          ("create jobs", "kube-system", "debugx-nodelogs-abcde", True)]


@pytest.mark.parametrize(
    ("denied", "what"),
    [({("create", "jobs", "")}, "create jobs"),
     ({("list", "pods", ""), ("delete", "jobs", "")}, "list pods, delete jobs")],
)
def test_preflight_without_job_permissions_says_the_node_pod_is_a_plain_pod(denied, what):
    kube = JobKube([])
    kube.allowed = dict.fromkeys(denied, False)
    route = nodepod.preflight(kube, SPEC, "kube-system", "web")
    assert route == nodepod.Route(False, f"Not allowed to {what} in namespace kube-system: the node pod is a plain "
                                         "pod, which stays (finished) until `kubectl debugx gc` if this run is killed")
    assert kube.calls == [("create", "kube-system", "debugx-nodelogs-abcde", True)]  # no Job, not even dry


def test_preflight_falls_back_to_a_plain_pod_when_the_job_is_refused():
    quota = api_error(403, json.dumps({"message": 'jobs.batch "debugx-nodelogs-abcde" is forbidden: exceeded quota'}))
    kube = JobKube([], job_dry_run_error=quota)
    route = nodepod.preflight(kube, SPEC, "kube-system", "web")
    assert route == nodepod.Route(False, 'The API server refuses the node pod\'s Job (jobs.batch '
                                         '"debugx-nodelogs-abcde" is forbidden: exceeded quota): the node pod is a '
                                         "plain pod, which stays (finished) until `kubectl debugx gc` if this run is "
                                         "killed")


def job_running_event() -> tuple[str, dict]:
    kind, pod = running_event()
    pod["metadata"]["name"] = JOB_POD
    return kind, pod


@pytest.mark.parametrize("failure", [None, RuntimeError("boom"), streamrun.StopRequested(signal.SIGINT)])
def test_node_job_session_finds_the_jobs_pod_and_deletes_the_job_on_every_way_out(failure, monkeypatch):
    monkeypatch.setattr(nodejob, "POLL", 0)
    kube = JobKube([job_running_event()], pods_after=2)
    said: list[str] = []
    with contextlib.ExitStack() as stack:
        if failure is not None:
            stack.enter_context(pytest.raises(type(failure)))
        with nodejob.node_job_session(kube, SPEC, 5, said.append, said.append) as source:
            assert source.where() == f"node pod kube-system/{JOB_POD}"
            if failure is not None:
                raise failure
    selector = ("list pods", "kube-system", "controller-uid=job-uid")
    assert [c for c in kube.calls if c[0] != "get_pod"] == [
        ("create jobs", "kube-system", "debugx-nodelogs-abcde", False), selector, selector, selector,
        ("lease", "kube-system", JOB_POD),
        ("patch jobs", "kube-system", "debugx-nodelogs-abcde", {"spec": {"activeDeadlineSeconds": 1860}}),
        selector, ("delete jobs", "kube-system", "debugx-nodelogs-abcde"),
        ("wait_gone", "kube-system", JOB_POD, "job-pod-uid"), ("lease closed", "kube-system", JOB_POD),
    ]
    assert said[0] == "Creating node pod kube-system/debugx-nodelogs-abcde as a Job on node vm (image img)"
    assert said[-1] == f"Deleted node pod kube-system/{JOB_POD} and its Job debugx-nodelogs-abcde"


def test_node_job_that_makes_no_pod_is_deleted_with_one_clear_error(monkeypatch):
    monkeypatch.setattr(nodejob, "POLL", 0)
    kube = JobKube([], pods_after=10**9)
    kube.start_timeout = 0
    said: list[str] = []
    with pytest.raises(NotReady) as e, nodejob.node_job_session(kube, SPEC, 0, said.append, said.append):
        pass
    assert str(e.value) == ("Job kube-system/debugx-nodelogs-abcde made no pod within 0s; see why with: "
                            "kubectl describe job -n kube-system debugx-nodelogs-abcde")
    assert kube.calls[-1] == ("delete jobs", "kube-system", "debugx-nodelogs-abcde")
    assert said[-1] == "Deleted node pod Job kube-system/debugx-nodelogs-abcde"


def test_run_interrupted_before_any_file_leaves_nothing(tmp_path):
    class Interrupting(FakeKube):
        def node_proxy_get(self, node: str, path: str, read_timeout: float | None = None) -> FakeResponse:
            raise streamrun.StopRequested(signal.SIGTERM)

    kube = Interrupting(node_tree(), make_pod())
    with pytest.raises(Interrupted) as e:
        nodelogs.run(kube, opts_for(tmp_path), Talk(quiet=True))
    assert str(e.value) == "stopped by SIGTERM; nothing was written"
    assert e.value.code == ExitCode.TERMINATED
    assert not (tmp_path / "out").exists()


def test_auto_falls_back_to_the_node_pod_when_proxy_is_not_allowed(tmp_path):
    kube = FakeKube(node_tree(), make_pod(), allowed={("get", "nodes", "proxy"): False})
    said: list[str] = []
    talk = Talk()
    talk.say = said.append  # type: ignore[assignment]
    target = nodelogs.target_from("rec", "nginx", make_pod(), None, None)
    assert nodelogs.choose_via(kube, opts_for(tmp_path, via="auto"), target, talk) == "pod"
    assert said == ["Not allowed to get nodes/proxy: reading the files through a node pod"]
    kube.allowed = {}
    assert nodelogs.choose_via(kube, opts_for(tmp_path, via="auto"), target, talk) == "proxy"


def test_decode_report_shape_is_what_the_summary_reads(tmp_path):
    # Every count of crilog's report reaches the summary under its own name, on stderr and in the JSON: a
    # field renamed or reordered in crilog shows up here. Distinct values, so no two can be swapped unseen.
    path = f"vm/{POD_DIR}/nginx/0.log"
    report = DecodeReport(files=(FileReport("0.log", 2048, 17, malformed=(4, 9)),), lines=11, stderr_lines=5,
                          unterminated=3, malformed=2, before_since=7)
    plan = InstancePlan("nginx", Instance(0, None, (path,)), (path,), "nginx_0.txt")
    results = [(ContainerPlan("nginx", (plan,)), [nodelogs.InstanceResult(plan, report, True)])]
    extract = ExtractReport((ExtractedFile(f"{POD_DIR}/nginx/0.log", 2048),), (), ())  # relative to vm/
    said: list[str] = []
    talk = Talk(json_summary=True, command="nodelogs")
    talk.say = said.append  # type: ignore[assignment]
    target = nodelogs.target_from("rec", "nginx", make_pod(), None, None)
    since = datetime(2026, 11, 27, 7, 0, tzinfo=timezone.utc)
    nodelogs.summary(talk, opts_for(tmp_path), target, UID, "proxy", "", extract, results, [], since)
    assert said[1] == ("  nginx restart 0: 1 file, 2.0 KiB, 11 lines (5 stderr, 3 unterminated, 2 malformed, "
                       "7 before --since) -> nginx_0.txt")
    assert said[2] == f"      {path}  2.0 KiB  17 records  (malformed lines: 4, 9)"
    [instance] = talk.summary["containers"][0]["instances"]
    assert {k: instance[k] for k in ("lines", "stderrLines", "unterminatedLines", "malformedLines",
                                     "linesBeforeSince")} == {
        "lines": 11, "stderrLines": 5, "unterminatedLines": 3, "malformedLines": 2, "linesBeforeSince": 7}
    assert instance["files"] == [{"path": path, "size": 2048, "records": 17, "note": "", "error": ""}]


# ---------------------------------------------------------------------------------------------- node pod exec


def ws_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One unmasked server-to-client WebSocket frame (RFC 6455)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


class FakeWs:
    """A socket pair whose far end sends these messages as real frames, then a close frame."""

    def __init__(self, frames: list[bytes], endless: bool = False) -> None:
        import socket
        import threading

        self.sock, self._peer = socket.socketpair()
        data = b"".join(ws_frame(f) for f in frames)
        if not endless:  # else the command never ends, like a stuck tar
            data += ws_frame(b"\x03\xe8", opcode=0x8)

        def send() -> None:
            with contextlib.suppress(OSError):  # the reader gave up (a refused tar member): a cut connection
                self._peer.sendall(data)

        self._sender = threading.Thread(target=send, daemon=True)
        self._sender.start()

    def pong(self, _payload: bytes) -> None:
        pass


class FakeConn:
    protocol = "v5.channel.k8s.io"

    def __init__(self, stdout: bytes = b"", stderr: bytes = b"", status: dict | None = None,
                 chunk: int = 1000, endless: bool = False) -> None:
        frames = [b"\x01"]  # every stream starts with an empty stdout frame (09a-exec-*)
        frames += [b"\x01" + stdout[i:i + chunk] for i in range(0, len(stdout), chunk)]
        if stderr:
            frames.append(b"\x02" + stderr)
        if not endless:
            frames.append(b"\x03" + json.dumps(status or {"metadata": {}, "status": "Success"}).encode())
        self.ws = FakeWs(frames, endless)
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.ws.sock.close()
        self.ws._sender.join(5)
        self.ws._peer.close()


def tar_of(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o640, 1795763990
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


class ScriptedPodSource(nodepod.PodSource):
    """A PodSource whose exec answers come from a table keyed by the command's first word."""

    def __init__(self, answers: dict[str, FakeConn]) -> None:
        super().__init__(UnusedKube(), "kube-system", "debugx-nodelogs-abcde",
                         nodepod.NodePodRecord("kube-system", "debugx-nodelogs-abcde"))
        self.answers = answers
        self.commands: list[list[str]] = []

    def _open(self, command: list[str], tethered: bool = False) -> Any:
        assert tethered == (command[0] == "tar"), "tar runs tethered, the short commands do not"
        self.commands.append(command)
        return self.answers[command[0]]


def test_pod_source_lists_with_ls_and_copies_with_tar(tmp_path):
    big = cri("19:30.1", "stdout", "F", "x" * 50000)
    tree = {f"{POD_DIR}/nginx/0.log": big, f"{POD_DIR}/nginx/0.log.20261127-071930.gz": gzip.compress(big)}
    source = ScriptedPodSource({
        "ls": FakeConn(b"nginx/\nside/\n"),
        "tar": FakeConn(tar_of(tree), stderr=b"tar: 0.log: file changed as we read it\n",
                        status={"status": "Failure", "reason": "NonZeroExitCode",
                                "details": {"causes": [{"reason": "ExitCode", "message": "1"}]}}),
    })
    assert source.list_dir(POD_DIR) == [Entry("nginx", True), Entry("side", True)]
    report = source.fetch(tmp_path, POD_DIR, ["nginx"])
    assert source.commands == [
        ["ls", "-1Ap", f"/host/var/log/pods/{POD_DIR}/"],
        ["tar", "-C", "/host/var/log/pods", "-cf", "-", f"{POD_DIR}/nginx"],
    ]
    assert report == ExtractReport(tuple(ExtractedFile(name, len(data)) for name, data in tree.items()), (), ())
    for name, data in tree.items():
        assert (tmp_path / name).read_bytes() == data
    assert source.notes == ["tar: tar: 0.log: file changed as we read it"]


def test_pod_source_missing_directory_is_none():
    source = ScriptedPodSource({"ls": FakeConn(stderr=b"ls: /host/var/log/pods/x/: No such file or directory\n",
                                               status={"status": "Failure", "reason": "NonZeroExitCode",
                                                       "details": {"causes": [{"reason": "ExitCode",
                                                                               "message": "1"}]}})})
    assert source.list_dir("x") is None


def test_pod_source_image_without_tar(tmp_path):
    source = ScriptedPodSource({"tar": FakeConn(status={
        "status": "Failure", "reason": "InternalError",
        "message": 'Internal error occurred: error executing command in container: failed to exec in container: '
                   'exec: "tar": executable file not found in $PATH'})})
    with pytest.raises(nodepod.RemoteFailed) as e:
        source.fetch(tmp_path, POD_DIR, ["nginx"], whole=True)
    assert str(e.value) == ("the node pod's image has no tar: choose an image with sh, ls and tar with --image")


def test_pod_source_refuses_a_tar_stream_that_leaves_the_tree(tmp_path):
    source = ScriptedPodSource({"tar": FakeConn(tar_of({"../escape": b"x" * 5000}))})
    (tmp_path / "dest").mkdir()
    with pytest.raises(nodepod.logtree.UnsafeMemberError, match="'..' in the path"):
        source.fetch(tmp_path / "dest", POD_DIR, ["nginx"])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["dest"]


def test_pod_source_on_docker_skips_the_symlinks_and_copies_docker_files(tmp_path):
    link = f"/var/lib/docker/containers/{CID1}/{CID1}-json.log"
    docker_line = b'{"log":"hello\\n","stream":"stdout","time":"2026-11-27T07:19:30.1Z"}\n'
    source = ScriptedPodSource({
        "tar": FakeConn(tar_of({}, links={f"{POD_DIR}/nginx/1.log": link})),
        "sh": FakeConn(f"{CID1}/{CID1}-json.log\n{CID1}/{CID1}-json.log.1\n{CID1}/config.v2.json\n".encode()),
    })
    report = source.fetch(tmp_path, POD_DIR, ["nginx"], whole=True, docker=True)
    assert report == ExtractReport((), (), (Skipped(
        f"{POD_DIR}/nginx/1.log", f"symbolic link to {link}, outside the log tree"),),
        ((f"{POD_DIR}/nginx/1.log", link),))
    source.answers["tar"] = FakeConn(tar_of({f"containers/{CID1}/{CID1}-json.log.1": docker_line,
                                             f"containers/{CID1}/{CID1}-json.log": docker_line}))
    report = source.fetch_docker(tmp_path, [CID1, "not-an-id"])
    assert source.commands[-2:] == [
        ["sh", "-c", 'cd /host/var/lib/docker/containers || exit 3; for id; do for f in "$id/$id"-json.log*; do '
                     '[ -f "$f" ] && echo "$f"; done; done; true', "sh", CID1],
        ["tar", "-C", "/host/var/lib/docker", "-cf", "-", f"containers/{CID1}/{CID1}-json.log",
         f"containers/{CID1}/{CID1}-json.log.1"],
    ]
    assert report == ExtractReport(
        (ExtractedFile(f"docker/containers/{CID1}/{CID1}-json.log.1", len(docker_line)),
         ExtractedFile(f"docker/containers/{CID1}/{CID1}-json.log", len(docker_line))),
        (), ())
    assert (tmp_path / "docker" / "containers" / CID1 / f"{CID1}-json.log").read_bytes() == docker_line


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_tar_stream_stops_it_cleanly(tmp_path, sig):
    import os
    import threading

    half = tar_of({f"{POD_DIR}/nginx/0.log": b"x" * 100000})[:60000]
    source = ScriptedPodSource({"tar": FakeConn(half, endless=True)})
    timer = threading.Timer(0.5, os.kill, (os.getpid(), sig))
    timer.start()
    try:
        with pytest.raises(streamrun.StopRequested) as e:
            source.fetch(tmp_path, POD_DIR, ["nginx"])
    finally:
        timer.cancel()
    assert e.value.signum == sig
    assert source.answers["tar"].closed


def test_an_error_after_some_files_says_where_they_are(tmp_path):
    class Cut(FakeKube):
        def node_proxy_get(self, node: str, path: str, read_timeout: float | None = None) -> FakeResponse:
            if path.endswith("/1.log"):
                raise api_error(503, json.dumps({"message": "error trying to reach service: EOF"}))
            return super().node_proxy_get(node, path, read_timeout)

    kube = Cut(node_tree(), make_pod())
    with pytest.raises(nodelogs.DebugxError) as e:
        nodelogs.run(kube, opts_for(tmp_path), Talk(quiet=True))
    assert str(e.value) == f"error trying to reach service: EOF; the 2 files copied so far are in {tmp_path / 'out'}"
    assert e.value.code == ExitCode.NOT_READY


def test_a_pod_the_server_refused_to_create_is_not_deleted():
    """A 409 means a pod of that name exists and is not ours: deleting it would harm someone else."""

    class Refusing(PodKube):
        def create_pod(self, namespace: str, pod: Mapping[str, Any], dry_run: bool = False) -> dict:
            self.calls.append(("create", namespace, pod["metadata"]["name"], dry_run))
            raise api_error(409, json.dumps({"message": 'pods "x" already exists', "reason": "AlreadyExists"}))

    kube = Refusing([running_event()])
    with pytest.raises(DebugxError), \
            nodepod.node_pod_session(kube, SPEC, 5, print, print):
        pass
    assert [c[0] for c in lifecycle(kube)] == ["create"]


def test_node_job_interrupted_while_created_is_deleted_by_name():
    class Interrupted(JobKube):
        def create_object(self, prefix: str, resource: str, namespace: str, body: Mapping[str, Any],
                          dry_run: bool = False) -> dict:
            super().create_object(prefix, resource, namespace, body, dry_run)
            raise streamrun.StopRequested(signal.SIGINT)  # the Job may exist: the answer was not read

    kube = Interrupted([])
    said: list[str] = []
    with pytest.raises(streamrun.StopRequested), nodejob.node_job_session(kube, SPEC, 5, said.append, said.append):
        pass
    assert kube.calls == [("create jobs", "kube-system", "debugx-nodelogs-abcde", False),
                          ("delete jobs", "kube-system", "debugx-nodelogs-abcde")]
    assert said[-1] == "Deleted node pod Job kube-system/debugx-nodelogs-abcde"


# ---------------------------------------------------------------------------------------------- the lease's word

NOT_RUNNING = {"metadata": {}, "status": "Failure", "message": 'container not found ("debugger")',
               "reason": "InternalError", "code": 500}


@pytest.mark.parametrize(("conn", "timeout", "outcome"), [
    # the lease said its word: taken, its stream stays open
    (lambda: FakeConn(stdout=b"leased\n", endless=True), 5, None),
    # v5 upgrades an exec into a container that does not run yet, then ends it at once with a channel-3 error
    # (recordings 25-exec-into-exited-*-v5v4): no lease
    (lambda: FakeConn(status=NOT_RUNNING), 5,
     ExecOutcome(None, 'container not found ("debugger")', "InternalError", cut=False)),
    # nothing said in time: no lease
    (lambda: FakeConn(endless=True), 0.3, ExecOutcome(None, "no 'leased' within 0.3s", cut=True)),
])
def test_the_lease_is_taken_once_it_says_so(conn, timeout, outcome):
    stream = conn()
    try:
        assert await_output(stream, b"leased", timeout) == outcome
    finally:
        stream.close()


def test_a_bounded_short_command_gives_up_on_a_stream_that_never_ends():
    """ephemeral.signal_tool's exec: one that never ends is an outcome that says so, within its bound."""
    stream = FakeConn(stdout=b"said\n", endless=True)
    try:
        assert run_to_end(stream, timeout=0.3) == (b"said\n", b"", ExecOutcome(None, "no end within 0.3s", cut=True))
    finally:
        stream.close()
    ended = FakeConn(stdout=b"done\n")
    try:
        assert run_to_end(ended, timeout=5)[0] == b"done\n" and run_to_end(FakeConn(stdout=b"x"))[0] == b"x"
    finally:
        ended.close()

"""nodelogs, end to end: the built executable against a cluster; the node's files compared through the node
proxy (kubectl get --raw), which works on the test cluster and on a real one alike."""

from __future__ import annotations

import json
import os
import re
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from kubectl_debugx import summary as schema

from .helpers import debugx, node_runtime, start_debugx, wait_for_line, wait_until

pytestmark = pytest.mark.e2e

MANAGED = "app.kubernetes.io/managed-by=kubectl-debugx"
PHASES = 2
LONG_SIZES = (16383, 16384, 40000)  # below, at and well above containerd's 16384-byte split
STDERR_LONG = 20000

# Each start of the container is one instance: it counts its starts in an emptyDir (which survives container
# restarts), writes its lines in phases and waits for the test between phases (so that the test can rotate
# the log), and the first instance exits so that the kubelet starts the second one.
WRITER = r"""
n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n
long() { printf 'i%s p%s long%s ' $n $1 $2; head -c $2 /dev/zero | tr '\0' x; echo; }
phase() {
  i=0
  while [ $i -lt 40 ]; do
    echo "i$n p$1 out $i"
    if [ $((i % 4)) = 0 ]; then echo "i$n p$1 err $i" >&2; fi
    i=$((i+1))
  done
  for size in LONG_SIZES; do long $1 $size; done
  long $1 STDERR_LONG >&2
  echo "i$n p$1 end"
}
k=1
while [ $k -le PHASES ]; do
  phase $k
  while [ ! -e /state/go$n$k ]; do sleep 0.1; done
  k=$((k+1))
done
if [ $n = 1 ]; then exit 3; fi
exec sleep 3600
""".replace("LONG_SIZES", " ".join(map(str, LONG_SIZES))).replace("STDERR_LONG", str(STDERR_LONG)).replace(
    "PHASES", str(PHASES))


def expected_lines(instance: int) -> tuple[list[str], list[str]]:
    """(stdout lines, stderr lines) the writer prints in one instance, in order."""
    out: list[str] = []
    err: list[str] = []
    for phase in range(1, PHASES + 1):
        for i in range(40):
            out.append(f"i{instance} p{phase} out {i}")
            if i % 4 == 0:
                err.append(f"i{instance} p{phase} err {i}")
        out += [f"i{instance} p{phase} long{size} " + "x" * size for size in LONG_SIZES]
        err.append(f"i{instance} p{phase} long{STDERR_LONG} " + "x" * STDERR_LONG)
        out.append(f"i{instance} p{phase} end")
    return out, err


def current_log(e2e: Any, namespace: str, pod: str) -> str:
    return e2e.kubectl("logs", "-n", namespace, pod, "-c", "writer", check=False).stdout


def restart_count(e2e: Any, namespace: str, pod: str) -> int:
    obj = e2e.api().read_namespaced_pod(pod, namespace)
    statuses = obj.status.container_statuses or []
    return statuses[0].restart_count if statuses else 0


def phase_written(e2e: Any, namespace: str, pod: str, instance: int, phase: int) -> bool:
    """Both streams of the phase are in the log: its last stdout line and its last stderr line (the pipes are
    separate, so either may come last)."""
    log = current_log(e2e, namespace, pod)
    return f"i{instance} p{phase} end" in log and f"i{instance} p{phase} long{STDERR_LONG} " in log


def drive_writer(e2e: Any, namespace: str, pod: str) -> None:
    """Let both instances write every phase; on the test cluster rotate the log twice in instance 0 (one
    rotated file gets gzipped) and once in instance 1 (a plain rotated file stays)."""
    rotations = {1: {1, 2}, 2: {1}} if e2e.cluster is not None else {1: set(), 2: set()}
    last_rotation = 0  # time.time() second of the last rotation
    for instance in (1, 2):
        if instance == 2:
            wait_until(lambda: restart_count(e2e, namespace, pod) == 1, "the writer's restart")
        for phase in range(1, PHASES + 1):
            wait_until(lambda i=instance, p=phase: phase_written(e2e, namespace, pod, i, p),
                       f"phase {phase} of instance {instance} in the log")
            if phase in rotations[instance]:
                # Rotated names carry the second (N.log.YYYYMMDD-HHMMSS): two rotations in one second would
                # collide. Usually the second has long passed.
                wait_until(lambda after=last_rotation: int(time.time()) > after, "a new second for the rotated name", 5)
                e2e.cluster.rotate_logs(namespace, pod, "writer")
                last_rotation = int(time.time())
            e2e.kubectl("exec", "-n", namespace, pod, "-c", "writer", "--", "touch", f"/state/go{instance}{phase}")


@pytest.fixture
def writer(e2e, namespace, make_pod) -> tuple[str, str, dict]:
    make_pod(
        namespace, "writer", image=e2e.image, command=["sh", "-c", WRITER],
        containers=[{"name": "writer", "image": e2e.image, "command": ["sh", "-c", WRITER],
                     "volumeMounts": [{"name": "state", "mountPath": "/state"}]}],
        volumes=[{"name": "state", "emptyDir": {}}],
    )
    drive_writer(e2e, namespace, "writer")
    pod = e2e.api().api_client.sanitize_for_serialization(e2e.api().read_namespaced_pod("writer", namespace))
    return namespace, "writer", pod


def node_pods(e2e: Any) -> list[str]:
    out = e2e.kubectl("get", "pods", "-A", "-l", MANAGED, "-o", "name").stdout
    return [line for line in out.splitlines() if line]


def node_raw(e2e: Any, node: str, rel: str) -> bytes:
    """A file or listing as the node serves it through the API server's node proxy."""
    res = e2e.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/logs/pods/{rel}", input=b"")
    return res.stdout


def node_listing(e2e: Any, node: str, rel: str) -> list[str]:
    body = node_raw(e2e, node, rel.rstrip("/") + "/").decode()
    return sorted(re.findall(r'<a href="([^"/]+)">', body))


def decoded(path: Path) -> tuple[list[str], list[str]]:
    """(stdout, stderr) texts of a decoded file, timestamps and markers removed."""
    out: list[str] = []
    err: list[str] = []
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        _, rest = line.split(" ", 1)
        if rest.startswith("[stderr] "):
            err.append(rest[len("[stderr] "):])
        else:
            assert not rest.startswith("["), line
            out.append(rest)
    return out, err


def check_tree_matches_node(e2e: Any, out: Path, node: str, pod_dir: str) -> dict[str, bytes]:
    local = out / node / pod_dir / "writer"
    names = node_listing(e2e, node, f"{pod_dir}/writer")
    assert sorted(p.name for p in local.iterdir()) == names
    copied = {}
    for name in names:
        copied[name] = (local / name).read_bytes()
        assert copied[name] == node_raw(e2e, node, f"{pod_dir}/writer/{name}"), name
    return copied


@pytest.mark.parametrize("via", ["pod", "proxy"])
def test_every_line_of_every_instance_and_rotation_comes_back(e2e, writer, tmp_path: Path, via: str):
    namespace, pod, pod_obj = writer
    node = pod_obj["spec"]["nodeName"]
    pod_dir = f"{namespace}_{pod}_{pod_obj['metadata']['uid']}"
    out = tmp_path / "logs"
    res = debugx(e2e, "nodelogs", pod, "-n", namespace, "--all-containers", "-o", str(out), "--via", via,
                 "--summary", "json", timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    summary = json.loads(res.stdout)
    assert schema.check("nodelogs", summary) == [], summary
    assert (summary["command"], summary["via"], summary["output"]) == ("nodelogs", via, str(out))
    # --all-containers of a one-container pod: `container` names it; every one is in summary["containers"]
    assert (summary["container"], [c["name"] for c in summary["containers"]]) == ("writer", ["writer"])
    assert summary["filesWritten"] == sum(len(files) for _, _, files in os.walk(out / node))

    copied = check_tree_matches_node(e2e, out, node, pod_dir)
    docker = node_runtime(e2e).startswith("docker://")
    stderr = res.stderr.decode()
    if e2e.cluster is not None and not docker:
        assert any(re.fullmatch(r"0\.log\.\d{8}-\d{6}\.gz", n) for n in copied), sorted(copied)
        assert any(re.fullmatch(r"1\.log\.\d{8}-\d{6}", n) for n in copied), sorted(copied)
    assert {"0.log", "1.log"} <= set(copied)
    # Docker: the live files are N.log as the node shows them; Docker's rotated ones (outside /var/log) only
    # through a node pod, beside, as the node keeps them; through the proxy a note names --via pod
    rotated = sorted(p.name for p in (out / node / "docker" / "containers").glob("*/*-json.log.*"))
    rotations = 3 if e2e.cluster is not None and docker else 0
    assert len(rotated) == (rotations if via == "pod" else 0), rotated
    if rotations and via == "proxy":
        assert "its rotated -json.log.N files need --via pod" in stderr, stderr

    for instance in (1, 2):
        text = out / f"writer_{instance - 1}.txt"
        if rotations and via == "proxy":  # what the live file kept: the end of each stream
            got, want = decoded(text), expected_lines(instance)
            assert all(lines == full[len(full) - len(lines):] for lines, full in zip(got, want, strict=True)), text
            continue
        assert decoded(text) == expected_lines(instance), text
    assert "writer restart 0:" in stderr and "writer restart 1:" in stderr
    assert node_pods(e2e) == []


def test_dash_prints_the_decoded_lines_of_every_instance_and_leaves_no_folder(e2e, writer, tmp_path: Path):
    """-o -: every instance's lines in time order on stdout (no folder named `-`, no temporary one left);
    -p is accepted and says why it changes nothing (issue 22 item 8)."""
    namespace, pod, _ = writer
    before = set(Path(tempfile.gettempdir()).glob("debugx-nodelogs-*"))
    res = debugx(e2e, "nodelogs", pod, "-n", namespace, "-o", "-", "-p", timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr.decode()
    lines = res.stdout.decode().splitlines()
    for instance in (1, 2):
        out, _ = expected_lines(instance)
        found = iter(lines)  # each instance's lines, in their order
        assert all(any(line.endswith(" " + want) for line in found) for want in out), instance
    assert lines.index(next(x for x in lines if x.endswith(" i1 p1 end"))) < lines.index(
        next(x for x in lines if x.endswith(" i2 p1 out 0")))
    assert list(tmp_path.iterdir()) == []
    assert set(Path(tempfile.gettempdir()).glob("debugx-nodelogs-*")) == before
    assert "-p/--previous changes nothing here" in res.stderr.decode()


def test_via_proxy_creates_no_pod(e2e, nginx_pod, tmp_path: Path):
    namespace, pod = nginx_pod
    api = e2e.api()
    before = api.list_pod_for_all_namespaces().metadata.resource_version
    res = debugx(e2e, "nodelogs", pod, "-n", namespace, "--via", "proxy", "-o", str(tmp_path / "o"),
                 "--summary", "json")
    assert res.returncode == 0, res.stderr.decode()
    assert json.loads(res.stdout)["nodePod"] is None
    from kubernetes import watch

    added = [event["object"].metadata.name
             for event in watch.Watch().stream(api.list_pod_for_all_namespaces, resource_version=before,
                                               timeout_seconds=2)
             if event["type"] == "ADDED"]
    assert added == []
    assert (tmp_path / "o" / "nginx_0.txt").exists()


def test_bad_input_is_one_line_and_leaves_nothing(e2e, nginx_pod, tmp_path: Path):
    namespace, pod = nginx_pod
    out = tmp_path / "o"
    cases = [
        (["nodelogs", "nosuch", "-n", namespace], 3, 'pods "nosuch" not found'),
        (["nodelogs", pod, "-n", namespace, "-c", "nosuch"], 3, 'container "nosuch" not found in pod'),
        (["nodelogs", pod, "-n", namespace, "--node", "nosuch-node", "--uid", "x"], 3,
         'node "nosuch-node" not found'),
        (["nodelogs", pod, "-n", namespace, "--via", "ssh"], 2, "--via: must be one of"),
    ]
    for args, code, message in cases:
        res = debugx(e2e, *args, "-o", str(out))
        err = res.stderr.decode()
        assert res.returncode == code, err
        assert err.count("\n") == 1 and message in err, err
        assert not out.exists()
    (out / "x").mkdir(parents=True)
    res = debugx(e2e, "nodelogs", pod, "-n", namespace, "-o", str(out))
    assert res.returncode == 8 and "exists and is not empty" in res.stderr.decode()
    assert node_pods(e2e) == []


def test_pod_security_is_checked_before_anything_is_created(e2e, make_namespace, make_pod, tmp_path: Path):
    namespace = make_namespace({"pod-security.kubernetes.io/enforce": "baseline"})
    make_pod(namespace, "nginx")
    res = debugx(e2e, "nodelogs", "nginx", "-n", namespace, "--via", "pod", "-o", str(tmp_path / "o"))
    err = res.stderr.decode()
    assert res.returncode == 4, err
    assert f"Pod Security in namespace {namespace} refuses the node pod" in err and "--pod-namespace" in err
    assert not (tmp_path / "o").exists()
    assert node_pods(e2e) == []
    # Named elsewhere, it works.
    other = make_namespace()
    res = debugx(e2e, "nodelogs", "nginx", "-n", namespace, "--via", "pod", "--pod-namespace", other,
                 "-o", str(tmp_path / "o"))
    assert res.returncode == 0, res.stderr.decode()
    assert node_pods(e2e) == []


def test_node_pod_is_deleted_after_an_error(e2e, nginx_pod, tmp_path: Path):
    namespace, pod = nginx_pod
    res = debugx(e2e, "nodelogs", pod, "-n", namespace, "--via", "pod", "--image", "localhost/nosuch:v1",
                 "-o", str(tmp_path / "o"), timeout=300)
    err = res.stderr.decode()
    assert res.returncode == 5, err
    assert 'cannot start: image "localhost/nosuch:v1"' in err
    assert "Deleted node pod" in err
    assert node_pods(e2e) == []
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_node_pod_is_deleted_after_a_signal(e2e, nginx_pod, tmp_path: Path, sig: int, code: int):
    namespace, pod = nginx_pod
    if e2e.cluster is not None:
        e2e.cluster.set_latency(0.5)  # every call slower: time to signal while the node pod exists
    try:
        proc = start_debugx(e2e, "nodelogs", pod, "-n", namespace, "--via", "pod", "-o", str(tmp_path / "o"))
        wait_for_line(proc, "Creating node pod")
        wait_until(lambda: node_pods(e2e) or proc.poll() is not None, "the node pod")
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if e2e.cluster is not None:
            e2e.cluster.set_latency(0)
    if proc.returncode == 0 and e2e.cluster is None:
        pytest.skip("nodelogs finished before the signal")
    err = stderr.decode()
    assert proc.returncode == code, err
    assert "Deleted node pod" in err
    assert node_pods(e2e) == []


def test_rbac_refusals_are_one_line_and_create_nothing(e2e, nginx_pod, tmp_path: Path):
    if not e2e.limited_context:
        pytest.skip("no limited context (set DEBUGX_E2E_LIMITED_CONTEXT on a real cluster)")
    namespace, pod = nginx_pod
    out = tmp_path / "o"
    cases = [
        ("proxy", "nodes/proxy"),
        # every permission the node pod needs and the user lacks, at once
        ("pod", "nodelogs --via pod needs create and delete pods, get and create pods/exec in namespace"),
        ("auto", "nodelogs --via pod needs create and delete pods, get and create pods/exec in namespace"),
    ]
    for via, message in cases:
        res = debugx(e2e, "nodelogs", pod, "-n", namespace, "--via", via, "-o", str(out),
                     context=e2e.limited_context)
        err = res.stderr.decode()
        assert res.returncode == 4, err
        assert message in err.splitlines()[-1], err
        assert not out.exists()
    assert node_pods(e2e) == []


def test_a_cut_exec_stream_is_one_error_and_the_node_pod_goes(e2e, nginx_pod, tmp_path: Path):
    if e2e.cluster is None:
        pytest.skip("cutting the exec stream needs the test cluster's fault switch")
    namespace, pod = nginx_pod
    e2e.cluster.cut_exec_after_bytes(2000)  # tar sends at least 10 KiB; ls sends less
    try:
        res = debugx(e2e, "nodelogs", pod, "-n", namespace, "--via", "pod", "-o", str(tmp_path / "o"))
    finally:
        e2e.cluster.cut_exec_after_bytes(None)
    err = res.stderr.decode()
    assert res.returncode == 6, err
    last = err.splitlines()[-1]
    assert last.startswith("error: the ") and " while tar was running in the node pod" in last, err
    assert "Deleted node pod" in err
    assert node_pods(e2e) == []

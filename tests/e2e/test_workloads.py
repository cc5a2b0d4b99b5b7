"""Workloads end to end: capture, trace and nodelogs of a real Deployment (created through kubectl, its pods made
by the cluster's controller), a Service and a selector; outcomes checked with tshark and the API."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kubectl_debugx import summary as schema

from .helpers import (
    CURL_RETRY,
    connection_args,
    debugx,
    debugx_containers,
    executable,
    processes,
    read_line,
    start_debugx,
    tshark_fields,
    wait_until,
)

pytestmark = pytest.mark.e2e
REPLICAS = 3


def _manifest(nginx_image: str) -> str:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"terminationGracePeriodSeconds": 5,
                                       "containers": [{"name": "nginx", "image": nginx_image}]}}},
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 80}]}}
    return f"{json.dumps(deployment)}\n---\n{json.dumps(service)}\n"


def web_pods(e2e, namespace: str) -> list[dict]:
    api = e2e.api()
    pods = api.list_namespaced_pod(namespace, label_selector="app=web").items
    return [api.api_client.sanitize_for_serialization(p) for p in pods]


@pytest.fixture
def deployment(e2e, namespace, make_pod):
    """Deployment web (3 replicas, each Running) and Service web, plus a client pod to send requests from.
    Returns (namespace, {pod name: pod IP})."""
    e2e.kubectl("create", "-n", namespace, "-f", "-", input=_manifest(e2e.nginx_image))
    make_pod(namespace, "client", image=e2e.image, command=["sleep", "600"])

    def running() -> dict[str, str] | None:
        pods = [p for p in web_pods(e2e, namespace) if p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp") and p["status"].get("podIP")]
        return {p["metadata"]["name"]: p["status"]["podIP"] for p in pods} if len(pods) == REPLICAS else None

    return namespace, wait_until(running, f"{REPLICAS} Running pods of deployment web")


def request(e2e, namespace: str, ip: str, path: str) -> None:
    """One HTTP request from the client pod to a pod IP (retried until nginx listens)."""
    e2e.kubectl("exec", "-n", namespace, "client", "--", "curl", "-s", "-o", "/dev/null", *CURL_RETRY,
                f"http://{ip}{path}")


def wait_for_lines(proc: subprocess.Popen, needle: str, count: int, timeout: float = 120) -> list[str]:
    """Read stderr until `needle` appeared on `count` lines; returns every line read."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while sum(needle in line for line in lines) < count:
        try:
            line = read_line(proc.stderr, deadline)  # times out even if the process stays silent
        except TimeoutError:
            break
        if line is None:
            break
        lines.append(line)
    assert sum(needle in line for line in lines) >= count, f"{needle!r} not {count} times on stderr: {lines}"
    return lines


def packets_by_interface(path: Path) -> dict[str, list[str]]:
    """HTTP request URIs per pcapng interface name."""
    out: dict[str, list[str]] = {}
    result = subprocess.run(["tshark", "-r", str(path), "-Y", "http.request", "-T", "fields",
                             "-e", "frame.interface_name", "-e", "http.request.uri"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        name, _, uri = line.partition("\t")
        out.setdefault(name, []).append(uri)
    return out


def no_tool_left(e2e, namespace: str, tool: str) -> None:
    for pod in web_pods(e2e, namespace):
        name = pod["metadata"]["name"]
        for ec in debugx_containers(e2e, namespace, name):
            assert tool not in processes(e2e, namespace, name, ec), f"{tool} left in {name}/{ec}"


@pytest.mark.parametrize("target", [["deploy/web"], ["svc/web"], ["-l", "app=web"]])
def test_capture_merges_every_replica_into_one_pcapng(e2e, deployment, tmp_path: Path, target):
    """One pcapng, one interface per pod named NAMESPACE/POD, each request found on the interface of the pod it
    was sent to; Ctrl-C ends with 130, a valid file and no tcpdump left in any pod."""
    namespace, pods = deployment
    out = tmp_path / "web.pcapng"
    proc = start_debugx(e2e, "capture", *target, "-n", namespace, "-o", str(out), "-f", "tcp port 80",
                        "--summary", "json", stdout=subprocess.PIPE)
    wait_for_lines(proc, "listening on", REPLICAS)
    for name, ip in pods.items():
        request(e2e, namespace, ip, f"/to-{name}")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 130, stderr
    seen = packets_by_interface(out)
    assert seen == {f"{namespace}/{name}": [f"/to-{name}"] for name in pods}, seen
    # the Name Resolution Block names the peer too (issue 22): the requests come from the pod `client`
    named = subprocess.run(["tshark", "-r", str(out), "-N", "n", "-Y", "http.request", "-T", "fields", "-e",
                            "ip.src_host", "-e", "ip.dst_host"], capture_output=True, text=True, timeout=60)
    assert sorted(named.stdout.splitlines()) == sorted(f"client\t{name}" for name in pods), named.stdout
    summary = json.loads(stdout)
    assert schema.check("capture", summary) == [], summary
    assert summary["target"] == " ".join(target) if target[0] == "-l" else summary["target"] == target[0]
    assert sorted(p["pod"] for p in summary["pods"]) == sorted(pods)
    assert all(p["error"] is None and p["packetsWritten"] == p["packetsCaptured"] for p in summary["pods"])
    assert summary["packetsWritten"] == len(tshark_fields(str(out), "frame", "frame.number"))
    assert (summary["stoppedBy"], summary["exitCode"]) == ("SIGINT", 130)
    no_tool_left(e2e, namespace, "tcpdump")


def test_a_pod_deleted_mid_capture_ends_alone(e2e, deployment, tmp_path: Path):
    """The deleted pod's interface ends with a line saying why; the others go on; the summary names it; the
    exit code is the partial one (9)."""
    namespace, pods = deployment
    victim, *others = sorted(pods)
    out = tmp_path / "web.pcapng"
    proc = start_debugx(e2e, "capture", "deploy/web", "-n", namespace, "-o", str(out), "-f", "tcp port 80",
                        "--duration", "40s", "--summary", "json", stdout=subprocess.PIPE)
    wait_for_lines(proc, "listening on", REPLICAS)
    e2e.kubectl("delete", "pod", "-n", namespace, victim, "--wait=false")
    wait_for_lines(proc, f"capture in pod {namespace}/{victim} ended", 1)
    for name in others:
        request(e2e, namespace, pods[name], f"/after-{name}")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 9, stderr
    seen = packets_by_interface(out)
    assert {n: u for n, u in seen.items() if u} == {f"{namespace}/{n}": [f"/after-{n}"] for n in others}, seen
    summary = json.loads(stdout)
    assert schema.check("capture", summary) == [], summary
    errors = {p["pod"]: p["error"] for p in summary["pods"]}
    assert errors == {victim: "the pod was deleted", **{n: None for n in others}}, errors
    assert summary["exitCode"] == 9


def test_workload_refusals_are_one_line_and_create_nothing(e2e, deployment, tmp_path: Path):
    namespace, pods = deployment
    cases = [
        (["capture", "deploy/web", "--max-pods", "2", "-o", str(tmp_path / "x.pcapng")], 2,
         f"deploy/web matches {REPLICAS} running pods, more than --max-pods 2"),
        (["capture", "deploy/web", "-o", str(tmp_path / "x.pcap")], 2, "pcap has no interfaces"),
        (["capture", "deploy/nosuch", "-o", str(tmp_path / "x.pcapng")], 3, 'deployments.apps "nosuch" not found'),
        (["capture", "cronjob/web", "-o", str(tmp_path / "x.pcapng")], 2, "cannot target 'cronjob'"),
        (["capture", "-l", "app=nosuch", "-o", str(tmp_path / "x.pcapng")], 3, "no pods match -l app=nosuch"),
    ]
    for args, code, message in cases:
        result = debugx(e2e, *args, "-n", namespace)
        stderr = result.stderr.decode()
        assert result.returncode == code, (args, stderr)
        assert stderr.count("\n") == 1 and message in stderr, (args, stderr)
    assert not list(tmp_path.iterdir())
    for name in pods:
        assert debugx_containers(e2e, namespace, name) == []


def test_trace_shows_accept4_from_every_replica(e2e, deployment):
    """strace of nginx's workers in every pod at once: each line prefixed POD/PID, accept4 from each pod."""
    namespace, pods = deployment
    proc = start_debugx(e2e, "trace", "deploy/web", "-n", namespace, "--process", "nginx: worker",
                        "-e", "trace=accept4", stdout=subprocess.PIPE)
    wait_for_lines(proc, "Ctrl-C to stop", 1)
    wait_for_lines(proc, "attached", REPLICAS)
    for name, ip in pods.items():
        request(e2e, namespace, ip, f"/trace-{name}")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 130, stderr
    lines = stdout.decode().splitlines()
    accepting = {line.split("/", 1)[0] for line in lines if "accept4(" in line}
    assert accepting == set(pods), lines
    # aligned like stern: every prefix padded to the same width
    starts = {len(line) - len(line.split(" ", 1)[1].lstrip()) for line in lines if " " in line}
    assert len(starts) == 1, lines
    no_tool_left(e2e, namespace, "strace")


def _utc(stamp: str) -> datetime:
    """An RFC 3339 CRI timestamp (nanoseconds, any offset) as an aware datetime (microseconds kept)."""
    head, _, rest = stamp.partition(".")
    digits = "".join(c for c in rest if c.isdigit())
    offset = rest[len(digits):] or "Z"
    text = f"{head}.{(digits + '000000')[:6]}{'+00:00' if offset == 'Z' else offset}"
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def test_nodelogs_merge_is_one_time_ordered_file(e2e, deployment, tmp_path: Path):
    """Every pod's files under DIR/POD/..., and merged.log: all pods' lines in timestamp order, each prefixed
    POD/CONTAINER#RESTART, the request sent to each pod on that pod's line."""
    namespace, pods = deployment
    for name, ip in pods.items():
        request(e2e, namespace, ip, f"/merge-{name}")
    out = tmp_path / "logs"

    def logged() -> bool:  # nginx writes its access line once the response is sent: poll the node's files
        result = debugx(e2e, "nodelogs", "deploy/web", "-n", namespace, "--merge", "-o", str(out))
        assert result.returncode == 0, result.stderr.decode()
        text = (out / "merged.log").read_text()
        if all(f"/merge-{name}" in text for name in pods):
            return True
        shutil.rmtree(out)
        return False

    wait_until(logged, "every pod's request in the node's log files")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(pods)
    lines = (out / "merged.log").read_text().splitlines()
    prefixes = {line.split()[0] for line in lines}
    assert prefixes == {f"{name}/nginx#0" for name in pods}, prefixes
    stamps = [_utc(line.split()[1]) for line in lines]
    assert stamps == sorted(stamps)
    for name in pods:
        assert {line.split()[0] for line in lines if f"/merge-{name}" in line} == {f"{name}/nginx#0"}
    starts = {len(line) - len(line.split(None, 1)[1]) for line in lines}
    assert len(starts) == 1, "prefixes are padded to one width"


def test_capture_to_stdout_is_a_pcapng_stream_tshark_reads_from_a_pipe(e2e, deployment):
    """`-o -` with several pods streams pcapng: tshark reads it live from the pipe, every pod's interface."""
    namespace, pods = deployment
    proc = start_debugx(e2e, "capture", "deploy/web", "-n", namespace, "-o", "-", "-f", "tcp port 80",
                        stdout=subprocess.PIPE)
    reader = subprocess.Popen(["tshark", "-r", "-", "-Y", "http.request", "-T", "fields",
                               "-e", "frame.interface_name", "-e", "http.request.uri"],
                              stdin=proc.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()  # tshark holds the pipe now
    wait_for_lines(proc, "listening on", REPLICAS)
    for name, ip in pods.items():
        request(e2e, namespace, ip, f"/pipe-{name}")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=90) == 130
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    seen = sorted(line.split("\t") for line in out.splitlines() if line)
    assert seen == sorted([f"{namespace}/{name}", f"/pipe-{name}"] for name in pods), out


def test_cp_and_doctor_take_a_workload_target_as_its_first_running_pod(e2e, deployment, tmp_path: Path):
    """cp and doctor work on one pod: deploy/web means its first running pod by name, said on stderr."""
    namespace, pods = deployment
    first = sorted(pods)[0]
    r = debugx(e2e, "cp", "deploy/web:/etc/nginx/nginx.conf", str(tmp_path / "nginx.conf"), "-n", namespace,
               "--summary", "json")
    assert r.returncode == 0, r.stderr.decode()
    assert f"Using pod {first} of deploy/web ({REPLICAS} running pods)" in r.stderr.decode()
    summary = json.loads(r.stdout.decode().splitlines()[-1])
    assert (summary["pod"], summary["filesVerified"]) == (first, 1)
    written = e2e.kubectl("exec", "-n", namespace, first, "-c", "nginx", "--", "cat", "/etc/nginx/nginx.conf").stdout
    assert (tmp_path / "nginx.conf").read_text() == written
    r = debugx(e2e, "doctor", "deploy/web", "-n", namespace, "--for", "cp")
    assert r.returncode == 0, r.stderr.decode()
    assert f"Using pod {first} of deploy/web" in r.stderr.decode()


def test_shell_of_a_deployment_runs_in_its_first_running_pod_and_says_which(e2e, deployment):
    """shell takes one pod: a workload's first running pod by name, said on stderr (as cp and doctor)."""
    namespace, pods = deployment
    first = sorted(pods)[0]
    r = subprocess.run([executable(), "shell", *connection_args(e2e), "deploy/web", "-n", namespace, "--",
                        "hostname"], stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert (r.returncode, r.stdout) == (0, f"{first}\n".encode()), r.stderr.decode()  # the pod's UTS namespace
    assert f"Using pod {first} of deploy/web ({REPLICAS} running pods)" in r.stderr.decode(), r.stderr.decode()
    assert debugx_containers(e2e, namespace, first) and not [
        p for p in pods if p != first and debugx_containers(e2e, namespace, p)]

"""capture --follow through a rollout (issue 13): the pods a `kubectl rollout restart` creates join the merged
pcapng as new interfaces, the old pods' interfaces end, and requests sent to each new pod are on its own
interface. The rollout is made by the real kubectl binary, so the test passes unchanged on a real cluster."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from kubectl_debugx import summary as schema

from .helpers import debugx, start_debugx, wait_for_line, wait_until
from .test_workloads import no_tool_left, packets_by_interface, request, wait_for_lines, web_pods

pytestmark = pytest.mark.e2e
REPLICAS = 2


def _running(e2e, namespace: str) -> dict[str, str]:
    return {p["metadata"]["name"]: p["status"]["podIP"] for p in web_pods(e2e, namespace)
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
            and p["status"].get("podIP")}


def _uris_so_far(path: Path, namespace: str) -> dict[str, list[str]]:
    """HTTP request URIs per pod in a pcapng still being written (tshark reads its complete blocks)."""
    if not path.exists():
        return {}
    result = subprocess.run(["tshark", "-r", str(path), "-Y", "http.request", "-T", "fields",
                             "-e", "frame.interface_name", "-e", "http.request.uri"],
                            capture_output=True, text=True, timeout=60)
    out: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        name, _, uri = line.partition("\t")
        out.setdefault(name.removeprefix(f"{namespace}/"), []).append(uri)
    return out


@pytest.fixture
def web2(e2e, namespace, make_pod):
    """Deployment web with 2 replicas (Running) and a client pod; returns (namespace, {pod: IP})."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"terminationGracePeriodSeconds": 5,
                                       "containers": [{"name": "nginx", "image": e2e.nginx_image}]}}},
    }
    e2e.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(deployment))
    make_pod(namespace, "client", image=e2e.image, command=["sleep", "600"])
    pods = wait_until(lambda: (lambda r: r if len(r) == REPLICAS else None)(_running(e2e, namespace)),
                      f"{REPLICAS} Running pods of deployment web")
    return namespace, pods


def test_capture_follow_through_a_rollout(e2e, web2, tmp_path: Path):
    """Old and new pods each have an interface; each new pod's requests are on its own interface; Ctrl-C (the
    user ends a follow) exits 0; the pods that left are no failures; no tcpdump left in any pod."""
    namespace, old = web2
    out = tmp_path / "web.pcapng"
    proc = start_debugx(e2e, "capture", "deploy/web", "--follow", "-n", namespace, "-o", str(out),
                        "-f", "tcp port 80", "--summary", "json", stdout=subprocess.PIPE)
    wait_for_lines(proc, "listening on", REPLICAS)
    for name, ip in old.items():
        request(e2e, namespace, ip, f"/old-{name}")
    # tcpdump hands packets over up to 1 s late, and a pod's deletion kills it at once (recordings/28-*): what it
    # still holds then is lost. So the rollout starts once the old pods' requests are in the file.
    wait_until(lambda: all(f"/old-{n}" in uris for n, uris in _uris_so_far(out, namespace).items() if n in old)
               and set(old) <= set(_uris_so_far(out, namespace)), "the old pods' requests in the file")
    e2e.kubectl("rollout", "restart", "deploy/web", "-n", namespace)

    def rolled() -> dict[str, str] | None:
        pods = web_pods(e2e, namespace)
        new = _running(e2e, namespace)
        return new if (len(new) == REPLICAS and not set(new) & set(old)
                       and not {p["metadata"]["name"] for p in pods} & set(old)) else None

    new = wait_until(rolled, "the rollout: new pods Running, old pods gone", timeout=180)
    lines = wait_for_lines(proc, "listening on", REPLICAS)  # the new pods' tcpdumps (after the old ones')
    sent = {name: [f"/new-{name}-{i}" for i in range(3)] for name in new}
    for name, uris in sent.items():
        for uri in uris:
            request(e2e, namespace, new[name], uri)
    wait_until(lambda: out.stat().st_size > 0, "the pcapng on disk")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    said = "\n".join(lines) + stderr.decode()
    assert proc.returncode == 130, said  # Ctrl-C, as for every run (README exit codes)
    seen = packets_by_interface(out)
    names = set(subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.interface_name"],
                               capture_output=True, text=True, timeout=60, check=True).stdout.split())
    assert {f"{namespace}/{n}" for n in old} <= names | set(seen), (names, seen)
    for name in old:
        assert seen.get(f"{namespace}/{name}") == [f"/old-{name}"], seen
    for name, uris in sent.items():
        assert seen.get(f"{namespace}/{name}") == uris, seen
    for name in old:
        assert f"Pod {namespace}/{name} left" in said, said
    assert "could not confirm" not in said, said  # the pods that left took their tcpdump with them
    summary = json.loads(stdout)
    assert schema.check("capture", summary) == [], summary
    pods = {p["pod"]: p for p in summary["pods"]}
    assert set(pods) == set(old) | set(new), pods
    assert all(p["error"] is None for p in pods.values()), pods
    assert all(pods[n]["joinedAt"] is None and pods[n]["leftAt"] for n in old), pods
    assert all(pods[n]["joinedAt"] and pods[n]["leftAt"] is None for n in new), pods
    assert (summary["stoppedBy"], summary["exitCode"]) == ("SIGINT", 130)
    no_tool_left(e2e, namespace, "tcpdump")


def test_follow_refusals(e2e, web2, tmp_path: Path):
    """--follow of one pod, and --follow into a .pcap: one line, exit 2, nothing created."""
    namespace, pods = web2
    pod = sorted(pods)[0]
    for args, message in [
        (["capture", pod, "--follow", "-o", str(tmp_path / "x.pcapng")], "--follow needs a workload or -l"),
        (["capture", "deploy/web", "--follow", "-o", str(tmp_path / "x.pcap")], "write .pcapng"),
    ]:
        result = debugx(e2e, *args, "-n", namespace)
        stderr = result.stderr.decode()
        assert result.returncode == 2, (args, stderr)
        assert stderr.count("\n") == 1 and message in stderr, (args, stderr)
    assert not list(tmp_path.iterdir())


def wait_for_pod_lines(proc: subprocess.Popen, needle: str, pods: Iterable[str], timeout: float = 120) -> list[str]:
    """Read stderr until every pod has said `needle` on a line of its own (`POD: ...needle...`)."""
    waiting = set(pods)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        lines += wait_for_line(proc, needle, deadline - time.monotonic())
        waiting -= {pod for pod in waiting if lines[-1].startswith(f"{pod}: ")}
    assert not waiting, f"{needle!r} never said by {sorted(waiting)}: {lines}"
    return lines


def test_trace_follow_through_a_rollout(e2e, web2, tmp_path: Path):
    """trace --follow -o DIR: the new pods' nginx workers are traced as they join (DIR/POD.trace each), the old
    pods leave without failing the run; Ctrl-C exits 0 and leaves no strace."""
    namespace, old = web2
    folder = tmp_path / "traces"
    proc = start_debugx(e2e, "trace", "deploy/web", "--follow", "-n", namespace, "--process", "nginx: worker",
                        "-e", "trace=accept4", "-o", str(folder), "--summary", "json", stdout=subprocess.PIPE)
    lines = wait_for_pod_lines(proc, "attached to", old)
    e2e.kubectl("rollout", "restart", "deploy/web", "-n", namespace)
    new = wait_until(lambda: (lambda r: r if len(r) == REPLICAS and not set(r) & set(old)
                              and not {p["metadata"]["name"] for p in web_pods(e2e, namespace)} & set(old)
                              else None)(_running(e2e, namespace)),
                     "the rollout: new pods Running, old pods gone", timeout=180)
    # each new pod's own line: strace attached to all its nginx workers (2, recordings 30-nginx-workers), one
    # "Process N attached" line each; any REPLICAS lines could be the old pods' or one new pod's two
    lines += wait_for_pod_lines(proc, "attached to", new)
    for name, ip in new.items():
        request(e2e, namespace, ip, f"/trace-{name}")

    def accepted() -> bool:
        files = [folder / f"{name}.trace" for name in new]
        return all(f.exists() and "accept4(" in f.read_text() for f in files)

    wait_until(accepted, "accept4 in every new pod's trace")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    said = "\n".join(lines) + stderr.decode()
    assert proc.returncode == 130, said
    summary = json.loads(stdout)
    assert schema.check("trace", summary) == [], summary
    pods = {p["pod"]: p for p in summary["pods"]}
    assert set(pods) == set(old) | set(new), pods
    assert all(p["error"] is None for p in pods.values()), pods
    assert all(pods[n]["joinedAt"] and pods[n]["leftAt"] is None for n in new), pods
    assert all(pods[n]["joinedAt"] is None and pods[n]["leftAt"] for n in old), pods
    assert (summary["stoppedBy"], summary["exitCode"]) == ("SIGINT", 130)
    no_tool_left(e2e, namespace, "strace")


def test_follow_waits_for_pods_and_max_pods_bounds_them_at_once(e2e, web2, tmp_path: Path):
    """--follow of a Deployment scaled to 0 waits for pods (a line says so); scaled to 2 with --max-pods 1,
    one pod joins and the other is refused with a line; the joined pod's requests are on its interface."""
    namespace, _ = web2
    e2e.kubectl("scale", "-n", namespace, "deploy/web", "--replicas=0")
    wait_until(lambda: not web_pods(e2e, namespace), "no pod of deploy/web")
    out = tmp_path / "web.pcapng"
    proc = start_debugx(e2e, "capture", "deploy/web", "--follow", "--max-pods", "1", "-n", namespace,
                        "-o", str(out), "-f", "tcp port 80", "--summary", "json", stdout=subprocess.PIPE)
    lines = wait_for_lines(proc, "waiting for pods to join", 1)
    e2e.kubectl("scale", "-n", namespace, "deploy/web", "--replicas=2")
    lines += wait_for_lines(proc, "listening on", 1)
    pods = wait_until(lambda: (lambda r: r if len(r) == 2 else None)(_running(e2e, namespace)), "2 pods")
    if not any("does not join" in line for line in lines):  # it may have come before the first "listening"
        lines += wait_for_lines(proc, "does not join", 1)
    [joined] = [n for n in pods if any(f"Pod {namespace}/{n} joined" in line for line in lines)]
    request(e2e, namespace, pods[joined], "/joined")
    wait_until(lambda: _uris_so_far(out, namespace).get(joined) == ["/joined"], "the request in the file")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    said = "\n".join(lines) + stderr.decode()
    assert proc.returncode == 143, said  # SIGTERM
    [refused] = [n for n in pods if n != joined]
    assert f"Pod {namespace}/{refused} is running but does not join: --max-pods 1 reached (1 pod at once); it " \
        "joins when one leaves" in said, said
    assert packets_by_interface(out) == {f"{namespace}/{joined}": ["/joined"]}
    summary = json.loads(stdout)
    assert [p["pod"] for p in summary["pods"]] == [joined]
    assert (summary["stoppedBy"], summary["exitCode"]) == ("SIGTERM", 143)

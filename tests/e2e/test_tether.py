"""Nothing left behind when the client dies: a kill -9 of a running capture or trace ends its tool in the pod
within 5 s (the exec's stdin tether, remote/specs.tethered_command), and the traced process runs on.
Checked through kubectl only, so the same tests run on the test cluster and on a real one."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import curl, debugx, debugx_containers, processes, start_debugx, wait_for_line, wait_until
from .test_trace import WORKERS, assert_nothing_left, get, nginx_workers, wait_attached

pytestmark = pytest.mark.e2e
BUDGET = 5.0  # seconds from the kill to no tool in the pod
MANAGED = "app.kubernetes.io/managed-by=kubectl-debugx"


def kill_and_time_until_gone(e2e, proc: subprocess.Popen, namespace: str, pod: str, tool: str) -> float:
    """kill -9 the client, then poll `ps` in its debug container until `tool` is gone; the seconds it took."""
    [ec] = debugx_containers(e2e, namespace, pod)
    assert tool in processes(e2e, namespace, pod, ec)
    killed = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    while True:
        listing = processes(e2e, namespace, pod, ec)
        elapsed = time.monotonic() - killed
        if tool not in listing:
            return elapsed
        assert elapsed < BUDGET, f"{tool} still runs {elapsed:.1f}s after the client's kill -9:\n{listing}"


def test_kill_9_of_capture_ends_tcpdump(e2e, web, tmp_path: Path):
    namespace, pod, traffic = web
    proc = start_debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "web.pcap"))
    wait_for_line(proc, "listening on")
    curl(e2e, namespace, pod, traffic, "/before-the-kill")
    elapsed = kill_and_time_until_gone(e2e, proc, namespace, pod, "tcpdump")
    print(f"gone {elapsed:.2f}s after the kill")
    assert elapsed < BUDGET
    assert get(e2e, namespace, pod, traffic) == "200"  # nginx serves on


def test_kill_9_of_trace_ends_strace_and_the_tracee_runs_on(e2e, web, tmp_path: Path):
    namespace, pod, traffic = web
    workers = nginx_workers(e2e, namespace, pod, traffic)
    proc = start_debugx(e2e, "trace", pod, "-n", namespace, "--process", WORKERS, "-o", str(tmp_path / "t.trace"))
    wait_attached(proc, workers)
    elapsed = kill_and_time_until_gone(e2e, proc, namespace, pod, "strace")
    print(f"gone {elapsed:.2f}s after the kill")
    assert elapsed < BUDGET
    assert nginx_workers(e2e, namespace, pod, traffic) == workers  # detached, not killed
    assert get(e2e, namespace, pod, traffic) == "200"
    assert_nothing_left(e2e, namespace, pod, traffic)


def test_a_capture_that_ends_by_itself_leaves_no_tether_behind(e2e, web, tmp_path: Path):
    """tcpdump -c N ends by itself: the exec ends with it (the tether holds none of its stdout/stderr) and the
    tether's cat goes when the exec's stdin closes."""
    namespace, pod, traffic = web
    proc = start_debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "two.pcap"), "--count", "2",
                        "-f", "tcp port 80")
    wait_for_line(proc, "listening on")
    curl(e2e, namespace, pod, traffic, "/one-request-is-more-than-two-packets")
    sent = time.monotonic()
    assert proc.wait(timeout=30) == 0
    print(f"the client ended {time.monotonic() - sent:.2f}s after the request")
    [ec] = debugx_containers(e2e, namespace, pod)
    assert "tcpdump" not in processes(e2e, namespace, pod, ec)
    # The tether's cat ends once the API server has closed the exec's stdin, a few ms after our exit: poll.
    wait_until(lambda: " cat" not in processes(e2e, namespace, pod, ec), "the tether's cat to end", BUDGET)


def node_pod_phase(e2e, namespace: str) -> dict[str, str]:
    out = e2e.kubectl("get", "pods", "-n", namespace, "-l", MANAGED, "-o",
                      "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{'\\n'}{end}").stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_kill_9_of_nodelogs_ends_the_node_pod_and_gc_deletes_it(e2e, nginx_pod, tmp_path: Path):
    """The node pod's main process ends within 5 s of the client's kill -9 (its lease exec's stdin closes),
    so nothing of ours runs on the node; the finished pod object stays until `gc` deletes it: nobody else
    could (see specs.node_pod_lease)."""
    namespace, pod = nginx_pod
    if e2e.cluster is not None:
        e2e.cluster.set_latency(0.3)  # every call slower: time to kill while the node pod is in use
    try:
        proc = start_debugx(e2e, "nodelogs", pod, "-n", namespace, "--via", "pod", "-o", str(tmp_path / "o"))
        # Said once the node pod runs and its lease is taken (node_pod_session yields after both).
        line = wait_for_line(proc, "Reading /var/log/pods on node")[-1]
        name = line.rsplit("/", 1)[1]  # ... through node pod NS/NAME
        if proc.poll() is not None:
            pytest.skip("nodelogs finished before the kill")
        killed = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if e2e.cluster is not None:
            e2e.cluster.set_latency(0)
    wait_until(lambda: node_pod_phase(e2e, namespace).get(name) in ("Succeeded", "Failed"),
               "the node pod's end", BUDGET)
    print(f"node pod ended {time.monotonic() - killed:.2f}s after the kill")
    res = debugx(e2e, "gc", "-n", namespace)
    assert res.returncode == 0, res.stderr.decode()
    [row] = [line.split() for line in res.stdout.decode().splitlines() if name in line]
    # POD CONTAINER KIND PROCESS STATUS TTL ACTION
    assert (row[:4], row[5:]) == ([name, "-", "node-pod", "-"], ["-", "deleted"]), row
    assert row[4] in ("Succeeded", "Failed"), row
    wait_until(lambda: name not in node_pod_phase(e2e, namespace), "the node pod gone", 60)

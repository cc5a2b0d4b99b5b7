"""Nothing left behind when the client dies: a kill -9 of a running capture or trace ends its tool in the pod
within 5 s (the exec's stdin tether, remote/specs.tethered_command), and the traced process runs on.
Checked through kubectl only, so the same tests run on the test cluster and on a real one."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import (
    curl,
    debugx,
    debugx_containers,
    executable,
    processes,
    start_debugx,
    wait_for_line,
    wait_until,
)
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


def test_no_zombie_of_ours_in_a_target_whose_pid_1_never_reaps(e2e, namespace, make_pod, tmp_path: Path):
    """Our tools run in the target's PID namespace: whatever of ours outlives its parent is left to the target's
    PID 1 to reap, and many a PID 1 never reaps (here `sleep`). 20 runs leave no zombie (the tether's sh once
    stayed as one per run: issue 22)."""
    make_pod(namespace, "noreap", image=e2e.image, command=["sleep", "3600"])
    for i in range(20):
        res = debugx(e2e, "trace", "noreap", "-n", namespace, "--duration", "1s", "-o", str(tmp_path / f"{i}.trace"))
        assert res.returncode == 0, res.stderr.decode()
    [ec] = debugx_containers(e2e, namespace, "noreap")
    table = processes(e2e, namespace, "noreap", ec)
    states = e2e.kubectl("exec", "-n", namespace, "noreap", "-c", ec, "--", "ps", "-eo", "stat,pid,ppid,args").stdout
    assert [line for line in states.splitlines()[1:] if line.lstrip().startswith("Z")] == [], states
    assert "strace" not in table and " cat" not in table, table


def node_pod_phase(e2e, namespace: str) -> dict[str, str]:
    """Our node pods (by our label) and their phases."""
    out = e2e.kubectl("get", "pods", "-n", namespace, "-l", MANAGED, "-o",
                      "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{'\\n'}{end}").stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def our_jobs(e2e, namespace: str) -> list[str]:
    return e2e.kubectl("get", "jobs", "-n", namespace, "-l", MANAGED, "-o", "name").stdout.split()


def kill_9_once_reading(e2e, namespace: str, pod: str, out: Path, connection: list[str] | None = None
                        ) -> tuple[str, float, str]:
    """Start `nodelogs --via pod`, kill -9 it once the node pod runs and its lease is taken; the node pod's
    name, the monotonic time of the kill, and what it said before."""
    if e2e.cluster is not None:
        e2e.cluster.set_latency(0.3)  # every call slower: time to kill while the node pod is in use
    try:
        args = ["nodelogs", pod, "-n", namespace, "--via", "pod", "-o", str(out)]
        if connection is None:
            proc = start_debugx(e2e, *args)
        else:
            proc = subprocess.Popen([executable(), *args, *connection], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
        # Said once the node pod runs and its lease is taken (the sessions yield after both).
        lines = wait_for_line(proc, "Reading /var/log/pods on node")
        name = lines[-1].rsplit("/", 1)[1]  # ... through node pod NS/NAME
        if proc.poll() is not None:
            pytest.skip("nodelogs finished before the kill")
        killed = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if e2e.cluster is not None:
            e2e.cluster.set_latency(0)
    return name, killed, "\n".join(lines)


def test_kill_9_of_nodelogs_leaves_no_node_pod(e2e, nginx_pod, tmp_path: Path):
    """The acceptance of issue 14: no node pod (get pods by our label) 5 s after the client's kill -9. The lease
    ends the node pod's main process; it runs as a Job with ttlSecondsAfterFinished 0, so Kubernetes deletes the
    finished Job and, through the garbage collector, its pod: nobody of ours is alive to do it."""
    namespace, pod = nginx_pod
    name, killed, said = kill_9_once_reading(e2e, namespace, pod, tmp_path / "o")
    assert "Running the node pod as a Job (ttlSecondsAfterFinished 0)" in said, said
    assert name.startswith("debugx-nodelogs-")  # the Job's pod: the Job controller named it NAME-xxxxx
    while node_pod_phase(e2e, namespace):
        elapsed = time.monotonic() - killed
        assert elapsed < BUDGET, f"node pods {node_pod_phase(e2e, namespace)} {elapsed:.1f}s after the kill -9"
    print(f"no node pod {time.monotonic() - killed:.2f}s after the kill")
    wait_until(lambda: not our_jobs(e2e, namespace), "the node pod's Job gone", BUDGET)
    res = debugx(e2e, "gc", "-n", namespace)
    assert (res.returncode, res.stdout) == (0, b""), res.stderr.decode()


NODE_POD_ROLE = [  # what the plain node pod needs (remote/access.py NODE_POD_RUN), and no jobs
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"]},
]


def user_without_jobs(e2e, namespace: str, tmp_path: Path) -> list[str]:
    """Connection flags of a ServiceAccount that may run a node pod but not create jobs (a token in a copy of
    the kubeconfig, so that this runs on a real cluster too)."""
    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "nojobs", "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "nojobs", "namespace": namespace}, "rules": NODE_POD_ROLE},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "nojobs", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "nojobs"},
         "subjects": [{"kind": "ServiceAccount", "name": "nojobs", "namespace": namespace}]},
    ]
    # --validate=false: the test cluster serves no OpenAPI schema (a real server would accept these either way)
    e2e.kubectl("create", "--validate=false", "-f", "-",
                input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    token = e2e.kubectl("create", "token", "nojobs", "-n", namespace).stdout.strip()
    config = tmp_path / "nojobs.kubeconfig"
    shutil.copy(e2e.kubeconfig, config)
    current = e2e.context or e2e.kubectl("config", "current-context").stdout.strip()
    cluster = e2e.kubectl("config", "view", "-o", f"jsonpath={{.contexts[?(@.name==\"{current}\")].context.cluster}}"
                          ).stdout.strip()
    kubectl = ["kubectl", "--kubeconfig", str(config), "config"]
    subprocess.run([*kubectl, "set-credentials", "nojobs", f"--token={token}"], check=True, capture_output=True)
    subprocess.run([*kubectl, "set-context", "nojobs", f"--cluster={cluster}", "--user=nojobs"], check=True,
                   capture_output=True)
    return ["--kubeconfig", str(config), "--context", "nojobs"]


def test_without_create_jobs_the_node_pod_is_a_plain_pod_that_gc_deletes(e2e, nginx_pod, tmp_path: Path):
    """Least privilege: a user who may not create jobs gets the plain node pod, is told so, and after a kill -9
    its main process ends within 5 s (the lease) while the finished pod object stays until `gc` deletes it."""
    namespace, pod = nginx_pod
    connection = user_without_jobs(e2e, namespace, tmp_path)
    doctor = subprocess.run([executable(), "doctor", pod, "-n", namespace, "--for", "nodelogs", *connection],
                            capture_output=True, text=True, timeout=60)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "through a plain node pod" in doctor.stdout and "Not allowed to create, patch and delete jobs" in \
        doctor.stdout
    name, killed, said = kill_9_once_reading(e2e, namespace, pod, tmp_path / "o", connection)
    assert (f"Not allowed to create, patch and delete jobs in namespace {namespace}: the node pod is a plain pod, "
            "which stays (finished) until `kubectl debugx gc` if this run is killed") in said, said
    assert our_jobs(e2e, namespace) == []
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

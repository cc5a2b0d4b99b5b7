"""`gc`, end to end: a tool left running by an earlier run (our wrapper started by a raw `kubectl exec`, as a
run that was never told to stop it) is listed by `gc --dry-run` and stopped by `gc`; a process of the same
name that we did not record, in our container or in a pod debugx did not make, is left alone."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from kubectl_debugx import summary as schema
from kubectl_debugx.remote import specs

from .helpers import debugx, debugx_containers, processes, wait_until

pytestmark = pytest.mark.e2e
TCPDUMP = ["tcpdump", "-i", "lo", "-w", "/dev/null"]


def tcpdump_pids(e2e, namespace: str, pod: str, container: str) -> set[int]:
    return {int(line.split()[0]) for line in processes(e2e, namespace, pod, container).splitlines()
            if line.split()[1:2] == ["tcpdump"]}


def rows(stdout: bytes) -> list[list[str]]:
    lines = stdout.decode().splitlines()
    assert lines[0].split() == ["POD", "CONTAINER", "KIND", "PROCESS", "STATUS", "TTL", "ACTION"], lines
    return [line.split() for line in lines[1:]]


def test_gc_lists_then_stops_a_recorded_tool_and_nothing_else(e2e, web, make_pod, tmp_path: Path):
    namespace, pod, traffic = web
    # A debug container left by an earlier run (it lives until its TTL).
    res = debugx(e2e, "capture", pod, "-n", namespace, "--duration", "1s", "-o", str(tmp_path / "a.pcap"))
    assert res.returncode == 0, res.stderr.decode()
    [ec] = debugx_containers(e2e, namespace, pod)
    # In it: our wrapper started by a raw exec whose client stays (stdin held open), and a tcpdump we did not
    # record. In a pod debugx did not make: a tcpdump and even a record-like file naming it.
    leftover = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(e2e.kubeconfig), *(["--context", e2e.context] if e2e.context else []),
         "exec", "-i", "-n", namespace, pod, "-c", ec, "--",
         *specs.tethered_command("leftover42", "tcpdump", TCPDUMP)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: tcpdump_pids(e2e, namespace, pod, ec), "the leftover tcpdump")
        [recorded] = tcpdump_pids(e2e, namespace, pod, ec)
        e2e.kubectl("exec", "-n", namespace, pod, "-c", ec, "--", "sh", "-c",
                    f"nohup {shlex.join(TCPDUMP)} >/dev/null 2>&1 &")
        unrecorded = wait_until(lambda: tcpdump_pids(e2e, namespace, pod, ec) - {recorded}, "the other tcpdump")
        make_pod(namespace, "decoy", image=e2e.image, command=["sh", "-c", f"exec {shlex.join(TCPDUMP)}"])
        decoy = wait_until(lambda: tcpdump_pids(e2e, namespace, "decoy", "main"), "the decoy's tcpdump")
        e2e.kubectl("exec", "-n", namespace, "decoy", "-c", "main", "--", "sh", "-c",
                    f"echo '{min(decoy)} 1 tcpdump' > /tmp/debugx-decoy1.pid")

        dry = debugx(e2e, "gc", "-n", namespace, "--dry-run")
        assert dry.returncode == 0, dry.stderr.decode()
        table = rows(dry.stdout)
        assert table[0][:5] == [pod, ec, "debug-container", "-", "Running"] and table[0][6:] == ["none", "(ends",
                                                                                                "by", "its", "TTL)"]
        assert table[0][5].endswith("m"), table  # about an hour left, in kubectl's short form
        assert table[1:] == [[pod, ec, "tool", "tcpdump", "(pid", f"{recorded})", "Running", "-", "would", "stop"]]
        assert "ephemeral containers cannot be removed" in dry.stderr.decode()
        assert recorded in tcpdump_pids(e2e, namespace, pod, ec)  # a dry run stops nothing

        res = debugx(e2e, "gc", "-n", namespace, "--summary", "json")
        assert res.returncode == 0, res.stderr.decode()
        summary = json.loads(res.stdout)  # stdout is the JSON alone (the table goes to stderr then)
        assert rows(b"\n".join(line for line in res.stderr.splitlines() if line.startswith(b"POD ")
                                or line.startswith(pod.encode()))), res.stderr
        assert schema.check("gc", summary) == []
        assert [f for f in summary["found"] if f["kind"] == "tool"] == [
            {"namespace": namespace, "pod": pod, "container": ec, "kind": "tool", "status": "Running",
             "action": "stopped", "process": "tcpdump", "pid": recorded, "ttlSeconds": None}]
        assert leftover.wait(timeout=30) is not None  # its exec ended with the tool
        assert tcpdump_pids(e2e, namespace, pod, ec) == unrecorded
        assert tcpdump_pids(e2e, namespace, "decoy", "main") == decoy
        again = debugx(e2e, "gc", "-n", namespace)
        assert [r for r in rows(again.stdout) if r[2] == "tool"] == []
    finally:
        leftover.kill()
        e2e.kubectl("exec", "-n", namespace, pod, "-c", ec, "--", "sh", "-c", "kill $(pidof tcpdump); true",
                    check=False)


def container_state(e2e, namespace: str, pod: str, container: str) -> dict:
    status = json.loads(e2e.kubectl("get", "pod", pod, "-n", namespace, "-o", "json").stdout)["status"]
    return next((s.get("state") or {} for s in status.get("ephemeralContainerStatuses") or []
                 if s["name"] == container), {})


def test_gc_stop_idle_ends_idle_debug_containers_and_nothing_else(e2e, nginx_pod, tmp_path: Path):
    """--stop-idle ends our idle debug container's sleep: it shows Terminated at once instead of at its TTL; the
    target's own processes go on; a closing line says what was done (issue 22 item 5)."""
    namespace, pod = nginx_pod
    res = debugx(e2e, "capture", pod, "-n", namespace, "--duration", "1s", "-o", str(tmp_path / "a.pcap"))
    assert res.returncode == 0, res.stderr.decode()
    [ec] = debugx_containers(e2e, namespace, pod)
    dry = debugx(e2e, "gc", "-n", namespace, "--stop-idle", "--dry-run")
    assert dry.returncode == 0, dry.stderr.decode()
    assert rows(dry.stdout)[0][-2:] == ["would", "end"], dry.stdout
    assert "running" in container_state(e2e, namespace, pod, ec)
    real = debugx(e2e, "gc", "-n", namespace, "--stop-idle")
    assert real.returncode == 0, real.stderr.decode()
    assert rows(real.stdout)[0][-1] == "ended", real.stdout
    assert "Stopped 0 tools, ended 1 idle debug container, deleted 0 node pods and 0 node Jobs" in (
        real.stderr.decode()), real.stderr
    state = wait_until(lambda: container_state(e2e, namespace, pod, ec).get("terminated"), "the container ended")
    assert state["exitCode"] == 143, state  # its sleep ended by SIGTERM
    status = json.loads(e2e.kubectl("get", "pod", pod, "-n", namespace, "-o", "json").stdout)["status"]
    [nginx] = status["containerStatuses"]  # the target goes on
    assert ("running" in nginx["state"], nginx["restartCount"], status["phase"]) == (True, 0, "Running"), status


def test_gc_finds_nothing_and_says_so(e2e, namespace):
    res = debugx(e2e, "gc", "-n", namespace)
    assert res.returncode == 0
    assert res.stdout == b""
    assert res.stderr.decode() == f"No debugx leftovers found in namespace {namespace}.\n"


def test_gc_bad_flags_are_one_line(e2e, namespace):
    res = debugx(e2e, "gc", "-n", namespace, "-A")
    assert res.returncode == 2
    assert res.stderr.decode() == "error: -A and -n exclude each other\n"


def leftover_job(e2e, namespace: str, name: str) -> dict:
    """A Job with our label, as nodelogs' node Job (specs.node_job) left by a run that never deleted it."""
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": namespace, "labels": {specs.MANAGED_BY_LABEL: specs.MANAGED_BY}},
           "spec": {"backoffLimit": 0, "template": {
               "metadata": {"labels": {specs.MANAGED_BY_LABEL: specs.MANAGED_BY}},
               "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "debugger", "image": e2e.image, "command": ["sleep", "600"]}]}}}}
    return json.loads(e2e.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(job)).stdout)


def pods_of(e2e, namespace: str, job: dict) -> list[str]:
    return e2e.kubectl("get", "pods", "-n", namespace, "-l", f"controller-uid={job['metadata']['uid']}",
                       "-o", "name").stdout.split()


def test_gc_deletes_a_leftover_node_job_with_its_pod_and_no_other_job(e2e, namespace):
    ours = leftover_job(e2e, namespace, "debugx-nodelogs-left1")
    other = leftover_job(e2e, namespace, "not-debugx")  # our label, not our name: not ours
    for job in (ours, other):
        wait_until(lambda job=job: pods_of(e2e, namespace, job), "the Job's pod")
    dry = debugx(e2e, "gc", "-n", namespace, "--dry-run")
    assert dry.returncode == 0, dry.stderr.decode()
    # the Job's pod is not a row of its own: it goes with its Job
    assert rows(dry.stdout) == [["debugx-nodelogs-left1", "-", "node-job", "-", "Running", "-", "would", "delete"]]
    assert "would stop 0 tools and delete 0 node pods and 1 node Job (with its pods)" in dry.stderr.decode()

    res = debugx(e2e, "gc", "-n", namespace, "--summary", "json")
    assert res.returncode == 0, res.stderr.decode()
    summary = json.loads(res.stdout.decode().splitlines()[-1])
    assert schema.check("gc", summary) == []
    assert summary["found"] == [
        {"namespace": namespace, "pod": "debugx-nodelogs-left1", "container": "-", "kind": "node-job",
         "status": "Running", "action": "deleted", "process": None, "pid": None, "ttlSeconds": None}]
    wait_until(lambda: not pods_of(e2e, namespace, ours), "the Job's pod deleted with it (Background)", 60)
    assert e2e.kubectl("get", "jobs", "-n", namespace, "-o", "name").stdout.split() == ["job.batch/not-debugx"]
    assert pods_of(e2e, namespace, other)

"""trace, end to end: the built executable against a cluster; outcomes checked through kubectl and the API only,
so the same tests run on the test cluster and on a real one."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kubectl_debugx import summary as schema

from .helpers import (
    CURL_RETRY,
    connection_args,
    debugx,
    debugx_containers,
    ephemeral_names,
    executable,
    processes,
    start_debugx,
    wait_for_line,
    wait_until,
)

pytestmark = pytest.mark.e2e
WORKERS = "nginx: worker"


def nginx_workers(e2e, namespace: str, pod: str, traffic: str) -> int:
    return sum(1 for line in processes(e2e, namespace, pod, traffic).splitlines() if WORKERS in line)


def wait_attached(proc: subprocess.Popen, count: int) -> list[str]:
    """stderr lines up to the `count`-th `strace: Process N attached`."""
    lines: list[str] = []
    for _ in range(count):
        lines += wait_for_line(proc, "attached")
    return lines


def get(e2e, namespace: str, pod: str, container: str, path: str = "/") -> str:
    """A request from inside the pod; returns the HTTP status."""
    return e2e.kubectl("exec", "-n", namespace, pod, "-c", container, "--", "curl", "-s", "-o", "/dev/null",
                       *CURL_RETRY, "-w", "%{http_code}", f"http://127.0.0.1{path}").stdout.strip()


def assert_nothing_left(e2e, namespace: str, pod: str, traffic: str) -> None:
    listing = processes(e2e, namespace, pod, traffic)
    assert "strace" not in listing, listing
    status = e2e.kubectl("exec", "-n", namespace, pod, "-c", traffic, "--", "sh", "-c",
                         "grep -h TracerPid /proc/[0-9]*/status").stdout
    assert set(status.split()) <= {"TracerPid:", "0"}, status


def test_trace_nginx_workers_during_a_request_then_detach(e2e, web, tmp_path: Path):
    namespace, pod, traffic = web
    out = tmp_path / "nginx.trace"
    workers = nginx_workers(e2e, namespace, pod, traffic)
    proc = start_debugx(e2e, "trace", pod, "-n", namespace, "--process", WORKERS, "-s", "256", "-o", str(out),
                        "--summary", "json", stdout=subprocess.PIPE)
    told = wait_attached(proc, workers)
    assert any(f"matches {workers} processes; tracing all of them" in line for line in told), told
    assert get(e2e, namespace, pod, traffic) == "200"
    # strace prints a call when it returns, and its lines travel through the exec stream: the response's
    # send may be in the file only after curl has it. The file is written as lines arrive, so wait for it.
    wait_until(lambda: out.exists() and any(send in out.read_text(errors="replace")
                                            for send in ("sendfile(", "writev(")),
               "the response's send in the trace", 30)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    trace = out.read_text()
    assert "accept4(" in trace
    assert any("recvfrom(" in line and "GET / HTTP/1.1" in line for line in trace.splitlines()), trace
    assert "sendfile(" in trace or "writev(" in trace
    summary = json.loads(stdout)
    assert summary["profile"] == "general"
    assert schema.check("trace", summary) == [], summary
    assert summary["linesWritten"] == len(trace.splitlines())
    assert summary["bytesWritten"] == out.stat().st_size
    assert len(summary["traced"]) == workers
    assert (summary["stoppedBy"], summary["exitCode"], summary["command"]) == ("SIGINT", 130, "trace")
    # The tracees go on: nginx still answers, and nothing of ours is left attached or running.
    assert get(e2e, namespace, pod, traffic) == "200"
    assert_nothing_left(e2e, namespace, pod, traffic)


def test_summary_prints_the_count_table(e2e, web):
    namespace, pod, traffic = web
    workers = nginx_workers(e2e, namespace, pod, traffic)
    proc = start_debugx(e2e, "trace", pod, "-n", namespace, "--process", WORKERS, "--summary-only",
                        stdout=subprocess.PIPE)
    wait_attached(proc, workers)
    for i in range(3):
        assert get(e2e, namespace, pod, traffic, f"/s{i}") == "404"
    # Nothing to wait for: a worker stays stopped at accept4's return until strace has counted it, so every
    # answered request's accept4 is in the table already (the table is printed only at the detach below).
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    table = stdout.decode()
    assert "% time" in table and "syscall" in table, table
    assert any(line.split()[-1] == "accept4" for line in table.splitlines() if line.strip()), table
    assert table.rstrip().splitlines()[-1].split()[-1] == "total"
    assert_nothing_left(e2e, namespace, pod, traffic)


def test_stdout_streams_into_a_pipe_line_by_line(e2e, web):
    namespace, pod, traffic = web
    workers = nginx_workers(e2e, namespace, pod, traffic)
    proc = subprocess.Popen(
        [executable(), "trace", pod, "-n", namespace, "--process", WORKERS, "-o", "-", "-e", "trace=network",
         *connection_args(e2e)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    lines: queue.Queue[bytes] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_attached(proc, workers)
    assert get(e2e, namespace, pod, traffic, "/live") == "404"
    seen: list[bytes] = []
    deadline = time.monotonic() + 30
    # The request shows up while the trace still runs: the stream is live, not written at the end.
    while not any(b"GET /live HTTP/1.1" in line for line in seen) and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            seen.append(lines.get(timeout=1))
    assert proc.poll() is None
    assert any(b"GET /live HTTP/1.1" in line for line in seen), seen
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    reader.join(10)
    assert proc.returncode == 130, stderr
    while not lines.empty():
        seen.append(lines.get())
    # -e trace=network: only network calls, each line whole.
    assert all(line.endswith(b"\n") for line in seen)
    assert not any(b"openat(" in line for line in seen)


def test_default_is_the_main_process_and_the_container_is_reused(e2e, web):
    namespace, pod, _ = web
    first = debugx(e2e, "trace", pod, "-n", namespace, "--duration", "2s")
    assert first.returncode == 0, first.stderr
    assert b"Tracing the main process of container nginx" in first.stderr
    assert b"1 process traced" in first.stderr
    second = debugx(e2e, "trace", pod, "-n", namespace, "--duration", "2s", "--no-follow-forks")
    assert second.returncode == 0, second.stderr
    assert b"Reusing ephemeral container" in second.stderr
    assert len(debugx_containers(e2e, namespace, pod)) == 1


def test_baseline_profile_attach_is_refused_and_explained(e2e, web):
    namespace, pod, traffic = web
    result = debugx(e2e, "trace", pod, "-n", namespace, "--process", WORKERS, "--profile", "baseline")
    assert result.returncode == 6, result.stderr
    last = result.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("error: strace cannot attach to PID "), last
    assert "Operation not permitted" in last and "no CAP_SYS_PTRACE (profile baseline)" in last, last
    assert "--profile general" in last
    assert get(e2e, namespace, pod, traffic) == "200"
    assert_nothing_left(e2e, namespace, pod, traffic)


def test_baseline_namespace_is_refused_before_anything_is_created(e2e, make_namespace, make_pod):
    namespace = make_namespace({"pod-security.kubernetes.io/enforce": "baseline"})
    make_pod(namespace, "web")
    result = debugx(e2e, "trace", "web", "-n", namespace)
    assert result.returncode == 4, result.stderr
    stderr = result.stderr.decode()
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: Pod Security refuses the debug container with profile general"), last
    assert "SYS_PTRACE" in last and "privileged" in last and "nothing was created" in last, last
    assert "Adding ephemeral container" not in stderr
    assert ephemeral_names(e2e, namespace, "web") == []


def test_unknown_process_lists_the_processes_and_creates_nothing(e2e, nginx_pod):
    namespace, pod = nginx_pod
    result = debugx(e2e, "trace", pod, "-n", namespace, "--process", "no-such-daemon")
    assert result.returncode == 3, result.stderr
    stderr = result.stderr.decode()
    assert "nginx: master process" in stderr  # the listing
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: no process of container nginx matches --process 'no-such-daemon'; "
                           "its processes (PID COMMAND): "), last
    assert debugx_containers(e2e, namespace, pod) == []
    missing = debugx(e2e, "trace", pod, "-n", namespace, "--pid", "99999")
    assert missing.returncode == 3, missing.stderr
    assert b"matches PID 99999" in missing.stderr


def test_invalid_expression_is_strace_s_own_message(e2e, nginx_pod):
    namespace, pod = nginx_pod
    result = debugx(e2e, "trace", pod, "-n", namespace, "-e", "trace=no_such_call")
    assert result.returncode == 6, result.stderr
    assert result.stderr.decode().strip().splitlines()[-1] == "error: strace: invalid system call 'no_such_call'"


def test_dry_run_changes_nothing(e2e, nginx_pod):
    namespace, pod = nginx_pod
    result = debugx(e2e, "trace", pod, "-n", namespace, "--process", WORKERS, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert b"SYS_PTRACE" in result.stdout
    assert b"Dry run: profile general; would trace" in result.stderr
    assert ephemeral_names(e2e, namespace, pod) == []


def test_sigterm_detaches_too(e2e, web):
    namespace, pod, traffic = web
    proc = start_debugx(e2e, "trace", pod, "-n", namespace, "--process", WORKERS, "-o", "-", stdout=subprocess.PIPE)
    wait_attached(proc, nginx_workers(e2e, namespace, pod, traffic))
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert b"stopped by SIGTERM" in stderr
    assert get(e2e, namespace, pod, traffic) == "200"
    assert_nothing_left(e2e, namespace, pod, traffic)


def test_trace_ends_when_the_traced_process_exits(e2e, nginx_pod):
    namespace, pod = nginx_pod
    warm = debugx(e2e, "trace", pod, "-n", namespace, "--duration", "1s")  # the debug container, reused below
    assert warm.returncode == 0, warm.stderr
    sleeper = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(e2e.kubeconfig), *(["--context", e2e.context] if e2e.context else []),
         "exec", "-n", namespace, pod, "-c", "nginx", "--", "sleep", "8"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 6
        while True:
            result = debugx(e2e, "trace", pod, "-n", namespace, "--process", "sleep 8", timeout=60)
            if result.returncode != 3 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert result.returncode == 0, result.stderr
        assert b"stopped by the traced processes exiting" in result.stderr
        assert b"+++ exited with 0 +++" in result.stdout
    finally:
        sleeper.wait(timeout=30)


def test_non_root_pod_is_traced_from_a_root_debug_container(e2e, namespace, make_pod):
    make_pod(namespace, "app", image=e2e.image, command=["sh", "-c", "while true; do sleep 0.5; done"],
             securityContext={"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True})
    result = debugx(e2e, "trace", "app", "-n", namespace, "--duration", "3s")
    assert result.returncode == 0, result.stderr
    assert b"Note: the pod runs as non-root, so the debug container runs as root (runAsUser: 0)" in result.stderr
    assert b"1 process traced" in result.stderr
    assert b"wait4(" in result.stdout
    [ec] = debugx_containers(e2e, namespace, "app")
    pod_obj = e2e.api().read_namespaced_pod("app", namespace)
    [spec] = [c for c in e2e.api().api_client.sanitize_for_serialization(pod_obj)["spec"]["ephemeralContainers"]
              if c["name"] == ec]
    assert spec["securityContext"] == {"capabilities": {"add": ["SYS_PTRACE"]}, "runAsUser": 0,
                                       "runAsNonRoot": False}

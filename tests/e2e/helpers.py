"""Running the built kubectl-debugx and checking outcomes through the Kubernetes API only, so the same tests
run against the test cluster and a real one."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def executable() -> str:
    return os.environ.get("DEBUGX_EXECUTABLE") or str(ROOT / "dist" / "kubectl-debugx")


def connection_args(e2e: Any, context: str | None = None) -> list[str]:
    args = ["--kubeconfig", str(e2e.kubeconfig)]
    ctx = context or e2e.context
    if ctx:
        args += ["--context", ctx]
    return args


def debugx(
    e2e: Any, *args: str, context: str | None = None, timeout: float = 120, **kw: Any
) -> subprocess.CompletedProcess:
    """Run `kubectl-debugx ARGS` to completion (stdout as bytes: it may be pcap)."""
    return subprocess.run(
        [executable(), *args, *connection_args(e2e, context)],
        capture_output=True, timeout=timeout, **kw,
    )


def start_debugx(e2e: Any, *args: str, stdout: Any = subprocess.DEVNULL, **kw: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [executable(), *args, *connection_args(e2e)], stdout=stdout, stderr=subprocess.PIPE, **kw,
    )


def read_line(stream: Any, deadline: float) -> str | None:
    """The next line of `stream` (a binary pipe, e.g. a Popen's stderr), without its newline; None at EOF.

    Waits until `deadline` (time.monotonic()) at most, whether or not the process writes anything: a process
    that stays silent (or writes half a line) makes this raise TimeoutError at the deadline, where a plain
    readline() would block for ever."""
    fd = stream.fileno()
    was_blocking = os.get_blocking(fd)
    os.set_blocking(fd, False)  # readline() then returns what is there: a line, part of one, or b"" (nothing)
    try:
        got = b""
        while True:
            chunk = stream.readline() or b""
            got += chunk
            if got.endswith(b"\n"):
                return got[:-1].decode("utf-8", "replace")
            if chunk:
                continue  # part of a line: ask again (the rest may be there already)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no full line within the time allowed (partial: {got!r})")
            readable, _, _ = select.select([fd], [], [], left)
            if readable and not stream.peek(1):  # readable with nothing to read: the writer closed it
                return got.decode("utf-8", "replace") if got else None
    finally:
        os.set_blocking(fd, was_blocking)


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 90) -> list[str]:
    """Read the process's stderr until a line containing `needle` shows up; returns the lines read. Fails after
    `timeout` seconds even if the process writes nothing more, and at once if it closes stderr."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = read_line(proc.stderr, deadline)
        except TimeoutError:
            raise AssertionError(f"{needle!r} never appeared on stderr within {timeout:.0f}s; got: {lines}") from None
        if line is None:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} never appeared on stderr; got: {lines}")


def wait_until(check: Callable[[], Any], what: str, timeout: float = 120, interval: float = 0.2) -> Any:
    """Poll `check` until it returns something true, and return that; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def add_traffic_container(e2e: Any, namespace: str, pod: str, target: str = "nginx") -> str:
    """An ephemeral container of the test's own (kubectl debug), to make traffic from inside the pod."""
    name = "traffic"
    e2e.kubectl("debug", "-n", namespace, pod, f"--image={e2e.image}", f"--target={target}", "-c", name,
                "--profile=baseline", "--", "sleep", "600")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        pod_obj = e2e.api().read_namespaced_pod(pod, namespace)
        for status in pod_obj.status.ephemeral_container_statuses or []:
            if status.name == name and status.state.running:
                return name
        time.sleep(0.3)
    raise AssertionError("traffic container did not start")


# A pod is Running once its process started, before nginx listens (on real nodes too): retry refusals.
CURL_RETRY = ("--retry", "20", "--retry-connrefused", "--retry-delay", "1", "--retry-max-time", "20")


def curl(e2e: Any, namespace: str, pod: str, container: str, path: str) -> None:
    e2e.kubectl("exec", "-n", namespace, pod, "-c", container, "--",
                "curl", "-s", "-o", "/dev/null", *CURL_RETRY, f"http://127.0.0.1{path}")


def processes(e2e: Any, namespace: str, pod: str, container: str) -> str:
    return e2e.kubectl("exec", "-n", namespace, pod, "-c", container, "--", "ps", "-eo", "pid,args").stdout


def tshark_fields(path: str, display_filter: str, field: str) -> list[str]:
    result = subprocess.run(
        ["tshark", "-r", path, "-Y", display_filter, "-T", "fields", "-e", field],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def tshark_count(path: str) -> int:
    result = subprocess.run(["tshark", "-r", path], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return len([line for line in result.stdout.splitlines() if line.strip()])


def ephemeral_names(e2e: Any, namespace: str, pod: str) -> list[str]:
    pod_obj = e2e.api().read_namespaced_pod(pod, namespace)
    return sorted(c.name for c in pod_obj.spec.ephemeral_containers or [])


def newest_debug_container(e2e: Any, namespace: str, pod: str) -> str:
    """The debug container of ours that started last and still runs."""
    status = json.loads(e2e.kubectl("get", "pod", "-n", namespace, pod, "-o", "json").stdout)["status"]
    running = [s for s in status.get("ephemeralContainerStatuses") or []
               if s["name"].startswith("debugx-") and "running" in s["state"]]
    return max(running, key=lambda s: s["state"]["running"]["startedAt"])["name"]


def debugx_containers(e2e: Any, namespace: str, pod: str) -> list[str]:
    return [n for n in ephemeral_names(e2e, namespace, pod) if n.startswith("debugx-")]


def restricted_pod(e2e: Any, make_namespace: Any, make_pod: Any) -> tuple[str, str]:
    """(namespace, pod) of a pod running as uid 1000 in a namespace whose Pod Security level is restricted."""
    namespace = make_namespace({"pod-security.kubernetes.io/enforce": "restricted"})
    restricted_container = {
        "name": "main", "image": e2e.image, "command": ["sleep", "600"],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    pod = make_pod(
        namespace, "locked", image=e2e.image, containers=[restricted_container],
        securityContext={"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
    )["metadata"]["name"]
    return namespace, pod


def node_runtime(e2e: Any) -> str:
    """The node's containerRuntimeVersion: docker://... on a Docker node (cri-dockerd), containerd://... else."""
    return e2e.kubectl("get", "nodes", "-o", "jsonpath={.items[0].status.nodeInfo.containerRuntimeVersion}").stdout

"""The real kubectl against the cluster under test: get, create -f, delete, exec, logs, debug, auth.

These run on any cluster (DEBUGX_E2E_KUBECONFIG) as well as on the local test cluster; the tests of the
test cluster's fault switches skip on a real cluster.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time

import pytest

pytestmark = pytest.mark.e2e


def test_version_and_node(e2e) -> None:
    out = e2e.kubectl("version", "-o", "json").stdout
    assert json.loads(out)["serverVersion"]["gitVersion"].startswith("v1.")
    nodes = json.loads(e2e.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert nodes and nodes[0]["status"]["nodeInfo"]["containerRuntimeVersion"]
    table = e2e.kubectl("get", "nodes", "-o", "wide").stdout
    assert "Ready" in table and "INTERNAL-IP" in table


def test_create_get_logs_delete(e2e, namespace: str) -> None:
    manifest = f"""
apiVersion: v1
kind: Pod
metadata:
  name: hello
  labels: {{app: hello}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {e2e.image}
    command: ["sh", "-c", "echo one; echo two; echo three >&2; sleep 300"]
"""
    e2e.kubectl("-n", namespace, "create", "-f", "-", input=manifest)
    e2e.kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/hello", "--timeout=60s")
    table = e2e.kubectl("-n", namespace, "get", "pods").stdout
    assert "hello" in table and "Running" in table and "1/1" in table
    assert e2e.kubectl("-n", namespace, "get", "pods", "-l", "app=hello", "-o", "name").stdout.strip() == "pod/hello"
    assert e2e.kubectl("-n", namespace, "get", "pods", "-l", "app=other", "-o", "name").stdout.strip() == ""
    sel = e2e.kubectl("-n", namespace, "get", "pods", "--field-selector", "metadata.name=hello", "-o", "name")
    assert sel.stdout.strip() == "pod/hello"

    def logs_complete() -> bool:
        lines = e2e.kubectl("-n", namespace, "logs", "hello").stdout.splitlines()
        return sorted(lines) == ["one", "three", "two"]

    deadline = time.monotonic() + 10
    while not logs_complete() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert logs_complete()
    assert e2e.kubectl("-n", namespace, "logs", "hello", "--tail=1").stdout.strip() in ("two", "three")
    ts = e2e.kubectl("-n", namespace, "logs", "hello", "--timestamps").stdout.splitlines()
    assert all(line.split(" ", 1)[0].endswith("Z") for line in ts)

    again = e2e.kubectl("-n", namespace, "create", "-f", "-", input=manifest, check=False)
    assert again.returncode != 0 and "AlreadyExists" in again.stderr

    e2e.kubectl("-n", namespace, "delete", "pod", "hello", "--grace-period=1", "--timeout=60s")
    gone = e2e.kubectl("-n", namespace, "get", "pod", "hello", check=False)
    assert gone.returncode != 0 and 'pods "hello" not found' in gone.stderr


def test_exec_stdin_and_exit_codes(e2e, nginx_pod) -> None:
    ns, pod = nginx_pod
    res = e2e.kubectl("-n", ns, "exec", pod, "-c", "nginx", "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                      check=False)
    assert res.returncode == 3
    assert res.stdout == "out\n" and "err\n" in res.stderr
    res = e2e.kubectl("-n", ns, "exec", "-i", pod, "-c", "nginx", "--", "cat", input="hello\nworld\n")
    assert res.stdout == "hello\nworld\n"
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value: must come back unmodified
    res = e2e.kubectl("-n", ns, "exec", "-i", pod, "-c", "nginx", "--", "cat", input=data)
    assert res.stdout == data
    res = e2e.kubectl("-n", ns, "exec", pod, "-c", "nginx", "--", "nosuchcommand", check=False)
    assert res.returncode != 0 and "executable file not found" in res.stderr
    res = e2e.kubectl("-n", ns, "exec", pod, "-c", "nosuch", "--", "true", check=False)
    assert res.returncode != 0 and "container nosuch is not valid for pod" in res.stderr


def test_debug_target_sees_processes(e2e, nginx_pod) -> None:
    ns, pod = nginx_pod
    res = e2e.kubectl("-n", ns, "debug", pod, f"--image={e2e.image}", "--target=nginx", "--profile=general",
                      "--", "sleep", "60")
    names_json = e2e.kubectl("-n", ns, "get", "pod", pod, "-o", "jsonpath={.spec.ephemeralContainers[*].name}")
    names = names_json.stdout.split()
    assert len(names) == 1 and names[0] in res.stdout + res.stderr
    debugger = names[0]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = json.loads(e2e.kubectl("-n", ns, "get", "pod", pod, "-o", "json").stdout)["status"]
        state = next((s["state"] for s in st.get("ephemeralContainerStatuses") or [] if s["name"] == debugger), {})
        if "running" in state:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"{debugger} not running: {state}")
    ps = e2e.kubectl("-n", ns, "exec", pod, "-c", debugger, "--", "ps", "ax").stdout
    assert "nginx: master process" in ps and "sleep 60" in ps


def test_auth_can_i_and_limited_user(e2e, nginx_pod) -> None:
    ns, pod = nginx_pod
    assert e2e.kubectl("-n", ns, "auth", "can-i", "create", "pods", "--subresource=exec").stdout.strip() == "yes"
    res = e2e.kubectl_limited("-n", ns, "auth", "can-i", "create", "pods", "--subresource=exec", check=False)
    assert res.stdout.strip() == "no"
    assert "nginx" in e2e.kubectl_limited("-n", ns, "get", "pods").stdout
    res = e2e.kubectl_limited("-n", ns, "exec", pod, "--", "true", check=False)
    assert res.returncode != 0
    # WebSocket exec is authorized as get, the SPDY fallback as create.
    assert 'cannot get resource "pods/exec"' in res.stderr or 'cannot create resource "pods/exec"' in res.stderr


def test_psa_baseline_refuses_privileged(e2e, make_namespace) -> None:
    ns = make_namespace({"pod-security.kubernetes.io/enforce": "baseline"})
    manifest = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "priv"}, "spec": {
        "containers": [{"name": "main", "image": e2e.image, "command": ["sleep", "60"],
                        "securityContext": {"privileged": True}}]}})
    res = e2e.kubectl("-n", ns, "create", "-f", "-", input=manifest, check=False)
    assert res.returncode != 0
    assert 'violates PodSecurity "baseline:latest": privileged (container "main" must not set ' \
           "securityContext.privileged=true)" in res.stderr


def test_namespace_delete_removes_pods(e2e, make_namespace, make_pod) -> None:
    ns = make_namespace()
    make_pod(ns, "web")
    e2e.kubectl("delete", "namespace", ns, "--timeout=90s")
    res = e2e.kubectl("get", "namespace", ns, check=False)
    assert res.returncode != 0 and "NotFound" in res.stderr


def test_get_watch_sees_deletion(e2e, namespace, make_pod) -> None:
    make_pod(namespace, "web")
    proc = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(e2e.kubeconfig), *(["--context", e2e.context] if e2e.context else []),
         "-n", namespace, "get", "pods", "--watch", "--output-watch-events"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        e2e.kubectl("-n", namespace, "delete", "pod", "web", "--wait=false")
        lines: list[str] = []
        t = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(line.startswith("DELETED") for line in lines):
            time.sleep(0.2)
        assert any(line.startswith("DELETED") for line in lines), lines
    finally:
        proc.kill()
        proc.wait()


# -- the local test cluster's fault switches ------------------------------------------------------------


@pytest.fixture
def cluster(e2e):
    if e2e.cluster is None:
        pytest.skip("fault switches exist only on the local test cluster")
    yield e2e.cluster
    e2e.cluster.cut_exec_after_bytes(None)
    e2e.cluster.set_latency(0)
    if not e2e.cluster.apiserver.serving:
        e2e.cluster.start_apiserver()
    e2e.cluster.set_ephemeral_containers_enabled(True)


def test_stop_and_start_apiserver(e2e, cluster, nginx_pod) -> None:
    ns, pod = nginx_pod
    port = cluster.apiserver.port
    cluster.stop_apiserver()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    res = e2e.kubectl("get", "pods", "-n", ns, "--request-timeout=3s", check=False)
    assert res.returncode != 0
    cluster.start_apiserver()
    assert cluster.apiserver.port == port
    assert "Running" in e2e.kubectl("get", "pods", "-n", ns).stdout  # pods survived


def test_cut_exec_after_bytes(e2e, cluster, nginx_pod) -> None:
    ns, pod = nginx_pod
    cluster.cut_exec_after_bytes(100000)
    res = e2e.kubectl("-n", ns, "exec", pod, "-c", "nginx", "--", "head", "-c", "1000000", "/dev/zero",
                      check=False, input=b"")
    assert res.returncode != 0
    assert 0 < len(res.stdout) <= 100000
    cluster.cut_exec_after_bytes(None)
    res = e2e.kubectl("-n", ns, "exec", pod, "-c", "nginx", "--", "head", "-c", "1000000", "/dev/zero", input=b"")
    assert len(res.stdout) == 1000000


def test_latency(e2e, cluster) -> None:
    cluster.set_latency(0.5)
    t0 = time.monotonic()
    e2e.kubectl("get", "--raw", "/version")
    assert time.monotonic() - t0 >= 0.5


def test_ephemeral_containers_disabled(e2e, cluster, nginx_pod) -> None:
    ns, pod = nginx_pod
    cluster.set_ephemeral_containers_enabled(False)
    res = e2e.kubectl("-n", ns, "debug", pod, f"--image={e2e.image}", "--", "sleep", "10", check=False)
    assert res.returncode != 0 and "ephemeral containers are disabled for this cluster" in res.stderr


def test_client_going_away_does_not_kill_the_process(e2e, nginx_pod) -> None:
    """True of real kubelets; the product relies on it (it kills its remote tools itself)."""
    ns, pod = nginx_pod
    argv = ["kubectl", "--kubeconfig", str(e2e.kubeconfig), *(["--context", e2e.context] if e2e.context else []),
            "-n", ns, "exec", pod, "-c", "nginx", "--", "sh", "-c", "echo $$ > /tmp/alive.pid; exec sleep 120"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if e2e.kubectl("-n", ns, "exec", pod, "-c", "nginx", "--", "test", "-s", "/tmp/alive.pid",
                           check=False).returncode == 0:
                break
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    time.sleep(1)
    alive = e2e.kubectl("-n", ns, "exec", pod, "-c", "nginx", "--", "sh", "-c", "kill -0 $(cat /tmp/alive.pid)",
                        check=False)
    assert alive.returncode == 0, "the exec'd process died with its client"
    e2e.kubectl("-n", ns, "exec", pod, "-c", "nginx", "--", "sh", "-c", "kill $(cat /tmp/alive.pid)")


def test_standalone_mode_starts_fast_and_cleans_up(e2e) -> None:
    """`python -m tests.cluster`: kubeconfig path first, usable at once, gone after SIGTERM (< 3 s start)."""
    if e2e.cluster is None:
        pytest.skip("the local test cluster only")
    import signal
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tests.cluster"], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        kubeconfig = Path(proc.stdout.readline().strip())
        nodes = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "name"],
                               capture_output=True, text=True, timeout=30)
        assert nodes.returncode == 0 and nodes.stdout.startswith("node/"), nodes.stderr
        assert time.monotonic() - t0 < 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not kubeconfig.parent.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_exec_binary_stream_is_intact(e2e, nginx_pod) -> None:
    """64 MiB of random bytes through exec: the same digest on both sides (frames forwarded unmodified)."""
    import hashlib

    ns, pod = nginx_pod
    remote = e2e.kubectl("-n", ns, "exec", pod, "-c", "nginx", "--", "sh", "-c",
                         "head -c 67108864 /dev/urandom > /tmp/blob && sha256sum /tmp/blob").stdout.split()[0]
    res = e2e.kubectl("-n", ns, "exec", pod, "-c", "nginx", "--", "cat", "/tmp/blob", input=b"")
    assert len(res.stdout) == 67108864
    assert hashlib.sha256(res.stdout).hexdigest() == remote


def test_psa_warn_label_gives_a_warning(e2e, make_namespace) -> None:
    ns = make_namespace({"pod-security.kubernetes.io/warn": "restricted"})
    manifest = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"}, "spec": {
        "containers": [{"name": "main", "image": e2e.image, "command": ["sleep", "60"]}]}})
    res = e2e.kubectl("-n", ns, "create", "-f", "-", input=manifest)
    assert 'Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false' in res.stderr

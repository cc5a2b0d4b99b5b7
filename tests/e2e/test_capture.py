"""capture, end to end: the built executable against a cluster; outcomes checked with tshark and the API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from kubectl_debugx import summary as schema

from .helpers import (
    connection_args,
    curl,
    debugx,
    debugx_containers,
    ephemeral_names,
    executable,
    processes,
    restricted_pod,
    start_debugx,
    tshark_count,
    tshark_fields,
    wait_for_line,
)

pytestmark = pytest.mark.e2e
LISTENING = "listening on"


def test_capture_holds_the_http_requests_made_in_the_pod(e2e, web, tmp_path: Path):
    namespace, pod, traffic = web
    out = tmp_path / "web.pcap"
    proc = start_debugx(e2e, "capture", pod, "-n", namespace, "-o", str(out), "-f", "tcp port 80",
                        "--duration", "20s", "--summary", "json", stdout=subprocess.PIPE)
    wait_for_line(proc, LISTENING)
    for i in range(3):
        curl(e2e, namespace, pod, traffic, f"/debugx-e2e-{i}")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    uris = tshark_fields(str(out), "http.request", "http.request.uri")
    assert [u for u in uris if u.startswith("/debugx-e2e-")] == [f"/debugx-e2e-{i}" for i in range(3)]
    summary = json.loads(stdout)
    assert schema.check("capture", summary) == [], summary
    assert (summary["command"], summary["namespace"], summary["pod"]) == ("capture", namespace, pod)
    assert summary["output"] == str(out)
    assert summary["packetsWritten"] == tshark_count(str(out)) == summary["packetsCaptured"]
    assert summary["bytesWritten"] == out.stat().st_size
    assert (summary["profile"], summary["stoppedBy"], summary["exitCode"]) == ("netadmin", "SIGINT", 130)
    assert summary["container"] and "error" not in summary
    ec = summary["debugContainer"]
    assert "tcpdump" not in processes(e2e, namespace, pod, ec)


def test_count_stops_the_capture(e2e, web, tmp_path: Path):
    namespace, pod, traffic = web
    out = tmp_path / "count.pcap"
    proc = start_debugx(e2e, "capture", pod, "-n", namespace, "-o", str(out), "--count", "4",
                        "-f", "tcp port 80")
    wait_for_line(proc, LISTENING)
    for i in range(4):
        curl(e2e, namespace, pod, traffic, f"/c{i}")
    assert proc.wait(timeout=60) == 0
    assert tshark_count(str(out)) == 4


def test_duration_stops_the_capture_and_reuses_the_debug_container(e2e, web, tmp_path: Path):
    namespace, pod, _ = web
    first = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "a.pcap"), "--duration", "2s")
    assert first.returncode == 0, first.stderr
    second = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "b.pcap"), "--duration", "2s")
    assert second.returncode == 0, second.stderr
    assert b"Reusing ephemeral container" in second.stderr
    assert len(debugx_containers(e2e, namespace, pod)) == 1
    for name in ("a.pcap", "b.pcap"):
        assert (tmp_path / name).stat().st_size >= 24
        tshark_count(str(tmp_path / name))  # fails unless tshark reads the file cleanly


def test_max_size_stops_before_the_limit(e2e, web, tmp_path: Path):
    namespace, pod, traffic = web
    out = tmp_path / "max.pcap"
    proc = start_debugx(e2e, "capture", pod, "-n", namespace, "-o", str(out), "--max-size", "3KB",
                        "-f", "tcp port 80")
    wait_for_line(proc, LISTENING)
    for i in range(10):
        curl(e2e, namespace, pod, traffic, f"/m{i}")
        if proc.poll() is not None:
            break
    assert proc.wait(timeout=60) == 0
    assert 24 < out.stat().st_size <= 3000
    assert tshark_count(str(out)) > 0


def test_stdout_pipes_into_tshark(e2e, web):
    namespace, pod, traffic = web
    capture = subprocess.Popen(
        [executable(), "capture", pod, "-n", namespace, "-o", "-", "--count", "3", "-f", "tcp port 80",
         *connection_args(e2e)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    tshark = subprocess.Popen(["tshark", "-r", "-"], stdin=capture.stdout, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert capture.stdout is not None
    capture.stdout.close()
    wait_for_line(capture, LISTENING)
    for i in range(3):
        curl(e2e, namespace, pod, traffic, f"/p{i}")
    assert capture.wait(timeout=60) == 0
    out, err = tshark.communicate(timeout=60)
    assert tshark.returncode == 0, err
    assert len(out.splitlines()) == 3


def test_cut_stream_leaves_a_valid_partial_pcap(e2e, web, tmp_path: Path):
    if e2e.cluster is None:
        pytest.skip("cutting an exec stream needs the test cluster's fault switch")
    namespace, pod, traffic = web
    out = tmp_path / "cut.pcap"
    e2e.cluster.cut_exec_after_bytes(3000)
    try:
        proc = start_debugx(e2e, "capture", pod, "-n", namespace, "-o", str(out), "-f", "tcp port 80")
        wait_for_line(proc, LISTENING)
        for i in range(20):
            curl(e2e, namespace, pod, traffic, f"/cut{i}")
            if proc.poll() is not None:
                break
        stderr = proc.communicate(timeout=60)[1].decode()
    finally:
        e2e.cluster.cut_exec_after_bytes(None)
    assert proc.returncode == 6, stderr
    assert "cut" in stderr.splitlines()[-1]
    assert 24 < out.stat().st_size <= 3000
    assert tshark_count(str(out)) > 0


def test_baseline_namespace_uses_the_baseline_profile(e2e, make_namespace, make_pod, tmp_path: Path):
    namespace = make_namespace({"pod-security.kubernetes.io/enforce": "baseline"})
    pod = make_pod(namespace, "web")["metadata"]["name"]
    result = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "b.pcap"), "--duration", "2s")
    assert result.returncode == 0, result.stderr
    assert b"Using profile baseline" in result.stderr
    [ec] = debugx_containers(e2e, namespace, pod)
    pod_obj = e2e.api().read_namespaced_pod(pod, namespace)
    assert [c.security_context for c in pod_obj.spec.ephemeral_containers if c.name == ec] == [None]


def test_restricted_namespace_is_refused_before_anything_is_created(e2e, make_namespace, make_pod, tmp_path):
    namespace, pod = restricted_pod(e2e, make_namespace, make_pod)
    out = tmp_path / "r.pcap"
    result = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(out))
    stderr = result.stderr.decode()
    assert result.returncode == 4, stderr
    assert stderr.count("\n") == 1 and "Pod Security" in stderr and "nothing was created" in stderr
    assert ephemeral_names(e2e, namespace, pod) == []
    assert not out.exists()


def test_user_without_ephemeral_container_patch_gets_a_clear_message(e2e, nginx_pod, tmp_path):
    if not e2e.limited_context:
        pytest.skip("no limited context configured (DEBUGX_E2E_LIMITED_CONTEXT)")
    namespace, pod = nginx_pod
    result = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "x.pcap"),
                    context=e2e.limited_context)
    stderr = result.stderr.decode()
    assert result.returncode == 4, stderr
    assert 'cannot patch resource "pods/ephemeralcontainers"' in stderr
    assert ephemeral_names(e2e, namespace, pod) == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["capture", "nosuchpod"], 3, 'pods "nosuchpod" not found'),
        (["capture", "{pod}", "-c", "nosuch"], 3, 'container "nosuch" not found in pod'),
        (["capture", "{pod}", "--duration", "ten"], 2, "--duration: invalid duration"),
        (["capture", "{pod}", "--max-size", "lots"], 2, "--max-size: invalid size"),
        (["capture", "{pod}", "--custom", "/nonexistent.yaml"], 2, "--custom: cannot read"),
        (["capture", "cronjob/{pod}"], 2, "cannot target 'cronjob'"),
        (["capture", "{pod}", "--profile", "root"], 2, "--profile: unknown profile"),
    ],
)
def test_bad_input_one_line_and_exit_code(e2e, nginx_pod, tmp_path, args, code, message):
    namespace, pod = nginx_pod
    before = ephemeral_names(e2e, namespace, pod)
    argv = [a.format(pod=pod) for a in args] + ["-n", namespace, "-o", str(tmp_path / "x.pcap")]
    result = debugx(e2e, *argv)
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert message in stderr and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    assert ephemeral_names(e2e, namespace, pod) == before
    assert not (tmp_path / "x.pcap").exists()


def test_existing_output_is_kept(e2e, nginx_pod, tmp_path):
    namespace, pod = nginx_pod
    out = tmp_path / "keep.pcap"
    out.write_bytes(b"precious")
    result = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(out))
    assert result.returncode == 8
    assert b"already exists" in result.stderr
    assert out.read_bytes() == b"precious"
    result = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "missing-dir" / "x.pcap"))
    assert (result.returncode, b"does not exist" in result.stderr) == (8, True)


def test_invalid_filter_reports_tcpdump_message(e2e, nginx_pod, tmp_path):
    namespace, pod = nginx_pod
    out = tmp_path / "f.pcap"
    result = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(out), "-f", "tcp port eighty(")
    stderr = result.stderr.decode()
    assert result.returncode == 6, stderr
    assert stderr.splitlines()[-1] == "error: tcpdump: unknown port 'eighty'"
    assert not out.exists()


def test_image_that_cannot_be_pulled(e2e, nginx_pod, tmp_path):
    namespace, pod = nginx_pod
    result = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "i.pcap"),
                    "--image", "localhost/nosuch:v1", timeout=200)
    stderr = result.stderr.decode()
    assert result.returncode == 5, stderr
    assert 'image "localhost/nosuch:v1"' in stderr and ("ErrImagePull" in stderr or "BackOff" in stderr)


def test_pod_not_running(e2e, namespace, tmp_path):
    e2e.kubectl("run", "pending", "-n", namespace, "--image=localhost/nosuch:v1", "--restart=Never")
    result = debugx(e2e, "capture", "pending", "-n", namespace, "-o", str(tmp_path / "p.pcap"))
    assert result.returncode == 5, result.stderr
    assert b'pod "pending" is not running' in result.stderr


def test_dry_run_prints_the_container_and_changes_nothing(e2e, nginx_pod):
    namespace, pod = nginx_pod
    result = debugx(e2e, "capture", pod, "-n", namespace, "--dry-run", "--image", "img:1")
    assert result.returncode == 0, result.stderr
    import yaml

    container = yaml.safe_load(result.stdout)
    assert container["image"] == "img:1"
    assert container["command"] == ["sleep", "3600"]
    assert container["targetContainerName"] == "nginx"
    assert ephemeral_names(e2e, namespace, pod) == []


def test_api_server_unreachable(tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n"
        "contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"
        "users:\n- name: u\n  user: {token: secret-token-value}\n"
    )
    result = subprocess.run([executable(), "capture", "web", "--kubeconfig", str(kubeconfig), "-o",
                             str(tmp_path / "u.pcap")], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "KUBECONFIG": ""})
    assert result.returncode == 7, result.stderr
    assert result.stderr.startswith("error: cannot reach the API server at https://127.0.0.1:1")
    assert "secret-token-value" not in result.stderr


def test_sigterm_stops_cleanly_with_143(e2e, web, tmp_path: Path):
    namespace, pod, traffic = web
    out = tmp_path / "term.pcap"
    proc = start_debugx(e2e, "capture", pod, "-n", namespace, "-o", str(out), "-f", "tcp port 80",
                        "--summary", "json", stdout=subprocess.PIPE)
    wait_for_line(proc, LISTENING)
    curl(e2e, namespace, pod, traffic, "/term")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert tshark_fields(str(out), "http.request", "http.request.uri") == ["/term"]
    assert "tcpdump" not in processes(e2e, namespace, pod, json.loads(stdout)["debugContainer"])


def test_cluster_without_ephemeral_containers(e2e, nginx_pod, tmp_path):
    if e2e.cluster is None:
        pytest.skip("switching ephemeral containers off needs the test cluster")
    namespace, pod = nginx_pod
    e2e.cluster.set_ephemeral_containers_enabled(False)
    try:
        result = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "x.pcap"))
    finally:
        e2e.cluster.set_ephemeral_containers_enabled(True)
    stderr = result.stderr.decode()
    assert result.returncode == 5, stderr
    assert stderr == "error: ephemeral containers are disabled for this cluster (the API server has no " \
                     "pods/ephemeralcontainers)\n"
    assert not (tmp_path / "x.pcap").exists()


def test_non_root_pod_is_captured_from_a_root_debug_container(e2e, namespace, make_pod, tmp_path):
    """NET_RAW is not effective for a non-root user: the debug container must run as root, and say so."""
    make_pod(namespace, "app", image=e2e.image,
             command=["sh", "-c", "while true; do curl -s -o /dev/null http://127.0.0.1:1/ping; sleep 0.2; done"],
             securityContext={"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True})
    out = tmp_path / "nonroot.pcap"
    result = debugx(e2e, "capture", "app", "-n", namespace, "-o", str(out), "-i", "lo", "--count", "2",
                    "-f", "tcp port 1")
    assert result.returncode == 0, result.stderr
    assert b"Note: the pod runs as non-root, so the debug container runs as root (runAsUser: 0)" in result.stderr
    assert tshark_count(str(out)) == 2
    [ec] = debugx_containers(e2e, namespace, "app")
    pod_obj = e2e.api().read_namespaced_pod("app", namespace)
    [sc] = [c.security_context for c in pod_obj.spec.ephemeral_containers if c.name == ec]
    assert (sc.run_as_user, sc.run_as_non_root, sc.capabilities.add) == (0, False, ["NET_ADMIN", "NET_RAW"])


def test_custom_partial_container_replaces_the_profile_capabilities(e2e, web, tmp_path: Path):
    namespace, pod, _ = web
    custom = tmp_path / "custom.yaml"
    custom.write_text("securityContext:\n  capabilities:\n    add: [NET_RAW]\nenv:\n- {name: DEBUGX_E2E, value: '1'}\n")
    result = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "c.pcap"), "--profile", "netadmin",
                    "--custom", str(custom), "--duration", "2s")
    assert result.returncode == 0, result.stderr
    [ec] = debugx_containers(e2e, namespace, pod)
    pod_obj = e2e.api().read_namespaced_pod(pod, namespace)
    [container] = [c for c in pod_obj.spec.ephemeral_containers if c.name == ec]
    assert container.security_context.capabilities.add == ["NET_RAW"]
    assert [(v.name, v.value) for v in container.env] == [("DEBUGX_E2E", "1")]
    assert (tmp_path / "c.pcap").stat().st_size >= 24
    tshark_count(str(tmp_path / "c.pcap"))  # fails unless tshark reads the file cleanly

"""doctor, all missing permissions at once, and saying what a run leaves in the cluster (issue 14, items 3-4)."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
import yaml

from kubectl_debugx import summary as schema

from .helpers import (
    debugx,
    debugx_containers,
    ephemeral_names,
    restricted_pod,
    start_debugx,
    wait_for_line,
    wait_until,
)

EPHEMERAL_RUN = {"get pods", "patch pods/ephemeralcontainers", "get pods/exec", "create pods/exec"}
NODE_POD_RUN = {"get pods", "create pods", "get pods/exec", "create pods/exec", "delete pods"}
NODE_JOB_EXTRA = {"list pods", "create jobs", "patch jobs", "delete jobs"}  # the node pod as a Job: nothing left


def pod_names(e2e, namespace: str) -> list[str]:
    return sorted(p.metadata.name for p in e2e.api().list_namespaced_pod(namespace).items)


def rows(stdout: str) -> dict[str, tuple[str, str]]:
    """The doctor table: CHECK -> (RESULT, DETAIL), columns three spaces apart."""
    out = {}
    for line in stdout.split("\n\n", 1)[0].splitlines()[1:]:
        check, result, *detail = re.split(r" {3,}", line, maxsplit=2)
        out[check] = (result, "".join(detail))
    return out


def test_doctor_on_a_limited_user_lists_every_missing_permission_and_creates_nothing(e2e, nginx_pod):
    if not e2e.limited_context:
        pytest.skip("no limited context (set DEBUGX_E2E_LIMITED_CONTEXT on a real cluster)")
    namespace, pod = nginx_pod
    before = pod_names(e2e, namespace)
    result = debugx(e2e, "doctor", pod, "-n", namespace, "--summary", "json", context=e2e.limited_context)
    assert result.returncode == 4, result.stderr
    summary = json.loads(result.stdout)
    assert schema.check("doctor", summary) == []
    missing = set(summary["missingPermissions"])
    # The limited user may get, list and watch pods only: everything else capture, trace, cp and nodelogs
    # (through a node pod run as a Job: the least privilege; nodes/proxy is cluster-wide) need, at once.
    assert missing == (EPHEMERAL_RUN | NODE_POD_RUN | NODE_JOB_EXTRA) - {"get pods", "list pods"}
    assert [c["canRun"] for c in summary["commands"]] == [False] * 5
    assert {c["command"] for c in summary["commands"]} == {"capture", "trace", "nodelogs", "cp", "shell"}
    role, = [o for o in yaml.safe_load_all(summary["role"]) if o]
    granted = {f"{verb} {resource}" for rule in role["rules"] for resource in rule["resources"]
               for verb in rule["verbs"]}
    assert (role["kind"], role["metadata"]["namespace"], granted) == ("Role", namespace, missing)
    # the table on stderr (stdout carries the JSON) says the same
    assert rows(result.stderr.decode())["may patch pods/ephemeralcontainers"][0] == "no"
    assert ephemeral_names(e2e, namespace, pod) == []
    assert pod_names(e2e, namespace) == before


def test_doctor_table_on_stdout_with_the_role(e2e, nginx_pod):
    if not e2e.limited_context:
        pytest.skip("no limited context (set DEBUGX_E2E_LIMITED_CONTEXT on a real cluster)")
    namespace, pod = nginx_pod
    result = debugx(e2e, "doctor", pod, "-n", namespace, "--for", "capture", context=e2e.limited_context)
    assert result.returncode == 4, result.stderr
    stdout = result.stdout.decode()
    table = rows(stdout)
    assert table["may patch pods/ephemeralcontainers"][0] == "no"
    assert table["may get pods/exec"][0] == "no" and table["may create pods/exec"][0] == "no"
    assert table["may get pods"][0] == "ok"
    assert table["capture can run"][0] == "no"
    role = yaml.safe_load(stdout.split("RoleBinding:\n", 1)[1])
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods/ephemeralcontainers"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
    ]
    assert result.stderr == b""


def test_doctor_in_a_restricted_namespace_says_capture_cannot_run_and_why(e2e, make_namespace, make_pod):
    namespace, pod = restricted_pod(e2e, make_namespace, make_pod)
    before = pod_names(e2e, namespace)
    result = debugx(e2e, "doctor", pod, "-n", namespace, "--summary", "json")
    assert result.returncode == 4, result.stderr
    summary = json.loads(result.stdout)
    commands = {c["command"]: c for c in summary["commands"]}
    assert not commands["capture"]["canRun"]
    assert "Pod Security" in commands["capture"]["detail"] and "NET_RAW" in commands["capture"]["detail"]
    assert not commands["trace"]["canRun"] and "Pod Security" in commands["trace"]["detail"]
    # cp reads as the target's user (1000) with no capability: restricted admits that
    assert commands["cp"]["canRun"], commands["cp"]
    checks = {c["check"]: c for c in summary["checks"]}
    assert checks[f"namespace {namespace} Pod Security"]["detail"].startswith("restricted")
    assert checks["container main runs as"]["detail"].startswith("uid 1000; runAsNonRoot")
    assert summary["missingPermissions"] == [] and summary["role"] is None
    # creating nothing: no ephemeral container, no node pod, no other pod
    assert ephemeral_names(e2e, namespace, pod) == []
    assert pod_names(e2e, namespace) == before


def test_doctor_says_every_command_can_run_where_they_can(e2e, make_namespace, make_pod):
    namespace = make_namespace({"pod-security.kubernetes.io/enforce": "privileged"})
    pod = make_pod(namespace, "web", securityContext={"runAsUser": 0})["metadata"]["name"]
    result = debugx(e2e, "doctor", pod, "-n", namespace)
    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(result.stdout.decode())
    assert [table[f"{c} can run"][0] for c in ("capture", "trace", "nodelogs", "cp", "shell")] == ["ok"] * 5
    assert table["capture can run"][1] == "profile netadmin: the dry run admits its debug container"
    assert table["ephemeral containers"][0] == "ok"
    assert ephemeral_names(e2e, namespace, pod) == []
    assert pod_names(e2e, namespace) == [pod]


def test_doctor_bad_input(e2e, nginx_pod):
    namespace, pod = nginx_pod
    result = debugx(e2e, "doctor", pod, "-n", namespace, "--for", "tcpdump")
    assert (result.returncode, result.stdout) == (2, b"")
    assert result.stderr.decode().splitlines() == [
        "error: --for: unknown command tcpdump; choose among capture, trace, nodelogs, cp, shell"]
    result = debugx(e2e, "doctor", "nosuch", "-n", namespace)
    assert result.returncode == 3 and result.stderr.decode().count("error:") == 1, result.stderr


def test_a_user_who_may_not_exec_is_told_everything_missing_and_no_stop_warning(e2e, nginx_pod, tmp_path: Path):
    """The debug container is reused (no patch needed), but exec is not allowed: one line naming get and create
    on pods/exec; no claim that tcpdump may still run, since it never started."""
    if not e2e.limited_context:
        pytest.skip("no limited context (set DEBUGX_E2E_LIMITED_CONTEXT on a real cluster)")
    namespace, pod = nginx_pod
    first = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "a.pcap"), "--duration", "1s")
    assert first.returncode == 0, first.stderr
    [ec] = debugx_containers(e2e, namespace, pod)
    result = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "b.pcap"), "--duration", "1s",
                    context=e2e.limited_context)
    stderr = result.stderr.decode()
    assert result.returncode == 4, stderr
    error = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, stderr
    assert "capture needs get and create pods/exec" in error[0] and "nothing was created" in error[0]
    assert "Warning" not in stderr and "could not confirm" not in stderr
    assert debugx_containers(e2e, namespace, pod) == [ec]
    assert not (tmp_path / "b.pcap").exists()


def test_the_role_grants_the_patch_even_where_a_debug_container_would_be_reused(e2e, nginx_pod, tmp_path: Path):
    """A pod with an idle debug container spares a run the patch: doctor says so for this pod, and its Role still
    grants patch pods/ephemeralcontainers, which every other pod needs (issue 22: it once left it out)."""
    if not e2e.limited_context:
        pytest.skip("no limited context (set DEBUGX_E2E_LIMITED_CONTEXT on a real cluster)")
    namespace, pod = nginx_pod
    first = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "a.pcap"), "--duration", "1s")
    assert first.returncode == 0, first.stderr
    result = debugx(e2e, "doctor", pod, "-n", namespace, "--for", "capture", "--summary", "json",
                    context=e2e.limited_context)
    assert result.returncode == 4, result.stderr
    summary = json.loads(result.stdout)
    assert schema.check("doctor", summary) == []
    [capture] = summary["commands"]
    assert (capture["missingPermissions"], capture["missingOnThisPod"]) == (
        ["patch pods/ephemeralcontainers", "get pods/exec", "create pods/exec"],
        ["get pods/exec", "create pods/exec"])
    [role] = [o for o in yaml.safe_load_all(summary["role"]) if o]
    granted = {f"{verb} {resource}" for rule in role["rules"] for resource in rule["resources"]
               for verb in rule["verbs"]}
    assert granted == {"patch pods/ephemeralcontainers", "get pods/exec", "create pods/exec"}


def test_a_fresh_pod_refusal_names_every_missing_permission(e2e, nginx_pod, tmp_path: Path):
    if not e2e.limited_context:
        pytest.skip("no limited context (set DEBUGX_E2E_LIMITED_CONTEXT on a real cluster)")
    namespace, pod = nginx_pod
    result = debugx(e2e, "trace", pod, "-n", namespace, "--duration", "1s", context=e2e.limited_context)
    stderr = result.stderr.decode()
    assert result.returncode == 4, stderr
    [line] = stderr.splitlines()
    assert 'cannot patch resource "pods/ephemeralcontainers"' in line  # the server's own refusal first
    assert "trace needs patch pods/ephemeralcontainers, get and create pods/exec" in line
    assert f"kubectl debugx doctor {pod} -n {namespace} --for trace" in line
    assert ephemeral_names(e2e, namespace, pod) == []


def test_capture_says_its_debug_container_stays(e2e, nginx_pod, tmp_path: Path):
    namespace, pod = nginx_pod
    result = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "a.pcap"), "--duration", "1s",
                    "-q")
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    [ec] = debugx_containers(e2e, namespace, pod)
    [line] = [x for x in stderr.splitlines() if x.startswith("Left in the cluster:")]
    assert line.startswith(f"Left in the cluster: ephemeral container {ec} stays in pod {pod} "
                           "(ephemeral containers cannot be removed): idle, it ends with its TTL at about ")


def test_image_pull_error_says_the_container_stays(e2e, nginx_pod, tmp_path: Path):
    namespace, pod = nginx_pod
    result = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "x.pcap"),
                    "--image", "localhost/nosuch:v1", timeout=200)
    stderr = result.stderr.decode()
    assert result.returncode == 5, stderr
    [ec] = debugx_containers(e2e, namespace, pod)
    error = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "cannot start" in error[0], stderr
    assert f"ephemeral container {ec} stays in pod {pod} (ephemeral containers cannot be removed)" in error[0]
    assert "Left in the cluster" not in stderr  # said once, in the error line


def test_ctrl_c_while_the_debug_container_waits_for_its_image_says_it_stays(e2e, nginx_pod, tmp_path: Path):
    """Ctrl-C once the container is in the pod's spec, while its image cannot be pulled: exit 130 (or 5 if the
    pull error came first) and, either way, the one error line says the container stays."""
    namespace, pod = nginx_pod
    if e2e.cluster is not None:
        e2e.cluster.set_latency(1.0)  # the test kubelet fails the pull at once; slower answers leave time to signal
    try:
        proc = start_debugx(e2e, "capture", pod, "-n", namespace, "-o", str(tmp_path / "x.pcap"),
                            "--image", "localhost/nosuch:v1")
        said = wait_for_line(proc, "Adding ephemeral container")
        wait_until(lambda: debugx_containers(e2e, namespace, pod), "the debug container in the pod's spec")
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=120)[1].decode()
    finally:
        if e2e.cluster is not None:
            e2e.cluster.set_latency(0)
    [ec] = debugx_containers(e2e, namespace, pod)
    stderr = "\n".join(said) + "\n" + rest
    assert proc.returncode in (130, 5), stderr
    error = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, stderr
    if proc.returncode == 130:
        assert error[0].startswith("error: interrupted; "), stderr
    assert f"ephemeral container {ec} stays in pod {pod} (ephemeral containers cannot be removed)" in error[0]
    assert not (tmp_path / "x.pcap").exists()

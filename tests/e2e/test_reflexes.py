"""kubectl reflexes end to end (issue 22, item 6): what SREs type out of kubectl habit is read as kubectl means it
(--dry-run=MODE, KIND.GROUP/NAME, -o json|yaml, help CMD, version --client, cp POD: completion) or refused in
one line before anything is created (-it, a wrong group, an unknown interface, a POD that is a workload's name)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from .helpers import debugx, debugx_containers, executable, wait_until

pytestmark = pytest.mark.e2e


def _error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.decode().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, lines
    return errors[0]


def test_interactive_flags_and_bad_dry_run_modes_are_refused_creating_nothing(e2e, nginx_pod, tmp_path: Path):
    namespace, pod = nginx_pod
    out = str(tmp_path / "x.pcap")
    for args, message in [
        (["capture", pod, "-it", "-o", out], "-it: kubectl debugx capture is not interactive"),
        (["capture", "-i", "-t", pod, "-o", out], "-i -t: kubectl debugx capture is not interactive"),
        (["trace", pod, "--stdin", "--tty", "-o", out], "--stdin: kubectl debugx trace is not interactive"),
        (["capture", pod, "--dry-run=sever", "-o", out], 'invalid --dry-run value "sever"'),
    ]:
        result = debugx(e2e, *args, "-n", namespace)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.decode().count("\n") == 1 and message in _error_line(result), (args, result.stderr)
        assert result.stdout == b""
    assert list(tmp_path.iterdir()) == []
    assert debugx_containers(e2e, namespace, pod) == []


def test_dry_run_modes_as_kubectl_spells_them(e2e, nginx_pod, tmp_path: Path):
    namespace, pod = nginx_pod
    for mode in ("--dry-run", "--dry-run=client", "--dry-run=server"):
        result = debugx(e2e, "capture", pod, "-n", namespace, mode)
        assert result.returncode == 0, (mode, result.stderr)
        assert yaml.safe_load(result.stdout)["name"].startswith("debugx-")
        stderr = result.stderr.decode()
        assert ("dryRun=All" in stderr) == (mode == "--dry-run=server"), stderr
        assert stderr.splitlines()[-1].endswith(f"ephemeral container not added to pod {pod}")
    assert debugx_containers(e2e, namespace, pod) == []
    # =none is no dry run: a real (short) capture
    real = debugx(e2e, "capture", pod, "-n", namespace, "--dry-run=none", "--duration", "1s",
                  "-o", str(tmp_path / "real.pcap"))
    assert real.returncode == 0, real.stderr
    assert (tmp_path / "real.pcap").exists() and len(debugx_containers(e2e, namespace, pod)) == 1


def test_an_unknown_interface_lists_the_pods_and_runs_nothing(e2e, nginx_pod, tmp_path: Path):
    namespace, pod = nginx_pod
    result = debugx(e2e, "capture", pod, "-n", namespace, "-i", "nosuch0", "--duration", "5s",
                    "-o", str(tmp_path / "x.pcap"))
    assert result.returncode == 3, result.stderr
    line = _error_line(result)
    assert line.startswith(f'error: interface "nosuch0" not found in pod {namespace}/{pod}; its interfaces: any, ')
    assert "lo" in line.split("its interfaces: ", 1)[1].split(" (")[0].split(", "), line
    assert "No such device" not in result.stderr.decode()
    assert not (tmp_path / "x.pcap").exists()
    # nothing of ours runs in the debug container (gc's own record of tools), read as -o json
    found = debugx(e2e, "gc", "-n", namespace, "--dry-run", "-o", "json")
    assert found.returncode == 0, found.stderr
    data = json.loads(found.stdout)
    assert [f["kind"] for f in data["found"]] == ["debug-container"], data
    assert data["found"][0]["status"] == "Running" and data["found"][0]["process"] in ("", None, "sleep"), data
    # the pod's own interface works, in the same (reused) debug container
    ok = debugx(e2e, "capture", pod, "-n", namespace, "-i", "lo", "--duration", "1s", "-o", str(tmp_path / "lo.pcap"))
    assert ok.returncode == 0, ok.stderr
    assert len(debugx_containers(e2e, namespace, pod)) == 1


@pytest.fixture
def web_deployment(e2e, namespace):
    """Deployment web (1 replica, Running) and Service web: no pod is named web."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"terminationGracePeriodSeconds": 5,
                                       "containers": [{"name": "nginx", "image": e2e.nginx_image}]}}},
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}}
    e2e.kubectl("create", "-n", namespace, "-f", "-", input=f"{json.dumps(deployment)}\n---\n{json.dumps(service)}\n")

    def running() -> str | None:
        pods = e2e.api().list_namespaced_pod(namespace, label_selector="app=web").items
        names = [p.metadata.name for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
        return names[0] if names else None

    return namespace, wait_until(running, "the Running pod of deployment web")


def test_kind_group_targets_and_did_you_mean(e2e, web_deployment, tmp_path: Path):
    namespace, pod = web_deployment
    missing = debugx(e2e, "capture", "web", "-n", namespace, "-o", str(tmp_path / "x.pcap"))
    assert missing.returncode == 3, missing.stderr
    assert _error_line(missing) == (f'error: pods "web" not found in namespace "{namespace}"; did you mean '
                                    "deploy/web or svc/web?")
    wrong = debugx(e2e, "capture", "deployment.batch/web", "-n", namespace, "--dry-run")
    assert wrong.returncode == 2, wrong.stderr
    assert "deployment is in API group 'apps', not 'batch'" in _error_line(wrong)
    # what `kubectl get -o name` prints, fed back as targets
    names = e2e.kubectl("get", "deployment,service", "-n", namespace, "-o", "name").stdout
    names = names.decode() if isinstance(names, bytes) else names
    assert sorted(names.split()) == ["deployment.apps/web", "service/web"]
    for target in names.split():
        result = debugx(e2e, "capture", target, "-n", namespace, "--dry-run")
        assert result.returncode == 0, (target, result.stderr)
        assert yaml.safe_load(result.stdout)["name"].startswith("debugx-")
    cp = debugx(e2e, "cp", "deployment.apps/web:/etc/hostname", str(tmp_path / "h"), "-n", namespace, "--dry-run")
    assert cp.returncode == 0, cp.stderr
    assert f"Using pod {pod} of deploy/web" in cp.stderr.decode()
    assert list(tmp_path.iterdir()) == [] and debugx_containers(e2e, namespace, pod) == []


def test_doctor_and_version_as_json_and_yaml(e2e, nginx_pod):
    namespace, pod = nginx_pod
    doctor = debugx(e2e, "doctor", pod, "-n", namespace, "--for", "capture", "-o", "json")
    data = json.loads(doctor.stdout)  # the table went to stderr
    assert (data["command"], data["pod"], data["exitCode"]) == ("doctor", pod, doctor.returncode)
    assert [c["command"] for c in data["commands"]] == ["capture"]
    assert "CHECK" in doctor.stderr.decode()
    as_yaml = debugx(e2e, "doctor", pod, "-n", namespace, "--for", "capture", "-o", "yaml")
    assert yaml.safe_load(as_yaml.stdout)["commands"][0]["command"] == "capture"
    version = debugx(e2e, "version", "-o", "json")
    assert version.returncode == 0, version.stderr
    both = json.loads(version.stdout)
    assert both["clientVersion"]["gitVersion"] == "v0.1.0" and both["serverVersion"]["gitVersion"].startswith("v")


def test_version_client_and_help_need_no_cluster(tmp_path: Path):
    nowhere = ["--kubeconfig", str(tmp_path / "no-such-kubeconfig")]
    client = subprocess.run([executable(), "version", "--client", *nowhere], capture_output=True, timeout=60)
    assert (client.returncode, client.stdout, client.stderr) == (0, b"Client Version: v0.1.0\n", b"")
    as_json = subprocess.run([executable(), "version", "--client", "-o", "json"], capture_output=True, timeout=60)
    assert json.loads(as_json.stdout)["clientVersion"]["gitVersion"] == "v0.1.0"
    env = {"COLUMNS": "100", "PATH": "/usr/bin:/bin"}
    by_help = subprocess.run([executable(), "help", "capture"], capture_output=True, timeout=60, env=env)
    by_flag = subprocess.run([executable(), "capture", "--help"], capture_output=True, timeout=60, env=env)
    assert by_help.returncode == 0 and by_help.stdout == by_flag.stdout and b"Examples:" in by_help.stdout


def test_cp_completes_pods_with_a_colon(e2e, nginx_pod):
    namespace, pod = nginx_pod

    def complete(*words: str) -> list[str]:
        result = subprocess.run([executable(), "__complete", "cp", "-n", namespace, *words], capture_output=True,
                                timeout=60, env=e2e.env())
        return result.stdout.decode().splitlines()

    assert complete("") == [f"{pod}:", "deploy/", "sts/", "ds/", "rs/", "job/", "svc/", ":6"]
    assert complete(pod[:2]) == [f"{pod}:", ":6"]
    assert complete(f"{namespace}/") == [f"{namespace}/{pod}:", ":6"]
    assert complete(f"{pod}:") == [":6"]  # the container's paths: nothing, never local files
